import Foundation
import Logging
import PlatformCore
import ServiceLifecycle
import Storage
import Synchronization

/// When a background job last ran and what it did, for `/api/usage/` and the admin list.
struct JobReport: Sendable, Equatable {
    var lastRun: Timestamp?
    var rows: Int
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

/// Deletes samples older than each tenant's `retention_days`, device by device in chunks of
/// `chunk` rows (each its own short transaction, so no long lock is held and a kill loses at
/// most one chunk's progress: the next run simply goes on). Runs every `period`.
final class RetentionJob: Service, Sendable {
    private let store: any PlatformStore
    private let quotas: QuotaService
    private let clock: any WallClock
    private let logger: Logger
    private let digest: OperatorDigest
    private let period: Duration
    private let reports = Mutex<(lastRun: Timestamp?, total: Int, byTenant: [UUID: Int])>((nil, 0, [:]))
    static let chunk = 5000

    init(
        store: any PlatformStore, quotas: QuotaService, clock: any WallClock, period: Duration, digest: OperatorDigest,
        logger: Logger
    ) {
        self.store = store
        self.digest = digest
        self.quotas = quotas
        self.clock = clock
        self.period = period
        self.logger = logger
    }

    /// The last run over all tenants.
    var lastReport: JobReport { reports.withLock { JobReport(lastRun: $0.lastRun, rows: $0.total) } }

    /// The last run and what it deleted of one tenant's samples.
    func report(for tenantID: UUID) -> JobReport {
        reports.withLock { JobReport(lastRun: $0.lastRun, rows: $0.byTenant[tenantID] ?? 0) }
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: self.period)
                do {
                    _ = try await self.runOnce()
                } catch {
                    self.logger.warning("retention run failed", metadata: ["error": "\(error)"])
                    self.digest.jobFailed("retention", error: "\(error)")
                }
            }
        }
    }

    /// One pass over every tenant; returns the rows deleted.
    @discardableResult
    func runOnce() async throws -> Int {
        var deleted = 0
        var byTenant: [UUID: Int] = [:]
        let now = clock.now()
        for tenant in try await store.allTenants() {
            guard let limits = await quotas.limits(for: tenant), limits.retentionDays > 0 else { continue }
            let cutoff = now.adding(seconds: -Double(limits.retentionDays) * 86_400)
            var tenantDeleted = 0
            for device in try await store.devices(tenantID: tenant.id) {
                while !Task.isCancelled {
                    let rows = try await store.deleteSamples(
                        tenantID: tenant.id, serial: device.serial, before: cutoff, limit: Self.chunk)
                    tenantDeleted += rows
                    if rows < Self.chunk { break }
                }
            }
            if tenantDeleted > 0 {
                quotas.removed(tenantDeleted, tenantID: tenant.id)
                logger.info("retention deleted samples", metadata: ["tenant": "\(tenant.slug)", "rows": "\(tenantDeleted)"])
            }
            deleted += tenantDeleted
            byTenant[tenant.id] = tenantDeleted
        }
        reports.withLock { $0 = (now, deleted, byTenant) }
        return deleted
    }
}
