import Foundation
import LuaSandbox
import PlatformCore
import Scripting

/// `thermostat script check`: compiles a script, checks its hook's contract and optionally runs
/// it on one sample, the way the server would, printing results, logs and errors.
public struct ScriptCheck: Sendable {
    public var source: String
    public var name: String
    public var hook: String
    public var sampleJSON: String?
    public var configJSON: String?
    public var pluginsDirectory: URL
    public var policiesDirectory: URL

    public init(
        source: String, name: String, hook: String, sampleJSON: String?, configJSON: String?, pluginsDirectory: URL,
        policiesDirectory: URL
    ) {
        self.source = source
        self.name = name
        self.hook = hook
        self.sampleJSON = sampleJSON
        self.configJSON = configJSON
        self.pluginsDirectory = pluginsDirectory
        self.policiesDirectory = policiesDirectory
    }

    /// Runs the check; returns the report lines and whether everything passed.
    public func run() -> (lines: [String], passed: Bool) {
        var lines: [String] = []
        do {
            guard let hook = ScriptHook(rawValue: hook) else {
                return (["error: --hook must be one of ingest, alert, export, storage_policy"], false)
            }
            let catalog = try PluginCatalog.load(pluginsDirectory: pluginsDirectory, policiesDirectory: policiesDirectory)
            let runner = try ScriptRunner(catalog: catalog)
            let script = try runner.load(source: source, name: name, hook: hook)
            lines.append("ok: \(name) compiles and keeps the \(hook.rawValue) contract")
            let config = try configJSON.map { try LuaValue(jsonText: $0) } ?? .table([:])
            if let sampleJSON {
                let now = Timestamp(Date())
                let serial = try Self.serial(in: sampleJSON)
                let sample = try IngestPayload.decode(Array(sampleJSON.utf8), serial: serial, now: now).samples[0]
                let context = ScriptContext(
                    tenantID: "00000000-0000-0000-0000-000000000000", tenantSlug: "local", tier: "free",
                    deviceSerial: sample.deviceSerial, deviceName: sample.deviceSerial, now: now, config: config)
                lines += try Self.exercise(runner, script, sample: sample, context: context)
            }
            lines += runner.drainLog().map { "log: \($0)" }
            return (lines, true)
        } catch {
            lines.append("error: \(error)")
            return (lines, false)
        }
    }

    private static func serial(in sampleJSON: String) throws -> String {
        guard let object = try JSONSerialization.jsonObject(with: Data(sampleJSON.utf8)) as? [String: Any],
            let serial = object["device_id"] as? String
        else { throw PlatformError.invalid("sample", "must be one sample object with a device_id") }
        return serial
    }

    private static func exercise(_ runner: ScriptRunner, _ script: LoadedScript, sample: TelemetrySample, context: ScriptContext)
        throws -> [String]
    {
        switch script.hook {
        case .ingest:
            switch try runner.transform(script, sample: sample, context: context) {
            case .accept(let transformed):
                return ["result: accepted \(SampleBridge.value(transformed).jsonText)"]
            case .reject(let reason):
                return ["result: rejected: \(reason)"]
            }
        case .alert:
            let (alerts, state) = try runner.evaluate(script, sample: sample, state: .table([:]), context: context)
            return alerts.map { "alert: [\($0.severity)] \($0.message) (key \($0.key))" } + ["state: \(state.jsonText)"]
        case .export:
            let (type, fileExtension) = try runner.contentType(script)
            let output = try runner.export(script, samples: [sample], context: context)
            return ["content type: \(type), extension: .\(fileExtension)", "output:", output]
        case .storagePolicy:
            let limits = try runner.limits(script, context: context)
            let action = try runner.onOverQuota(
                script, usage: ["devices": .integer(Int64(limits.maxDevices) + 1), "samples": .integer(Int64(limits.maxSamples) + 1)],
                limits: limits, context: context)
            return ["limits: \(limits)", "over quota: \(action.rawValue)"]
        }
    }
}
