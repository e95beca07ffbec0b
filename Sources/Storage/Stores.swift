import Foundation
import PlatformCore
import ServiceLifecycle

/// Users, tenants, memberships, sessions and API tokens.
public protocol AccountStore: Sendable {
    /// Creates a user and a tenant it owns, atomically. Throws a conflict for a taken email.
    func createAccount(user: User, tenant: Tenant) async throws -> Membership
    func user(email: String) async throws -> User?
    func user(id: UUID) async throws -> User?
    func setPlatformAdmin(userID: UUID, _ isAdmin: Bool) async throws
    /// The user's memberships, oldest first.
    func memberships(userID: UUID) async throws -> [Membership]
    func membership(userID: UUID, tenantID: UUID) async throws -> Membership?
    func tenant(slug: String) async throws -> Tenant?
    func tenant(id: UUID) async throws -> Tenant?
    /// Adds a user to a tenant with a role, or changes the role of a member, in one transaction
    /// that keeps at least one owner: false (and nothing changed) when the change would demote
    /// the last one, however many such changes race.
    @discardableResult
    func setMembership(tenantID: UUID, userID: UUID, role: Role, at time: Timestamp) async throws -> Bool
    /// The tenant's members with their roles, oldest first.
    func members(tenantID: UUID) async throws -> [(User, Role)]
    func setTier(tenantID: UUID, tier: String) async throws

    func createSession(_ session: Session) async throws
    func session(tokenHash: String) async throws -> Session?
    func touchSession(tokenHash: String, at time: Timestamp) async throws
    func deleteSession(tokenHash: String) async throws
    /// Deletes sessions idle since before `cutoff`; returns how many.
    func deleteSessions(idleSince cutoff: Timestamp) async throws -> Int
    /// Stores a password-reset token (its hash) for a user, valid until `expiresAt`.
    func createPasswordReset(tokenHash: String, userID: UUID, at time: Timestamp, expiresAt: Timestamp) async throws
    /// Uses up a password-reset token: deletes it and returns its user when it was valid at `now`.
    func consumePasswordReset(tokenHash: String, now: Timestamp) async throws -> UUID?
    /// Replaces a user's password hash and ends every other session of theirs (all but
    /// `keptSessionHash`), in one transaction.
    func changePassword(userID: UUID, passwordHash: String, keptSessionHash: String?) async throws

    /// Stores an invitation, replacing a pending one of the same tenant and email.
    func saveInvitation(_ invitation: Invitation) async throws
    /// The tenant's pending invitations (expired ones included), oldest first.
    func invitations(tenantID: UUID) async throws -> [Invitation]
    /// Invitations addressed to `email` that have not expired at `now`, oldest first.
    func invitations(email: String, now: Timestamp) async throws -> [ReceivedInvitation]
    /// Withdraws an invitation of the tenant; false when there is none.
    func deleteInvitation(tenantID: UUID, id: UUID) async throws -> Bool
    /// Declines an invitation addressed to `email`; false when there is none.
    func declineInvitation(id: UUID, email: String) async throws -> Bool
    /// Accepts an unexpired invitation addressed to `email` in one transaction: the user joins
    /// with the invited role (a member already keeps their role) and the invitation is gone.
    /// Nil when there is no such invitation.
    func acceptInvitation(id: UUID, email: String, userID: UUID, at time: Timestamp) async throws -> Membership?

    func createAPIToken(_ token: APIToken) async throws
    func apiToken(tokenHash: String) async throws -> APIToken?
    func apiTokens(tenantID: UUID, userID: UUID) async throws -> [APIToken]
    /// Revokes a token of this tenant and user; false when there is none.
    func revokeAPIToken(tenantID: UUID, userID: UUID, id: UUID, at time: Timestamp) async throws -> Bool
    func touchAPIToken(id: UUID, at time: Timestamp) async throws
}

