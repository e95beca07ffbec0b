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
/// before the write. As a `Service` it outlives the HTTP server on shutdown: requests still in
/// flight are committed before it stops.
final class GroupCommitWriter: Service, Sendable {
    private struct PendingWrite {
        var records: [TelemetryRecord]
        var continuation: CheckedContinuation<[Bool], any Error>
    }

    private struct State {
        var pending: [PendingWrite] = []
        var inFlight = 0
        var isClosed = false
    }

    private let store: any TelemetryStore
    private let clock: any WallClock
    private let logger: Logger
    private let maximumBatch: Int
    private let maximumConcurrentCommits: Int
    private let state = Mutex(State())
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation

    init(
        store: any TelemetryStore, clock: any WallClock, logger: Logger, maximumBatch: Int = 5000,
        maximumConcurrentCommits: Int
    ) {
        self.store = store
        self.clock = clock
        self.logger = logger
        self.maximumBatch = maximumBatch
        self.maximumConcurrentCommits = maximumConcurrentCommits
        (wakeups, wakeupContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Stores `records`; returns, per record, whether it was new (false: a duplicate). Returns
    /// only after the transaction holding them has committed.
    func submit(_ records: [TelemetryRecord]) async throws -> [Bool] {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = state.withLock { state in
                guard !state.isClosed else { return false }
                state.pending.append(PendingWrite(records: records, continuation: continuation))
                return true
            }
            if accepted {
                wakeupContinuation.yield()
            } else {
                continuation.resume(
                    throwing: PlatformError(.unavailable, code: "shutting_down", message: "The server is shutting down"))
            }
        }
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await _ in wakeups {
                    while let batch = takeBatch() {
                        group.addTask { await self.commit(batch) }
                    }
                }
            }
        } onGracefulShutdown: {
            self.state.withLock { $0.isClosed = true }
            self.wakeupContinuation.yield()
        }
        while let batch = takeBatchIgnoringConcurrency() {
            await commit(batch)
        }
    }

    private func takeBatch() -> [PendingWrite]? {
        let batch: [PendingWrite]? = state.withLock { state in
            guard state.inFlight < maximumConcurrentCommits else { return nil }
            return take(from: &state)
        }
        if batch == nil, state.withLock({ $0.isClosed && $0.inFlight == 0 }) {
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
        let records = batch.flatMap(\.records)
        do {
            let inserted = try await store.insert(records, receivedAt: clock.now())
            var offset = 0
            for write in batch {
                write.continuation.resume(returning: Array(inserted[offset..<offset + write.records.count]))
                offset += write.records.count
            }
        } catch {
            logger.error("telemetry commit failed", metadata: ["error": "\(String(reflecting: error))", "records": "\(records.count)"])
            for write in batch {
                write.continuation.resume(
                    throwing: PlatformError(.unavailable, code: "storage_unavailable", message: "Telemetry could not be stored; retry"))
            }
        }
        state.withLock { $0.inFlight -= 1 }
        wakeupContinuation.yield()
    }
}
