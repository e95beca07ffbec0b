import Foundation
import HTTPTypes
import HummingbirdTesting
import PlatformCore
import Storage
import StorageTesting
import Testing

@Suite("Script API and ingest hook")
struct ScriptAPITests {
    static let addOne = #"return { transform = function(s, ctx) s.temp_inside_c = s.temp_inside_c + (ctx.config.offset or 1) return s end }"#

    static func upload(_ client: any TestClientProtocol, _ user: TestUser, name: String, hook: String = "ingest", source: String, config: String? = nil)
        async throws -> TestResponse
    {
        let body: [String: Any] = ["name": name, "hook": hook, "source": source]
        var json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        if let config { json = String(json.dropLast()) + #","config":\#(config)}"# }
        return try await client.json("/api/scripts/", method: .post, body: json, cookie: user.cookie)
    }

    @Test(arguments: Backend.available)
    func uploadActivateAndTransformOnIngest(_ backend: Backend) async throws {
        let clock = ManualClock()
        try await TestPlatform.run(backend, clock: clock) { client, store in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let uploaded = try await Self.upload(client, user, name: "calibrate", source: Self.addOne, config: #"{"offset":2}"#)
            #expect(uploaded.status == .created)
            let script = try #require(try uploaded.object()["script"] as? [String: Any])
            let id = try #require(script["id"] as? String)
            #expect(script["version"] as? Int == 1)
            #expect(script["status"] as? String == "inactive")

            #expect(try await client.ingest(device, SampleJSON.make(serial: device.serial, at: clock.now(), inside: 20)).status == .ok)
            let activated = try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: user.cookie)
            #expect(activated.status == .ok)
            #expect((try activated.object()["script"] as? [String: Any])?["status"] as? String == "active")
            clock.advance(seconds: 1)
            #expect(try await client.ingest(device, SampleJSON.make(serial: device.serial, at: clock.now(), inside: 20)).status == .ok)
            let latest = try await store.latest(tenantID: UUID(uuidString: user.tenantID)!, serial: device.serial)
            #expect(latest?.tempInside == 22, "the active script transformed the sample before the commit")

            let list = try await client.json("/api/scripts/", cookie: user.cookie)
            #expect((try list.object()["scripts"] as? [[String: Any]])?.first?["active_version"] as? Int == 1)
            let shown = try await client.json("/api/scripts/\(id)/", cookie: user.cookie)
            #expect((try shown.object()["versions"] as? [[String: Any]])?.first?["sha256"] is String)

            let other = try await client.register()
            #expect(try await client.json("/api/scripts/\(id)/deactivate/", method: .post, cookie: other.cookie).status == .notFound)
            #expect(try await client.json("/api/scripts/\(id)/deactivate/", method: .post).status == .unauthorized)
            #expect(
                try await client.json("/api/scripts/\(id)/deactivate/", method: .post, body: #"{"now":true}"#, cookie: user.cookie).status
                    == .unprocessableContent)
            let deactivated = try await client.json("/api/scripts/\(id)/deactivate/", method: .post, cookie: user.cookie)
            #expect(deactivated.status == .ok)
            #expect((try deactivated.object()["script"] as? [String: Any])?["status"] as? String == "inactive")
            clock.advance(seconds: 1)
            #expect(try await client.ingest(device, SampleJSON.make(serial: device.serial, at: clock.now(), inside: 20)).status == .ok)
            let raw = try await store.latest(tenantID: UUID(uuidString: user.tenantID)!, serial: device.serial)
            #expect(raw?.tempInside == 20, "a deactivated script no longer runs")
        }
    }

    /// Every script route as a stranger meets it: no session, another tenant, an id that is not
    /// one, malformed and mistyped bodies; and the roles (a member may change devices, not
    /// scripts; an admin may; any role may dry-run).
    @Test(arguments: Backend.available)
    func scriptRoutesRefuseStrangersAndBadInput(_ backend: Backend) async throws {
        try await TestPlatform.run(backend) { client, store in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            _ = try await client.ingest(device, SampleJSON.make(serial: device.serial, at: Timestamp(Date())))
            let uploaded = try await Self.upload(client, user, name: "calibrate", source: Self.addOne)
            let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
            let dryRunBody = #"{"device":"\#(device.serial)"}"#
            let uploadBody = #"{"name":"x","hook":"ingest","source":"return { transform = function(s) return s end }"}"#
            let routes: [(String, HTTPRequest.Method, String?)] = [
                ("/api/scripts/", .get, nil), ("/api/scripts/", .post, uploadBody), ("/api/scripts/\(id)/", .get, nil),
                ("/api/scripts/\(id)/activate/", .post, nil), ("/api/scripts/\(id)/deactivate/", .post, nil),
                ("/api/scripts/\(id)/dry-run/", .post, dryRunBody), ("/api/plugins/", .get, nil),
            ]
            for (uri, method, body) in routes {
                #expect(try await client.json(uri, method: method, body: body).status == .unauthorized, "\(method) \(uri)")
            }

            let other = try await client.register()
            for (suffix, method, body) in [("", HTTPRequest.Method.get, nil), ("activate/", .post, nil), ("deactivate/", .post, nil), ("dry-run/", .post, dryRunBody)] {
                #expect(
                    try await client.json("/api/scripts/\(id)/\(suffix)", method: method, body: body, cookie: other.cookie).status
                        == .notFound, "another tenant's script: \(suffix)")
                #expect(
                    try await client.json("/api/scripts/not-a-uuid/\(suffix)", method: method, body: body, cookie: user.cookie).status
                        == .notFound, "not an id: \(suffix)")
            }
            #expect((try await client.json("/api/scripts/", cookie: other.cookie).object()["scripts"] as? [Any])?.isEmpty == true)

            let script = "/api/scripts/\(id)/"
            let cases: [(String, String, HTTPResponse.Status, String?)] = [
                ("/api/scripts/", #"{"name":"x","hook":"ingest","source":"#, .badRequest, nil),
                ("/api/scripts/", "[]", .badRequest, nil),
                ("/api/scripts/", #"{"name":"x","hook":"ingest","source":5}"#, .unprocessableContent, "source"),
                ("/api/scripts/", #"{"name":"x","hook":"ingest"}"#, .unprocessableContent, "source"),
                ("/api/scripts/", #"{"name":"   ","hook":"ingest","source":"return { transform = function(s) return s end }"}"#, .unprocessableContent, "name"),
                ("/api/scripts/", #"{"name":"calibrate","hook":"alert","source":"return { evaluate = function() end }"}"#, .conflict, "hook"),
                (script + "activate/", "{", .badRequest, nil),
                (script + "activate/", #"{"version":"1"}"#, .unprocessableContent, "version"),
                (script + "activate/", #"{"version":99}"#, .unprocessableContent, "version"),
                (script + "deactivate/", "{", .badRequest, nil),
                (script + "dry-run/", "{", .badRequest, nil),
                (script + "dry-run/", #"{"foo":1}"#, .unprocessableContent, "foo"),
                (script + "dry-run/", #"{"device":"\#(device.serial)","limit":0}"#, .unprocessableContent, "limit"),
                (script + "dry-run/", #"{"device":"\#(device.serial)","limit":101}"#, .unprocessableContent, "limit"),
                (script + "dry-run/", #"{"device":"\#(device.serial)","limit":"3"}"#, .unprocessableContent, "limit"),
                (script + "dry-run/", #"{"device":"\#(device.serial)","version":99}"#, .unprocessableContent, "version"),
                (script + "dry-run/", #"{"device":"NO-SUCH-DEVICE"}"#, .notFound, nil),
                (script + "dry-run/", #"{"sample":5}"#, .unprocessableContent, "sample"),
                (script + "dry-run/", #"{"sample":{"mode":"HEAT"}}"#, .unprocessableContent, nil),
            ]
            for (uri, body, status, field) in cases {
                let response = try await client.json(uri, method: .post, body: body, cookie: user.cookie)
                #expect(response.status == status, "\(uri) \(body)")
                if let field { #expect(response.errorField == field, "\(uri) \(body)") }
            }
            let tooLarge = try await Self.upload(client, user, name: "big", source: "return {}" + String(repeating: " ", count: 33_000))
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge.errorCode == "script_too_large")
            let shown = try await client.json(script, cookie: user.cookie)
            #expect((try shown.object()["versions"] as? [Any])?.count == 1, "nothing bad was stored")
            #expect((try shown.object()["script"] as? [String: Any])?["failure_count"] as? Int == 0, "dry-runs change no state")

            let tenantID = try #require(UUID(uuidString: user.tenantID))
            for role in ["member", "admin"] {
                let email = "\(role)-\(UUID().uuidString.prefix(6).lowercased())@example.com"
                let invitee = try await client.register(email)
                try await client.addMember(user, email: email, role: role, inviteeCookie: invitee.cookie)
                let colleague = try #require(try await store.user(email: email))
                let token: HTTPFields = [.authorization: "Bearer \(try await TestPlatform.apiToken(store: store, user: colleague, tenantID: tenantID))"]
                let expected: HTTPResponse.Status = role == "admin" ? .ok : .forbidden
                #expect(try await client.json("/api/scripts/", method: .post, body: uploadBody, headers: token).status == (role == "admin" ? .created : .forbidden))
                #expect(try await client.json(script + "activate/", method: .post, headers: token).status == expected, "\(role)")
                #expect(try await client.json(script + "deactivate/", method: .post, headers: token).status == expected, "\(role)")
                #expect(try await client.json(script + "dry-run/", method: .post, body: dryRunBody, headers: token).status == .ok, "\(role)")
            }
        }
    }

    @Test func badUploadsAreRejectedAndNeverReplaceTheActiveVersion() async throws {
        try await TestPlatform.run { client, _ in
            let user = try await client.register()
            let good = try await Self.upload(client, user, name: "calibrate", source: Self.addOne)
            let id = try #require((try good.object()["script"] as? [String: Any])?["id"] as? String)
            #expect(try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: user.cookie).status == .ok)
            let cases: [(String, String, String)] = [
                ("ingest", "return {\n transform = function(s)\n  return s +\n end }", "line"),
                ("ingest", "return { evaluate = function() end }", "transform"),
                ("alert", "return 5", "table"),
                ("ingest", "while true do end", "budget"),
                ("ingest", "string.dump(print)", "dump"),
            ]
            for (hook, source, expected) in cases {
                let response = try await Self.upload(client, user, name: "calibrate", hook: hook, source: source)
                #expect(response.status == .unprocessableContent, "validation comes before the name's hook is compared: \(source)")
                #expect(response.errorField == "source")
                let message = ((try response.object()["error"] as? [String: Any])?["message"] as? String) ?? ""
                #expect(message.localizedCaseInsensitiveContains(expected), "\(message)")
            }
            let shown = try await client.json("/api/scripts/\(id)/", cookie: user.cookie)
            let versions = try #require(try shown.object()["versions"] as? [[String: Any]])
            #expect(versions.count == 1, "failed uploads store nothing")
            #expect((try shown.object()["script"] as? [String: Any])?["active_version"] as? Int == 1)
            #expect(try await Self.upload(client, user, name: "x", hook: "cron", source: "return {}").status == .unprocessableContent)
            #expect(try await Self.upload(client, user, name: "x", source: Self.addOne, config: "[1]").status == .unprocessableContent)
            #expect(try await client.json("/api/scripts/", method: .post, body: #"{"name":"x","hook":"ingest","source":"return {}","extra":1}"#, cookie: user.cookie).status == .unprocessableContent)
            #expect(try await client.json("/api/scripts/").status == .unauthorized)
        }
    }

    @Test func rejectionsFailIngestAndFailuresKeepTheRawSample() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock) { client, store in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let tenantID = UUID(uuidString: user.tenantID)!
            let rejecting = try await Self.upload(
                client, user, name: "a-reject-hot",
                source: #"return { transform = function(s) if s.temp_inside_c > 30 then return nil, "too hot" end return s end }"#)
            let failing = try await Self.upload(
                client, user, name: "b-broken", source: #"return { transform = function(s) error("broken on purpose") end }"#)
            for response in [rejecting, failing] {
                let id = try #require((try response.object()["script"] as? [String: Any])?["id"] as? String)
                #expect(try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: user.cookie).status == .ok)
            }
            let hot = try await client.ingest(device, SampleJSON.make(serial: device.serial, at: clock.now(), inside: 35))
            #expect(hot.status == .unprocessableContent)
            #expect(hot.errorCode == "rejected_by_script")
            #expect(((try hot.object()["error"] as? [String: Any])?["message"] as? String)?.contains("a-reject-hot") == true)

            for second in 1...3 {
                clock.advance(seconds: 1)
                let response = try await client.ingest(device, SampleJSON.make(serial: device.serial, at: clock.now(), inside: Double(20 + second)))
                #expect(response.status == .ok, "a failing script never loses the sample")
            }
            #expect(try await store.latest(tenantID: tenantID, serial: device.serial)?.tempInside == 23)
            let scripts = try await store.scripts(tenantID: tenantID)
            let broken = try #require(scripts.first { $0.name == "b-broken" })
            #expect(broken.failureCount == 3)
            #expect(broken.lastError?.contains("broken on purpose") == true)
            #expect(broken.lastFailureInput?.contains("temp_inside_c") == true)
            #expect(broken.quarantinedUntil != nil, "three failures in a row quarantine the script")
            let listed = try await client.json("/api/scripts/", cookie: user.cookie)
            let entry = try #require((try listed.object()["scripts"] as? [[String: Any]])?.first { $0["name"] as? String == "b-broken" })
            #expect(entry["status"] as? String == "quarantined")
            #expect(entry["quarantined_until"] is String)
        }
    }

    @Test func aRunawayScriptDoesNotHurtOtherTenants() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock) { client, store in
            let attacker = try await client.register()
            let victim = try await client.register()
            let attackerDevice = try await client.registerDevice(attacker)
            let victimDevice = try await client.registerDevice(victim)
            let hostile = [
                "while true do end", "local t = {} while true do t[#t + 1] = ('x'):rep(1e5) end",
                "return string.find(string.rep('a', 1e5), '.-.-.-.-b')", "local function f() return f() + 1 end return f()",
            ]
            for (index, body) in hostile.enumerated() {
                let uploaded = try await Self.upload(
                    client, attacker, name: "evil-\(index)", source: "return { transform = function(s)\n\(body)\nend }")
                let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
                #expect(try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: attacker.cookie).status == .ok)
            }
            clock.advance(seconds: 1)
            let attacked = try await client.ingest(attackerDevice, SampleJSON.make(serial: attackerDevice.serial, at: clock.now()))
            #expect(attacked.status == .ok, "the raw sample is stored even though every script failed")
            let failures = try await store.scripts(tenantID: UUID(uuidString: attacker.tenantID)!).map(\.failureCount)
            #expect(failures == [1, 1, 1, 1])
            #expect(try await client.ingest(victimDevice, SampleJSON.make(serial: victimDevice.serial, at: clock.now())).status == .ok)
            #expect(try await client.json("/health/").status == .ok)
        }
    }

    /// Stays inside the sandbox's own limits for longer than the 100 ms deadline below: each
    /// loop instruction copies megabytes, so the instruction budget is far away and the
    /// sandbox's 250 ms wall clock comes after the worker pool's deadline.
    static let workerHog = """
        return { transform = function(s)
            local chunk = ("x"):rep(500000):rep(3)
            while true do local copy = chunk .. chunk end
        end }
        """

    @Test(.timeLimit(.minutes(1)))
    func aScriptThatHoldsItsWorkerPastTheDeadlineIsKilledAndOtherTenantsGoOn() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock, configure: { $0.luaWorkers = 1; $0.scriptDeadlineMilliseconds = 100 }) { client, store in
            let attacker = try await client.register()
            let victim = try await client.register()
            let attackerDevice = try await client.registerDevice(attacker)
            let victimDevice = try await client.registerDevice(victim)
            for (user, name, source) in [(attacker, "hog", Self.workerHog), (victim, "calibrate", Self.addOne)] {
                let uploaded = try await Self.upload(client, user, name: name, source: source)
                let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
                #expect(try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: user.cookie).status == .ok)
            }
            #expect(try await client.ingest(victimDevice, SampleJSON.make(serial: victimDevice.serial, at: clock.now(), inside: 20)).status == .ok)
            clock.advance(seconds: 1)
            // The victim's call waits behind the hog on the only worker, then runs on its replacement.
            async let attacked = client.ingest(attackerDevice, SampleJSON.make(serial: attackerDevice.serial, at: clock.now(), inside: 20))
            try await Task.sleep(for: .milliseconds(20))
            let victimResponse = try await client.ingest(victimDevice, SampleJSON.make(serial: victimDevice.serial, at: clock.now(), inside: 20))
            #expect(victimResponse.status == .ok)
            #expect(try await attacked.status == .ok, "the raw sample is stored when the worker is killed")
            let attackerTenant = UUID(uuidString: attacker.tenantID)!
            #expect(try await store.latest(tenantID: attackerTenant, serial: attackerDevice.serial)?.tempInside == 20)
            #expect(try await store.latest(tenantID: UUID(uuidString: victim.tenantID)!, serial: victimDevice.serial)?.tempInside == 21)
            let hog = try #require(try await store.scripts(tenantID: attackerTenant).first)
            #expect(hog.failureCount == 1)
            #expect(hog.lastError?.contains("time limit exceeded") == true, "\(hog.lastError ?? "no error")")
            #expect(try await client.json("/health/").status == .ok)
        }
    }

    /// The security review's attacks, over HTTP as a new tenant would send them: each once held
    /// a server thread forever (or ran far past its deadline and passed). Upload and dry-run
    /// now end with a clear error and the server answers everyone else.
    @Test(.timeLimit(.minutes(1)))
    func theReviewsAttacksEndInAClearErrorOverHTTP() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock) { client, _ in
            let attacker = try await client.register()
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
                "local n = 0 local t = setmetatable({}, { __len = function() n = n + 1 return n == 1 and 1 or math.maxinteger end }) table.insert(t, 1)",
                "local found = ('('):rep(1e5):find('%b()')",
                "local found = ('a'):rep(3000):find('(.-)%1x')",
            ]
            let sample = #"{"sample":\#(SampleJSON.make(serial: "TH-1", at: clock.now()))}"#
            for (index, attack) in attacks.enumerated() {
                let atLoad = try await Self.upload(client, attacker, name: "load-\(index)", source: attack + "\nreturn { transform = function(s) return s end }")
                #expect(atLoad.status == .unprocessableContent, "attack \(index) while loading: \(String(buffer: atLoad.body))")
                let uploaded = try await Self.upload(
                    client, attacker, name: "call-\(index)", source: "return { transform = function(s)\n\(attack)\nreturn s end }")
                let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
                let report = try await client.json("/api/scripts/\(id)/dry-run/", method: .post, body: sample, cookie: attacker.cookie)
                #expect(report.status == .ok)
                #expect((try report.object()["errors"] as? [String])?.isEmpty == false, "attack \(index): \(String(buffer: report.body))")
                #expect(try await client.json("/health/").status == .ok)
            }
        }
    }

    @Test func uploadsAndDryRunsAreRateLimitedPerTenant() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock, configure: { $0.scriptTrialsPerMinute = 2 }) { client, _ in
            let user = try await client.register()
            let other = try await client.register()
            let uploaded = try await Self.upload(client, user, name: "one", source: Self.addOne)
            #expect(uploaded.status == .created)
            let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
            let sample = #"{"sample":\#(SampleJSON.make(serial: "TH-1", at: clock.now()))}"#
            #expect(try await client.json("/api/scripts/\(id)/dry-run/", method: .post, body: sample, cookie: user.cookie).status == .ok)
            let limited = try await client.json("/api/scripts/\(id)/dry-run/", method: .post, body: sample, cookie: user.cookie)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter] != nil)
            #expect(try await Self.upload(client, user, name: "two", source: Self.addOne).status == .tooManyRequests)
            #expect(try await Self.upload(client, other, name: "two", source: Self.addOne).status == .created, "per tenant")
        }
    }

    @Test func fahrenheitDevicesWorkThroughTheBuiltInPlugin() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock) { client, store in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let fahrenheit = #"{"device_id":"\#(device.serial)","mode":"HEAT","temp_inside_c":68,"temp_outside_c":32,"setpoint_c":70.7,"hysteresis_c":0.9,"output":"HEAT_ON","timestamp":"\#(clock.now().iso8601)"}"#
            #expect(try await client.ingest(device, fahrenheit).status == .unprocessableContent, "°F is out of range without the plugin")
            let uploaded = try await Self.upload(client, user, name: "fahrenheit", source: #"return require("fahrenheit-input")"#)
            let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
            #expect(try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: user.cookie).status == .ok)
            #expect(try await client.ingest(device, fahrenheit).status == .ok)
            let stored = try #require(try await store.latest(tenantID: UUID(uuidString: user.tenantID)!, serial: device.serial))
            #expect(stored.tempInside == 20)
            #expect(stored.tempOutside == 0)
            #expect(abs(stored.setpoint - 21.5) < 1e-9)
            #expect(abs(stored.hysteresis - 0.5) < 1e-9)
            clock.advance(seconds: 1)
            let absurd = #"{"device_id":"\#(device.serial)","mode":"HEAT","temp_inside_c":500,"setpoint_c":70,"hysteresis_c":1,"output":"OFF","timestamp":"\#(clock.now().iso8601)"}"#
            let rejected = try await client.ingest(device, absurd)
            #expect(rejected.status == .unprocessableContent, "ranges still apply after the scripts")
        }
    }

    @Test func aScriptFailingOnOneSampleLeavesTheWholeBatchUntouched() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock) { client, store in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let uploaded = try await Self.upload(
                client, user, name: "fragile",
                source: #"return { transform = function(s) if s.temp_inside_c > 25 then error("cannot handle") end s.temp_inside_c = s.temp_inside_c + 1 return s end }"#)
            let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
            #expect(try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: user.cookie).status == .ok)
            let batch = #"{"samples":[\#(SampleJSON.make(serial: device.serial, at: clock.now().adding(seconds: -1), inside: 20)),\#(SampleJSON.make(serial: device.serial, at: clock.now(), inside: 30))]}"#
            #expect(try await client.ingest(device, batch).status == .ok)
            let stored = try await store.samples(
                TelemetryRange(
                    tenantID: UUID(uuidString: user.tenantID)!, serial: device.serial, from: clock.now().adding(seconds: -10),
                    to: clock.now().adding(seconds: 1), limit: 10))
            #expect(stored.map(\.tempInside) == [20, 30], "no half-converted batch")
        }
    }

    @Test func theScriptMemoryCapFollowsTheTenantsTier() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock) { client, store in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            // 10 MB: over the free tier's 8 MiB, well under pro's 32, and quick enough for the
            // sandbox's own 250 ms wall clock on a loaded machine (24 MB once ran past it in CI).
            let hungry = #"return { transform = function(s) local held = {} for i = 1, 5 do held[i] = string.char(64 + i, 65):rep(1000):rep(1000) end return s end }"#
            let uploaded = try await Self.upload(client, user, name: "hungry", source: hungry)
            let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
            func dryRunErrors() async throws -> [String] {
                let response = try await client.json(
                    "/api/scripts/\(id)/dry-run/", method: .post,
                    body: #"{"sample":\#(SampleJSON.make(serial: device.serial, at: clock.now()))}"#, cookie: user.cookie)
                #expect(response.status == .ok)
                return try response.object()["errors"] as? [String] ?? ["no errors array"]
            }
            let onFree = try await dryRunErrors()
            #expect(onFree.count == 1 && onFree[0].contains("memory"), "10 MB is over the free tier's 8 MiB: \(onFree)")
            try await store.setTier(tenantID: UUID(uuidString: user.tenantID)!, tier: "pro")
            let onPro = try await dryRunErrors()
            #expect(onPro == [], "the pro tier's VMs may hold 32 MiB: \(onPro)")
        }
    }

