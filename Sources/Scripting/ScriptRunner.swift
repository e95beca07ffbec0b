import LuaSandbox
import PlatformCore

/// A script loaded into a runner's VM and checked against its hook's contract.
public struct LoadedScript: Sendable, Hashable {
    public let name: String
    public let hook: ScriptHook
    let module: LuaModule
    /// The hook's required functions, resolved once for the hot path.
    let functions: [String: LuaFunction]
    /// The configuration defaults of the built-in plugins the script is or `require`s; its own
    /// config is laid over them in `ctx.config`.
    public let defaultConfig: [String: LuaValue]
    /// An alert script whose table sets `timer = true`: the platform also evaluates it on its
    /// timer, with the device's newest stored sample and `ctx.timer` true (a silent device).
    public let evaluatesOnTimer: Bool
    /// A built-in alert plugin (or a tenant's exact copy of one). Those only read the sample's
    /// fields, and pass the table to none but their own local functions: they neither change
    /// nor keep it, so they are given a device's sample tables themselves, not copies.
    let readsSamplesOnly: Bool

    /// `config` over the defaults, key by key; a key set to nil (JSON null) takes the default.
    func resolvedConfig(_ config: LuaValue) -> LuaValue {
        guard !defaultConfig.isEmpty else { return config }
        switch config {
        case .table(let own): return .table(defaultConfig.merging(own.filter { $0.value != .nil }) { $1 })
        case .array(let items) where items.isEmpty: return .table(defaultConfig)
        default: return config
        }
    }
}

/// What an ingest transform decided about a sample.
public enum IngestOutcome: Sendable, Equatable {
    case accept(TelemetrySample)
    case reject(String)
}

/// One condition an alert script reports as active now (the platform's `ActiveCondition`).
public typealias ScriptAlert = ActiveCondition

/// What a tier's storage policy allows.
public struct TierLimits: Sendable, Equatable, Codable {
    /// Older data is kept at a coarser resolution.
    public struct Downsample: Sendable, Equatable, Codable {
        public var afterDays: Int
        public var resolution: String

        /// `resolution` in seconds.
        public var resolutionSeconds: Int

        /// Nil when `resolution` is not one of `TelemetryResolution`'s names.
        public init?(afterDays: Int, resolution: String) {
            guard let seconds = TelemetryResolution.seconds[resolution] else { return nil }
            self.afterDays = afterDays
            self.resolution = resolution
            resolutionSeconds = seconds
        }
    }

    public var maxDevices: Int
    public var maxSamples: Int
    public var retentionDays: Int
    /// Ingest requests per device per minute; nil leaves the server's default rate.
    public var ingestPerMinute: Int?
    public var downsample: [Downsample]
    /// Memory cap of the tier's tenant VMs in MiB (`script_memory_mb`); nil keeps the server's
    /// default.
    public var scriptMemoryMegabytes: Int?
    /// What the policy's `on_over_quota` answers for usage at the limits.
    public var onOverQuota: QuotaAction = .reject
    /// The range a policy may choose `script_memory_mb` from.
    public static let scriptMemoryMegabytesRange = 2...256

    public init(
        maxDevices: Int, maxSamples: Int, retentionDays: Int, ingestPerMinute: Int?, downsample: [Downsample],
        scriptMemoryMegabytes: Int? = nil
    ) {
        self.maxDevices = maxDevices
        self.maxSamples = maxSamples
        self.retentionDays = retentionDays
        self.ingestPerMinute = ingestPerMinute
        self.downsample = downsample
        self.scriptMemoryMegabytes = scriptMemoryMegabytes
    }

    /// The limits as the policy's Lua table (and so as JSON).
    public var luaValue: LuaValue {
        var fields: [String: LuaValue] = [
            "max_devices": .integer(Int64(maxDevices)), "max_samples": .integer(Int64(maxSamples)),
            "retention_days": .integer(Int64(retentionDays)),
            "downsample": .array(downsample.map { ["after_days": .integer(Int64($0.afterDays)), "resolution": .string($0.resolution)] }),
        ]
        if let scriptMemoryMegabytes { fields["script_memory_mb"] = .integer(Int64(scriptMemoryMegabytes)) }
        if let ingestPerMinute { fields["ingest_per_minute"] = .integer(Int64(ingestPerMinute)) }
        return .table(fields)
    }
}

/// What to do when a tenant is over its quota.
public enum QuotaAction: String, Sendable, Codable {
    case reject
    case dropOldest = "drop_oldest"
}

