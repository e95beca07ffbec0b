import Foundation
import GRDB
import PlatformCore

extension SQLiteStore: TelemetryStore {
    public func insert(_ records: [TelemetryRecord], receivedAt: Timestamp) async throws -> [Bool] {
        guard !records.isEmpty else { return [] }
        return try await pool.write { db in
            let insert = try db.cachedStatement(
                sql: """
                    INSERT INTO telemetry (tenant_id, device_serial, ts, mode, temp_inside, temp_outside, setpoint,
                        hysteresis, output)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                    """)
            // New samples of tenants with an enabled alert rule join the alert queue (a batch per
            // tenant) in the same transaction, so evaluation can never miss a committed sample.
            let queue = try db.cachedStatement(sql: "INSERT INTO alert_batches (tenant_id, sample_count, samples) VALUES (?, ?, ?)")
            let hasRules = try db.cachedStatement(
                sql: "SELECT EXISTS (SELECT 1 FROM alert_rules WHERE tenant_id = ? AND enabled)")
            var evaluatedTenants: [String: Bool] = [:]
            var queued: [String: [TelemetrySample]] = [:]
            var inserted: [Bool] = []
            inserted.reserveCapacity(records.count)
            var seenDevices: Set<DeviceKey> = []
            for record in records {
                let sample = record.sample
                let tenant = record.tenantID.databaseText
                try insert.execute(arguments: [
                    tenant, sample.deviceSerial, sample.timestamp.microseconds, sample.mode.rawValue,
                    sample.tempInside, sample.tempOutside, sample.setpoint, sample.hysteresis, sample.output.rawValue,
                ])
                let isNew = db.changesCount > 0
                inserted.append(isNew)
                if isNew {
                    let evaluated = try evaluatedTenants[tenant] ?? {
                        let answer = try Bool.fetchOne(hasRules, arguments: [tenant]) ?? false
                        evaluatedTenants[tenant] = answer
                        return answer
                    }()
                    if evaluated { queued[tenant, default: []].append(sample) }
                }
                seenDevices.insert(DeviceKey(tenant: tenant, serial: sample.deviceSerial))
            }
            for (tenant, samples) in queued {
                try queue.execute(arguments: [tenant, samples.count, AlertQueueText.encode(samples)])
            }
            // Only when `last_seen` moves by a second or more (see `TelemetryStore.insert`).
            let touch = try db.cachedStatement(
                sql: """
                    UPDATE devices SET last_seen = ?1
                    WHERE tenant_id = ?2 AND serial = ?3 AND (last_seen IS NULL OR last_seen <= ?4)
                    """)
            let unchangedAfter = receivedAt.adding(seconds: -Self.lastSeenResolutionSeconds).microseconds
            for device in seenDevices {
                try touch.execute(arguments: [receivedAt.microseconds, device.tenant, device.serial, unchangedAfter])
            }
            return inserted
        }
    }

    public func samples(_ range: TelemetryRange) async throws -> [TelemetrySample] {
        try await pool.read { db in
            let lower = max(range.from.microseconds, (range.after?.microseconds ?? Int64.min) &+ 1)
            let arguments: StatementArguments = [
                range.tenantID.databaseText, range.serial, lower, range.to.microseconds, range.limit,
            ]
            let raw = try Row.fetchAll(
                db,
                sql: """
                    SELECT ts, mode, temp_inside, temp_outside, setpoint, hysteresis, output FROM telemetry
                    WHERE tenant_id = ? AND device_serial = ? AND ts >= ? AND ts < ?
                    ORDER BY ts LIMIT ?
                    """,
                arguments: arguments
            ).map { Self.sample(from: $0, serial: range.serial) }
            guard range.includesRollups else { return raw }
            let rollups = try Row.fetchAll(
                db,
                sql: """
                    SELECT \(Self.rollupColumns) FROM telemetry_rollups
                    WHERE tenant_id = ? AND device_serial = ? AND ts >= ? AND ts < ?
                    ORDER BY ts, resolution LIMIT ?
                    """,
                arguments: arguments
            ).map { row in
                Self.rollupSums(row).sample(
                    serial: range.serial, resolutionSeconds: row["resolution"], mode: row["mode"],
                    hysteresis: row["hysteresis"], output: row["output"])
            }
            return RollupMerge.samples(raw: raw, rollups: rollups, limit: range.limit)
        }
    }

