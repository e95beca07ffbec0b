import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PlatformCore
import Storage
import StorageTesting
import Testing

@testable import Server

/// Passwords bcrypt would cut and names that display as something else.
@Suite("Passwords and names")
struct PasswordAndNameTests {
    @Test func passwordsLongerThanBcryptReadsAreRefused() async throws {
        try await TestPlatform.run { client, _ in
            let tooLong = "Aa1!" + String(repeating: "x", count: 69)  // 73 bytes
            let refused = try await client.json(
                "/api/auth/register/", method: .post, body: #"{"email":"long@example.com","password":"\#(tooLong)"}"#)
            #expect(refused.status == .unprocessableContent)
            #expect(refused.errorCode == "password_too_long")
            #expect(refused.errorField == "password")
            let message = try #require((try refused.object()["error"] as? [String: Any])?["message"] as? String)
            #expect(message.contains("72 bytes"))

            let multibyte = "Aa1!" + String(repeating: "é", count: 35)  // 74 bytes, 39 characters
            let alsoRefused = try await client.json(
                "/api/auth/register/", method: .post, body: #"{"email":"long2@example.com","password":"\#(multibyte)"}"#)
            #expect(alsoRefused.errorCode == "password_too_long", "bytes count, not characters")

            let longest = "Aa1!" + String(repeating: "x", count: 68)  // 72 bytes
            let accepted = try await client.json(
                "/api/auth/register/", method: .post, body: #"{"email":"long3@example.com","password":"\#(longest)"}"#)
            #expect(accepted.status == .created)
            let login = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"long3@example.com","password":"\#(longest)"}"#)
            #expect(login.status == .ok)
            let nul = try await client.json(
                "/api/auth/register/", method: .post,
                body: #"{"email":"nul@example.com","password":"Corr3ct-Horse\u0000-Battery"}"#)
            #expect(nul.status == .unprocessableContent, "bcrypt would stop reading at the NUL")
        }
    }

    @Test func namesRefuseBidiOverridesAndInvisibleCharacters() async throws {
        try await TestPlatform.run { client, _ in
            let spoofed = try await client.json(
                "/api/auth/register/", method: .post,
                body: #"{"email":"bidi@example.com","password":"Corr3ct-Horse-Battery","tenant_name":"Acme\u202Emoc.knab"}"#)
            #expect(spoofed.status == .unprocessableContent)
            #expect(spoofed.errorCode == "invisible_characters")
            #expect(spoofed.errorField == "tenant_name")
            let user = try await client.register(tenant: "Küche 客厅 غرفة")
            for name in [#"Ha\u200Bll"#, #"Ha\u2066ll"#, #"Ha\uFEFFll"#, #"Ha\u200Dll"#, #"Ha\u202Ell"#] {
                let response = try await client.json(
                    "/api/devices/register/", method: .post, body: #"{"serial":"TH-BIDI-1","name":"\#(name)"}"#,
                    cookie: user.cookie)
                #expect(response.status == .unprocessableContent, "\(name)")
                #expect(response.errorField == "name")
            }
            let fine = try await client.json(
                "/api/devices/register/", method: .post, body: #"{"serial":"TH-BIDI","name":"Salle de séjour"}"#,
                cookie: user.cookie)
            #expect(fine.status == .created)
        }
    }
}
