import Foundation
import PlatformCore
import Storage
import Synchronization

/// Authenticates `Device <serial>:<api_key>` without a database read per request.
///
/// A device is found by its key (serials are unique per tenant only, so a serial alone names
/// no device), then the serial it was registered with must match. Two caches: which device a
/// key hash belongs to (that never changes: keys are random), and each device's credential
/// (hashes only) for `timeToLiveSeconds`. This process invalidates a device's credential the
/// moment it rotates, revokes or deletes the device; the TTL bounds how long another server
/// process sharing the database may accept a revoked key.
final class DeviceCredentialCache: Sendable {
    /// Cached lookups. Unknown keys cost a client nothing to invent, so they have their own
    /// small table: filling it evicts only other unknown keys, never a real device's entry.
    private struct Tables {
        /// Key hash → the device it belongs to (see `deviceKey`).
        var owners: LRUTable<String>
        var credentials: LRUTable<Entry<DeviceCredential>>
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
        tables = Mutex(
            Tables(
                owners: LRUTable(capacity: deviceCapacity), credentials: LRUTable(capacity: deviceCapacity),
                unknown: LRUTable(capacity: unknownCapacity)))
    }

    /// A device across tenants, as a table key.
    private static func deviceKey(tenantID: UUID, serial: String) -> String {
        "\(tenantID.uuidString)/\(serial)"
    }

    /// The device's credential when a fresh cached entry accepts `serial` and `key`; nil on a
    /// miss or a mismatch. Never reads the store.
    func cachedCredential(serial: String, key: String) -> DeviceCredential? {
        let now = clock.now()
        let keyHash = Secrets.hash(key)
        guard
            let entry = tables.withLock({ tables in
                tables.owners.value(for: keyHash).flatMap { tables.credentials.value(for: $0) }
            }), isFresh(entry.fetchedAt, now: now)
        else { return nil }
        return Self.accepts(entry.value, serial: serial, keyHash: keyHash, now: now) ? entry.value : nil
    }

    /// The device whose current key (or previous key, within the rotation grace period) is
    /// `key`, registered as `serial`; otherwise a 401 that does not say which part was wrong.
    func authenticate(serial: String, key: String) async throws -> DeviceCredential {
        let now = clock.now()
        let keyHash = Secrets.hash(key)
        let cached: DeviceCredential?? = tables.withLock { tables in
            if let owner = tables.owners.value(for: keyHash), let entry = tables.credentials.value(for: owner),
                isFresh(entry.fetchedAt, now: now)
            {
                return .some(entry.value)
            }
            if let entry = tables.unknown.value(for: keyHash), isFresh(entry.fetchedAt, now: now) {
                return .some(nil)
            }
            return nil
        }
        let credential: DeviceCredential?
        if let cached {
            credential = cached
        } else {
            credential = try await store.credential(keyHash: keyHash)
            tables.withLock { tables in
                if let credential {
                    let owner = Self.deviceKey(tenantID: credential.tenantID, serial: credential.serial)
                    tables.unknown.remove(keyHash)
                    tables.owners.set(owner, for: keyHash)
                    tables.credentials.set(Entry(value: credential, fetchedAt: now), for: owner)
                } else {
                    tables.unknown.set(Entry(value: (), fetchedAt: now), for: keyHash)
                }
            }
        }
        guard let credential, Self.accepts(credential, serial: serial, keyHash: keyHash, now: now) else {
            throw Self.rejected
        }
        return credential
    }

    private func isFresh(_ fetchedAt: Timestamp, now: Timestamp) -> Bool {
        now.secondsSinceEpoch - fetchedAt.secondsSinceEpoch < timeToLiveSeconds
    }

    private static func accepts(_ credential: DeviceCredential, serial: String, keyHash: String, now: Timestamp) -> Bool {
        guard !credential.revoked, credential.serial == serial else { return false }
        if Secrets.constantTimeEquals(keyHash, credential.keyHash) {
            return true
        }
        if let previous = credential.previousKeyHash, let expiry = credential.previousKeyExpiresAt, now < expiry {
            return Secrets.constantTimeEquals(keyHash, previous)
        }
        return false
    }

    /// Entries held (device credentials, unknown keys), for tests and operations.
    var counts: (devices: Int, unknown: Int) { tables.withLock { ($0.credentials.count, $0.unknown.count) } }

    /// Forgets the device's cached credential: the next request reads the store.
    func invalidate(tenantID: UUID, serial: String) {
        tables.withLock { $0.credentials.remove(Self.deviceKey(tenantID: tenantID, serial: serial)) }
    }

    static let rejected = PlatformError(
        .unauthenticated, code: "invalid_device_credentials",
        message: "Unknown device, wrong or revoked API key; the device needs re-provisioning")
}
