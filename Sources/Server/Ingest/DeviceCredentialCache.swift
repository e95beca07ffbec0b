import PlatformCore
import Storage
import Synchronization

/// Authenticates `Device <serial>:<api_key>` without a database read per request.
///
/// Credentials (hashes only) are cached per serial for `timeToLiveSeconds`; this process
/// invalidates an entry the moment it rotates, revokes or deletes the device, and the TTL bounds
/// how long another server process sharing the database may accept a revoked key.
final class DeviceCredentialCache: Sendable {
    /// Cached lookups: the devices found and, apart, the serials that were not. Unknown serials
    /// cost a client nothing to invent, so they have their own small table: filling it evicts
    /// only other unknown serials, never a real device's entry.
    private struct Tables {
        var devices: LRUTable<Entry<DeviceCredential>>
        var unknown: LRUTable<Entry<Void>>
    }

    private struct Entry<Value> {
        var value: Value
        var fetchedAt: Timestamp
    }

    private let store: any DeviceStore
    private let clock: any WallClock
    private let timeToLiveSeconds: Double
    private let tables: Mutex<Tables>
    static let deviceCapacity = 100_000
    static let unknownCapacity = 10_000

    init(
        store: any DeviceStore, clock: any WallClock, timeToLiveSeconds: Double = 30,
        deviceCapacity: Int = deviceCapacity, unknownCapacity: Int = unknownCapacity
    ) {
        self.store = store
        self.clock = clock
        self.timeToLiveSeconds = timeToLiveSeconds
        tables = Mutex(Tables(devices: LRUTable(capacity: deviceCapacity), unknown: LRUTable(capacity: unknownCapacity)))
    }

    /// The device's credential when a fresh cached entry accepts `key`; nil on a miss or a
    /// mismatch. Never reads the store.
    func cachedCredential(serial: String, key: String) -> DeviceCredential? {
        let now = clock.now()
        guard let entry = tables.withLock({ $0.devices.value(for: serial) }), isFresh(entry.fetchedAt, now: now) else {
            return nil
        }
        return Self.accepts(entry.value, key: key, now: now) ? entry.value : nil
    }

    /// The device's credential if `key` is its current key, or its previous key within the
    /// rotation grace period; otherwise a 401.
    func authenticate(serial: String, key: String) async throws -> DeviceCredential {
        let now = clock.now()
        let cached: DeviceCredential?? = tables.withLock { tables in
            if let entry = tables.devices.value(for: serial), isFresh(entry.fetchedAt, now: now) {
                return .some(entry.value)
            }
            if let entry = tables.unknown.value(for: serial), isFresh(entry.fetchedAt, now: now) {
                return .some(nil)
            }
            return nil
        }
        let credential: DeviceCredential?
        if let cached {
            credential = cached
        } else {
            credential = try await store.credential(serial: serial)
            tables.withLock { tables in
                if let credential {
                    tables.unknown.remove(serial)
                    tables.devices.set(Entry(value: credential, fetchedAt: now), for: serial)
                } else {
                    tables.devices.remove(serial)
                    tables.unknown.set(Entry(value: (), fetchedAt: now), for: serial)
                }
            }
        }
        guard let credential, Self.accepts(credential, key: key, now: now) else { throw Self.rejected }
        return credential
    }

    private func isFresh(_ fetchedAt: Timestamp, now: Timestamp) -> Bool {
        now.secondsSinceEpoch - fetchedAt.secondsSinceEpoch < timeToLiveSeconds
    }

    private static func accepts(_ credential: DeviceCredential, key: String, now: Timestamp) -> Bool {
        guard !credential.revoked else { return false }
        let presented = Secrets.hash(key)
        if Secrets.constantTimeEquals(presented, credential.keyHash) {
            return true
        }
        if let previous = credential.previousKeyHash, let expiry = credential.previousKeyExpiresAt, now < expiry {
            return Secrets.constantTimeEquals(presented, previous)
        }
        return false
    }

    /// Entries held (devices, unknown serials), for tests and operations.
    var counts: (devices: Int, unknown: Int) { tables.withLock { ($0.devices.count, $0.unknown.count) } }

    func invalidate(serial: String) {
        tables.withLock { tables in
            tables.devices.remove(serial)
            tables.unknown.remove(serial)
        }
    }

    static let rejected = PlatformError(
        .unauthenticated, code: "invalid_device_credentials",
        message: "Unknown device, wrong or revoked API key; the device needs re-provisioning")
}
