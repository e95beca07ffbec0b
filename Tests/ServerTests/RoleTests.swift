import Foundation
import HTTPTypes
import HummingbirdTesting
import PlatformCore
import Server
import Storage
import StorageTesting
import Testing

@Suite("Roles and members")
struct RoleTests {
    @Test(arguments: Backend.available)
    func viewersReadButCannotChangeAnything(_ backend: Backend) async throws {
        let clock = ManualClock()
        try await TestPlatform.run(backend, clock: clock) { client, store in
            let owner = try await client.register("owner@example.com")
            let device = try await client.registerDevice(owner, serial: "TH-SHARED")
            let guest = try await client.register("guest@example.com", tenant: "Guest Home")
            clock.advance(seconds: 1)
            try await client.addMember(owner, email: "guest@example.com", role: "viewer", inviteeCookie: guest.cookie)
            let members = try await client.json("/api/tenant/members/", cookie: owner.cookie)
            #expect((try members.object()["members"] as? [[String: Any]])?.compactMap { $0["role"] as? String } == ["owner", "viewer"])

            let user = try #require(try await store.user(email: "guest@example.com"))
            let ownerTenant = try #require(UUID(uuidString: owner.tenantID))
            let token = try await TestPlatform.apiToken(store: store, user: user, tenantID: ownerTenant)
            let viewer: HTTPFields = [.authorization: "Bearer \(token)"]
            #expect(try await client.json("/api/devices/", headers: viewer).status == .ok)
            #expect(try await client.json("/api/telemetry/query/?device=TH-SHARED", headers: viewer).status == .ok)
            let uploaded = try await ScriptAPITests.upload(client, owner, name: "keep", source: ScriptAPITests.addOne)
            let scriptID = try #require((try uploaded.object()["script"] as? [String: Any])?["id"] as? String)
            #expect(try await client.json("/api/scripts/", headers: viewer).status == .ok)
            #expect(try await client.json("/api/scripts/\(scriptID)/", headers: viewer).status == .ok)
            #expect(try await client.json("/api/plugins/", headers: viewer).status == .ok)
            let writes: [(String, HTTPRequest.Method, String?)] = [
                ("/api/scripts/", .post, #"{"name":"mine","hook":"ingest","source":"return { transform = function(s) return s end }"}"#),
                ("/api/scripts/\(scriptID)/activate/", .post, nil),
                ("/api/scripts/\(scriptID)/deactivate/", .post, nil),
                ("/api/devices/register/", .post, #"{"serial":"TH-VIEWER"}"#),
                ("/api/devices/TH-SHARED/", .patch, #"{"name":"Mine"}"#),
                ("/api/devices/TH-SHARED/rotate-key/", .post, nil),
                ("/api/devices/TH-SHARED/revoke/", .post, nil),
                ("/api/devices/TH-SHARED/", .delete, nil),
                ("/api/tenant/members/", .post, #"{"email":"guest@example.com","role":"owner"}"#),
            ]
            for (uri, method, body) in writes {
                let response = try await client.json(uri, method: method, body: body, headers: viewer)
                #expect(response.status == .forbidden, "\(method) \(uri)")
            }
            #expect(try await client.ingest(device, SampleJSON.make(serial: device.serial, at: Timestamp(Date()))).status == .ok)
            _ = guest
        }
    }

    @Test func memberManagementRules() async throws {
        try await TestPlatform.run { client, _ in
            let owner = try await client.register("boss@example.com")
            let colleague = try await client.register("colleague@example.com")
            let cases: [(String, HTTPResponse.Status)] = [
                (#"{"email":"colleague@example.com","role":"superuser"}"#, .unprocessableContent),
                (#"{"email":"nobody@example.com","role":"member"}"#, .notFound),
                (#"{"email":"colleague@example.com","role":"member"}"#, .notFound),
                (#"{"email":"colleague@example.com"}"#, .unprocessableContent),
                (#"{"email":"colleague@example.com","role":"member","extra":1}"#, .unprocessableContent),
                (#"{"email":"boss@example.com","role":"admin"}"#, .conflict),
            ]
            for (body, status) in cases {
                let response = try await client.json("/api/tenant/members/", method: .post, body: body, cookie: owner.cookie)
                #expect(response.status == status, "\(body)")
            }
            let nobody = try await client.json(
                "/api/tenant/members/", method: .post, body: #"{"email":"nobody@example.com","role":"member"}"#, cookie: owner.cookie)
            let stranger = try await client.json(
                "/api/tenant/members/", method: .post, body: #"{"email":"colleague@example.com","role":"member"}"#,
                cookie: owner.cookie)
            #expect(String(buffer: nobody.body) == String(buffer: stranger.body), "nothing tells whether an account exists")
            try await client.addMember(owner, email: "colleague@example.com", role: "member", inviteeCookie: colleague.cookie)
            let promoted = try await client.json(
                "/api/tenant/members/", method: .post, body: #"{"email":"colleague@example.com","role":"admin"}"#,
                cookie: owner.cookie)
            #expect(promoted.status == .ok)
            #expect(try await client.json("/api/tenant/members/", method: .post, body: #"{"email":"boss@example.com","role":"member"}"#).status == .unauthorized)
            let otherTenantList = try await client.json("/api/tenant/members/", cookie: colleague.cookie)
            #expect((try otherTenantList.object()["members"] as? [[String: Any]])?.count == 1, "the colleague's own tenant")
        }
    }

    @Test(.enabled(if: TestDatabase.postgresAdminURL != nil))
    func healthIs503WhenTheDatabaseIsGone() async throws {
        let url = try await TestDatabase.makeURL(.postgres)
        let store = try StoreFactory.open(databaseURL: url, logger: TestPlatformLog.logger)
        let app = try await buildApplication(configuration: TestPlatform.configuration(), store: store)
        try await app.test(.router) { client in
            #expect(try await client.json("/health/").status == .ok)
            try await TestDatabase.dropPostgresDatabase(url)
            let down = try await client.json("/health/")
            #expect(down.status == .serviceUnavailable)
            #expect(down.headers[.retryAfter] == "1")
            #expect(try down.object()["database"] as? String == "unreachable")
        }
    }
}
