import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PlatformCore
@testable import Server
import Storage
import StorageTesting
import Testing

/// Runs the real application (the same `buildApplication` as `thermostat serve`) in process, on
/// a fresh database of the given backend, with a clock the test controls.
enum TestPlatform {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func configuration(_ adjust: (inout PlatformConfiguration) -> Void = { _ in }) -> PlatformConfiguration {
        var configuration = PlatformConfiguration()
        configuration.bcryptCost = 4
        configuration.logLevel = .warning
        configuration.registerRatePerHour = 1000
        configuration.loginRatePerMinute = 1000
        configuration.telemetryRatePerMinute = 100_000
        configuration.scriptTrialsPerMinute = 100_000
        configuration.loginRatePerAccountPerHour = 100_000
        configuration.deviceAuthFailuresPerMinute = 100_000
        // One Lua worker process per test application is plenty, and many tests run at once.
        configuration.luaWorkers = 1
        configuration.pluginsDirectory = repositoryRoot.appendingPathComponent("Plugins").path
        // Generous test tiers (see the folder's files); tests of the shipped tiers set their own.
        configuration.policiesDirectory = repositoryRoot.appendingPathComponent("Tests/Fixtures/Policies").path
        configuration.templatesDirectory = repositoryRoot.appendingPathComponent("Templates").path
        configuration.staticDirectory = repositoryRoot.appendingPathComponent("Public").path
        adjust(&configuration)
        return configuration
    }

    static func run(
        _ backend: Backend = .sqlite,
        clock: ManualClock = ManualClock(),
        configure: (inout PlatformConfiguration) -> Void = { _ in },
        _ test: @Sendable (any TestClientProtocol, any PlatformStore) async throws -> Void
    ) async throws {
        let configuration = configuration(configure)
        let store = try StoreFactory.open(databaseURL: try await TestDatabase.makeURL(backend), logger: TestPlatformLog.logger)
        let app = try await buildApplication(configuration: configuration, store: store, clock: clock)
        try await app.test(.router) { client in
            try await test(client, store)
        }
    }

    /// Like `run`, but the background jobs stay off and the test gets the `Platform` to run
    /// them by hand (the store, the group commit and the Lua workers run as usual).
    static func runWithoutJobs(
        _ backend: Backend, clock: ManualClock, configure: (inout PlatformConfiguration) -> Void,
        _ test: @Sendable (any TestClientProtocol, any PlatformStore, Platform) async throws -> Void
    ) async throws {
        let configuration = configuration(configure)
        let store = try StoreFactory.open(databaseURL: try await TestDatabase.makeURL(backend), logger: TestPlatformLog.logger)
        let platform = try Platform(
            configuration: configuration, store: store, assets: try await WebAssets.load(configuration), clock: clock,
            logger: TestPlatformLog.logger)
        var app = Application(router: platform.router(), logger: TestPlatformLog.logger)
        app.addServices(store, platform.writer, platform.workers)
        app.beforeServerStarts { _ = try await store.migrate() }
        try await app.test(.router) { client in
            try await test(client, store, platform)
        }
    }
}

extension TestPlatform {
    /// A user API token made directly in the store, for acting as a user in another tenant.
    static func apiToken(store: any PlatformStore, user: User, tenantID: UUID) async throws -> String {
        let secret = "tht_test_\(UUID().uuidString)"
        let hash = SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
        try await store.createAPIToken(
            APIToken(id: UUID(), tenantID: tenantID, userID: user.id, name: "test", tokenHash: hash, createdAt: Timestamp(Date())))
        return secret
    }
}

enum TestPlatformLog {
    static let logger: Logger = {
        var logger = Logger(label: "server-tests")
        logger.logLevel = .warning
        return logger
    }()
}

/// A signed-in person in a test: the session cookie and their tenant.
struct TestUser: Sendable {
    var cookie: String
    var tenantID: String
    var email: String
}

