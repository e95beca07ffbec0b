-- Ingest: the device reports degrees Fahrenheit in the *_c fields; store degrees Celsius.
--
-- config.fields        absolute temperatures: c = (f - 32) * 5 / 9
-- config.delta_fields  temperature differences (the hysteresis): c = f * 5 / 9, no offset
-- config.decimals      round the result to this many decimals (false keeps full precision);
--                      2 is far below any thermostat sensor's resolution and keeps values
--                      such as 71.6 °F -> 22 instead of 21.999999999999996.

local DEFAULTS = {
  fields = { "temp_inside_c", "temp_outside_c", "setpoint_c" },
  delta_fields = { "hysteresis_c" },
  decimals = 2,
}

-- The script's config over the defaults (shallow: a list in the config replaces the default list).
local function settings(ctx)
  local merged = {}
  for key, value in pairs(DEFAULTS) do merged[key] = value end
  for key, value in pairs(ctx and ctx.config or {}) do merged[key] = value end
  return merged
end

local function round(value, decimals)
  if not decimals then return value end
  local scale = 10 ^ decimals
  return math.floor(value * scale + 0.5) / scale
end

local M = {}

function M.fahrenheit_to_celsius(f) return (f - 32) * 5 / 9 end

function M.transform(sample, ctx)
  local cfg = settings(ctx)
  for _, field in ipairs(cfg.fields) do
    local f = sample[field]
    -- temp_outside_c is absent on thermostats without an outdoor sensor.
    if type(f) == "number" then sample[field] = round(M.fahrenheit_to_celsius(f), cfg.decimals) end
  end
  for _, field in ipairs(cfg.delta_fields) do
    local f = sample[field]
    if type(f) == "number" then sample[field] = round(f * 5 / 9, cfg.decimals) end
  end
  return sample
end

return M
