import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The release `thermostat` binary (THERMOSTAT_BIN, set by `make test`) run as a child process
/// on a free loopback port, exactly as a user would start it.
final class ServerProcess: @unchecked Sendable {
    static var binary: String? { ProcessInfo.processInfo.environment["THERMOSTAT_BIN"] }

    let port: Int
    let logURL: URL
    private let process = Process()

    var baseURL: String { "http://127.0.0.1:\(port)" }

    var processID: Int32 { process.processIdentifier }

    /// The server's resident memory now, from /proc (Linux), in bytes.
    func residentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return nil }
        return kilobytes * 1024
    }

    /// `workingDirectory` nil keeps the test's; another one checks the binary finds its folders.
    init(database: String, port: Int? = nil, environment extra: [String: String] = [:], workingDirectory: URL? = nil) throws {
        self.port = try port ?? Self.freePort()
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("thermostat-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: try #require(Self.binary))
        process.arguments = ["serve", "--port", String(self.port), "--database", database]
        var environment = ProcessInfo.processInfo.environment
        environment["THERMOSTAT_BCRYPT_COST"] = "4"
        environment["THERMOSTAT_REGISTER_RATE_PER_HOUR"] = "1000"
        environment["THERMOSTAT_TELEMETRY_RATE_PER_MINUTE"] = "100000"
        // Generous test tiers, so storage quotas do not get in the way of what a test checks.
        environment["THERMOSTAT_POLICIES_DIR"] = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/Policies").path
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        if let workingDirectory { process.currentDirectoryURL = workingDirectory }
        let log = try FileHandle(forWritingTo: logURL)
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    /// Waits until `/health/` answers 200.
    func waitUntilHealthy(timeoutSeconds: Double = 30) async throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if let response = try? await HTTP.request("\(baseURL)/health/"), response.status == .ok { return }
            guard process.isRunning else {
                Issue.record("server exited early: \(log)")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("server did not become healthy: \(log)")
        throw CancellationError()
    }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the process to exit and returns its status.
    func waitForExit() async -> Int32 {
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        return process.terminationStatus
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else { throw CancellationError() }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A tiny JSON-over-HTTP client for the black-box tests.
enum HTTP {
    struct Reply: Sendable {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: String

        func object() throws -> [String: Any] {
            try #require(JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], "body: \(body)")
        }
    }

    static func request(
        _ url: String, method: HTTPMethod = .GET, json: String? = nil, headers: [(String, String)] = [],
        timeoutSeconds: Int64 = 30
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeoutSeconds))
        let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
        return Reply(status: response.status, headers: response.headers, body: String(buffer: body))
    }
}
