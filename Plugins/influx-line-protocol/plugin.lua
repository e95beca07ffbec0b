-- Export: InfluxDB line protocol, one sample a line:
--   thermostat,device=TH-1 temp_inside_c=20.5,setpoint_c=21,hysteresis_c=0.5,mode="HEAT",output="HEAT_ON" 1795849200000000000
-- Numbers without an `i` suffix are floats in line protocol, which is what the temperatures
-- are. A missing temp_outside_c is left out (line protocol has no null). A downsampled row gets
-- a `rollup=<seconds>s` tag and its sample count, extremes and heating/cooling shares as fields.

local function number(value)
  if math.type(value) == "integer" then return string.format("%d", value) end
  local text = string.format("%.15g", value)
  if tonumber(text) ~= value then text = string.format("%.17g", value) end
  return text
end

-- Measurements escape commas and spaces; tag keys and values also escape equals signs.
local function measurement(text) return (text:gsub("[, ]", "\\%0")) end
local function tag(text) return (text:gsub("[,= ]", "\\%0")) end
local function string_field(text) return '"' .. text:gsub('["\\]', "\\%0") .. '"' end

-- Epoch nanoseconds as an integer string. A double holds epoch seconds only to about 0.2 µs,
-- so time * 1e9 would invent digits; platform timestamps are whole microseconds, so split
-- off the whole seconds, round the fraction to microseconds and print both as integers.
local function nanoseconds(time)
  local seconds = math.floor(time)
  local micros = math.floor((time - seconds) * 1e6 + 0.5)
  if micros == 1000000 then seconds, micros = seconds + 1, 0 end
  return string.format("%d%06d000", seconds, micros)
end

local NUMBER_FIELDS = { "temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c" }
-- A downsampled row's extremes and shares, as fields beside its averages.
local ROLLUP_FIELDS = { "temp_inside_c", "temp_outside_c", "setpoint_c" }
local STRING_FIELDS = { "mode", "output" }

local M = { content_type = "text/plain", extension = "lp" }

M.nanoseconds = nanoseconds

function M.row(sample, ctx)
  local name = measurement(ctx.config.measurement)
  local fields = {}
  for _, field in ipairs(NUMBER_FIELDS) do
    if sample[field] ~= nil then fields[#fields + 1] = field .. "=" .. number(sample[field]) end
  end
  for _, field in ipairs(STRING_FIELDS) do
    fields[#fields + 1] = field .. "=" .. string_field(sample[field])
  end
  local tags = ",device=" .. tag(sample.device_id)
  local rollup = sample.rollup
  if rollup ~= nil then
    tags = tags .. ",rollup=" .. rollup.resolution_seconds .. "s"
    fields[#fields + 1] = "samples=" .. rollup.samples .. "i"
    for _, field in ipairs(ROLLUP_FIELDS) do
      local extremes = rollup[field]
      if extremes ~= nil then
        fields[#fields + 1] = field:sub(1, -3) .. "_min_c=" .. number(extremes.min)
        fields[#fields + 1] = field:sub(1, -3) .. "_max_c=" .. number(extremes.max)
      end
    end
    fields[#fields + 1] = "heating_share=" .. number(rollup.heating_share)
    fields[#fields + 1] = "cooling_share=" .. number(rollup.cooling_share)
  end
  return string.format("%s%s %s %s\n", name, tags, table.concat(fields, ","), nanoseconds(sample.time))
end

return M
