import Foundation
import MailTesting
import NIOHTTP1
import StorageTesting
import Synchronization
import Testing

/// Alerting across a crash, from outside: the release binary is killed with SIGKILL in the middle
/// of a burst of alert-raising samples and started again. Every committed sample must be
/// evaluated (the alerts match the stored samples exactly), no alert may be lost, and no
/// notification may go out twice under different delivery ids.
@Suite("Alerts across a crash", .enabled(if: ServerProcess.binary != nil), .serialized)
struct AlertCrashTests {
    static let devices = 8
    static let samplesPerDevice = 24

    @Test(arguments: Backend.available)
    func aKilledServerLosesNoAlertAndSendsNoNotificationTwice(_ backend: Backend) async throws {
        let smtp = try LoopbackSMTPServer()
        defer { smtp.stop() }
        try await smtp.waitUntilListening()
        let database = try await TestDatabase.makeURL(backend)
        let environment = [
            "THERMOSTAT_SMTP_URL": "smtp://127.0.0.1:\(smtp.port)?starttls=never", "THERMOSTAT_ALERT_TIMER_SECONDS": "1",
        ]
        let server = try ServerProcess(database: database, environment: environment)
        try await server.waitUntilHealthy()
        let session = try await ReleaseBinaryTests.signUp(server, email: "crash@example.com")
        var devices: [(serial: String, key: String)] = [(session.deviceSerial, session.deviceKey)]
        for index in 1..<Self.devices {
            let reply = try await HTTP.request(
                "\(server.baseURL)/api/devices/register/", method: .POST, json: #"{"serial":"CR-\#(index)"}"#,
                headers: [("Cookie", session.cookie)])
            devices.append(("CR-\(index)", try #require(try reply.object()["api_key"] as? String)))
        }
        let channel = try await HTTP.request(
            "\(server.baseURL)/api/alerts/channels/", method: .POST,
            json: #"{"kind":"email","name":"Ops","to":["ops@example.com"]}"#, headers: [("Cookie", session.cookie)])
        let channelID = try #require((try channel.object()["channel"] as? [String: Any])?["id"] as? String)
        let rule = try await HTTP.request(
            "\(server.baseURL)/api/alerts/rules/", method: .POST,
            json: #"{"name":"Hot","script":"threshold","config":{"high_c":25,"hysteresis_c":0.5},"cooldown_seconds":0,"channels":["\#(channelID)"]}"#,
            headers: [("Cookie", session.cookie)])
        #expect(rule.status == .created, "\(rule.body)")

        // Each device alternates hot and cold samples, one request at a time: every hot sample
        // after a cold one starts an alert, every cold one resolves it.
        let start = Date().addingTimeInterval(-3000)
        let acknowledged = Acknowledgements()
        let burst = devices
        await withTaskGroup(of: Void.self) { group in
            for (index, device) in burst.enumerated() {
                group.addTask {
                    for step in 0..<Self.samplesPerDevice {
                        let date = start.addingTimeInterval(Double(step * 10 + index))
                        let inside = step.isMultiple(of: 2) ? 30.0 : 20.0
                        guard
                            let reply = try? await HTTP.request(
                                "\(server.baseURL)/api/telemetry/ingest/", method: .POST,
                                json: Self.sample(device.serial, at: date, inside: inside),
                                headers: [("Authorization", "Device \(device.serial):\(device.key)")], timeoutSeconds: 5)
                        else { return }
                        let stamp = "\(device.serial)/\(step)"
                        if reply.status == .ok,
                            acknowledged.stamps.withLock({ $0.insert(stamp); return $0.count }) == Self.devices * Self.samplesPerDevice / 2
                        {
                            server.signal(SIGKILL)
                        }
                    }
                }
            }
        }
        #expect(await server.waitForExit() != 0, "the server was killed, not stopped")

        let restarted = try ServerProcess(database: database, environment: environment)
        try await restarted.waitUntilHealthy()
        try await Self.waitUntilQuiet(restarted, cookie: session.cookie)

        var expectedAlerts = 0
        for device in devices {
            let readings = try await Self.storedReadings(restarted, cookie: session.cookie, serial: device.serial, from: start)
            // An alert per run of hot readings.
            let runs = zip([20.0] + readings, readings).filter { $0.0 <= 25 && $0.1 > 25 }.count
            expectedAlerts += runs
            let alerts = try await Self.alerts(restarted, cookie: session.cookie, query: "device=\(device.serial)&limit=500")
            #expect(alerts.count == runs, "\(device.serial): \(readings.count) samples stored")
            let open = alerts.filter { $0["state"] as? String != "resolved" }.count
            #expect(open == ((readings.last ?? 0) > 25 ? 1 : 0))
        }

        let deliveries = try await Self.deliveries(restarted, cookie: session.cookie)
        var perNotification: [String: Set<String>] = [:]
        for delivery in deliveries {
            let key = "\(delivery["alert"] as? String ?? "").\(delivery["event"] as? String ?? "")"
            perNotification[key, default: []].insert(delivery["id"] as? String ?? "")
            #expect(delivery["status"] as? String == "sent", "\(delivery)")
        }
        #expect(perNotification.values.allSatisfy { $0.count == 1 }, "one delivery id per notification")
        #expect(perNotification.keys.filter { $0.hasSuffix(".firing") }.count == expectedAlerts)

        let mailedIDs = Set(
            try smtp.messages().compactMap { message in
                LoopbackSMTPServer.text(of: message).components(separatedBy: "\n").first { $0.hasPrefix("Delivery ") }
                    .map { String($0.dropFirst("Delivery ".count)) }
            })
        #expect(mailedIDs == Set(deliveries.compactMap { $0["id"] as? String }), "every delivery mailed, under its own id")
        restarted.signal(SIGTERM)
        #expect(await restarted.waitForExit() == 0)
    }

    static func sample(_ serial: String, at date: Date, inside: Double) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return #"{"device_id":"\#(serial)","mode":"AUTO","temp_inside_c":\#(inside),"temp_outside_c":-2,"setpoint_c":21,"hysteresis_c":0.5,"output":"OFF","timestamp":"\#(formatter.string(from: date))"}"#
    }

    /// Waits until no sample waits for evaluation and no delivery is pending.
    static func waitUntilQuiet(_ server: ServerProcess, cookie: String) async throws {
        for _ in 0..<3000 {
            let status = try await HTTP.request("\(server.baseURL)/api/alerts/status/", headers: [("Cookie", cookie)])
            let queued = try status.object()["queued_samples"] as? Int
            let pending = try await deliveries(server, cookie: cookie).contains {
                ["pending", "retrying"].contains($0["status"] as? String)
            }
            if queued == 0 && !pending { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("alerting did not settle")
    }

    static func storedReadings(_ server: ServerProcess, cookie: String, serial: String, from: Date) async throws -> [Double] {
        let since = ISO8601DateFormatter().string(from: from.addingTimeInterval(-1))
        let reply = try await HTTP.request(
            "\(server.baseURL)/api/telemetry/query/?device=\(serial)&from=\(since)&limit=1000",
            headers: [("Cookie", cookie)])
        return (try reply.object()["samples"] as? [[String: Any]] ?? []).compactMap { $0["temp_inside_c"] as? Double }
    }

    static func alerts(_ server: ServerProcess, cookie: String, query: String) async throws -> [[String: Any]] {
        let reply = try await HTTP.request("\(server.baseURL)/api/alerts/?\(query)", headers: [("Cookie", cookie)])
        return try #require(try reply.object()["alerts"] as? [[String: Any]])
    }

    static func deliveries(_ server: ServerProcess, cookie: String) async throws -> [[String: Any]] {
        let reply = try await HTTP.request("\(server.baseURL)/api/alerts/deliveries/", headers: [("Cookie", cookie)])
        return try #require(try reply.object()["deliveries"] as? [[String: Any]])
    }
}
