import LuaSandbox
import PlatformCore

/// What trying a script on samples produced: one result per sample (one in all for an export
/// or a storage policy), the script's log and the errors that ended the run. The dry-run API
/// answers with it and `thermostat script check` prints it.
public struct DryRunReport: Sendable, Equatable, Codable {
    public var results: [JSONValue]
    public var logs: [String]
    public var errors: [String]

    public init(results: [JSONValue], logs: [String], errors: [String]) {
        self.results = results
        self.logs = logs
        self.errors = errors
    }
}

extension ScriptRunner {
    /// Loads `source` and runs it on `samples` the way its hook runs in the product, changing
    /// nothing: an ingest script transforms each sample, an alert rule carries its state from
    /// sample to sample starting empty, an export renders all of them in one output, a storage
    /// policy reports its limits. `context` gives the `ctx` for a sample (nil for a policy). A
    /// load failure or the first failing call ends the run and is reported in `errors`.
    public func dryRun(
        source: String, name: String, hook: ScriptHook, samples: [TelemetrySample],
        context: (TelemetrySample?) -> ScriptContext
    ) -> DryRunReport {
        var results: [JSONValue] = []
        var errors: [String] = []
        do {
            let script = try load(source: source, name: name, hook: hook)
            switch hook {
            case .ingest:
                for sample in samples {
                    switch try transform(script, sample: sample, context: context(sample)) {
                    case .accept(let output):
                        results.append(.object(["outcome": .string("accepted"), "sample": SampleBridge.value(output).jsonValue]))
                    case .reject(let reason):
                        results.append(.object(["outcome": .string("rejected"), "reason": .string(reason)]))
                    }
                }
            case .alert:
                var state: LuaValue = .table([:])
                for sample in samples {
                    let (alerts, newState) = try evaluate(script, sample: sample, state: state, context: context(sample))
                    state = newState
                    let alertValues: [JSONValue] = alerts.map {
                        .object(["severity": .string($0.severity), "message": .string($0.message), "key": .string($0.key)])
                    }
                    results.append(
                        .object(["timestamp": .string(sample.timestamp.iso8601), "alerts": .array(alertValues), "state": state.jsonValue]))
                }
            case .export:
                results.append(.object(["output": .string(try export(script, samples: samples, context: context(samples.first)))]))
            case .storagePolicy:
                results.append(try limits(script, context: context(nil)).luaValue.jsonValue)
            }
        } catch {
            errors.append(error.description)
        }
        return DryRunReport(results: results, logs: drainLog(), errors: errors)
    }
}
