import Foundation
import HTTPTypes
import HummingbirdTesting
import PlatformCore
import Server
import Storage
import StorageTesting
import Testing

/// `GET /api/telemetry/export/` in process: formats, ordering, ranges, errors and tenancy.
@Suite("Export API")
struct ExportAPITests {
    static func samples(_ serial: String, from start: Timestamp, count: Int, outsideEvery: Int = 2) -> String {
        let items = (0..<count).map { index in
            let outside = index % outsideEvery == 0 ? "" : #","temp_outside_c":-3.25"#
            return #"{"device_id":"\#(serial)","mode":"HEAT","temp_inside_c":\#(20 + Double(index) / 10)\#(outside),"setpoint_c":21,"hysteresis_c":0.5,"output":"HEAT_ON","timestamp":"\#(start.adding(seconds: Double(index) * 60).iso8601)"}"#
        }
        return #"{"samples":[\#(items.joined(separator: ","))]}"#
    }

    @Test(arguments: Backend.available)
    func csvIsRFC4180InDeviceThenTimeOrder(_ backend: Backend) async throws {
        let start = Timestamp(seconds: 1_795_000_000)
        try await TestPlatform.run(backend) { client, _ in
            let user = try await client.register("csv@example.com", tenant: "CSV Home")
            let second = try await client.registerDevice(user, serial: "TH-B")
            let first = try await client.registerDevice(user, serial: "TH-A")
            #expect(try await client.ingest(second, Self.samples("TH-B", from: start, count: 2)).status == .ok)
            #expect(try await client.ingest(first, Self.samples("TH-A", from: start.adding(seconds: 30), count: 3)).status == .ok)

            let all = try await client.json("/api/telemetry/export/", cookie: user.cookie)
            #expect(all.status == .ok)
            #expect(all.headers[.contentType] == "text/csv; charset=utf-8")
            let disposition = try #require(all.headers[.contentDisposition])
            #expect(disposition.hasPrefix(#"attachment; filename="csv-home-all-start-"#) && disposition.hasSuffix(#".csv""#))
            let text = String(buffer: all.body)
            let lines = text.components(separatedBy: "\r\n")
            #expect(lines.first == "device_id,timestamp,mode,temp_inside_c,temp_outside_c,setpoint_c,hysteresis_c,output")
            #expect(lines.last == "", "every line ends in CRLF")
            #expect(lines.dropFirst().dropLast().map { String($0.prefix(4)) } == ["TH-A", "TH-A", "TH-A", "TH-B", "TH-B"])
            #expect(lines[1] == "TH-A,\(start.adding(seconds: 30).iso8601),HEAT,20,,21,0.5,HEAT_ON", "a null is an empty cell")
            #expect(lines[2] == "TH-A,\(start.adding(seconds: 90).iso8601),HEAT,20.1,-3.25,21,0.5,HEAT_ON")

            let from = start.adding(seconds: 60).iso8601
            let to = start.adding(seconds: 150).iso8601
            let ranged = try await client.json("/api/telemetry/export/?device=TH-A&from=\(from)&to=\(to)", cookie: user.cookie)
            let rangedLines = String(buffer: ranged.body).components(separatedBy: "\r\n").dropFirst().filter { !$0.isEmpty }
            #expect(rangedLines.count == 1, "from inclusive, to exclusive: only the sample at +90 s")
            #expect(ranged.headers[.contentDisposition]?.contains("csv-home-TH-A-") == true)
        }
    }

