import Foundation
import Logging
import PlatformCore
import ScriptWorkers
import Scripting

/// `thermostat script check`: compiles a script, checks its hook's contract and optionally runs
/// it on one sample, the way the server would — in a Lua worker process under the same hard
/// deadline, so a runaway script cannot hang the command either — printing results, logs and
/// errors.
public struct ScriptCheck: Sendable {
    public var source: String
    public var name: String
    public var hook: String
    public var sampleJSON: String?
    public var configJSON: String?
    public var workers: LuaWorkerPool.Configuration

    public init(
        source: String, name: String, hook: String, sampleJSON: String?, configJSON: String?, workers: LuaWorkerPool.Configuration
    ) {
        self.source = source
        self.name = name
        self.hook = hook
        self.sampleJSON = sampleJSON
        self.configJSON = configJSON
        self.workers = workers
    }

    /// Runs the check; returns the report lines and whether everything passed. With a sample
    /// (always, for a storage policy) the script is dry-run exactly as the dry-run API runs it.
    public func run() async -> (lines: [String], passed: Bool) {
        guard let hook = ScriptHook(rawValue: hook) else {
            return (["error: --hook must be one of ingest, alert, export, storage_policy"], false)
        }
        var configuration = workers
        configuration.size = 1
        let pool = LuaWorkerPool(configuration: configuration, logger: Logger(label: "thermostat.script-check"))
        do {
            if let configJSON { _ = try JSONDecoder().decode(JSONValue.self, from: Data(configJSON.utf8)) }
            let now = Timestamp(Date())
            // An ingest script may convert units, so its input is range-checked only after it ran.
            let samples = try sampleJSON.map {
                [try IngestPayload.decodeTrialSample(Array($0.utf8), now: now, checksRanges: hook != .ingest)]
            }
            let tenant = WorkerTenant(id: UUID(uuidString: "00000000-0000-0000-0000-000000000000")!, slug: "local", tier: "free", memoryBytes: 16 * 1024 * 1024)
            let job = DryRunJob(
                source: source, name: name, hook: hook, configJSON: configJSON ?? "{}", tenant: tenant, now: now,
                samples: samples ?? [])
            let report: DryRunReport
            do {
                switch try await pool.call(.job(.dryRun(job)), tenant: tenant.id) {
                case .job(.report(let answer)): report = answer
                case .job(.failed(let message)): report = DryRunReport(results: [], logs: [], errors: [message])
                default: report = DryRunReport(results: [], logs: [], errors: ["the worker answered another request"])
                }
            } catch let error as WorkerCallError {
                report = DryRunReport(results: [], logs: [], errors: [error.description])
            }
            await pool.shutdown()
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
