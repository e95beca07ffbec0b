import Foundation
import PlatformCore
import ScriptWorkers
import Scripting
import Testing

/// One device's samples (20, 21, 26 and 22 °C inside, no outdoor reading) through an
/// evaluation job of the given rules: the fixture of the tests about rules that run beside the
/// built-in plugins, which read the kept sample tables themselves.
enum PluginRuleJob {
    static let thresholdConfig = #"{"field":"temp_inside_c","high_c":25,"low_c":false,"hysteresis_c":0.5}"#
    static let start = Timestamp(iso8601: "2026-12-01T08:00:00Z")!
    static let samples = [20.0, 21, 26, 22].enumerated().map { index, inside in
        TelemetrySample(
            deviceSerial: "TH-1", timestamp: start.adding(seconds: Double(index) * 60), mode: .heat, tempInside: inside,
            tempOutside: nil, setpoint: 21, hysteresis: 0.5, output: .heatOn)
    }

    /// The repository's plugins, and `extra` beside them.
    static func catalog(adding extra: [Plugin] = []) throws -> PluginCatalog {
        let root = LuaWorkerPoolTests.repositoryRoot
        var catalog = try PluginCatalog.load(
            pluginsDirectory: root.appendingPathComponent("Plugins"), policiesDirectory: root.appendingPathComponent("Policies"))
        for plugin in extra { catalog.plugins[plugin.name] = plugin }
        return catalog
    }

    static func threshold(in catalog: PluginCatalog) throws -> String {
        try #require(catalog.plugins["threshold"]?.source)
    }

    /// The rules' answers (one per rule), or nil after recording that the worker gave none.
    static func evaluate(_ rules: [(source: String, config: String)], catalog: PluginCatalog) -> [RuleEvaluation]? {
        let job = EvaluateJob(
            tenant: WorkerTenant(id: UUID(), slug: "acme", tier: "free", memoryBytes: 16 * 1024 * 1024), now: start, timer: false,
            budgetMilliseconds: 2000, devices: [EvaluateJob.Device(serial: "TH-1", name: "Hall", sampleCount: samples.count)],
            rules: rules.enumerated().map { index, rule in
                EvaluateJob.Rule(
                    script: WorkerScript(id: UUID(), version: 1, name: "rule\(index)", configJSON: rule.config, source: rule.source),
                    states: ["{}"])
            },
            samples: samples)
        guard case .job(.evaluated(let answers)) = LuaWorker(catalog: catalog).handle(.evaluate(job)), answers.count == rules.count
        else {
            Issue.record("no evaluation answer")
            return nil
        }
        return answers
    }

    /// The device's verdict in `answer`, or nil after recording that `rule` gave none.
    static func verdict(_ answer: RuleEvaluation, of rule: String) -> DeviceEvaluation? {
        guard case .evaluated(let devices) = answer, let verdict = devices.first ?? nil else {
            Issue.record("\(rule) did not evaluate: \(answer)")
            return nil
        }
        return verdict
    }

    /// The threshold rules at `indices` (`thresholdConfig`) saw the temperatures as sent: one
    /// alert, for the 26 °C sample.
    static func expectThresholdsReadTheSentTemperatures(_ answers: [RuleEvaluation], at indices: [Int]) {
        for index in indices {
            guard let verdict = verdict(answers[index], of: "threshold \(index)") else { continue }
            #expect(verdict.failure == nil, "\(verdict.failure ?? "")")
            #expect(verdict.steps.map { $0.map(\.value) } == [[], [26], []], "threshold \(index) read the sent temperatures")
        }
    }
}
