import Foundation
import LuaSandbox
import Logging
import PlatformCore
import Scripting
import Storage
import Synchronization

/// Runs tenants' active scripts. Each tenant gets its own VM (so tenants never see each
/// other's globals or share a memory cap) inside an actor, so one task at a time uses it; the
/// most recently used tenants stay loaded. Activation in this process reloads a tenant at
/// once; a short time-to-live picks up activations made by other processes.
final class ScriptEngine: Sendable {
    private let store: any PlatformStore
    private let catalog: PluginCatalog
    private let clock: any WallClock
    private let logger: Logger
    private let tenants = Mutex<[UUID: CachedTenant]>([:])
    static let capacity = 256
    static let timeToLiveSeconds: Double = 10

    private struct CachedTenant {
        /// nil when the tenant has no active ingest script: no VM is built for it.
        var scripts: TenantScripts?
        var loadedAt: Timestamp
        var lastUsed: Timestamp
    }

    init(store: any PlatformStore, catalog: PluginCatalog, clock: any WallClock, logger: Logger) {
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.logger = logger
    }

    func invalidate(tenantID: UUID) {
        _ = tenants.withLock { $0.removeValue(forKey: tenantID) }
    }

    /// The tenant's loaded ingest scripts, or nil when it has none active (then ingest checks
    /// ranges while parsing; with scripts, ranges are checked after them).
    func ingestScripts(tenantID: UUID) async throws -> TenantScripts? {
        try await tenantScripts(tenantID)
    }

    /// Runs the tenant's active ingest scripts over `samples` in name order. A rejection fails
    /// the whole request (422 naming the script); a script that fails on any sample leaves the
    /// whole request as it was before that script (nothing is lost, nothing half-converted)
    /// and the failure is recorded, quarantining a script that keeps failing.
    func transform(_ samples: [TelemetrySample], with scripts: TenantScripts, isBatch: Bool) async throws -> [TelemetrySample] {
        let run = await scripts.transform(samples, now: clock.now())
        for outcome in run.outcomes {
            try await record(outcome, tenantID: scripts.tenantID)
        }
        if let rejection = run.rejection {
            throw PlatformError(
                .validation, code: "rejected_by_script",
                message: "Rejected by ingest script '\(rejection.script)': \(rejection.reason)",
                field: isBatch ? "samples[\(rejection.index)]" : nil)
        }
        return run.samples
    }

    private func record(_ outcome: ScriptOutcome, tenantID: UUID) async throws {
        if let error = outcome.error {
            logger.notice(
                "ingest script failed; raw sample kept",
                metadata: ["script": "\(outcome.scriptName)", "error": "\(error)", "failures": "\(outcome.failureCount)"])
        }
        try await store.recordScriptOutcome(
            tenantID: tenantID, scriptID: outcome.scriptID, failureCount: outcome.failureCount, error: outcome.error,
            input: outcome.input, quarantinedUntil: outcome.quarantinedUntil)
    }

    /// Runs one version of a script on samples in a fresh VM under the tenant's limits, without
    /// touching any state.
    func dryRun(script: Script, version: ScriptVersion, samples: [TelemetrySample], tenant: Tenant, now: Timestamp) async throws
        -> DryRunReport
    {
        guard let hook = ScriptHook(rawValue: script.hook) else { throw PlatformError.notFound("Script") }
        let config = (try? LuaValue(jsonText: version.configJSON)) ?? .table([:])
        let runner = try ScriptRunner(catalog: catalog, limits: luaLimits(for: tenant))
        return runner.dryRun(source: version.source, name: script.name, hook: hook, samples: samples) { sample in
            ScriptContext(
                tenantID: tenant.id.uuidString.lowercased(), tenantSlug: tenant.slug, tier: tenant.tier,
                deviceSerial: sample?.deviceSerial, deviceName: sample?.deviceSerial, now: now, config: config)
        }
    }

    /// The sandbox limits of a tenant's VMs: the defaults, with the memory cap its tier's
    /// storage policy sets (`script_memory_mb`). A tier without a policy, or a policy that
    /// fails, keeps the default cap.
    func luaLimits(for tenant: Tenant) -> LuaLimits {
        var limits = LuaLimits()
        guard let policy = catalog.policies[tenant.tier] else { return limits }
        do {
            let runner = try ScriptRunner(catalog: catalog)
            let loaded = try runner.load(plugin: policy)
            let context = ScriptContext(
                tenantID: tenant.id.uuidString.lowercased(), tenantSlug: tenant.slug, tier: tenant.tier, deviceSerial: nil,
                deviceName: nil, now: clock.now(), config: .table([:]))
            if let megabytes = try runner.limits(loaded, context: context).scriptMemoryMegabytes {
                limits.memoryBytes = megabytes * 1024 * 1024
            }
        } catch {
            logger.error("tier policy failed; default script limits apply", metadata: ["tier": "\(tenant.tier)", "error": "\(error)"])
        }
        return limits
    }

