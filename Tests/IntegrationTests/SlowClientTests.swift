import Foundation
import Glibc
import Testing

/// Slow clients against the release binary: the HTTP timeouts are wired into `serve` itself.
@Suite("Slow clients", .enabled(if: ServerProcess.binary != nil))
struct SlowClientTests {
    @Test func aTrickledRequestHeadAndAStalledBodyAreCutOff() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slow-\(UUID().uuidString)")
        // Each bound is tried with the other out of reach, so each one alone closes its connection.
        for (header, idle, request) in [
            ("1", "3600", "POST /api/auth/login/ HTTP/1.1\r\nHost: localhost\r\nContent-Ty"),
            ("3600", "1", "POST /api/auth/login/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"email\":"),
        ] {
            let server = try ServerProcess(
                database: "sqlite:\(folder.path)/db-\(header).sqlite",
                environment: ["THERMOSTAT_HTTP_HEADER_TIMEOUT_SECONDS": header, "THERMOSTAT_HTTP_IDLE_TIMEOUT_SECONDS": idle])
            try await server.waitUntilHealthy()
            let descriptor = try Self.connect(port: server.port)
            defer { close(descriptor) }
            let bytes = Array(request.utf8)
            #expect(send(descriptor, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count)
            let answer = try Self.readUntilClosed(descriptor)
            #expect(!answer.hasPrefix("HTTP/1.1 2"), "header \(header) s, idle \(idle) s: \(answer)")
            server.signal(SIGTERM)
            #expect(await server.waitForExit() == 0, "\(server.log)")
        }
    }

    static func connect(port: Int) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard descriptor >= 0, connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        // A safety net: a server that never closes fails the test instead of hanging it.
        var limit = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        return descriptor
    }

    /// Everything the server sends until it closes the connection; throws if it never does.
    static func readUntilClosed(_ descriptor: Int32) throws -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 || (count < 0 && errno == ECONNRESET) { break }
            guard count > 0 else { throw POSIXError(.ETIMEDOUT) }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
