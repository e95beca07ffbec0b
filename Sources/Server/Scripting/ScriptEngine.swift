import Foundation
import Logging
import PlatformCore
import ScriptWorkers
import Scripting
import Storage
import Synchronization

/// Runs tenants' scripts in the Lua worker pool: the server process itself never runs tenant
/// Lua. It keeps each tenant's active ingest scripts (and their failure state) for a short
/// time-to-live; activation in this process reloads a tenant at once, and the time-to-live
/// picks up activations made by other processes. It is also where tier policies are evaluated
/// (in a worker, from the policy file on disk) and their limits cached per tier.
final class ScriptEngine: Sendable {
    private let store: any PlatformStore
    private let workers: LuaWorkerPool
    /// `Policies/`, read again whenever a tier's cached limits expire, so edits apply without
    /// a restart.
    private let policiesDirectory: URL?
    private let clock: any WallClock
    private let logger: Logger
    private let tenants = Mutex<[UUID: CachedTenant]>([:])
    private let tierLimits = Mutex<[String: CachedLimits]>([:])
    /// Limits from tenants' own active `storage_policy` scripts, per tenant.
    private let ownLimits = Mutex<[UUID: CachedLimits]>([:])
    /// Per tenant: whether a platform admin assigned it a contract policy, and its limits.
    private let contractLimits = Mutex<[UUID: CachedContract]>([:])

    private struct CachedContract {
        var hasContract: Bool
        var limits: TierLimits?
        var loadedAt: Timestamp
    }
    static let capacity = 256
    static let timeToLiveSeconds: Double = 10
    /// The memory cap of a tenant VM whose tier sets none (or whose policy fails).
    static let defaultMemoryBytes = 16 * 1024 * 1024

    private struct CachedTenant {
        /// nil when the tenant has no active ingest script.
        var scripts: TenantScripts?
        var loadedAt: Timestamp
        var lastUsed: Timestamp
    }

    private struct CachedLimits {
        var limits: TierLimits?
        var loadedAt: Timestamp
    }

    init(
        store: any PlatformStore, workers: LuaWorkerPool, policiesDirectory: URL?, clock: any WallClock, logger: Logger
    ) {
        self.store = store
        self.workers = workers
        self.policiesDirectory = policiesDirectory
        self.clock = clock
        self.logger = logger
    }

    func invalidate(tenantID: UUID) {
        _ = ownLimits.withLock { $0.removeValue(forKey: tenantID) }
        _ = tenants.withLock { $0.removeValue(forKey: tenantID) }
    }

