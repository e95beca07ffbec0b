import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The live telemetry stream of the release binary, read as a browser's EventSource reads it.
@Suite("Live stream", .enabled(if: ServerProcess.binary != nil), .serialized)
struct LiveStreamTests {
    /// An open `text/event-stream` response and what has arrived so far.
    final class EventStream: @unchecked Sendable {
        private var iterator: HTTPClientResponse.Body.AsyncIterator
        private(set) var text = ""
        let response: HTTPClientResponse

        init(_ url: String, cookie: String) async throws {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Cookie", value: cookie)
            request.headers.add(name: "Accept", value: "text/event-stream")
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
            iterator = response.body.makeAsyncIterator()
        }

        /// Reads until `text` contains `marker`; false when the stream ends first.
        func read(until marker: String) async throws -> Bool {
            while !text.contains(marker) {
                guard let chunk = try await iterator.next() else { return false }
                text += String(buffer: chunk)
            }
            return true
        }
    }

    static func ingest(_ server: ServerProcess, _ session: ReleaseBinaryTests.Session, inside: Double) async throws {
        let sample = ReleaseBinaryTests.sample(session.deviceSerial, at: Date()).replacingOccurrences(
            of: #""temp_inside_c":21.5"#, with: #""temp_inside_c":\#(inside)"#)
        let reply = try await HTTP.request(
            "\(server.baseURL)/api/telemetry/ingest/", method: .POST, json: sample,
            headers: [("Authorization", "Device \(session.deviceSerial):\(session.deviceKey)")])
        #expect(reply.status == .ok, "\(reply.body)")
    }

    @Test func streamsCarryCommittedSamplesOfTheirTenantOnlyAndEndAtShutdown() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stream-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try ServerProcess(
            database: "sqlite:\(directory.appendingPathComponent("db.sqlite").path)",
            environment: ["THERMOSTAT_SHUTDOWN_DRAIN_SECONDS": "30"])
        try await server.waitUntilHealthy()
        let mine = try await ReleaseBinaryTests.signUp(server, email: "stream-a@example.com")
        let theirs = try await ReleaseBinaryTests.signUp(server, email: "stream-b@example.com")

        let unauthenticated = try await HTTP.request("\(server.baseURL)/api/telemetry/stream/")
        #expect(unauthenticated.status == .unauthorized)
        let foreign = try await HTTP.request(
            "\(server.baseURL)/api/telemetry/stream/?device=\(theirs.deviceSerial)", headers: [("Cookie", mine.cookie)])
        #expect(foreign.status == .notFound)

        let all = try await EventStream("\(server.baseURL)/api/telemetry/stream/", cookie: mine.cookie)
        #expect(all.response.status == .ok)
        #expect(all.response.headers.first(name: "Content-Type")?.hasPrefix("text/event-stream") == true)
        let device = try await EventStream(
            "\(server.baseURL)/api/telemetry/stream/?device=\(mine.deviceSerial)", cookie: mine.cookie)
        #expect(try await all.read(until: ": connected"))
        #expect(try await device.read(until: ": connected"))

        try await Self.ingest(server, theirs, inside: 11.25)
        try await Self.ingest(server, mine, inside: 22.75)
        #expect(try await all.read(until: "22.75"))
        #expect(try await device.read(until: "22.75"))
        #expect(all.text.contains("event: sample\ndata: {"))
        #expect(all.text.contains(#""device":"\#(mine.deviceSerial)""#))
        #expect(!all.text.contains("11.25") && !all.text.contains(theirs.deviceSerial), "another tenant's sample")

        server.signal(SIGTERM)
        #expect(try await all.read(until: "never arrives") == false, "the stream ends when shutdown starts")
        // Streams held open past the drain time would end in a forced exit (status 1).
        #expect(await server.waitForExit() == 0, "\(server.log)")
        #expect(!server.log.contains("drain time over"))
    }
}
