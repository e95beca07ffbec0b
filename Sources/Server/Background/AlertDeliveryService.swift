import Foundation
import Logging
import Notify
import PlatformCore
import ServiceLifecycle
import Storage
import Synchronization

/// Sends the notifications evaluation stored, each to its channel: mail over SMTP, webhooks
/// signed with the channel's secret. A delivery is claimed with a lease before it is sent (its
/// attempt counted), and its outcome recorded after: a crash mid-send retries it when the next
/// server starts (or when the lease ends), with the same delivery id. Failures retry with exponential backoff and jitter up to
/// `maximumAttempts`; then the delivery is `failed` (a dead letter, retried only by hand).
/// Webhooks that answer 4xx (but 408 and 429) fail at once: retrying would not help.
final class AlertDeliveryService: Service, Sendable {
    private let store: any PlatformStore
    private let mailer: (any Mailer)?
    private let mailFrom: String
    private let webhooks: any WebhookSender
    /// In production a webhook goes only to `https://` (a channel made in development may
    /// still name `http://`).
    private let isProduction: Bool
    private let clock: any WallClock
    private let logger: Logger
    let maximumAttempts: Int
    private let retryBaseSeconds: Double
    /// This sender's lease owner id: leases of other ids were left by a sender that stopped.
    private let instance = UUID()
    private let leasesReleased = Mutex(false)
    private let schema: SchemaReadiness
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation
    /// How long a claimed delivery is kept from others: past the longest attempt.
    static let leaseSeconds: Double = 120
    static let batchSize = 20