    @Test func aStoragePolicyDryRunsWithoutSamples() async throws {
        try await TestPlatform.run { client, _ in
            let user = try await client.register()
            let source = #"return { limits = function(t) return { max_devices = t.tier == "free" and 2 or 9, max_samples = 10, retention_days = 1, ingest_per_minute = 5, downsample = {}, script_memory_mb = 4 } end, on_over_quota = function() return "reject" end }"#
            let uploaded = try await Self.upload(client, user, name: "tiny", hook: "storage_policy", source: source)
            let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
            let response = try await client.json("/api/scripts/\(id)/dry-run/", method: .post, cookie: user.cookie)
            #expect(response.status == .ok)
            let limits = try #require((try response.object()["results"] as? [[String: Any]])?.first)
            #expect(limits["max_devices"] as? Int == 2, "the policy saw the tenant's tier")
            #expect(limits["script_memory_mb"] as? Int == 4)
            #expect((try response.object()["errors"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func dryRunUsesASampleOrRecentData() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock) { client, _ in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            for second in 0..<3 {
                _ = try await client.ingest(
                    device, SampleJSON.make(serial: device.serial, at: clock.now().adding(seconds: Double(-second)), inside: 20 + Double(second)))
            }
            let uploaded = try await Self.upload(
                client, user, name: "threshold-check", hook: "alert",
                source: #"return { evaluate = function(s, state) print("seen", s.temp_inside_c) state.n = (state.n or 0) + 1 return { { severity = "warning", message = "n=" .. state.n, key = "n" } }, state end }"#)
            let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
            let byDevice = try await client.json(
                "/api/scripts/\(id)/dry-run/", method: .post, body: #"{"device":"\#(device.serial)","limit":3}"#, cookie: user.cookie)
            #expect(byDevice.status == .ok)
            let report = try byDevice.object()
            #expect((report["results"] as? [Any])?.count == 3)
            #expect((report["logs"] as? [String])?.first == "seen\t22.0", "oldest first")
            let newestTwo = try await client.json(
                "/api/scripts/\(id)/dry-run/", method: .post, body: #"{"device":"\#(device.serial)","limit":2}"#, cookie: user.cookie)
            #expect((try newestTwo.object()["logs"] as? [String]) == ["seen\t21.0", "seen\t20.0"], "the device's newest samples")
            #expect((report["errors"] as? [Any])?.isEmpty == true)
            let bySample = try await client.json(
                "/api/scripts/\(id)/dry-run/", method: .post,
                body: #"{"sample":\#(SampleJSON.make(serial: device.serial, at: clock.now()))}"#, cookie: user.cookie)
            #expect((try bySample.object()["results"] as? [Any])?.count == 1)
            #expect(try await client.json("/api/scripts/\(id)/dry-run/", method: .post, body: #"{"limit":3}"#, cookie: user.cookie).status == .unprocessableContent)
            let other = try await client.register()
            #expect(try await client.json("/api/scripts/\(id)/", cookie: other.cookie).status == .notFound)
            #expect(try await client.json("/api/scripts/\(id)/activate/", method: .post, cookie: other.cookie).status == .notFound)
            #expect(try await client.json("/api/plugins/").status == .unauthorized)
            let plugins = try await client.json("/api/plugins/", cookie: user.cookie)
            #expect(plugins.status == .ok)
            #expect(((try plugins.object()["policies"] as? [[String: Any]])?.compactMap { $0["name"] as? String }) == ["free", "pro", "standard"])
        }
    }
}
