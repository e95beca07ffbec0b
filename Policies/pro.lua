-- Storage policy of the pro tier: fleets of buildings, five years of history at full
-- resolution for the first year and 5-minute resolution after it.
--
-- Over quota like standard: the oldest samples make room; a device beyond the limit is
-- refused.

return {
  limits = function(tenant)
    return {
      max_devices = 500,
      max_samples = 200000000,
      retention_days = 1825,
      ingest_per_minute = 600,
      script_memory_mb = 32,
      downsample = { { after_days = 365, resolution = "5m" } },
    }
  end,

  on_over_quota = function(usage, limits)
    if (usage.devices or 0) > limits.max_devices then return "reject" end
    return "drop_oldest"
  end,
}