    /// The tenant's active ingest scripts, or nil when it has none (then ingest checks ranges
    /// while parsing; with scripts, ranges are checked after them).
    func ingestScripts(tenantID: UUID) async throws -> TenantScripts? {
        let now = clock.now()
        if let cached = tenants.withLock({ table -> TenantScripts?? in
            guard var entry = table[tenantID], now.secondsSinceEpoch - entry.loadedAt.secondsSinceEpoch < Self.timeToLiveSeconds
            else { return nil }
            entry.lastUsed = now
            table[tenantID] = entry
            return .some(entry.scripts)
        }) {
            return cached
        }
        guard let tenant = try await store.tenant(id: tenantID) else { throw PlatformError.notFound("Tenant") }
        let active = try await store.activeScripts(tenantID: tenantID, hook: ScriptHook.ingest.rawValue)
        let scripts = active.isEmpty ? nil : TenantScripts(tenant: await workerTenant(tenant), active: active)
        tenants.withLock { table in
            if table.count >= Self.capacity, let oldest = table.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                table.removeValue(forKey: oldest)
            }
            table[tenantID] = CachedTenant(scripts: scripts, loadedAt: now, lastUsed: now)
        }
        return scripts
    }

    /// Runs the tenant's active ingest scripts over `samples` in name order, each over the whole
    /// batch in one worker call. A rejection fails the whole request (422 naming the script); a
    /// script that fails on any sample (an error, its limits, or its worker killed at the
    /// deadline) leaves the whole request as it was before that script (nothing is lost, nothing
    /// half-converted) and the failure is recorded, quarantining a script that keeps failing.
    func transform(_ samples: [TelemetrySample], with scripts: TenantScripts, isBatch: Bool) async throws -> [TelemetrySample] {
        let now = clock.now()
        var output = samples
        for active in scripts.runnable(at: now) {
            switch await run(active, on: output, tenant: scripts.tenant, now: now) {
            case .transformed(let transformed):
                output = transformed
                if active.script.failureCount > 0 {
                    try await record(ScriptOutcome(recoveryOf: active.script), in: scripts)
                }
            case .rejected(let index, let reason):
                throw PlatformError(
                    .validation, code: "rejected_by_script", message: "Rejected by ingest script '\(active.script.name)': \(reason)",
                    field: isBatch ? "samples[\(index)]" : nil)
            case .failed(let index, let error):
                let input = SampleBridge.value(output[index ?? 0]).jsonText
                try await record(ScriptOutcome(failureOf: active.script, error: error, input: input, now: now), in: scripts)
            case .needsSource:
                try await record(
                    ScriptOutcome(failureOf: active.script, error: "the worker did not load the script", input: "", now: now), in: scripts)
            }
        }
        return output
    }

    /// One script over the request's samples in a worker.
    private func run(_ active: ActiveIngestScript, on samples: [TelemetrySample], tenant: WorkerTenant, now: Timestamp) async
        -> TransformResult
    {
        let script = WorkerScript(
            id: active.script.id, version: active.version.version, name: active.script.name,
            configJSON: active.version.configJSON, source: nil)
        do {
            return try await workers.transform(tenant: tenant, script: script, source: active.version.source, now: now, samples: samples)
        } catch let error as WorkerCallError {
            if case .unavailable = error {
                logger.error("no Lua worker; ingest script skipped", metadata: ["error": "\(error)"])
                return .transformed(samples)
            }
            return .failed(index: nil, error: error.description)
        } catch {
            return .failed(index: nil, error: "\(error)")
        }
    }

    private func record(_ outcome: ScriptOutcome, in scripts: TenantScripts) async throws {
        if let error = outcome.error {
            logger.notice(
                "ingest script failed; raw sample kept",
                metadata: ["script": "\(outcome.scriptName)", "error": "\(error)", "failures": "\(outcome.failureCount)"])
        }
        scripts.note(outcome)
        try await store.recordScriptOutcome(
            tenantID: scripts.tenant.id, scriptID: outcome.scriptID, failureCount: outcome.failureCount, error: outcome.error,
            input: outcome.input, quarantinedUntil: outcome.quarantinedUntil)
    }

    /// Compiles `source` in a worker under the tenant's limits and checks the hook's contract.
    func validate(source: String, name: String, hook: ScriptHook, tenant: Tenant) async throws -> WorkerScriptError? {
        let job = WorkerJob.validate(source: source, name: name, hook: hook, memoryBytes: await memoryBytes(for: tenant))
        switch try await runJob(job, tenant: tenant.id) {
        case .valid: return nil
        case .invalid(let error): return error
        case .failed(let message): return WorkerScriptError(.contract(message))
        default: throw PlatformError(.internalFailure, code: "internal_error", message: "Internal server error")
        }
    }

    /// Runs one version of a script on samples in a fresh VM under the tenant's limits,
    /// without touching any state. A run the worker had to be killed for reports the deadline.
    func dryRun(script: Script, version: ScriptVersion, samples: [TelemetrySample], tenant: Tenant, now: Timestamp) async throws
        -> DryRunReport
    {
        guard let hook = ScriptHook(rawValue: script.hook) else { throw PlatformError.notFound("Script") }
        let job = DryRunJob(
            source: version.source, name: script.name, hook: hook, configJSON: version.configJSON,
            tenant: await workerTenant(tenant), now: now, samples: samples)
        do {
            switch try await runJob(.dryRun(job), tenant: tenant.id) {
            case .report(let report): return report
            case .failed(let message): return DryRunReport(results: [], logs: [], errors: [message])
            default: throw PlatformError(.internalFailure, code: "internal_error", message: "Internal server error")
            }
        } catch let error as WorkerCallError {
            if case .unavailable = error { throw Self.unavailable(error) }
            return DryRunReport(results: [], logs: [], errors: [error.description])
        }
    }

    private func runJob(_ job: WorkerJob, tenant: UUID) async throws -> WorkerJobResult {
        do {
            guard case .job(let result) = try await workers.call(.job(job), tenant: tenant) else {
                throw PlatformError(.internalFailure, code: "internal_error", message: "Internal server error")
            }
            return result
        } catch let error as WorkerCallError {
            if case .unavailable = error { throw Self.unavailable(error) }
            throw error
        }
    }

    private static func unavailable(_ error: WorkerCallError) -> PlatformError {
        PlatformError(.unavailable, code: "scripts_unavailable", message: "Scripts cannot run right now; retry")
    }

    /// One piece of an export in the tenant's worker: its format, header, rows or footer.
    /// A script failure is `.failed`; no worker is 503 `scripts_unavailable`; a worker killed at
    /// the deadline throws `WorkerCallError.deadlineExceeded`.
    func export(
        _ script: WorkerScript, source: String, tenant: WorkerTenant, piece: ExportJob.Piece,
        samples: [TelemetrySample] = [], now: Timestamp
    ) async throws -> WorkerJobResult {
        let job = ExportJob(tenant: tenant, script: script, now: now, piece: piece, budgetMilliseconds: 0, samples: samples)
        do {
            return try await workers.export(job, source: source)
        } catch let error as WorkerCallError {
            if case .unavailable = error { throw Self.unavailable(error) }
            throw error
        }
    }

    /// A tenant's alert rules over devices' samples in its worker, in one call. No worker is 503
    /// `scripts_unavailable`; a worker killed at the deadline throws
    /// `WorkerCallError.deadlineExceeded`.
    func evaluate(_ job: EvaluateJob, sources: [String]) async throws -> WorkerJobResult {
        do {
            return try await workers.evaluate(job, sources: sources)
        } catch let error as WorkerCallError {
            if case .unavailable = error { throw Self.unavailable(error) }
            throw error
        }
    }

    /// What a worker needs to know of a tenant.
    func workerTenant(_ tenant: Tenant) async -> WorkerTenant {
        WorkerTenant(id: tenant.id, slug: tenant.slug, tier: tenant.tier, memoryBytes: await memoryBytes(for: tenant))
    }

    /// The memory cap of a tenant's VMs: the default, or what its tier's storage policy sets
    /// (`script_memory_mb`).
    func memoryBytes(for tenant: Tenant) async -> Int {
        (await tierLimits(for: tenant)?.scriptMemoryMegabytes).map { $0 * 1024 * 1024 } ?? Self.defaultMemoryBytes
    }

    /// Forgets every cached limit (a tier or contract was reassigned in this process).
    func invalidateTierLimits() {
        tierLimits.withLock { $0.removeAll() }
        contractLimits.withLock { $0.removeAll() }
    }

    /// The limits of the tenant's tier from its storage policy (`Policies/<tier>.lua`, read from
    /// disk), cached per tier for the time-to-live; nil for a tier without a policy, or a policy
    /// that fails (logged): then nothing is limited but the server's defaults.
    func tierLimits(for tenant: Tenant) async -> TierLimits? {
        Self.stricter(await limitsOfTier(tenant), than: await limitsOfOwnPolicy(tenant))
    }

    /// The tier's limits, tightened by the tenant's own: a tenant's storage policy may make each
    /// limit stricter, never looser. What happens over quota (`reject` or `drop_oldest`) is the
    /// tenant's to choose, since it is its own data; downsampling steps stay the tier's.
    static func stricter(_ tier: TierLimits?, than own: TierLimits?) -> TierLimits? {
        guard let own else { return tier }
        guard var result = tier else { return own }
        // For retention and the ingest rate, nil and 0 mean "no limit of its own" (keep
        // everything, the server's default rate): such a value never replaces a real one.
        func tighter(_ tier: Int?, _ own: Int?) -> Int? {
            guard let own, own > 0 else { return tier }
            guard let tier, tier > 0 else { return own }
            return min(tier, own)
        }
        result.maxDevices = min(result.maxDevices, own.maxDevices)
        result.maxSamples = min(result.maxSamples, own.maxSamples)
        result.retentionDays = tighter(result.retentionDays, own.retentionDays) ?? 0
        result.ingestPerMinute = tighter(result.ingestPerMinute, own.ingestPerMinute)
        result.scriptMemoryMegabytes = tighter(result.scriptMemoryMegabytes, own.scriptMemoryMegabytes)
        result.onOverQuota = own.onOverQuota
        return result
    }

    /// The limits of the tenant's own active `storage_policy` script, cached per tenant for the
    /// time-to-live (activation in this process clears it); nil when it has none or it fails.
    private func limitsOfOwnPolicy(_ tenant: Tenant) async -> TierLimits? {
        let now = clock.now()
        if let entry = ownLimits.withLock({ $0[tenant.id] }),
            now.secondsSinceEpoch - entry.loadedAt.secondsSinceEpoch < Self.timeToLiveSeconds
        {
            return entry.limits
        }
        var limits: TierLimits?
        do {
            if let (script, version) = try await store.activeScripts(
                tenantID: tenant.id, hook: ScriptHook.storagePolicy.rawValue
            ).first {
                let job = WorkerJob.tierLimits(
                    tier: tenant.tier,
                    tenant: WorkerTenant(id: tenant.id, slug: tenant.slug, tier: tenant.tier, memoryBytes: Self.defaultMemoryBytes),
                    source: version.source)
                switch try await runJob(job, tenant: tenant.id) {
                case .limits(let answer): limits = answer
                case .failed(let message):
                    logger.notice(
                        "tenant storage policy failed; the tier's limits apply",
                        metadata: ["script": "\(script.name)", "error": "\(message)"])
                default: break
                }
            }
        } catch {
            logger.notice("tenant storage policy failed; the tier's limits apply", metadata: ["error": "\(error)"])
        }
        ownLimits.withLock { $0[tenant.id] = CachedLimits(limits: limits, loadedAt: now) }
        return limits
    }

    /// The limits of the tenant's contract policy, when a platform admin assigned one (it replaces
    /// the tier's); nil when it has none. Cached per tenant for the time-to-live.
    private func limitsOfContract(_ tenant: Tenant) async -> TierLimits?? {
        let now = clock.now()
        if let entry = contractLimits.withLock({ $0[tenant.id] }),
            now.secondsSinceEpoch - entry.loadedAt.secondsSinceEpoch < Self.timeToLiveSeconds
        {
            return entry.hasContract ? .some(entry.limits) : nil
        }
        var entry = CachedContract(hasContract: false, limits: nil, loadedAt: now)
        do {
            if let source = try await store.contractPolicy(tenantID: tenant.id) {
                entry.hasContract = true
                let job = WorkerJob.tierLimits(
                    tier: tenant.tier,
                    tenant: WorkerTenant(id: tenant.id, slug: tenant.slug, tier: tenant.tier, memoryBytes: Self.defaultMemoryBytes),
                    source: source)
                switch try await runJob(job, tenant: tenant.id) {
                case .limits(let answer): entry.limits = answer
                case .failed(let message):
                    logger.error("contract policy failed; nothing is limited", metadata: ["tenant": "\(tenant.slug)", "error": "\(message)"])
                default: break
                }
            }
        } catch {
            logger.error("contract policy failed", metadata: ["tenant": "\(tenant.slug)", "error": "\(error)"])
        }
        contractLimits.withLock { $0[tenant.id] = entry }
        return entry.hasContract ? .some(entry.limits) : nil
    }

    /// The limits of the tenant's contract policy if it has one, else of its tier's policy.
    private func limitsOfTier(_ tenant: Tenant) async -> TierLimits? {
        if let contract = await limitsOfContract(tenant) { return contract }
        let now = clock.now()
        let cached = tierLimits.withLock { table -> CachedLimits? in
            guard let entry = table[tenant.tier], now.secondsSinceEpoch - entry.loadedAt.secondsSinceEpoch < Self.timeToLiveSeconds
            else { return nil }
            return entry
        }
        var limits = cached?.limits
        if cached == nil {
            do {
                let job = WorkerJob.tierLimits(
                    tier: tenant.tier,
                    tenant: WorkerTenant(id: tenant.id, slug: tenant.slug, tier: tenant.tier, memoryBytes: Self.defaultMemoryBytes),
                    source: policySource(tier: tenant.tier))
                switch try await runJob(job, tenant: tenant.id) {
                case .limits(let answer): limits = answer
                case .failed(let message):
                    logger.error("tier policy failed; default script limits apply", metadata: ["tier": "\(tenant.tier)", "error": "\(message)"])
                default: break
                }
            } catch {
                logger.error("tier policy failed; default script limits apply", metadata: ["tier": "\(tenant.tier)", "error": "\(error)"])
            }
            tierLimits.withLock { $0[tenant.tier] = CachedLimits(limits: limits, loadedAt: now) }
        }
        return limits
    }

    /// The tiers that have a policy file on disk now (`Policies/<tier>.lua`), sorted.
    func availableTiers() -> [String] {
        guard let policiesDirectory,
            let names = try? FileManager.default.contentsOfDirectory(atPath: policiesDirectory.path)
        else { return [] }
        return names.filter { $0.hasSuffix(".lua") }.map { String($0.dropLast(4)) }.sorted()
    }

    /// The tier's policy file as it is on disk now; nil when there is none (the worker then
    /// answers that the tier has no policy).
    private func policySource(tier: String) -> String? {
        guard let policiesDirectory, tier.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            return nil
        }
        return try? String(contentsOf: policiesDirectory.appendingPathComponent("\(tier).lua"), encoding: .utf8)
    }
}