/// Devices and their credentials.
public protocol DeviceStore: Sendable {
    /// Registers a device. Throws a conflict when the tenant already has the serial (serials are
    /// unique per tenant: another tenant's devices neither block nor reveal one).
    func createDevice(_ device: Device, keyHash: String) async throws
    func devices(tenantID: UUID) async throws -> [Device]
    func device(tenantID: UUID, serial: String) async throws -> Device?
    /// The credential whose current or previous key has this hash, in any tenant: the ingest
    /// path finds a device by its key, then checks the serial.
    func credential(keyHash: String) async throws -> DeviceCredential?
    func credential(tenantID: UUID, serial: String) async throws -> DeviceCredential?
    /// Installs a new key; the current one stays valid until `previousValidUntil` — unless the
    /// device was revoked, whose keys never come back.
    func rotateKey(tenantID: UUID, serial: String, newKeyHash: String, previousValidUntil: Timestamp) async throws
        -> Bool
    func revokeDevice(tenantID: UUID, serial: String, at time: Timestamp) async throws -> Bool
    func updateDevice(tenantID: UUID, serial: String, name: String?, location: String??) async throws -> Bool
    /// Deletes the device and all of its telemetry.
    func deleteDevice(tenantID: UUID, serial: String) async throws -> Bool
}

/// One sample on its way into storage, tagged with its tenant.
public struct TelemetryRecord: Sendable, Equatable {
    public var tenantID: UUID
    public var sample: TelemetrySample

    public init(tenantID: UUID, sample: TelemetrySample) {
        self.tenantID = tenantID
        self.sample = sample
    }
}

/// min / avg / max of one measurement over a bucket.
public struct Aggregate: Sendable, Equatable {
    public var min: Double
    public var avg: Double
    public var max: Double

    public init(min: Double, avg: Double, max: Double) {
        self.min = min
        self.avg = avg
        self.max = max
    }
}

/// Aggregated telemetry for one time bucket.
public struct SampleBucket: Sendable, Equatable {
    public var start: Timestamp
    public var count: Int
    public var tempInside: Aggregate
    public var tempOutside: Aggregate?
    public var setpoint: Aggregate
    /// The share (0…1) of the bucket's samples with the output heating, and cooling.
    public var heatingShare: Double
    public var coolingShare: Double

    public init(
        start: Timestamp, count: Int, tempInside: Aggregate, tempOutside: Aggregate?, setpoint: Aggregate,
        heatingShare: Double = 0, coolingShare: Double = 0
    ) {
        self.start = start
        self.count = count
        self.tempInside = tempInside
        self.tempOutside = tempOutside
        self.setpoint = setpoint
        self.heatingShare = heatingShare
        self.coolingShare = coolingShare
    }
}

/// A time-range query for one device: samples in `[from, to)` strictly after `after`.
public struct TelemetryRange: Sendable, Equatable {
    public var tenantID: UUID
    public var serial: String
    public var from: Timestamp
    public var to: Timestamp
    public var after: Timestamp?
    public var limit: Int

    public init(tenantID: UUID, serial: String, from: Timestamp, to: Timestamp, after: Timestamp? = nil, limit: Int) {
        self.tenantID = tenantID
        self.serial = serial
        self.from = from
        self.to = to
        self.after = after
        self.limit = limit
    }
}

/// Telemetry persistence.
public protocol TelemetryStore: Sendable {
    /// Inserts the records in one transaction, skipping those whose (tenant, device, timestamp)
    /// already exists, and updates each device's `last_seen` to `receivedAt`. Returns, for each
    /// record in order, whether it was newly stored. Returns only after the commit.
    func insert(_ records: [TelemetryRecord], receivedAt: Timestamp) async throws -> [Bool]
    func samples(_ range: TelemetryRange) async throws -> [TelemetrySample]
    /// Buckets of `bucketSeconds` aligned to the Unix epoch; `after` is a bucket start.
    func buckets(_ range: TelemetryRange, bucketSeconds: Int) async throws -> [SampleBucket]
    /// The device's newest `limit` samples, oldest first.
    func recentSamples(tenantID: UUID, serial: String, limit: Int) async throws -> [TelemetrySample]
    /// Each of the tenant's devices' newest sample, by serial (devices without one are absent),
    /// in one query: one index seek per device, however much telemetry there is.
    func latestSamples(tenantID: UUID) async throws -> [String: TelemetrySample]
}

