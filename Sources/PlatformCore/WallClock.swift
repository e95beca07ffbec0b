import Foundation
import Synchronization

/// The source of "now" for rules that depend on time (session expiry, rate limits, skew checks),
/// injected so tests can move time without sleeping.
public protocol WallClock: Sendable {
    func now() -> Timestamp
}

/// The real clock.
public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Timestamp { Timestamp(Date()) }
}

/// A clock that only moves when told to; for tests and simulations.
public final class ManualClock: WallClock {
    private let current: Mutex<Timestamp>

    public init(_ start: Timestamp = Timestamp(Date())) {
        current = Mutex(start)
    }

    public func now() -> Timestamp { current.withLock { $0 } }

    public func advance(seconds: Double) {
        current.withLock { $0 = $0.adding(seconds: seconds) }
    }
}
