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

-- One condition: when it started (state[name], nil when it does not hold) after this sample,
-- and its alert appended to `alerts` once it has held for config.minutes. `holds` says whether
-- the sample, when `fresh`, meets it.
local function track(alerts, sample, state, config, name, limit, fresh, holds)
  if not limit then
    state[name] = nil
  elseif fresh then
    state[name] = holds and (state[name] or state.time) or nil
  end
  local since = state[name]
  if since and state.time - since >= config.minutes * 60 then
    alerts[#alerts + 1] = {
      key = name,
      severity = config.severity,
      message = string.format("%s: %s has been %s %g °C for %.0f minutes (now %g °C)",
        sample.device_id, config.field, name, limit, (state.time - since) / 60, state.value),
      value = state.value,
    }
  end
end

function M.evaluate(sample, state, ctx)
  local config = ctx.config
  assert(config.field ~= nil, "sustained needs ctx.config.field (pass on the script's own ctx: its config holds the plugin's defaults)")
  local reading, time = sample[config.field], sample.time
  local fresh = type(reading) == "number" and not (state.time and time < state.time)
  if fresh then
    state.time, state.value = time, reading
  end

  local alerts = {}
  local above, below = config.above_c, config.below_c
  track(alerts, sample, state, config, "above", above, fresh, fresh and above and reading > above)
  track(alerts, sample, state, config, "below", below, fresh, fresh and below and reading < below)
  return alerts, state
end

return M
