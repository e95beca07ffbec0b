import Foundation
import Logging
import PlatformCore
import Scripting
import ServiceLifecycle
import Storage
import Synchronization

/// When a background job last ran and what it did, for `/api/usage/` and the admin list.
struct JobReport: Sendable, Equatable {
    var lastRun: Timestamp?
    var rows: Int
    /// How long the last run took over all tenants, in seconds.
    var seconds: Double?
}

/// Keeps `QuotaService`'s view of the tenants fresh: disabled tenants every 10 s, sample counts
/// every minute (one aggregate over the telemetry table per minute, never per request), and
/// every 10 s until the first count succeeds (the schema may still be migrating at start).
struct TenantUsageJob: Service {
    let quotas: QuotaService
    let digest: OperatorDigest
    let logger: Logger
    static let disabledPeriod: Duration = .seconds(10)
    static let countEvery = 6

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var round = 0
            while !Task.isCancelled {
                do {
                    try await quotas.refreshDisabled()
                    if quotas.countedAt == nil || round % Self.countEvery == 0 { try await quotas.recount() }
                } catch {
                    logger.warning("tenant usage refresh failed", metadata: ["error": "\(error)"])
                    digest.jobFailed("tenant usage refresh", error: "\(error)")
                }
                round += 1
                try await Task.sleep(for: Self.disabledPeriod)
            }
        }
    }
}

/// Runs the storage jobs one after the other every `period`: retention first (what it deletes
/// need not be rolled up), then downsampling. Each job's failure is logged and mailed to the
/// operator; the next round tries again.
struct StorageJobs: Service {
    let retention: RetentionJob
    let downsampling: DownsampleJob
    let period: Duration
    let digest: OperatorDigest
    let logger: Logger

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: period)
                do {
                    try await retention.runOnce()
                } catch {
                    logger.warning("retention run failed", metadata: ["error": "\(error)"])
                    digest.jobFailed("retention", error: "\(error)")
                }
                do {
                    try await downsampling.runOnce()
                } catch {
                    logger.warning("downsampling run failed", metadata: ["error": "\(error)"])
                    digest.jobFailed("downsampling", error: "\(error)")
                }
            }
        }
    }
}

/// Per-tenant figures of a job's last run.
private struct JobRun {
    var lastRun: Timestamp?
    var total = 0
    var byTenant: [UUID: Int] = [:]
    var seconds: Double?

    var report: JobReport { JobReport(lastRun: lastRun, rows: total, seconds: seconds) }

    func report(for tenantID: UUID) -> JobReport {
        JobReport(lastRun: lastRun, rows: byTenant[tenantID] ?? 0, seconds: seconds)
    }

    /// Records the run's duration from `started`.
    mutating func finish(startedAt started: ContinuousClock.Instant) {
        let elapsed = (ContinuousClock.now - started).components
        seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
    }
}

/// Deletes what is older than each tenant's `retention_days`: on PostgreSQL first whole
/// monthly partitions in which every row has expired, then, device by device, samples and
/// rollups in chunks of `chunk` rows (each its own short transaction, so no long lock is held
/// and a kill loses at most one chunk's progress: the next run simply goes on), then resolved
/// alerts with their deliveries and script versions that are neither active nor newest.
final class RetentionJob: Sendable {
    private let store: any PlatformStore
    private let quotas: QuotaService
    private let clock: any WallClock
    private let logger: Logger
    private let lastRun = Mutex(JobRun())
    static let chunk = 5000

    init(store: any PlatformStore, quotas: QuotaService, clock: any WallClock, logger: Logger) {
        self.store = store
        self.quotas = quotas
        self.clock = clock
        self.logger = logger
    }

    /// The last run over all tenants: telemetry rows deleted (samples, rollups, partitions).
    var lastReport: JobReport { lastRun.withLock { $0.report } }

    /// The last run and the telemetry rows it deleted of one tenant.
    func report(for tenantID: UUID) -> JobReport { lastRun.withLock { $0.report(for: tenantID) } }

    /// One pass over every tenant; returns the telemetry rows deleted.
    @discardableResult
    func runOnce() async throws -> Int {
        let now = clock.now()
        let started = ContinuousClock.now
        var cutoffs: [UUID: Timestamp] = [:]
        var tenants: [Tenant] = []
        for tenant in try await store.allTenants() {
            guard let limits = await quotas.limits(for: tenant), limits.retentionDays > 0 else { continue }
            cutoffs[tenant.id] = now.adding(seconds: -Double(limits.retentionDays) * 86_400)
            tenants.append(tenant)
        }
        // Partition drops are not attributed to tenants; the next usage count corrects quotas.
        var run = JobRun(lastRun: now, total: try await store.dropExpiredPartitions(cutoffs: cutoffs))
        // A tenant whose deletes fail is reported after the others had their turn.
        var failure: (any Error)?
        for tenant in tenants {
            guard let cutoff = cutoffs[tenant.id] else { continue }
            var counts = Counts()
            do {
                try await expire(tenant, before: cutoff, counting: &counts)
            } catch {
                logger.warning("retention failed for a tenant", metadata: ["tenant": "\(tenant.slug)", "error": "\(error)"])
                failure = failure ?? error
            }
            if counts.samples > 0 { quotas.removed(counts.samples, tenantID: tenant.id) }
            if counts.samples + counts.rollups + counts.alerts + counts.versions > 0 {
                logger.info(
                    "retention deleted expired data",
                    metadata: [
                        "tenant": "\(tenant.slug)", "samples": "\(counts.samples)", "rollups": "\(counts.rollups)",
                        "alerts_and_deliveries": "\(counts.alerts)", "script_versions": "\(counts.versions)",
                    ])
            }
            run.total += counts.samples + counts.rollups
            run.byTenant[tenant.id] = counts.samples + counts.rollups
        }
        run.finish(startedAt: started)
        lastRun.withLock { $0 = run }
        if let failure { throw failure }
        return run.total
    }

