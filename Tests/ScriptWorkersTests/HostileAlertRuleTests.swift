import Foundation
import PlatformCore
import ScriptWorkers
import Scripting
import Testing

/// Hostile alert rules in one evaluation job: each fails alone with a clear reason, leaves its
/// stored state as it was, and the well-behaved rule of the same job still answers.
@Suite struct HostileAlertRuleTests {
    static let tenant = WorkerTenant(id: UUID(), slug: "acme", tier: "free", memoryBytes: 16 * 1024 * 1024)
    static let start = Timestamp(iso8601: "2026-12-01T08:00:00Z")!

    static func rule(_ name: String, _ source: String) -> EvaluateJob.Rule {
        EvaluateJob.Rule(
            script: WorkerScript(id: UUID(), version: 1, name: name, configJSON: "{}", source: source), states: [#"{"n":1}"#])
    }

    static let hostile: [(String, String, String)] = [
        ("spin", "return { evaluate = function() while true do end end }", "instruction"),
        ("cycle", "return { evaluate = function(s, state) state.me = state return {}, state end }", "cycle"),
        ("bloat", "return { evaluate = function(s, state) state.big = string.rep('x', 70000) return {}, state end }", "KiB"),
        ("keyless", "return { evaluate = function() return { { message = 'no key' } } end }", "key"),
        ("platform-key", "return { evaluate = function() return { { key = '#no_data', message = 'mine' } } end }", "'#'"),
        ("function-state", "return { evaluate = function(s, state) return {}, { f = print } end }", "function"),
        // Answers the VM's runner leaves to the worker's reader, which names the fault.
        ("hidden-key", "return { evaluate = function() return { setmetatable({ message = 'm' }, { __index = { key = 'k' } }) } end }", "key"),
        (
            "many-one-bad",
            "return { evaluate = function() local a = {} for i = 1, 20 do a[i] = { key = 'k' .. i, message = 'm' } end "
                + "a[20].message = nil return a end }", "message"
        ),
        ("caught-budget", "return { evaluate = function() pcall(function() while true do end end) return {}, {} end }", "instruction"),
        ("yield", "return { evaluate = function() coroutine.yield() return {}, {} end }", "yield"),
    ]

    @Test func eachHostileRuleFailsAloneAndItsNeighbourAnswers() throws {
        let worker = LuaWorker(catalog: PluginCatalog())
        let samples = (0..<3).map {
            TelemetrySample(
                deviceSerial: "TH-1", timestamp: Self.start.adding(seconds: Double($0) * 60), mode: .heat, tempInside: 30,
                tempOutside: nil, setpoint: 21, hysteresis: 0.5, output: .heatOn)
        }
        let good = Self.rule(
            "good",
            "return { evaluate = function(s, state) state.n = state.n + 1 "
                + "return { { key = 'hot', message = 'hot ' .. state.n } }, state end }")
        for (name, source, reason) in Self.hostile {
            let job = EvaluateJob(
                tenant: Self.tenant, now: Self.start, timer: false, budgetMilliseconds: 2000,
                devices: [EvaluateJob.Device(serial: "TH-1", name: "Hall", sampleCount: samples.count)],
                rules: [Self.rule(name, source), good], samples: samples)
            guard case .job(.evaluated(let answers)) = worker.handle(.evaluate(job)), answers.count == 2 else {
                Issue.record("\(name): no evaluation answer")
                continue
            }
            guard case .evaluated(let hostileDevices) = answers[0], let verdict = hostileDevices.first ?? nil else {
                Issue.record("\(name): \(answers[0])")
                continue
            }
            #expect(verdict.failure?.contains(reason) == true, "\(name): \(verdict.failure ?? "no failure")")
            #expect(verdict.steps.isEmpty && verdict.stateJSON == #"{"n":1}"#, "\(name): nothing applied, the stored state stays")
            guard case .evaluated(let goodDevices) = answers[1], let goodVerdict = goodDevices.first ?? nil else {
                Issue.record("\(name): the neighbour did not answer")
                continue
            }
            #expect(
                goodVerdict.failure == nil && goodVerdict.stateJSON == #"{"n":4}"#
                    && goodVerdict.steps.map { $0.map(\.message) } == [["hot 4"]],
                "\(name): the neighbour ran every sample")
        }
    }

    /// The built-in plugins read the kept sample tables themselves (no copies). A tenant rule
    /// that wraps the globals a plugin could call, so that any table handed to them is changed,
    /// still cannot reach those tables: the plugins hand them to no global, and the tenant's own
    /// rules get copies.
    @Test func aRuleWrappingTheGlobalsCannotChangeTheSamplesAPluginReads() throws {
        let root = LuaWorkerPoolTests.repositoryRoot
        let catalog = try PluginCatalog.load(
            pluginsDirectory: root.appendingPathComponent("Plugins"), policiesDirectory: root.appendingPathComponent("Policies"))
        let samples = [20.0, 21, 26, 22].enumerated().map { index, inside in
            TelemetrySample(
                deviceSerial: "TH-1", timestamp: Self.start.adding(seconds: Double(index) * 60), mode: .heat, tempInside: inside,
                tempOutside: -2.5, setpoint: 21, hysteresis: 0.5, output: .heatOn)
        }
        let wrapper = """
            local select, type, pcall = select, type, pcall
            local function spoil(...)
              for i = 1, select('#', ...) do
                local value = select(i, ...)
                if type(value) == 'table' then pcall(function() value.temp_inside_c = 99 end) end
              end
            end
            local function wrap(library, name)
              local original = library[name]
              if type(original) ~= 'function' then return end
              pcall(function() library[name] = function(...) spoil(...) return original(...) end end)
            end
            local wrapped = false
            return { evaluate = function(sample, state)
              if not wrapped then
                wrapped = true
                for _, name in ipairs({ 'type', 'tostring', 'tonumber', 'pairs', 'ipairs', 'next', 'rawget', 'select', 'pcall', 'error' }) do
                  wrap(_G, name)
                end
                for _, library in ipairs({ string, math, table }) do
                  for name in pairs(library) do wrap(library, name) end
                end
              end
              spoil(sample)
              return {}, state
            end }
            """
        let threshold = try #require(catalog.plugins["threshold"]?.source)
        let config = #"{"field":"temp_inside_c","high_c":25,"low_c":false,"hysteresis_c":0.5}"#
        let rules = [(wrapper, "{}"), (threshold, config), (wrapper, "{}"), (threshold, config)].enumerated().map { index, rule in
            EvaluateJob.Rule(
                script: WorkerScript(id: UUID(), version: 1, name: "rule\(index)", configJSON: rule.1, source: rule.0), states: ["{}"])
        }
        let job = EvaluateJob(
            tenant: Self.tenant, now: Self.start, timer: false, budgetMilliseconds: 2000,
            devices: [EvaluateJob.Device(serial: "TH-1", name: "Hall", sampleCount: samples.count)], rules: rules, samples: samples)
        guard case .job(.evaluated(let answers)) = LuaWorker(catalog: catalog).handle(.evaluate(job)), answers.count == rules.count else {
            Issue.record("no evaluation answer")
            return
        }
        for index in [1, 3] {
            guard case .evaluated(let devices) = answers[index], let verdict = devices.first ?? nil else {
                Issue.record("threshold \(index) did not evaluate: \(answers[index])")
                continue
            }
            #expect(verdict.failure == nil, "\(verdict.failure ?? "")")
            #expect(verdict.steps.map { $0.map(\.value) } == [[], [26], []], "threshold \(index) read the sent temperatures")
        }
    }
}
