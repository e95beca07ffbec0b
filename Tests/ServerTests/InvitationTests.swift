import Foundation
import HTTPTypes
import HummingbirdTesting
import PlatformCore
import Server
import Storage
import StorageTesting
import Testing

/// Members join by accepting an invitation; nothing tells the inviter whether an address has
/// an account.
@Suite("Invitations")
struct InvitationTests {
    static func invite(_ client: any TestClientProtocol, _ user: TestUser, _ email: String, role: String = "member")
        async throws -> TestResponse
    {
        try await client.json(
            "/api/tenant/invitations/", method: .post, body: #"{"email":"\#(email)","role":"\#(role)"}"#, cookie: user.cookie)
    }

    static func id(_ response: TestResponse) throws -> String {
        try #require((try response.object()["invitation"] as? [String: Any])?["id"] as? String)
    }

    static func tenantNames(_ client: any TestClientProtocol, _ user: TestUser) async throws -> Set<String> {
        let me = try await client.json("/api/auth/me/", cookie: user.cookie).object()
        return Set((me["tenants"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
    }

    @Test(arguments: Backend.available)
    func invitationsAreAcceptedDeclinedWithdrawnAndExpire(_ backend: Backend) async throws {
        let clock = ManualClock()
        try await TestPlatform.run(backend, clock: clock) { client, store in
            let owner = try await client.register("host-i@example.com", tenant: "Host")
            let guest = try await client.register("guest-i@example.com", tenant: "Guest")
            let stranger = try await client.register("stranger-i@example.com", tenant: "Elsewhere")

            let known = try await Self.invite(client, owner, "Guest-I@Example.com")
            let unknown = try await Self.invite(client, owner, "nobody-yet@example.com")
            #expect(known.status == .created && unknown.status == .created)
            let knownKeys = (try known.object()["invitation"] as? [String: Any])?.keys.sorted()
            let unknownKeys = (try unknown.object()["invitation"] as? [String: Any])?.keys.sorted()
            #expect(knownKeys == unknownKeys, "the same answer with or without an account")
            let id = try Self.id(known)

            let pending = try await client.json("/api/tenant/invitations/", cookie: owner.cookie).object()
            #expect(
                (pending["invitations"] as? [[String: Any]])?.compactMap { $0["email"] as? String }
                    == ["guest-i@example.com", "nobody-yet@example.com"])
            let received = try await client.json("/api/auth/invitations/", cookie: guest.cookie).object()
            let mine = try #require((received["invitations"] as? [[String: Any]])?.first)
            #expect((mine["tenant"] as? [String: Any])?["name"] as? String == "Host")
            #expect(mine["invited_by"] as? String == "host-i@example.com")
            let strangers = try await client.json("/api/auth/invitations/", cookie: stranger.cookie).object()
            #expect((strangers["invitations"] as? [Any])?.isEmpty == true)

            let stolen = try await client.json("/api/auth/invitations/\(id)/accept/", method: .post, cookie: stranger.cookie)
            #expect(stolen.status == .notFound, "an invitation works only for its address")
            let guestUser = try #require(try await store.user(email: "guest-i@example.com"))
            let guestTenant = try #require(UUID(uuidString: guest.tenantID))
            let token = try await TestPlatform.apiToken(store: store, user: guestUser, tenantID: guestTenant)
            let byToken = try await client.json(
                "/api/auth/invitations/\(id)/accept/", method: .post, headers: [.authorization: "Bearer \(token)"])
            #expect(byToken.status == .forbidden)
            #expect(byToken.errorCode == "session_required")

            let accepted = try await client.json("/api/auth/invitations/\(id)/accept/", method: .post, cookie: guest.cookie)
            #expect(accepted.status == .ok)
            #expect((try accepted.object()["tenant"] as? [String: Any])?["role"] as? String == "member")
            #expect(try await Self.tenantNames(client, guest) == ["Guest", "Host"])
            #expect(try await client.json("/api/auth/invitations/\(id)/accept/", method: .post, cookie: guest.cookie).status == .notFound)
            #expect(try await Self.invite(client, owner, "guest-i@example.com").status == .conflict, "already a member")

            let declined = try Self.id(try await Self.invite(client, owner, "stranger-i@example.com", role: "viewer"))
            #expect(try await client.json("/api/auth/invitations/\(declined)/decline/", method: .post, cookie: stranger.cookie).status == .noContent)
            #expect(try await client.json("/api/auth/invitations/\(declined)/accept/", method: .post, cookie: stranger.cookie).status == .notFound)

            let withdrawn = try Self.id(try await Self.invite(client, owner, "stranger-i@example.com"))
            #expect(try await client.json("/api/tenant/invitations/\(withdrawn)/", method: .delete, cookie: stranger.cookie).status == .notFound)
            #expect(try await client.json("/api/tenant/invitations/\(withdrawn)/", method: .delete, cookie: owner.cookie).status == .noContent)
            #expect(try await client.json("/api/auth/invitations/\(withdrawn)/accept/", method: .post, cookie: stranger.cookie).status == .notFound)

            let late = try Self.id(try await Self.invite(client, owner, "stranger-i@example.com"))
            clock.advance(seconds: 8 * 86_400)
            let relogin = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"stranger-i@example.com","password":"Corr3ct-Horse-Battery"}"#)
            let strangerCookie = try #require(relogin.sessionCookie)
            #expect(try await client.json("/api/auth/invitations/\(late)/accept/", method: .post, cookie: strangerCookie).status == .notFound)
            #expect(try await Self.tenantNames(client, TestUser(cookie: strangerCookie, tenantID: "", email: "")) == ["Elsewhere"])
        }
    }

    @Test func onlyOwnersAndAdminsInviteAndInvitationsAreRateLimited() async throws {
        try await TestPlatform.run(configure: { $0.invitationsPerHour = 3 }) { client, _ in
            let owner = try await client.register("limit-owner@example.com")
            let member = try await client.register("limit-member@example.com")
            try await client.addMember(owner, email: "limit-member@example.com", role: "member", inviteeCookie: member.cookie)
            let switched = try await client.json(
                "/api/auth/switch-tenant/", method: .post,
                body: #"{"tenant":"\#(try #require((try await client.json("/api/auth/me/", cookie: owner.cookie).object()["tenant"] as? [String: Any])?["slug"] as? String))"}"#,
                cookie: member.cookie)
            let memberCookie = try #require(switched.sessionCookie)
            let asMember = try await client.json(
                "/api/tenant/invitations/", method: .post, body: #"{"email":"x@example.com","role":"viewer"}"#, cookie: memberCookie)
            #expect(asMember.status == .forbidden)
            #expect(try await client.json("/api/tenant/invitations/", cookie: memberCookie).status == .forbidden)
            #expect(try await Self.invite(client, owner, "too-high@example.com", role: "superuser").status == .unprocessableContent)
            var statuses: [HTTPResponse.Status] = []
            for index in 0..<4 {
                statuses.append(try await Self.invite(client, owner, "spam-\(index)@example.com").status)
            }
            #expect(statuses == [.created, .created, .tooManyRequests, .tooManyRequests], "one invitation went to the member")
        }
    }
}