/// Runs scripts of the four hooks in one sandboxed VM, with the built-in plugins available to
/// `require`. Not thread-safe, like the VM it owns: one task at a time.
public final class ScriptRunner {
    private let vm: LuaVM
    private let catalog: PluginCatalog
    private let layouts: Layouts
    private let transformLayouts: LuaTransformLayouts
    /// Copies a sample table (`LuaVM.recordCopier(_:)`) for each rule that gets its own.
    private let sampleCopier: LuaFunction
    /// The samples of a transform run over many (`transform(_:samples:in:until:)`), reused.
    private let sampleBatch = LuaSampleBatch()
    /// `ctx` tables of the ingest hot path, per script and device; see `pushContext`.
    private var contexts: [LuaModule: CachedContexts] = [:]
    /// Devices whose `ctx` one script keeps before the cache starts over.
    public static let cachedDevicesPerScript = 256

    private struct Layouts {
        let sample: LuaRecordLayout
        let transformed: LuaRecordLayout
        let context: LuaRecordLayout
        let tenant: LuaRecordLayout
        let device: LuaRecordLayout
        let condition: LuaRecordLayout
    }

    /// One script's `ctx` tables: one per device, all sharing one `tenant` and one `config`
    /// table (so a large config is held once, not once per device).
    private final class CachedContexts {
        let scope: ScriptContext
        let tenant: LuaReference
        let config: LuaReference
        var devices: [String: CachedDevice] = [:]
        /// `now_iso` of the last call as a Lua string, reused while `now` stays (a batch).
        var nowISO: (now: Timestamp, text: LuaReference)?

        init(scope: ScriptContext, tenant: LuaReference, config: LuaReference) {
            self.scope = scope
            self.tenant = tenant
            self.config = config
        }
    }

    private final class CachedDevice {
        let context: LuaReference
        let device: LuaReference?
        let name: String?

        init(context: LuaReference, device: LuaReference?, name: String?) {
            self.context = context
            self.device = device
            self.name = name
        }
    }

    public init(catalog: PluginCatalog, limits: LuaLimits = LuaLimits()) throws {
        vm = try LuaVM(limits: limits)
        self.catalog = catalog
        for plugin in catalog.plugins.values {
            try vm.registerModule(name: plugin.name, source: plugin.source)
        }
        layouts = Layouts(
            sample: try vm.recordLayout(SampleBridge.fieldNames),
            transformed: try vm.recordLayout(SampleBridge.writableFieldNames),
            context: try vm.recordLayout(["tenant", "device", "now", "now_iso", "config"]),
            tenant: try vm.recordLayout(["id", "slug", "tier"]),
            device: try vm.recordLayout(["serial", "name"]),
            condition: try vm.recordLayout(["key", "severity", "message", "value"]))
        sampleCopier = try vm.recordCopier(SampleBridge.fieldNames)
        transformLayouts = LuaTransformLayouts(
            sample: layouts.sample, answer: layouts.transformed, context: layouts.context,
            modes: try vm.recordLayout(ThermostatMode.allCases.map(\.rawValue)),
            outputs: try vm.recordLayout(ThermostatOutput.allCases.map(\.rawValue)),
            temperature: TelemetryRules.temperatureRange, setpoint: TelemetryRules.setpointRange,
            hysteresis: TelemetryRules.hysteresisRange)
        precondition(LuaSampleBatch.timestampCapacity >= Timestamp.maximumISO8601Length, "a sample batch holds any timestamp")
    }

    /// Compiles `source`, runs its chunk and checks the returned table keeps `hook`'s contract.
    /// The script's config defaults are those of the built-in plugins the chunk `require`s, and
    /// a script whose source is a built-in plugin's (the plugin itself, or a tenant's copy of
    /// it) gets that plugin's own.
    public func load(source: String, name: String, hook: ScriptHook) throws(ScriptError) -> LoadedScript {
        let module: LuaModule
        do {
            module = try vm.load(chunk: source, name: name)
        } catch {
            throw .lua(error)
        }
        for function in hook.requiredFunctions where !vm.hasFunction(function, in: module) {
            vm.unload(module)
            throw .contract("\(hook.rawValue) scripts must return a table with a function '\(function)'")
        }
        for field in hook.requiredStrings {
            guard case .string = try? vm.field(field, of: module) else {
                vm.unload(module)
                throw .contract("\(hook.rawValue) scripts must return a table with a string '\(field)'")
            }
        }
        var functions: [String: LuaFunction] = [:]
        for function in hook.requiredFunctions {
            functions[function] = try? vm.function(function, in: module)
        }
        var defaults: [String: LuaValue] = [:]
        for required in vm.requiredByLastLoad {
            guard case .table(let pluginDefaults) = catalog.plugins[required]?.defaultConfig else { continue }
            defaults.merge(pluginDefaults) { $1 }
        }
        let plugin = catalog.plugins.values.first(where: { $0.hook == hook && $0.source == source })
        if case .table(let ownDefaults) = plugin?.defaultConfig {
            defaults.merge(ownDefaults) { $1 }
        }
        let timer = hook == .alert && (try? vm.field("timer", of: module)) == .bool(true)
        return LoadedScript(
            name: name, hook: hook, module: module, functions: functions, defaultConfig: defaults, evaluatesOnTimer: timer,
            readsSamplesOnly: hook == .alert && plugin != nil)
    }

