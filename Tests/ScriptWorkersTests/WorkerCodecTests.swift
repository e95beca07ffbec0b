import Foundation
import NIOCore
import PlatformCore
import ScriptWorkers
import Scripting
import Testing

/// The worker protocol's binary forms survive a round trip.
@Suite struct WorkerCodecTests {
    @Test func evaluationAnswersRoundTripWithRepeatedStepsCollapsed() throws {
        let hot = [ScriptAlert(key: "high", severity: "critical", message: "hot °C\nstill", value: 30.25)]
        let devices = [
            DeviceEvaluation(steps: [[], hot, hot, hot, [], [], hot], stateJSON: #"{"n":7}"#, failure: nil),
            DeviceEvaluation(steps: [], stateJSON: "{}", failure: "boom at line 3"),
            DeviceEvaluation(
                steps: [[ScriptAlert(key: "a", severity: "warning", message: "", value: nil)]], stateJSON: "[]", failure: nil),
        ]
        let response = WorkerResponse.job(
            .evaluated([.evaluated(devices + [nil]), .skipped, .failed("does not load"), .evaluated([nil, nil])]))
        var buffer = ByteBuffer()
        try WorkerCodec.encode(response, into: &buffer)
        #expect(try WorkerCodec.decodeResponse(&buffer) == response)
        #expect(buffer.readableBytes == 0)
        var repeated = ByteBuffer()
        try WorkerCodec.encode(
            .job(.evaluated([.evaluated([DeviceEvaluation(steps: Array(repeating: hot, count: 1000), stateJSON: "{}", failure: nil)])])),
            into: &repeated)
        #expect(repeated.readableBytes < 1200, "a condition active for 1000 samples is sent once")
    }
}
