import Foundation
import LuaSandbox
import PlatformCore
import Scripting

/// What a worker process does with each request: it keeps one VM per tenant (so tenants never
/// see each other's globals or share a memory cap) with that tenant's scripts loaded, the most
/// recently used tenants staying warm, and runs dry-runs and validations in fresh VMs. It owns
/// no descriptor and no database: everything it needs comes in the request.
public final class LuaWorker {
    private let catalog: PluginCatalog
    private var tenants: [UUID: TenantRuntime] = [:]
    private var useCounter: UInt64 = 0
    /// Tenant VMs one worker keeps; the least recently used one goes first.
    public static let maximumTenants = 64
    /// Memory of a tenant VM per sample of a device whose table an alert job keeps for its rules
    /// (a device's further samples in the job run one call per sample): the kept tables, about
    /// 0.9 KiB per sample, stay under 6 % of the VM's cap (1,024 samples, a whole pass, under the
    /// default 16 MiB).
    public static let memoryPerKeptSample = 16 * 1024

    private final class TenantRuntime {
        let memoryBytes: Int
        let runner: ScriptRunner
        /// `ctx.tenant`: the id as scripts see it, formatted once (formatting costs about a
        /// microsecond, a single-sample call's whole Lua time).
        let tenantID: String
        var scripts: [UUID: LoadedVersion] = [:]
        var lastUse: UInt64 = 0

        init(memoryBytes: Int, runner: ScriptRunner, tenantID: UUID) {
            self.memoryBytes = memoryBytes
            self.runner = runner
            self.tenantID = tenantID.uuidString.lowercased()
        }
    }

    private struct LoadedVersion {
        var version: Int
        var configJSON: String
        var loaded: Result<LoadedScript, ScriptError>
        var config: LuaValue
    }

    public init(catalog: PluginCatalog) {
        self.catalog = catalog
    }

    public func handle(_ request: WorkerRequest) -> WorkerResponse {
        switch request {
        case .transform(let call): .transform(transform(call))
        case .evaluate(let job): .job(evaluate(job))
        case .job(let job): .job(run(job))
        }
    }

    /// Runs one ingest script over each part of a call, as `transform(sample, ctx)` per sample.
    /// Parts are independent: the first rejection or failure ends its own part only. Parts
    /// still waiting when the call has run past its budget fail.
    func transform(_ call: TransformCall) -> [TransformResult] {
        let started = ContinuousClock.now
        let runtime: TenantRuntime
        do {
            runtime = try tenantRuntime(call.tenant)
        } catch {
            return call.parts.map { _ in .failed(index: nil, error: "the script VM could not start: \(error)") }
        }
        guard let version = loadedVersion(call.script, hook: .ingest, in: runtime) else {
            return call.parts.map { _ in .needsSource }
        }
        defer { _ = runtime.runner.drainLog() }
        let loaded: LoadedScript
        switch version.loaded {
        case .success(let script): loaded = script
        case .failure(let error): return call.parts.map { _ in .failed(index: nil, error: error.description) }
        }
        let budget = Duration.milliseconds(call.budgetMilliseconds)
        let tenantID = runtime.tenantID
        return call.parts.map { part in
            var output = part.samples
            // One run per stretch of samples from the same device (a batch is usually one
            // device), each in one call into the VM.
            var start = output.startIndex
            while start < output.endIndex {
                let serial = output[start].deviceSerial
                let end = output[start...].firstIndex { $0.deviceSerial != serial } ?? output.endIndex
                let context = ScriptContext(
                    tenantID: tenantID, tenantSlug: call.tenant.slug, tier: call.tenant.tier, deviceSerial: serial,
                    deviceName: serial, now: part.now, config: version.config)
                let run: TransformRun
                do {
                    run = try runtime.runner.startTransformRun(loaded, context: context)
                } catch {
                    return .failed(index: start, error: "\(error)")
                }
                switch runtime.runner.transform(run, samples: &output, in: start..<end, until: started + budget) {
                case .finished: start = end
                case .rejected(let index, let reason): return .rejected(index: index, reason: reason)
                case .failed(let index, let error): return .failed(index: index, error: "\(error)")
                case .outOfTime(let index): return .failed(index: index, error: Self.overBudget(call))
                }
            }
            return .transformed(output)
        }
    }

    private static func overBudget(_ call: TransformCall) -> String {
        "time limit exceeded: the batch took longer than \(call.budgetMilliseconds) ms"
    }

