import Foundation
import HTTPTypes
import HummingbirdTesting
import PlatformCore
@testable import Server
import Storage
import StorageTesting
import Testing

@Suite("Telemetry ingest and query")
struct TelemetryTests {
    @Test(arguments: Backend.available)
    func ingestIsIdempotentAndQueryable(_ backend: Backend) async throws {
        let clock = ManualClock()
        try await TestPlatform.run(backend, clock: clock) { client, _ in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let now = clock.now()
            let single = SampleJSON.make(serial: device.serial, at: now, inside: 19.25)
            let first = try await client.ingest(device, single)
            #expect(first.status == .ok)
            #expect(try first.object()["accepted"] as? Int == 1)
            // The answer is written by hand: byte for byte what `jsonResponse` would write.
            #expect(String(buffer: first.body) == #"{"accepted":1,"duplicates":0}"#)
            #expect(first.headers[.contentType] == "application/json; charset=utf-8")
            let retry = try await client.ingest(device, single)
            #expect(try retry.object()["accepted"] as? Int == 0)
            #expect(try retry.object()["duplicates"] as? Int == 1)
            #expect(String(buffer: retry.body) == #"{"accepted":0,"duplicates":1}"#)

            let start = now.adding(seconds: -3600)
            let batch = try await client.ingest(device, SampleJSON.batch(serial: device.serial, from: start, count: 50))
            #expect(try batch.object()["accepted"] as? Int == 50)

            let page1 = try await client.json(
                "/api/telemetry/query/?device=\(device.serial)&from=\(start.iso8601)&to=\(now.adding(seconds: 1).iso8601)&limit=30",
                cookie: user.cookie)
            #expect(page1.status == .ok)
            let body1 = try page1.object()
            #expect(body1["device"] as? String == device.serial)
            let samples1 = try #require(body1["samples"] as? [[String: Any]])
            #expect(samples1.count == 30)
            #expect(samples1[0]["timestamp"] as? String == start.iso8601)
            #expect(samples1[0]["device_id"] as? String == device.serial)
            for field in ["mode", "temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c", "output"] {
                #expect(samples1[0][field] != nil, "\(field)")
            }
            let next = try #require(body1["next"] as? String)
            let page2 = try await client.json(
                "/api/telemetry/query/?device=\(device.serial)&from=\(start.iso8601)&to=\(now.adding(seconds: 1).iso8601)&limit=30&after=\(next)",
                cookie: user.cookie)
            let samples2 = try #require(try page2.object()["samples"] as? [[String: Any]])
            #expect(samples2.count == 21)
            #expect(try page2.object()["next"] == nil)
            #expect(samples2.last?["temp_inside_c"] as? Double == 19.25)
            let times = (samples1 + samples2).compactMap { $0["timestamp"] as? String }.compactMap { Timestamp(iso8601: $0) }
            #expect(times == times.sorted() && Set(times).count == 51, "ascending, each sample once")

            let buckets = try await client.json(
                "/api/telemetry/query/?device=\(device.serial)&from=\(start.iso8601)&to=\(now.adding(seconds: 1).iso8601)&bucket=1h",
                cookie: user.cookie)
            #expect(buckets.status == .ok)
            let rows = try #require(try buckets.object()["samples"] as? [[String: Any]])
            #expect(rows.compactMap { $0["count"] as? Int }.reduce(0, +) == 51)
            let inside = try #require(rows.first?["temp_inside_c"] as? [String: Any])
            #expect(inside["min"] is Double && inside["avg"] is Double && inside["max"] is Double)

            let latest = try await client.json("/api/devices/\(device.serial)/latest/", cookie: user.cookie)
            #expect((try latest.object()["sample"] as? [String: Any])?["temp_inside_c"] as? Double == 19.25)
            let list = try await client.json("/api/devices/", cookie: user.cookie)
            let listed = try #require((try list.object()["devices"] as? [[String: Any]])?.first)
            #expect(listed["online"] as? Bool == true)
            #expect(listed["last_seen"] is String)
        }
    }

