import Foundation
import NIOHTTP1
import StorageTesting
import Synchronization
import Testing

/// Tests of the release binary from outside: durability across SIGKILL, graceful shutdown,
/// secrets kept out of the database and the logs, and the CLI.
@Suite("Release binary", .enabled(if: ServerProcess.binary != nil), .serialized)
struct ReleaseBinaryTests {
    static let password = "Corr3ct-Horse-Battery-Staple"
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    struct Session {
        var cookie: String
        var deviceSerial: String
        var deviceKey: String
    }

    static func signUp(_ server: ServerProcess, email: String = "owner@example.com") async throws -> Session {
        let register = try await HTTP.request(
            "\(server.baseURL)/api/auth/register/", method: .POST,
            json: #"{"email":"\#(email)","password":"\#(password)","tenant_name":"Black Box"}"#)
        #expect(register.status == .created, "\(register.body)")
        let setCookie = try #require(register.headers.first(name: "Set-Cookie"))
        let cookie = String(setCookie.prefix { $0 != ";" })
        let serial = "BB-\(UUID().uuidString.prefix(6))"
        let device = try await HTTP.request(
            "\(server.baseURL)/api/devices/register/", method: .POST, json: #"{"serial":"\#(serial)"}"#,
            headers: [("Cookie", cookie)])
        #expect(device.status == .created, "\(device.body)")
        return Session(cookie: cookie, deviceSerial: serial, deviceKey: try #require(try device.object()["api_key"] as? String))
    }

    static func sample(_ serial: String, at date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return #"{"device_id":"\#(serial)","mode":"AUTO","temp_inside_c":21.5,"temp_outside_c":-2,"setpoint_c":21,"hysteresis_c":0.5,"output":"OFF","timestamp":"\#(formatter.string(from: date))"}"#
    }

    static func storedTimestamps(_ server: ServerProcess, _ session: Session, from: Date) async throws -> Set<String> {
        var found: Set<String> = []
        var after: String?
        let formatter = ISO8601DateFormatter()
        repeat {
            var url = "\(server.baseURL)/api/telemetry/query/?device=\(session.deviceSerial)&from=\(formatter.string(from: from))&limit=1000"
            if let after { url += "&after=\(after)" }
            let reply = try await HTTP.request(url, headers: [("Cookie", session.cookie)])
            #expect(reply.status == .ok, "\(reply.body)")
            let body = try reply.object()
            for sample in body["samples"] as? [[String: Any]] ?? [] {
                if let timestamp = sample["timestamp"] as? String { found.insert(timestamp) }
            }
            after = body["next"] as? String
        } while after != nil
        return found
    }

    @Test(arguments: Backend.available)
    func acknowledgedSamplesSurviveSIGKILL(_ backend: Backend) async throws {
        let database = try await TestDatabase.makeURL(backend)
        let server = try ServerProcess(database: database)
        try await server.waitUntilHealthy()
        let session = try await Self.signUp(server)
        let start = Date().addingTimeInterval(-3000)
        let acknowledged = Acknowledgements()

        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    let formatter = ISO8601DateFormatter()
                    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                    for index in 0..<200 {
                        let date = start.addingTimeInterval(Double(worker * 200 + index) * 0.5)
                        guard
                            let reply = try? await HTTP.request(
                                "\(server.baseURL)/api/telemetry/ingest/", method: .POST,
                                json: Self.sample(session.deviceSerial, at: date),
                                headers: [("Authorization", "Device \(session.deviceSerial):\(session.deviceKey)")],
                                timeoutSeconds: 5)
                        else { return }
                        if reply.status == .ok {
                            let stamp = formatter.string(from: date)
                            let count = acknowledged.stamps.withLock { $0.insert(stamp); return $0.count }
                            if count == 400 { server.signal(SIGKILL) }
                        }
                    }
                }
            }
        }
        #expect(await server.waitForExit() != 0, "the server was killed, not stopped")
        let acked = acknowledged.stamps.withLock { $0 }
        #expect(acked.count >= 400)

