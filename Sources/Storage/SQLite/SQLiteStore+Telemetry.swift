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
            // New samples of tenants with an enabled alert rule join the alert queue in the
            // same transaction, so evaluation can never miss a committed sample.
            let queue = try db.cachedStatement(
                sql: "INSERT INTO alert_queue (tenant_id, device_serial, ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            let hasRules = try db.cachedStatement(
                sql: "SELECT EXISTS (SELECT 1 FROM alert_rules WHERE tenant_id = ? AND enabled)")
            var evaluatedTenants: [String: Bool] = [:]
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
                    if evaluated {
                        try queue.execute(arguments: [tenant, sample.deviceSerial, sample.timestamp.microseconds])
                    }
                }
                seenDevices.insert(DeviceKey(tenant: tenant, serial: sample.deviceSerial))
            }
            let touch = try db.cachedStatement(
                sql: "UPDATE devices SET last_seen = ? WHERE tenant_id = ? AND serial = ?")
            for device in seenDevices {
                try touch.execute(arguments: [receivedAt.microseconds, device.tenant, device.serial])
            }
            return inserted
        }
    }

    public func samples(_ range: TelemetryRange) async throws -> [TelemetrySample] {
        try await pool.read { db in
            let lower = max(range.from.microseconds, (range.after?.microseconds ?? Int64.min) &+ 1)
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT ts, mode, temp_inside, temp_outside, setpoint, hysteresis, output FROM telemetry
                    WHERE tenant_id = ? AND device_serial = ? AND ts >= ? AND ts < ?
                    ORDER BY ts LIMIT ?
                    """,
                arguments: [range.tenantID.databaseText, range.serial, lower, range.to.microseconds, range.limit]
            ).map { Self.sample(from: $0, serial: range.serial) }
        }
    }

    public func buckets(_ range: TelemetryRange, bucketSeconds: Int) async throws -> [SampleBucket] {
        let width = Int64(bucketSeconds) * 1_000_000
        return try await pool.read { db in
            let lower = max(range.from.microseconds, range.after.map { $0.microseconds + width } ?? Int64.min)
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT (ts - (((ts % ?1) + ?1) % ?1)) AS bucket, count(*),
                        min(temp_inside), avg(temp_inside), max(temp_inside),
                        min(temp_outside), avg(temp_outside), max(temp_outside),
                        min(setpoint), avg(setpoint), max(setpoint),
                        avg(output = 'HEAT_ON'), avg(output = 'COOL_ON')
                    FROM telemetry
                    WHERE tenant_id = ?2 AND device_serial = ?3 AND ts >= ?4 AND ts < ?5
                    GROUP BY bucket ORDER BY bucket LIMIT ?6
                    """,
                arguments: [width, range.tenantID.databaseText, range.serial, lower, range.to.microseconds, range.limit]
            ).map { row in
                let outsideAverage: Double? = row[6]
                return SampleBucket(
                    start: Timestamp(microseconds: row[0]), count: row[1],
                    tempInside: Aggregate(min: row[2], avg: row[3], max: row[4]),
                    tempOutside: outsideAverage.map { Aggregate(min: row[5], avg: $0, max: row[7]) },
                    setpoint: Aggregate(min: row[8], avg: row[9], max: row[10]),
                    heatingShare: row[11], coolingShare: row[12])
            }
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
