import LuaSandbox
import PlatformCore

/// A script loaded into a runner's VM and checked against its hook's contract.
public struct LoadedScript: Sendable, Hashable {
    public let name: String
    public let hook: ScriptHook
    let module: LuaModule
    /// The hook's required functions, resolved once for the hot path.
    let functions: [String: LuaFunction]
}

/// What an ingest transform decided about a sample.
public enum IngestOutcome: Sendable, Equatable {
    case accept(TelemetrySample)
    case reject(String)
}

/// One alert an alert script raised.
public struct ScriptAlert: Sendable, Equatable {
    public var severity: String
    public var message: String
    public var key: String

    public init(severity: String, message: String, key: String) {
        self.severity = severity
        self.message = message
        self.key = key
    }
}

/// What a tier's storage policy allows.
public struct TierLimits: Sendable, Equatable {
    /// Older data is kept at a coarser resolution.
    public struct Downsample: Sendable, Equatable {
        public var afterDays: Int
        public var resolution: String

        public init(afterDays: Int, resolution: String) {
            self.afterDays = afterDays
            self.resolution = resolution
        }
    }

    public var maxDevices: Int
    public var maxSamples: Int
    public var retentionDays: Int
    public var ingestPerMinute: Int
    public var downsample: [Downsample]

    public init(maxDevices: Int, maxSamples: Int, retentionDays: Int, ingestPerMinute: Int, downsample: [Downsample]) {
        self.maxDevices = maxDevices
        self.maxSamples = maxSamples
        self.retentionDays = retentionDays
        self.ingestPerMinute = ingestPerMinute
        self.downsample = downsample
    }

    var luaValue: LuaValue {
        [
            "max_devices": .integer(Int64(maxDevices)), "max_samples": .integer(Int64(maxSamples)),
            "retention_days": .integer(Int64(retentionDays)), "ingest_per_minute": .integer(Int64(ingestPerMinute)),
            "downsample": .array(downsample.map { ["after_days": .integer(Int64($0.afterDays)), "resolution": .string($0.resolution)] }),
        ]
    }
}

/// What to do when a tenant is over its quota.
public enum QuotaAction: String, Sendable {
    case reject
    case dropOldest = "drop_oldest"
}

/// Runs scripts of the four hooks in one sandboxed VM, with the built-in plugins available to
/// `require`. Not thread-safe, like the VM it owns: one task at a time.
public final class ScriptRunner {
    private let vm: LuaVM

    public init(catalog: PluginCatalog, limits: LuaLimits = LuaLimits()) throws {
        vm = try LuaVM(limits: limits)
        for plugin in catalog.plugins.values {
            try vm.registerModule(name: plugin.name, source: plugin.source)
        }
    }

    /// Compiles `source`, runs its chunk and checks the returned table keeps `hook`'s contract.
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
        return LoadedScript(name: name, hook: hook, module: module, functions: functions)
    }

    public func load(plugin: Plugin) throws(ScriptError) -> LoadedScript {
        try load(source: plugin.source, name: plugin.name, hook: plugin.hook)
    }

    /// Frees a script's table in the VM.
    public func unload(_ script: LoadedScript) {
        vm.unload(script.module)
    }

    /// Runs an ingest `transform(sample, ctx)`. This is the per-sample hot path, so the sample
    /// and the context are written to and read from the Lua stack directly.
    public func transform(_ script: LoadedScript, sample: TelemetrySample, context: ScriptContext) throws(ScriptError)
        -> IngestOutcome
    {
        guard let function = script.functions["transform"] else { throw .contract("not an ingest script") }
        let outcome: Result<IngestOutcome, ScriptError>
        do {
            outcome = try vm.call(
                function,
                arguments: { arguments throws(LuaError) in
                    SampleBridge.push(sample, to: arguments)
                    try context.push(to: arguments)
                    return 2
                },
                results: { results throws(LuaError) in
                    if results.isNil(0) {
                        let reason = try results.value(1).stringValue ?? "rejected by \(script.name)"
                        return .success(.reject(reason))
                    }
                    return Result { () throws(ScriptError) in .accept(try SampleBridge.sample(results, original: sample)) }
                })
        } catch {
            throw .lua(error)
        }
        return try outcome.get()
    }

    /// Runs an alert `evaluate(sample, state, ctx)`; returns the alerts and the new state.
    public func evaluate(_ script: LoadedScript, sample: TelemetrySample, state: LuaValue, context: ScriptContext)
        throws(ScriptError) -> (alerts: [ScriptAlert], state: LuaValue)
    {
        let results = try call("evaluate", script, [SampleBridge.value(sample), state, context.luaValue])
        var alerts: [ScriptAlert] = []
        switch results.first ?? .nil {
        case .nil: break
        case .array(let items):
            for item in items {
                guard let message = item["message"]?.stringValue else {
                    throw .contract("every alert needs a message")
                }
                let severity = item["severity"]?.stringValue ?? "warning"
                guard severity == "warning" || severity == "critical" else {
                    throw .contract("alert severity must be 'warning' or 'critical'")
                }
                alerts.append(ScriptAlert(severity: severity, message: message, key: item["key"]?.stringValue ?? message))
            }
        default:
            throw .contract("evaluate must return an array of alerts (or nil) and the new state")
        }
        let newState = results.count > 1 ? results[1] : state
        return (alerts, newState)
    }

    /// Runs an export: `header(ctx)`, `row(sample, ctx)` per sample, `footer(ctx)`.
    public func export(_ script: LoadedScript, samples: [TelemetrySample], context: ScriptContext) throws(ScriptError)
        -> String
    {
        let ctx = context.luaValue
        var output = ""
        if vm.hasFunction("header", in: script.module) {
            output += try text(call("header", script, [ctx]), from: "header")
        }
        for sample in samples {
            output += try text(call("row", script, [SampleBridge.value(sample), ctx]), from: "row")
        }
        if vm.hasFunction("footer", in: script.module) {
            output += try text(call("footer", script, [ctx]), from: "footer")
        }
        return output
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
                downsample.append(.init(afterDays: Int(days), resolution: resolution))
            }
        } else {
            throw .contract("downsample must be an array of steps")
        }
        return TierLimits(
            maxDevices: try integer("max_devices"), maxSamples: try integer("max_samples"),
            retentionDays: try integer("retention_days"), ingestPerMinute: try integer("ingest_per_minute"),
            downsample: downsample)
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

    /// The scripts' `print` output since the last drain.
    public func drainLog() -> [String] {
        vm.drainLog()
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
