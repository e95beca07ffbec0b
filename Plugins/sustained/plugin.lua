-- Alert: a condition held for config.minutes.
--
-- config.above_c: value > above_c; config.below_c: value < below_c; either may be false, and
-- both are tracked independently when set. The condition starts at the first sample that
-- meets it and alerts once at the first sample at least `minutes` later; any sample that does
-- not meet it resets it. Between two samples the condition is assumed to have held.
--
-- state: { above = { since = <epoch seconds>, alerted = true? }, below = { ... } }

local DEFAULTS = {
  field = "temp_inside_c",
  above_c = 28,
  below_c = false,
  minutes = 30,
  severity = "warning",
}

local function settings(ctx)
  local merged = {}
  for key, value in pairs(DEFAULTS) do merged[key] = value end
  for key, value in pairs(ctx and ctx.config or {}) do merged[key] = value end
  return merged
end

local M = {}

function M.evaluate(sample, state, ctx)
  local cfg = settings(ctx)
  local value, time = sample[cfg.field], sample.time
  local alerts = {}
  if type(value) ~= "number" then return alerts, state end

  local function track(name, limit, holds, word)
    if not (limit and holds) then
      state[name] = nil
      return
    end
    local held = state[name] or { since = time }
    state[name] = held
    if not held.alerted and time - held.since >= cfg.minutes * 60 then
      held.alerted = true
      alerts[#alerts + 1] = {
        severity = cfg.severity,
        message = string.format("%s: %s has been %s %g °C for %.0f minutes (now %g °C)",
          sample.device_id, cfg.field, word, limit, (time - held.since) / 60, value),
        key = string.format("sustained:%s:%s%s%g", sample.device_id, cfg.field, name == "above" and ">" or "<", limit),
      }
    end
  end

  track("above", cfg.above_c, cfg.above_c and value > cfg.above_c, "above")
  track("below", cfg.below_c, cfg.below_c and value < cfg.below_c, "below")
  return alerts, state
end

return M
