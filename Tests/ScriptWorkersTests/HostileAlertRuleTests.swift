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
        let catalog = try PluginRuleJob.catalog()
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
        let threshold = try PluginRuleJob.threshold(in: catalog)
        let config = PluginRuleJob.thresholdConfig
        let rules = [(wrapper, "{}"), (threshold, config), (wrapper, "{}"), (threshold, config)]
        guard let answers = PluginRuleJob.evaluate(rules.map { (source: $0.0, config: $0.1) }, catalog: catalog) else { return }
        PluginRuleJob.expectThresholdsReadTheSentTemperatures(answers, at: [1, 3])
    }

    /// A kept sample table reaches the rules that get copies only through the copier, which
    /// indexes it plainly. Were a plugin changed to put a metatable on its sample, as this
    /// stand-in does, the copier would run that metatable's `__index` for every absent field,
    /// outside every limit, and hand its answer on. The runner refuses such a table instead, and
    /// the rules after it get tables made afresh.
    @Test func aMetatableOnAKeptSampleNeverRunsWhileItIsCopied() throws {
        let meddler = """
            return { evaluate = function(sample, state)
              setmetatable(sample, { __index = function() return 99 end })
              return {}, state
            end }
            """
        let standIn = Plugin(
            name: "meddler", hook: .alert, version: "1.0.0", description: "sets a metatable on its sample", defaultConfig: [:],
            source: meddler)
        let catalog = try PluginRuleJob.catalog(adding: [standIn])
        let observer = """
            return { evaluate = function(sample, state)
              local clean = sample.temp_outside_c == nil and rawget(sample, 'temp_outside_c') == nil and getmetatable(sample) == nil
              return { { key = clean and 'clean' or 'meddled', message = 'seen' } }, state
            end }
            """
        guard let answers = PluginRuleJob.evaluate([(source: meddler, config: "{}"), (source: observer, config: "{}")], catalog: catalog),
            let verdict = PluginRuleJob.verdict(answers[1], of: "the observer")
        else { return }
        #expect(verdict.failure == nil, "\(verdict.failure ?? "")")
        #expect(verdict.steps.flatMap { $0.map(\.key) } == ["clean"])
    }
}