    /// Loads a built-in plugin or tier policy.
    public func load(plugin: Plugin) throws(ScriptError) -> LoadedScript {
        try load(source: plugin.source, name: plugin.name, hook: plugin.hook)
    }

    /// Frees a script's table (and its cached `ctx` tables) in the VM.
    public func unload(_ script: LoadedScript) {
        forgetContexts(of: script.module)
        script.functions.values.forEach(vm.release)
        vm.unload(script.module)
    }

    /// Runs an ingest `transform(sample, ctx)`. This is the per-sample hot path, so the sample
    /// and the context are written to and read from the Lua stack directly.
    public func transform(_ script: LoadedScript, sample: TelemetrySample, context: ScriptContext) throws(ScriptError)
        -> IngestOutcome
    {
        try transform(try startTransformRun(script, context: context), sample: sample)
    }

    /// Starts a run of an ingest script over consecutive samples of one device with one `ctx`
    /// (a batch): the function and the device's cached `ctx` are resolved here once. Valid until
    /// the runner runs another script.
    public func startTransformRun(_ script: LoadedScript, context: ScriptContext) throws(ScriptError) -> TransformRun {
        guard let function = script.functions["transform"] else { throw .contract("not an ingest script") }
        do {
            return TransformRun(
                function: function, context: try resolveContext(context, for: script), serial: context.deviceSerial ?? "",
                name: script.name)
        } catch {
            throw .lua(error)
        }
    }

    /// One `transform(sample, ctx)` of a run.
    public func transform(_ run: TransformRun, sample: TelemetrySample) throws(ScriptError) -> IngestOutcome {
        let context = run.context
        let outcome: Result<IngestOutcome, ScriptError>
        do {
            outcome = try vm.call(
                run.function,
                arguments: { arguments throws(LuaError) in
                    SampleBridge.push(sample, layout: layouts.sample, to: arguments)
                    push(context, to: arguments)
                    return 2
                },
                results: { results throws(LuaError) in try verdict(results, original: sample, script: run.name) })
        } catch {
            throw .lua(error)
        }
        return try outcome.get()
    }

    /// What the results of one `transform` call say about `original`: nil and a reason
    /// reject it, a valid sample table replaces it.
    private func verdict(_ results: LuaResults, original: TelemetrySample, script name: String) throws(LuaError)
        -> Result<IngestOutcome, ScriptError>
    {
        if results.isNil(0) {
            let reason = try results.value(1).stringValue ?? "rejected by \(name)"
            return .success(.reject(reason))
        }
        return Result { () throws(ScriptError) in .accept(try SampleBridge.sample(results, layout: layouts.transformed, original: original)) }
    }

    /// Runs `transform(sample, ctx)` over `samples[range]`, all of the run's device, replacing
    /// each accepted sample by what the script returned, with one call into the VM instead of
    /// one per sample (`LuaVM.runTransform`): each call is made, limited and judged as
    /// `transform(_:sample:)` would. Stops at the first rejection or failure, and before a
    /// sample that would start after `deadline`.
    public func transform(
        _ run: TransformRun, samples: inout [TelemetrySample], in range: Range<Int>, until deadline: ContinuousClock.Instant
    ) -> TransformRunEnd {
        let batch = sampleBatch
        batch.reset(count: range.count)
        for (offset, index) in range.enumerated() {
            let sample = samples[index]
            precondition(sample.deviceSerial == run.serial, "a transform run covers one device's samples")
            batch.set(offset, SampleBridge.batchSample(sample), timestamp: { sample.timestamp.writeISO8601(into: $0) })
        }
        var start = 0
        while start < range.count {
            let stop: (end: LuaTransformRunEnd, verdict: Result<IngestOutcome, ScriptError>?)
            do {
                stop = try vm.runTransform(
                    run.function, batch: batch, from: start, serial: run.serial, until: deadline,
                    layouts: transformLayouts, context: { pushUnfilled(run.context, to: $0) },
                    results: { end, results throws(LuaError) in
                        guard case .answer(let index) = end else { return (end, nil) }
                        return (end, try verdict(results, original: samples[range.lowerBound + index], script: run.name))
                    })
            } catch {
                SampleBridge.takeAnswers(batch, upTo: batch.stoppedAt, from: start, into: &samples, at: range.lowerBound)
                return .failed(index: range.lowerBound + batch.stoppedAt, .lua(error))
            }
            SampleBridge.takeAnswers(batch, upTo: batch.stoppedAt, from: start, into: &samples, at: range.lowerBound)
            switch stop.end {
            case .finished:
                return .finished
            case .outOfTime(let index):
                return .outOfTime(index: range.lowerBound + index)
            case .answer(let index):
                // The runner takes what the reader accepts, so it stops only at a rejection or a
                // failure; should it leave an answer the reader accepts, the run goes on after it.
                switch stop.verdict {
                case .success(.accept(let transformed)): samples[range.lowerBound + index] = transformed
                case .success(.reject(let reason)): return .rejected(index: range.lowerBound + index, reason: reason)
                case .failure(let error): return .failed(index: range.lowerBound + index, error)
                case nil: preconditionFailure("an answer comes with its verdict")
                }
                start = index + 1
            }
        }
        return .finished
    }

