-- Alert: a device that has sent nothing for more than config.max_silence_minutes
-- (level-triggered).
--
-- `timer = true`: besides each sample at ingest, the platform evaluates the rule on its timer
-- with the device's newest stored sample (the same one again and again while the device is
-- silent) and ctx.timer set; that is how a silence is noticed at all. "stale" is active while
-- ctx.now, the server's time, is more than the limit past the newest sample time seen, so a
-- fresh sample resolves it and a back-filled old one changes nothing.
--
-- state: { last_time = <newest sample time seen, epoch seconds>, last_timestamp = <its ISO 8601> }

local M = { timer = true }

function M.evaluate(sample, state, ctx)
  local config = ctx.config
  local minutes = config.max_silence_minutes
  if state.last_time == nil or sample.time > state.last_time then
    state.last_time, state.last_timestamp = sample.time, sample.timestamp
  end
  local silent = ctx.now - state.last_time
  if silent <= minutes * 60 then return {}, state end
  return { {
    key = "stale",
    severity = config.severity,
    message = string.format("%s has sent nothing for %d minutes (last sample %s, limit %g)",
      sample.device_id, silent // 60, state.last_timestamp, minutes),
    value = silent // 60,
  } }, state
end

return M
