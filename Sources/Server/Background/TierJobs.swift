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
/// every 10 s until the first count succeeds. It starts once the schema is migrated.
struct TenantUsageJob: Service {
    let quotas: QuotaService
    let schema: SchemaReadiness
    let digest: OperatorDigest
    let logger: Logger
    static let disabledPeriod: Duration = .seconds(10)
    static let countEvery = 6

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            await schema.wait()
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
                await attempt("retention") { try await retention.runOnce() }
                await attempt("downsampling") { try await downsampling.runOnce() }
            }
        }
    }

    private func attempt(_ job: String, _ body: () async throws -> Int) async {
        do {
            _ = try await body()
        } catch {
            logger.warning("\(job) run failed", metadata: ["error": "\(error)"])
            digest.jobFailed(job, error: "\(error)")
        }
    }
}

/// What the storage jobs work with, and how they go over the tenants.
struct StorageJobEnvironment: Sendable {
    let store: any PlatformStore
    let quotas: QuotaService
    let clock: any WallClock
    let logger: Logger
    /// Rows per chunk; each chunk is its own short transaction.
    static let chunk = 5000

    /// The tenants whose effective limits `wanted` accepts, oldest first, with those limits.
    func tenants(where wanted: (TierLimits) -> Bool) async throws -> [(tenant: Tenant, limits: TierLimits)] {
        var chosen: [(tenant: Tenant, limits: TierLimits)] = []
        for tenant in try await store.allTenants() {
            if let limits = await quotas.limits(for: tenant), wanted(limits) { chosen.append((tenant, limits)) }
        }
        return chosen
    }

    /// Runs `work` for each tenant in turn and records in `log` the rows each handled (those
    /// done before a failure too) and the run's duration from `started`. A tenant whose work
    /// fails is logged and the others still get their turn; the first failure is rethrown at
    /// the end. Returns the rows of the whole run, `rows` (work not of any tenant) included.
    func forEachTenant(
        _ tenants: [Tenant], job: String, log: JobLog, startedAt started: ContinuousClock.Instant, now: Timestamp,
        rows: Int = 0, _ work: (Tenant, inout Int) async throws -> Void
    ) async throws -> Int {
        var run = JobRun(lastRun: now, total: rows)
        var failure: (any Error)?
        for tenant in tenants {
            var rows = 0
            do {
                try await work(tenant, &rows)
            } catch {
                logger.warning("\(job) failed for a tenant", metadata: ["tenant": "\(tenant.slug)", "error": "\(error)"])
                failure = failure ?? error
            }
            run.total += rows
            run.byTenant[tenant.id] = rows
        }
        let elapsed = (ContinuousClock.now - started).components
        run.seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        log.record(run)
        if let failure { throw failure }
        return run.total
    }
}

/// When a job last ran, how long it took, and the rows it handled in all and per tenant.
struct JobRun: Sendable {
    var lastRun: Timestamp?
    var total = 0
    var byTenant: [UUID: Int] = [:]
    var seconds: Double?
}

/// A job's last run, kept for `/api/usage/`.
final class JobLog: Sendable {
    private let lastRun = Mutex(JobRun())

    /// The last run over all tenants.
    var report: JobReport { lastRun.withLock { JobReport(lastRun: $0.lastRun, rows: $0.total, seconds: $0.seconds) } }

    /// The last run, with one tenant's rows.
    func report(for tenantID: UUID) -> JobReport {
        lastRun.withLock { JobReport(lastRun: $0.lastRun, rows: $0.byTenant[tenantID] ?? 0, seconds: $0.seconds) }
    }

    func record(_ run: JobRun) { lastRun.withLock { $0 = run } }
}

/// Deletes what is older than each tenant's `retention_days`: on PostgreSQL first whole
/// monthly partitions in which every row has expired, then, device by device, samples and
/// rollups in chunks (each its own short transaction, so no long lock is held and a kill loses
/// at most one chunk's progress: the next run simply goes on), then resolved alerts with their
/// deliveries and script versions that are neither active nor newest. Its rows are the
/// telemetry rows deleted: samples, rollups and dropped partitions.
struct RetentionJob: Sendable {
    let environment: StorageJobEnvironment
    let log = JobLog()

