import Foundation
import LuaSandbox
import Logging
import NIOCore
import PlatformCore
import ScriptWorkers
import Scripting

/// Measures a Swift → Lua → Swift ingest transform (a 9-field sample table and `ctx` in, a
/// sample out, validated), against an empty Lua call in the same run as the baseline; then the
/// same transform through a Lua worker process (`thermostat lua-worker` beside this
/// executable), round trip included, for a 100-sample batch, for one sample and for 64
/// concurrent single-sample calls (the pattern of single-sample ingest), against the bare
/// interpreter doing the same Lua work (`BareLuaTransform`), with the in-process batch beside
/// them (run as the worker runs it, in one call into the VM; and one call per sample). Each
/// group runs in several interleaved rounds and the median is reported, because the shared
/// machines here drift by tens of percent between seconds.

/// One workload: a label, the samples (or calls) one run of its body handles, and the body,
/// run `count` times per round.
struct Workload {
    var label: String
    var unitsPerRun = 1
    var body: (Int) async throws -> Void
    var timings: [Double] = []
}

/// Runs the workloads in interleaved rounds and prints each median against the first one's.
func measure(_ workloads: [Workload], count: Int, unit: String, rounds: Int = 5) async throws {
    var workloads = workloads
    for _ in 0..<rounds {
        for index in workloads.indices {
            for warmup in 0..<count / 10 { try await workloads[index].body(warmup) }
            let began = ContinuousClock.now
            for iteration in 0..<count { try await workloads[index].body(iteration) }
            let elapsed = ContinuousClock.now - began
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            workloads[index].timings.append(seconds / Double(count * workloads[index].unitsPerRun) * 1e6)
        }
    }
    let baseline = workloads[0].timings.sorted()[rounds / 2]
    for workload in workloads {
        let median = workload.timings.sorted()[rounds / 2]
        print(
            String(
                format: "%-48@ %7.3f µs/%@  median of %d × %d runs  (%4.1f× the baseline)", workload.label as NSString, median,
                unit as NSString, rounds, count, median / baseline))
    }
}

