-- Ingest: the device reports degrees Fahrenheit in the *_c fields; store degrees Celsius.
--
-- config.fields        absolute temperatures: c = (f - 32) * 5 / 9
-- config.delta_fields  temperature differences (the hysteresis): c = f * 5 / 9, no offset
-- config.decimals      round the result to this many decimals (false keeps full precision);
--                      2 is far below any thermostat sensor's resolution and keeps values
--                      such as 71.6 °F -> 22 instead of 21.999999999999996.

local function round(value, decimals)
  if not decimals then return value end
  local scale = 10 ^ decimals
  return math.floor(value * scale + 0.5) / scale
end

local M = {}

function M.fahrenheit_to_celsius(f) return (f - 32) * 5 / 9 end

function M.transform(sample, ctx)
  local config = ctx.config
  local decimals = config.decimals
  for _, field in ipairs(config.fields) do
    local f = sample[field]
    -- temp_outside_c is absent on thermostats without an outdoor sensor.
    if type(f) == "number" then sample[field] = round(M.fahrenheit_to_celsius(f), decimals) end
  end
  for _, field in ipairs(config.delta_fields) do
    local f = sample[field]
    if type(f) == "number" then sample[field] = round(f * 5 / 9, decimals) end
  end
  return sample
end

return M