    /// One pass over every tenant; returns the telemetry rows deleted.
    @discardableResult
    func runOnce() async throws -> Int {
        let started = ContinuousClock.now
        let now = environment.clock.now()
        let tenants = try await environment.tenants { $0.retentionDays > 0 }
        let cutoffs = Dictionary(
            uniqueKeysWithValues: tenants.map { ($0.tenant.id, now.adding(seconds: -Double($0.limits.retentionDays) * 86_400)) })
        // Partition drops are not attributed to tenants; the next usage count corrects quotas.
        let dropped = try await environment.store.dropExpiredPartitions(cutoffs: cutoffs)
        return try await environment.forEachTenant(
            tenants.map(\.tenant), job: "retention", log: log, startedAt: started, now: now, rows: dropped
        ) { tenant, rows in
            guard let cutoff = cutoffs[tenant.id] else { return }
            var counts = Counts()
            defer {
                rows = counts.samples + counts.rollups
                record(counts, of: tenant)
            }
            try await expire(tenant, before: cutoff, counting: &counts)
        }
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
        let store = environment.store
        for device in try await store.devices(tenantID: tenant.id) {
            counts.samples += try await chunked {
                try await store.deleteSamples(
                    tenantID: tenant.id, serial: device.serial, before: cutoff, limit: StorageJobEnvironment.chunk)
            }
            counts.rollups += try await chunked {
                try await store.deleteRollups(
                    tenantID: tenant.id, serial: device.serial, before: cutoff, limit: StorageJobEnvironment.chunk)
            }
        }
        counts.alerts += try await store.deleteAlertHistory(tenantID: tenant.id, before: cutoff)
        counts.versions += try await store.deleteScriptVersions(tenantID: tenant.id, before: cutoff)
    }

    private func record(_ counts: Counts, of tenant: Tenant) {
        if counts.samples > 0 { environment.quotas.removed(counts.samples, tenantID: tenant.id) }
        guard counts.samples + counts.rollups + counts.alerts + counts.versions > 0 else { return }
        environment.logger.info(
            "retention deleted expired data",
            metadata: [
                "tenant": "\(tenant.slug)", "samples": "\(counts.samples)", "rollups": "\(counts.rollups)",
                "alerts_and_deliveries": "\(counts.alerts)", "script_versions": "\(counts.versions)",
            ])
    }

    /// Repeats a chunked delete until a chunk comes back short; returns the rows deleted.
    private func chunked(_ delete: () async throws -> Int) async throws -> Int {
        var total = 0
        while !Task.isCancelled {
            let rows = try await delete()
            total += rows
            if rows < StorageJobEnvironment.chunk { break }
        }
        return total
    }
}

/// Rolls raw samples older than each step of the tenant's `downsample` policy into min/avg/max
/// rollups at the step's resolution and deletes them (and finer rollups into coarser ones),
/// device by device in chunks, each chunk one transaction: idempotent, and a killed run simply
/// goes on next time. The oldest step runs first, so samples old enough for the coarsest step
/// go there directly. Its rows are the raw samples rolled up.
struct DownsampleJob: Sendable {
    let environment: StorageJobEnvironment
    let log = JobLog()

    /// One pass over every tenant; returns the raw samples rolled up.
    @discardableResult
    func runOnce() async throws -> Int {
        let started = ContinuousClock.now
        let now = environment.clock.now()
        let tenants = try await environment.tenants { !$0.downsample.isEmpty }
        let steps = Dictionary(
            uniqueKeysWithValues: tenants.map { ($0.tenant.id, $0.limits.downsample.sorted { $0.afterDays > $1.afterDays }) })
        return try await environment.forEachTenant(
            tenants.map(\.tenant), job: "downsampling", log: log, startedAt: started, now: now
        ) { tenant, rows in
            var finer = 0
            defer {
                if rows > 0 {
                    environment.quotas.removed(rows, tenantID: tenant.id)
                    environment.logger.info(
                        "downsampling rolled up samples",
                        metadata: ["tenant": "\(tenant.slug)", "rows": "\(rows)", "finer_rollups": "\(finer)"])
                }
            }
            for device in try await environment.store.devices(tenantID: tenant.id) {
                for step in steps[tenant.id] ?? [] {
                    let cutoff = now.adding(seconds: -Double(step.afterDays) * 86_400)
                    while !Task.isCancelled {
                        let chunk = try await environment.store.downsample(
                            tenantID: tenant.id, serial: device.serial, resolutionSeconds: step.resolutionSeconds,
                            before: cutoff, limit: StorageJobEnvironment.chunk)
                        rows += chunk.samples
                        finer += chunk.rollups
                        if chunk.isComplete { break }
                    }
                }
            }
        }
    }
}