    /// Pushes `ctx` for one call (an export's row; transform and alert runs resolve it once per
    /// run). Building it was most of a trivial transform's cost, so each script keeps one `ctx`
    /// table per device in the VM, sharing one `tenant` and one `config` table, and each call only
    /// rewrites the five top-level fields (so a script that reassigns `ctx.now` or `ctx.config`
    /// gets them back next time). The tables are rebuilt when the tenant or the config changes.
    /// What a script changes inside `ctx.tenant`, `ctx.device` or `ctx.config` stays, like its
    /// own module-level variables.
    private func pushContext(_ context: ScriptContext, for script: LoadedScript, to arguments: LuaArguments) throws(LuaError) {
        push(try resolveContext(context, for: script), to: arguments)
    }

    /// The cached `ctx` tables of a script and device (made on first use), for `push(_:to:)`.
    private func resolveContext(_ context: ScriptContext, for script: LoadedScript) throws(LuaError) -> ResolvedContext {
        if let existing = contexts[script.module], !existing.scope.hasSameScope(as: context) {
            forgetContexts(of: script.module)
        }
        let scripts: CachedContexts
        if let existing = contexts[script.module] {
            scripts = existing
        } else {
            scripts = try makeContexts(context, for: script)
        }
        let serial = context.deviceSerial ?? ""
        let device: CachedDevice
        if let cached = scripts.devices[serial], cached.name == context.deviceName {
            device = cached
        } else {
            device = try makeDevice(context, in: scripts)
        }
        return ResolvedContext(
            table: device.context, tenant: scripts.tenant, device: device.device, now: context.now.secondsSinceEpoch,
            nowISO: try nowISO(context.now, in: scripts), config: scripts.config)
    }

    /// Pushes the `ctx` table with its five fields rewritten.
    private func push(_ context: ResolvedContext, to arguments: LuaArguments) {
        pushUnfilled(context, to: arguments)
        arguments.fillRecord(layouts.context)
    }

    /// Pushes the `ctx` table, then the values of its five fields (`layouts.context`).
    private func pushUnfilled(_ context: ResolvedContext, to arguments: LuaArguments) {
        arguments.push(context.table)
        arguments.push(context.tenant)
        if let table = context.device { arguments.push(table) } else { arguments.pushNil() }
        arguments.push(context.now)
        arguments.push(context.nowISO)
        arguments.push(context.config)
    }

    private func nowISO(_ now: Timestamp, in scripts: CachedContexts) throws(LuaError) -> LuaReference {
        if let cached = scripts.nowISO, cached.now == now { return cached.text }
        let text = try vm.makeReference { arguments in now.withISO8601Bytes { arguments.push(utf8: $0) } }
        if let previous = scripts.nowISO { vm.release(previous.text) }
        scripts.nowISO = (now, text)
        return text
    }

    /// Builds a script's shared `tenant` and `config` tables and starts its cache.
    private func makeContexts(_ context: ScriptContext, for script: LoadedScript) throws(LuaError) -> CachedContexts {
        let tenant = try vm.makeReference { arguments throws(LuaError) in
            arguments.push(context.tenantID)
            arguments.push(context.tenantSlug)
            arguments.push(context.tier)
            arguments.makeRecord(layouts.tenant)
        }
        let config: LuaReference
        do {
            config = try vm.makeReference { arguments throws(LuaError) in try arguments.push(script.resolvedConfig(context.config)) }
        } catch {
            vm.release(tenant)
            throw error
        }
        let cache = CachedContexts(scope: context, tenant: tenant, config: config)
        contexts[script.module] = cache
        return cache
    }

