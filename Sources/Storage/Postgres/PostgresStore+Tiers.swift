import Foundation
import PlatformCore
import PostgresNIO

extension PostgresStore: TierStore {
    public func allTenants() async throws -> [Tenant] {
        try await rows(
            "SELECT id, slug, name, tier, created_at FROM tenants ORDER BY created_at",
            as: (UUID, String, String, String, Timestamp).self
        ).map { Tenant(id: $0.0, slug: $0.1, name: $0.2, tier: $0.3, createdAt: $0.4) }
    }

    public func disabledTenants() async throws -> Set<UUID> {
        Set(try await rows("SELECT tenant_id FROM disabled_tenants", as: UUID.self))
    }

    public func setTenantDisabled(tenantID: UUID, _ disabled: Bool, at time: Timestamp) async throws {
        if disabled {
            try await execute(
                "INSERT INTO disabled_tenants (tenant_id, disabled_at) VALUES (\(tenantID), \(time)) ON CONFLICT DO NOTHING")
        } else {
            try await execute("DELETE FROM disabled_tenants WHERE tenant_id = \(tenantID)")
        }
    }

    public func sampleCounts() async throws -> [UUID: Int] {
        var counts: [UUID: Int] = [:]
        for (tenant, samples) in try await rows(
            "SELECT tenant_id, count(*)::int8 FROM telemetry GROUP BY tenant_id", as: (UUID, Int64).self)
        {
            counts[tenant] = Int(samples)
        }
        return counts
    }

    public func deviceCount(tenantID: UUID) async throws -> Int {
        let counts: [Int64] = try await rows("SELECT count(*)::int8 FROM devices WHERE tenant_id = \(tenantID)", as: Int64.self)
        return Int(counts.first ?? 0)
    }

    public func deleteSamples(tenantID: UUID, serial: String, before cutoff: Timestamp, limit: Int) async throws -> Int {
        try await changedRows(
            """
            DELETE FROM telemetry WHERE (tenant_id, device_serial, ts) IN (
                SELECT tenant_id, device_serial, ts FROM telemetry
                WHERE tenant_id = \(tenantID) AND device_serial = \(serial) AND ts < \(cutoff) ORDER BY ts LIMIT \(limit))
            RETURNING 1
            """)
    }

    public func deleteOldestSamples(tenantID: UUID, count: Int) async throws -> Int {
        try await changedRows(
            """
            DELETE FROM telemetry WHERE (tenant_id, device_serial, ts) IN (
                SELECT tenant_id, device_serial, ts FROM telemetry WHERE tenant_id = \(tenantID) ORDER BY ts LIMIT \(count))
            RETURNING 1
            """)
    }

    public func contractPolicy(tenantID: UUID) async throws -> String? {
        let sources: [String] = try await rows(
            "SELECT source FROM contract_policies WHERE tenant_id = \(tenantID)", as: String.self)
        return sources.first
    }

    public func setContractPolicy(tenantID: UUID, source: String?, at time: Timestamp) async throws {
        if let source {
            try await execute(
                """
                INSERT INTO contract_policies (tenant_id, source, assigned_at) VALUES (\(tenantID), \(source), \(time))
                ON CONFLICT (tenant_id) DO UPDATE SET source = excluded.source, assigned_at = excluded.assigned_at
                """)
        } else {
            try await execute("DELETE FROM contract_policies WHERE tenant_id = \(tenantID)")
        }
    }

    public func deleteRollups(tenantID: UUID, serial: String, before cutoff: Timestamp, limit: Int) async throws -> Int {
        try await count(
            """
            WITH deleted AS (
                DELETE FROM telemetry_rollups WHERE (tenant_id, device_serial, ts, resolution) IN (
                    SELECT tenant_id, device_serial, ts, resolution FROM telemetry_rollups
                    WHERE tenant_id = \(tenantID) AND device_serial = \(serial) AND ts < \(cutoff) ORDER BY ts LIMIT \(limit))
                RETURNING 1)
            SELECT count(*)::int8 FROM deleted
            """)
    }

