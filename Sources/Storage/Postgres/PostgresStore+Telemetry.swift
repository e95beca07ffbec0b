import Foundation
import Logging
import PlatformCore
import PostgresNIO

extension PostgresStore: TelemetryStore {
    public func insert(_ records: [TelemetryRecord], receivedAt: Timestamp) async throws -> [Bool] {
        guard !records.isEmpty else { return [] }
        // Later copies of a key in the same batch are duplicates of the first; the statement
        // below sees each key once, so RETURNING tells exactly which keys were new.
        var firstIndex: [SampleKey: Int] = [:]
        var tenants: [UUID] = [], serials: [String] = [], times: [Timestamp] = [], modes: [String] = []
        var inside: [Double] = [], outside: [Double] = [], setpoints: [Double] = [], hysteresis: [Double] = []
        var outputs: [String] = []
        for (index, record) in records.enumerated() {
            let sample = record.sample
            let key = SampleKey(tenant: record.tenantID, serial: sample.deviceSerial, time: sample.timestamp)
            guard firstIndex[key] == nil else { continue }
            firstIndex[key] = index
            tenants.append(record.tenantID)
            serials.append(sample.deviceSerial)
            times.append(sample.timestamp)
            modes.append(sample.mode.rawValue)
            inside.append(sample.tempInside)
            outside.append(sample.tempOutside ?? .nan)
            setpoints.append(sample.setpoint)
            hysteresis.append(sample.hysteresis)
            outputs.append(sample.output.rawValue)
        }
        let touchedDevices = Set(zip(tenants, serials).map { TenantDevice(tenant: $0.0, serial: $0.1) })
            .sorted { ($0.tenant.uuidString, $0.serial) < ($1.tenant.uuidString, $1.serial) }
        // Concurrent group commits touch overlapping devices; a deadlock between them is
        // retried (the whole transaction rolled back first, so nothing is half-applied).
        for attempt in 1...Self.deadlockRetries {
            do {
                return try await insertOnce(
                    recordCount: records.count, firstIndex: firstIndex, columns: (tenants, serials, times, modes, inside, outside, setpoints, hysteresis, outputs),
                    touchedDevices: touchedDevices, receivedAt: receivedAt)
            } catch let error as PSQLError where ["40P01", "40001"].contains(error.serverInfo?[.sqlState]) && attempt < Self.deadlockRetries {
                logger.notice("telemetry commit retried after a deadlock", metadata: ["attempt": "\(attempt)"])
            }
        }
        preconditionFailure("the last attempt returns or throws")
    }

    static var deadlockRetries: Int { 3 }

    private typealias Columns = (
        [UUID], [String], [Timestamp], [String], [Double], [Double], [Double], [Double], [String]
    )

    private func insertOnce(
        recordCount: Int, firstIndex: [SampleKey: Int], columns: Columns, touchedDevices: [TenantDevice], receivedAt: Timestamp
    ) async throws -> [Bool] {
        let (tenants, serials, times, modes, inside, outside, setpoints, hysteresis, outputs) = columns
        let logger = logger
        return try await transaction("telemetry commit of \(recordCount) samples") { connection in
            var inserted = [Bool](repeating: false, count: recordCount)
            // New samples of tenants with an enabled alert rule join the alert queue (a batch per
            // tenant) in the same transaction, so evaluation can never miss a committed sample.
            let rows = try await connection.query(
                """
                WITH stored AS (
                    INSERT INTO telemetry (tenant_id, device_serial, ts, mode, temp_inside, temp_outside, setpoint,
                        hysteresis, output)
                    SELECT t, s, ts, m, ti, NULLIF(tout, 'NaN'::float8), sp, h, o
                    FROM unnest(\(tenants), \(serials), \(times), \(modes), \(inside), \(outside), \(setpoints),
                        \(hysteresis), \(outputs)) AS u(t, s, ts, m, ti, tout, sp, h, o)
                    ON CONFLICT DO NOTHING
                    RETURNING *
                ), queued AS (
                    INSERT INTO alert_batches (tenant_id, sample_count, samples)
                    SELECT stored.tenant_id, count(*), \(unescaped: Self.queueLines(of: "stored")) FROM stored
                    WHERE EXISTS (SELECT 1 FROM alert_rules r WHERE r.tenant_id = stored.tenant_id AND r.enabled)
                    GROUP BY stored.tenant_id
                )
                SELECT tenant_id, device_serial, ts FROM stored
                """, logger: logger)
            for try await (tenant, serial, time) in rows.decode((UUID, String, Timestamp).self) {
                if let index = firstIndex[SampleKey(tenant: tenant, serial: serial, time: time)] {
                    inserted[index] = true
                }
            }
            // Lock the device rows in one global order before updating them, so two commits
            // never wait on each other's rows in opposite orders. Only rows whose `last_seen`
            // moves by a second or more are locked and written (see `TelemetryStore.insert`).
            try await connection.query(
                """
                WITH locked AS (
                    SELECT d.tenant_id, d.serial FROM devices d
                    JOIN unnest(\(touchedDevices.map(\.tenant)), \(touchedDevices.map(\.serial))) AS u(t, s)
                        ON d.tenant_id = u.t AND d.serial = u.s
                    WHERE d.last_seen IS NULL OR d.last_seen <= \(receivedAt.adding(seconds: -Self.lastSeenResolutionSeconds))
                    ORDER BY d.tenant_id, d.serial
                    FOR UPDATE OF d
                )
                UPDATE devices d SET last_seen = \(receivedAt)
                FROM locked WHERE d.tenant_id = locked.tenant_id AND d.serial = locked.serial
                """, logger: logger)
            return inserted
        }
    }

