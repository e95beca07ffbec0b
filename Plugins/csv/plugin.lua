-- Export: RFC 4180 CSV. Lines end in CRLF as the RFC says (config.newline = "\n" for Unix
-- tools); config.separator = ";" suits spreadsheets in locales with a decimal comma. A field
-- is quoted when it contains the separator, a double quote, CR or LF, with quotes doubled.
-- A missing temp_outside_c is an empty field.

local COLUMNS = {
  "device_id", "timestamp", "mode", "temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c", "output",
}

-- The shortest decimal that reads back as the same number: 21.1, not 21.100000000000001.
local function number(value)
  if math.type(value) == "integer" then return string.format("%d", value) end
  local text = string.format("%.15g", value)
  if tonumber(text) ~= value then text = string.format("%.17g", value) end
  return text
end

local function field(value, separator)
  if value == nil then return "" end
  if type(value) == "number" then return number(value) end
  local text = tostring(value)
  if text:find(separator, 1, true) or text:find('["\r\n]') then
    return '"' .. text:gsub('"', '""') .. '"'
  end
  return text
end

local M = { content_type = "text/csv", extension = "csv" }

function M.header(ctx)
  local config = ctx.config
  return table.concat(COLUMNS, config.separator) .. config.newline
end

function M.row(sample, ctx)
  local config = ctx.config
  local separator = config.separator
  local fields = {}
  for i, column in ipairs(COLUMNS) do fields[i] = field(sample[column], separator) end
  return table.concat(fields, separator) .. config.newline
end

return M
