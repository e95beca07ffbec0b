import Foundation
import HTTPTypes
import HummingbirdTesting
import PlatformCore
import Storage
import StorageTesting
import Testing

@Suite("Accounts and sessions")
struct AuthTests {
    @Test(arguments: Backend.available)
    func registerCreatesUserTenantAndSession(_ backend: Backend) async throws {
        try await TestPlatform.run(backend) { client, store in
            let response = try await client.json(
                "/api/auth/register/", method: .post,
                body: #"{"email":"Alice@Example.com","password":"Corr3ct-Horse-Battery","tenant_name":"Acme Heating"}"#)
            #expect(response.status == .created)
            let body = try response.object()
            let user = try #require(body["user"] as? [String: Any])
            let tenant = try #require(body["tenant"] as? [String: Any])
            #expect(user["email"] as? String == "alice@example.com")
            #expect(tenant["slug"] as? String == "acme-heating")
            #expect(tenant["name"] as? String == "Acme Heating")
            let setCookie = try #require(response.headers[.setCookie])
            #expect(setCookie.contains("HttpOnly"))
            #expect(setCookie.contains("SameSite=Lax"))
            #expect(!setCookie.contains("Secure"), "plain-HTTP development keeps cookies usable")
            let stored = try #require(try await store.user(email: "alice@example.com"))
            #expect(stored.passwordHash.hasPrefix("$2"), "bcrypt, never the password")
            #expect(!stored.passwordHash.contains("Corr3ct"))

            let cookie = try #require(response.sessionCookie)
            let me = try await client.json("/api/auth/me/", cookie: cookie)
            #expect(me.status == .ok)
            #expect(((try me.object()["tenant"] as? [String: Any])?["role"] as? String) == "owner")
        }
    }

    @Test func registerRejectsBadInputAndChangesNothing() async throws {
        try await TestPlatform.run { client, store in
            let cases: [(String, HTTPResponse.Status, String?)] = [
                (#"{"email":"a@example.com","password":"#, .badRequest, nil),
                (#"["a@example.com"]"#, .badRequest, nil),
                (#"{"password":"Corr3ct-Horse-Battery"}"#, .unprocessableContent, "email"),
                (#"{"email":42,"password":"Corr3ct-Horse-Battery"}"#, .unprocessableContent, "email"),
                (#"{"email":"a@example.com","password":"Corr3ct-Horse-Battery","admin":true}"#, .unprocessableContent, "admin"),
                (#"{"email":"not-an-email","password":"Corr3ct-Horse-Battery"}"#, .unprocessableContent, "email"),
                (#"{"email":"a@example.com","password":"short"}"#, .unprocessableContent, "password"),
                (#"{"email":"a@example.com","password":"alllowercaseletters"}"#, .unprocessableContent, "password"),
                (#"{"email":"a@example.com","password":"Password123!"}"#, .unprocessableContent, "password"),
            ]
            for (body, status, field) in cases {
                let response = try await client.json("/api/auth/register/", method: .post, body: body)
                #expect(response.status == status, "\(body)")
                #expect(response.errorField == field, "\(body)")
                #expect(response.headers[.setCookie] == nil)
            }
            let huge = #"{"email":"a@example.com","password":""# + String(repeating: "x", count: 300_000) + #""}"#
            #expect(try await client.json("/api/auth/register/", method: .post, body: huge).status == .contentTooLarge)
            let plain = try await client.json(
                "/api/auth/register/", method: .post, body: "email=a", headers: [.contentType: "text/plain"])
            #expect(plain.status == .unsupportedMediaType)
            let foreign = try await client.json(
                "/api/auth/register/", method: .post, body: #"{"email":"a@example.com","password":"Corr3ct-Horse-Battery"}"#,
                headers: [.origin: "https://evil.example"])
            #expect(foreign.status == .forbidden)
            #expect(try await store.user(email: "a@example.com") == nil)
        }
    }

    @Test func duplicateEmailIsAConflict() async throws {
        try await TestPlatform.run { client, _ in
            _ = try await client.register("dup@example.com")
            let again = try await client.json(
                "/api/auth/register/", method: .post, body: #"{"email":"DUP@example.com","password":"An0ther-Passw0rd!"}"#)
            #expect(again.status == .conflict)
            #expect(again.errorField == "email")
        }
    }

    @Test func loginIsGenericAboutFailures() async throws {
        try await TestPlatform.run { client, _ in
            let user = try await client.register("bob@example.com")
            let ok = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"bob@example.com","password":"Corr3ct-Horse-Battery"}"#)
            #expect(ok.status == .ok)
            let rotated = try #require(ok.sessionCookie)
            #expect(rotated != user.cookie, "login issues a new session id")
            let wrongPassword = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"bob@example.com","password":"Wrong-Passw0rd!"}"#,
                cookie: rotated)
            #expect(try await client.json("/api/devices/", cookie: rotated).status == .ok, "a mistyped password keeps the session")
            let unknownEmail = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"nobody@example.com","password":"Wrong-Passw0rd!"}"#)
            #expect(wrongPassword.status == .unauthorized)
            #expect(unknownEmail.status == .unauthorized)
            #expect(String(buffer: wrongPassword.body) == String(buffer: unknownEmail.body))
            #expect(try await client.json("/api/auth/login/", method: .post, body: #"{"email":"bob@example.com"}"#).status == .unprocessableContent)
            let staleHeader = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"bob@example.com","password":"Corr3ct-Horse-Battery"}"#,
                headers: [.authorization: "Device TH-1:thk_x"])
            #expect(staleHeader.status == .ok, "a non-Bearer Authorization header is not a user credential")
        }
    }

    @Test func logoutEndsTheSession() async throws {
        try await TestPlatform.run { client, _ in
            let user = try await client.register()
            #expect(try await client.json("/api/devices/", cookie: user.cookie).status == .ok)
            let logout = try await client.json("/api/auth/logout/", method: .post, cookie: user.cookie)
            #expect(logout.status == .noContent)
            #expect(try await client.json("/api/devices/", cookie: user.cookie).status == .unauthorized)
            #expect(try await client.json("/api/auth/logout/", method: .post).status == .unauthorized)
            #expect(try await client.json("/api/auth/logout/", method: .post, cookie: "ths_forged").status == .unauthorized)
        }
    }

    @Test func sessionsExpireAfterIdleTimeButNotWhileUsed() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock) { client, _ in
            let user = try await client.register()
            clock.advance(seconds: 2 * 3600)
            #expect(try await client.json("/api/devices/", cookie: user.cookie).status == .ok)
            clock.advance(seconds: 2 * 3600)
            #expect(try await client.json("/api/devices/", cookie: user.cookie).status == .ok, "activity renewed the session")
            clock.advance(seconds: 2.5 * 3600 + 1)
            let expired = try await client.json("/api/devices/", cookie: user.cookie)
            #expect(expired.status == .unauthorized)
            clock.advance(seconds: -3 * 3600)
            #expect(try await client.json("/api/devices/", cookie: user.cookie).status == .unauthorized, "an expired session is gone")
        }
    }

    @Test func registerAndLoginAreRateLimitedWithRetryAfter() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock, configure: { $0.registerRatePerHour = 3; $0.loginRatePerMinute = 5 }) { client, _ in
            for index in 0..<3 { _ = try await client.register("r\(index)@example.com") }
            let limited = try await client.json(
                "/api/auth/register/", method: .post, body: #"{"email":"r9@example.com","password":"Corr3ct-Horse-Battery"}"#)
            #expect(limited.status == .tooManyRequests)
            #expect(Int(limited.headers[.retryAfter] ?? "") ?? 0 > 0)
            let login = #"{"email":"r0@example.com","password":"Wrong-Passw0rd!"}"#
            for _ in 0..<5 {
                #expect(try await client.json("/api/auth/login/", method: .post, body: login).status == .unauthorized)
            }
            let blocked = try await client.json("/api/auth/login/", method: .post, body: login)
            #expect(blocked.status == .tooManyRequests)
            #expect(blocked.headers[.retryAfter] != nil)
            clock.advance(seconds: 13)
            #expect(try await client.json("/api/auth/login/", method: .post, body: login).status == .unauthorized, "the bucket refills")
        }
    }

    @Test func apiTokensAuthenticateAndCanBeRevoked() async throws {
        try await TestPlatform.run { client, store in
            let user = try await client.register()
            let created = try await client.json("/api/tokens/", method: .post, body: #"{"name":"ci"}"#, cookie: user.cookie)
            #expect(created.status == .created)
            let secret = try #require(try created.object()["secret"] as? String)
            let id = try #require((try created.object()["token"] as? [String: Any])?["id"] as? String)
            #expect(secret.hasPrefix("tht_"))
            #expect(try await store.apiToken(tokenHash: secret) == nil, "only the hash is stored")
            let bearer: HTTPFields = [.authorization: "Bearer \(secret)"]
            #expect(try await client.json("/api/devices/", headers: bearer).status == .ok)
            let list = try await client.json("/api/tokens/", cookie: user.cookie)
            #expect((try list.object()["tokens"] as? [Any])?.count == 1)

            let other = try await client.register()
            #expect(try await client.json("/api/tokens/\(id)/", method: .delete, cookie: other.cookie).status == .notFound)
            #expect(try await client.json("/api/tokens/\(id)/", method: .delete, cookie: user.cookie).status == .noContent)
            let revoked = try await client.json("/api/devices/", headers: bearer)
            #expect(revoked.status == .unauthorized)
            #expect(revoked.errorCode == "invalid_token")
            #expect(try await client.json("/api/tokens/", method: .post, body: #"{"name":""}"#, cookie: user.cookie).status == .unprocessableContent)
            #expect(try await client.json("/api/tokens/").status == .unauthorized)
        }
    }

    @Test func healthAndSecurityHeaders() async throws {
        try await TestPlatform.run { client, _ in
            // The ping is bounded by 2 s; with the whole suite starting at once on two cores the
            // first one has run past that (a 503 "database unreachable" once in three full runs).
            // The database does answer, so ask again, a bounded number of times.
            var health = try await client.json("/health/")
            for _ in 0..<5 where health.status == .serviceUnavailable { health = try await client.json("/health/") }
            #expect(health.status == .ok)
            let body = try health.object()
            #expect(body["status"] as? String == "ok")
            #expect(body["database"] as? String == "ok")
            #expect(body["version"] is String)
            #expect(health.headers[.contentSecurityPolicy]?.contains("default-src 'self'") == true)
            #expect(health.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            #expect(health.headers[HTTPField.Name("X-Request-Id")!] != nil)
            #expect(health.headers[.strictTransportSecurity] == nil)
            let missing = try await client.json("/api/nothing-here/")
            #expect(missing.status == .notFound)
            #expect(missing.errorCode != nil, "even unknown routes answer with the JSON error shape")
        }
        try await TestPlatform.run(configure: { $0.environment = .production }) { client, _ in
            let health = try await client.json("/health/")
            #expect(health.headers[.strictTransportSecurity] != nil)
            let register = try await client.json(
                "/api/auth/register/", method: .post, body: #"{"email":"p@example.com","password":"Corr3ct-Horse-Battery"}"#)
            #expect(register.headers[.setCookie]?.contains("Secure") == true)
        }
    }
}
