import Foundation
import HTTPTypes
import HummingbirdTesting
import PlatformCore
import Storage
import StorageTesting
import Testing

@testable import Server

/// The downsampling job end to end: a tier's steps roll old samples up, and the query API,
/// usage and exports read raw and rolled-up data as one series.
@Suite("Downsampling")
struct DownsamplingTests {
    /// A tier that keeps 15-minute rollups after a day and hourly ones after three.
    static let policy = """
        return {
          limits = function(tenant)
            return { max_devices = 5, max_samples = 1000000, retention_days = 30,
                     downsample = { { after_days = 1, resolution = "15m" }, { after_days = 3, resolution = "1h" } } }
          end,
          on_over_quota = function() return "reject" end,
        }
        """

    @Test(arguments: Backend.available)
    func oldSamplesRollUpAndReadAsOneSeries(_ backend: Backend) async throws {
        let folder = try TierTests.policies()
        try Self.policy.write(to: folder.appendingPathComponent("rolled.lua"), atomically: true, encoding: .utf8)
        let clock = ManualClock()
        try await TestPlatform.runWithoutJobs(backend, clock: clock, configure: { $0.policiesDirectory = folder.path }) {
            client, store, platform in
            let user = try await client.register("rollups@example.com")
            let tenantID = try TierTests.tenantID(user)
            try await store.setTier(tenantID: tenantID, tier: "rolled")
            let device = try await client.registerDevice(user, serial: "TH-R")
            let now = clock.now()
            // Whole hours, so the rollups' buckets hold exactly the samples of each batch.
            let hour = Timestamp(seconds: now.microseconds / 1_000_000 / 3600 * 3600)
            let fiveDaysAgo = hour.adding(seconds: -5 * 86_400)
            let twoDaysAgo = hour.adding(seconds: -2 * 86_400)
            for start in [fiveDaysAgo, twoDaysAgo, hour.adding(seconds: -7200)] {
                #expect(try await client.ingest(device, SampleJSON.batch(serial: "TH-R", from: start, count: 120)).status == .ok)
            }
            let query = "/api/telemetry/query/?device=TH-R&from=\(fiveDaysAgo.iso8601)&to=\(now.adding(seconds: 60).iso8601)"
            let daily = try await client.json(query + "&bucket=1d", cookie: user.cookie)
            let dailyBefore = try Self.samples(daily)

            // One run takes both steps (a run killed halfway is DownsamplingCrashTests' case); the
            // query reads the same daily figures before and after.
            #expect(try await platform.downsampling.runOnce() == 240)
            #expect(try await platform.downsampling.runOnce() == 0, "nothing is rolled up twice")
            #expect(platform.downsampling.log.report(for: tenantID).lastRun != nil)
            Self.expectSameBuckets(try Self.samples(try await client.json(query + "&bucket=1d", cookie: user.cookie)), dailyBefore)

            let rows = try Self.samples(try await client.json(query + "&limit=10000", cookie: user.cookie))
            let hourly = rows.filter { ($0["rollup"] as? [String: Any])?["resolution_seconds"] as? Int == 3600 }
            let quarterly = rows.filter { ($0["rollup"] as? [String: Any])?["resolution_seconds"] as? Int == 900 }
            #expect(hourly.count == 2 && quarterly.count == 8)
            #expect(rows.count == 2 + 8 + 120, "rollups first, then the last hour's raw samples")
            let rollup = try #require(hourly.first?["rollup"] as? [String: Any])
            #expect(rollup["samples"] as? Int == 60)
            #expect((rollup["temp_inside_c"] as? [String: Any])?["min"] as? Double == 15)
            #expect((rollup["temp_inside_c"] as? [String: Any])?["max"] as? Double == 24)
            #expect(hourly.first?["temp_inside_c"] as? Double == 19.5, "the hour's average")
            #expect(rows.last?["rollup"] == nil)

            let usage = try await client.json("/api/usage/", cookie: user.cookie)
            let jobs = try #require((try JSONSerialization.jsonObject(with: Data(buffer: usage.body)) as? [String: Any])?["jobs"] as? [String: Any])
            #expect((jobs["downsample"] as? [String: Any])?["rows"] as? Int == 0, "the last run rolled nothing")
            #expect((jobs["downsample"] as? [String: Any])?["last_run"] is String)
            #expect(platform.quotas.samples(tenantID: tenantID) == 120, "rolled-up samples no longer count against the quota")

            // CSV marks rollups with columns of their own, only when the range holds some.
            let csv = String(buffer: try await client.json("/api/telemetry/export/?device=TH-R", cookie: user.cookie).body)
            let lines = csv.components(separatedBy: "\r\n")
            #expect(lines[0] == CSVFormat.headerWithRollups.trimmingCharacters(in: .newlines))
            #expect(lines[1].hasPrefix("TH-R,\(fiveDaysAgo.iso8601),") && lines[1].contains(",3600,60,15,24,"))
            #expect(lines[11].hasSuffix(",,,,,,,,,,"), "a raw row leaves the rollup columns empty")
            let recent = String(
                buffer: try await client.json("/api/telemetry/export/?from=\(hour.adding(seconds: -7200).iso8601)", cookie: user.cookie).body)
            #expect(recent.hasPrefix(CSVFormat.header), "no rollups in range: the contract's columns alone")

            let ndjson = String(buffer: try await client.json("/api/telemetry/export/?format=ndjson", cookie: user.cookie).body)
            let first = try #require(ndjson.split(separator: "\n").first)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])
            #expect((object["rollup"] as? [String: Any])?["samples"] as? Int == 60)
            #expect(ndjson.split(separator: "\n").last?.contains("rollup") == false)
            let influx = String(
                buffer: try await client.json("/api/telemetry/export/?format=influx-line-protocol", cookie: user.cookie).body)
            #expect(influx.hasPrefix("thermostat,device=TH-R,rollup=3600s ") && influx.contains("samples=60i"))
        }
    }

