-- Test tier "pro": the shipped tier's script memory, every other limit far above what a test
-- uses, and no ingest_per_minute, so the server's own per-device rate applies. Test harnesses
-- point THERMOSTAT_POLICIES_DIR here; tests of the tiers themselves bring their own policies.

return {
  limits = function(tenant)
    return {
      max_devices = 100000,
      max_samples = 1000000000,
      retention_days = 36500,
      script_memory_mb = 32,
      downsample = {},
    }
  end,

  on_over_quota = function(usage, limits)
    return "reject"
  end,
}
