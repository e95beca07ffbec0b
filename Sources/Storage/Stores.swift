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
    /// Deletes the device with all of its telemetry, its alerts and its alert state.
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
    /// False when the caller knows the range holds no rollups (see `hasRollups`): then only
    /// raw samples are read, one query a page instead of two.
    public var includesRollups: Bool

    public init(
        tenantID: UUID, serial: String, from: Timestamp, to: Timestamp, after: Timestamp? = nil, limit: Int,
        includesRollups: Bool = true
    ) {
        self.tenantID = tenantID
        self.serial = serial
        self.from = from
        self.to = to
        self.after = after
        self.limit = limit
        self.includesRollups = includesRollups
    }
}

/// Telemetry persistence.
public protocol TelemetryStore: Sendable {
    /// Inserts the records in one transaction, skipping those whose (tenant, device, timestamp)
    /// already exists, and moves each device's `last_seen` to `receivedAt` when that is at least
    /// `lastSeenResolutionSeconds` later (a device sending many samples a second costs one write
    /// of its row a second, not one per commit). Returns, for each record in order, whether it
    /// was newly stored. Returns only after the commit.
    func insert(_ records: [TelemetryRecord], receivedAt: Timestamp) async throws -> [Bool]
    /// Raw samples and stored rollups (each as one row with `rollup` set, at its bucket's
    /// start) in time order, so a range spanning downsampled and raw data reads as one.
    func samples(_ range: TelemetryRange) async throws -> [TelemetrySample]
    /// Buckets of `bucketSeconds` aligned to the Unix epoch over raw samples and rollups alike
    /// (a rollup counts in the bucket its start falls in); `after` is a bucket start.
    func buckets(_ range: TelemetryRange, bucketSeconds: Int) async throws -> [SampleBucket]
    /// Whether the tenant (one device of it, when `serial` is given) has rollups in `[from, to)`.
    func hasRollups(tenantID: UUID, serial: String?, from: Timestamp, to: Timestamp) async throws -> Bool
    /// The device's newest `limit` samples, oldest first.
    func recentSamples(tenantID: UUID, serial: String, limit: Int) async throws -> [TelemetrySample]
    /// Each of the tenant's devices' newest sample, by serial (devices without one are absent),
    /// in one query: one index seek per device, however much telemetry there is.
    func latestSamples(tenantID: UUID) async throws -> [String: TelemetrySample]
}

extension TelemetryStore {
    /// How far `receivedAt` must pass a device's `last_seen` before an insert moves it. Far
    /// below what reads it: the online window and `no_data_seconds`.
    public static var lastSeenResolutionSeconds: Double { 1 }

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

/// Which alerts to list: newest first, optionally filtered, after a keyset cursor.
public struct AlertQuery: Sendable {
    public var tenantID: UUID
    public var states: [AlertState]
    public var deviceSerial: String?
    public var ruleID: UUID?
    /// Only alerts started before this one (its start time and id), for paging.
    public var before: (startedAt: Timestamp, id: UUID)?
    public var limit: Int

    public init(
        tenantID: UUID, states: [AlertState] = [], deviceSerial: String? = nil, ruleID: UUID? = nil,
        before: (startedAt: Timestamp, id: UUID)? = nil, limit: Int
    ) {
        self.tenantID = tenantID
        self.states = states
        self.deviceSerial = deviceSerial
        self.ruleID = ruleID
        self.before = before
        self.limit = limit
    }
}

/// What one evaluation pass changed for a tenant, stored in one transaction: the per-(rule,
/// device) states, the alerts it created or moved (their acknowledgement is never touched),
/// the notifications to deliver, and the queued batches it consumed (by sequence).
public struct AlertChanges: Sendable {
    public var tenantID: UUID
    public var states: [RuleDeviceState]
    public var alerts: [Alert]
    public var deliveries: [AlertDelivery]
    public var consumed: [Int64]

    public init(
        tenantID: UUID, states: [RuleDeviceState] = [], alerts: [Alert] = [], deliveries: [AlertDelivery] = [],
        consumed: [Int64] = []
    ) {
        self.tenantID = tenantID
        self.states = states
        self.alerts = alerts
        self.deliveries = deliveries
        self.consumed = consumed
    }