    /// Builds a device's `ctx` and `ctx.device` tables; a full cache starts over first.
    private func makeDevice(_ context: ScriptContext, in scripts: CachedContexts) throws(LuaError) -> CachedDevice {
        let serial = context.deviceSerial ?? ""
        if let previous = scripts.devices.removeValue(forKey: serial) {
            release(previous)
        } else if scripts.devices.count >= Self.cachedDevicesPerScript {
            scripts.devices.values.forEach(release)
            scripts.devices.removeAll()
        }
        let table = try vm.makeReference { arguments throws(LuaError) in
            for _ in 0..<layouts.context.count { arguments.pushNil() }
            arguments.makeRecord(layouts.context)
        }
        var deviceTable: LuaReference?
        if let deviceSerial = context.deviceSerial {
            do {
                deviceTable = try vm.makeReference { arguments throws(LuaError) in
                    arguments.push(deviceSerial)
                    arguments.push(context.deviceName ?? deviceSerial)
                    arguments.makeRecord(layouts.device)
                }
            } catch {
                vm.release(table)
                throw error
            }
        }
        let device = CachedDevice(context: table, device: deviceTable, name: context.deviceName)
        scripts.devices[serial] = device
        return device
    }

    private func release(_ device: CachedDevice) {
        vm.release(device.context)
        if let table = device.device { vm.release(table) }
    }

    private func forgetContexts(of module: LuaModule) {
        guard let cached = contexts.removeValue(forKey: module) else { return }
        cached.devices.values.forEach(release)
        vm.release(cached.tenant)
        vm.release(cached.config)
        if let nowISO = cached.nowISO { vm.release(nowISO.text) }
    }

    /// Runs an alert `evaluate(sample, state, ctx)` once; returns the conditions active now and
    /// the new state: the table the script returned, or the one it was given (with whatever it
    /// changed in it) when it returned none — as a run over many samples does. A call that fails
    /// changes nothing. `timer` marks an evaluation on the platform's timer (`ctx.timer`).
    public func evaluate(
        _ script: LoadedScript, sample: TelemetrySample, state: LuaValue, context: ScriptContext, timer: Bool = false
    ) throws(ScriptError) -> (alerts: [ScriptAlert], state: LuaValue) {
        var run: AlertRun
        if timer, case .table(var fields) = ctx(context, script) {
            fields["timer"] = .bool(true)
            run = try makeAlertRun(script, state: state, context: .built(.table(fields)))
        } else {
            run = try startAlertRun(script, state: state, context: context)
        }
        let alerts: [ScriptAlert]
        do {
            alerts = try evaluate(&run, sample: sample)
        } catch {
            discard(run)
            throw error
        }
        return (alerts, try finish(run))
    }

    private func startAlertRun(_ script: LoadedScript, state: LuaValue, context: ScriptContext) throws(ScriptError) -> AlertRun {
        let resolved: ResolvedContext
        do {
            resolved = try resolveContext(context, for: script)
        } catch {
            throw .lua(error)
        }
        return try makeAlertRun(script, state: state, context: .cached(resolved))
    }

    private func makeAlertRun(_ script: LoadedScript, state: LuaValue, context: EvaluationContext) throws(ScriptError) -> AlertRun {
        guard let function = script.functions["evaluate"] else { throw .contract("not an alert script") }
        do {
            return AlertRun(
                function: function, context: context,
                state: try vm.makeReference { arguments throws(LuaError) in try arguments.push(state) })
        } catch {
            throw .lua(error)
        }
    }

    /// The state the run's calls left, converted, and freed in the VM.
    private func finish(_ run: AlertRun) throws(ScriptError) -> LuaValue {
        defer { vm.release(run.state) }
        do {
            return try vm.value(of: run.state)
        } catch {
            throw .lua(error)
        }
    }

    /// Frees a run's state unread (after a failed call).
    private func discard(_ run: AlertRun) {
        vm.release(run.state)
    }

    /// Keeps one device's samples in the VM as tables, for `evaluate(_:samples:state:context:share:)`;
    /// release them with `release(_:)`. With `shared`, every rule gets a fresh copy of each (but
    /// the built-in plugins, which only read them); without, the one rule that runs over them
    /// gets the tables themselves.
    public func deviceSamples(_ samples: some Collection<TelemetrySample>, shared: Bool) throws(ScriptError) -> DeviceSamples {
        do {
            let reference = try vm.makeReference { arguments in
                arguments.pushArray(samples) { SampleBridge.push($0, layout: layouts.sample, to: arguments) }
            }
            return DeviceSamples(reference: reference, count: samples.count, shared: shared)
        } catch {
            throw .lua(error)
        }
    }

    /// Lets a device's sample tables be collected (once no script keeps them).
    public func release(_ samples: DeviceSamples) {
        vm.release(samples.reference)
    }

