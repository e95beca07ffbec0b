import PlatformCore
import Synchronization

/// A GCRA (generic cell rate algorithm) limiter: `limit` requests per `period` per key, with
/// bursts of up to `limit`. It keeps one timestamp per key, so it is cheap enough for the
/// ingest path; stale keys are pruned as the table grows.
final class RateLimiter: Sendable {
    private let emissionInterval: Int64
    private let burstTolerance: Int64
    private let clock: any WallClock
    private let theoreticalArrival = Mutex<[String: Int64]>([:])
    private static let pruneThreshold = 50_000

    init(limit: Int, periodSeconds: Double, clock: any WallClock) {
        emissionInterval = Int64(periodSeconds * 1_000_000) / Int64(max(limit, 1))
        burstTolerance = emissionInterval * Int64(max(limit, 1) - 1)
        self.clock = clock
    }

    /// Counts one request for `key`; throws a 429 error carrying Retry-After when over the limit.
    func acquire(_ key: String) throws(PlatformError) {
        let now = clock.now().microseconds
        let wait: Int64 = theoreticalArrival.withLock { table in
            let arrival = max(table[key] ?? now, now)
            let allowedAt = arrival - burstTolerance
            if allowedAt > now {
                return allowedAt - now
            }
            table[key] = arrival + emissionInterval
            if table.count > Self.pruneThreshold {
                table = table.filter { $0.value > now }
            }
            return 0
        }
        if wait > 0 {
            throw .rateLimited(retryAfter: Int((wait + 999_999) / 1_000_000))
        }
    }
}
