-- Storage policy of the free tier: a few devices, a month of history, hourly averages after a
-- week. Over quota, new data is refused rather than old data deleted: a free account should
-- not lose history it did not choose to lose.

return {
  limits = function(tenant)
    return {
      max_devices = 3,
      max_samples = 100000,
      retention_days = 30,
      ingest_per_minute = 60,
      script_memory_mb = 8,
      downsample = { { after_days = 7, resolution = "1h" } },
    }
  end,

  on_over_quota = function(usage, limits)
    return "reject"
  end,
}