    /// Runs a rule's `evaluate` over one device's samples in one call into the VM, the hot path
    /// of alert evaluation: the state carried from sample to sample, each call with the limits of
    /// a call of its own, all within `share`. Returns the steps (the conditions after each sample
    /// whose keys differ from the step before; a sample with the same keys replaces that step)
    /// and the last state. Any failure — the script's, a limit, or an answer the VM's runner
    /// leaves to this reader — throws, and the caller runs the samples one call each (the
    /// error then names the fault, or there is none).
    public func evaluate(
        _ script: LoadedScript, samples: DeviceSamples, state: LuaValue, context: ScriptContext, share: Duration
    ) throws(ScriptError) -> (steps: [[ScriptAlert]], state: LuaValue) {
        guard let function = script.functions["evaluate"] else { throw .contract("not an alert script") }
        let outcome: Result<(steps: [[ScriptAlert]], state: LuaValue), ScriptError>
        do {
            let resolved = try resolveContext(context, for: script)
            let copier = samples.shared && !script.readsSamplesOnly ? sampleCopier : nil
            outcome = try vm.runAlertRule(
                function, samples: samples.reference, copier: copier, state: state, share: share,
                context: { arguments in pushUnfilled(resolved, to: arguments) }, contextLayout: layouts.context,
                maximumKeyBytes: ScriptAlert.maximumKeyLength,
                results: { results throws(LuaError) in
                    let state = try results.value(0)
                    var steps: [[ScriptAlert]] = []
                    steps.reserveCapacity(results.count - 1)
                    for index in 1..<results.count {
                        switch Result(catching: { () throws(ScriptError) in
                            try Self.activeAlerts(results, index: index, layout: layouts.condition)
                        }) {
                        case .success(let alerts): steps.append(alerts)
                        case .failure(let error): return .failure(error)
                        }
                    }
                    return .success((steps, state))
                })
        } catch {
            throw .lua(error)
        }
        return try outcome.get()
    }

    /// One `evaluate(sample, state, ctx)` of a run, with the sample written to the stack
    /// directly. The run's state becomes the table the script returned, when it returned another
    /// one. An answer with nothing active costs no conversion. A call that fails leaves the run's
    /// state as the failed call left it: discard the run.
    private func evaluate(_ run: inout AlertRun, sample: TelemetrySample) throws(ScriptError) -> [ScriptAlert] {
        let current = run.state
        let context = run.context
        let outcome: Result<([ScriptAlert], LuaReference?), ScriptError>
        do {
            outcome = try vm.call(
                run.function,
                arguments: { arguments throws(LuaError) in
                    SampleBridge.push(sample, layout: layouts.sample, to: arguments)
                    arguments.push(current)
                    switch context {
                    case .cached(let resolved): push(resolved, to: arguments)
                    case .built(let value): try arguments.push(value)
                    }
                    return 3
                },
                results: { results throws(LuaError) in
                    var alerts: [ScriptAlert] = []
                    if !results.isEmpty(0) {
                        switch Result(catching: { () throws(ScriptError) in try Self.activeAlerts(results, index: 0, layout: layouts.condition) }) {
                        case .success(let active): alerts = active
                        case .failure(let error): return .failure(error)
                        }
                    }
                    if results.isNil(1) || results.isSame(1, as: current) { return .success((alerts, nil)) }
                    guard results.isTable(1) else { return .failure(.contract("evaluate must return the state as a table")) }
                    return .success((alerts, results.reference(1)))
                })
        } catch {
            throw .lua(error)
        }
        let (alerts, newState) = try outcome.get()
        if let newState {
            vm.release(current)
            run.state = newState
        }
        return alerts
    }

    /// Reads result `index` in place as `evaluate`'s first result: an array of
    /// `{key, severity, message, value?}`, each key once. Only those fields are read (without
    /// metamethods); an alert's other fields are ignored.
    private static func activeAlerts(_ results: LuaResults, index: Int, layout: LuaRecordLayout) throws(ScriptError) -> [ScriptAlert] {
        var alerts: [ScriptAlert] = []
        var keys: Set<String> = []
        let isArray = try results.readRecords(layout, inArray: index) { fields throws(ScriptError) in
            func string(_ field: Int) -> String? {
                fields.bytes(field).map { String(decoding: $0, as: UTF8.self) }
            }
            guard let key = string(0), !key.isEmpty else {
                throw .contract("every alert needs a key (a string naming the condition)")
            }
            guard !key.hasPrefix("#") else { throw .contract("alert keys starting with '#' are the platform's") }
            guard key.utf8.count <= ScriptAlert.maximumKeyLength || key.count <= ScriptAlert.maximumKeyLength else {
                throw .contract("an alert key is at most \(ScriptAlert.maximumKeyLength) characters")
            }
            guard keys.insert(key).inserted else { throw .contract("two alerts share the key '\(key)'") }
            guard let message = string(2) else { throw .contract("every alert needs a message") }
            let severity = fields.isNil(1) ? "warning" : string(1)
            guard severity == "warning" || severity == "critical", let severity else {
                throw .contract("alert severity must be 'warning' or 'critical'")
            }
            var number: Double?
            if !fields.isNil(3) {
                guard let value = fields.number(3), value.isFinite else { throw .contract("an alert's value must be a number") }
                number = value
            }
            let limit = ScriptAlert.maximumMessageLength
            let kept = message.utf8.count <= limit ? message : String(message.prefix(limit))
            alerts.append(ScriptAlert(key: key, severity: severity, message: kept, value: number))
        }
        guard isArray else {
            throw .contract("evaluate must return an array of the alerts active now (or nil) and the state")
        }
        return alerts
    }

