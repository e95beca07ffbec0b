import Foundation
import PlatformCore
import Storage
import Synchronization

/// What a live subscriber receives: a committed sample, or a keep-alive tick.
enum TelemetryStreamEvent: Sendable {
    case sample(TelemetrySample)
    case heartbeat
}

/// One subscriber's view of committed telemetry for one tenant (and optionally one device).
/// Its buffer is bounded: a subscriber that falls that far behind is ended, not allowed to
/// grow memory or slow the publisher; the client reconnects and reloads.
struct TelemetrySubscription: Sendable {
    let events: AsyncStream<TelemetryStreamEvent>
    fileprivate let continuation: AsyncStream<TelemetryStreamEvent>.Continuation

    /// Queues a keep-alive tick (dropped like any event when the buffer is full).
    func sendHeartbeat() {
        if case .dropped = continuation.yield(.heartbeat) { continuation.finish() }
    }

    /// Ends the subscription (its stream finishes).
    func cancel() {
        continuation.finish()
    }
}

/// Where committed telemetry is announced. The ingest path publishes after each commit; live
/// streams subscribe. This in-process broadcast serves one node; a multi-node deployment can
/// implement the same two protocols on PostgreSQL `LISTEN/NOTIFY`.
protocol TelemetryEventPublisher: Sendable {
    /// Announces records that were just committed (duplicates excluded).
    func publish(_ records: [TelemetryRecord])
}

/// The subscribing side of `TelemetryEventPublisher`.
protocol TelemetryEventSource: Sendable {
    /// Committed samples of `tenantID` (of one device when `serial` is given), from now on.
    /// Fails with `shutting_down` once the server is stopping.
    func subscribe(tenantID: UUID, serial: String?) throws(PlatformError) -> TelemetrySubscription
}

/// The in-process broadcast: subscribers grouped by tenant, so publishing touches only the
/// subscribers of the tenants in the batch, and costs one lock when nobody listens.
final class TelemetryBroadcast: TelemetryEventPublisher, TelemetryEventSource, Sendable {
    private struct Subscriber {
        var serial: String?
        var continuation: AsyncStream<TelemetryStreamEvent>.Continuation
    }

    private struct State {
        var subscribers: [UUID: [UInt64: Subscriber]] = [:]
        var nextID: UInt64 = 0
        var isClosed = false
    }

    private let state = Mutex(State())
    /// Events a subscriber may have queued before it is ended.
    let bufferLimit: Int

    init(bufferLimit: Int = 1024) {
        self.bufferLimit = bufferLimit
    }

    func subscribe(tenantID: UUID, serial: String?) throws(PlatformError) -> TelemetrySubscription {
        let (stream, continuation) = AsyncStream.makeStream(
            of: TelemetryStreamEvent.self, bufferingPolicy: .bufferingOldest(bufferLimit))
        let id: UInt64? = state.withLock { state in
            guard !state.isClosed else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.subscribers[tenantID, default: [:]][id] = Subscriber(serial: serial, continuation: continuation)
            return id
        }
        guard let id else { throw GroupCommitWriter.shuttingDown }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { state in
                state.subscribers[tenantID]?[id] = nil
                if state.subscribers[tenantID]?.isEmpty == true { state.subscribers[tenantID] = nil }
            }
        }
        return TelemetrySubscription(events: stream, continuation: continuation)
    }

    func publish(_ records: [TelemetryRecord]) {
        let deliveries: [(AsyncStream<TelemetryStreamEvent>.Continuation, TelemetrySample)] = state.withLock { state in
            guard !state.subscribers.isEmpty else { return [] }
            var deliveries: [(AsyncStream<TelemetryStreamEvent>.Continuation, TelemetrySample)] = []
            for record in records {
                guard let subscribers = state.subscribers[record.tenantID] else { continue }
                for subscriber in subscribers.values
                where subscriber.serial == nil || subscriber.serial == record.sample.deviceSerial {
                    deliveries.append((subscriber.continuation, record.sample))
                }
            }
            return deliveries
        }
        for (continuation, sample) in deliveries {
            if case .dropped = continuation.yield(.sample(sample)) { continuation.finish() }
        }
    }

    /// Ends every subscription and refuses new ones: the server is stopping, and open streams
    /// must not hold the HTTP server's graceful shutdown.
    func close() {
        let continuations = state.withLock { state in
            state.isClosed = true
            return state.subscribers.values.flatMap { $0.values.map(\.continuation) }
        }
        for continuation in continuations { continuation.finish() }
    }

    /// Subscribers right now (for tests and health).
    var subscriberCount: Int {
        state.withLock { $0.subscribers.values.reduce(0) { $0 + $1.count } }
    }
}
