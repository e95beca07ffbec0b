import Foundation
import HTTPTypes
import HummingbirdTesting
import MailTesting
import PlatformCore
@testable import Server
import Storage
import StorageTesting
import Testing

/// Alerts end to end: rules from built-in plugins and tenant Lua evaluated after the commit,
/// the lifecycle with cooldowns, `for_seconds`, reminders, no-data and timer rules, silences and
/// acknowledgements, mail through a real SMTP server and signed webhooks to a real receiver.
@Suite("Alerts")
struct AlertTests {
    static func configure(_ configuration: inout PlatformConfiguration) {
        configuration.alertTimerSeconds = 1
        configuration.deliveryAttempts = 3
        configuration.deliveryRetrySeconds = 5
    }

    /// The device's sample `offset` seconds from `base`, reading `inside`.
    static func sample(_ device: TestDevice, _ base: Timestamp, _ offset: Double, inside: Double) -> String {
        SampleJSON.make(serial: device.serial, at: base.adding(seconds: offset), inside: inside)
    }

    @Test(arguments: Backend.available)
    func aThresholdFiresOnceMailsOnceAndResolvesPastTheHysteresis(_ backend: Backend) async throws {
        let smtp = try LoopbackSMTPServer()
        defer { smtp.stop() }
        try await smtp.waitUntilListening()
        let clock = ManualClock()
        try await TestPlatform.run(backend, clock: clock, configure: {
            Self.configure(&$0)
            $0.smtpURL = "smtp://127.0.0.1:\(smtp.port)?starttls=never"
            $0.mailFrom = "alerts@example.com"
        }) { client, _ in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let channel = try await client.createChannel(user, #"{"kind":"email","name":"Ops","to":["ops@example.com"]}"#)
            let rule = try await client.createRule(
                user,
                #"{"name":"Too hot","script":"threshold","device":"\#(device.serial)","config":{"high_c":25,"hysteresis_c":1},"channels":["\#(channel)"]}"#
            )
            let base = clock.now().adding(seconds: -600)
            func mails() throws -> [String] { try smtp.messages() }

            #expect(try await client.ingest(device, Self.sample(device, base, 0, inside: 26)).status == .ok)
            let firing = try await client.waitForAlert(user, "state=firing&rule=\(rule)") { _ in true }
            #expect(firing["key"] as? String == "high")
            #expect(firing["value"] as? Double == 26)
            try await eventually("the firing mail") { try mails().count == 1 }
            let mail = try mails()[0]
            #expect(LoopbackSMTPServer.subject(of: mail).hasPrefix("[FIRING] Too hot on \(device.serial): "))
            #expect(mail.contains("To: ops@example.com"))
            let text = LoopbackSMTPServer.text(of: mail)
            #expect(text.contains("Value:    26") && text.contains("Rule:     Too hot"))
            #expect(text.contains("/devices/\(device.serial)"), "a link to the device page")

            // Hotter, then inside the hysteresis band: the same alert, updated, and no new mail.
            #expect(try await client.ingest(device, Self.sample(device, base, 10, inside: 27)).status == .ok)
            #expect(try await client.ingest(device, Self.sample(device, base, 20, inside: 24.5)).status == .ok)
            _ = try await client.waitForAlert(user, "state=firing&rule=\(rule)") { $0["value"] as? Double == 24.5 }
            #expect(try await client.alerts(user, "rule=\(rule)").count == 1)

            // Back past the hysteresis: resolved, and mailed as resolved.
            #expect(try await client.ingest(device, Self.sample(device, base, 30, inside: 23.5)).status == .ok)
            _ = try await client.waitForAlert(user, "state=resolved&rule=\(rule)") { _ in true }
            try await eventually("the resolved mail") { try mails().count == 2 }
            #expect(try mails().contains { LoopbackSMTPServer.subject(of: $0).hasPrefix("[RESOLVED] Too hot") })

            // Flapping inside the cooldown: a new alert, but nobody is mailed again.
            #expect(try await client.ingest(device, Self.sample(device, base, 40, inside: 26)).status == .ok)
            #expect(try await client.ingest(device, Self.sample(device, base, 50, inside: 22)).status == .ok)
            try await eventually("the second episode resolved") {
                try await client.alerts(user, "rule=\(rule)&state=resolved").count == 2
            }
            let second = try #require(try await client.alerts(user, "rule=\(rule)").first { $0["id"] as? String != firing["id"] as? String })
            #expect(second["last_notified_at"] is NSNull)
            try await client.waitForQuietDeliveries(user)
            #expect(try mails().count == 2)
        }
    }

    @Test(arguments: Backend.available)
    func webhooksAreSignedRetriedAndDeadLettered(_ backend: Backend) async throws {
        let clock = ManualClock()
        try await WebhookReceiver.run { receiver in
            try await TestPlatform.run(backend, clock: clock, configure: Self.configure) { client, _ in
                let user = try await client.register()
                let device = try await client.registerDevice(user)
                let created = try await client.json(
                    "/api/alerts/channels/", method: .post, body: #"{"kind":"webhook","name":"Hook","url":"\#(receiver.url)"}"#,
                    cookie: user.cookie)
                #expect(created.status == .created)
                let channelJSON = try #require(try created.object()["channel"] as? [String: Any])
                let secret = try #require(channelJSON["secret"] as? String)
                #expect(secret.hasPrefix("whsec_"))
                let channel = try #require(channelJSON["id"] as? String)
                receiver.use(secret: secret)
                let shown = try await client.json("/api/alerts/channels/\(channel)/", cookie: user.cookie)
                #expect((try shown.object()["channel"] as? [String: Any])?["secret"] == nil, "the secret is shown once")

                // The test send answers with its delivery.
                let test = try await client.json("/api/alerts/channels/\(channel)/test/", method: .post, cookie: user.cookie)
                #expect(test.status == .ok)
                #expect((try test.object()["delivery"] as? [String: Any])?["status"] as? String == "sent")
                #expect(receiver.received.last?.event == "test")
                #expect(receiver.received.last?.signatureValid == true)

                // Two 500s, then 200: three attempts of one delivery id.
                receiver.answer([500, 500])
                _ = try await client.createRule(
                    user, #"{"name":"Hot","script":"threshold","config":{"high_c":25},"channels":["\#(channel)"]}"#)
                let base = clock.now().adding(seconds: -600)
                #expect(try await client.ingest(device, Self.sample(device, base, 0, inside: 30)).status == .ok)
                try await eventually("the first attempt") { receiver.received.count == 2 }
                for expected in 3...4 {
                    try await client.waitForRetry(user, afterAttempts: expected - 2, clock: clock)
                    clock.advance(seconds: 60)
                    try await eventually("attempt \(expected)") { receiver.received.count == expected }
                }
                let attempts = Array(receiver.received.suffix(3))
                #expect(attempts.map(\.answered) == [500, 500, 200])
                #expect(Set(attempts.map(\.deliveryID)).count == 1, "one delivery id across retries")
                #expect(attempts.allSatisfy { $0.signatureValid })
                let body = attempts[2].body
                #expect(body["event"] as? String == "firing" && body["state"] as? String == "firing")
                #expect(body["device"] as? String == device.serial && body["rule"] as? String == "Hot")
                #expect(body["severity"] as? String == "warning" && body["value"] as? Double == 30)
                // The sender records the outcome after the receiver has answered.
                var firing: [String: Any] = [:]
                try await eventually("the delivery recorded as sent") {
                    let log = try await client.json("/api/alerts/deliveries/", cookie: user.cookie)
                    firing = (try log.object()["deliveries"] as? [[String: Any]])?.first { $0["event"] as? String == "firing" } ?? [:]
                    return firing["status"] as? String != "retrying"
                }
                #expect(firing["status"] as? String == "sent" && firing["attempts"] as? Int == 3)
                #expect(firing["id"] as? String == attempts[0].deliveryID)

                // Always 500: failed after the last attempt, then retried by hand.
                receiver.answer([500, 500, 500])
                #expect(try await client.ingest(device, Self.sample(device, base, 10, inside: 20)).status == .ok)
                try await eventually("the resolved notification's first attempt") { receiver.received.count == 5 }
                for attempt in 1...2 {
                    try await client.waitForRetry(user, afterAttempts: attempt, clock: clock)
                    let count = receiver.received.count
                    clock.advance(seconds: 120)
                    try await eventually("another attempt") { receiver.received.count == count + 1 }
                }
                var dead: [String: Any] = [:]
                try await eventually("a dead letter") {
                    let log = try await client.json("/api/alerts/deliveries/", cookie: user.cookie)
                    dead = (try log.object()["deliveries"] as? [[String: Any]])?.first { $0["event"] as? String == "resolved" } ?? [:]
                    return dead["status"] as? String == "failed"
                }
                #expect((dead["last_error"] as? String)?.contains("500") == true)
                let deadID = try #require(dead["id"] as? String)
                let retried = try await client.json("/api/alerts/deliveries/\(deadID)/retry/", method: .post, cookie: user.cookie)
                #expect((try retried.object()["delivery"] as? [String: Any])?["status"] as? String == "sent")
                #expect(receiver.received.last?.deliveryID == deadID)
                let again = try await client.json("/api/alerts/deliveries/\(deadID)/retry/", method: .post, cookie: user.cookie)
                #expect(again.status == .conflict, "only a failed delivery is retried")
            }
        }
    }

    @Test func forSecondsRemindersAndAcknowledgementFollowTheClock() async throws {
        let clock = ManualClock()
        try await WebhookReceiver.run { receiver in
            try await TestPlatform.run(clock: clock, configure: Self.configure) { client, _ in
                let user = try await client.register()
                let device = try await client.registerDevice(user)
                let channel = try await client.createWebhook(user, receiver)
                let rule = try await client.createRule(
                    user,
                    #"{"name":"Held","script":"threshold","config":{"high_c":25},"for_seconds":300,"repeat_seconds":600,"channels":["\#(channel)"]}"#
                )
                let base = clock.now().adding(seconds: -60)
                #expect(try await client.ingest(device, Self.sample(device, base, 0, inside: 30)).status == .ok)
                let pending = try await client.waitForAlert(user, "rule=\(rule)&state=pending") { _ in true }
                #expect(pending["fired_at"] is NSNull)
                clock.advance(seconds: 299)
                try await client.waitForTimer(user)
                #expect(try await client.alerts(user, "rule=\(rule)&state=pending").count == 1, "not before for_seconds")
                #expect(receiver.received.isEmpty)

                clock.advance(seconds: 2)
                let firing = try await client.waitForAlert(user, "rule=\(rule)&state=firing") { _ in true }
                try await eventually("the firing webhook") { receiver.received.map(\.event) == ["firing"] }

                clock.advance(seconds: 601)
                try await eventually("a reminder") { receiver.received.map(\.event) == ["firing", "reminder"] }

                let id = try #require(firing["id"] as? String)
                let acknowledged = try await client.json("/api/alerts/\(id)/ack/", method: .post, cookie: user.cookie)
                let alert = try #require(try acknowledged.object()["alert"] as? [String: Any])
                #expect(alert["acknowledged_at"] is String && alert["acknowledged_by"] is String)
                clock.advance(seconds: 1300)
                try await client.waitForTimer(user)
                #expect(receiver.received.count == 2, "no reminder once acknowledged")
            }
        }
    }

    @Test(arguments: Backend.available)
    func silentDevicesGoToNoDataAndStaleOnTheTimer(_ backend: Backend) async throws {
        let clock = ManualClock()
        try await TestPlatform.run(backend, clock: clock, configure: Self.configure) { client, _ in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let noData = try await client.createRule(
                user, #"{"name":"Watch","script":"threshold","config":{"high_c":40},"no_data_seconds":600}"#)
            let stale = try await client.createRule(
                user, #"{"name":"Stale","script":"stale-device","config":{"max_silence_minutes":5}}"#)
            #expect(try await client.ingest(device, Self.sample(device, clock.now(), -1, inside: 20)).status == .ok)
            try await client.waitForQueue(user)
            try await client.waitForTimer(user)
            #expect(try await client.alerts(user, "").isEmpty)

            clock.advance(seconds: 700)
            let silent = try await client.waitForAlert(user, "rule=\(noData)&state=no_data") { _ in true }
            #expect(silent["key"] as? String == "#no_data")
            let staleAlert = try await client.waitForAlert(user, "rule=\(stale)&state=firing") { _ in true }
            #expect((staleAlert["message"] as? String)?.contains(device.serial) == true)

            #expect(try await client.ingest(device, Self.sample(device, clock.now(), -1, inside: 20)).status == .ok)
            _ = try await client.waitForAlert(user, "rule=\(noData)&state=resolved") { _ in true }
            _ = try await client.waitForAlert(user, "rule=\(stale)&state=resolved") { _ in true }
        }
    }

    @Test func aTenantLuaRuleKeepsStateAndAFailingOneIsVisible() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock, configure: Self.configure) { client, _ in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let counter = #"""
                return { evaluate = function(sample, state, ctx)
                  state.n = (state.n or 0) + 1
                  if sample.temp_inside_c > 99 then error("sensor says " .. sample.temp_inside_c) end
                  if state.n >= ctx.config.after then
                    return { { key = "busy", severity = "critical", message = "seen " .. state.n .. " samples", value = state.n } }, state
                  end
                  return {}, state
                end }
                """#
            try await client.uploadAndActivate(user, name: "counter", hook: "alert", source: counter)
            let rule = try await client.createRule(user, #"{"name":"Counts","script":"counter","config":{"after":3}}"#)
            let neighbour = try await client.createRule(user, #"{"name":"Boiling","script":"threshold","config":{"high_c":99}}"#)
            let base = clock.now().adding(seconds: -600)
            for index in 0..<3 {
                #expect(try await client.ingest(device, Self.sample(device, base, Double(index), inside: 20)).status == .ok)
            }
            let busy = try await client.waitForAlert(user, "rule=\(rule)&state=firing") { _ in true }
            #expect(busy["severity"] as? String == "critical" && busy["message"] as? String == "seen 3 samples")

            #expect(try await client.ingest(device, Self.sample(device, base, 10, inside: 100)).status == .ok)
            let failed = try await client.waitForAlert(user, "rule=\(rule)&state=error") { _ in true }
            #expect(failed["key"] as? String == "#error")
            #expect((failed["message"] as? String)?.contains("sensor says 100") == true)
            #expect(try await client.alerts(user, "rule=\(rule)&state=firing").count == 1, "a failure leaves the alerts as they were")
            _ = try await client.waitForAlert(user, "rule=\(neighbour)&state=firing") { $0["value"] as? Double == 100 }

            #expect(try await client.ingest(device, Self.sample(device, base, 11, inside: 20)).status == .ok)
            _ = try await client.waitForAlert(user, "rule=\(rule)&state=resolved") { $0["key"] as? String == "#error" }
            let firing = try await client.alerts(user, "rule=\(rule)&state=firing")
            #expect(firing.first?["message"] as? String == "seen 4 samples", "the failing sample left the state untouched")
        }
    }

    @Test(arguments: Backend.available)
    func silencesMuteNotificationsAndTenantsNeverSeeEachOther(_ backend: Backend) async throws {
        let clock = ManualClock()
        try await WebhookReceiver.run { receiver in
            try await TestPlatform.run(backend, clock: clock, configure: Self.configure) { client, _ in
                let owner = try await client.register(tenant: "Acme")
                let other = try await client.register(tenant: "Globex")
                let device = try await client.registerDevice(owner)
                let otherDevice = try await client.registerDevice(other)
                let channel = try await client.createWebhook(owner, receiver)
                let rule = try await client.createRule(
                    owner, #"{"name":"Hot","script":"threshold","config":{"high_c":25},"channels":["\#(channel)"]}"#)
                let otherRule = try await client.createRule(other, #"{"name":"Any","script":"threshold","config":{"high_c":0}}"#)

                let until = clock.now().adding(seconds: 3600).iso8601
                let silence = try await client.json(
                    "/api/alerts/silences/", method: .post,
                    body: #"{"device":"\#(device.serial)","until":"\#(until)","comment":"maintenance"}"#, cookie: owner.cookie)
                #expect(silence.status == .created)
                let base = clock.now().adding(seconds: -600)
                #expect(try await client.ingest(device, Self.sample(device, base, 0, inside: 30)).status == .ok)
                let alert = try await client.waitForAlert(owner, "rule=\(rule)&state=firing") { _ in true }
                try await client.waitForQuietDeliveries(owner)
                #expect(receiver.received.isEmpty, "silenced")
                #expect(alert["last_notified_at"] is NSNull)

                // The other tenant's catch-all rule saw nothing of this tenant's sample.
                try await client.waitForQueue(other)
                #expect(try await client.alerts(other, "").isEmpty)
                #expect(try await client.ingest(otherDevice, Self.sample(otherDevice, base, 0, inside: 5)).status == .ok)
                _ = try await client.waitForAlert(other, "rule=\(otherRule)&state=firing") { $0["device"] as? String == otherDevice.serial }
                #expect(try await client.alerts(owner, "").count == 1)

                // Another tenant's ids are 404s, never 403s, and change nothing.
                let id = try #require(alert["id"] as? String)
                let silenceID = try #require((try silence.object()["silence"] as? [String: Any])?["id"] as? String)
                let test = try await client.json("/api/alerts/channels/\(channel)/test/", method: .post, cookie: owner.cookie)
                let deliveryID = try #require((try test.object()["delivery"] as? [String: Any])?["id"] as? String)
                for (path, method, body) in [
                    ("/api/alerts/\(id)/", HTTPRequest.Method.get, nil), ("/api/alerts/\(id)/ack/", .post, nil),
                    ("/api/alerts/rules/\(rule)/", .get, nil), ("/api/alerts/rules/\(rule)/", .delete, nil),
                    ("/api/alerts/rules/\(rule)/", .patch, #"{"enabled":false}"#),
                    ("/api/alerts/channels/\(channel)/", .get, nil), ("/api/alerts/channels/\(channel)/test/", .post, nil),
                    ("/api/alerts/channels/\(channel)/", .patch, #"{"name":"Mine now"}"#),
                    ("/api/alerts/channels/\(channel)/", .delete, nil), ("/api/alerts/silences/\(silenceID)/", .delete, nil),
                    ("/api/alerts/deliveries/\(deliveryID)/retry/", .post, nil),
                ] as [(String, HTTPRequest.Method, String?)] {
                    #expect(try await client.json(path, method: method, body: body, cookie: other.cookie).status == .notFound, "\(path)")
                }
                #expect(try await client.json("/api/alerts/rules/\(rule)/", cookie: owner.cookie).status == .ok)
                #expect(try await client.json("/api/alerts/channels/\(channel)/", cookie: owner.cookie).status == .ok)
                let kept = try await client.json("/api/alerts/silences/", cookie: owner.cookie)
                let silences = try #require(try kept.object()["silences"] as? [[String: Any]])
                #expect(silences.contains { $0["id"] as? String == silenceID }, "the silence is still there")
                let others = try await client.json("/api/alerts/deliveries/", cookie: other.cookie)
                #expect((try others.object()["deliveries"] as? [Any])?.isEmpty == true, "another tenant's deliveries stay hidden")
                let foreign = try await client.json(
                    "/api/alerts/rules/", method: .post, body: #"{"name":"Steal","script":"threshold","channels":["\#(channel)"]}"#,
                    cookie: other.cookie)
                #expect(foreign.status == .unprocessableContent && foreign.errorField == "channels[0]")
            }
        }
    }

    /// A backlog of several passes, each reading the next one's samples while it commits, is
    /// evaluated completely, each device's samples once and in time order, also where a pass
    /// splits a device's samples between worker calls; a rule that fails on a device sits out
    /// the device's later samples in that pass, in later calls too.
    @Test(arguments: Backend.available)
    func aBacklogOfSeveralPassesIsEvaluatedOnceAndInOrder(_ backend: Backend) async throws {
        let clock = ManualClock()
        // A worker call's budget is shared by its rules over up to 1,000 samples: generous here,
        // so that a machine starved by the rest of the suite does not fail a rule on time.
        let configure: (inout PlatformConfiguration) -> Void = { configuration in
            Self.configure(&configuration)
            configuration.scriptDeadlineMilliseconds = 10_000
        }
        try await TestPlatform.runWithoutJobs(backend, clock: clock, configure: configure) { client, store, platform in
            let user = try await client.register()
            let counter = #"""
                return { evaluate = function(sample, state, ctx)
                  if state.last and sample.time <= state.last then error("out of order: " .. sample.time .. " after " .. state.last) end
                  state.last = sample.time
                  state.n = (state.n or 0) + 1
                  if state.n == ctx.config.total then return { { key = "all", message = "seen " .. state.n } }, state end
                  return {}, state
                end }
                """#
            try await client.uploadAndActivate(user, name: "counter", hook: "alert", source: counter)
            let rule = try await client.createRule(user, #"{"name":"Counts","script":"counter","config":{"total":2600}}"#)
            let base = clock.now().adding(seconds: -2 * 86_400)
            let breaking = #"""
                return { evaluate = function(sample, state, ctx)
                  if sample.device_id == "TH-A" and math.abs(sample.time - ctx.config.at) < 1 then error("breaks here") end
                  state.n = (state.n or 0) + 1
                  return {}, state
                end }
                """#
            try await client.uploadAndActivate(user, name: "breaking", hook: "alert", source: breaking)
            // TH-A's 1,500th sample: in the pass's second call, whose part of TH-A ends before
            // its samples do (the third call carries the rest).
            let breaksAt = base.adding(seconds: 1_499 * 60).secondsSinceEpoch
            let breaks = try await client.createRule(user, #"{"name":"Breaks","script":"breaking","config":{"at":\#(breaksAt)}}"#)
            // Two devices 30 s apart, each with more samples than a worker call carries, so
            // passes and calls end between them as well as within one.
            #expect(AlertEvaluator.samplesPerCall < 2_600 && AlertEvaluator.passSize < 5_200)
            for (index, serial) in ["TH-A", "TH-B"].enumerated() {
                let device = try await client.registerDevice(user, serial: serial)
                for part in 0..<4 {
                    let start = base.adding(seconds: Double(part * 650 * 60 + index * 30))
                    #expect(try await client.ingest(device, SampleJSON.batch(serial: serial, from: start, count: 650)).status == .ok)
                }
            }
            let tenantID = try TierTests.tenantID(user)
            #expect(try await store.alertQueueLength(tenantID: tenantID) == 5_200, "more than a pass's worth")

            #expect(await platform.alertEvaluator.work(tenant: tenantID, timer: false) == false, "drained in one turn")
            #expect(try await store.alertQueueLength(tenantID: tenantID) == 0)
            let all = try await client.alerts(user, "rule=\(rule)&state=firing")
            #expect(all.count == 2 && all.allSatisfy { $0["message"] as? String == "seen 2600" }, "\(all)")
            #expect(try await client.alerts(user, "rule=\(rule)&state=error").isEmpty)
            let broken = try await client.alerts(user, "rule=\(breaks)&state=error")
            #expect(broken.count == 1 && broken.first?["device"] as? String == "TH-A", "\(broken)")
            let breaksID = try #require(UUID(uuidString: breaks))
            let states = try await store.ruleDeviceStates(tenantID: tenantID, serials: ["TH-A", "TH-B"])
            let counted = Dictionary(
                uniqueKeysWithValues: states.filter { $0.ruleID == breaksID }.map { ($0.deviceSerial, $0.stateJSON) })
            #expect(counted == ["TH-A": #"{"n":1499}"#, "TH-B": #"{"n":2600}"#], "the samples before the failure count, none after it")
            let script = try #require(try await store.scripts(tenantID: tenantID).first { $0.name == "breaking" })
            #expect(script.lastError?.contains("breaks here") == true)
            let input = try #require(script.lastFailureInput.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any])
            #expect(input["device_id"] as? String == "TH-A")
            let failedAt = try #require(input["time"] as? Double)
            #expect(abs(failedAt - breaksAt) < 1, "the script's failure keeps the sample it failed at")
        }
    }

    @Test func badInputIsRefusedAndChangesNothing() async throws {
        try await TestPlatform.run(configure: Self.configure) { client, store in
            let user = try await client.register()
            _ = try await client.registerDevice(user, serial: "TH-OK")
            for (body, field) in [
                (#"{"name":"x","script":"no-such-plugin"}"#, "script"),
                (#"{"name":"x","script":"threshold","device":"TH-NONE"}"#, "device"),
                (#"{"name":"x","script":"threshold","channels":["\#(UUID())"]}"#, "channels[0]"),
                (#"{"name":"x","script":"threshold","for_seconds":-1}"#, "for_seconds"),
                (#"{"name":"x","script":"threshold","repeat_seconds":5}"#, "repeat_seconds"),
                (#"{"name":"x","script":"threshold","config":[1]}"#, "config"),
                (#"{"name":"x","script":"threshold","enabled":"yes"}"#, "enabled"),
                (#"{"name":"x","script":"threshold","colour":"red"}"#, "colour"),
                (#"{"script":"threshold"}"#, "name"),
            ] {
                let response = try await client.json("/api/alerts/rules/", method: .post, body: body, cookie: user.cookie)
                #expect(response.status == .unprocessableContent, "\(body)")
                #expect(response.errorField == field, "\(body): \(String(buffer: response.body))")
            }
            for (body, field) in [
                (#"{"kind":"pager","name":"x"}"#, "kind"),
                (#"{"kind":"email","name":"x","to":["not-an-address"]}"#, "to[0]"),
                (#"{"kind":"email","name":"x","to":[]}"#, "to"),
                (#"{"kind":"webhook","name":"x","url":"ftp://example.com/"}"#, "url"),
                (#"{"kind":"webhook","name":"x","url":"https://user:pw@example.com/"}"#, "url"),
            ] {
                let response = try await client.json("/api/alerts/channels/", method: .post, body: body, cookie: user.cookie)
                #expect(response.status == .unprocessableContent, "\(body)")
                #expect(response.errorField == field, "\(body): \(String(buffer: response.body))")
            }
            let malformed = try await client.json("/api/alerts/rules/", method: .post, body: #"{"name":"#, cookie: user.cookie)
            #expect(malformed.status == .badRequest)
            let someID = UUID().uuidString
            for (path, method) in [
                ("/api/alerts/", HTTPRequest.Method.get), ("/api/alerts/rules/", .get), ("/api/alerts/rules/", .post),
                ("/api/alerts/channels/", .get), ("/api/alerts/silences/", .get), ("/api/alerts/deliveries/", .get),
                ("/api/alerts/status/", .get), ("/api/alerts/\(someID)/", .get), ("/api/alerts/\(someID)/ack/", .post),
                ("/api/alerts/rules/\(someID)/", .patch), ("/api/alerts/channels/\(someID)/test/", .post),
                ("/api/alerts/silences/", .post), ("/api/alerts/silences/\(someID)/", .delete),
                ("/api/alerts/deliveries/\(someID)/retry/", .post),
            ] {
                let body = method == .post || method == .patch ? "{}" : nil
                #expect(try await client.json(path, method: method, body: body).status == .unauthorized, "\(path)")
            }
            let badQueries = ["state=burning", "limit=0", "limit=abc", "after=nope", "rule=nope"]
            for query in badQueries {
                #expect(try await client.json("/api/alerts/?\(query)", cookie: user.cookie).status == .unprocessableContent, "\(query)")
            }
            let tenant = try #require(UUID(uuidString: user.tenantID))
            #expect(try await store.alertRules(tenantID: tenant).isEmpty)
            #expect(try await store.alertChannels(tenantID: tenant).isEmpty)
            let pastSilence = try await client.json(
                "/api/alerts/silences/", method: .post, body: #"{"until":"2020-01-01T00:00:00Z"}"#, cookie: user.cookie)
            #expect(pastSilence.status == .unprocessableContent && pastSilence.errorField == "until")
        }
    }

    @Test func editingARuleKeepsItsAlertAndDeletingItRemovesThem() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock, configure: Self.configure) { client, store in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let rule = try await client.createRule(user, #"{"name":"Hot","script":"threshold","config":{"high_c":25}}"#)
            let base = clock.now().adding(seconds: -600)
            #expect(try await client.ingest(device, Self.sample(device, base, 0, inside: 30)).status == .ok)
            let first = try await client.waitForAlert(user, "rule=\(rule)&state=firing") { _ in true }
            let edited = try await client.json(
                "/api/alerts/rules/\(rule)/", method: .patch, body: #"{"config":{"high_c":28},"cooldown_seconds":60}"#,
                cookie: user.cookie)
            #expect(edited.status == .ok)
            let shown = try #require(try edited.object()["rule"] as? [String: Any])
            #expect((shown["config"] as? [String: Any])?["high_c"] as? Int == 28 && shown["cooldown_seconds"] as? Int == 60)
            #expect(try await client.ingest(device, Self.sample(device, base, 10, inside: 29)).status == .ok)
            _ = try await client.waitForAlert(user, "rule=\(rule)&state=firing") { $0["value"] as? Double == 29 }
            #expect(try await client.alerts(user, "rule=\(rule)").map { $0["id"] as? String } == [first["id"] as? String])

            let disabled = try await client.json(
                "/api/alerts/rules/\(rule)/", method: .patch, body: #"{"enabled":false}"#, cookie: user.cookie)
            #expect(disabled.status == .ok)
            _ = try await client.waitForAlert(user, "rule=\(rule)&state=resolved") { _ in true }

            #expect(try await client.json("/api/alerts/rules/\(rule)/", method: .delete, cookie: user.cookie).status == .noContent)
            #expect(try await client.alerts(user, "").isEmpty)
            let tenant = try #require(UUID(uuidString: user.tenantID))
            #expect(try await store.alertRules(tenantID: tenant).isEmpty)
        }
    }
}

extension TestClientProtocol {
    func createChannel(_ user: TestUser, _ body: String) async throws -> String {
        let response = try await json("/api/alerts/channels/", method: .post, body: body, cookie: user.cookie)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        return try #require((try response.object()["channel"] as? [String: Any])?["id"] as? String)
    }

    func createWebhook(_ user: TestUser, _ receiver: WebhookReceiver) async throws -> String {
        let response = try await json(
            "/api/alerts/channels/", method: .post, body: #"{"kind":"webhook","name":"Hook","url":"\#(receiver.url)"}"#,
            cookie: user.cookie)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        let channel = try #require(try response.object()["channel"] as? [String: Any])
        receiver.use(secret: try #require(channel["secret"] as? String))
        return try #require(channel["id"] as? String)
    }

    func createRule(_ user: TestUser, _ body: String) async throws -> String {
        let response = try await json("/api/alerts/rules/", method: .post, body: body, cookie: user.cookie)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        return try #require((try response.object()["rule"] as? [String: Any])?["id"] as? String)
    }

    func uploadAndActivate(_ user: TestUser, name: String, hook: String, source: String) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["name": name, "hook": hook, "source": source])
        let uploaded = try await json("/api/scripts/", method: .post, body: String(decoding: body, as: UTF8.self), cookie: user.cookie)
        #expect(uploaded.status == .created, "\(String(buffer: uploaded.body))")
        let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
        #expect(try await json("/api/scripts/\(id)/activate/", method: .post, cookie: user.cookie).status == .ok)
    }

    func alerts(_ user: TestUser, _ query: String) async throws -> [[String: Any]] {
        let response = try await json("/api/alerts/?\(query)", cookie: user.cookie)
        #expect(response.status == .ok, "\(String(buffer: response.body))")
        return try #require(try response.object()["alerts"] as? [[String: Any]])
    }

    /// Waits for an alert matching the query and `condition`, and answers it.
    func waitForAlert(_ user: TestUser, _ query: String, _ condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
        var found: [String: Any]?
        try await eventually("an alert with \(query)") {
            found = try await self.alerts(user, query).first(where: condition)
            return found != nil
        }
        return try #require(found)
    }

    /// Waits until the tenant's queue of samples to evaluate is empty.
    func waitForQueue(_ user: TestUser) async throws {
        try await eventually("the alert queue drained") {
            let status = try await self.json("/api/alerts/status/", cookie: user.cookie)
            return (try status.object()["queued_samples"] as? Int) == 0
        }
    }

    /// Waits until a whole run of the alert timer for the tenant began after the call.
    func waitForTimer(_ user: TestUser) async throws {
        func runs() async throws -> Int {
            let status = try await self.json("/api/alerts/status/", cookie: user.cookie)
            return try #require(try status.object()["timer_runs"] as? Int)
        }
        let start = try await runs()
        try await eventually("two timer runs") { try await runs() >= start + 2 }
    }

    /// Waits until a delivery of the tenant waits for its retry after its `attempts`-th attempt,
    /// its outcome stored. While an attempt is on the wire the delivery already counts it and
    /// still shows `retrying`, due at the end of its 120 s lease; moving the clock on then would
    /// put the retry the outcome schedules past the clock. The retries here wait at most 10 s.
    func waitForRetry(_ user: TestUser, afterAttempts attempts: Int, clock: ManualClock) async throws {
        try await eventually("a delivery waiting to retry after attempt \(attempts)") {
            let log = try await self.json("/api/alerts/deliveries/", cookie: user.cookie)
            let items = try #require(try log.object()["deliveries"] as? [[String: Any]])
            return items.contains { item in
                guard item["status"] as? String == "retrying", item["attempts"] as? Int == attempts,
                    let next = (item["next_attempt_at"] as? String).flatMap(Timestamp.init(iso8601:))
                else { return false }
                return next.secondsSinceEpoch < clock.now().secondsSinceEpoch + 60
            }
        }
    }

    /// Waits until the tenant's samples are evaluated and no delivery of the tenant is pending.
    func waitForQuietDeliveries(_ user: TestUser) async throws {
        try await waitForQueue(user)
        try await eventually("no delivery pending") {
            let log = try await self.json("/api/alerts/deliveries/", cookie: user.cookie)
            let items = try #require(try log.object()["deliveries"] as? [[String: Any]])
            return !items.contains { ["pending", "retrying"].contains($0["status"] as? String) }
        }
    }
}

@Suite("Webhook URLs")
struct WebhookURLTests {
    @Test(arguments: [
        ("localhost", true), ("localhost.", true), ("printer.local", true), ("db.internal", true), ("127.0.0.1", true),
        ("127.1", true), ("2130706433", true), ("0x7f.1", true), ("10.1.2.3", true), ("172.20.0.1", true),
        ("192.168.1.10", true), ("169.254.169.254", true), ("100.64.0.1", true), ("[::1]", true), ("::ffff:127.0.0.1", true),
        ("[fe80::1]", true), ("febf::1", true), ("fd00::1", true), ("example.com", false), ("1e100.net", false),
        ("8.8.8.8", false), ("172.32.0.1", false), ("[2001:db8::1]", false), ("0177.0.0.1", true),
        ("0:0:0:0:0:0:0:1", true), ("::ffff:7f00:1", true), ("[::ffff:8.8.8.8]", false), ("::", true),
    ])
    func internalHostsAreRecognised(_ host: String, _ isInternal: Bool) {
        #expect(AlertService.isInternalHost(host) == isInternal, "\(host)")
    }
}
