import Foundation
import Logging
import MailTesting
import Notify
import PlatformCore
import ServiceLifecycle
import Testing

@testable import Server

/// The operator's error digest, through a real SMTP server on loopback.
@Suite("Operator digest")
struct OperatorDigestTests {
    @Test func errorsAndFailedJobsReachTheAdminInOneDigestWithoutSecrets() async throws {
        let smtp = try LoopbackSMTPServer()
        defer { smtp.stop() }
        try await smtp.waitUntilListening()
        let mailer = SMTPMailer(configuration: try SMTPConfiguration(url: "smtp://127.0.0.1:\(smtp.port)?starttls=never"))
        let digest = OperatorDigest(
            mailer: mailer, from: "platform@example.com", recipient: "operator@example.com", period: .seconds(60),
            clock: ManualClock(), logger: TestPlatformLog.logger)
        await digest.flush()
        #expect(try smtp.messages().isEmpty, "nothing to report, nothing mailed")

        digest.serverError(requestID: "req-1", method: "GET", path: "/reset-password?token=thr_secret", status: 500)
        for index in 0..<(OperatorDigest.maximumEntries + 5) {
            digest.jobFailed("retention", error: "disk full \(index)")
        }
        await digest.flush()
        let messages = try smtp.messages()
        #expect(messages.count == 1, "a storm is one mail")
        let text = LoopbackSMTPServer.text(of: messages[0])
        #expect(messages[0].contains("To: operator@example.com"))
        #expect(LoopbackSMTPServer.subject(of: messages[0]) == "[thermostat] \(OperatorDigest.maximumEntries + 6) operator events")
        #expect(text.contains("HTTP 500 GET /reset-password (request req-1)"))
        #expect(!text.contains("thr_secret"), "query strings stay out")
        #expect(text.contains("retention failed: disk full 0") && text.contains("… and 6 more"))

        await digest.flush()
        #expect(try smtp.messages().count == 1, "flushed entries are not mailed twice")
    }

    @Test(.timeLimit(.minutes(1))) func theLastDigestCannotHoldTheShutdown() async throws {
        // Without a bound the last digest would wait for the mail server's 30 s timeout (and a
        // slower one for longer), past any drain time.
        let listener = try SilentSMTPListener()
        let mailer = SMTPMailer(
            configuration: try SMTPConfiguration(url: "smtp://127.0.0.1:\(listener.port)?starttls=never", timeoutSeconds: 300))
        let digest = OperatorDigest(
            mailer: mailer, from: "platform@example.com", recipient: "operator@example.com", period: .seconds(60),
            clock: ManualClock(), logger: TestPlatformLog.logger)
        digest.jobFailed("retention", error: "disk full")
        let services = ServiceGroup(configuration: ServiceGroupConfiguration(services: [digest], logger: TestPlatformLog.logger))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await services.run() }
            try await Task.sleep(for: .milliseconds(100))
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        withExtendedLifetime(listener) {}
    }

    @Test func withoutAnAddressNothingIsKept() async throws {
        let digest = OperatorDigest(
            mailer: nil, from: "platform@example.com", recipient: nil, period: .seconds(60), clock: ManualClock(),
            logger: TestPlatformLog.logger)
        #expect(!digest.isEnabled)
        digest.jobFailed("retention", error: "x")
        await digest.flush()
    }
}