    public var isEmpty: Bool { states.isEmpty && alerts.isEmpty && deliveries.isEmpty && consumed.isEmpty }
}

/// Alert rules, channels, alerts, silences, deliveries, and the queue of committed samples
/// awaiting evaluation. Telemetry inserts add to the queue in their own transaction for every
/// tenant with an enabled rule, so a crash never lets a committed sample escape evaluation.
public protocol AlertStore: Sendable {
    func createAlertChannel(_ channel: AlertChannel) async throws
    func alertChannels(tenantID: UUID) async throws -> [AlertChannel]
    func alertChannel(tenantID: UUID, id: UUID) async throws -> AlertChannel?
    /// Saves a channel's name, recipients and URL; false when there is none.
    func updateAlertChannel(_ channel: AlertChannel) async throws -> Bool
    /// Deletes a channel (rules stop naming it); false when there is none.
    func deleteAlertChannel(tenantID: UUID, id: UUID) async throws -> Bool

    /// Creates a rule. Throws a conflict when the tenant has a rule of that name.
    func createAlertRule(_ rule: AlertRule) async throws
    /// The tenant's rules by name.
    func alertRules(tenantID: UUID) async throws -> [AlertRule]
    func alertRule(tenantID: UUID, id: UUID) async throws -> AlertRule?
    /// Saves a rule's settings (its alerts and per-device state stay); false when there is none.
    func updateAlertRule(_ rule: AlertRule) async throws -> Bool
    /// Deletes a rule with its alerts, their deliveries and its state; false when there is none.
    func deleteAlertRule(tenantID: UUID, id: UUID) async throws -> Bool
    /// Tenants with an enabled rule or an open alert: the alert timer's work.
    func tenantsWithAlertWork() async throws -> [UUID]

    /// Tenants with samples waiting for evaluation.
    func alertQueueTenants(limit: Int) async throws -> [UUID]
    /// The tenant's queued batches in commit order, from the oldest, as many as start before
    /// `sampleLimit` samples (so at least one, however large). With `after`, only batches
    /// committed after that sequence: the next pass's, read while those up to `after` are still
    /// being consumed.
    func queuedBatches(tenantID: UUID, after: Int64?, sampleLimit: Int) async throws -> [QueuedBatch]
    /// How many of the tenant's samples wait for evaluation.
    func alertQueueLength(tenantID: UUID) async throws -> Int
    /// Empties the tenant's queue (it has no enabled rule left); returns how many were dropped.
    func clearAlertQueue(tenantID: UUID) async throws -> Int
    /// The per-(rule, device) states of these devices.
    func ruleDeviceStates(tenantID: UUID, serials: [String]) async throws -> [RuleDeviceState]
    /// The tenant's alerts in any state but `resolved`.
    func openAlerts(tenantID: UUID) async throws -> [Alert]
    /// Stores an evaluation pass's changes atomically; resolutions are stored before new open
    /// alerts, so a key may resolve and start again in one set of changes.
    func applyAlertChanges(_ changes: AlertChanges) async throws

    func alerts(_ query: AlertQuery) async throws -> [Alert]
    func alert(tenantID: UUID, id: UUID) async throws -> Alert?
    /// Records who acknowledged an alert and when (the first acknowledgement stays); nil when
    /// there is no such alert.
    func acknowledgeAlert(tenantID: UUID, id: UUID, userID: UUID, at time: Timestamp) async throws -> Alert?

    func createSilence(_ silence: AlertSilence) async throws
    /// The tenant's silences, newest first; with `activeAt`, only those still running then.
    func silences(tenantID: UUID, activeAt: Timestamp?) async throws -> [AlertSilence]
    func deleteSilence(tenantID: UUID, id: UUID) async throws -> Bool

