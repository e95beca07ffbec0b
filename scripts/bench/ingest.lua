-- wrk script: single-sample (or batched) ingest from many simulated devices.
-- Each connection is one device; every request carries fresh timestamps, so nothing is a
-- duplicate. Devices come from the file named by BENCH_DEVICES ("serial key" per line).
-- BENCH_BATCH samples go in each request (1 = the firmware's single-sample form).

local devices = {}
for line in io.lines(os.getenv("BENCH_DEVICES")) do
  local serial, key = line:match("^(%S+)%s+(%S+)$")
  if serial then devices[#devices + 1] = { serial = serial, key = key } end
end
local batch = tonumber(os.getenv("BENCH_BATCH") or "1")
local base = tonumber(os.getenv("BENCH_BASE_EPOCH"))
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_index", thread_count)
end

local counter = 0
local device_index = 0

local function stamp(n)
  local seconds = base + math.floor(n / 1000000)
  return os.date("!%Y-%m-%dT%H:%M:%S", seconds) .. string.format(".%06dZ", n % 1000000)
end

local function sample(serial, n)
  return string.format(
    '{"device_id":"%s","mode":"HEAT","temp_inside_c":%.2f,"temp_outside_c":4.5,"setpoint_c":21,' ..
    '"hysteresis_c":0.5,"output":"HEAT_ON","timestamp":"%s"}', serial, 18 + (n % 400) / 100, stamp(n))
end

function request()
  device_index = device_index % #devices + 1
  local device = devices[device_index]
  local body
  if batch == 1 then
    counter = counter + 1
    body = sample(device.serial, counter * 16 + thread_index)
  else
    local parts = {}
    for i = 1, batch do
      counter = counter + 1
      parts[i] = sample(device.serial, counter * 16 + thread_index)
    end
    body = '{"samples":[' .. table.concat(parts, ",") .. ']}'
  end
  return wrk.format("POST", "/api/telemetry/ingest/", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Device " .. device.serial .. ":" .. device.key,
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