    @Test func builtInAndTenantFormats() async throws {
        let start = Timestamp(seconds: 1_795_000_000)
        try await TestPlatform.run { client, _ in
            let user = try await client.register("formats@example.com")
            let device = try await client.registerDevice(user, serial: "TH-F")
            #expect(try await client.ingest(device, Self.samples("TH-F", from: start, count: 3)).status == .ok)

            let ndjson = try await client.json("/api/telemetry/export/?format=ndjson", cookie: user.cookie)
            #expect(ndjson.headers[.contentType] == "application/x-ndjson")
            let objects = try String(buffer: ndjson.body).split(separator: "\n").map {
                try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
            #expect(objects.count == 3)
            #expect(objects[0]["temp_outside_c"] is NSNull)
            #expect(objects[1]["temp_outside_c"] as? Double == -3.25)
            let influx = try await client.json("/api/telemetry/export/?format=influx-line-protocol", cookie: user.cookie)
            #expect(influx.headers[.contentDisposition]?.hasSuffix(#".lp""#) == true)
            #expect(String(buffer: influx.body).split(separator: "\n").count == 3)

            let markdown = #"""
                local count = 0
                return {
                  content_type = "text/markdown; charset=utf-8", extension = "md",
                  header = function(ctx) return "| time | inside |\n|---|---|\n" end,
                  row = function(s, ctx) count = count + 1 return string.format("| %s | %.1f |\n", s.timestamp, s.temp_inside_c) end,
                  footer = function(ctx) return "\n" .. count .. " rows for " .. ctx.tenant.slug .. "\n" end,
                }
                """#
            let uploaded = try await ScriptAPITests.upload(client, user, name: "report", hook: "export", source: markdown)
            #expect(uploaded.status == .created)
            let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
            let inactive = try await client.json("/api/telemetry/export/?format=report", cookie: user.cookie)
            #expect(inactive.status == .unprocessableContent, "only active scripts are formats")
            #expect(try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: user.cookie).status == .ok)
            let report = try await client.json("/api/telemetry/export/?format=report", cookie: user.cookie)
            #expect(report.status == .ok)
            #expect(report.headers[.contentType] == "text/markdown; charset=utf-8")
            let body = String(buffer: report.body)
            #expect(body.hasPrefix("| time | inside |\n|---|---|\n| \(start.iso8601) | 20.0 |\n"))
            #expect(body.contains("\n3 rows for "), "module state carries from header to rows to footer")

            let unknown = try await client.json("/api/telemetry/export/?format=xml", cookie: user.cookie)
            #expect(unknown.status == .unprocessableContent)
            #expect(unknown.errorCode == "unknown_format")
            #expect(String(buffer: unknown.body).contains("csv, ndjson, influx-line-protocol, report"))
        }
    }

    @Test func errorsBeforeTheFirstByteAreJSONAndTenantsStayApart() async throws {
        try await TestPlatform.run { client, store in
            let owner = try await client.register("export-owner@example.com")
            let device = try await client.registerDevice(owner, serial: "TH-OWN")
            #expect(try await client.ingest(device, Self.samples("TH-OWN", from: Timestamp(seconds: 1_795_000_000), count: 2)).status == .ok)
            let stranger = try await client.register("export-stranger@example.com")
            _ = try await client.registerDevice(stranger, serial: "TH-OTHER")

            #expect(try await client.json("/api/telemetry/export/").status == .unauthorized)
            #expect(try await client.json("/api/telemetry/export/?device=TH-OWN", cookie: stranger.cookie).status == .notFound)
            let strangersAll = String(buffer: try await client.json("/api/telemetry/export/", cookie: stranger.cookie).body)
            #expect(!strangersAll.contains("TH-OWN"), "another tenant's rows never appear")
            for query in ["from=yesterday", "to=2026-13-01T00:00:00Z", "from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z"] {
                let response = try await client.json("/api/telemetry/export/?\(query)", cookie: owner.cookie)
                #expect(response.status == .unprocessableContent, "\(query)")
            }
            let failing = #"return { content_type = "text/plain", extension = "txt", row = function(s) error("no rows today") end }"#
            let uploaded = try await ScriptAPITests.upload(client, owner, name: "broken", hook: "export", source: failing)
            let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
            _ = try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: owner.cookie)
            let broken = try await client.json("/api/telemetry/export/?format=broken", cookie: owner.cookie)
            #expect(broken.status == .unprocessableContent)
            #expect(broken.errorCode == "export_script_failed")
            #expect(String(buffer: broken.body).contains("no rows today"))
            let headerInjection = #"return { content_type = "text/plain\r\nSet-Cookie: x=1", extension = "txt", row = function(s) return "" end }"#
            let sneaky = try await ScriptAPITests.upload(client, owner, name: "sneaky", hook: "export", source: headerInjection)
            let sneakyID = try #require((try sneaky.object()["script"] as? [String: Any])?["id"] as? String)
            _ = try await client.json("/api/scripts/\(sneakyID)/activate/", method: .post, cookie: owner.cookie)
            let refused = try await client.json("/api/telemetry/export/?format=sneaky", cookie: owner.cookie)
            #expect(refused.status == .unprocessableContent)
            #expect(refused.headers[.setCookie] == nil)

            let user = try #require(try await store.user(email: "export-owner@example.com"))
            let reader = try await TestPlatform.apiToken(store: store, user: user, tenantID: try #require(UUID(uuidString: owner.tenantID)))
            let viaToken = try await client.json("/api/telemetry/export/?device=TH-OWN", headers: [.authorization: "Bearer \(reader)"])
            #expect(viaToken.status == .ok)
        }
    }

    /// A format whose rows never finish ends in a clear error within the worker deadline, and
    /// the tenant's next export (and other tenants) are served.
    @Test func aRunawayExportScriptEndsInAClearError() async throws {
        try await TestPlatform.run(configure: { $0.scriptDeadlineMilliseconds = 300 }) { client, _ in
            let user = try await client.register("runaway-export@example.com")
            let device = try await client.registerDevice(user, serial: "TH-LOOP")
            #expect(try await client.ingest(device, Self.samples("TH-LOOP", from: Timestamp(seconds: 1_795_000_000), count: 3)).status == .ok)
            for (name, row) in [
                ("spin", "while true do end"),
                ("grow", "local t = {} while true do t[#t + 1] = ('x'):rep(1000) end"),
            ] {
                let source = #"return { content_type = "text/plain", extension = "txt", row = function(s) \#(row) end }"#
                let uploaded = try await ScriptAPITests.upload(client, user, name: name, hook: "export", source: source)
                let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
                #expect(try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: user.cookie).status == .ok)
                let export = try await client.json("/api/telemetry/export/?format=\(name)", cookie: user.cookie)
                #expect(export.status == .unprocessableContent, "\(name)")
                #expect(export.errorCode == "export_script_failed", "\(name)")
            }
            #expect(try await client.json("/api/telemetry/export/?format=ndjson", cookie: user.cookie).status == .ok)
        }
    }

    /// Export rows share the cached `ctx` of the ingest hot path: a script that overwrites its
    /// fields still gets each row's own device and tenant, and a row that is not a string is a
    /// clear error.
    @Test func aFormatThatTampersWithCtxStillSeesEachRowsOwnContext() async throws {
        try await TestPlatform.run { client, _ in
            let user = try await client.register("tamper-export@example.com", tenant: "Tamper Home")
            for serial in ["TH-A", "TH-B"] {
                let device = try await client.registerDevice(user, serial: serial)
                #expect(try await client.ingest(device, Self.samples(serial, from: Timestamp(seconds: 1_795_000_000), count: 3)).status == .ok)
            }
            let tamper = """
                return { content_type = "text/plain", extension = "txt", row = function(s, ctx)
                  local line = ctx.device.serial .. " " .. ctx.tenant.slug .. " " .. s.device_id .. "\\n"
                  ctx.device, ctx.tenant, ctx.config, s.device_id = nil, "junk", 42, "forged"
                  return line
                end }
                """
            let uploaded = try await ScriptAPITests.upload(client, user, name: "tamper", hook: "export", source: tamper)
            let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
            #expect(try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: user.cookie).status == .ok)
            let export = try await client.json("/api/telemetry/export/?format=tamper", cookie: user.cookie)
            #expect(export.status == .ok)
            let lines = String(buffer: export.body).split(separator: "\n").map(String.init)
            #expect(lines == Array(repeating: "TH-A tamper-home TH-A", count: 3) + Array(repeating: "TH-B tamper-home TH-B", count: 3))

            let table = #"return { content_type = "text/plain", extension = "txt", row = function(s) return {} end }"#
            let second = try await ScriptAPITests.upload(client, user, name: "table", hook: "export", source: table)
            let secondID = try #require((try second.object()["script"] as? [String: Any])?["id"] as? String)
            #expect(try await client.json("/api/scripts/\(secondID)/activate/", method: .post, cookie: user.cookie).status == .ok)
            let refused = try await client.json("/api/telemetry/export/?format=table", cookie: user.cookie)
            #expect(refused.status == .unprocessableContent && refused.errorCode == "export_script_failed")
        }
    }
}

