import Foundation
import Logging
import Notify
import PlatformCore
import ServiceLifecycle
import Synchronization

/// Tells the platform's operator (`THERMOSTAT_ADMIN_EMAIL`) about unexpected server errors (500s,
/// with their request ids) and failed background work, batched into one mail at most every
/// `period`, so a storm of errors is one digest, not an inbox flood. It keeps the first
/// `maximumEntries` of a period and counts the rest. Entries carry no secrets: a path without
/// its query string, a request id, a job's name and error.
final class OperatorDigest: Service, Sendable {
    struct Entry: Sendable, Equatable {
        var at: Timestamp
        var line: String
    }

    private struct Pending {
        var entries: [Entry] = []
        var dropped = 0
    }

    private let mailer: (any Mailer)?
    private let from: String
    private let recipient: String?
    private let period: Duration
    private let clock: any WallClock
    private let logger: Logger
    private let pending = Mutex(Pending())
    static let maximumEntries = 200

    init(mailer: (any Mailer)?, from: String, recipient: String?, period: Duration, clock: any WallClock, logger: Logger) {
        self.mailer = mailer
        self.from = from
        self.recipient = recipient
        self.period = period
        self.clock = clock
        self.logger = logger
    }

    /// Whether anything is mailed (an address and mail are configured).
    var isEnabled: Bool { mailer != nil && recipient != nil }

    func serverError(requestID: String, method: String, path: String, status: Int) {
        let route = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        note("HTTP \(status) \(method) \(route.prefix(200)) (request \(requestID))")
    }

    func jobFailed(_ job: String, error: String) {
        note("\(job) failed: \(error.prefix(500))")
    }

    private func note(_ line: String) {
        guard isEnabled else { return }
        let entry = Entry(at: clock.now(), line: line)
        pending.withLock { pending in
            if pending.entries.count < Self.maximumEntries { pending.entries.append(entry) } else { pending.dropped += 1 }
        }
    }

    func run() async throws {
        guard isEnabled else {
            // Nothing to mail; a service that returns early would stop the whole group.
            try? await gracefulShutdown()
            return
        }
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: self.period)
                await self.flush()
            }
        }
        // The last digest gets a bounded time: a mail server that does not answer must not hold
        // the shutdown (the mailer gives up at once when cancelled).
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.flush() }
            group.addTask { try? await Task.sleep(for: Self.finalFlushBound) }
            await group.next()
            group.cancelAll()
        }
    }

    /// How long the last digest, at shutdown, may take to be mailed.
    static let finalFlushBound = Duration.seconds(5)

    /// Mails what accumulated, if anything; on failure the entries wait for the next period.
    func flush() async {
        guard let mailer, let recipient else { return }
        let batch = pending.withLock { pending in
            defer { pending = Pending() }
            return pending
        }
        guard !batch.entries.isEmpty else { return }
        let total = batch.entries.count + batch.dropped
        var lines = batch.entries.map { "\($0.at.iso8601)  \($0.line)" }
        if batch.dropped > 0 { lines.append("… and \(batch.dropped) more") }
        let message = MailMessage(
            from: from, to: [recipient], subject: "[thermostat] \(total) operator event\(total == 1 ? "" : "s")",
            text: "The platform reported these since the last digest:\n\n" + lines.joined(separator: "\n") + "\n")
        do {
            try await mailer.send(message)
        } catch {
            logger.warning("operator digest could not be mailed", metadata: ["error": "\(error)"])
            pending.withLock { pending in
                let room = max(0, Self.maximumEntries - pending.entries.count)
                pending.entries.insert(contentsOf: batch.entries.prefix(room), at: 0)
                pending.dropped += batch.dropped + max(0, batch.entries.count - room)
            }
        }
    }
}
