-- Alert: a condition held for config.minutes.
--
-- config.above_c: value > above_c; config.below_c: value < below_c; either may be false, and
-- both are tracked independently when set. The condition starts at the first sample that
-- meets it and alerts once at the first sample at least `minutes` later; any sample that does
-- not meet it resets it. Between two samples the condition is assumed to have held.
--
-- state: { above = { since = <epoch seconds>, alerted = true? }, below = { ... } }

local M = {}

function M.evaluate(sample, state, ctx)
  local config = ctx.config
  assert(config.field ~= nil, "sustained needs ctx.config.field (pass on the script's own ctx: its config holds the plugin's defaults)")
  local field, minutes = config.field, config.minutes
  local value, time = sample[field], sample.time
  local alerts = {}
  if type(value) ~= "number" then return alerts, state end

  local function track(name, limit, holds, word)
    if not (limit and holds) then
      state[name] = nil
      return
    end
    local held = state[name] or { since = time }
    state[name] = held
    if not held.alerted and time - held.since >= minutes * 60 then
      held.alerted = true
      alerts[#alerts + 1] = {
        severity = config.severity,
        message = string.format("%s: %s has been %s %g °C for %.0f minutes (now %g °C)",
          sample.device_id, field, word, limit, (time - held.since) / 60, value),
        key = string.format("sustained:%s:%s%s%g", sample.device_id, field, name == "above" and ">" or "<", limit),
      }
    end
  end

  local above, below = config.above_c, config.below_c
  track("above", above, above and value > above, "above")
  track("below", below, below and value < below, "below")
  return alerts, state
end

return M