    public func downsample(tenantID: UUID, serial: String, resolutionSeconds: Int, before cutoff: Timestamp, limit: Int)
        async throws -> DownsampleChunk
    {
        let interval = "\(resolutionSeconds) seconds"
        let resolution = Int64(resolutionSeconds)
        let logger = logger
        let last = cutoff.flooring(toSeconds: resolutionSeconds)
        let offset = max(limit, 1) - 1
        // Most runs find nothing to do: ask before opening a writing transaction.
        let pending: [Bool] = try await rows(
            """
            SELECT EXISTS (SELECT 1 FROM telemetry WHERE tenant_id = \(tenantID) AND device_serial = \(serial) AND ts < \(last))
                OR EXISTS (SELECT 1 FROM telemetry_rollups WHERE tenant_id = \(tenantID) AND device_serial = \(serial)
                    AND ts < \(last) AND resolution < \(resolution))
            """, as: Bool.self)
        guard pending.first == true else { return DownsampleChunk(samples: 0, rollups: 0, isComplete: true) }
        return try await transaction("downsample") { connection in
            // One chunk of a device at a time, whichever server process runs it.
            try await connection.query(
                "SELECT pg_advisory_xact_lock(hashtextextended('downsample:' || \(tenantID.uuidString) || ':' || \(serial), 0))",
                logger: logger)
            // The chunk ends after the bucket of the `limit`-th raw sample or finer rollup, so
            // it holds whole buckets and at most about `limit` of either.
            var end = last
            for query: PostgresQuery in [
                """
                SELECT ts FROM telemetry WHERE tenant_id = \(tenantID) AND device_serial = \(serial) AND ts < \(last)
                ORDER BY ts LIMIT 1 OFFSET \(offset)
                """,
                """
                SELECT ts FROM telemetry_rollups
                WHERE tenant_id = \(tenantID) AND device_serial = \(serial) AND ts < \(last) AND resolution < \(resolution)
                ORDER BY ts LIMIT 1 OFFSET \(offset)
                """,
            ] {
                for try await time in try await connection.query(query, logger: logger).decode(Timestamp.self) {
                    end = min(end, time.flooring(toSeconds: resolutionSeconds).adding(seconds: Double(resolutionSeconds)))
                }
            }
            // The rollups are built from exactly the rows this statement deletes (each statement
            // has its own snapshot under READ COMMITTED: a separate INSERT … SELECT and DELETE
            // could delete a sample committed in between without rolling it up).
            var counts: (samples: Int64, rollups: Int64) = (0, 0)
            let rows = try await connection.query(
                """
                WITH raw AS (
                    DELETE FROM telemetry WHERE tenant_id = \(tenantID) AND device_serial = \(serial) AND ts < \(end)
                    RETURNING ts, mode, output, hysteresis, temp_inside, temp_outside, setpoint
                ), finer AS (
                    DELETE FROM telemetry_rollups WHERE tenant_id = \(tenantID) AND device_serial = \(serial)
                        AND resolution < \(resolution) AND ts < \(end)
                    RETURNING ts, samples, last_ts, mode, output, hysteresis, inside_min, inside_sum, inside_max, outside_count,
                        outside_min, outside_sum, outside_max, setpoint_min, setpoint_sum, setpoint_max, heating, cooling
                ), inserted AS (
                    INSERT INTO telemetry_rollups AS r (tenant_id, device_serial, ts, resolution, samples, last_ts, mode, output,
                        hysteresis, inside_min, inside_sum, inside_max, outside_count, outside_min, outside_sum, outside_max,
                        setpoint_min, setpoint_sum, setpoint_max, heating, cooling)
                    SELECT \(tenantID), \(serial), bucket, \(resolution), sum(samples)::int8, max(last_ts),
                        max(mode) FILTER (WHERE newest = 1), max(output) FILTER (WHERE newest = 1),
                        max(hysteresis) FILTER (WHERE newest = 1), min(inside_min), sum(inside_sum), max(inside_max),
                        sum(outside_count)::int8, min(outside_min), sum(outside_sum), max(outside_max), min(setpoint_min),
                        sum(setpoint_sum), max(setpoint_max), sum(heating)::int8, sum(cooling)::int8
                    FROM (
                        SELECT *, row_number() OVER (PARTITION BY bucket ORDER BY last_ts DESC) AS newest FROM (
                            SELECT date_bin(\(interval)::interval, ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
                                1::int8 AS samples, ts AS last_ts, mode, output, hysteresis, temp_inside AS inside_min,
                                temp_inside AS inside_sum, temp_inside AS inside_max,
                                (temp_outside IS NOT NULL)::int::int8 AS outside_count, temp_outside AS outside_min,
                                coalesce(temp_outside, 0) AS outside_sum, temp_outside AS outside_max,
                                setpoint AS setpoint_min, setpoint AS setpoint_sum, setpoint AS setpoint_max,
                                (output = 'HEAT_ON')::int::int8 AS heating, (output = 'COOL_ON')::int::int8 AS cooling
                            FROM raw
                            UNION ALL
                            SELECT date_bin(\(interval)::interval, ts, TIMESTAMPTZ '1970-01-01 00:00:00+00'), samples,
                                last_ts, mode, output, hysteresis, inside_min, inside_sum, inside_max, outside_count,
                                outside_min, outside_sum, outside_max, setpoint_min, setpoint_sum, setpoint_max, heating,
                                cooling
                            FROM finer
                        ) AS source
                    ) AS ranked
                    GROUP BY bucket
                    ON CONFLICT (tenant_id, device_serial, ts, resolution) DO UPDATE SET
                        samples = r.samples + excluded.samples,
                        mode = CASE WHEN excluded.last_ts > r.last_ts THEN excluded.mode ELSE r.mode END,
                        output = CASE WHEN excluded.last_ts > r.last_ts THEN excluded.output ELSE r.output END,
                        hysteresis = CASE WHEN excluded.last_ts > r.last_ts THEN excluded.hysteresis ELSE r.hysteresis END,
                        last_ts = greatest(r.last_ts, excluded.last_ts),
                        inside_min = least(r.inside_min, excluded.inside_min),
                        inside_sum = r.inside_sum + excluded.inside_sum,
                        inside_max = greatest(r.inside_max, excluded.inside_max),
                        outside_count = r.outside_count + excluded.outside_count,
                        outside_min = least(r.outside_min, excluded.outside_min),
                        outside_sum = r.outside_sum + excluded.outside_sum,
                        outside_max = greatest(r.outside_max, excluded.outside_max),
                        setpoint_min = least(r.setpoint_min, excluded.setpoint_min),
                        setpoint_sum = r.setpoint_sum + excluded.setpoint_sum,
                        setpoint_max = greatest(r.setpoint_max, excluded.setpoint_max),
                        heating = r.heating + excluded.heating,
                        cooling = r.cooling + excluded.cooling
                    RETURNING 1
                )
                SELECT (SELECT count(*) FROM raw)::int8, (SELECT count(*) FROM finer)::int8,
                    (SELECT count(*) FROM inserted)::int8
                """, logger: logger)
            for try await (samples, rollups, _) in rows.decode((Int64, Int64, Int64).self) { counts = (samples, rollups) }
            return DownsampleChunk(samples: Int(counts.samples), rollups: Int(counts.rollups), isComplete: end == last)
        }
    }

