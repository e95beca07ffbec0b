import Foundation
import Glibc
import Hummingbird
import HummingbirdTesting
import PlatformCore
import Server
import Storage
import StorageTesting
import Testing

@Suite("Deployment checks and slow clients")
struct DeploymentTests {
    /// A configuration `check --deploy` accepts.
    static func production(_ adjust: (inout PlatformConfiguration) -> Void = { _ in }) -> PlatformConfiguration {
        var configuration = PlatformConfiguration()
        configuration.environment = .production
        configuration.secretKey = "q8Zt3VwL0pNe7RkYc2HfJs5Xa9GmBd4Uo1Ti6Wy"
        configuration.publicURL = "https://thermostats.example.com"
        configuration.databaseURL = "postgres://app@db.internal/thermostat?sslmode=verify-full"
        configuration.host = "0.0.0.0"
        adjust(&configuration)
        return configuration
    }

    static func errors(_ configuration: PlatformConfiguration) -> [String] {
        DeploymentCheck.run(configuration, deploy: true).filter { $0.severity == .error }.map(\.message)
    }

    @Test func postgresWithoutTLSOrWithAPlaintextFallbackIsAnError() {
        #expect(Self.errors(Self.production()).isEmpty, "\(Self.errors(Self.production()))")
        for url in [
            "postgres://app@db.internal/thermostat", "postgres://app@db.internal/thermostat?sslmode=prefer",
            "postgresql://app@10.0.0.5:5432/thermostat?sslmode=allow", "postgres://app@db.internal/thermostat?sslmode=disable",
        ] {
            let errors = Self.errors(Self.production { $0.databaseURL = url })
            #expect(errors.contains { $0.contains("sslmode") && $0.contains("plaintext") }, "\(url): \(errors)")
        }
        for url in [
            "postgres://app@db.internal/thermostat?sslmode=require", "postgres://app@localhost/thermostat",
            "postgres://app@127.0.0.1/thermostat?sslmode=disable", "postgres://app@[::1]/thermostat",
            "postgres://app@/thermostat?host=/var/run/postgresql",
        ] {
            #expect(Self.errors(Self.production { $0.databaseURL = url }).isEmpty, "\(url)")
        }
    }

    @Test func placeholderSecretsAndProxySettingsAreReported() {
        for secret in [String(repeating: "k", count: 48), "change-me-change-me-change-me-change-me", "short"] {
            #expect(!Self.errors(Self.production { $0.secretKey = secret }).isEmpty, "\(secret)")
        }
        let forgeable = DeploymentCheck.run(Self.production { $0.trustedProxies = 1 }, deploy: true)
        #expect(forgeable.contains { $0.severity == .warning && $0.message.contains("X-Forwarded-For") })
        let behindProxy = DeploymentCheck.run(Self.production { $0.host = "127.0.0.1" }, deploy: true)
        #expect(behindProxy.contains { $0.severity == .warning && $0.message.contains("THERMOSTAT_TRUSTED_PROXIES") })
        #expect(throws: ConfigurationError.self) {
            try PlatformConfiguration(environment: ["THERMOSTAT_TRUST_FORWARDED_FOR": "true"])
        }
        let twoHops = try? PlatformConfiguration(environment: ["THERMOSTAT_TRUSTED_PROXIES": "2"])
        #expect(twoHops?.trustedProxies == 2)
        #expect(throws: ConfigurationError.self) { try PlatformConfiguration(environment: ["THERMOSTAT_TRUSTED_PROXIES": "-1"]) }
    }

    @Test func serveRefusesInProductionWhatCheckDeployRejects() throws {
        try DeploymentCheck.requireServable(Self.production())
        try DeploymentCheck.requireServable(PlatformConfiguration())  // development is never refused
        let refusal = #expect(throws: DeploymentRefused.self) {
            try DeploymentCheck.requireServable(Self.production { $0.databaseURL = "postgres://app@db.internal/thermostat" })
        }
        #expect(refusal?.description.contains("sslmode") == true)
        let noSecret = #expect(throws: DeploymentRefused.self) {
            try DeploymentCheck.requireServable(Self.production { $0.secretKey = nil })
        }
        #expect(noSecret?.description.contains("THERMOSTAT_SECRET_KEY") == true)
    }

    /// Runs the real application (`buildApplication`, as `serve` does) on a loopback socket with
    /// short HTTP timeouts.
    static func live(headerTimeout: Int, idleTimeout: Int, _ test: @Sendable (Int) async throws -> Void) async throws {
        let configuration = TestPlatform.configuration {
            $0.port = 0
            $0.httpHeaderTimeoutSeconds = headerTimeout
            $0.httpIdleTimeoutSeconds = idleTimeout
        }
        let store = try StoreFactory.open(databaseURL: try await TestDatabase.makeURL(.sqlite), logger: TestPlatformLog.logger)
        let app = try await buildApplication(configuration: configuration, store: store)
        try await app.test(.live) { client in
            try await test(try #require(client.port))
        }
    }

    @Test func aRequestHeadTrickledSlowlyIsCutOff() async throws {
        // The idle timeout is out of reach here: only the header timeout can close the connection.
        try await Self.live(headerTimeout: 1, idleTimeout: 3600) { port in
            let complete = try RawConnection(port: port)
            try complete.send("GET /health/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            #expect(try await complete.readUntilClosed().hasPrefix("HTTP/1.1 200"), "a complete request is answered")

            let slow = try RawConnection(port: port)
            try slow.send("POST /api/auth/login/ HTTP/1.1\r\nHost: localhost\r\nContent-Ty")
            #expect(try await slow.readUntilClosed() == "", "the server closed the connection without a request ever arriving")
        }
    }

    @Test func aStalledBodyIsCutOff() async throws {
        // The head arrived, so this is the idle timeout's work.
        try await Self.live(headerTimeout: 3600, idleTimeout: 1) { port in
            let stalled = try RawConnection(port: port)
            try stalled.send(
                "POST /api/auth/login/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"email\":")
            let answer = try await stalled.readUntilClosed()
            #expect(!answer.hasPrefix("HTTP/1.1 2"), "\(answer)")
        }
    }
}

/// A blocking TCP client on loopback that can send half a request.
final class RawConnection: @unchecked Sendable {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        // A safety net so a server that never closes fails the test instead of hanging it.
        var limit = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard Glibc.send(descriptor, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { throw POSIXError(.EPIPE) }
    }

    /// Everything the server sends until it closes the connection; throws if it never does.
    /// The blocking reads run on a thread of their own, never on the test's executor (whose
    /// few threads the server under test needs).
    func readUntilClosed() async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try self.blockingReadUntilClosed() }) }
        }
    }

    private func blockingReadUntilClosed() throws -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 { break }
            if count < 0 {
                if errno == ECONNRESET { break }
                throw POSIXError(.ETIMEDOUT)
            }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }
}
