import PlatformCore
import Synchronization

/// A GCRA (generic cell rate algorithm) limiter: `limit` requests per `period` per key, with
/// bursts of up to `limit`. It keeps one timestamp per key, so it is cheap enough for the
/// ingest path.
///
/// Memory is bounded: keys live in an `LRUTable` of `capacity` entries (the least recently
/// seen key is forgotten in O(1) when a new one arrives at a full table, never a scan under
/// the lock), and keys longer than `maximumKeyBytes` are cut to that length. A forgotten key
/// starts again with a full burst, so the capacity is sized well above the number of keys that
/// are live within one period.
final class RateLimiter: Sendable {
    private let emissionInterval: Int64
    private let burstTolerance: Int64
    private let periodMicroseconds: Int64
    private let clock: any WallClock
    private let theoreticalArrival: Mutex<LRUTable<Int64>>
    static let defaultCapacity = 100_000
    static let maximumKeyBytes = 256

    init(limit: Int, periodSeconds: Double, clock: any WallClock, capacity: Int = defaultCapacity) {
        periodMicroseconds = Int64(periodSeconds * 1_000_000)
        emissionInterval = periodMicroseconds / Int64(max(limit, 1))
        burstTolerance = emissionInterval * Int64(max(limit, 1) - 1)
        self.clock = clock
        theoreticalArrival = Mutex(LRUTable(capacity: capacity))
    }

    /// Counts one request for `key`; throws a 429 error carrying Retry-After when over the limit.
    func acquire(_ key: String) throws(PlatformError) {
        try acquire(key, emissionInterval: emissionInterval, burstTolerance: burstTolerance)
    }

    /// Counts one request for `key` against `limit` per period instead of the limiter's own
    /// (a tenant whose tier sets its own rate).
    func acquire(_ key: String, limit: Int) throws(PlatformError) {
        let interval = periodMicroseconds / Int64(max(limit, 1))
        try acquire(key, emissionInterval: interval, burstTolerance: interval * Int64(max(limit, 1) - 1))
    }

    private func acquire(_ key: String, emissionInterval: Int64, burstTolerance: Int64) throws(PlatformError) {
        let key = Self.bounded(key)
        let now = clock.now().microseconds
        let wait: Int64 = theoreticalArrival.withLock { table in
            let arrival = max(table.value(for: key) ?? now, now)
            let allowedAt = arrival - burstTolerance
            if allowedAt > now {
                return allowedAt - now
            }
            table.set(arrival + emissionInterval, for: key)
            return 0
        }
        if wait > 0 {
            throw .rateLimited(retryAfter: Self.seconds(wait))
        }
    }

    /// The seconds until `key` may make a request again, or nil when it may now; counts nothing.
    func retryAfter(_ key: String) -> Int? {
        let key = Self.bounded(key)
        let now = clock.now().microseconds
        let arrival = theoreticalArrival.withLock { $0.value(for: key) } ?? now
        let wait = arrival - burstTolerance - now
        return wait > 0 ? Self.seconds(wait) : nil
    }

    /// Keys this limiter remembers (at most its capacity).
    var trackedKeys: Int { theoreticalArrival.withLock { $0.count } }

    private static func seconds(_ microseconds: Int64) -> Int {
        Int((microseconds + 999_999) / 1_000_000)
    }

    private static func bounded(_ key: String) -> String {
        key.utf8.count <= maximumKeyBytes ? key : String(decoding: key.utf8.prefix(maximumKeyBytes), as: UTF8.self)
    }
}
