import Foundation
import LuaSandbox
import PlatformCore
import Scripting

/// Measures a Swift → Lua → Swift ingest transform (a 9-field sample table and `ctx` in, a
/// sample out, validated), against an empty Lua call in the same run as the baseline. Each
/// workload runs in several interleaved rounds and the median is reported, because the shared
/// machines here drift by tens of percent between seconds.

let iterations = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 300_000
let rounds = 5

let vm = try LuaVM()
let empty = try vm.load(chunk: "return { f = function() end }", name: "empty")
let runner = try ScriptRunner(catalog: PluginCatalog())
let transform = try runner.load(
    source: "return { transform = function(sample, ctx) sample.temp_inside_c = sample.temp_inside_c + 0.5 return sample end }",
    name: "bench", hook: .ingest)
let start = Timestamp(iso8601: "2026-11-29T07:00:00Z")!
let devices = (0..<64).map { String(format: "TH-%04d", $0) }
let samples = devices.map {
    TelemetrySample(
        deviceSerial: $0, timestamp: start, mode: .heat, tempInside: 20.5, tempOutside: 3.5, setpoint: 21, hysteresis: 0.5,
        output: .heatOn)
}
let config: LuaValue = ["offset_c": .number(0.5), "allow_cool": .bool(false), "label": .string("hall")]

func context(_ sample: TelemetrySample, now: Timestamp) -> ScriptContext {
    ScriptContext(
        tenantID: "7c0e4b1a-5d7f-4f0e-9a55-0a1b2c3d4e5f", tenantSlug: "acme", tier: "standard",
        deviceSerial: sample.deviceSerial, deviceName: sample.deviceSerial, now: now, config: config)
}

/// One workload: a label and a body run `iterations` times per round.
struct Workload {
    var label: String
    var body: (Int) throws -> Void
    var timings: [Double] = []
}

var workloads = [
    Workload(label: "empty Lua call (baseline)") { _ in _ = try vm.call("f", in: empty, []) },
    Workload(label: "transform, one device, same ctx.now (batch)") { _ in
        _ = try runner.transform(transform, sample: samples[0], context: context(samples[0], now: start))
    },
    Workload(label: "transform, 64 devices, new ctx.now per call") { index in
        let sample = samples[index & 63]
        _ = try runner.transform(transform, sample: sample, context: context(sample, now: start.adding(seconds: Double(index) / 1000)))
    },
]

for _ in 0..<rounds {
    for index in workloads.indices {
        for warmup in 0..<iterations / 10 { try workloads[index].body(warmup) }
        let began = ContinuousClock.now
        for iteration in 0..<iterations { try workloads[index].body(iteration) }
        let elapsed = ContinuousClock.now - began
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        workloads[index].timings.append(seconds / Double(iterations) * 1e6)
    }
}

let baseline = workloads[0].timings.sorted()[rounds / 2]
for workload in workloads {
    let median = workload.timings.sorted()[rounds / 2]
    print(
        String(
            format: "%-48@ %7.3f µs/call  median of %d × %d calls  (%4.1f× the baseline)", workload.label as NSString, median, rounds,
            iterations, median / baseline))
}