    public func buckets(_ range: TelemetryRange, bucketSeconds: Int) async throws -> [SampleBucket] {
        let width = Int64(bucketSeconds) * 1_000_000
        return try await pool.read { db in
            let lower = max(range.from.microseconds, range.after.map { $0.microseconds + width } ?? Int64.min)
            let arguments: StatementArguments = [
                width, range.tenantID.databaseText, range.serial, lower, range.to.microseconds, range.limit,
            ]
            let raw = try Row.fetchAll(
                db,
                sql: """
                    SELECT (ts - (((ts % ?1) + ?1) % ?1)) AS bucket, count(*) AS samples,
                        min(temp_inside) AS inside_min, sum(temp_inside) AS inside_sum, max(temp_inside) AS inside_max,
                        count(temp_outside) AS outside_count, min(temp_outside) AS outside_min,
                        total(temp_outside) AS outside_sum, max(temp_outside) AS outside_max,
                        min(setpoint) AS setpoint_min, sum(setpoint) AS setpoint_sum, max(setpoint) AS setpoint_max,
                        sum(output = 'HEAT_ON') AS heating, sum(output = 'COOL_ON') AS cooling
                    FROM telemetry
                    WHERE tenant_id = ?2 AND device_serial = ?3 AND ts >= ?4 AND ts < ?5
                    GROUP BY bucket ORDER BY bucket LIMIT ?6
                    """,
                arguments: arguments
            ).map { Self.rollupSums($0, start: "bucket") }
            let rollups = try Row.fetchAll(
                db,
                sql: """
                    SELECT (ts - (((ts % ?1) + ?1) % ?1)) AS bucket, sum(samples) AS samples,
                        min(inside_min) AS inside_min, sum(inside_sum) AS inside_sum, max(inside_max) AS inside_max,
                        sum(outside_count) AS outside_count, min(outside_min) AS outside_min,
                        total(outside_sum) AS outside_sum, max(outside_max) AS outside_max,
                        min(setpoint_min) AS setpoint_min, sum(setpoint_sum) AS setpoint_sum,
                        max(setpoint_max) AS setpoint_max, sum(heating) AS heating, sum(cooling) AS cooling
                    FROM telemetry_rollups
                    WHERE tenant_id = ?2 AND device_serial = ?3 AND ts >= ?4 AND ts < ?5
                    GROUP BY bucket ORDER BY bucket LIMIT ?6
                    """,
                arguments: arguments
            ).map { Self.rollupSums($0, start: "bucket") }
            return RollupMerge.buckets(raw: raw, rollups: rollups, limit: range.limit)
        }
    }

    public func hasRollups(tenantID: UUID, serial: String?, from: Timestamp, to: Timestamp) async throws -> Bool {
        try await pool.read { db in
            if let serial {
                return try Bool.fetchOne(
                    db,
                    sql: """
                        SELECT EXISTS (SELECT 1 FROM telemetry_rollups
                            WHERE tenant_id = ? AND device_serial = ? AND ts >= ? AND ts < ?)
                        """,
                    arguments: [tenantID.databaseText, serial, from.microseconds, to.microseconds]) ?? false
            }
            return try Bool.fetchOne(
                db,
                sql: "SELECT EXISTS (SELECT 1 FROM telemetry_rollups WHERE tenant_id = ? AND ts >= ? AND ts < ?)",
                arguments: [tenantID.databaseText, from.microseconds, to.microseconds]) ?? false
        }
    }

    public func latestSamples(tenantID: UUID) async throws -> [String: TelemetrySample] {
        try await pool.read { db in
            var latest: [String: TelemetrySample] = [:]
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT t.ts, t.mode, t.temp_inside, t.temp_outside, t.setpoint, t.hysteresis, t.output, d.serial
                    FROM devices d JOIN telemetry t ON t.tenant_id = d.tenant_id AND t.device_serial = d.serial
                        AND t.ts = (
                            SELECT max(ts) FROM telemetry WHERE tenant_id = d.tenant_id AND device_serial = d.serial)
                    WHERE d.tenant_id = ?
                    """,
                arguments: [tenantID.databaseText])
            while let row = try rows.next() {
                let serial: String = row[7]
                latest[serial] = Self.sample(from: row, serial: serial)
            }
            return latest
        }
    }

    public func recentSamples(tenantID: UUID, serial: String, limit: Int) async throws -> [TelemetrySample] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT ts, mode, temp_inside, temp_outside, setpoint, hysteresis, output FROM telemetry
                    WHERE tenant_id = ? AND device_serial = ? ORDER BY ts DESC LIMIT ?
                    """,
                arguments: [tenantID.databaseText, serial, limit]
            ).reversed().map { Self.sample(from: $0, serial: serial) }
        }
    }
}

extension SQLiteStore {
    /// The columns of `telemetry_rollups` that `rollupSums` and a rollup's sample read.
    static let rollupColumns = """
        ts, resolution, samples, mode, output, hysteresis, inside_min, inside_sum, inside_max, outside_count,
        outside_min, outside_sum, outside_max, setpoint_min, setpoint_sum, setpoint_max, heating, cooling
        """

    /// The sums of a rollup row, or of a bucket selected with the same column names.
    static func rollupSums(_ row: Row, start: String = "ts") -> BucketSums {
        BucketSums(
            start: Timestamp(microseconds: row[start]), count: row["samples"], insideMin: row["inside_min"],
            insideSum: row["inside_sum"], insideMax: row["inside_max"], outsideCount: row["outside_count"],
            outsideMin: row["outside_min"], outsideSum: row["outside_sum"], outsideMax: row["outside_max"],
            setpointMin: row["setpoint_min"], setpointSum: row["setpoint_sum"], setpointMax: row["setpoint_max"],
            heating: row["heating"], cooling: row["cooling"])
    }

    /// Maps a row of `ts, mode, temp_inside, temp_outside, setpoint, hysteresis, output`.
    fileprivate static func sample(from row: Row, serial: String) -> TelemetrySample {
        TelemetrySample(
            deviceSerial: serial, timestamp: Timestamp(microseconds: row[0]),
            mode: ThermostatMode(rawValue: row[1]) ?? .off, tempInside: row[2], tempOutside: row[3],
            setpoint: row[4], hysteresis: row[5], output: ThermostatOutput(rawValue: row[6]) ?? .off)
    }
}

private struct DeviceKey: Hashable {
    var tenant: String
    var serial: String
}
