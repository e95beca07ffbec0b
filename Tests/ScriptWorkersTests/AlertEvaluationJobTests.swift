import Foundation
import PlatformCore
import ScriptWorkers
import Scripting
import Testing

/// What a worker answers for a well-behaved rule: one step per change of the active keys.
@Suite struct AlertEvaluationJobTests {
    @Test func samplesReportingTheSameKeysMakeOneStepWithTheLatestValues() throws {
        let worker = LuaWorker(catalog: PluginCatalog())
        let start = Timestamp(iso8601: "2026-12-01T08:00:00Z")!
        let readings: [Double] = [30, 31, 20, 20, 32, 33, 34]
        let samples = readings.enumerated().map { index, reading in
            TelemetrySample(
                deviceSerial: "TH-1", timestamp: start.adding(seconds: Double(index) * 60), mode: .heat, tempInside: reading,
                tempOutside: nil, setpoint: 21, hysteresis: 0.5, output: .heatOn)
        }
        let source = """
            return { evaluate = function(sample, state)
              state.seen = (state.seen or 0) + 1
              if sample.temp_inside_c > 25 then
                return { { key = 'hot', message = 'hot at ' .. sample.temp_inside_c, value = sample.temp_inside_c } }, state
              end
              return {}, state
            end }
            """
        let job = EvaluateJob(
            tenant: WorkerTenant(id: UUID(), slug: "acme", tier: "free", memoryBytes: 16 * 1024 * 1024), now: start, timer: false,
            budgetMilliseconds: 2000, devices: [EvaluateJob.Device(serial: "TH-1", name: "Hall", sampleCount: samples.count)],
            rules: [
                EvaluateJob.Rule(
                    script: WorkerScript(id: UUID(), version: 1, name: "hot", configJSON: "{}", source: source), states: ["{}"])
            ],
            samples: samples)
        guard case .job(.evaluated(let answers)) = worker.handle(.evaluate(job)), case .evaluated(let devices) = answers.first,
            let verdict = devices.first ?? nil
        else {
            Issue.record("no evaluation answer")
            return
        }
        #expect(verdict.failure == nil)
        #expect(verdict.stateJSON == #"{"seen":7}"#, "every sample was evaluated")
        #expect(verdict.steps.map { $0.map(\.value) } == [[31], [], [34]])
        #expect(verdict.steps.first?.first?.message == "hot at 31.0")
    }

