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
/// concurrent single-sample calls (the pattern of single-sample ingest), against the
/// in-process batch. Each group runs in several interleaved rounds and the median is reported,
/// because the shared machines here drift by tens of percent between seconds.

/// Everything runs in a nonisolated function: top-level code is on the main actor, and calling
/// its closures from the measuring loop would hop to it on every iteration.
func runBenchmarks() async throws {
    let iterations = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 300_000
    let rounds = 5

    let vm = try LuaVM()
    let empty = try vm.load(chunk: "return { f = function() end }", name: "empty")
    let runner = try ScriptRunner(catalog: PluginCatalog())
    let source = "return { transform = function(sample, ctx) sample.temp_inside_c = sample.temp_inside_c + 0.5 return sample end }"
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
    let batch = (0..<100).map { samples[$0 & 63] }

    func workerCall(_ samples: [TelemetrySample]) async throws {
        let script = WorkerScript(id: tenant.id, version: 1, name: "bench", configJSON: configJSON, source: nil)
        guard case .transformed = try await pool.transform(tenant: tenant, script: script, source: source, now: start, samples: samples)
        else { fatalError("the worker failed") }
    }
    try await workerCall([samples[0]])

    /// One workload: a label, the samples (or calls) one run of its body handles, and the body,
    /// run `count` times per round.
    struct Workload {
        var label: String
        var unitsPerRun = 1
        var body: (Int) async throws -> Void
        var timings: [Double] = []
    }

    /// Runs the workloads in interleaved rounds and prints each median against the first one's.
    func measure(_ workloads: [Workload], count: Int, unit: String) async throws {
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

    try await measure(
        [
            Workload(label: "in process, 100-sample batch (baseline)", unitsPerRun: 100) { _ in
                for sample in batch { _ = try runner.transform(transform, sample: sample, context: context(sample, now: start)) }
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
    await pool.shutdown()
}

try await runBenchmarks()