/// What one ingest script did to one request, to be recorded.
struct ScriptOutcome: Sendable {
    var scriptID: UUID
    var scriptName: String
    var failureCount: Int
    var error: String?
    var input: String?
    var quarantinedUntil: Timestamp?

    /// One more failure in a row, quarantining the script once `QuarantinePolicy` says so.
    init(failureOf script: Script, error: String, input: String, now: Timestamp) {
        scriptID = script.id
        scriptName = script.name
        failureCount = script.failureCount + 1
        self.error = error
        self.input = input
        quarantinedUntil = QuarantinePolicy.window(afterFailures: failureCount).map { now.adding(seconds: $0) }
    }

    /// A success after failures: the count and the quarantine are cleared.
    init(recoveryOf script: Script) {
        scriptID = script.id
        scriptName = script.name
        failureCount = 0
    }
}

/// One active ingest script: its failure state and the version that runs.
struct ActiveIngestScript: Sendable {
    var script: Script
    var version: ScriptVersion
}

/// A tenant's active ingest scripts, in name order, with their failure state kept in step with
/// what is recorded.
final class TenantScripts: Sendable {
    let tenant: WorkerTenant
    private let scripts: Mutex<[ActiveIngestScript]>

    init(tenant: WorkerTenant, active: [(Script, ScriptVersion)]) {
        self.tenant = tenant
        scripts = Mutex(active.map { ActiveIngestScript(script: $0.0, version: $0.1) })
    }

    /// The scripts not in quarantine at `now`.
    func runnable(at now: Timestamp) -> [ActiveIngestScript] {
        scripts.withLock { $0.filter { script in script.script.quarantinedUntil.map { $0 <= now } ?? true } }
    }

    func note(_ outcome: ScriptOutcome) {
        scripts.withLock { scripts in
            guard let index = scripts.firstIndex(where: { $0.script.id == outcome.scriptID }) else { return }
            scripts[index].script.failureCount = outcome.failureCount
            scripts[index].script.quarantinedUntil = outcome.quarantinedUntil
        }
    }
}
