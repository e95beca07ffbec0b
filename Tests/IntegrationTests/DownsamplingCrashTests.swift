import Foundation
import NIOHTTP1
import StorageTesting
import Testing

/// Downsampling across a crash, from outside: the release binary is killed with SIGKILL while
/// its downsampling job is rolling half a million samples up, and started again. The next run
/// finishes the work, and the daily figures — counts, minimum, average, maximum — are exactly
/// those of the raw samples: no sample lost, none counted twice.
@Suite("Downsampling across a crash", .enabled(if: ServerProcess.binary != nil), .serialized)
struct DownsamplingCrashTests {
    static let samples = 500_000
    static let batch = 1000
    /// The storage jobs' period: long enough for the ingest to finish before the first run.
    static let interval = 25

    @Test(arguments: Backend.available)
    func aKilledRunIsFinishedByTheNextAndLosesNothing(_ backend: Backend) async throws {
        let policies = FileManager.default.temporaryDirectory.appendingPathComponent("downsample-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: policies, withIntermediateDirectories: true)
        try """
        return {
          limits = function(tenant)
            return { max_devices = 10, max_samples = 100000000, retention_days = 36500,
                     downsample = { { after_days = 1, resolution = "1h" } } }
          end,
          on_over_quota = function() return "reject" end,
        }
        """.write(to: policies.appendingPathComponent("free.lua"), atomically: true, encoding: .utf8)
        let database = try await TestDatabase.makeURL(backend)
        let environment = [
            "THERMOSTAT_POLICIES_DIR": policies.path, "THERMOSTAT_RETENTION_INTERVAL_SECONDS": "\(Self.interval)",
        ]
        let server = try ServerProcess(database: database, environment: environment)
        try await server.waitUntilHealthy()
        let session = try await ReleaseBinaryTests.signUp(server, email: "rollups@example.com")

        // Half a million samples a second apart, all older than a day, sent before the first run.
        let now = Int(Date().timeIntervalSince1970)
        let first = now / 3600 * 3600 - 86_400 - Self.samples
        let batches = Self.samples / Self.batch
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<4 {
                group.addTask {
                    for index in stride(from: lane, to: batches, by: 4) {
                        let body = Self.batchJSON(session.deviceSerial, from: first + index * Self.batch)
                        let reply = try await HTTP.request(
                            "\(server.baseURL)/api/telemetry/ingest/", method: .POST, json: body,
                            headers: [("Authorization", "Device \(session.deviceSerial):\(session.deviceKey)")])
                        #expect(reply.status == .ok, "\(reply.body)")
                    }
                }
            }
            try await group.waitForAll()
        }
        let range = "device=\(session.deviceSerial)&from=\(Self.iso(first - 86_400))&to=\(Self.iso(now + 60))"
        let before = try await Self.daily(server, session.cookie, range)
        #expect(before.reduce(0) { $0 + ($1["count"] as? Int ?? 0) } == Self.samples)

        // Kill the server as soon as the first rollups are committed.
        var started = false
        for _ in 0..<2000 where !started {
            started = try await Self.firstRow(server, session.cookie, range)?["rollup"] != nil
            if !started { try await Task.sleep(for: .milliseconds(25)) }
        }
        #expect(started, "the downsampling job began")
        server.signal(SIGKILL)
        #expect(await server.waitForExit() != 0)

        let restarted = try ServerProcess(database: database, environment: environment)
        try await restarted.waitUntilHealthy()
        let oldest = try #require(try await Self.firstRow(restarted, session.cookie, range))
        #expect(oldest["rollup"] != nil, "the committed chunks stayed")
        let oldRaw = try await Self.rawRows(restarted, session.cookie, session.deviceSerial, before: first + Self.samples - 7200)
        #expect(oldRaw > 0, "the run was killed halfway: old raw samples are left")
        Self.expectSameDays(try await Self.daily(restarted, session.cookie, range), before)

        // The next run (one period after the restart) finishes the work.
        var finished = false
        for _ in 0..<(Self.interval * 3 * 10) where !finished {
            finished = try await Self.rawRows(restarted, session.cookie, session.deviceSerial, before: first + Self.samples - 7200) == 0
            if !finished { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(finished, "no raw sample older than a day is left")
        Self.expectSameDays(try await Self.daily(restarted, session.cookie, range), before)
        restarted.signal(SIGTERM)
        #expect(await restarted.waitForExit() == 0)
        try? FileManager.default.removeItem(at: policies)
    }

    /// Samples at `from`, `from + 1`, … (epoch seconds) with an inside temperature that varies.
    static func batchJSON(_ serial: String, from: Int) -> String {
        var samples: [String] = []
        samples.reserveCapacity(batch)
        for second in from..<from + batch {
            let inside = 18 + Double(second % 97) / 10
            samples.append(
                #"{"device_id":"\#(serial)","mode":"HEAT","temp_inside_c":\#(inside),"temp_outside_c":\#(second % 7 - 3),"setpoint_c":21,"hysteresis_c":0.5,"output":"\#(second % 3 == 0 ? "HEAT_ON" : "OFF")","timestamp":"\#(iso(second))"}"#
            )
        }
        return #"{"samples":[\#(samples.joined(separator: ","))]}"#
    }

    /// ISO 8601 UTC from epoch seconds, without a formatter object (half a million of them).
    static func iso(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    static func daily(_ server: ServerProcess, _ cookie: String, _ range: String) async throws -> [[String: Any]] {
        let reply = try await HTTP.request("\(server.baseURL)/api/telemetry/query/?\(range)&bucket=1d", headers: [("Cookie", cookie)])
        return try #require(try reply.object()["samples"] as? [[String: Any]])
    }

    static func firstRow(_ server: ServerProcess, _ cookie: String, _ range: String) async throws -> [String: Any]? {
        let reply = try await HTTP.request("\(server.baseURL)/api/telemetry/query/?\(range)&limit=1", headers: [("Cookie", cookie)])
        return (try reply.object()["samples"] as? [[String: Any]])?.first
    }

    /// How many raw samples (no rollup) start before `before`, up to 10,000.
    static func rawRows(_ server: ServerProcess, _ cookie: String, _ serial: String, before: Int) async throws -> Int {
        let reply = try await HTTP.request(
            "\(server.baseURL)/api/telemetry/query/?device=\(serial)&from=\(iso(before - 30 * 86_400))&to=\(iso(before))&limit=10000",
            headers: [("Cookie", cookie)])
        return (try reply.object()["samples"] as? [[String: Any]] ?? []).filter { $0["rollup"] == nil }.count
    }

    static func expectSameDays(_ after: [[String: Any]], _ before: [[String: Any]]) {
        #expect(after.count == before.count)
        for (a, b) in zip(after, before) {
            #expect(a["timestamp"] as? String == b["timestamp"] as? String)
            #expect(a["count"] as? Int == b["count"] as? Int, "\(a["timestamp"] ?? "")")
            for field in ["temp_inside_c", "temp_outside_c", "setpoint_c"] {
                let x = a[field] as? [String: Double] ?? [:]
                let y = b[field] as? [String: Double] ?? [:]
                for key in ["min", "avg", "max"] {
                    #expect(abs((x[key] ?? .nan) - (y[key] ?? .nan)) < 1e-9, "\(field).\(key)")
                }
            }
        }
    }
}
