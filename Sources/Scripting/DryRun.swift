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
    /// sample to sample starting empty and reports, per sample, the conditions active and which
    /// keys started and resolved, an export renders all of them in one output, a storage
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
                var previous: Set<String> = []
                for sample in samples {
                    let (alerts, newState) = try evaluate(script, sample: sample, state: state, context: context(sample))
                    state = newState
                    let keys = alerts.map(\.key)
                    let active: [JSONValue] = alerts.map { alert in
                        var fields: [String: JSONValue] = [
                            "key": .string(alert.key), "severity": .string(alert.severity), "message": .string(alert.message),
                        ]
                        if let value = alert.value { fields["value"] = .number(value) }
                        return .object(fields)
                    }
                    results.append(
                        .object([
                            "timestamp": .string(sample.timestamp.iso8601), "active": .array(active),
                            "started": .array(keys.filter { !previous.contains($0) }.map(JSONValue.string)),
                            "resolved": .array(previous.subtracting(keys).sorted().map(JSONValue.string)),
                            "state": state.jsonValue,
                        ]))
                    previous = Set(keys)
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
