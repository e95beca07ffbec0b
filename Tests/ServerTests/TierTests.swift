import Foundation
import HTTPTypes
import HummingbirdTesting
import PlatformCore
import Storage
import StorageTesting
import Testing

@testable import Server

/// Storage tiers that hold: device and sample quotas (`reject` and `drop_oldest`), the tier's
/// ingest rate, policy edits and tier changes without a restart, platform admins, disabled
/// tenants, usage and retention.
@Suite("Storage tiers")
struct TierTests {
    /// A policies folder of our own: the shipped tiers plus small ones a test can fill up.
    static func policies(
        maxDevices: Int = 2, maxSamples: Int = 5, retentionDays: Int = 1, ingestPerMinute: Int = 1000
    ) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("policies-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for tier in ["free", "standard", "pro"] {
            try FileManager.default.copyItem(
                at: TestPlatform.repositoryRoot.appendingPathComponent("Policies/\(tier).lua"),
                to: folder.appendingPathComponent("\(tier).lua"))
        }
        for (tier, action) in [("tiny", "reject"), ("rolling", "drop_oldest")] {
            try policy(
                maxDevices: maxDevices, maxSamples: maxSamples, retentionDays: retentionDays, ingestPerMinute: ingestPerMinute,
                action: action
            ).write(to: folder.appendingPathComponent("\(tier).lua"), atomically: true, encoding: .utf8)
        }
        return folder
    }

    static func policy(maxDevices: Int, maxSamples: Int, retentionDays: Int, ingestPerMinute: Int, action: String) -> String {
        """
        return {
          limits = function(tenant)
            return { max_devices = \(maxDevices), max_samples = \(maxSamples), retention_days = \(retentionDays),
                     ingest_per_minute = \(ingestPerMinute), downsample = {} }
          end,
          on_over_quota = function(usage, limits) return "\(action)" end,
        }
        """
    }

    static func tenantID(_ user: TestUser) throws -> UUID { try #require(UUID(uuidString: user.tenantID)) }

    @Test(arguments: Backend.available)
    func quotasRejectOrDropTheOldest(_ backend: Backend) async throws {
        let folder = try Self.policies()
        let clock = ManualClock()
        try await TestPlatform.run(backend, clock: clock, configure: { $0.policiesDirectory = folder.path }) { client, store in
            let user = try await client.register("quota@example.com")
            try await store.setTier(tenantID: try Self.tenantID(user), tier: "tiny")
            clock.advance(seconds: 11)
            let first = try await client.registerDevice(user, serial: "TH-Q1")
            _ = try await client.registerDevice(user, serial: "TH-Q2")
            let third = try await client.json(
                "/api/devices/register/", method: .post, body: #"{"serial":"TH-Q3"}"#, cookie: user.cookie)
            #expect(third.status == .forbidden)
            #expect(third.errorCode == "quota_exceeded")
            let detail = try #require(try third.object()["error"] as? [String: Any])
            #expect(detail["limit"] as? Int == 2 && detail["used"] as? Int == 2)

            let start = clock.now().adding(seconds: -3600)
            #expect(try await client.ingest(first, SampleJSON.batch(serial: "TH-Q1", from: start, count: 5)).status == .ok)
            let over = try await client.ingest(first, SampleJSON.make(serial: "TH-Q1", at: clock.now()))
            #expect(over.status == .forbidden)
            #expect(over.errorCode == "quota_exceeded")
            let usage = try await client.json("/api/usage/", cookie: user.cookie).object()
            #expect((usage["samples"] as? [String: Any])?["used"] as? Int == 5)
            #expect((usage["samples"] as? [String: Any])?["warning"] as? Bool == true)
            #expect((usage["devices"] as? [String: Any])?["limit"] as? Int == 2)
            #expect(usage["on_over_quota"] as? String == "reject")

            try await store.setTier(tenantID: try Self.tenantID(user), tier: "rolling")
            clock.advance(seconds: 11)
            let newest = clock.now()
            #expect(try await client.ingest(first, SampleJSON.make(serial: "TH-Q1", at: newest, inside: 30)).status == .ok)
            let query = try await client.json(
                "/api/telemetry/query/?device=TH-Q1&from=\(start.adding(seconds: -60).iso8601)", cookie: user.cookie)
            let kept = try #require(try query.object()["samples"] as? [[String: Any]])
            #expect(kept.count <= 5, "the oldest made room")
            #expect(kept.last?["temp_inside_c"] as? Double == 30, "the new sample is stored")
            #expect(kept.first?["timestamp"] as? String != start.iso8601, "the oldest went")
        }
    }

    @Test func theTiersRateAndAPolicyEditApplyWithoutARestart() async throws {
        let folder = try Self.policies(ingestPerMinute: 2)
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock, configure: { $0.policiesDirectory = folder.path }) { client, store in
            let user = try await client.register("rate@example.com")
            try await store.setTier(tenantID: try Self.tenantID(user), tier: "tiny")
            clock.advance(seconds: 11)
            let device = try await client.registerDevice(user, serial: "TH-R1")
            var statuses: [HTTPResponse.Status] = []
            for second in 0..<3 {
                statuses.append(
                    try await client.ingest(device, SampleJSON.make(serial: "TH-R1", at: clock.now().adding(seconds: Double(-second)))).status)
            }
            #expect(statuses == [.ok, .ok, .tooManyRequests], "the tier's 2 per minute, not the server's default")

            try Self.policy(maxDevices: 1, maxSamples: 1000, retentionDays: 1, ingestPerMinute: 1000, action: "reject")
                .write(to: folder.appendingPathComponent("tiny.lua"), atomically: true, encoding: .utf8)
            clock.advance(seconds: 61)
            let refused = try await client.json(
                "/api/devices/register/", method: .post, body: #"{"serial":"TH-R2"}"#, cookie: user.cookie)
            #expect(refused.status == .forbidden, "the edited policy allows one device")
        }
    }

    @Test(arguments: Backend.available)
    func platformAdminsAssignTiersAndDisableTenants(_ backend: Backend) async throws {
        let folder = try Self.policies()
        try await TestPlatform.run(backend, configure: { $0.policiesDirectory = folder.path }) { client, store in
            let admin = try await client.register("operator@example.com", tenant: "Ops")
            let adminUser = try #require(try await store.user(email: "operator@example.com"))
            try await store.setPlatformAdmin(userID: adminUser.id, true)
            let customer = try await client.register("customer@example.com", tenant: "Customer Co")
            let device = try await client.registerDevice(customer, serial: "TH-C1")
            let slug = try #require(try await store.tenant(id: try Self.tenantID(customer))?.slug)

            for (path, method, body) in [
                ("/api/admin/tenants/", HTTPRequest.Method.get, nil as String?),
                ("/api/admin/tenants/\(slug)/tier/", .post, #"{"tier":"pro"}"#),
                ("/api/admin/tenants/\(slug)/disable/", .post, nil),
                ("/api/admin/tenants/\(slug)/enable/", .post, nil),
            ] {
                let refused = try await client.json(path, method: method, body: body, cookie: customer.cookie)
                #expect(refused.status == .forbidden, "\(path)")
            }
            let list = try await client.json("/api/admin/tenants/", cookie: admin.cookie).object()
            let row = try #require((list["tenants"] as? [[String: Any]])?.first { $0["slug"] as? String == slug })
            #expect(row["tier"] as? String == "free" && row["disabled"] as? Bool == false)

            let badTier = try await client.json(
                "/api/admin/tenants/\(slug)/tier/", method: .post, body: #"{"tier":"platinum"}"#, cookie: admin.cookie)
            #expect(badTier.status == .unprocessableContent)
            let tiny = try await client.json(
                "/api/admin/tenants/\(slug)/tier/", method: .post, body: #"{"tier":"tiny"}"#, cookie: admin.cookie)
            #expect(tiny.status == .ok)
            let usage = try await client.json("/api/usage/", cookie: customer.cookie).object()
            #expect(usage["tier"] as? String == "tiny")
            #expect((usage["devices"] as? [String: Any])?["limit"] as? Int == 2, "a tier change applies at once")

            let disabled = try await client.json("/api/admin/tenants/\(slug)/disable/", method: .post, cookie: admin.cookie)
            #expect(disabled.status == .ok)
            let ingest = try await client.ingest(device, SampleJSON.make(serial: "TH-C1", at: Timestamp(Date())))
            #expect(ingest.status == .forbidden)
            #expect(ingest.errorCode == "tenant_disabled")
            #expect(try await client.json("/api/devices/", cookie: customer.cookie).errorCode == "tenant_disabled")
            let page = try await client.execute(
                uri: "/", method: .get, headers: [.cookie: "thermostat_session=\(customer.cookie)"])
            #expect(page.status == .seeOther, "the dashboard ends the session and sends the person to log in")
            #expect(page.headers[.location]?.hasPrefix("/login") == true)
            let login = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"customer@example.com","password":"Corr3ct-Horse-Battery"}"#)
            #expect(login.status == .forbidden)
            #expect(try await store.device(tenantID: try Self.tenantID(customer), serial: "TH-C1") != nil, "nothing is deleted")

            #expect(try await client.json("/api/admin/tenants/\(slug)/enable/", method: .post, cookie: admin.cookie).status == .ok)

            let contract = Self.policy(maxDevices: 7, maxSamples: 70, retentionDays: 3, ingestPerMinute: 1000, action: "drop_oldest")
            let contractBody = String(
                decoding: try JSONSerialization.data(withJSONObject: ["source": contract]), as: UTF8.self)
            let relogin = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"customer@example.com","password":"Corr3ct-Horse-Battery"}"#)
            let fresh = try #require(relogin.sessionCookie)
            #expect(
                try await client.json("/api/admin/tenants/\(slug)/policy/", method: .put, body: contractBody, cookie: fresh)
                    .status == .forbidden)
            let broken = try await client.json(
                "/api/admin/tenants/\(slug)/policy/", method: .put, body: #"{"source":"return {"}"#, cookie: admin.cookie)
            #expect(broken.status == .unprocessableContent)
            let assigned = try await client.json(
                "/api/admin/tenants/\(slug)/policy/", method: .put, body: contractBody, cookie: admin.cookie)
            #expect(assigned.status == .ok)
            #expect((try assigned.object()["tenant"] as? [String: Any])?["contract_policy"] as? Bool == true)
            let contracted = try await client.json("/api/usage/", cookie: fresh).object()
            #expect((contracted["devices"] as? [String: Any])?["limit"] as? Int == 7, "the contract replaces the tier")
            #expect(contracted["on_over_quota"] as? String == "drop_oldest")
            #expect(try await client.json("/api/admin/tenants/\(slug)/policy/", method: .delete, cookie: admin.cookie).status == .ok)
            let back = try await client.json("/api/usage/", cookie: fresh).object()
            #expect((back["devices"] as? [String: Any])?["limit"] as? Int == 2, "the tier's again")
            #expect(try await client.ingest(device, SampleJSON.make(serial: "TH-C1", at: Timestamp(Date()))).status == .ok)
            let again = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"customer@example.com","password":"Corr3ct-Horse-Battery"}"#)
            #expect(try await client.json("/api/devices/", cookie: try #require(again.sessionCookie)).status == .ok)
        }
    }

    @Test(arguments: Backend.available)
    func retentionDeletesOnlyExpiredSamplesInChunks(_ backend: Backend) async throws {
        let folder = try Self.policies(maxSamples: 100_000)
        let clock = ManualClock()
        try await TestPlatform.runWithoutJobs(backend, clock: clock, configure: { $0.policiesDirectory = folder.path }) {
            client, store, platform in
            let user = try await client.register("retention@example.com")
            let tenantID = try Self.tenantID(user)
            try await store.setTier(tenantID: tenantID, tier: "tiny")
            let device = try await client.registerDevice(user, serial: "TH-OLD")
            let now = clock.now()
            let old = now.adding(seconds: -3 * 86_400)
            #expect(try await client.ingest(device, SampleJSON.batch(serial: "TH-OLD", from: old, count: 700)).status == .ok)
            #expect(try await client.ingest(device, SampleJSON.batch(serial: "TH-OLD", from: now.adding(seconds: -3600), count: 30)).status == .ok)
            let deleted = try await platform.retention.runOnce()
            #expect(deleted == 700)
            #expect(platform.retention.log.report.rows == 700)
            let left = try await store.samples(
                TelemetryRange(tenantID: tenantID, serial: "TH-OLD", from: old, to: now, limit: 10_000))
            #expect(left.count == 30)
            #expect(try await platform.retention.runOnce() == 0, "a second run finds nothing: resumable by design")
        }
    }

    @Test func aTenantsOwnPolicyMakesLimitsStricterNeverLooser() async throws {
        let folder = try Self.policies()
        try await TestPlatform.run(configure: { $0.policiesDirectory = folder.path }) { client, store in
            let user = try await client.register("own-policy@example.com")
            try await store.setTier(tenantID: try Self.tenantID(user), tier: "tiny")
            func activate(maxDevices: Int, version: Int) async throws {
                let source = Self.policy(maxDevices: maxDevices, maxSamples: 5, retentionDays: 1, ingestPerMinute: 1000, action: "reject")
                let uploaded = try await ScriptAPITests.upload(client, user, name: "mine", hook: "storage_policy", source: source)
                #expect(uploaded.status == .created)
                let id = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
                let activated = try await client.json(
                    "/api/scripts/\(id)/activate/", method: .post, body: #"{"version":\#(version)}"#, cookie: user.cookie)
                #expect(activated.status == .ok)
            }
            func deviceLimit() async throws -> Int? {
                (try await client.json("/api/usage/", cookie: user.cookie).object()["devices"] as? [String: Any])?["limit"] as? Int
            }
            #expect(try await deviceLimit() == 2, "the tier's")
            try await activate(maxDevices: 1, version: 1)
            #expect(try await deviceLimit() == 1, "stricter: applies")
            _ = try await client.registerDevice(user, serial: "TH-OWN-1")
            let refused = try await client.json(
                "/api/devices/register/", method: .post, body: #"{"serial":"TH-OWN-2"}"#, cookie: user.cookie)
            #expect(refused.status == .forbidden)
            try await activate(maxDevices: 50, version: 2)
            #expect(try await deviceLimit() == 2, "looser: the tier's limit stays")
        }
    }
}