    init(
        store: any PlatformStore, mailer: (any Mailer)?, mailFrom: String, webhooks: any WebhookSender, isProduction: Bool,
        clock: any WallClock, maximumAttempts: Int, retryBaseSeconds: Double, schema: SchemaReadiness, logger: Logger
    ) {
        self.isProduction = isProduction
        self.schema = schema
        self.store = store
        self.mailer = mailer
        self.mailFrom = mailFrom
        self.webhooks = webhooks
        self.clock = clock
        self.maximumAttempts = maximumAttempts
        self.retryBaseSeconds = retryBaseSeconds
        self.logger = logger
        (wakeups, wakeupContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Notifications were stored: look for due deliveries now.
    func wake() {
        wakeupContinuation.yield()
    }

    /// Graceful shutdown cancels the sends in flight rather than waiting for them (a receiver or
    /// a database that does not answer would hold the shutdown past its drain time). A cancelled
    /// send records nothing: its lease makes it due again at the next start, with the same id.
    func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.schema.wait()
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while (try? await Task.sleep(for: .seconds(1))) != nil { self.wakeupContinuation.yield() }
                }
                // Ends when shutdown cancels the service (and with it the timer above).
                for await _ in self.wakeups {
                    await self.deliverDue()
                }
            }
        }
        if let webhooks = webhooks as? HTTPWebhookSender { await webhooks.shutdown() }
    }

    /// Sends every delivery due now, a batch at a time, the batch's sends side by side. The
    /// first successful run makes deliveries a stopped server left mid-send due.
    private func deliverDue() async {
        if !leasesReleased.withLock({ $0 }) {
            do {
                let released = try await store.releaseDeliveryLeases(notOwnedBy: instance, now: clock.now())
                leasesReleased.withLock { $0 = true }
                if released > 0 {
                    logger.notice("alert deliveries left mid-send by a stopped server are due again", metadata: ["count": "\(released)"])
                }
            } catch {
                return
            }
        }
        while true {
            let now = clock.now()
            let claimed: [AlertDelivery]
            do {
                claimed = try await store.claimDueDeliveries(
                    now: now, leaseUntil: now.adding(seconds: Self.leaseSeconds), owner: instance, limit: Self.batchSize)
            } catch {
                if !Task.isCancelled {
                    logger.warning("could not read due alert deliveries", metadata: ["error": "\(error)"])
                }
                return
            }
            guard !claimed.isEmpty else { return }
            await withDiscardingTaskGroup { group in
                for delivery in claimed {
                    group.addTask { _ = await self.attempt(delivery) }
                }
            }
            if claimed.count < Self.batchSize { return }
        }
    }

    /// Sends one delivery now, whatever its next attempt time (a channel's test, a retry by
    /// hand), and answers it as it is afterwards; nil when there is none to send.
    func sendNow(tenantID: UUID, id: UUID) async throws -> AlertDelivery? {
        let now = clock.now()
        guard
            let delivery = try await store.claimDelivery(
                tenantID: tenantID, id: id, leaseUntil: now.adding(seconds: Self.leaseSeconds), owner: instance)
        else { return try await store.delivery(tenantID: tenantID, id: id) }
        await attempt(delivery)
        return try await store.delivery(tenantID: tenantID, id: id)
    }

    /// One attempt (already counted by the claim), and its outcome recorded.
    private func attempt(_ delivery: AlertDelivery) async {
        let result = await send(delivery)
        // Cancelled by shutdown: the outcome may be the cancellation's, so none is recorded.
        guard !Task.isCancelled else { return }
        let now = clock.now()
        var status = AlertDelivery.Status.sent
        var next = now
        var error: String?
        switch result {
        case .success:
            break
        case .failure(let failure):
            error = failure.message
            if failure.retryable && delivery.attempts < maximumAttempts {
                status = .retrying
                next = now.adding(seconds: backoff(afterAttempt: delivery.attempts))
            } else {
                status = .failed
                logger.notice(
                    "alert delivery failed for good",
                    metadata: ["delivery": "\(delivery.id)", "attempts": "\(delivery.attempts)", "error": "\(failure.message)"])
            }
        }
        do {
            try await store.recordDeliveryOutcome(
                id: delivery.id, status: status, nextAttemptAt: next, lastError: error, sentAt: status == .sent ? now : nil)
        } catch {
            logger.warning("could not record an alert delivery's outcome", metadata: ["delivery": "\(delivery.id)", "error": "\(error)"])
        }
    }

    /// The wait after `attempt` failed: the base doubled per attempt, capped at an hour, with
    /// jitter (between half and all of it) so many failing receivers do not retry in step.
    func backoff(afterAttempt attempt: Int) -> Double {
        let full = min(retryBaseSeconds * pow(2, Double(max(0, attempt - 1))), 3600)
        return full * Double.random(in: 0.5...1)
    }

    private struct Failure: Error {
        var message: String
        var retryable: Bool
    }

    private func send(_ delivery: AlertDelivery) async -> Result<Void, Failure> {
        let channel: AlertChannel?
        do {
            channel = try await store.alertChannel(tenantID: delivery.tenantID, id: delivery.channelID)
        } catch {
            return .failure(Failure(message: "the channel could not be read: \(error)", retryable: true))
        }
        guard let channel else { return .failure(Failure(message: "the channel was deleted", retryable: false)) }
        guard let payload = NotificationPayload.decode(delivery.payloadJSON) else {
            return .failure(Failure(message: "the stored notification does not decode", retryable: false))
        }
        switch channel.kind {
        case .email:
            guard let mailer else {
                return .failure(Failure(message: "mail is not configured (THERMOSTAT_SMTP_URL)", retryable: true))
            }
            do {
                try await mailer.send(MailMessage(from: mailFrom, to: channel.recipients, subject: payload.subject, text: payload.text))
                return .success(())
            } catch let error as MailError {
                // A message the mailer refuses to build would be refused again.
                if case .delivery = error { return .failure(Failure(message: "\(error)", retryable: true)) }
                return .failure(Failure(message: "\(error)", retryable: false))
            } catch {
                return .failure(Failure(message: "\(error)", retryable: true))
            }
        case .webhook:
            guard let url = channel.url, let secret = channel.secret else {
                return .failure(Failure(message: "the channel has no URL", retryable: false))
            }
            guard !isProduction || url.lowercased().hasPrefix("https://") else {
                return .failure(Failure(message: "webhooks go only to https:// URLs in production", retryable: false))
            }
            let outcome = await webhooks.send(
                WebhookRequest(url: url, body: delivery.payloadJSON, deliveryID: payload.delivery, secret: secret),
                // The signature's time is the real one: receivers check it against their clocks.
                timestamp: Int(Date().timeIntervalSince1970))
            if outcome.isSuccess { return .success(()) }
            switch outcome {
            case .answered(let status):
                return .failure(Failure(message: "the receiver answered HTTP \(status)", retryable: outcome.isRetryable))
            case .unreachable(let reason):
                return .failure(Failure(message: "the receiver could not be reached: \(reason)", retryable: true))
            }
        }
    }
}
