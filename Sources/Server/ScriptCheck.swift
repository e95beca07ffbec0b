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
    public var catalog: PluginCatalog

    public init(source: String, name: String, hook: String, sampleJSON: String?, configJSON: String?, catalog: PluginCatalog) {
        self.source = source
        self.name = name
        self.hook = hook
        self.sampleJSON = sampleJSON
        self.configJSON = configJSON
        self.catalog = catalog
    }

    /// Runs the check; returns the report lines and whether everything passed. With a sample
    /// (always, for a storage policy) the script is dry-run exactly as the dry-run API runs it.
    public func run() -> (lines: [String], passed: Bool) {
        guard let hook = ScriptHook(rawValue: hook) else {
            return (["error: --hook must be one of ingest, alert, export, storage_policy"], false)
        }
        do {
            let config = try configJSON.map { try LuaValue(jsonText: $0) } ?? .table([:])
            let now = Timestamp(Date())
            // An ingest script may convert units, so its input is range-checked only after it ran.
            let samples = try sampleJSON.map {
                [try IngestPayload.decodeTrialSample(Array($0.utf8), now: now, checksRanges: hook != .ingest)]
            }
            let report = try ScriptRunner(catalog: catalog).dryRun(
                source: source, name: name, hook: hook, samples: samples ?? []
            ) { sample in
                ScriptContext(
                    tenantID: "00000000-0000-0000-0000-000000000000", tenantSlug: "local", tier: "free",
                    deviceSerial: sample?.deviceSerial, deviceName: sample?.deviceSerial, now: now, config: config)
            }
            var lines = report.errors.isEmpty ? ["ok: \(name) compiles and keeps the \(hook.rawValue) contract"] : []
            if samples != nil || hook == .storagePolicy {
                lines += report.results.map { "result: \($0.luaValue.jsonText)" }
            }
            lines += report.logs.map { "log: \($0)" }
            lines += report.errors.map { "error: \($0)" }
            return (lines, report.errors.isEmpty)
        } catch {
            return (["error: \(error)"], false)
        }
    }
}
