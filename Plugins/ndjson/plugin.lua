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

local M = { content_type = "application/x-ndjson", extension = "ndjson" }

function M.encode(value) return encode(value) end

-- Telemetry repeats itself: setpoints, modes, serials and most temperatures recur row after
-- row, so their JSON text is kept (a bounded memo, emptied when full) instead of formatted
-- again. Timestamps differ on every row and are quoted afresh.
local MEMO_LIMIT = 4096
local memo, memo_size = {}, 0

local function text_of(value)
  local kind = type(value)
  -- NaN cannot be a key; -0 and 0 are one key with two texts.
  if kind ~= "number" and kind ~= "string" or value ~= value or value == 0 then return encode(value) end
  local text = memo[value]
  if text == nil then
    text = kind == "number" and number(value) or quote(value)
    if memo_size >= MEMO_LIMIT then memo, memo_size = {}, 0 end
    memo[value], memo_size = text, memo_size + 1
  end
  return text
end

local function fresh_text(value)
  if type(value) == "string" then return quote(value) end
  return encode(value)
end

-- The "rollup" object of a downsampled row, as the query API writes it: keys in name order,
-- temp_outside_c null when none of the samples had an outdoor reading.
local function rollup_json(r)
  local outside = r.temp_outside_c == nil and "null" or encode(r.temp_outside_c)
  return '{"cooling_share":' .. number(r.cooling_share) .. ',"heating_share":' .. number(r.heating_share)
    .. ',"resolution_seconds":' .. number(r.resolution_seconds) .. ',"samples":' .. number(r.samples)
    .. ',"setpoint_c":' .. encode(r.setpoint_c) .. ',"temp_inside_c":' .. encode(r.temp_inside_c)
    .. ',"temp_outside_c":' .. outside .. "}"
end

-- A downsampled row (sample.rollup set) also carries its "rollup" object.
function M.row(s)
  local line = '{"device_id":' .. text_of(s.device_id) .. ',"timestamp":' .. fresh_text(s.timestamp)
    .. ',"mode":' .. text_of(s.mode) .. ',"temp_inside_c":' .. text_of(s.temp_inside_c)
    .. ',"temp_outside_c":' .. text_of(s.temp_outside_c) .. ',"setpoint_c":' .. text_of(s.setpoint_c)
    .. ',"hysteresis_c":' .. text_of(s.hysteresis_c) .. ',"output":' .. text_of(s.output)
  if s.rollup ~= nil then return line .. ',"rollup":' .. rollup_json(s.rollup) .. "}\n" end
  return line .. "}\n"
end

return M
