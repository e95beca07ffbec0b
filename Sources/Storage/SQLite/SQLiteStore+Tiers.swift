import Foundation
import GRDB
import PlatformCore

extension SQLiteStore: TierStore {
    public func allTenants() async throws -> [Tenant] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, slug, name, tier, created_at FROM tenants ORDER BY created_at").map { row in
                Tenant(
                    id: row.uuid("id"), slug: row["slug"], name: row["name"], tier: row["tier"],
                    createdAt: row.timestamp("created_at"))
            }
        }
    }

    public func disabledTenants() async throws -> Set<UUID> {
        try await pool.read { db in
            Set(try Row.fetchAll(db, sql: "SELECT tenant_id FROM disabled_tenants").map { $0.uuid("tenant_id") })
        }
    }

    public func setTenantDisabled(tenantID: UUID, _ disabled: Bool, at time: Timestamp) async throws {
        try await pool.write { db in
            if disabled {
                try db.execute(
                    sql: "INSERT INTO disabled_tenants (tenant_id, disabled_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    arguments: [tenantID.databaseText, time.microseconds])
            } else {
                try db.execute(sql: "DELETE FROM disabled_tenants WHERE tenant_id = ?", arguments: [tenantID.databaseText])
            }
        }
    }

    public func sampleCounts() async throws -> [UUID: Int] {
        try await pool.read { db in
            var counts: [UUID: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT tenant_id, count(*) AS samples FROM telemetry GROUP BY tenant_id") {
                counts[row.uuid("tenant_id")] = row["samples"]
            }
            return counts
        }
    }

    public func deviceCount(tenantID: UUID) async throws -> Int {
        try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM devices WHERE tenant_id = ?", arguments: [tenantID.databaseText])
                ?? 0
        }
    }

    public func deleteSamples(tenantID: UUID, serial: String, before cutoff: Timestamp, limit: Int) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql: """
                    DELETE FROM telemetry WHERE (tenant_id, device_serial, ts) IN (
                        SELECT tenant_id, device_serial, ts FROM telemetry
                        WHERE tenant_id = ? AND device_serial = ? AND ts < ? ORDER BY ts LIMIT ?)
                    """,
                arguments: [tenantID.databaseText, serial, cutoff.microseconds, limit])
            return db.changesCount
        }
    }

    public func deleteOldestSamples(tenantID: UUID, count: Int) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql: """
                    DELETE FROM telemetry WHERE (tenant_id, device_serial, ts) IN (
                        SELECT tenant_id, device_serial, ts FROM telemetry WHERE tenant_id = ? ORDER BY ts LIMIT ?)
                    """,
                arguments: [tenantID.databaseText, count])
            return db.changesCount
        }
    }

    public func contractPolicy(tenantID: UUID) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(
                db, sql: "SELECT source FROM contract_policies WHERE tenant_id = ?", arguments: [tenantID.databaseText])
        }
    }

    public func setContractPolicy(tenantID: UUID, source: String?, at time: Timestamp) async throws {
        try await pool.write { db in
            if let source {
                try db.execute(
                    sql: """
                        INSERT INTO contract_policies (tenant_id, source, assigned_at) VALUES (?, ?, ?)
                        ON CONFLICT (tenant_id) DO UPDATE SET source = excluded.source, assigned_at = excluded.assigned_at
                        """,
                    arguments: [tenantID.databaseText, source, time.microseconds])
            } else {
                try db.execute(sql: "DELETE FROM contract_policies WHERE tenant_id = ?", arguments: [tenantID.databaseText])
            }
        }
    }

    public func deleteRollups(tenantID: UUID, serial: String, before cutoff: Timestamp, limit: Int) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql: """
                    DELETE FROM telemetry_rollups WHERE (tenant_id, device_serial, ts, resolution) IN (
                        SELECT tenant_id, device_serial, ts, resolution FROM telemetry_rollups
                        WHERE tenant_id = ? AND device_serial = ? AND ts < ? ORDER BY ts LIMIT ?)
                    """,
                arguments: [tenantID.databaseText, serial, cutoff.microseconds, limit])
            return db.changesCount
        }
    }

    public func downsample(tenantID: UUID, serial: String, resolutionSeconds: Int, before cutoff: Timestamp, limit: Int)
        async throws -> DownsampleChunk
    {
        let width = Int64(resolutionSeconds) * 1_000_000
        let last = cutoff.flooring(toSeconds: resolutionSeconds).microseconds
        let offset = max(limit, 1) - 1
        let tenant = tenantID.databaseText
        // Most runs find nothing to do: ask a reader before taking the single writer.
        let pending = try await pool.read { db in
            try Bool.fetchOne(
                db,
                sql: """
                    SELECT EXISTS (SELECT 1 FROM telemetry WHERE tenant_id = ?1 AND device_serial = ?2 AND ts < ?3)
                        OR EXISTS (SELECT 1 FROM telemetry_rollups
                            WHERE tenant_id = ?1 AND device_serial = ?2 AND ts < ?3 AND resolution < ?4)
                    """,
                arguments: [tenant, serial, last, resolutionSeconds]) ?? false
        }
        guard pending else { return DownsampleChunk(samples: 0, rollups: 0, isComplete: true) }
        return try await pool.write { db in
            // The chunk ends after the bucket of the `limit`-th raw sample or finer rollup, so
            // it holds whole buckets and at most about `limit` of either.
            var end = last
            let sampleEnd = try Int64.fetchOne(
                db, sql: "SELECT ts FROM telemetry WHERE tenant_id = ? AND device_serial = ? AND ts < ? ORDER BY ts LIMIT 1 OFFSET ?",
                arguments: [tenant, serial, end, offset])
            let rollupEnd = try Int64.fetchOne(
                db,
                sql: """
                    SELECT ts FROM telemetry_rollups WHERE tenant_id = ? AND device_serial = ? AND ts < ? AND resolution < ?
                    ORDER BY ts LIMIT 1 OFFSET ?
                    """,
                arguments: [tenant, serial, end, resolutionSeconds, offset])
            for time in [sampleEnd, rollupEnd].compactMap({ $0 }) {
                end = min(end, Timestamp(microseconds: time).flooring(toSeconds: resolutionSeconds).microseconds + width)
            }
            try db.execute(
                sql: """
                    INSERT INTO telemetry_rollups (tenant_id, device_serial, ts, resolution, samples, last_ts, mode, output,
                        hysteresis, inside_min, inside_sum, inside_max, outside_count, outside_min, outside_sum, outside_max,
                        setpoint_min, setpoint_sum, setpoint_max, heating, cooling)
                    SELECT ?1, ?2, bucket, ?3, sum(samples), max(last_ts), max(CASE WHEN newest = 1 THEN mode END),
                        max(CASE WHEN newest = 1 THEN output END), max(CASE WHEN newest = 1 THEN hysteresis END),
                        min(inside_min), sum(inside_sum), max(inside_max), sum(outside_count), min(outside_min),
                        total(outside_sum), max(outside_max), min(setpoint_min), sum(setpoint_sum), max(setpoint_max),
                        sum(heating), sum(cooling)
                    FROM (
                        SELECT *, row_number() OVER (PARTITION BY bucket ORDER BY last_ts DESC) AS newest FROM (
                            SELECT (ts - (((ts % ?4) + ?4) % ?4)) AS bucket, 1 AS samples, ts AS last_ts, mode, output,
                                hysteresis, temp_inside AS inside_min, temp_inside AS inside_sum, temp_inside AS inside_max,
                                (temp_outside IS NOT NULL) AS outside_count, temp_outside AS outside_min,
                                coalesce(temp_outside, 0) AS outside_sum, temp_outside AS outside_max,
                                setpoint AS setpoint_min, setpoint AS setpoint_sum, setpoint AS setpoint_max,
                                (output = 'HEAT_ON') AS heating, (output = 'COOL_ON') AS cooling
                            FROM telemetry WHERE tenant_id = ?1 AND device_serial = ?2 AND ts < ?5
                            UNION ALL
                            SELECT (ts - (((ts % ?4) + ?4) % ?4)), samples, last_ts, mode, output, hysteresis, inside_min,
                                inside_sum, inside_max, outside_count, outside_min, outside_sum, outside_max, setpoint_min,
                                setpoint_sum, setpoint_max, heating, cooling
                            FROM telemetry_rollups
                            WHERE tenant_id = ?1 AND device_serial = ?2 AND resolution < ?3 AND ts < ?5))
                    WHERE true GROUP BY bucket
                    ON CONFLICT (tenant_id, device_serial, ts, resolution) DO UPDATE SET
                        samples = samples + excluded.samples,
                        mode = CASE WHEN excluded.last_ts > last_ts THEN excluded.mode ELSE mode END,
                        output = CASE WHEN excluded.last_ts > last_ts THEN excluded.output ELSE output END,
                        hysteresis = CASE WHEN excluded.last_ts > last_ts THEN excluded.hysteresis ELSE hysteresis END,
                        last_ts = max(last_ts, excluded.last_ts),
                        inside_min = min(inside_min, excluded.inside_min),
                        inside_sum = inside_sum + excluded.inside_sum,
                        inside_max = max(inside_max, excluded.inside_max),
                        outside_count = outside_count + excluded.outside_count,
                        outside_min = coalesce(min(outside_min, excluded.outside_min), outside_min, excluded.outside_min),
                        outside_sum = outside_sum + excluded.outside_sum,
                        outside_max = coalesce(max(outside_max, excluded.outside_max), outside_max, excluded.outside_max),
                        setpoint_min = min(setpoint_min, excluded.setpoint_min),
                        setpoint_sum = setpoint_sum + excluded.setpoint_sum,
                        setpoint_max = max(setpoint_max, excluded.setpoint_max),
                        heating = heating + excluded.heating,
                        cooling = cooling + excluded.cooling
                    """,
                arguments: [tenant, serial, resolutionSeconds, width, end])
            try db.execute(
                sql: "DELETE FROM telemetry_rollups WHERE tenant_id = ? AND device_serial = ? AND resolution < ? AND ts < ?",
                arguments: [tenant, serial, resolutionSeconds, end])
            let rollups = db.changesCount
            try db.execute(
                sql: "DELETE FROM telemetry WHERE tenant_id = ? AND device_serial = ? AND ts < ?",
                arguments: [tenant, serial, end])
            return DownsampleChunk(samples: db.changesCount, rollups: rollups, isComplete: end == last)
        }
    }

    public func deleteAlertHistory(tenantID: UUID, before cutoff: Timestamp) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql: """
                    DELETE FROM alert_deliveries WHERE tenant_id = ?1 AND (
                        (alert_id IS NULL AND created_at < ?2)
                        OR alert_id IN (SELECT id FROM alerts WHERE tenant_id = ?1 AND state = 'resolved' AND resolved_at < ?2))
                    """,
                arguments: [tenantID.databaseText, cutoff.microseconds])
            let deliveries = db.changesCount
            try db.execute(
                sql: "DELETE FROM alerts WHERE tenant_id = ? AND state = 'resolved' AND resolved_at < ?",
                arguments: [tenantID.databaseText, cutoff.microseconds])
            return deliveries + db.changesCount
        }
    }

    public func deleteScriptVersions(tenantID: UUID, before cutoff: Timestamp) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql: """
                    DELETE FROM script_versions WHERE tenant_id = ?1 AND created_at < ?2
                        AND (script_id, version) NOT IN (
                            SELECT id, active_version FROM scripts WHERE tenant_id = ?1 AND active_version IS NOT NULL)
                        AND version < (
                            SELECT max(version) FROM script_versions newest
                            WHERE newest.tenant_id = ?1 AND newest.script_id = script_versions.script_id)
                    """,
                arguments: [tenantID.databaseText, cutoff.microseconds])
            return db.changesCount
        }
    }

    public func dropExpiredPartitions(cutoffs: [UUID: Timestamp]) async throws -> Int { 0 }
}
