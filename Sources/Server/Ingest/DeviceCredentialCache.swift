import PlatformCore
import Storage
import Synchronization

/// Authenticates `Device <serial>:<api_key>` without a database read per request.
///
/// Credentials (hashes only) are cached per serial for `timeToLiveSeconds`; this process
/// invalidates an entry the moment it rotates, revokes or deletes the device, and the TTL bounds
/// how long another server process sharing the database may accept a revoked key.
final class DeviceCredentialCache: Sendable {
    private struct Entry {
        var credential: DeviceCredential?
        var fetchedAt: Timestamp
    }

    private let store: any DeviceStore
    private let clock: any WallClock
    private let timeToLiveSeconds: Double
    private let entries = Mutex<[String: Entry]>([:])
    private static let capacity = 100_000

    init(store: any DeviceStore, clock: any WallClock, timeToLiveSeconds: Double = 30) {
        self.store = store
        self.clock = clock
        self.timeToLiveSeconds = timeToLiveSeconds
    }

    /// The device's credential if `key` is its current key, or its previous key within the
    /// rotation grace period; otherwise a 401.
    func authenticate(serial: String, key: String) async throws -> DeviceCredential {
        let now = clock.now()
        let credential: DeviceCredential?
        if let entry = entries.withLock({ $0[serial] }),
            now.secondsSinceEpoch - entry.fetchedAt.secondsSinceEpoch < timeToLiveSeconds
        {
            credential = entry.credential
        } else {
            credential = try await store.credential(serial: serial)
            entries.withLock { table in
                if table.count >= Self.capacity { table.removeAll(keepingCapacity: true) }
                table[serial] = Entry(credential: credential, fetchedAt: now)
            }
        }
        let presented = Secrets.hash(key)
        guard let credential, !credential.revoked else { throw Self.rejected }
        if Secrets.constantTimeEquals(presented, credential.keyHash) {
            return credential
        }
        if let previous = credential.previousKeyHash, let expiry = credential.previousKeyExpiresAt, now < expiry,
            Secrets.constantTimeEquals(presented, previous)
        {
            return credential
        }
        throw Self.rejected
    }

    func invalidate(serial: String) {
        _ = entries.withLock { $0.removeValue(forKey: serial) }
    }

    static let rejected = PlatformError(
        .unauthenticated, code: "invalid_device_credentials",
        message: "Unknown device, wrong or revoked API key; the device needs re-provisioning")
}
