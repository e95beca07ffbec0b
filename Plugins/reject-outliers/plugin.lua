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

local DEFAULTS = {
  min_c = -30,
  max_c = 60,
  outside_min_c = -60,
  outside_max_c = 60,
  max_setpoint_gap_c = false,
}

local function settings(ctx)
  local merged = {}
  for key, value in pairs(DEFAULTS) do merged[key] = value end
  for key, value in pairs(ctx and ctx.config or {}) do merged[key] = value end
  return merged
end

-- Written as "not inside" so that NaN, which compares false with everything, is rejected too.
local function outside(value, min, max)
  return not ((not min or value >= min) and (not max or value <= max))
end

local M = {}

function M.transform(sample, ctx)
  local cfg = settings(ctx)
  local inside = sample.temp_inside_c
  if outside(inside, cfg.min_c, cfg.max_c) then
    return nil, string.format("temp_inside_c %g °C is outside the plausible range %s to %s °C",
      inside, tostring(cfg.min_c or "-inf"), tostring(cfg.max_c or "inf"))
  end
  local outdoor = sample.temp_outside_c
  if outdoor ~= nil and outside(outdoor, cfg.outside_min_c, cfg.outside_max_c) then
    return nil, string.format("temp_outside_c %g °C is outside the plausible range %s to %s °C",
      outdoor, tostring(cfg.outside_min_c or "-inf"), tostring(cfg.outside_max_c or "inf"))
  end
  local gap = cfg.max_setpoint_gap_c
  if gap and sample.mode ~= "OFF" and math.abs(inside - sample.setpoint_c) > gap then
    return nil, string.format("temp_inside_c %g °C is more than %g °C from the setpoint %g °C",
      inside, gap, sample.setpoint_c)
  end
  return sample
end

return M
