import Logging
import PlatformCore
import ServiceLifecycle
import Storage
import Synchronization

/// Collects telemetry from concurrent requests into shared transactions.
///
/// Each request submits its records and waits; the writer takes everything queued when a
/// transaction starts (up to `maximumBatch` records), commits it, and only then answers every
/// request in it. Throughput comes from many requests sharing one commit, not from answering
/// before the write. After each commit the new (non-duplicate) records go to `events`, the live
/// streams' broadcast. As a `Service` it outlives the HTTP server on shutdown: requests still in
/// flight are committed before it stops.
///
/// A commit holds one of `maximumConcurrentCommits` slots. Every commit ends within
/// `commitTimeBound` whatever the store does (a store call that never returns is abandoned, not
/// awaited), and its slot is given back on every path, so a database blip cannot leave a slot
/// taken and slowly throttle ingest, nor keep shutdown waiting. A request is answered within
/// `requestTimeBound` (503 `database_timeout` past it, queued or committing), so requests do not
/// pile up behind a database that stopped answering.
final class GroupCommitWriter: Service, Sendable {
    private struct PendingWrite {
        var id: UInt64
        var records: [TelemetryRecord]
    }

    private struct Waiter {
        var continuation: CheckedContinuation<[Bool], any Error>
        var submittedAt: ContinuousClock.Instant
    }

    /// What the writer holds right now, for health and shutdown logs.
    struct Status: Sendable, CustomStringConvertible {
        var queuedWrites: Int
        var queuedRecords: Int
        var commitsInFlight: Int
        var waitingRequests: Int

        var isIdle: Bool { waitingRequests == 0 && commitsInFlight == 0 }
        var description: String {
            "\(waitingRequests) ingest requests waiting, \(commitsInFlight) commits in flight, "
                + "\(queuedRecords) samples queued"
        }
    }

    private struct State {
        var pending: [PendingWrite] = []
        /// Every submitted write not answered yet, queued or in a commit. A write is answered
        /// exactly once: whoever takes its continuation out of here resumes it.
        var waiters: [UInt64: Waiter] = [:]
        var nextID: UInt64 = 0
        var inFlight = 0
        var isClosed = false
    }

    private let store: any TelemetryStore
    private let clock: any WallClock
    private let logger: Logger
    private let maximumBatch: Int
    private let maximumConcurrentCommits: Int
    private let commitTimeBound: Duration
    private let requestTimeBound: Duration
    private let events: (any TelemetryEventPublisher)?
    let health: CommitHealth
    private let state = Mutex(State())
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation

    init(
        store: any TelemetryStore, clock: any WallClock, logger: Logger, maximumBatch: Int = 5000,
        maximumConcurrentCommits: Int, requestTimeBound: Duration, commitTimeBound: Duration,
        events: (any TelemetryEventPublisher)? = nil, health: CommitHealth = CommitHealth()
    ) {
        self.events = events
        self.store = store
        self.clock = clock
        self.logger = logger
        self.maximumBatch = maximumBatch
        self.maximumConcurrentCommits = maximumConcurrentCommits
        self.commitTimeBound = commitTimeBound
        self.requestTimeBound = requestTimeBound
        self.health = health
        (wakeups, wakeupContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Stores `records`; returns, per record, whether it was new (false: a duplicate). Returns
    /// only after the transaction holding them has committed.
    func submit(_ records: [TelemetryRecord]) async throws -> [Bool] {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = state.withLock { state in
                guard !state.isClosed else { return false }
                let id = state.nextID
                state.nextID += 1
                state.pending.append(PendingWrite(id: id, records: records))
                state.waiters[id] = Waiter(continuation: continuation, submittedAt: .now)
                return true
            }
            if accepted {
                wakeupContinuation.yield()
            } else {
                continuation.resume(throwing: Self.shuttingDown)
            }
        }
    }

    static let shuttingDown = PlatformError(.unavailable, code: "shutting_down", message: "The server is shutting down")

    var status: Status {
        state.withLock { state in
            Status(
                queuedWrites: state.pending.count, queuedRecords: state.pending.reduce(0) { $0 + $1.records.count },
                commitsInFlight: state.inFlight, waitingRequests: state.waiters.count)
        }
    }

    /// Answers every write still waiting (queued or in a commit) with `shutting_down` and drops
    /// the queued ones: the drain time is over. A commit still running may yet succeed; its
    /// samples were not acknowledged, and a retry finds them as duplicates.
    func failWaiting() -> Int {
        let waiters = state.withLock { state in
            state.pending = []
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.continuation.resume(throwing: Self.shuttingDown) }
        wakeupContinuation.yield()
        return waiters.count
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.expireOverdueWrites() }
                for await _ in wakeups {
                    while let batch = takeBatch() {
                        group.addTask { await self.commit(batch) }
                    }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.state.withLock { $0.isClosed = true }
            self.wakeupContinuation.yield()
        }
        while let batch = takeBatchIgnoringConcurrency() {
            await commit(batch)
        }
    }

