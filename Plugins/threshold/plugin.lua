-- Alert: a reading above high_c or below low_c, with hysteresis (level-triggered).
--
-- "high" is active from the first reading above high_c until the reading is back below
-- high_c - hysteresis_c, so a reading hovering at the limit does not flap; "low" likewise from
-- below low_c until above low_c + hysteresis_c. The platform starts the alert when a key first
-- appears and resolves it when the key is no longer returned.
--
-- config: field (any numeric sample field), high_c and low_c (false switches a bound off),
-- hysteresis_c, severity ("warning" or "critical").
-- state:  { high = <reading>, low = <reading> }: the latest reading of each active condition.
-- A sample without a number in `field` changes nothing: the held conditions are returned again.

local M = {}

local function alert(sample, config, name, reading, limit)
  local high = name == "high"
  local message
  if (high and reading > limit) or (not high and reading < limit) then
    message = string.format("%s: %s is %g °C, %s %g °C",
      sample.device_id, config.field, reading, high and "above" or "below", limit)
  else
    -- Back inside the limit but not yet past the hysteresis band.
    message = string.format("%s: %s is %g °C, not yet back %s %g °C (limit %g °C)",
      sample.device_id, config.field, reading, high and "below" or "above",
      high and limit - config.hysteresis_c or limit + config.hysteresis_c, limit)
  end
  return { key = name, severity = config.severity, message = message, value = reading }
end

-- One bound: the reading it holds in state[name] after this sample (nil when inactive), and
-- its alert appended to `alerts`. `beyond` and `held` say where the reading lies when the
-- sample has a `number`.
local function track(alerts, sample, state, config, name, limit, reading, number, beyond, held)
  if not limit then
    state[name] = nil
  elseif number then
    if beyond or (state[name] and held) then
      state[name] = reading
    else
      state[name] = nil
    end
  end
  if state[name] then
    alerts[#alerts + 1] = alert(sample, config, name, state[name], limit)
  end
end

function M.evaluate(sample, state, ctx)
  local config = ctx.config
  assert(config.field ~= nil, "threshold needs ctx.config.field (pass on the script's own ctx: its config holds the plugin's defaults)")
  local reading = sample[config.field]
  local number = type(reading) == "number"
  local hysteresis = config.hysteresis_c
  local high, low = config.high_c, config.low_c
  local alerts = {}
  track(alerts, sample, state, config, "high", high, reading, number,
    number and high and reading > high, number and high and reading >= high - hysteresis)
  track(alerts, sample, state, config, "low", low, reading, number,
    number and low and reading < low, number and low and reading <= low + hysteresis)
  return alerts, state
end

return M