    /// The tenant's deliveries, newest first, of one alert when `alertID` is given.
    func deliveries(tenantID: UUID, alertID: UUID?, limit: Int) async throws -> [AlertDelivery]
    func delivery(tenantID: UUID, id: UUID) async throws -> AlertDelivery?
    /// Takes up to `limit` deliveries due at `now` (pending or retrying) across tenants for
    /// `owner` (a sender process): each one's attempt count goes up and its next attempt moves
    /// to `leaseUntil`, so another sender does not take it meanwhile and a crash mid-send
    /// retries it after the lease (or at once, when the next sender starts: see
    /// `releaseDeliveryLeases`).
    func claimDueDeliveries(now: Timestamp, leaseUntil: Timestamp, owner: UUID, limit: Int) async throws -> [AlertDelivery]
    /// Takes one delivery the same way, whatever its next attempt time, unless it was sent.
    func claimDelivery(tenantID: UUID, id: UUID, leaseUntil: Timestamp, owner: UUID) async throws -> AlertDelivery?
    /// Makes deliveries leased by senders other than `owner` (a process that died mid-send)
    /// due at `now`; returns how many.
    func releaseDeliveryLeases(notOwnedBy owner: UUID, now: Timestamp) async throws -> Int
    /// Records how an attempt went (and ends its lease).
    func recordDeliveryOutcome(
        id: UUID, status: AlertDelivery.Status, nextAttemptAt: Timestamp, lastError: String?, sentAt: Timestamp?
    ) async throws
    /// Queues a failed delivery again, due at `time`, with a fresh count of attempts; false
    /// unless it failed.
    func retryDelivery(tenantID: UUID, id: UUID, at time: Timestamp) async throws -> Bool
    /// Forgets the rule's per-device script states (its script changed: the old state means
    /// nothing to the new one); its alerts stay.
    func resetAlertRuleStates(tenantID: UUID, ruleID: UUID) async throws
}

/// What one downsampling chunk did: raw samples rolled up, finer rollups merged into coarser
/// ones, and whether nothing is left to roll before the cutoff.
public struct DownsampleChunk: Sendable, Equatable {
    public var samples: Int
    public var rollups: Int
    public var isComplete: Bool

    public init(samples: Int, rollups: Int, isComplete: Bool) {
        self.samples = samples
        self.rollups = rollups
        self.isComplete = isComplete
    }
}

/// What storage tiers need of the store: every tenant for operators, disabling, usage counts,
/// chunked deletes (retention, `drop_oldest`) and downsampling.
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
    /// Deletes up to `limit` of one device's rollups that start before `cutoff`; returns how many.
    func deleteRollups(tenantID: UUID, serial: String, before cutoff: Timestamp, limit: Int) async throws -> Int
    /// One step of downsampling, in one transaction: the device's oldest raw samples and finer
    /// rollups before `cutoff` (floored to a multiple of the resolution) become rollups of
    /// `resolutionSeconds` (merged into any already stored) and are deleted. A chunk is whole
    /// buckets: about `limit` rows of each kind, or one bucket when a bucket holds more.
    /// Idempotent, and a kill loses one chunk at most.
    func downsample(tenantID: UUID, serial: String, resolutionSeconds: Int, before cutoff: Timestamp, limit: Int)
        async throws -> DownsampleChunk
    /// Deletes the tenant's alerts resolved before `cutoff` with their deliveries, and test
    /// deliveries (of no alert) created before it; returns how many alerts and deliveries.
    func deleteAlertHistory(tenantID: UUID, before cutoff: Timestamp) async throws -> Int
    /// Deletes the tenant's script versions uploaded before `cutoff`, except each script's
    /// active and newest versions; returns how many.
    func deleteScriptVersions(tenantID: UUID, before cutoff: Timestamp) async throws -> Int
    /// Drops whole telemetry partitions (PostgreSQL's monthly ones) in which every row is
    /// older than its tenant's cutoff; tenants absent from `cutoffs` keep everything. Returns
    /// the rows dropped (PostgreSQL's estimate for an analyzed table). A partition that cannot
    /// be locked at once is left for the next run. SQLite has no partitions and drops nothing.
    func dropExpiredPartitions(cutoffs: [UUID: Timestamp]) async throws -> Int
    /// The storage policy a platform admin assigned to this tenant alone (a special contract),
    /// replacing its tier's; nil when it has none.
    func contractPolicy(tenantID: UUID) async throws -> String?
    /// Assigns (or with nil removes) the tenant's contract policy.
    func setContractPolicy(tenantID: UUID, source: String?, at time: Timestamp) async throws
}

/// Everything the platform persists, behind one handle per backend. As a `Service` it owns
/// its connections: `run()` must be running while the store is used, and closes them on
/// graceful shutdown.
public protocol PlatformStore: AccountStore, DeviceStore, TelemetryStore, ScriptStore, TierStore, AlertStore, Service {
    /// Applies pending migrations; returns the versions applied.
    @discardableResult
    func migrate() async throws -> [Int]
    /// Cheap round trip for health checks.
    func ping() async throws
    /// A short name of the backend for logs and `/health/`.
    var backendName: String { get }
}