    /// Runs an export: `header(ctx)`, `row(sample, ctx)` per sample, `footer(ctx)`.
    public func export(_ script: LoadedScript, samples: [TelemetrySample], context: ScriptContext) throws(ScriptError)
        -> String
    {
        try exportPiece(script, .header, context: { _ in context })
            + exportPiece(script, .rows(samples), context: { _ in context })
            + exportPiece(script, .footer, context: { _ in context })
    }

    /// One piece of an export — its header, some rows, or its footer — so that a long export runs
    /// as many calls. `context` gives the `ctx` for a row's sample (nil for header and footer);
    /// consecutive rows of one device share one `ctx` value.
    public func exportPiece(
        _ script: LoadedScript, _ piece: ExportPiece, context: (TelemetrySample?) -> ScriptContext
    ) throws(ScriptError) -> String {
        switch piece {
        case .header, .footer:
            let function = piece == .header ? "header" : "footer"
            guard vm.hasFunction(function, in: script.module) else { return "" }
            return try text(call(function, script, [ctx(context(nil), script)]), from: function)
        case .rows(let samples):
            guard let row = script.functions["row"] else { throw .contract("not an export script") }
            var output = ""
            var currentSerial: String?
            var rowContext = context(nil)
            for sample in samples {
                if sample.deviceSerial != currentSerial {
                    currentSerial = sample.deviceSerial
                    rowContext = context(sample)
                }
                output += try exportRow(row, script, sample: sample, context: rowContext)
            }
            return output
        }
    }

    /// One `row(sample, ctx)` call, with the cached `ctx` as on the ingest hot path. A raw sample
    /// goes onto the stack as one record; a rollup, whose table has a `rollup` field the record
    /// does not, as a general value.
    private func exportRow(_ row: LuaFunction, _ script: LoadedScript, sample: TelemetrySample, context: ScriptContext)
        throws(ScriptError) -> String
    {
        let result: LuaValue
        do {
            result = try vm.call(
                row,
                arguments: { arguments throws(LuaError) in
                    if sample.rollup == nil {
                        SampleBridge.push(sample, layout: layouts.sample, to: arguments)
                    } else {
                        try arguments.push(SampleBridge.value(sample))
                    }
                    try pushContext(context, for: script, to: arguments)
                    return 2
                },
                results: { results throws(LuaError) in try results.value(0) })
        } catch {
            throw .lua(error)
        }
        return try text([result], from: "row")
    }

    /// An export script's declared media type and file extension.
    public func contentType(_ script: LoadedScript) throws(ScriptError) -> (contentType: String, fileExtension: String) {
        do {
            guard let type = try vm.field("content_type", of: script.module).stringValue,
                let fileExtension = try vm.field("extension", of: script.module).stringValue
            else { throw ScriptError.contract("an export script needs content_type and extension strings") }
            return (type, fileExtension)
        } catch let error as ScriptError {
            throw error
        } catch let error as LuaError {
            throw .lua(error)
        } catch {
            throw .contract("\(error)")
        }
    }