    /// SQL for an aggregate of the rows `alias` as `AlertQueueText` lines, in time order.
    /// `float8`'s text is the shortest that reads back as the same number.
    static func queueLines(of alias: String) -> String {
        """
        string_agg(concat_ws(E'\\t', \(alias).device_serial, (extract(epoch FROM \(alias).ts) * 1000000)::int8, \(alias).mode,
            \(alias).temp_inside, coalesce(\(alias).temp_outside::text, ''), \(alias).setpoint, \(alias).hysteresis,
            \(alias).output), E'\\n' ORDER BY \(alias).ts, \(alias).device_serial)
        """
    }

    private typealias SampleRow = (Timestamp, String, Double, Double?, Double, Double, String)

    private static func sample(_ row: SampleRow, serial: String) -> TelemetrySample {
        TelemetrySample(
            deviceSerial: serial, timestamp: row.0, mode: ThermostatMode(rawValue: row.1) ?? .off, tempInside: row.2,
            tempOutside: row.3, setpoint: row.4, hysteresis: row.5, output: ThermostatOutput(rawValue: row.6) ?? .off)
    }

    public func samples(_ range: TelemetryRange) async throws -> [TelemetrySample] {
        let lower = max(range.from, range.after.map { Timestamp(microseconds: $0.microseconds + 1) } ?? range.from)
        let rawQuery: PostgresQuery = """
            SELECT coalesce(array_agg(micros), '{}'), coalesce(array_agg(mode), '{}'), coalesce(array_agg(inside), '{}'),
                coalesce(array_agg(outside), '{}'), coalesce(array_agg(setpoint), '{}'),
                coalesce(array_agg(hysteresis), '{}'), coalesce(array_agg(output), '{}')
            FROM (
                SELECT (extract(epoch FROM ts) * 1000000)::int8 AS micros,
                    (CASE mode WHEN 'HEAT' THEN 1 WHEN 'COOL' THEN 2 WHEN 'AUTO' THEN 3 ELSE 0 END)::int2 AS mode,
                    temp_inside AS inside, coalesce(temp_outside, 'NaN'::float8) AS outside, setpoint, hysteresis,
                    (CASE output WHEN 'HEAT_ON' THEN 1 WHEN 'COOL_ON' THEN 2 ELSE 0 END)::int2 AS output
                FROM telemetry
                WHERE tenant_id = \(range.tenantID) AND device_serial = \(range.serial)
                    AND ts >= \(lower) AND ts < \(range.to)
                ORDER BY ts LIMIT \(range.limit)
            ) AS page
            """
        let logger = logger
        guard range.includesRollups else {
            return try await withConnection(Self.describe(rawQuery)) { connection in
                try await Self.readSamples(rawQuery, serial: range.serial, on: connection, logger: logger)
            }
        }
        let rollupQuery: PostgresQuery = """
            SELECT ts, resolution, samples, mode, output, hysteresis, inside_min, inside_sum, inside_max, outside_count,
                outside_min, outside_sum, outside_max, setpoint_min, setpoint_sum, setpoint_max, heating, cooling
            FROM telemetry_rollups
            WHERE tenant_id = \(range.tenantID) AND device_serial = \(range.serial)
                AND ts >= \(lower) AND ts < \(range.to)
            ORDER BY ts, resolution LIMIT \(range.limit)
            """
        return try await inSnapshot("read samples and rollups") { connection in
            let raw = try await Self.readSamples(rawQuery, serial: range.serial, on: connection, logger: logger)
            var rollups: [TelemetrySample] = []
            for try await row in try await connection.query(rollupQuery, logger: logger).decode(RollupRow.self) {
                rollups.append(Self.rollupSample(row, serial: range.serial))
            }
            return RollupMerge.samples(raw: raw, rollups: rollups, limit: range.limit)
        }
    }