    /// What one tenant's retention deleted.
    private struct Counts {
        var samples = 0
        var rollups = 0
        var alerts = 0
        var versions = 0
    }

    /// Deletes one tenant's expired samples and rollups (device by device, in chunks), resolved
    /// alerts and old script versions, counting as it goes.
    private func expire(_ tenant: Tenant, before cutoff: Timestamp, counting counts: inout Counts) async throws {
        for device in try await store.devices(tenantID: tenant.id) {
            counts.samples += try await chunked {
                try await self.store.deleteSamples(tenantID: tenant.id, serial: device.serial, before: cutoff, limit: Self.chunk)
            }
            counts.rollups += try await chunked {
                try await self.store.deleteRollups(tenantID: tenant.id, serial: device.serial, before: cutoff, limit: Self.chunk)
            }
        }
        counts.alerts += try await store.deleteAlertHistory(tenantID: tenant.id, before: cutoff)
        counts.versions += try await store.deleteScriptVersions(tenantID: tenant.id, before: cutoff)
    }

    /// Repeats a chunked delete until a chunk comes back short; returns the rows deleted.
    private func chunked(_ delete: () async throws -> Int) async throws -> Int {
        var total = 0
        while !Task.isCancelled {
            let rows = try await delete()
            total += rows
            if rows < Self.chunk { break }
        }
        return total
    }
}

/// Rolls raw samples older than each step of the tenant's `downsample` policy into min/avg/max
/// rollups at the step's resolution and deletes them (and finer rollups into coarser ones),
/// device by device in chunks of about `chunk` rows, each chunk one transaction: idempotent,
/// and a killed run simply goes on next time. The oldest step runs first, so samples old
/// enough for the coarsest step go there directly.
final class DownsampleJob: Sendable {
    private let store: any PlatformStore
    private let quotas: QuotaService
    private let clock: any WallClock
    private let logger: Logger
    private let lastRun = Mutex(JobRun())
    static let chunk = 5000

    init(store: any PlatformStore, quotas: QuotaService, clock: any WallClock, logger: Logger) {
        self.store = store
        self.quotas = quotas
        self.clock = clock
        self.logger = logger
    }

    /// The last run and the raw samples it rolled up of one tenant.
    func report(for tenantID: UUID) -> JobReport { lastRun.withLock { $0.report(for: tenantID) } }

    /// One pass over every tenant, at most `maximumChunks` chunks (a test's way to stop a run
    /// halfway); returns the raw samples rolled up.
    @discardableResult
    func runOnce(maximumChunks: Int = .max) async throws -> Int {
        let now = clock.now()
        let started = ContinuousClock.now
        var run = JobRun(lastRun: now)
        var budget = maximumChunks
        // A tenant whose roll-up fails is reported after the others had their turn.
        var failure: (any Error)?
        for tenant in try await store.allTenants() where budget > 0 {
            guard let limits = await quotas.limits(for: tenant), !limits.downsample.isEmpty else { continue }
            var counts = (samples: 0, rollups: 0)
            do {
                try await rollUp(tenant, steps: limits.downsample, now: now, budget: &budget, counting: &counts)
            } catch {
                logger.warning("downsampling failed for a tenant", metadata: ["tenant": "\(tenant.slug)", "error": "\(error)"])
                failure = failure ?? error
            }
            if counts.samples > 0 {
                quotas.removed(counts.samples, tenantID: tenant.id)
                logger.info(
                    "downsampling rolled up samples",
                    metadata: ["tenant": "\(tenant.slug)", "rows": "\(counts.samples)", "finer_rollups": "\(counts.rollups)"])
            }
            run.total += counts.samples
            run.byTenant[tenant.id] = counts.samples
        }
        run.finish(startedAt: started)
        lastRun.withLock { $0 = run }
        if let failure { throw failure }
        return run.total
    }

    /// Runs one tenant's steps over each of its devices, oldest step first, one chunk at a
    /// time while `budget` lasts.
    private func rollUp(
        _ tenant: Tenant, steps: [TierLimits.Downsample], now: Timestamp, budget: inout Int,
        counting counts: inout (samples: Int, rollups: Int)
    ) async throws {
        for device in try await store.devices(tenantID: tenant.id) {
            for step in steps.sorted(by: { $0.afterDays > $1.afterDays }) {
                let cutoff = now.adding(seconds: -Double(step.afterDays) * 86_400)
                while !Task.isCancelled {
                    guard budget > 0 else { return }
                    budget -= 1
                    let chunk = try await store.downsample(
                        tenantID: tenant.id, serial: device.serial, resolutionSeconds: step.resolutionSeconds,
                        before: cutoff, limit: Self.chunk)
                    counts.samples += chunk.samples
                    counts.rollups += chunk.rollups
                    if chunk.isComplete { break }
                }
            }
        }
    }
}
