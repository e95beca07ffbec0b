import Foundation
import HTTPTypes
import HummingbirdTesting
import MailTesting
import PlatformCore
import Server
import Storage
import StorageTesting
import Testing

/// Password reset by mail, through a real SMTP server on loopback.
@Suite("Password reset")
struct PasswordResetTests {
    /// The token of the one reset mail not seen before, waiting for it to arrive (mail goes out
    /// after the answer). Mails sit in the maildir in no particular order.
    static func newToken(_ server: LoopbackSMTPServer, seen: inout Set<String>) async throws -> String {
        for _ in 0..<400 {
            let tokens = try server.messages().map(Self.token)
            if let fresh = tokens.first(where: { !seen.contains($0) }) {
                seen.insert(fresh)
                return fresh
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("no new mail arrived")
        throw CancellationError()
    }

    static func token(_ mail: String) -> String {
        let body = mail.components(separatedBy: "\n\n").last ?? ""
        let text = String(
            decoding: Data(base64Encoded: body.replacingOccurrences(of: "\n", with: "").replacingOccurrences(of: "\r", with: ""))
                ?? Data(), as: UTF8.self)
        guard let start = text.range(of: "reset-password?token=")?.upperBound else { return "" }
        return String(text[start...].prefix { !$0.isWhitespace })
    }

    @Test func aLinkByMailSetsANewPasswordOnceAndEndsEverySession() async throws {
        let smtp = try LoopbackSMTPServer()
        defer { smtp.stop() }
        try await smtp.waitUntilListening()
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock, configure: {
            $0.smtpURL = "smtp://127.0.0.1:\(smtp.port)?starttls=never"
            $0.mailFrom = "accounts@example.com"
        }) { client, _ in
            let user = try await client.register("forgetful@example.com")
            let unknown = try await client.json(
                "/api/auth/password-reset/", method: .post, body: #"{"email":"nobody@example.com"}"#)
            let known = try await client.json(
                "/api/auth/password-reset/", method: .post, body: #"{"email":"Forgetful@Example.com"}"#)
            #expect(unknown.status == .accepted && known.status == .accepted, "the same answer either way")
            var seen: Set<String> = []
            let token = try await Self.newToken(smtp, seen: &seen)
            #expect(token.hasPrefix("thr_"))
            #expect(try smtp.messages().count == 1, "no mail for an address without an account")
            #expect(try smtp.messages()[0].contains("To: forgetful@example.com"))

            let weak = try await client.json(
                "/api/auth/password-reset/confirm/", method: .post, body: #"{"token":"\#(token)","new_password":"short"}"#)
            #expect(weak.status == .unprocessableContent)
            _ = try await client.json("/api/auth/password-reset/", method: .post, body: #"{"email":"forgetful@example.com"}"#)
            let second = try await Self.newToken(smtp, seen: &seen)
            let reset = try await client.json(
                "/api/auth/password-reset/confirm/", method: .post,
                body: #"{"token":"\#(second)","new_password":"Brand-New-Passw0rd"}"#)
            #expect(reset.status == .noContent)
            #expect(try await client.json("/api/auth/me/", cookie: user.cookie).status == .unauthorized, "sessions end")
            let again = try await client.json(
                "/api/auth/password-reset/confirm/", method: .post,
                body: #"{"token":"\#(second)","new_password":"Another-Passw0rd!"}"#)
            #expect(again.status == .unprocessableContent, "a link works once")
            #expect(again.errorCode == "invalid_reset_token")
            let login = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"forgetful@example.com","password":"Brand-New-Passw0rd"}"#)
            #expect(login.status == .ok)

            _ = try await client.json("/api/auth/password-reset/", method: .post, body: #"{"email":"forgetful@example.com"}"#)
            let late = try await Self.newToken(smtp, seen: &seen)
            clock.advance(seconds: 3601)
            let expired = try await client.json(
                "/api/auth/password-reset/confirm/", method: .post, body: #"{"token":"\#(late)","new_password":"Third-Passw0rd!"}"#)
            #expect(expired.status == .unprocessableContent, "an hour, no more")
        }
    }

    @Test func withoutMailTheServerSaysSo() async throws {
        try await TestPlatform.run { client, _ in
            let response = try await client.json(
                "/api/auth/password-reset/", method: .post, body: #"{"email":"someone@example.com"}"#)
            #expect(response.status == .serviceUnavailable)
            #expect(response.errorCode == "mail_not_configured")
            let page = try await client.execute(uri: "/forgot-password", method: .get)
            #expect(page.status == .ok)
        }
    }
}