    private func tenantScripts(_ tenantID: UUID) async throws -> TenantScripts? {
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
        let scripts =
            active.isEmpty ? nil : try TenantScripts(tenant: tenant, catalog: catalog, limits: luaLimits(for: tenant), ingest: active)
        tenants.withLock { table in
            if table.count >= Self.capacity, let oldest = table.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                table.removeValue(forKey: oldest)
            }
            table[tenantID] = CachedTenant(scripts: scripts, loadedAt: now, lastUsed: now)
        }
        return scripts
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

/// One tenant's VM and its loaded active scripts; the actor makes it single-task.
actor TenantScripts {
    private struct ActiveScript {
        var script: Script
        var loaded: LoadedScript?
        var config: LuaValue
        var loadError: String?
    }

    private let tenant: Tenant
    private let runner: ScriptRunner
    private var ingest: [ActiveScript]
    nonisolated let tenantID: UUID

    init(tenant: Tenant, catalog: PluginCatalog, limits: LuaLimits, ingest active: [(Script, ScriptVersion)]) throws {
        self.tenant = tenant
        let runner = try ScriptRunner(catalog: catalog, limits: limits)
        ingest = active.map { script, version in
            let config = (try? LuaValue(jsonText: version.configJSON)) ?? .table([:])
            do {
                let loaded = try runner.load(source: version.source, name: script.name, hook: .ingest)
                return ActiveScript(script: script, loaded: loaded, config: config)
            } catch {
                return ActiveScript(script: script, loaded: nil, config: config, loadError: "\(error)")
            }
        }
        self.runner = runner
        tenantID = tenant.id
    }

    struct Run: Sendable {
        var samples: [TelemetrySample]
        var outcomes: [ScriptOutcome]
        var rejection: (script: String, reason: String, index: Int)?
    }

    func transform(_ samples: [TelemetrySample], now: Timestamp) -> Run {
        var output = samples
        var outcomes: [ScriptOutcome] = []
        let tenantID = tenant.id.uuidString.lowercased()
        for active in ingest {
            if let until = active.script.quarantinedUntil, until > now { continue }
            let beforeScript = output
            var failure: (String, String)?
            for index in output.indices where failure == nil {
                let sample = output[index]
                guard let loaded = active.loaded else {
                    failure = (active.loadError ?? "the script does not load", SampleBridge.value(sample).jsonText)
                    break
                }
                let context = ScriptContext(
                    tenantID: tenantID, tenantSlug: tenant.slug, tier: tenant.tier, deviceSerial: sample.deviceSerial,
                    deviceName: sample.deviceSerial, now: now, config: active.config)
                do {
                    switch try runner.transform(loaded, sample: sample, context: context) {
                    case .accept(let transformed):
                        output[index] = transformed
                    case .reject(let reason):
                        _ = runner.drainLog()
                        outcomes.forEach(noteOutcome)
                        return Run(samples: samples, outcomes: outcomes, rejection: (active.script.name, reason, index))
                    }
                } catch {
                    failure = (error.description, SampleBridge.value(sample).jsonText)
                }
            }
            if let (error, input) = failure {
                output = beforeScript
                outcomes.append(ScriptOutcome(failureOf: active.script, error: error, input: input, now: now))
            } else if active.script.failureCount > 0 {
                outcomes.append(ScriptOutcome(recoveryOf: active.script))
            }
        }
        _ = runner.drainLog()
        outcomes.forEach(noteOutcome)
        return Run(samples: output, outcomes: outcomes, rejection: nil)
    }

    /// Keeps the cached failure state in step with what is recorded.
    private func noteOutcome(_ outcome: ScriptOutcome) {
        guard let index = ingest.firstIndex(where: { $0.script.id == outcome.scriptID }) else { return }
        ingest[index].script.failureCount = outcome.failureCount
        ingest[index].script.quarantinedUntil = outcome.quarantinedUntil
    }
}