    public func deleteAlertHistory(tenantID: UUID, before cutoff: Timestamp) async throws -> Int {
        try await count(
            """
            WITH deliveries AS (
                DELETE FROM alert_deliveries WHERE tenant_id = \(tenantID) AND (
                    (alert_id IS NULL AND created_at < \(cutoff))
                    OR alert_id IN (
                        SELECT id FROM alerts
                        WHERE tenant_id = \(tenantID) AND state = 'resolved' AND resolved_at < \(cutoff)))
                RETURNING 1
            ), deleted_alerts AS (
                DELETE FROM alerts WHERE tenant_id = \(tenantID) AND state = 'resolved' AND resolved_at < \(cutoff)
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM deliveries) + (SELECT count(*) FROM deleted_alerts)
            """)
    }

    public func deleteScriptVersions(tenantID: UUID, before cutoff: Timestamp) async throws -> Int {
        try await count(
            """
            WITH deleted AS (
                DELETE FROM script_versions v WHERE v.tenant_id = \(tenantID) AND v.created_at < \(cutoff)
                    AND NOT EXISTS (
                        SELECT 1 FROM scripts s
                        WHERE s.tenant_id = v.tenant_id AND s.id = v.script_id AND s.active_version = v.version)
                    AND v.version < (
                        SELECT max(version) FROM script_versions newest
                        WHERE newest.tenant_id = v.tenant_id AND newest.script_id = v.script_id)
                RETURNING 1)
            SELECT count(*)::int8 FROM deleted
            """)
    }

