-- Alert: a reading changing faster than config.max_c_per_hour (°C per hour, either direction).
--
-- The rate is taken between the reference sample in state and the current one. The reference
-- moves to the current sample only once at least config.min_interval_minutes have passed:
-- a 0.0625 °C sensor step over one minute is already 3.75 °C/h, so comparing samples a few
-- seconds apart would turn noise into alerts. A fast change alerts once and re-arms when the
-- rate is back under the limit. A sample older than the reference (a back-filled batch)
-- restarts from that sample.
--
-- state: { time = <epoch seconds>, value = <reading>, active = true while too fast }

local M = {}

function M.evaluate(sample, state, ctx)
  local config = ctx.config
  assert(config.field ~= nil, "rate-of-change needs ctx.config.field (pass on the script's own ctx: its config holds the plugin's defaults)")
  local field = config.field
  local value, time = sample[field], sample.time
  if type(value) ~= "number" then return {}, state end
  if state.time == nil or time < state.time then
    return {}, { time = time, value = value }
  end
  local elapsed = time - state.time
  if elapsed <= 0 or elapsed < config.min_interval_minutes * 60 then
    return {}, state
  end

  local rate = (value - state.value) / elapsed * 3600
  local limit = config.max_c_per_hour
  local fast = math.abs(rate) > limit
  local alerts = {}
  if fast and not state.active then
    alerts[1] = {
      severity = config.severity,
      message = string.format("%s: %s %s at %.1f °C/h (%g -> %g °C in %.0f min; limit %g °C/h)",
        sample.device_id, field, rate > 0 and "rising" or "falling", math.abs(rate),
        state.value, value, elapsed / 60, limit),
      key = string.format("rate-of-change:%s:%s", sample.device_id, field),
    }
  end
  return alerts, { time = time, value = value, active = fast or nil }
end

return M
