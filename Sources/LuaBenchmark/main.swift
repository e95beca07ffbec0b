import Foundation
import LuaSandbox
import PlatformCore
import Scripting

/// Measures a Swift → Lua → Swift ingest transform (a 9-field sample table in, a sample out,
/// validated), against an empty Lua call in the same run as the baseline.

func measure(_ label: String, iterations: Int, _ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<iterations / 10 { try body() }
    let start = ContinuousClock.now
    for _ in 0..<iterations { try body() }
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let microseconds = seconds / Double(iterations) * 1e6
    print(String(format: "%-44@ %8.3f µs/call  (%d calls)", label as NSString, microseconds, iterations))
    return microseconds
}

let iterations = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 300_000
let vm = try LuaVM()
let empty = try vm.load(chunk: "return { f = function() end }", name: "empty")
let runner = try ScriptRunner(catalog: PluginCatalog())
let transform = try runner.load(
    source: "return { transform = function(sample, ctx) sample.temp_inside_c = sample.temp_inside_c + 0.5 return sample end }",
    name: "bench", hook: .ingest)
let sample = TelemetrySample(
    deviceSerial: "TH-0001", timestamp: Timestamp(iso8601: "2026-11-29T07:00:00Z")!, mode: .heat, tempInside: 20.5,
    tempOutside: 3.5, setpoint: 21, hysteresis: 0.5, output: .heatOn)
let context = ScriptContext(
    tenantID: "t", tenantSlug: "acme", tier: "free", deviceSerial: "TH-0001", deviceName: "Hall", now: sample.timestamp,
    config: .table([:]))

let baseline = try measure("empty Lua call (baseline)", iterations: iterations) { _ = try vm.call("f", in: empty, []) }
let full = try measure("ingest transform with bridging", iterations: iterations) {
    _ = try runner.transform(transform, sample: sample, context: context)
}
print(String(format: "transform / empty call: %.1f×", full / baseline))