        let restarted = try ServerProcess(database: database)
        try await restarted.waitUntilHealthy()
        let stored = try await Self.storedTimestamps(restarted, session, from: start.addingTimeInterval(-1))
        let normalized = Set(stored.map { Self.normalize($0) })
        let missing = acked.map { Self.normalize($0) }.filter { !normalized.contains($0) }
        #expect(missing.isEmpty, "acknowledged but lost: \(missing.prefix(5))")
        restarted.signal(SIGTERM)
        #expect(await restarted.waitForExit() == 0)
    }

    /// `2026-11-29T07:00:00.500Z` and `…07:00:00.5Z` name the same instant.
    static func normalize(_ stamp: String) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        guard let date = formatter.date(from: stamp) ?? plain.date(from: stamp) else { return stamp }
        return String(Int64((date.timeIntervalSince1970 * 1000).rounded()))
    }

    @Test func secretsNeverReachTheDatabaseOrTheLogs() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("secrets-\(UUID().uuidString)")
        let server = try ServerProcess(
            database: "sqlite:\(folder.path)/db.sqlite", environment: ["THERMOSTAT_LOG_LEVEL": "trace"],
            workingDirectory: FileManager.default.temporaryDirectory)
        try await server.waitUntilHealthy()
        let session = try await Self.signUp(server, email: "secret-keeper@example.com")
        let ingest = try await HTTP.request(
            "\(server.baseURL)/api/telemetry/ingest/", method: .POST, json: Self.sample(session.deviceSerial, at: Date()),
            headers: [("Authorization", "Device \(session.deviceSerial):\(session.deviceKey)")])
        #expect(ingest.status == .ok)
        let token = try await HTTP.request(
            "\(server.baseURL)/api/tokens/", method: .POST, json: #"{"name":"cli"}"#, headers: [("Cookie", session.cookie)])
        let tokenSecret = try #require(try token.object()["secret"] as? String)
        let login = try await HTTP.request(
            "\(server.baseURL)/api/auth/login/", method: .POST,
            json: #"{"email":"secret-keeper@example.com","password":"\#(Self.password)"}"#)
        #expect(login.status == .ok)
        server.signal(SIGTERM)
        #expect(await server.waitForExit() == 0)

        let sessionToken = String(session.cookie.dropFirst("thermostat_session=".count))
        let secrets = [Self.password, session.deviceKey, tokenSecret, sessionToken]
        var haystacks = ["log": Data(server.log.utf8)]
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            haystacks[file] = try Data(contentsOf: folder.appendingPathComponent(file))
        }
        #expect(haystacks["db.sqlite"] != nil)
        for (name, data) in haystacks {
            for secret in secrets {
                #expect(data.range(of: Data(secret.utf8)) == nil, "\(name) contains a secret")
            }
        }
    }

    @Test func commandLineOperations() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        let database = "sqlite:\(folder.path)/db.sqlite"
        let migrate = try Self.run(["migrate", "--database", database])
        #expect(migrate.status == 0)
        #expect(migrate.output.contains("Applied migrations 1"))
        #expect(try Self.run(["migrate", "--database", database]).output.contains("up to date"))

        let fastHash = ["THERMOSTAT_BCRYPT_COST": "4"]
        let admin = try Self.run(
            ["create-admin", "--database", database, "--email", "ops@example.com"], stdin: "Op3rator-Secret!\n",
            environment: fastHash)
        #expect(admin.status == 0, "\(admin.output)")
        let weak = try Self.run(
            ["create-admin", "--database", database, "--email", "ops2@example.com"], stdin: "weak\n", environment: fastHash)
        #expect(weak.status != 0)
        #expect(try Self.run(["create-admin", "--database", database, "--email", "x@example.com", "--password", "Op3rator-Secret!"]).status != 0,
            "a password is never accepted as a flag")

        #expect(try Self.run(["tenant", "set-tier", "operators", "standard", "--database", database]).status == 0)
        #expect(try Self.run(["tenant", "set-tier", "operators", "platinum", "--database", database]).status != 0)
        let policies = FileManager.default.temporaryDirectory.appendingPathComponent("policies-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: policies, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: policies) }
        try FileManager.default.copyItem(
            at: Self.repositoryRoot.appendingPathComponent("Policies/free.lua"), to: policies.appendingPathComponent("lab.lua"))
        let lab = try Self.run(
            ["tenant", "set-tier", "operators", "lab", "--database", database], environment: ["THERMOSTAT_POLICIES_DIR": policies.path])
        #expect(lab.status == 0, "a tier is any policy in the policies folder: \(lab.output)")
        #expect(try Self.run(["tenant", "set-tier", "nobody", "pro", "--database", database]).status != 0)

        let insecure = try Self.run(["check", "--deploy"], environment: ["THERMOSTAT_ENV": "development"])
        #expect(insecure.status != 0)
        #expect(insecure.output.contains("THERMOSTAT_SECRET_KEY"))
        let production = [
            "THERMOSTAT_ENV": "production", "THERMOSTAT_SECRET_KEY": "q8Zt3VwL0pNe7RkYc2HfJs5Xa9GmBd4Uo1Ti6Wy",
            "THERMOSTAT_PUBLIC_URL": "https://thermostats.example.com",
        ]
        let secure = try Self.run(
            ["check", "--deploy", "--database", "postgres://db.internal/thermostat?sslmode=verify-full"], environment: production)
        #expect(secure.status == 0, "\(secure.output)")
        let plaintextFallback = try Self.run(
            ["check", "--deploy", "--database", "postgres://db.internal/thermostat"], environment: production)
        #expect(plaintextFallback.status != 0)
        #expect(plaintextFallback.output.contains("sslmode"), "\(plaintextFallback.output)")
        let sqliteInProduction = try Self.run(["check", "--deploy"], environment: production)
        #expect(sqliteInProduction.status == 0)
        #expect(sqliteInProduction.output.contains("WARNING"))
        // `serve` in production refuses what `check --deploy` rejects, before it opens anything.
        var placeholderSecret = production
        placeholderSecret["THERMOSTAT_SECRET_KEY"] = String(repeating: "k", count: 48)
        let refused = try Self.run(["serve", "--port", "0", "--database", database], environment: placeholderSecret)
        #expect(refused.status != 0)
        #expect(refused.output.contains("Refusing to serve in production"), "\(refused.output)")
        #expect(refused.output.contains("THERMOSTAT_SECRET_KEY"), "\(refused.output)")
        let oldProxySetting = try Self.run(["check"], environment: ["THERMOSTAT_TRUST_FORWARDED_FOR": "true"])
        #expect(oldProxySetting.status != 0)
        #expect(oldProxySetting.output.contains("THERMOSTAT_TRUSTED_PROXIES"), "\(oldProxySetting.output)")
        #expect(try Self.run(["serve", "--port", "99999"]).status != 0)

        let script = folder.appendingPathComponent("celsius.lua")
        try "return { transform = function(s) s.temp_inside_c = s.temp_inside_c - 1 return s end }"
            .write(to: script, atomically: true, encoding: .utf8)
        let sample = #"{"device_id":"TH-1","mode":"HEAT","temp_inside_c":20.5,"setpoint_c":21,"hysteresis_c":0.5,"output":"HEAT_ON","timestamp":"2026-01-01T00:00:00Z"}"#
        let checked = try Self.run(["script", "check", script.path, "--hook", "ingest", "--sample", sample])
        #expect(checked.status == 0, "\(checked.output)")
        #expect(checked.output.contains(#""temp_inside_c":19.5"#))
        #expect(try Self.run(["script", "check", script.path, "--hook", "alert"]).status != 0, "wrong hook")
        let noPlugins = try Self.run(["script", "check", script.path, "--hook", "ingest", "--plugins", "/no/such/folder"])
        #expect(noPlugins.status != 0)
        #expect(noPlugins.output.contains("'/no/such/folder' that does not exist"), "\(noPlugins.output)")
        let fahrenheit = #"{"device_id":"TH-1","mode":"HEAT","temp_inside_c":70,"setpoint_c":72,"hysteresis_c":1,"output":"HEAT_ON","timestamp":"2026-01-01T00:00:00Z"}"#
        let converted = try Self.run(
            ["script", "check", Self.repositoryRoot.appendingPathComponent("Plugins/fahrenheit-input/plugin.lua").path, "--hook", "ingest",
             "--sample", fahrenheit])
        #expect(converted.status == 0, "a plugin's own file gets its defaults, and ranges wait for the script: \(converted.output)")
        #expect(converted.output.contains(#""temp_inside_c":21.11"#), "\(converted.output)")
        let broken = folder.appendingPathComponent("broken.lua")
        try "return {\n transform = function(s)\n  return s +\n end }".write(to: broken, atomically: true, encoding: .utf8)
        let failed = try Self.run(["script", "check", broken.path, "--hook", "ingest"])
        #expect(failed.status != 0)
        #expect(failed.output.contains("broken:4"), "\(failed.output)")

        // The review's attacks: each once held a thread forever or ran far past its deadline.
        // Whichever line stops them (the sandbox, or the worker killed at the deadline), the
        // command ends with a clear error.
        let attacks = [
            """
            local co = coroutine.wrap(function()
              for _ in function() return true end, nil, nil, setmetatable({}, { __close = function() while true do end end }) do
                while true do end
              end
            end)
            co()
            """,
            "table.concat(setmetatable({}, { __index = table.concat }), '', 1, math.maxinteger)",
            "local found = ('('):rep(1e5):find('%b()')",
        ]
        for (index, attack) in attacks.enumerated() {
            let file = folder.appendingPathComponent("attack\(index).lua")
            try "return { transform = function(s)\n\(attack)\nreturn s end }".write(to: file, atomically: true, encoding: .utf8)
            let result = try Self.run(["script", "check", file.path, "--hook", "ingest", "--sample", sample])
            #expect(result.status != 0, "attack \(index): \(result.output)")
            #expect(result.output.contains("error: "), "attack \(index): \(result.output)")
        }
    }

    static func run(_ arguments: [String], stdin: String = "", environment extra: [String: String] = [:]) throws
        -> (status: Int32, output: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(ServerProcess.binary))
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = nil
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// Timestamps the server acknowledged with a 2xx, collected from concurrent senders.
final class Acknowledgements: Sendable {
    let stamps = Mutex<Set<String>>([])
}

/// In CI the black-box suite must run, not silently drop out.
@Test(.enabled(if: ProcessInfo.processInfo.environment["CI"] != nil))
func continuousIntegrationRunsTheReleaseBinaryTests() {
    #expect(ServerProcess.binary != nil)
}
