import Foundation
import HTTPTypes
import HummingbirdTesting
import PlatformCore
@testable import Server
import Storage
import StorageTesting
import Testing

/// The review's session and token items: an absolute session lifetime, `__Host-` cookies in
/// production, token scopes and expiry, and tokens that cannot mint tokens.
@Suite("Sessions and tokens")
struct SessionAndTokenTests {
    /// Stored secrets are their SHA-256 in lowercase hex (FIPS 180-2's test vectors), two digits a byte.
    @Test func secretsAreStoredAsTheirSHA256InHex() {
        #expect(Secrets.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Secrets.hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect([0x00, 0x0F, 0xA0, 0xFF].lowercaseHex == "000fa0ff" && [UInt8]().lowercaseHex.isEmpty)
    }

    static func createToken(
        _ client: any TestClientProtocol, _ user: TestUser, _ body: String, headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        try await client.json("/api/tokens/", method: .post, body: body, cookie: headers.isEmpty ? user.cookie : nil, headers: headers)
    }

    @Test func aSessionEndsAtItsLifetimeHoweverActive() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock, configure: { $0.sessionLifetimeSeconds = 3600 }) { client, _ in
            let user = try await client.register("busy@example.com")
            for _ in 0..<5 {
                clock.advance(seconds: 600)
                #expect(try await client.json("/api/auth/me/", cookie: user.cookie).status == .ok)
            }
            clock.advance(seconds: 601)
            #expect(try await client.json("/api/auth/me/", cookie: user.cookie).status == .unauthorized)
        }
    }

    @Test func productionCookiesAreHostPrefixedAndSecure() async throws {
        try await TestPlatform.run(configure: { $0.environment = .production }) { client, _ in
            let response = try await client.json(
                "/api/auth/register/", method: .post,
                body: #"{"email":"prod@example.com","password":"Corr3ct-Horse-Battery","tenant_name":"Prod"}"#)
            #expect(response.status == .created)
            let cookie = try #require(response.headers[.setCookie])
            #expect(cookie.hasPrefix("__Host-thermostat_session="))
            #expect(cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("Path=/"))
            #expect(!cookie.contains("Domain"))
            let token = String(cookie.dropFirst("__Host-thermostat_session=".count).prefix { $0 != ";" })
            let me = try await client.json("/api/auth/me/", headers: [.cookie: "__Host-thermostat_session=\(token)"])
            #expect(me.status == .ok)
            let plain = try await client.json("/api/auth/me/", headers: [.cookie: "thermostat_session=\(token)"])
            #expect(plain.status == .unauthorized, "the unprefixed name is not read in production")
            let login = try await client.execute(uri: "/login", method: .get)
            #expect(login.headers[.setCookie]?.hasPrefix("__Host-thermostat_presession=") == true)
        }
    }

    @Test(arguments: Backend.available)
    func tokenScopesExpiryAndNoTokenMinting(_ backend: Backend) async throws {
        let clock = ManualClock()
        try await TestPlatform.run(backend, clock: clock) { client, _ in
            let owner = try await client.register("scopes@example.com")
            let device = try await client.registerDevice(owner, serial: "TH-SCOPE")

            let read = try await Self.createToken(client, owner, #"{"name":"dashboard tv","scope":"read"}"#)
            #expect(read.status == .created)
            let readBody = try read.object()
            #expect((readBody["token"] as? [String: Any])?["scope"] as? String == "read")
            let readOnly: HTTPFields = [.authorization: "Bearer \(try #require(readBody["secret"] as? String))"]
            #expect(try await client.json("/api/devices/", headers: readOnly).status == .ok)
            #expect(try await client.json("/api/telemetry/query/?device=TH-SCOPE", headers: readOnly).status == .ok)
            let refused = try await client.json(
                "/api/devices/register/", method: .post, body: #"{"serial":"TH-READ"}"#, headers: readOnly)
            #expect(refused.status == .forbidden)
            #expect(try await client.json("/api/devices/TH-SCOPE/revoke/", method: .post, headers: readOnly).status == .forbidden)
            #expect(
                try await client.json("/api/scripts/", method: .post, body: #"{"name":"x","hook":"ingest","source":"return {}"}"#, headers: readOnly)
                    .status == .forbidden)

            let write = try await Self.createToken(client, owner, #"{"name":"ci","expires_in_days":1}"#)
            #expect(write.status == .created)
            let writeBody = try write.object()
            #expect((writeBody["token"] as? [String: Any])?["scope"] as? String == "write")
            #expect((writeBody["token"] as? [String: Any])?["expires_at"] as? String != nil)
            let writer: HTTPFields = [.authorization: "Bearer \(try #require(writeBody["secret"] as? String))"]
            #expect(try await client.json("/api/devices/TH-SCOPE/", method: .patch, body: #"{"name":"Hall"}"#, headers: writer).status == .ok)

            let minted = try await Self.createToken(client, owner, #"{"name":"child"}"#, headers: writer)
            #expect(minted.status == .forbidden)
            #expect(minted.errorCode == "session_required")
            let switched = try await client.json(
                "/api/auth/switch-tenant/", method: .post, body: #"{"tenant":"anything"}"#, headers: writer)
            #expect(switched.status == .forbidden)
            for token in [readOnly, writer] {
                let password = try await client.json(
                    "/api/auth/password/", method: .post,
                    body: #"{"current_password":"Corr3ct-Horse-Battery","new_password":"Brand-New-Passw0rd"}"#, headers: token)
                #expect(password.status == .forbidden, "a token never changes the password")
                let readID = try #require((readBody["token"] as? [String: Any])?["id"] as? String)
                #expect(try await client.json("/api/tokens/\(readID)/", method: .delete, headers: token).status == .forbidden)
            }

            for body in [#"{"name":"x","scope":"admin"}"#, #"{"name":"x","expires_in_days":0}"#, #"{"name":"x","expires_in_days":99999}"#] {
                #expect(try await Self.createToken(client, owner, body).status == .unprocessableContent, "\(body)")
            }

            clock.advance(seconds: 86_401)
            let relogin = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"scopes@example.com","password":"Corr3ct-Horse-Battery"}"#)
            let listed = try await client.json("/api/tokens/", cookie: try #require(relogin.sessionCookie)).object()
            let states = (listed["tokens"] as? [[String: Any]] ?? []).map { "\($0["name"] ?? "")=\($0["expired"] ?? "")" }
            #expect(states.sorted() == ["ci=1", "dashboard tv=0"], "JSONSerialization reads booleans as 1 and 0")
            let expired = try await client.json("/api/devices/", headers: writer)
            #expect(expired.status == .unauthorized)
            #expect(expired.errorCode == "invalid_token")
            #expect(try await client.json("/api/devices/", headers: readOnly).status == .ok, "no expiry set")
            _ = device
        }
    }

    @Test func guessingTheCurrentPasswordIsRateLimited() async throws {
        try await TestPlatform.run(configure: { $0.loginRatePerAccountPerHour = 3 }) { client, _ in
            let user = try await client.register("guess@example.com")
            var statuses: [HTTPResponse.Status] = []
            for attempt in 0..<5 {
                let response = try await client.json(
                    "/api/auth/password/", method: .post,
                    body: #"{"current_password":"guess-\#(attempt)","new_password":"Brand-New-Passw0rd"}"#, cookie: user.cookie)
                statuses.append(response.status)
            }
            #expect(statuses.prefix(3).allSatisfy { $0 == .unprocessableContent })
            #expect(statuses.suffix(2).allSatisfy { $0 == .tooManyRequests })
        }
    }

    /// Every route this session added answers 401 without credentials, and changes nothing.
    @Test func newRoutesNeedCredentials() async throws {
        try await TestPlatform.run { client, _ in
            let id = UUID().uuidString.lowercased()
            let routes: [(String, HTTPRequest.Method, String?)] = [
                ("/api/auth/switch-tenant/", .post, #"{"tenant":"x"}"#),
                ("/api/auth/password/", .post, #"{"current_password":"a","new_password":"b"}"#),
                ("/api/auth/invitations/", .get, nil),
                ("/api/auth/invitations/\(id)/accept/", .post, nil),
                ("/api/tenant/invitations/", .post, #"{"email":"a@example.com","role":"member"}"#),
                ("/api/tenant/invitations/\(id)/", .delete, nil),
                ("/api/telemetry/stream/", .get, nil),
                ("/api/telemetry/export/", .get, nil),
                ("/api/usage/", .get, nil),
                ("/api/admin/tenants/", .get, nil),
                ("/api/admin/tenants/x/tier/", .post, #"{"tier":"pro"}"#),
                ("/api/admin/tenants/x/policy/", .put, #"{"source":"return {}"}"#),
            ]
            for (path, method, body) in routes {
                #expect(try await client.json(path, method: method, body: body).status == .unauthorized, "\(method) \(path)")
                let forged = try await client.json(path, method: method, body: body, headers: [.authorization: "Bearer tht_forged"])
                #expect(forged.status == .unauthorized, "\(method) \(path) with a forged token")
            }
        }
    }
}