/// A registered device and its secret key.
struct TestDevice: Sendable {
    var serial: String
    var key: String

    var authorization: String { "Device \(serial):\(key)" }
}

extension TestClientProtocol {
    func json(
        _ uri: String, method: HTTPRequest.Method = .get, body: String? = nil, cookie: String? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = extra
        if body != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
        if let cookie { headers[.cookie] = "thermostat_session=\(cookie)" }
        return try await execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
    }

    func register(_ email: String = "owner-\(UUID().uuidString.prefix(8))@example.com", tenant: String = "Acme")
        async throws -> TestUser
    {
        let response = try await json(
            "/api/auth/register/", method: .post,
            body: #"{"email":"\#(email)","password":"Corr3ct-Horse-Battery","tenant_name":"\#(tenant)"}"#)
        #expect(response.status == .created)
        let body = try response.object()
        return TestUser(
            cookie: try #require(response.sessionCookie), tenantID: try #require((body["tenant"] as? [String: Any])?["id"] as? String),
            email: email)
    }

    func registerDevice(_ user: TestUser, serial: String = "TH-\(UUID().uuidString.prefix(8))") async throws -> TestDevice {
        let response = try await json(
            "/api/devices/register/", method: .post, body: #"{"serial":"\#(serial)","name":"Hall"}"#, cookie: user.cookie)
        #expect(response.status == .created)
        return TestDevice(serial: serial, key: try #require(try response.object()["api_key"] as? String))
    }

    /// Makes `inviteeCookie`'s user a member of `inviter`'s tenant: an invitation, accepted.
    func addMember(_ inviter: TestUser, email: String, role: String, inviteeCookie: String) async throws {
        let invited = try await json(
            "/api/tenant/invitations/", method: .post, body: #"{"email":"\#(email)","role":"\#(role)"}"#,
            cookie: inviter.cookie)
        #expect(invited.status == .created, "\(String(buffer: invited.body))")
        let id = try #require((try invited.object()["invitation"] as? [String: Any])?["id"] as? String)
        let accepted = try await json("/api/auth/invitations/\(id)/accept/", method: .post, cookie: inviteeCookie)
        #expect(accepted.status == .ok, "\(String(buffer: accepted.body))")
    }

    func ingest(_ device: TestDevice, _ body: String) async throws -> TestResponse {
        try await json("/api/telemetry/ingest/", method: .post, body: body, headers: [.authorization: device.authorization])
    }
}

extension TestResponse {
    func object() throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any], "body: \(String(buffer: body))")
    }

    var errorCode: String? { ((try? object())?["error"] as? [String: Any])?["code"] as? String }
    var errorField: String? { ((try? object())?["error"] as? [String: Any])?["field"] as? String }

    var sessionCookie: String? {
        guard let header = headers[.setCookie], header.hasPrefix("thermostat_session=") else { return nil }
        let value = header.dropFirst("thermostat_session=".count).prefix { $0 != ";" }
        return value.isEmpty ? nil : String(value)
    }
}

/// Telemetry JSON as the firmware sends it.
enum SampleJSON {
    static func make(
        serial: String, at timestamp: Timestamp, inside: Double = 20.5, mode: String = "HEAT", extra: String = ""
    ) -> String {
        #"{"device_id":"\#(serial)","mode":"\#(mode)","temp_inside_c":\#(inside),"temp_outside_c":3.5,"setpoint_c":21,"hysteresis_c":0.5,"output":"HEAT_ON","timestamp":"\#(timestamp.iso8601)"\#(extra)}"#
    }

    static func batch(serial: String, from start: Timestamp, count: Int, stepSeconds: Double = 60) -> String {
        let samples = (0..<count).map { make(serial: serial, at: start.adding(seconds: Double($0) * stepSeconds), inside: 15 + Double($0 % 10)) }
        return #"{"samples":[\#(samples.joined(separator: ","))]}"#
    }
}