    /// Answers writes that waited longer than `requestTimeBound` with `database_timeout`, a few
    /// times per bound, until cancelled. A write already in a commit may still be stored; it was
    /// not acknowledged, and a retry finds it as a duplicate.
    private func expireOverdueWrites() async {
        let period = min(requestTimeBound / 4, .seconds(1))
        while (try? await Task.sleep(for: period)) != nil {
            let cutoff = ContinuousClock.now - requestTimeBound
            let overdue = state.withLock { state -> [Waiter] in
                let ids = state.waiters.filter { $0.value.submittedAt < cutoff }.map(\.key)
                guard !ids.isEmpty else { return [] }
                let expired = Set(ids)
                state.pending.removeAll { expired.contains($0.id) }
                return ids.compactMap { state.waiters.removeValue(forKey: $0) }
            }
            guard !overdue.isEmpty else { continue }
            logger.warning("telemetry writes timed out", metadata: ["requests": "\(overdue.count)"])
            for waiter in overdue {
                waiter.continuation.resume(
                    throwing: PlatformError(
                        .unavailable, code: "database_timeout", message: "Telemetry could not be stored in time; retry"))
            }
        }
    }

    private func takeBatch() -> [PendingWrite]? {
        let batch: [PendingWrite]? = state.withLock { state in
            guard state.inFlight < maximumConcurrentCommits else { return nil }
            return take(from: &state)
        }
        if batch == nil, state.withLock({ $0.isClosed && $0.inFlight == 0 && $0.pending.isEmpty }) {
            wakeupContinuation.finish()
        }
        return batch
    }

    private func takeBatchIgnoringConcurrency() -> [PendingWrite]? {
        state.withLock { take(from: &$0) }
    }

    private func take(from state: inout State) -> [PendingWrite]? {
        guard !state.pending.isEmpty else { return nil }
        var count = 0
        var end = 0
        while end < state.pending.count, count == 0 || count + state.pending[end].records.count <= maximumBatch {
            count += state.pending[end].records.count
            end += 1
        }
        let batch = Array(state.pending[..<end])
        state.pending.removeFirst(end)
        state.inFlight += 1
        return batch
    }

    private func commit(_ batch: [PendingWrite]) async {
        defer {
            state.withLock { $0.inFlight -= 1 }
            wakeupContinuation.yield()
        }
        let records = batch.flatMap(\.records)
        let outcome: Result<[Bool], any Error>
        do {
            let store = store
            let receivedAt = clock.now()
            outcome = .success(
                try await withTimeBound(commitTimeBound, what: "telemetry commit") {
                    try await store.insert(records, receivedAt: receivedAt)
                })
            health.recordSuccess()
            if let events, case .success(let inserted) = outcome {
                events.publish(zip(records, inserted).compactMap { $1 ? $0 : nil })
            }
        } catch {
            logger.error(
                "telemetry commit failed", metadata: ["error": "\(String(reflecting: error))", "records": "\(records.count)"])
            health.recordFailure(String(describing: error))
            outcome = .failure(error)
        }
        let waiters = state.withLock { state in batch.map { state.waiters.removeValue(forKey: $0.id) } }
        var offset = 0
        for (write, waiter) in zip(batch, waiters) {
            defer { offset += write.records.count }
            guard let waiter else { continue }
            switch outcome {
            case .success(let inserted):
                waiter.continuation.resume(returning: Array(inserted[offset..<offset + write.records.count]))
            case .failure:
                waiter.continuation.resume(
                    throwing: PlatformError(
                        .unavailable, code: "storage_unavailable", message: "Telemetry could not be stored; retry"))
            }
        }
    }
}

/// Whether recent telemetry commits succeed: readiness is false while the latest commit failed
/// (a full disk, a database refusing writes) and true again after the next one succeeds.
final class CommitHealth: Sendable {
    struct Failure: Sendable {
        var at: ContinuousClock.Instant
        var reason: String
    }

    private let lastFailure = Mutex<Failure?>(nil)

    init() {}

    func recordSuccess() {
        lastFailure.withLock { $0 = nil }
    }

    func recordFailure(_ reason: String) {
        lastFailure.withLock { $0 = Failure(at: .now, reason: reason) }
    }

    /// The latest commit's failure when it failed within `window`.
    func failure(within window: Duration) -> Failure? {
        lastFailure.withLock { failure in
            guard let failure, ContinuousClock.now - failure.at < window else { return nil }
            return failure
        }
    }
}