/// Everything runs in a nonisolated function: top-level code is on the main actor, and calling
/// its closures from the measuring loop would hop to it on every iteration.
func runBenchmarks() async throws {
    let iterations = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 300_000

    let vm = try LuaVM()
    let empty = try vm.load(chunk: "return { f = function() end }", name: "empty")
    let runner = try ScriptRunner(catalog: PluginCatalog())
    let sourceFunction = "function(sample, ctx) sample.temp_inside_c = sample.temp_inside_c + 0.5 return sample end"
    let source = "return { transform = \(sourceFunction) }"
    let transform = try runner.load(source: source, name: "bench", hook: .ingest)
    let start = Timestamp(iso8601: "2026-11-29T07:00:00Z")!
    let devices = (0..<64).map { String(format: "TH-%04d", $0) }
    let samples = devices.map {
        TelemetrySample(
            deviceSerial: $0, timestamp: start, mode: .heat, tempInside: 20.5, tempOutside: 3.5, setpoint: 21, hysteresis: 0.5,
            output: .heatOn)
    }
    let configJSON = #"{"offset_c":0.5,"allow_cool":false,"label":"hall"}"#
    let config = try LuaValue(jsonText: configJSON)

    func context(_ sample: TelemetrySample, now: Timestamp) -> ScriptContext {
        ScriptContext(
            tenantID: "7c0e4b1a-5d7f-4f0e-9a55-0a1b2c3d4e5f", tenantSlug: "acme", tier: "standard",
            deviceSerial: sample.deviceSerial, deviceName: sample.deviceSerial, now: now, config: config)
    }

    // The worker: the pool, the pipe round trip and the frame codec included.
    var logger = Logger(label: "bench")
    logger.logLevel = .critical
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("thermostat").path
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let pool = LuaWorkerPool(
        configuration: LuaWorkerPool.Configuration(
            executable: executable, pluginsDirectory: repository.appendingPathComponent("Plugins").path,
            policiesDirectory: repository.appendingPathComponent("Policies").path, size: 1, callDeadline: .seconds(5),
            workerMemoryMegabytes: 1024),
        logger: logger)
    let tenant = WorkerTenant(id: UUID(), slug: "acme", tier: "standard", memoryBytes: 16 * 1024 * 1024)
    // A batch request comes from one device: its samples, a second apart.
    let batch = (0..<100).map { index in
        var sample = samples[0]
        sample.timestamp = start.adding(seconds: Double(index))
        return sample
    }

    func workerCall(_ samples: [TelemetrySample]) async throws {
        let script = WorkerScript(id: tenant.id, version: 1, name: "bench", configJSON: configJSON, source: nil)
        guard case .transformed = try await pool.transform(tenant: tenant, script: script, source: source, now: start, samples: samples)
        else { fatalError("the worker failed") }
    }
    try await workerCall([samples[0]])
    if CommandLine.arguments.contains("--alerts-only") {
        try await measureAlertEvaluation(pool: pool, tenant: tenant, repository: repository, devices: devices, start: start, count: max(20, iterations / 2000))
        await pool.shutdown()
        return
    }

    try await measure(
        [
            Workload(label: "empty Lua call (baseline)") { _ in _ = try vm.call("f", in: empty, []) },
            Workload(label: "transform, one device, same ctx.now (batch)") { _ in
                _ = try runner.transform(transform, sample: samples[0], context: context(samples[0], now: start))
            },
            Workload(label: "transform, 64 devices, new ctx.now per call") { index in
                let sample = samples[index & 63]
                _ = try runner.transform(transform, sample: sample, context: context(sample, now: start.adding(seconds: Double(index) / 1000)))
            },
        ], count: iterations, unit: "call")

    let bare = BareLuaTransform(source: "return " + sourceFunction, samples: batch)
    try await measure(
        [
            Workload(label: "bare Lua, the same work (baseline)", unitsPerRun: 100) { _ in
                precondition(bare.run() > 0)
            },
            Workload(label: "in process, 100-sample batch", unitsPerRun: 100) { _ in
                let run = try runner.startTransformRun(transform, context: context(batch[0], now: start))
                var samples = batch
                guard case .finished = runner.transform(run, samples: &samples, in: samples.indices, until: .now + .seconds(2)) else {
                    fatalError("the batch did not finish")
                }
            },
            Workload(label: "in process, 100-sample batch, a call per sample", unitsPerRun: 100) { _ in
                let run = try runner.startTransformRun(transform, context: context(batch[0], now: start))
                for sample in batch { _ = try runner.transform(run, sample: sample) }
            },
            Workload(label: "worker round trip, 100-sample batch", unitsPerRun: 100) { _ in try await workerCall(batch) },
            Workload(label: "worker round trip, 1 sample") { _ in try await workerCall([samples[0]]) },
            Workload(label: "worker, 64 concurrent 1-sample calls", unitsPerRun: 64) { _ in
                try await withThrowingDiscardingTaskGroup { group in
                    for device in 0..<64 { group.addTask { try await workerCall([samples[device]]) } }
                }
            },
            Workload(label: "frame codec alone, 100 samples there and back", unitsPerRun: 100) { _ in
                let script = WorkerScript(id: tenant.id, version: 1, name: "bench", configJSON: configJSON, source: nil)
                let call = TransformCall(tenant: tenant, script: script, now: start, budgetMilliseconds: 2000, samples: batch)
                var request = ByteBuffer()
                try WorkerCodec.encode(.transform(call), into: &request)
                guard case .transform(let decoded) = try WorkerCodec.decodeRequest(&request) else { fatalError("not a transform") }
                var response = ByteBuffer()
                try WorkerCodec.encode(.transform([.transformed(decoded.parts[0].samples)]), into: &response)
                _ = try WorkerCodec.decodeResponse(&response)
            },
        ], count: max(200, iterations / 200), unit: "sample")

    try await measureAlertEvaluation(pool: pool, tenant: tenant, repository: repository, devices: devices, start: start, count: max(20, iterations / 2000))
    await pool.shutdown()
}