extension TelemetryStore {
    /// The device's newest sample.
    public func latest(tenantID: UUID, serial: String) async throws -> TelemetrySample? {
        try await recentSamples(tenantID: tenantID, serial: serial, limit: 1).last
    }
}

/// Tenants' versioned Lua scripts.
public protocol ScriptStore: Sendable {
    /// Stores a new version of the tenant's script `name` (creating the script on first
    /// upload). Versions count up from 1 per script. A name already used for another hook is a
    /// conflict. The new version is never active.
    func addScriptVersion(
        tenantID: UUID, name: String, hook: String, source: String, sha256: String, configJSON: String, authorID: UUID,
        at time: Timestamp
    ) async throws -> (Script, ScriptVersion)
    func scripts(tenantID: UUID) async throws -> [Script]
    func script(tenantID: UUID, id: UUID) async throws -> Script?
    func scriptVersions(tenantID: UUID, scriptID: UUID) async throws -> [ScriptVersion]
    /// Makes `version` the active one and clears failures and quarantine; false when the
    /// script or version does not exist in this tenant.
    func activateScript(tenantID: UUID, scriptID: UUID, version: Int) async throws -> Bool
    /// Leaves the script with no active version (its versions and failure history stay);
    /// false when the script does not exist in this tenant.
    func deactivateScript(tenantID: UUID, scriptID: UUID) async throws -> Bool
    /// Active scripts of one hook with their active versions.
    func activeScripts(tenantID: UUID, hook: String) async throws -> [(Script, ScriptVersion)]
    /// Records a failure (or, with `error` nil, a success that resets the count).
    func recordScriptOutcome(
        tenantID: UUID, scriptID: UUID, failureCount: Int, error: String?, input: String?, quarantinedUntil: Timestamp?
    ) async throws
}

/// Everything the platform persists, behind one handle per backend. As a `Service` it owns
/// its connections: `run()` must be running while the store is used, and closes them on
/// graceful shutdown.
/// What storage tiers need of the store: every tenant for operators, disabling, usage counts
/// and chunked deletes (retention, `drop_oldest`).
public protocol TierStore: Sendable {
    /// Every tenant, oldest first (the platform admins' list).
    func allTenants() async throws -> [Tenant]
    /// The tenants a platform admin disabled.
    func disabledTenants() async throws -> Set<UUID>
    func setTenantDisabled(tenantID: UUID, _ disabled: Bool, at time: Timestamp) async throws
    /// Samples stored per tenant: one aggregate over the telemetry table, a job's work (see
    /// `QuotaService`), never a request's.
    func sampleCounts() async throws -> [UUID: Int]
    func deviceCount(tenantID: UUID) async throws -> Int
    /// Deletes up to `limit` of one device's samples older than `cutoff`; returns how many.
    func deleteSamples(tenantID: UUID, serial: String, before cutoff: Timestamp, limit: Int) async throws -> Int
    /// Deletes the tenant's `count` oldest samples (across its devices); returns how many.
    func deleteOldestSamples(tenantID: UUID, count: Int) async throws -> Int
    /// The storage policy a platform admin assigned to this tenant alone (a special contract),
    /// replacing its tier's; nil when it has none.
    func contractPolicy(tenantID: UUID) async throws -> String?
    /// Assigns (or with nil removes) the tenant's contract policy.
    func setContractPolicy(tenantID: UUID, source: String?, at time: Timestamp) async throws
}

public protocol PlatformStore: AccountStore, DeviceStore, TelemetryStore, ScriptStore, TierStore, Service {
    /// Applies pending migrations; returns the versions applied.
    @discardableResult
    func migrate() async throws -> [Int]
    /// Cheap round trip for health checks.
    func ping() async throws
    /// A short name of the backend for logs and `/health/`.
    var backendName: String { get }
}
