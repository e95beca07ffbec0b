-- Alert: a reading changing faster than config.max_c_per_hour (°C per hour, either direction;
-- level-triggered).
--
-- The rate is taken between the reference sample and the one before it, both in state. The
-- reference moves to the current sample only once at least config.min_interval_minutes have
-- passed: a 0.0625 °C sensor step over one minute is already 3.75 °C/h, so comparing samples a
-- few seconds apart would turn noise into alerts. "rate" is active while that rate is over the
-- limit; a sample closer than the interval to the reference, or without a number in `field`,
-- keeps the verdict. A sample older than the reference (a back-filled batch) restarts from
-- that sample, inactive.
--
-- state: { time = <reference time>, value = <its reading>, from_time = ..., from_value = ...
--          of the previous reference, once there is one }

local M = {}

function M.evaluate(sample, state, ctx)
  local config = ctx.config
  assert(config.field ~= nil, "rate-of-change needs ctx.config.field (pass on the script's own ctx: its config holds the plugin's defaults)")
  local field = config.field
  local reading, time = sample[field], sample.time
  if type(reading) == "number" then
    if state.time == nil or time < state.time then
      state = { time = time, value = reading }
    elseif time > state.time and time - state.time >= config.min_interval_minutes * 60 then
      state = { time = time, value = reading, from_time = state.time, from_value = state.value }
    end
  end
  if state.from_time == nil then return {}, state end

  local elapsed = state.time - state.from_time
  local rate = (state.value - state.from_value) / elapsed * 3600
  local limit = config.max_c_per_hour
  if math.abs(rate) <= limit then return {}, state end
  return { {
    key = "rate",
    severity = config.severity,
    message = string.format("%s: %s %s at %.1f °C/h (%g -> %g °C in %.0f min; limit %g °C/h)",
      sample.device_id, field, rate > 0 and "rising" or "falling", math.abs(rate),
      state.from_value, state.value, elapsed / 60, limit),
    value = rate,
  } }, state
end

return M
