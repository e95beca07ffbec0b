-- Alert: a condition held for config.minutes (level-triggered).
--
-- config.above_c: value > above_c; config.below_c: value < below_c; either may be false, and
-- both are tracked independently when set. A condition starts at the first sample that meets
-- it; "above" (or "below") is active on every sample at least `minutes` after that start, for
-- as long as the samples keep meeting it. A sample that does not meet it resets it, which
-- resolves the alert. Between two samples the condition is assumed to have held. A sample
-- without a number in `field`, or older than the latest one seen (a back-filled batch),
-- changes nothing.
--
-- state: { time = <latest sample time>, value = <its reading>, above = <since>, below = <since> }

local M = {}

function M.evaluate(sample, state, ctx)
  local config = ctx.config
  assert(config.field ~= nil, "sustained needs ctx.config.field (pass on the script's own ctx: its config holds the plugin's defaults)")
  local field = config.field
  local reading, time = sample[field], sample.time
  local fresh = type(reading) == "number" and not (state.time and time < state.time)
  if fresh then
    state.time, state.value = time, reading
  end

  local alerts = {}
  for _, name in ipairs({ "above", "below" }) do
    local limit = config[name .. "_c"]
    if not limit then
      state[name] = nil
    elseif fresh then
      local holds = (name == "above" and reading > limit) or (name == "below" and reading < limit)
      state[name] = holds and (state[name] or time) or nil
    end
    local since = state[name]
    if since and state.time - since >= config.minutes * 60 then
      alerts[#alerts + 1] = {
        key = name,
        severity = config.severity,
        message = string.format("%s: %s has been %s %g °C for %.0f minutes (now %g °C)",
          sample.device_id, field, name, limit, (state.time - since) / 60, state.value),
        value = state.value,
      }
    end
  end
  return alerts, state
end

return M