    public func buckets(_ range: TelemetryRange, bucketSeconds: Int) async throws -> [SampleBucket] {
        let width = Int64(bucketSeconds) * 1_000_000
        let lower = max(range.from, range.after.map { Timestamp(microseconds: $0.microseconds + width) } ?? range.from)
        let interval = "\(bucketSeconds) seconds"
        let rawQuery: PostgresQuery = """
            SELECT date_bin(\(interval)::interval, ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket, count(*)::int8,
                min(temp_inside), sum(temp_inside), max(temp_inside),
                count(temp_outside)::int8, min(temp_outside), coalesce(sum(temp_outside), 0), max(temp_outside),
                min(setpoint), sum(setpoint), max(setpoint),
                count(*) FILTER (WHERE output = 'HEAT_ON')::int8, count(*) FILTER (WHERE output = 'COOL_ON')::int8
            FROM telemetry
            WHERE tenant_id = \(range.tenantID) AND device_serial = \(range.serial)
                AND ts >= \(lower) AND ts < \(range.to)
            GROUP BY bucket ORDER BY bucket LIMIT \(range.limit)
            """
        let rollupQuery: PostgresQuery = """
            SELECT date_bin(\(interval)::interval, ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket, sum(samples)::int8,
                min(inside_min), sum(inside_sum), max(inside_max),
                sum(outside_count)::int8, min(outside_min), sum(outside_sum), max(outside_max),
                min(setpoint_min), sum(setpoint_sum), max(setpoint_max), sum(heating)::int8, sum(cooling)::int8
            FROM telemetry_rollups
            WHERE tenant_id = \(range.tenantID) AND device_serial = \(range.serial)
                AND ts >= \(lower) AND ts < \(range.to)
            GROUP BY bucket ORDER BY bucket LIMIT \(range.limit)
            """
        let logger = logger
        return try await inSnapshot("read buckets") { connection in
            var sides: [[BucketSums]] = []
            for query in [rawQuery, rollupQuery] {
                var sums: [BucketSums] = []
                for try await row in try await connection.query(query, logger: logger).decode(BucketRow.self) {
                    sums.append(Self.rollupSums(row))
                }
                sides.append(sums)
            }
            return RollupMerge.buckets(raw: sides[0], rollups: sides[1], limit: range.limit)
        }
    }

    public func hasRollups(tenantID: UUID, serial: String?, from: Timestamp, to: Timestamp) async throws -> Bool {
        var query: PostgresQuery = """
            SELECT EXISTS (SELECT 1 FROM telemetry_rollups WHERE tenant_id = \(tenantID) AND ts >= \(from) AND ts < \(to))
            """
        if let serial {
            query = """
                SELECT EXISTS (SELECT 1 FROM telemetry_rollups
                    WHERE tenant_id = \(tenantID) AND device_serial = \(serial) AND ts >= \(from) AND ts < \(to))
                """
        }
        let found: [Bool] = try await rows(query, as: Bool.self)
        return found.first ?? false
    }

