import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// Exports from the release binary, read as a client downloads them: a million rows with the
/// server's memory measured, and a stream that fails after its first byte.
@Suite("Exports", .enabled(if: ServerProcess.binary != nil), .serialized)
struct ExportTests {
    /// Posts `count` samples for the session's device, 1,000 per request, one a second from `start`.
    static func ingest(_ server: ServerProcess, _ session: ReleaseBinaryTests.Session, count: Int, start: Date,
        inside: (Int) -> Double = { 15 + Double($0 % 100) / 10 }) async throws
    {
        let formatter = ISO8601DateFormatter()
        var index = 0
        while index < count {
            let end = min(index + 1000, count)
            let samples = (index..<end).map { i in
                #"{"device_id":"\#(session.deviceSerial)","mode":"HEAT","temp_inside_c":\#(inside(i)),"setpoint_c":21,"hysteresis_c":0.5,"output":"HEAT_ON","timestamp":"\#(formatter.string(from: start.addingTimeInterval(Double(i))))"}"#
            }
            let reply = try await HTTP.request(
                "\(server.baseURL)/api/telemetry/ingest/", method: .POST, json: #"{"samples":[\#(samples.joined(separator: ","))]}"#,
                headers: [("Authorization", "Device \(session.deviceSerial):\(session.deviceKey)")])
            #expect(reply.status == .ok, "\(reply.body.prefix(300))")
            index = end
        }
    }

    static func server(_ directory: URL) throws -> ServerProcess {
        try ServerProcess(
            database: "sqlite:\(directory.appendingPathComponent("db.sqlite").path)",
            environment: ["THERMOSTAT_TELEMETRY_RATE_PER_MINUTE": "10000000", "THERMOSTAT_LUA_WORKERS": "1"])
    }

    /// Heavy (a million rows ingested, half a minute of both cores), so `make test` runs it on its
    /// own after the other tests rather than beside timing-sensitive ones.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["THERMOSTAT_EXPORT_MEMORY_TEST"] != nil))
    func aMillionRowExportStreamsInBoundedMemory() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try Self.server(directory)
        try await server.waitUntilHealthy()
        let session = try await ReleaseBinaryTests.signUp(server, email: "export-million@example.com")
        let rows = 1_000_000
        let start = Date(timeIntervalSince1970: 1_780_000_000)
        try await Self.ingest(server, session, count: rows, start: start)

        let baseline = try #require(server.residentBytes())
        let peak = Mutex(baseline)
        let sampler = Task {
            while !Task.isCancelled {
                if let now = server.residentBytes() { peak.withLock { $0 = max($0, now) } }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        var request = HTTPClientRequest(url: "\(server.baseURL)/api/telemetry/export/?device=\(session.deviceSerial)")
        request.headers.add(name: "Cookie", value: session.cookie)
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(300))
        #expect(response.status == .ok)
        #expect(response.headers.first(name: "Content-Disposition")?.contains(".csv\"") == true)
        var lines = 0
        var bytes = 0
        var last = ""
        for try await chunk in response.body {
            bytes += chunk.readableBytes
            lines += chunk.readableBytesView.reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            last = String(buffer: chunk)
        }
        sampler.cancel()
        #expect(lines == rows + 1, "a header and every row")
        #expect(last.hasSuffix("HEAT_ON\r\n"))
        let growth = peak.withLock { $0 } - baseline
        #expect(growth < 64 * 1024 * 1024, "resident memory grew \(growth / 1024 / 1024) MiB for a \(bytes / 1024 / 1024) MiB export")
    }

    @Test func aFailureAfterTheFirstByteAbortsTheDownload() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try Self.server(directory)
        try await server.waitUntilHealthy()
        let session = try await ReleaseBinaryTests.signUp(server, email: "export-abort@example.com")
        // The bad row lies beyond the first page the server reads (10,000 rows): the download has
        // started by the time the script meets it.
        try await Self.ingest(server, session, count: 15_000, start: Date(timeIntervalSince1970: 1_780_000_000)) { i in
            i == 12_000 ? 99.5 : 20
        }
        let source = #"return { content_type = "text/plain", extension = "txt", row = function(s) if s.temp_inside_c > 99 then error("bad row") end return s.timestamp .. "\n" end }"#
        let upload = try await HTTP.request(
            "\(server.baseURL)/api/scripts/", method: .POST,
            json: String(decoding: try JSONSerialization.data(withJSONObject: ["name": "picky", "hook": "export", "source": source]), as: UTF8.self),
            headers: [("Cookie", session.cookie)])
        #expect(upload.status == .created, "\(upload.body)")
        let id = try #require((try upload.object()["script"] as? [String: Any])?["id"] as? String)
        let activated = try await HTTP.request(
            "\(server.baseURL)/api/scripts/\(id)/activate/", method: .POST, headers: [("Cookie", session.cookie)])
        #expect(activated.status == .ok)

        var request = HTTPClientRequest(url: "\(server.baseURL)/api/telemetry/export/?format=picky")
        request.headers.add(name: "Cookie", value: session.cookie)
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        #expect(response.status == .ok, "the first rows were fine, so the download started")
        var received = 0
        await #expect(throws: (any Error).self, "the stream ends without its terminating chunk") {
            for try await chunk in response.body { received += chunk.readableBytes }
        }
        #expect(received > 0)
        #expect(server.log.contains("export aborted after its first byte"))

        let early = try await HTTP.request(
            "\(server.baseURL)/api/telemetry/export/?format=picky&from=2026-05-28T21:33:20Z", headers: [("Cookie", session.cookie)])
        #expect(early.status == .unprocessableEntity, "a failure in the first rows is a JSON error: \(early.body)")
        #expect(early.body.contains("export_script_failed"))
    }
}
