import Foundation
import MailTesting
import Testing

@testable import Notify

/// Mail as it leaves the platform: the message format, the SMTP settings, and delivery to a
/// real SMTP server on loopback (Debian's aiosmtpd, which `make test` installs).
@Suite("Mail")
struct MailTests {
    static let date = Date(timeIntervalSince1970: 1_795_000_000)

    @Test func messagesAreRFC5322WithABase64Body() throws {
        let message = MailMessage(
            from: "alerts@example.com", to: ["a@example.com", "b@example.com"], subject: "[FIRING] Küche too warm",
            text: "Line one\n.\nLine three ☃")
        let text = try message.rendered(date: Self.date, messageID: "id-1@example.com")
        let parts = text.components(separatedBy: "\r\n\r\n")
        let headers = parts[0].components(separatedBy: "\r\n")
        #expect(headers.contains("From: alerts@example.com"))
        #expect(headers.contains("To: a@example.com, b@example.com"))
        #expect(headers.contains("Subject: =?UTF-8?B?\(Data("[FIRING] Küche too warm".utf8).base64EncodedString())?="))
        #expect(headers.contains("Date: Wed, 18 Nov 2026 11:06:40 +0000"))
        #expect(headers.contains("Message-ID: <id-1@example.com>"))
        #expect(headers.contains("Content-Transfer-Encoding: base64"))
        let body = try #require(Data(base64Encoded: parts[1].replacingOccurrences(of: "\r\n", with: "")))
        #expect(String(decoding: body, as: UTF8.self) == "Line one\r\n.\r\nLine three ☃")
        #expect(!text.contains("\n\n") && !text.replacingOccurrences(of: "\r\n", with: "").contains("\n"), "CRLF only")
    }

    @Test func headerInjectionAndBadAddressesAreRefused() {
        let good = MailMessage(from: "a@example.com", to: ["b@example.com"], subject: "hi", text: "")
        var injected = good
        injected.subject = "hi\r\nBcc: victim@example.com"
        #expect(throws: MailError.invalidSubject) { try injected.rendered(date: Self.date, messageID: "x@y") }
        for address in ["b@example.com\r\nBcc: x@y.z", "<b@example.com>", "nobody", "a b@example.com", "a@localhost"] {
            var bad = good
            bad.to = [address]
            #expect(throws: MailError.invalidAddress(address)) { try bad.rendered(date: Self.date, messageID: "x@y") }
        }
        var none = good
        none.to = []
        #expect(throws: MailError.noRecipient) { try none.rendered(date: Self.date, messageID: "x@y") }
    }

    @Test func smtpURLsFollowTheDocumentedRules() throws {
        let plain = try SMTPConfiguration(url: "smtp://mail.example.com:25")
        #expect(plain.url == "smtp://mail.example.com:25" && plain.startTLS == .opportunistic && plain.username == nil)
        let login = try SMTPConfiguration(url: "smtp://alerts%40example.com:p%40ss@mail.example.com:587")
        #expect(login.username == "alerts@example.com" && login.password == "p@ss" && login.startTLS == .required)
        #expect(login.url == "smtp://mail.example.com:587", "credentials never travel in the URL")
        #expect(try SMTPConfiguration(url: "smtp://127.0.0.1:2525?starttls=never").startTLS == .never)
        #expect(try SMTPConfiguration(url: "smtps://mail.example.com").startTLS == .required)
        for bad in ["http://mail.example.com", "smtp://", "smtp://h?starttls=maybe", "mail.example.com"] {
            #expect(throws: MailError.self) { try SMTPConfiguration(url: bad) }
        }
    }

    @Test func mailReachesARealSMTPServerAndFailuresAreReported() async throws {
        let server = try LoopbackSMTPServer()
        defer { server.stop() }
        try await server.waitUntilListening()
        let mailer = SMTPMailer(
            configuration: try SMTPConfiguration(url: "smtp://127.0.0.1:\(server.port)?starttls=never", timeoutSeconds: 10))
        let message = MailMessage(
            from: "alerts@example.com", to: ["owner@example.com"], subject: "[RESOLVED] Hall back to normal",
            text: "Hall is at 21.0 °C again.\nhttps://thermostat.example.com/devices/TH-1")
        try await mailer.send(message)
        let received = try server.messages()
        #expect(received.count == 1)
        let mail = try #require(received.first)
        #expect(mail.contains("Subject: [RESOLVED] Hall back to normal"))
        #expect(mail.contains("To: owner@example.com"))
        let body = try #require(mail.components(separatedBy: "\n\n").last.flatMap {
            Data(base64Encoded: $0.replacingOccurrences(of: "\n", with: "").replacingOccurrences(of: "\r", with: ""))
        })
        #expect(String(decoding: body, as: UTF8.self) == "Hall is at 21.0 °C again.\r\nhttps://thermostat.example.com/devices/TH-1")

        let closedPort = try LoopbackSMTPServer.freePort()
        let nowhere = SMTPMailer(
            configuration: try SMTPConfiguration(url: "smtp://127.0.0.1:\(closedPort)?starttls=never", timeoutSeconds: 5))
        await #expect(throws: MailError.self) { try await nowhere.send(message) }
        let required = SMTPMailer(
            configuration: try SMTPConfiguration(url: "smtp://127.0.0.1:\(server.port)?starttls=required", timeoutSeconds: 10))
        await #expect(throws: MailError.self, "STARTTLS required but not offered: nothing is sent in clear") {
            try await required.send(message)
        }
        #expect(try server.messages().count == 1)
    }

    @Test func aCancelledSendReturnsAtOnceWhileTheServerSaysNothing() async throws {
        let listener = try SilentSMTPListener()
        let silent = SMTPMailer(
            configuration: try SMTPConfiguration(url: "smtp://127.0.0.1:\(listener.port)?starttls=never", timeoutSeconds: 5))
        let message = MailMessage(from: "alerts@example.com", to: ["owner@example.com"], subject: "Hall", text: "Hot.")
        let send = Task { try await silent.send(message) }
        try await Task.sleep(for: .milliseconds(200))
        send.cancel()
        await #expect(throws: CancellationError.self) { try await send.value }
        withExtendedLifetime(listener) {}
    }
}