/// The alert benchmark's ten rules (`scripts/bench/alert_bench.py`: six built-in, four tenant
/// scripts) over a pass of 400 samples from 64 devices, through the worker with the states
/// carried from pass to pass as the evaluator does; per sample (ten rule evaluations each),
/// against the bare worker round trip of the same samples through an empty rule. Ten empty
/// rules between them show what running a rule costs apart from the rule's own work. Then the
/// ten rules over a worker call of 1,000 samples in the two shapes the evaluator has sent: 64
/// devices with 16 samples each (a pass of 1,000 samples, the limit until session 21) and 16
/// devices with 63 (a call of a pass of 4,000), since much of a call's cost is per rule and
/// device.
func measureAlertEvaluation(
    pool: LuaWorkerPool, tenant: WorkerTenant, repository: URL, devices: [String], start: Timestamp, count: Int
) async throws {
    func plugin(_ name: String) throws -> String {
        try String(contentsOf: repository.appendingPathComponent("Plugins/\(name)/plugin.lua"), encoding: .utf8)
    }
    let tenantScripts = [
        "return { evaluate = function(sample, state, ctx) state.n = (state.n or 0) + 1 "
            + "if state.n % 1000 == 0 then return { { key = 'thousand', message = 'another thousand' } }, state end return {}, state end }",
        "return { evaluate = function(sample, state, ctx) if sample.output ~= 'HEAT_ON' then return {}, {} end "
            + "state.since = state.since or sample.time state.start = state.start or sample.temp_inside_c "
            + "if sample.time - state.since > 3600 and sample.temp_inside_c - state.start < 0.5 then "
            + "return { { key = 'not-warming', message = 'heating on without warming' } }, state end return {}, state end }",
        "local threshold = require('threshold') "
            + "return { evaluate = function(sample, state, ctx) return threshold.evaluate(sample, state, ctx) end }",
        "return { evaluate = function(sample, state, ctx) if sample.mode == 'OFF' and sample.temp_inside_c < 5 then "
            + "return { { key = 'frost', severity = 'critical', message = 'frost risk', value = sample.temp_inside_c } }, state end "
            + "return {}, state end }",
    ]
    let rules: [(source: String, config: String)] = [
        (try plugin("threshold"), #"{"field":"temp_inside_c","high_c":false,"low_c":5,"hysteresis_c":0.5,"severity":"warning"}"#),
        (try plugin("threshold"), #"{"field":"temp_outside_c","high_c":40,"low_c":10,"hysteresis_c":0.5,"severity":"warning"}"#),
        (try plugin("sustained"), #"{"field":"temp_inside_c","above_c":30,"below_c":false,"minutes":30,"severity":"warning"}"#),
        (try plugin("rate-of-change"), #"{"field":"temp_inside_c","max_c_per_hour":50,"min_interval_minutes":5,"severity":"warning"}"#),
        (try plugin("rate-of-change"), #"{"field":"temp_outside_c","max_c_per_hour":50,"min_interval_minutes":5,"severity":"warning"}"#),
        (try plugin("stale-device"), #"{"max_silence_minutes":129600,"severity":"warning"}"#),
        (tenantScripts[0], "{}"), (tenantScripts[1], "{}"),
        (tenantScripts[2], #"{"field":"temp_inside_c","high_c":25,"low_c":false,"hysteresis_c":0.5,"severity":"warning"}"#),
        (tenantScripts[3], "{}"),
    ]
    let emptyRule = (source: "return { evaluate = function(sample, state, ctx) return {}, state end }", config: "{}")
    func pass(
        _ rules: [(source: String, config: String)], states: inout [[String?]], iteration: Int, devices: [String],
        perDevice: Int
    ) async throws {
        let base = start.adding(seconds: Double(iteration * perDevice * 10))
        var samples: [TelemetrySample] = []
        for device in devices {
            for step in 0..<perDevice {
                samples.append(
                    TelemetrySample(
                        deviceSerial: device, timestamp: base.adding(seconds: Double(step * 10)), mode: .heat,
                        tempInside: 20 + Double(step % 3) * 0.5, tempOutside: 4.5, setpoint: 21, hysteresis: 0.5, output: .heatOn))
            }
        }
        let job = EvaluateJob(
            tenant: tenant, now: base.adding(seconds: Double(perDevice * 10)), timer: false, budgetMilliseconds: 0,
            devices: devices.map { EvaluateJob.Device(serial: $0, name: $0, sampleCount: perDevice) },
            rules: rules.enumerated().map { index, rule in
                EvaluateJob.Rule(
                    script: WorkerScript(
                        id: UUID(uuid: (UInt8(index), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, UInt8(rules.count))),
                        version: 1, name: "rule\(index)", configJSON: rule.config, source: nil),
                    states: states[index])
            },
            samples: samples)
        guard case .evaluated(let answers) = try await pool.evaluate(job, sources: rules.map(\.source)) else {
            fatalError("the worker did not evaluate")
        }
        for (index, answer) in answers.enumerated() {
            guard case .evaluated(let verdicts) = answer else { fatalError("rule \(index) failed: \(answer)") }
            states[index] = verdicts.map { verdict in
                if let failure = verdict?.failure { fatalError("rule \(index) failed: \(failure)") }
                return verdict?.stateJSON
            }
        }
    }

    let perDevice = 400 / devices.count + 1
    let fewDevices = Array(devices.prefix(16))
    func fresh(_ devices: [String], rules: Int) -> [[String?]] {
        Array(repeating: devices.map { _ in Optional("{}") }, count: rules)
    }
    var ruledStates = fresh(devices, rules: rules.count)
    var emptyStates = fresh(devices, rules: 1)
    var tenEmptyStates = fresh(devices, rules: rules.count)
    var spreadStates = fresh(devices, rules: rules.count)
    var gatheredStates = fresh(fewDevices, rules: rules.count)
    var iteration = 0
    try await measure(
        [
            Workload(label: "alert pass, one empty rule (baseline)", unitsPerRun: perDevice * devices.count) { _ in
                iteration += 1
                try await pass([emptyRule], states: &emptyStates, iteration: iteration, devices: devices, perDevice: perDevice)
            },
            Workload(label: "alert pass, 10 empty rules", unitsPerRun: perDevice * devices.count) { _ in
                iteration += 1
                try await pass(
                    Array(repeating: emptyRule, count: rules.count), states: &tenEmptyStates, iteration: iteration, devices: devices,
                    perDevice: perDevice)
            },
            Workload(label: "alert pass, the alert bench's 10 rules", unitsPerRun: perDevice * devices.count) { _ in
                iteration += 1
                try await pass(rules, states: &ruledStates, iteration: iteration, devices: devices, perDevice: perDevice)
            },
        ], count: count, unit: "sample")
    try await measure(
        [
            Workload(label: "10 rules, a 1,000-sample call, 64 devices × 16 (baseline)", unitsPerRun: devices.count * 16) { _ in
                iteration += 1
                try await pass(rules, states: &spreadStates, iteration: iteration, devices: devices, perDevice: 16)
            },
            Workload(label: "10 rules, a 1,000-sample call, 16 devices × 63", unitsPerRun: fewDevices.count * 63) { _ in
                iteration += 1
                try await pass(rules, states: &gatheredStates, iteration: iteration, devices: fewDevices, perDevice: 63)
            },
        ], count: max(5, count / 4), unit: "sample")
}

try await runBenchmarks()