    /// Runs a storage policy's `limits(tenant)`.
    public func limits(_ script: LoadedScript, context: ScriptContext) throws(ScriptError) -> TierLimits {
        let result = try call("limits", script, [context.tenantValue]).first ?? .nil
        func integer(_ field: String) throws(ScriptError) -> Int {
            guard let value = result[field]?.doubleValue, value >= 0, value < 1e15 else {
                throw .contract("limits must return a non-negative number '\(field)'")
            }
            return Int(value)
        }
        var downsample: [TierLimits.Downsample] = []
        if case .array(let steps) = result["downsample"] ?? .array([]) {
            for step in steps {
                guard let days = step["after_days"]?.doubleValue, let resolution = step["resolution"]?.stringValue else {
                    throw .contract("each downsample step needs after_days and resolution")
                }
                guard days.rounded() == days, (1...36_500).contains(days) else {
                    throw .contract("a downsample step's after_days must be a whole number from 1 to 36500")
                }
                guard let step = TierLimits.Downsample(afterDays: Int(days), resolution: resolution) else {
                    throw .contract(
                        "a downsample step's resolution must be one of \(TelemetryResolution.names.joined(separator: ", "))")
                }
                if let previous = downsample.last,
                    !(step.afterDays > previous.afterDays && step.resolutionSeconds > previous.resolutionSeconds)
                {
                    throw .contract("downsample steps must come in order: each later (after_days) and coarser than the one before")
                }
                downsample.append(step)
            }
        } else {
            throw .contract("downsample must be an array of steps")
        }
        var scriptMemory: Int?
        if let value = result["script_memory_mb"], value != .nil {
            let range = TierLimits.scriptMemoryMegabytesRange
            guard let megabytes = value.doubleValue, megabytes.rounded() == megabytes,
                Double(range.lowerBound)...Double(range.upperBound) ~= megabytes
            else {
                throw .contract("script_memory_mb must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            scriptMemory = Int(megabytes)
        }
        return TierLimits(
            maxDevices: try integer("max_devices"), maxSamples: try integer("max_samples"),
            retentionDays: try integer("retention_days"),
            ingestPerMinute: (result["ingest_per_minute"] ?? .nil) == .nil ? nil : try integer("ingest_per_minute"),
            downsample: downsample, scriptMemoryMegabytes: scriptMemory)
    }

    /// Runs a storage policy's `on_over_quota(usage, limits)`.
    public func onOverQuota(_ script: LoadedScript, usage: LuaValue, limits: TierLimits, context: ScriptContext)
        throws(ScriptError) -> QuotaAction
    {
        let answer = try call("on_over_quota", script, [usage, limits.luaValue]).first?.stringValue
        guard let action = answer.flatMap(QuotaAction.init(rawValue:)) else {
            throw .contract("on_over_quota must return \"reject\" or \"drop_oldest\"")
        }
        return action
    }

    /// Bytes the runner's VM currently holds.
    public var memoryInUse: Int { vm.memoryInUse }

    /// Runs a full garbage collection of the runner's VM now.
    public func collectGarbage() {
        vm.collectGarbage()
    }

    /// The scripts' `print` output since the last drain.
    public func drainLog() -> [String] {
        vm.drainLog()
    }

    /// `ctx` as a value, with the script's config over its defaults.
    private func ctx(_ context: ScriptContext, _ script: LoadedScript) -> LuaValue {
        var context = context
        context.config = script.resolvedConfig(context.config)
        return context.luaValue
    }

    private func call(_ function: String, _ script: LoadedScript, _ arguments: [LuaValue]) throws(ScriptError) -> [LuaValue] {
        do {
            return try vm.call(function, in: script.module, arguments)
        } catch {
            throw .lua(error)
        }
    }

    private func text(_ results: [LuaValue], from function: String) throws(ScriptError) -> String {
        switch results.first ?? .nil {
        case .nil: return ""
        case .string(let text): return text
        default: throw .contract("\(function) must return a string (or nil)")
        }
    }
}

/// A piece of an export (see `ScriptRunner.exportPiece`).
public enum ExportPiece: Sendable, Equatable {
    case header
    case rows([TelemetrySample])
    case footer
}

/// An ingest script's `transform` bound to one device and `ctx` for a run over consecutive
/// samples; see `ScriptRunner.startTransformRun(_:context:)`.
public struct TransformRun {
    fileprivate let function: LuaFunction
    fileprivate let context: ResolvedContext
    fileprivate let serial: String
    fileprivate let name: String
}

/// How `ScriptRunner.transform(_:samples:in:until:)` ended; indexes are the samples'.
public enum TransformRunEnd {
    /// Every sample was accepted (and replaced by its transformed version).
    case finished
    /// The script rejected sample `index`.
    case rejected(index: Int, reason: String)
    /// Sample `index`'s call failed.
    case failed(index: Int, ScriptError)
    /// The time ran out before sample `index` started.
    case outOfTime(index: Int)
}

/// One device's samples kept in a VM as tables (`ScriptRunner.deviceSamples(_:shared:)`), built once
/// for all the rules that evaluate them.
public final class DeviceSamples {
    fileprivate let reference: LuaReference
    /// How many samples there are.
    public let count: Int
    /// Whether several rules run over the tables (each call then gets a copy).
    fileprivate let shared: Bool

    fileprivate init(reference: LuaReference, count: Int, shared: Bool) {
        self.reference = reference
        self.count = count
        self.shared = shared
    }
}

/// A rule's `evaluate` bound to one device, the state kept in the VM between calls.
private struct AlertRun {
    let function: LuaFunction
    let context: EvaluationContext
    var state: LuaReference
}

/// The `ctx` of an alert evaluation: a device's cached tables, or a table built for one call
/// (the timer's, with `ctx.timer`).
private enum EvaluationContext {
    case cached(ResolvedContext)
    case built(LuaValue)
}

/// A script's cached `ctx` table for one device and the values its five fields are rewritten
/// with on every call.
private struct ResolvedContext {
    let table: LuaReference
    let tenant: LuaReference
    let device: LuaReference?
    let now: Double
    let nowISO: LuaReference
    let config: LuaReference
}
