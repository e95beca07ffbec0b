-- Ingest: reject readings no working sensor in a heated room would produce.
--
-- An ingest transform sees one sample and keeps no state, so it cannot tell a jump from the
-- previous reading; that is the rate-of-change alert's job. What it can check:
--   config.min_c / max_c                  bounds for temp_inside_c (the defaults catch the
--                                         classic DS18B20 failure values 85 and -127)
--   config.outside_min_c / outside_max_c  bounds for temp_outside_c, when present
--   config.max_setpoint_gap_c             largest |temp_inside_c - setpoint_c| while the
--                                         thermostat is controlling (mode other than OFF);
--                                         false by default, because a big gap also means a
--                                         failed heater, which an alert should report and a
--                                         rejection would hide.
-- Any bound may be false to switch it off.

-- nil when value lies within [min, max] (a false bound is open), else the reason. Written as
-- "not within" so that NaN, which compares false with everything, is rejected too.
local function out_of_range(field, value, min, max)
  if not ((not min or value >= min) and (not max or value <= max)) then
    return string.format("%s %g °C is outside the plausible range %s to %s °C",
      field, value, tostring(min or "-inf"), tostring(max or "inf"))
  end
end

local M = {}

function M.transform(sample, ctx)
  local config = ctx.config
  assert(config.min_c ~= nil and config.max_c ~= nil and config.outside_min_c ~= nil and config.outside_max_c ~= nil,
    "reject-outliers needs its bounds in ctx.config (pass on the script's own ctx: its config holds the plugin's defaults)")
  local inside = sample.temp_inside_c
  local reason = out_of_range("temp_inside_c", inside, config.min_c, config.max_c)
  if reason then return nil, reason end
  local outdoor = sample.temp_outside_c
  if outdoor ~= nil then
    reason = out_of_range("temp_outside_c", outdoor, config.outside_min_c, config.outside_max_c)
    if reason then return nil, reason end
  end
  local gap = config.max_setpoint_gap_c
  if gap and sample.mode ~= "OFF" and math.abs(inside - sample.setpoint_c) > gap then
    return nil, string.format("temp_inside_c %g °C is more than %g °C from the setpoint %g °C",
      inside, gap, sample.setpoint_c)
  end
  return sample
end

return M