    @Test func policiesMustOrderTheirStepsAndNameAKnownResolution() async throws {
        try await TestPlatform.run { client, _ in
            let user = try await client.register("steps@example.com")
            for (steps, message) in [
                (#"{ { after_days = 7, resolution = "3h" } }"#, "resolution must be one of 1m, 5m, 15m, 1h, 2h, 1d"),
                (#"{ { after_days = 30, resolution = "1h" }, { after_days = 7, resolution = "1d" } }"#, "must come in order"),
                (#"{ { after_days = 7, resolution = "1h" }, { after_days = 30, resolution = "5m" } }"#, "must come in order"),
                (#"{ { after_days = 0.5, resolution = "1h" } }"#, "whole number"),
            ] {
                let source = """
                    return { limits = function(t) return { max_devices = 1, max_samples = 1, retention_days = 1,
                      downsample = \(steps) } end, on_over_quota = function() return "reject" end }
                    """
                let body = try JSONSerialization.data(withJSONObject: ["name": "mine", "hook": "storage_policy", "source": source])
                let upload = try await client.json(
                    "/api/scripts/", method: .post, body: String(decoding: body, as: UTF8.self), cookie: user.cookie)
                // An upload only compiles the policy; its dry run calls `limits`, which refuses the step.
                #expect(upload.status == .created, "\(upload.body)")
                let script = try #require(
                    (try JSONSerialization.jsonObject(with: Data(buffer: upload.body)) as? [String: Any])?["script"]
                        as? [String: Any])
                let dryRun = try await client.json(
                    "/api/scripts/\(try #require(script["id"] as? String))/dry-run/", method: .post, body: "{}",
                    cookie: user.cookie)
                let errors = (try JSONSerialization.jsonObject(with: Data(buffer: dryRun.body)) as? [String: Any])?["errors"]
                #expect((errors as? [String])?.contains { $0.contains(message) } == true, "\(steps)")
            }
        }
    }

    static func samples(_ response: TestResponse) throws -> [[String: Any]] {
        let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
        return try #require(object?["samples"] as? [[String: Any]])
    }

    static func expectSameBuckets(_ left: [[String: Any]], _ right: [[String: Any]]) {
        #expect(left.count == right.count)
        for (a, b) in zip(left, right) {
            #expect(a["timestamp"] as? String == b["timestamp"] as? String && a["count"] as? Int == b["count"] as? Int)
            for field in ["temp_inside_c", "setpoint_c"] {
                let x = try? #require(a[field] as? [String: Double])
                let y = try? #require(b[field] as? [String: Double])
                for key in ["min", "avg", "max"] { #expect(abs((x?[key] ?? .nan) - (y?[key] ?? .nan)) < 1e-9, "\(field).\(key)") }
            }
        }
    }
}