    func run(_ job: WorkerJob) -> WorkerJobResult {
        switch job {
        case .validate(let source, let name, let hook, let memoryBytes):
            do {
                let runner = try ScriptRunner(catalog: catalog, limits: limits(memoryBytes: memoryBytes))
                _ = try runner.load(source: source, name: name, hook: hook)
                return .valid
            } catch let error as ScriptError {
                return .invalid(WorkerScriptError(error))
            } catch {
                return .failed("\(error)")
            }
        case .dryRun(let dryRun):
            do {
                let runner = try ScriptRunner(catalog: catalog, limits: limits(memoryBytes: dryRun.tenant.memoryBytes))
                let config = (try? LuaValue(jsonText: dryRun.configJSON)) ?? .table([:])
                let tenantID = dryRun.tenant.id.uuidString.lowercased()
                return .report(
                    runner.dryRun(source: dryRun.source, name: dryRun.name, hook: dryRun.hook, samples: dryRun.samples) { sample in
                        ScriptContext(
                            tenantID: tenantID, tenantSlug: dryRun.tenant.slug, tier: dryRun.tenant.tier,
                            deviceSerial: sample?.deviceSerial, deviceName: sample?.deviceSerial, now: dryRun.now, config: config)
                    })
            } catch {
                return .failed("\(error)")
            }
        case .export(let job):
            return export(job)
        case .tierLimits(let tier, let tenant, let source):
            do {
                let runner = try ScriptRunner(catalog: catalog)
                let loaded: LoadedScript
                if let source {
                    loaded = try runner.load(source: source, name: "policy:\(tier)", hook: .storagePolicy)
                } else if let policy = catalog.policies[tier] {
                    loaded = try runner.load(plugin: policy)
                } else {
                    return .failed("no policy for the tier '\(tier)'")
                }
                let context = ScriptContext(
                    tenantID: tenant.id.uuidString.lowercased(), tenantSlug: tenant.slug, tier: tenant.tier, deviceSerial: nil,
                    deviceName: nil, now: Timestamp(Date()), config: .table([:]))
                var limits = try runner.limits(loaded, context: context)
                let usage = LuaValue.table([
                    "devices": .integer(Int64(limits.maxDevices)), "samples": .integer(Int64(limits.maxSamples)),
                ])
                limits.onOverQuota = try runner.onOverQuota(loaded, usage: usage, limits: limits, context: context)
                return .limits(limits)
            } catch {
                return .failed("\(error)")
            }
        }
    }

    /// Renders one piece of an export in the tenant's warm VM (the script stays loaded between
    /// pieces, so module-level state carries from header to rows to footer).
    private func export(_ job: ExportJob) -> WorkerJobResult {
        let runtime: TenantRuntime
        do {
            runtime = try tenantRuntime(job.tenant)
        } catch {
            return .failed("the script VM could not start: \(error)")
        }
        guard let version = loadedVersion(job.script, hook: .export, in: runtime) else { return .needsSource }
        defer { _ = runtime.runner.drainLog() }
        let loaded: LoadedScript
        switch version.loaded {
        case .success(let script): loaded = script
        case .failure(let error): return .failed(error.description)
        }
        let piece: ExportPiece
        switch job.piece {
        case .format:
            do {
                let (contentType, fileExtension) = try runtime.runner.contentType(loaded)
                return .exportFormat(contentType: contentType, fileExtension: fileExtension)
            } catch {
                return .failed(error.description)
            }
        case .header: piece = .header
        case .rows: piece = .rows(job.samples)
        case .footer: piece = .footer
        }
        let tenantID = runtime.tenantID
        do {
            return .exported(
                try runtime.runner.exportPiece(loaded, piece) { sample in
                    ScriptContext(
                        tenantID: tenantID, tenantSlug: job.tenant.slug, tier: job.tenant.tier,
                        deviceSerial: sample?.deviceSerial, deviceName: sample?.deviceSerial, now: job.now,
                        config: version.config)
                })
        } catch {
            return .failed(error.description)
        }
    }

