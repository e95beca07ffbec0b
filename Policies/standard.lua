-- Storage policy of the standard tier: a household or small office for a year, 5-minute
-- resolution after a month and hourly after half a year.
--
-- Over the sample quota the oldest samples make room (a thermostat's latest readings matter
-- most); over the device quota a new device is refused, since dropping an old device's data
-- would not make room for another device.

return {
  limits = function(tenant)
    return {
      max_devices = 25,
      max_samples = 5000000,
      retention_days = 365,
      ingest_per_minute = 120,
      script_memory_mb = 16,
      downsample = {
        { after_days = 30, resolution = "5m" },
        { after_days = 180, resolution = "1h" },
      },
    }
  end,

  on_over_quota = function(usage, limits)
    if (usage.devices or 0) > limits.max_devices then return "reject" end
    return "drop_oldest"
  end,
}
