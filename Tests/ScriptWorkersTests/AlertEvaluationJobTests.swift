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
}