    public func dropExpiredPartitions(cutoffs: [UUID: Timestamp]) async throws -> Int {
        guard let latestCutoff = cutoffs.values.max() else { return 0 }
        var dropped = 0
        for name in try await telemetryPartitions() {
            // Monthly partitions are named telemetry_YYYY_MM (see `ensure_telemetry_partitions`);
            // the default partition and anything else are never dropped.
            guard let end = Self.monthlyPartitionEnd(name), end <= latestCutoff else { continue }
            do {
                dropped += try await dropPartitionIfExpired(name, end: end, cutoffs: cutoffs)
            } catch {
                // One partition that cannot be dropped now (a lock not granted in time) must not
                // stop the rest of retention; the next run tries again.
                logger.warning(
                    "could not drop an expired telemetry partition",
                    metadata: ["partition": "\(name)", "error": "\(String(reflecting: error))"])
            }
        }
        return dropped
    }

    /// Drops one monthly partition when every tenant with rows in it has a cutoff at or after
    /// its end; returns its rows (the planner's estimate once the table was analyzed: counting a
    /// month exactly would hold the lock for as long as a scan). The partition is locked before its tenants are read, so no
    /// sample can arrive between the check and the drop, and waits for locks end after 500 ms so
    /// ingest never queues long behind the drop.
    private func dropPartitionIfExpired(_ name: String, end: Timestamp, cutoffs: [UUID: Timestamp]) async throws -> Int {
        let logger = logger
        return try await transaction("drop expired partition") { connection in
            try await connection.query("SET LOCAL lock_timeout = '500ms'", logger: logger)
            try await connection.query("LOCK TABLE \(unescaped: name) IN ACCESS EXCLUSIVE MODE", logger: logger)
            // Every tenant with rows in the partition, by a loose index scan (one seek each).
            let tenantsQuery: PostgresQuery = """
                WITH RECURSIVE present AS (
                    (SELECT tenant_id FROM \(unescaped: name) ORDER BY tenant_id LIMIT 1)
                    UNION ALL
                    SELECT (SELECT tenant_id FROM \(unescaped: name) p WHERE p.tenant_id > present.tenant_id
                            ORDER BY tenant_id LIMIT 1)
                    FROM present WHERE present.tenant_id IS NOT NULL)
                SELECT tenant_id FROM present WHERE tenant_id IS NOT NULL
                """
            for try await tenant in try await connection.query(tenantsQuery, logger: logger).decode(UUID.self) {
                guard let cutoff = cutoffs[tenant], end <= cutoff else { return 0 }
            }
            var rows = 0
            for try await estimate in try await connection.query(
                """
                SELECT CASE WHEN reltuples >= 0 THEN reltuples::int8 ELSE (SELECT count(*) FROM \(unescaped: name)) END
                FROM pg_class WHERE oid = \(name)::regclass
                """, logger: logger
            ).decode(Int64.self) {
                rows = Int(estimate)
            }
            try await connection.query("DROP TABLE \(unescaped: name)", logger: logger)
            logger.info("dropped an expired telemetry partition", metadata: ["partition": "\(name)", "rows": "\(rows)"])
            return rows
        }
    }

    /// The end of a monthly partition's range (the next month's first instant, UTC), from its
    /// name; nil for a name that is not `telemetry_YYYY_MM`.
    static func monthlyPartitionEnd(_ name: String) -> Timestamp? {
        let parts = name.split(separator: "_")
        guard parts.count == 3, parts[0] == "telemetry", parts[1].count == 4, parts[2].count == 2,
            let year = Int(parts[1]), let month = Int(parts[2]), (1...12).contains(month)
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let next = month == 12 ? (year + 1, 1) : (year, month + 1)
        guard let date = calendar.date(from: DateComponents(year: next.0, month: next.1, day: 1)) else { return nil }
        return Timestamp(date)
    }

    /// Runs a query whose one row is a count.
    private func count(_ query: PostgresQuery) async throws -> Int {
        let counts: [Int64] = try await rows(query, as: Int64.self)
        return Int(counts.first ?? 0)
    }
}