    /// Runs a tenant's alert rules over the job's devices in its warm VM: each rule over the
    /// samples of each device it watches, carrying the state from sample to sample. A failure
    /// (or the rule's share of the budget running out) ends that device's part of that rule.
    /// When the VM lacks some rules' scripts, nothing runs and the answer names them.
    private func evaluate(_ job: EvaluateJob) -> WorkerJobResult {
        let runtime: TenantRuntime
        do {
            runtime = try tenantRuntime(job.tenant)
        } catch {
            return .failed("the script VM could not start: \(error)")
        }
        var versions: [LoadedVersion] = []
        var missing: [Int] = []
        for (index, rule) in job.rules.enumerated() {
            if let version = loadedVersion(rule.script, hook: .alert, in: runtime) {
                versions.append(version)
            } else {
                missing.append(index)
            }
        }
        guard missing.isEmpty else { return .needsSources(missing) }
        defer { _ = runtime.runner.drainLog() }
        enum Runnable {
            case runs(LoadedScript, LoadedVersion)
            case answered(RuleEvaluation)
        }
        let runnable = versions.map { version -> Runnable in
            switch version.loaded {
            case .success(let script) where job.timer && !script.evaluatesOnTimer: .answered(.skipped)
            case .success(let script): .runs(script, version)
            case .failure(let error): .answered(.failed(error.description))
            }
        }
        let shareMilliseconds = max(1, job.budgetMilliseconds / max(1, job.rules.count))
        let share = Duration.milliseconds(shareMilliseconds)
        let tenantID = runtime.tenantID
        // Device by device, so that a sample's table is built once for all the rules (kept
        // only while its device's rules run, each call getting a copy); each rule's share of the
        // budget counts its time over all devices.
        var used = Array(repeating: Duration.zero, count: job.rules.count)
        var verdicts = Array(repeating: [DeviceEvaluation?](), count: job.rules.count)
        var offset = 0
        for (deviceIndex, device) in job.devices.enumerated() {
            let samples = job.samples[offset..<offset + device.sampleCount]
            offset += device.sampleCount
            // Built on the first rule's need, once for all the device's rules (which then each
            // get copies; a device's only rule gets the tables themselves).
            let watching = job.rules.indices.count { ruleIndex in
                guard case .runs = runnable[ruleIndex], deviceIndex < job.rules[ruleIndex].states.count else { return false }
                return job.rules[ruleIndex].states[deviceIndex] != nil
            }
            var kept: DeviceSamples?
            defer { kept.map(runtime.runner.release) }
            let keptCount = min(samples.count, runtime.memoryBytes / Self.memoryPerKeptSample)
            func keptSamples() -> DeviceSamples? {
                if kept == nil { kept = try? runtime.runner.deviceSamples(samples.prefix(keptCount), shared: watching > 1) }
                return kept
            }
            for (ruleIndex, rule) in job.rules.enumerated() {
                guard case .runs(let loaded, let version) = runnable[ruleIndex] else { continue }
                guard deviceIndex < rule.states.count, let stateJSON = rule.states[deviceIndex] else {
                    verdicts[ruleIndex].append(nil)
                    continue
                }
                let context = ScriptContext(
                    tenantID: tenantID, tenantSlug: job.tenant.slug, tier: job.tenant.tier, deviceSerial: device.serial,
                    deviceName: device.name, now: job.now, config: version.config)
                let started = ContinuousClock.now
                verdicts[ruleIndex].append(
                    evaluate(
                        loaded, samples: samples, stateJSON: stateJSON, context: context, timer: job.timer, runner: runtime.runner,
                        kept: keptSamples, deadline: started + share - used[ruleIndex], budgetMilliseconds: shareMilliseconds))
                used[ruleIndex] += ContinuousClock.now - started
            }
        }
        let answers = runnable.enumerated().map { ruleIndex, rule -> RuleEvaluation in
            switch rule {
            case .runs: .evaluated(verdicts[ruleIndex])
            case .answered(let answer): answer
            }
        }
        return .evaluated(answers)
    }

