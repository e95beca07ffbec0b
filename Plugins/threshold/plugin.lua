-- Alert: a reading above high_c or below low_c, with hysteresis.
--
-- Each bound raises one alert when it is crossed and stays quiet while the reading stays
-- beyond it. The condition clears (silently: alerts have no "resolved" severity) only once
-- the reading is back by hysteresis_c - below high_c - hysteresis_c, or above
-- low_c + hysteresis_c - and then the next crossing alerts again.
--
-- config: field (any numeric sample field; a sample without it is skipped), high_c and low_c
-- (false switches a bound off), hysteresis_c, severity ("warning" or "critical").
-- state:  { high = true } / { low = true } while a condition is active.

local DEFAULTS = {
  field = "temp_inside_c",
  high_c = 28,
  low_c = 10,
  hysteresis_c = 0.5,
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
  local value = sample[cfg.field]
  local alerts = {}
  if type(value) ~= "number" then return alerts, state end

  local function check(name, limit, beyond, back, word)
    if not limit then
      state[name] = nil
    elseif not state[name] and beyond then
      state[name] = true
      alerts[#alerts + 1] = {
        severity = cfg.severity,
        message = string.format("%s: %s is %g °C, %s %g °C", sample.device_id, cfg.field, value, word, limit),
        -- The key names the condition, so two threshold rules with different bounds never
        -- share a key.
        key = string.format("threshold:%s:%s%s%g", sample.device_id, cfg.field, name == "high" and ">" or "<", limit),
      }
    elseif state[name] and back then
      state[name] = nil
    end
  end

  local high, low, hysteresis = cfg.high_c, cfg.low_c, cfg.hysteresis_c
  check("high", high, high and value > high, high and value < high - hysteresis, "above")
  check("low", low, low and value < low, low and value > low + hysteresis, "below")
  return alerts, state
end

return M
