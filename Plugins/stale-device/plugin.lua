-- Alert: a device that has gone quiet for more than config.max_silence_minutes.
--
-- The rule is evaluated two ways, and tells them apart by the sample's time:
--   * per sample, at ingest: the sample is newer than state.last_time. The device is talking
--     right now, so ctx.now says nothing about silence (a back-filled batch can carry hours-old
--     samples); instead a gap since the previous sample larger than the limit is reported,
--     unless the timer already reported that silence.
--   * on the server's timer: the server evaluates the rule with the device's latest stored
--     sample, which is state.last_time again. Then ctx.now - last_time over the limit alerts,
--     once per silence.
-- A device the rule has never seen only gets its time recorded (no history, no verdict), so
-- a freshly activated rule alerts from the second timer run on.
--
-- state: { last_time = <epoch seconds>, reported = <last_time whose silence was reported> }

local M = {}

function M.evaluate(sample, state, ctx)
  local config = ctx.config
  local minutes, severity = config.max_silence_minutes, config.severity
  local limit = minutes * 60
  local last, time = state.last_time, sample.time
  local key = "stale-device:" .. sample.device_id

  if last == nil or time > last then
    local alerts = {}
    if last and time - last > limit and state.reported ~= last then
      alerts[1] = {
        severity = severity,
        message = string.format("%s sent nothing for %d minutes before %s (limit %g)",
          sample.device_id, (time - last) // 60, sample.timestamp, minutes),
        key = key,
      }
    end
    return alerts, { last_time = time }
  end

  if time == last and ctx.now - last > limit and state.reported ~= last then
    state.reported = last
    return { {
      severity = severity,
      message = string.format("%s has sent nothing for %d minutes (last sample %s, limit %g)",
        sample.device_id, (ctx.now - last) // 60, sample.timestamp, minutes),
      key = key,
    } }, state
  end
  -- An older sample arriving late, or a timer run within the limit: nothing to say.
  return {}, state
end

return M