    /// Rules of one job get their sample tables from one kept copy of each sample, and a rule
    /// that changes its table (a field, a number's subtype, an extra key, a metatable) passes
    /// nothing on: every rule, on every sample, sees the sample as sent.
    @Test func aRuleThatChangesTheSampleTableChangesNothingForTheNextRules() throws {
        let worker = LuaWorker(catalog: PluginCatalog())
        let start = Timestamp(iso8601: "2026-12-01T08:00:00Z")!
        let samples = (0..<3).map { index in
            TelemetrySample(
                deviceSerial: "TH-\(index % 2)", timestamp: start.adding(seconds: Double(index) * 60), mode: .heat,
                tempInside: 20 + Double(index), tempOutside: index == 1 ? nil : -2.5, setpoint: 21, hysteresis: 0.5, output: .heatOn)
        }
        let observer = """
            return { evaluate = function(sample, state)
              local fields = 0
              for _ in pairs(sample) do fields = fields + 1 end
              local pristine = getmetatable(sample) == nil and math.type(sample.setpoint_c) == 'float'
                and sample.setpoint_c == 21 and sample.mode == 'HEAT' and sample.extra == nil
                and fields == (sample.temp_outside_c and 9 or 8)
              state.seen = (state.seen or 0) + 1
              return { { key = pristine and 'pristine' or 'changed', message = 'seen', value = sample.temp_inside_c } }, state
            end }
            """
        let mutators = [
            "sample.temp_inside_c = 99",
            "sample.setpoint_c = 21",
            "sample.extra = true",
            "sample.temp_outside_c = nil sample.mode = 'OFF'",
            "setmetatable(sample, { __index = function() return 1 end })",
        ].map { change in "return { evaluate = function(sample, state) \(change) return {}, state end }" }
        let sources = [observer] + mutators.flatMap { [$0, observer] }
        let job = EvaluateJob(
            tenant: WorkerTenant(id: UUID(), slug: "acme", tier: "free", memoryBytes: 16 * 1024 * 1024), now: start, timer: false,
            budgetMilliseconds: 2000,
            devices: [
                EvaluateJob.Device(serial: "TH-0", name: "Hall", sampleCount: 2), EvaluateJob.Device(serial: "TH-1", name: "Attic", sampleCount: 1),
            ],
            rules: sources.enumerated().map { index, source in
                EvaluateJob.Rule(
                    script: WorkerScript(id: UUID(), version: 1, name: "rule\(index)", configJSON: "{}", source: source),
                    states: ["{}", "{}"])
            },
            samples: [samples[0], samples[2], samples[1]])
        guard case .job(.evaluated(let answers)) = worker.handle(.evaluate(job)) else {
            Issue.record("no evaluation answer")
            return
        }
        #expect(answers.count == sources.count)
        for (index, answer) in answers.enumerated() where index % 2 == 0 {
            guard case .evaluated(let devices) = answer else {
                Issue.record("observer \(index) did not evaluate: \(answer)")
                continue
            }
            #expect(devices.map { $0?.failure } == [nil, nil])
            #expect(devices.map { $0?.stateJSON } == [#"{"seen":2}"#, #"{"seen":1}"#])
            #expect(
                devices.map { $0?.steps.flatMap { $0.map(\.key) } } == [["pristine"], ["pristine"]],
                "observer \(index) saw the sample as sent")
            #expect(devices.map { $0?.steps.last?.first?.value } == [22, 21])
        }
    }

    /// The built-in plugins read the kept sample tables themselves, without copies: rules
    /// around them that change their own copies change nothing for a plugin, and a plugin
    /// changes nothing for the rules after it.
    @Test func builtInPluginsReadTheSamplesAsSentAmongRulesThatChangeTheirs() throws {
        let catalog = try PluginRuleJob.catalog()
        let threshold = try PluginRuleJob.threshold(in: catalog)
        let heater = "return { evaluate = function(sample, state) sample.temp_inside_c = 99 sample.extra = 1 return {}, state end }"
        let observer = """
            return { evaluate = function(sample, state)
              local pristine = sample.temp_inside_c < 30 and sample.extra == nil and getmetatable(sample) == nil
              return { { key = pristine and 'pristine' or 'changed', message = 'seen' } }, state
            end }
            """
        let rules: [(source: String, config: String)] = [
            (heater, "{}"), (threshold, PluginRuleJob.thresholdConfig), (heater, "{}"), (threshold, PluginRuleJob.thresholdConfig),
            (observer, "{}"),
        ]
        guard let answers = PluginRuleJob.evaluate(rules, catalog: catalog) else { return }
        PluginRuleJob.expectThresholdsReadTheSentTemperatures(answers, at: [1, 3])
        guard let verdict = PluginRuleJob.verdict(answers[4], of: "the observer") else { return }
        #expect(verdict.steps.flatMap { $0.map(\.key) } == ["pristine"])
    }

    /// Rules that watch different devices, one device or both: every rule sees its device's
    /// samples, and only them.
    @Test func rulesWatchingDifferentDevicesEachSeeTheirOwnSamples() throws {
        let worker = LuaWorker(catalog: PluginCatalog())
        let start = Timestamp(iso8601: "2026-12-01T08:00:00Z")!
        let samples = ["TH-0", "TH-0", "TH-1"].enumerated().map { index, serial in
            TelemetrySample(
                deviceSerial: serial, timestamp: start.adding(seconds: Double(index) * 60), mode: .heat, tempInside: 20 + Double(index),
                tempOutside: nil, setpoint: 21, hysteresis: 0.5, output: .heatOn)
        }
        let counter = """
            return { evaluate = function(sample, state)
              state.sum = (state.sum or 0) + sample.temp_inside_c
              return {}, state
            end }
            """
        let mutator = "return { evaluate = function(sample, state) sample.temp_inside_c = 99 return {}, state end }"
        let job = EvaluateJob(
            tenant: WorkerTenant(id: UUID(), slug: "acme", tier: "free", memoryBytes: 16 * 1024 * 1024), now: start, timer: false,
            budgetMilliseconds: 2000,
            devices: [
                EvaluateJob.Device(serial: "TH-0", name: "Hall", sampleCount: 2), EvaluateJob.Device(serial: "TH-1", name: "Attic", sampleCount: 1),
            ],
            rules: [
                EvaluateJob.Rule(script: WorkerScript(id: UUID(), version: 1, name: "only-attic", configJSON: "{}", source: mutator), states: [nil, "{}"]),
                EvaluateJob.Rule(script: WorkerScript(id: UUID(), version: 1, name: "both", configJSON: "{}", source: counter), states: ["{}", "{}"]),
                EvaluateJob.Rule(script: WorkerScript(id: UUID(), version: 1, name: "only-hall", configJSON: "{}", source: counter), states: ["{}", nil]),
            ],
            samples: samples)
        guard case .job(.evaluated(let answers)) = worker.handle(.evaluate(job)), answers.count == 3 else {
            Issue.record("no evaluation answer")
            return
        }
        let states = answers.map { answer -> [String?] in
            guard case .evaluated(let devices) = answer else { return [] }
            return devices.map { $0?.stateJSON }
        }
        #expect(states[0] == [nil, "[]"], "an empty table")
        #expect(states[1] == [#"{"sum":41.0}"#, #"{"sum":22.0}"#], "the attic's rule changed its table for no one")
        #expect(states[2] == [#"{"sum":41.0}"#, nil])
    }

    /// A rule runs over a device's samples in one call into the VM, which takes an answer only
    /// when it would read it as the worker does; anything else (here: keys outside ASCII, among
    /// them one spelled in two Unicode compositions, more than sixteen alerts, a repeated
    /// key, a bad severity) is left to one call per sample, so the verdicts are the same. An alert table the script changes after returning it keeps
    /// what it held when returned.
    @Test func answersTheVMLeavesToTheWorkerGetTheSameVerdicts() throws {
        let start = Timestamp(iso8601: "2026-12-01T08:00:00Z")!
        let samples = (0..<4).map { index in
            TelemetrySample(
                deviceSerial: "TH-1", timestamp: start.adding(seconds: Double(index) * 60), mode: .heat,
                tempInside: 20 + Double(index), tempOutside: nil, setpoint: 21, hysteresis: 0.5, output: .heatOn)
        }
        func verdict(_ source: String) -> DeviceEvaluation? {
            let job = EvaluateJob(
                tenant: WorkerTenant(id: UUID(), slug: "acme", tier: "free", memoryBytes: 16 * 1024 * 1024), now: start,
                timer: false, budgetMilliseconds: 2000, devices: [EvaluateJob.Device(serial: "TH-1", name: "Hall", sampleCount: samples.count)],
                rules: [
                    EvaluateJob.Rule(
                        script: WorkerScript(id: UUID(), version: 1, name: "rule", configJSON: "{}", source: source), states: ["{}"])
                ],
                samples: samples)
            guard case .job(.evaluated(let answers)) = LuaWorker(catalog: PluginCatalog()).handle(.evaluate(job)),
                case .evaluated(let devices) = answers.first
            else { return nil }
            return devices.first ?? nil
        }
        let accented = try #require(
            verdict(
                """
                return { evaluate = function(sample, state)
                  return { { key = 'température', message = 'warm', value = sample.temp_inside_c } }, state
                end }
                """))
        #expect(accented.failure == nil)
        #expect(accented.steps.map { $0.map(\.key) } == [["température"]])
        #expect(accented.steps.last?.first?.value == 23)

        let many = try #require(
            verdict(
                """
                return { evaluate = function(sample, state)
                  local alerts = {}
                  for i = 1, 20 + math.floor(sample.temp_inside_c) % 2 do
                    alerts[i] = { key = 'k' .. i, message = 'm' }
                  end
                  return alerts, state
                end }
                """))
        #expect(many.failure == nil)
        #expect(many.steps.map(\.count) == [20, 21, 20, 21])

        let repeated = try #require(
            verdict(
                """
                return { evaluate = function(sample, state)
                  state.n = (state.n or 0) + 1
                  if state.n == 3 then return { { key = 'a', message = 'x' }, { key = 'a', message = 'y' } }, state end
                  return { { key = 'a', message = 'x' } }, state
                end }
                """))
        #expect(repeated.failure?.contains("two alerts share the key 'a'") == true)
        #expect(repeated.stateJSON == #"{"n":2}"#, "the state of the last good call")
        #expect(repeated.steps.map { $0.map(\.key) } == [["a"]])

        // "é" composed on even samples, decomposed on odd ones: different bytes, one key to the
        // worker (Swift compares strings by canonical equivalence), so one step throughout.
        let equivalent = try #require(
            verdict(
                """
                return { evaluate = function(sample, state)
                  state.n = (state.n or 0) + 1
                  local key = state.n % 2 == 0 and '\u{E9}t\u{E9}' or 'e\u{301}te\u{301}'
                  return { { key = key, message = 'seen ' .. state.n } }, state
                end }
                """))
        #expect(equivalent.failure == nil)
        #expect(equivalent.steps.map { $0.map(\.message) } == [["seen 4"]], "one key, so one step with the latest message")

        let badSeverity = try #require(
            verdict("return { evaluate = function(s, state) return { { key = 'a', message = 'x', severity = 'major' } }, state end }"))
        #expect(badSeverity.failure?.contains("severity") == true)

        let changedLater = try #require(
            verdict(
                """
                local last
                return { evaluate = function(sample, state)
                  if last then last.message = 'changed after' ; last.key = 'other' end
                  last = { key = 'hot', message = 'at ' .. sample.temp_inside_c, value = sample.temp_inside_c }
                  if sample.temp_inside_c == 21 then return {}, state end
                  return { last }, state
                end }
                """))
        #expect(changedLater.failure == nil)
        #expect(changedLater.steps.map { $0.map(\.message) } == [["at 20.0"], [], ["at 23.0"]])
    }

    /// A device with more samples in a job than its VM keeps tables for (a small tier's VM):
    /// the kept ones run in one call, the rest one call each, and the state and the steps go on
    /// across the boundary as if the samples had run together.
    @Test func samplesBeyondTheKeptOnesGoOnFromTheRunsState() throws {
        let start = Timestamp(iso8601: "2026-12-01T08:00:00Z")!
        let memory = 2 * 1024 * 1024
        let count = memory / LuaWorker.memoryPerKeptSample + 50
        let samples = (0..<count).map { index in
            TelemetrySample(
                deviceSerial: "TH-1", timestamp: start.adding(seconds: Double(index) * 60), mode: .heat,
                tempInside: index < count - 60 || index >= count - 20 ? 30 : 20, tempOutside: nil, setpoint: 21, hysteresis: 0.5,
                output: .heatOn)
        }
        let source = """
            return { evaluate = function(sample, state)
              state.seen = (state.seen or 0) + 1
              if sample.temp_inside_c > 25 then return { { key = 'hot', message = 'seen ' .. state.seen } }, state end
              return {}, state
            end }
            """
        let job = EvaluateJob(
            tenant: WorkerTenant(id: UUID(), slug: "acme", tier: "free", memoryBytes: memory), now: start, timer: false,
            budgetMilliseconds: 2000, devices: [EvaluateJob.Device(serial: "TH-1", name: "Hall", sampleCount: count)],
            rules: [
                EvaluateJob.Rule(script: WorkerScript(id: UUID(), version: 1, name: "hot", configJSON: "{}", source: source), states: ["{}"])
            ],
            samples: samples)
        guard case .job(.evaluated(let answers)) = LuaWorker(catalog: PluginCatalog()).handle(.evaluate(job)),
            case .evaluated(let devices) = answers.first, let verdict = devices.first ?? nil
        else {
            Issue.record("no evaluation answer")
            return
        }
        #expect(verdict.failure == nil)
        #expect(verdict.stateJSON == "{\"seen\":\(count)}")
        #expect(verdict.steps.map { $0.map(\.message) } == [["seen \(count - 60)"], [], ["seen \(count)"]])
    }
}
