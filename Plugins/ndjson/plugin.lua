-- Export: newline-delimited JSON (https://github.com/ndjson/ndjson-spec), one sample a line,
-- keys in the order of the telemetry contract.
--
-- encode(value) is a small, strict JSON encoder that other scripts can use through
-- require("ndjson"): nil -> null, booleans, numbers (the shortest text that reads back as the
-- same number; NaN and infinities, which JSON cannot carry, -> null), strings (quote,
-- backslash and control characters escaped; UTF-8 passes through), tables with keys 1..n ->
-- arrays, tables with string keys -> objects with sorted keys, {} -> [].

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function quote(text)
  -- Most strings need no escape: one search instead of a substitution with a callback.
  if not text:find('[%c"\\]') then return '"' .. text .. '"' end
  -- %c is every control character, DEL included; \u00XX is valid JSON for all of them.
  return '"' .. text:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function number(value)
  if math.type(value) == "integer" then return string.format("%d", value) end
  if value ~= value or value == math.huge or value == -math.huge then return "null" end
  local text = string.format("%.15g", value)
  if tonumber(text) ~= value then text = string.format("%.17g", value) end
  return text
end

local encode

local function encode_table(value, depth)
  if depth > 32 then error("ndjson.encode: value nested deeper than 32 levels") end
  local count, keys = 0, {}
  for key in pairs(value) do
    count = count + 1
    if type(key) == "string" then
      keys[#keys + 1] = key
    elseif math.type(key) ~= "integer" then
      error("ndjson.encode: table keys must be strings or the integers 1..n")
    end
  end
  local parts = {}
  if #keys == 0 then
    for i = 1, count do
      if value[i] == nil then error("ndjson.encode: array keys must be exactly 1..n") end
      parts[i] = encode(value[i], depth + 1)
    end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  if #keys ~= count then error("ndjson.encode: a table mixes array entries and named fields") end
  table.sort(keys)
  for i, key in ipairs(keys) do parts[i] = quote(key) .. ":" .. encode(value[key], depth + 1) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function encode(value, depth)
  local kind = type(value)
  if kind == "nil" then return "null" end
  if kind == "boolean" then return value and "true" or "false" end
  if kind == "number" then return number(value) end
  if kind == "string" then return quote(value) end
  if kind == "table" then return encode_table(value, depth or 0) end
  error("ndjson.encode: a " .. kind .. " value has no JSON form")
end

local FIELDS = {
  "device_id", "timestamp", "mode", "temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c", "output",
}

local M = { content_type = "application/x-ndjson", extension = "ndjson" }

function M.encode(value) return encode(value) end

-- Each field's key with the separator before it, built once.
local KEYS = {}
for i, name in ipairs(FIELDS) do KEYS[i] = (i == 1 and "{" or ",") .. quote(name) .. ":" end

-- A downsampled row (sample.rollup set) also carries its "rollup" object.
function M.row(sample)
  local parts = {}
  for i = 1, #FIELDS do
    local value = sample[FIELDS[i]]
    local kind = type(value)
    if kind == "number" then
      parts[i] = KEYS[i] .. number(value)
    elseif kind == "string" then
      parts[i] = KEYS[i] .. quote(value)
    else
      parts[i] = KEYS[i] .. encode(value)
    end
  end
  if sample.rollup ~= nil then parts[#parts + 1] = ',"rollup":' .. encode(sample.rollup) end
  parts[#parts + 1] = "}\n"
  return table.concat(parts)
end

return M
