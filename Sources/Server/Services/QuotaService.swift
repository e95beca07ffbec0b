import Foundation
import PlatformCore
import Scripting
import Storage
import Synchronization

/// Storage tiers as the request paths see them: each tenant's tier limits (from its storage
/// policy, through `ScriptEngine`), its usage, whether an operator disabled it, and the checks
/// built on them — device and sample quotas, the per-device ingest rate.
///
/// Counting samples never scans the telemetry table on a request: a background job
/// (`TenantUsageJob`) counts them per tenant once a minute, and between counts this process adds
/// what it commits (it subscribes to committed telemetry) and subtracts what it deletes. The
/// count is therefore exact for one process and at most a minute behind for samples written or
/// deleted by another. Disabled tenants and tenant records are cached for `cacheSeconds`.
final class QuotaService: TelemetryEventPublisher, Sendable {
    private struct State {
        var countedSamples: [UUID: Int] = [:]
        var sinceCount: [UUID: Int] = [:]
        var countedAt: Timestamp?
        var tenants: [UUID: (tenant: Tenant, fetchedAt: Timestamp)] = [:]
    }

    private let store: any PlatformStore
    private let scripts: ScriptEngine
    private let clock: any WallClock
    let gate: TenantGate
    private let state = Mutex(State())
    static let cacheSeconds: Double = 10

    init(store: any PlatformStore, scripts: ScriptEngine, gate: TenantGate, clock: any WallClock) {
        self.store = store
        self.scripts = scripts
        self.gate = gate
        self.clock = clock
    }

    // MARK: Usage

    func publish(_ records: [TelemetryRecord]) {
        guard !records.isEmpty else { return }
        state.withLock { state in
            for record in records { state.sinceCount[record.tenantID, default: 0] += 1 }
        }
    }

    /// Samples the tenant stores, as far as this process knows (see the type's comment).
    func samples(tenantID: UUID) -> Int {
        state.withLock { max(0, ($0.countedSamples[tenantID] ?? 0) + ($0.sinceCount[tenantID] ?? 0)) }
    }

    func removed(_ count: Int, tenantID: UUID) {
        state.withLock { $0.sinceCount[tenantID, default: 0] -= count }
    }

    /// Counts every tenant's samples in the store (the usage job).
    func recount() async throws {
        let counts = try await store.sampleCounts()
        let now = clock.now()
        state.withLock { state in
            state.countedSamples = counts
            state.sinceCount = [:]
            state.countedAt = now
        }
    }

    var countedAt: Timestamp? { state.withLock { $0.countedAt } }

    // MARK: Tenants

    func isDisabled(_ tenantID: UUID) -> Bool {
        gate.isDisabled(tenantID)
    }

    func refreshDisabled() async throws {
        gate.replace(with: try await store.disabledTenants())
    }

    func setDisabled(_ tenantID: UUID, _ disabled: Bool) async throws {
        try await store.setTenantDisabled(tenantID: tenantID, disabled, at: clock.now())
        gate.set(tenantID, disabled: disabled)
    }

    /// The tenant record (for its tier), cached briefly: the ingest path needs it per request.
    func tenant(_ tenantID: UUID) async throws -> Tenant? {
        let now = clock.now()
        if let cached = state.withLock({ $0.tenants[tenantID] }),
            now.secondsSinceEpoch - cached.fetchedAt.secondsSinceEpoch < Self.cacheSeconds
        {
            return cached.tenant
        }
        guard let tenant = try await store.tenant(id: tenantID) else { return nil }
        state.withLock { $0.tenants[tenantID] = (tenant, now) }
        return tenant
    }

    /// A tier change in this process applies at once.
    func tierChanged(_ tenantID: UUID) {
        _ = state.withLock { $0.tenants.removeValue(forKey: tenantID) }
        scripts.invalidateTierLimits()
    }

    // MARK: Checks

    /// The tenant's tier limits, or nil when its tier has no (working) policy.
    func limits(for tenant: Tenant) async -> TierLimits? {
        await scripts.tierLimits(for: tenant)
    }

    /// Throws 403 `quota_exceeded` when the tenant has all the devices its tier allows.
    func checkDeviceQuota(tenant: Tenant) async throws {
        guard let limits = await limits(for: tenant) else { return }
        let used = try await store.deviceCount(tenantID: tenant.id)
        if used >= limits.maxDevices { throw PlatformError.quotaExceeded("devices", limit: limits.maxDevices, used: used) }
    }

    /// What storing `incoming` more samples needs: nothing, room made afterwards (`drop_oldest`:
    /// the number of oldest samples to delete), or a refusal (`reject`: thrown here).
    func sampleQuota(tenantID: UUID, limits: TierLimits?, incoming: Int) throws -> Int {
        guard let limits else { return 0 }
        let used = samples(tenantID: tenantID)
        guard used + incoming > limits.maxSamples else { return 0 }
        switch limits.onOverQuota {
        case .reject:
            throw PlatformError.quotaExceeded("samples", limit: limits.maxSamples, used: used)
        case .dropOldest:
            // Room for the slack too, so the oldest samples go in a few larger deletes rather
            // than one per request.
            let slack = max(1, limits.maxSamples / 100)
            return used + incoming - limits.maxSamples + slack
        }
    }

    /// Deletes the tenant's `count` oldest samples (after a `drop_oldest` commit).
    func makeRoom(tenantID: UUID, count: Int) async throws {
        let deleted = try await store.deleteOldestSamples(tenantID: tenantID, count: count)
        removed(deleted, tenantID: tenantID)
    }
}

/// Which tenants an operator disabled, as every request path sees it: updated at once in this
/// process and refreshed from the store every 10 s (`TenantUsageJob`) for the others.
final class TenantGate: Sendable {
    private let disabled = Mutex<Set<UUID>>([])

    func isDisabled(_ tenantID: UUID) -> Bool {
        disabled.withLock { $0.contains(tenantID) }
    }

    func replace(with tenants: Set<UUID>) {
        disabled.withLock { $0 = tenants }
    }

    func set(_ tenantID: UUID, disabled isDisabled: Bool) {
        _ = disabled.withLock { isDisabled ? $0.insert(tenantID).inserted : ($0.remove(tenantID) != nil) }
    }
}

/// Fans committed telemetry out to several listeners (the live streams and the usage counts).
struct TelemetryFanOut: TelemetryEventPublisher {
    let targets: [any TelemetryEventPublisher]

    func publish(_ records: [TelemetryRecord]) {
        for target in targets { target.publish(records) }
    }
}

extension Optional where Wrapped: Sendable {
    /// `flatMap` with an async transform.
    func asyncFlatMap<Result>(_ transform: (Wrapped) async throws -> Result?) async rethrows -> Result? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
