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

local M = {}

function M.evaluate(sample, state, ctx)
  local config = ctx.config
  assert(config.field ~= nil, "threshold needs ctx.config.field (pass on the script's own ctx: its config holds the plugin's defaults)")
  local field = config.field
  local value = sample[field]
  local alerts = {}
  if type(value) ~= "number" then return alerts, state end

  local function check(name, limit, beyond, back, word)
    if not limit then
      state[name] = nil
    elseif not state[name] and beyond then
      state[name] = true
      alerts[#alerts + 1] = {
        severity = config.severity,
        message = string.format("%s: %s is %g °C, %s %g °C", sample.device_id, field, value, word, limit),
        -- The key names the condition, so two threshold rules with different bounds never
        -- share a key.
        key = string.format("threshold:%s:%s%s%g", sample.device_id, field, name == "high" and ">" or "<", limit),
      }
    elseif state[name] and back then
      state[name] = nil
    end
  end

  local high, low = config.high_c, config.low_c
  local hysteresis = config.hysteresis_c
  check("high", high, high and value > high, high and value < high - hysteresis, "above")
  check("low", low, low and value < low, low and value > low + hysteresis, "below")
  return alerts, state
end

return M