    /// Runs `body` in a read-only REPEATABLE READ transaction: raw samples and rollups are read
    /// in one snapshot, since the downsampling job moves rows from one to the other.
    private func inSnapshot<Result: Sendable>(
        _ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await transaction(what, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", body)
    }

    /// Runs a page query that answers one row of seven arrays — times in microseconds, mode
    /// codes, inside, outside (NaN for none), setpoint, hysteresis, output codes — and makes the
    /// samples. This is the export's and query's hot path: PostgresNIO spent most of a page's
    /// CPU on its per-row and per-cell objects (two thousand rows of seven cells), and one row
    /// of arrays has none of them; the database sends less too.
    private static func readSamples(
        _ query: PostgresQuery, serial: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> [TelemetrySample] {
        let modes: [ThermostatMode] = [.off, .heat, .cool, .auto]
        let outputs: [ThermostatOutput] = [.off, .heatOn, .coolOn]
        var samples: [TelemetrySample] = []
        let rows = try await connection.query(query, logger: logger)
        for try await (times, modeCodes, inside, outside, setpoint, hysteresis, outputCodes) in rows.decode(
            ([Int64], [Int16], [Double], [Double], [Double], [Double], [Int16]).self)
        {
            let count = times.count
            guard [modeCodes.count, inside.count, outside.count, setpoint.count, hysteresis.count, outputCodes.count]
                .allSatisfy({ $0 == count })
            else { throw MissingColumn() }
            samples.reserveCapacity(count)
            for index in 0..<count {
                samples.append(
                    TelemetrySample(
                        deviceSerial: serial, timestamp: Timestamp(microseconds: times[index]),
                        mode: modes.indices.contains(Int(modeCodes[index])) ? modes[Int(modeCodes[index])] : .off,
                        tempInside: inside[index],
                        tempOutside: outside[index].isNaN ? nil : outside[index], setpoint: setpoint[index],
                        hysteresis: hysteresis[index],
                        output: outputs.indices.contains(Int(outputCodes[index])) ? outputs[Int(outputCodes[index])] : .off))
            }
        }
        // An aggregate over a sorted subquery keeps its order in practice, not by the standard.
        if !zip(samples, samples.dropFirst()).allSatisfy({ $0.timestamp < $1.timestamp }) {
            samples.sort { $0.timestamp < $1.timestamp }
        }
        return samples
    }

    /// `ts, resolution, samples, mode, output, hysteresis`, then the sums as in `BucketRow`.
    private typealias RollupRow = (
        Timestamp, Int64, Int64, String, String, Double, Double, Double, Double, Int64, Double?, Double, Double?, Double,
        Double, Double, Int64, Int64
    )

    /// A bucket's start, count, inside min/sum/max, outside count/min/sum/max, setpoint
    /// min/sum/max, heating and cooling counts.
    private typealias BucketRow = (
        Timestamp, Int64, Double, Double, Double, Int64, Double?, Double, Double?, Double, Double, Double, Int64, Int64
    )

    private static func rollupSample(_ row: RollupRow, serial: String) -> TelemetrySample {
        let sums = BucketSums(
            start: row.0, count: Int(row.2), insideMin: row.6, insideSum: row.7, insideMax: row.8, outsideCount: Int(row.9),
            outsideMin: row.10, outsideSum: row.11, outsideMax: row.12, setpointMin: row.13, setpointSum: row.14,
            setpointMax: row.15, heating: Int(row.16), cooling: Int(row.17))
        return sums.sample(serial: serial, resolutionSeconds: Int(row.1), mode: row.3, hysteresis: row.5, output: row.4)
    }

    private static func rollupSums(_ row: BucketRow) -> BucketSums {
        BucketSums(
            start: row.0, count: Int(row.1), insideMin: row.2, insideSum: row.3, insideMax: row.4, outsideCount: Int(row.5),
            outsideMin: row.6, outsideSum: row.7, outsideMax: row.8, setpointMin: row.9, setpointSum: row.10,
            setpointMax: row.11, heating: Int(row.12), cooling: Int(row.13))
    }

    public func latestSamples(tenantID: UUID) async throws -> [String: TelemetrySample] {
        let rows = try await rows(
            """
            SELECT t.ts, t.mode, t.temp_inside, t.temp_outside, t.setpoint, t.hysteresis, t.output, d.serial
            FROM devices d CROSS JOIN LATERAL (
                SELECT ts, mode, temp_inside, temp_outside, setpoint, hysteresis, output FROM telemetry
                WHERE tenant_id = d.tenant_id AND device_serial = d.serial ORDER BY ts DESC LIMIT 1) t
            WHERE d.tenant_id = \(tenantID)
            """, as: (Timestamp, String, Double, Double?, Double, Double, String, String).self)
        var latest: [String: TelemetrySample] = [:]
        for row in rows {
            latest[row.7] = Self.sample((row.0, row.1, row.2, row.3, row.4, row.5, row.6), serial: row.7)
        }
        return latest
    }

    public func recentSamples(tenantID: UUID, serial: String, limit: Int) async throws -> [TelemetrySample] {
        try await rows(
            """
            SELECT ts, mode, temp_inside, temp_outside, setpoint, hysteresis, output FROM telemetry
            WHERE tenant_id = \(tenantID) AND device_serial = \(serial) ORDER BY ts DESC LIMIT \(limit)
            """, as: SampleRow.self
        ).reversed().map { Self.sample($0, serial: serial) }
    }
}

private struct SampleKey: Hashable {
    var tenant: UUID
    var serial: String
    var time: Timestamp
}

private struct TenantDevice: Hashable {
    var tenant: UUID
    var serial: String
}

/// A row had fewer columns (or a page fewer values in one of its arrays) than its reader expected.
private struct MissingColumn: Error {}