    @Test func badSamplesAreRejectedWholeWithTheFieldNamed() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock) { client, store in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let now = clock.now()
            let good = SampleJSON.make(serial: device.serial, at: now)
            let cases: [(String, HTTPResponse.Status, String?)] = [
                ("{oops", .badRequest, nil),
                (#"{"samples":[\#(good),\#(SampleJSON.make(serial: device.serial, at: now.adding(seconds: -5), mode: "WARM"))]}"#, .unprocessableContent, "samples[1].mode"),
                (SampleJSON.make(serial: device.serial, at: now, extra: #","humidity":40"#), .unprocessableContent, "humidity"),
                (SampleJSON.make(serial: "SOMEONE-ELSE", at: now), .unprocessableContent, "device_id"),
                (SampleJSON.make(serial: device.serial, at: now.adding(seconds: 600)), .unprocessableContent, "timestamp"),
                (SampleJSON.make(serial: device.serial, at: now, inside: 150), .unprocessableContent, "temp_inside_c"),
                (#"{"samples":"many"}"#, .unprocessableContent, "samples"),
            ]
            for (body, status, field) in cases {
                let response = try await client.ingest(device, body)
                #expect(response.status == status, "\(body)")
                #expect(response.errorField == field, "\(body)")
            }
            let tooMany = SampleJSON.batch(serial: device.serial, from: now.adding(seconds: -100_000), count: 1001, stepSeconds: 1)
            #expect(try await client.ingest(device, tooMany).status == .contentTooLarge)
            let huge = SampleJSON.make(serial: device.serial, at: now, extra: #","pad":"\#(String(repeating: "x", count: 300_000))""#)
            #expect(try await client.ingest(device, huge).status == .contentTooLarge)
            let textPlain = try await client.json(
                "/api/telemetry/ingest/", method: .post, body: good,
                headers: [.authorization: device.authorization, .contentType: "text/plain"])
            #expect(textPlain.status == .unsupportedMediaType)
            #expect(try await store.latest(tenantID: UUID(uuidString: user.tenantID)!, serial: device.serial) == nil, "nothing stored")
            let withParameters = try await client.json(
                "/api/telemetry/ingest/", method: .post, body: good,
                headers: [.authorization: device.authorization, .contentType: " Application/JSON ; charset=utf-8"])
            #expect(withParameters.status == .ok)
        }
    }

    @Test func contentTypesAreReadWhateverTheirCaseBlanksAndParameters() {
        for accepted in ["application/json", "APPLICATION/JSON", " application/json\t", "application/json;charset=utf-8"] {
            #expect(ContentType.names(accepted, "application/json"), "\(accepted)")
        }
        for refused in [nil, "", "text/plain", "application/jsonx", "application/json-patch+json", "application/ json", "application/jso",
            "application\u{0F}json", "multipart/form-data; boundary=application/json"]
        {
            #expect(!ContentType.names(refused, "application/json"), "\(refused ?? "nil")")
        }
        #expect(ContentType.names("Application/X-WWW-Form-Urlencoded; charset=UTF-8", "application/x-www-form-urlencoded"))
    }

    @Test func ingestNeedsAValidDeviceKey() async throws {
        try await TestPlatform.run { client, _ in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let body = SampleJSON.make(serial: device.serial, at: Timestamp(Date()))
            for header in [nil, "Bearer abc", "Device \(device.serial)", "Device \(device.serial):thk_wrong", "Device NOPE:\(device.key)"] {
                var headers: HTTPFields = [:]
                if let header { headers[.authorization] = header }
                let response = try await client.json("/api/telemetry/ingest/", method: .post, body: body, headers: headers)
                #expect(response.status == .unauthorized, "\(header ?? "none")")
            }
            let session = try await client.json("/api/telemetry/ingest/", method: .post, body: body, cookie: user.cookie)
            #expect(session.status == .unauthorized, "a person's session is not a device credential")
        }
    }

    @Test func perDeviceRateLimitAnswers429WithRetryAfter() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock, configure: { $0.telemetryRatePerMinute = 3 }) { client, _ in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let other = try await client.registerDevice(user)
            for second in 0..<3 {
                let response = try await client.ingest(device, SampleJSON.make(serial: device.serial, at: clock.now().adding(seconds: Double(-second))))
                #expect(response.status == .ok)
            }
            let limited = try await client.ingest(device, SampleJSON.make(serial: device.serial, at: clock.now().adding(seconds: -10)))
            #expect(limited.status == .tooManyRequests)
            #expect(Int(limited.headers[.retryAfter] ?? "") == 20)
            #expect(try await client.ingest(other, SampleJSON.make(serial: other.serial, at: clock.now())).status == .ok, "limits are per device")
            clock.advance(seconds: 20)
            #expect(try await client.ingest(device, SampleJSON.make(serial: device.serial, at: clock.now())).status == .ok)
        }
    }

    @Test func queryValidatesItsParameters() async throws {
        try await TestPlatform.run { client, _ in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let cases: [(String, String)] = [
                ("", "device"),
                ("device=\(device.serial)&from=yesterday", "from"),
                ("device=\(device.serial)&to=2026-01-01", "to"),
                ("device=\(device.serial)&from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
                ("device=\(device.serial)&limit=0", "limit"),
                ("device=\(device.serial)&limit=100001", "limit"),
                ("device=\(device.serial)&limit=ten", "limit"),
                ("device=\(device.serial)&bucket=7m", "bucket"),
                ("device=\(device.serial)&after=then", "after"),
            ]
            for (query, field) in cases {
                let response = try await client.json("/api/telemetry/query/?\(query)", cookie: user.cookie)
                #expect(response.status == .unprocessableContent, "\(query)")
                #expect(response.errorField == field, "\(query)")
            }
            #expect(try await client.json("/api/telemetry/query/?device=UNKNOWN", cookie: user.cookie).status == .notFound)
            #expect(try await client.json("/api/telemetry/query/?device=\(device.serial)").status == .unauthorized)
        }
    }

    @Test(.enabled(if: TestDatabase.postgresAdminURL != nil))
    func concurrentIngestSharesCommitsAndLosesNothing() async throws {
        try await TestPlatform.run(.postgres) { client, store in
            let user = try await client.register()
            let devices = try await (0..<8).asyncMap { _ in try await client.registerDevice(user) }
            let start = Timestamp(Date()).adding(seconds: -3600)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for device in devices {
                    group.addTask {
                        for index in 0..<25 {
                            let body = SampleJSON.make(serial: device.serial, at: start.adding(seconds: Double(index)))
                            let status = try await client.ingest(device, body).status
                            #expect(status == .ok)
                        }
                    }
                }
                try await group.waitForAll()
            }
            for device in devices {
                let range = TelemetryRange(
                    tenantID: UUID(uuidString: user.tenantID)!, serial: device.serial, from: start, to: start.adding(seconds: 100),
                    limit: 100)
                #expect(try await store.samples(range).count == 25)
            }
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