    /// One rule over one device's samples. Its steps are the conditions after each sample that
    /// changed their keys: a sample reporting the same keys (in the same order) as the one before
    /// replaces that step, since the platform applies a pass's steps at one moment and only the
    /// latest message and value of such a run count.
    private func evaluate(
        _ loaded: LoadedScript, samples: ArraySlice<TelemetrySample>, stateJSON: String, context: ScriptContext, timer: Bool,
        runner: ScriptRunner, kept: () -> DeviceSamples?, deadline: ContinuousClock.Instant, budgetMilliseconds: Int
    ) -> DeviceEvaluation {
        let initial = (try? LuaValue(jsonText: stateJSON)) ?? .table([:])
        let overdue = "time limit exceeded: the rule took longer than its \(budgetMilliseconds) ms share of the evaluation"
        // The plain path: one call per sample, the state crossing as a value, so a failing call
        // leaves the state of the last good one. It serves the timer (which adds `ctx.timer`),
        // replays a part the fast path refused, and goes on past the kept samples.
        typealias Run = (steps: [[ScriptAlert]], state: LuaValue, failure: (message: String, sample: Int)?)
        func plainRun(_ rest: ArraySlice<TelemetrySample>, state: LuaValue, steps: [[ScriptAlert]]) -> Run {
            var state = state
            var steps = steps
            for index in rest.indices {
                let position = index - samples.startIndex
                if ContinuousClock.now > deadline { return (steps, state, (overdue, position)) }
                do {
                    let (alerts, newState) = try runner.evaluate(loaded, sample: rest[index], state: state, context: context, timer: timer)
                    Self.append(alerts, to: &steps)
                    state = newState
                } catch {
                    return (steps, state, (error.description, position))
                }
            }
            return (steps, state, nil)
        }
        // The fast path: the kept samples in one call into the VM, the state staying there.
        func fastRun() -> Run? {
            guard let tables = kept(),
                let run = try? runner.evaluate(loaded, samples: tables, state: initial, context: context, share: deadline - .now)
            else { return nil }
            return plainRun(samples.dropFirst(tables.count), state: run.state, steps: run.steps)
        }
        let run = (timer ? nil : fastRun()) ?? plainRun(samples, state: initial, steps: [])
        let stateText = run.state.jsonText
        guard stateText.utf8.count <= DeviceEvaluation.maximumStateBytes else {
            // Too large to keep: the whole part fails and the stored state stays.
            return DeviceEvaluation(
                steps: [], stateJSON: stateJSON,
                failure: "the state is larger than \(DeviceEvaluation.maximumStateBytes / 1024) KiB as JSON")
        }
        return DeviceEvaluation(steps: run.steps, stateJSON: stateText, failure: run.failure?.message, failedSample: run.failure?.sample)
    }

    /// Adds a sample's conditions as a new step, or in place of the last step when it has the
    /// same keys.
    private static func append(_ alerts: [ScriptAlert], to steps: inout [[ScriptAlert]]) {
        if let last = steps.last, last.count == alerts.count, zip(last, alerts).allSatisfy({ $0.key == $1.key }) {
            steps[steps.count - 1] = alerts
        } else {
            steps.append(alerts)
        }
    }

    private func limits(memoryBytes: Int) -> LuaLimits {
        var limits = LuaLimits()
        limits.memoryBytes = memoryBytes
        return limits
    }

    /// The tenant's VM, rebuilt when its memory cap changed (a tier change).
    private func tenantRuntime(_ tenant: WorkerTenant) throws -> TenantRuntime {
        useCounter += 1
        if let runtime = tenants[tenant.id], runtime.memoryBytes == tenant.memoryBytes {
            runtime.lastUse = useCounter
            return runtime
        }
        tenants.removeValue(forKey: tenant.id)
        if tenants.count >= Self.maximumTenants, let oldest = tenants.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            tenants.removeValue(forKey: oldest)
        }
        let runtime = TenantRuntime(
            memoryBytes: tenant.memoryBytes, runner: try ScriptRunner(catalog: catalog, limits: limits(memoryBytes: tenant.memoryBytes)),
            tenantID: tenant.id)
        runtime.lastUse = useCounter
        tenants[tenant.id] = runtime
        return runtime
    }

    /// The script version loaded in the tenant's VM, loading it from the request's source when
    /// the VM holds another version (or none); nil when it must be sent with its source.
    private func loadedVersion(_ script: WorkerScript, hook: ScriptHook, in runtime: TenantRuntime) -> LoadedVersion? {
        if let current = runtime.scripts[script.id], current.version == script.version, current.configJSON == script.configJSON {
            return current
        }
        guard let source = script.source else { return nil }
        if let previous = runtime.scripts.removeValue(forKey: script.id), case .success(let loaded) = previous.loaded {
            runtime.runner.unload(loaded)
        }
        let version = LoadedVersion(
            version: script.version, configJSON: script.configJSON,
            loaded: Result { () throws(ScriptError) in try runtime.runner.load(source: source, name: script.name, hook: hook) },
            config: (try? LuaValue(jsonText: script.configJSON)) ?? .table([:]))
        runtime.scripts[script.id] = version
        return version
    }
}
