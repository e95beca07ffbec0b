import Foundation
import NIOCore
import PlatformCore
import Scripting
import Testing

@testable import ScriptWorkers

/// The worker protocol's binary forms survive a round trip.
@Suite struct WorkerCodecTests {
    /// A worker runs hostile code: the server takes a transform's answer only if it is about
    /// the samples it sent.
    @Test func aTransformAnswerMustBeAboutTheSamplesSent() {
        let first = TelemetrySample(
            deviceSerial: "TH-1", timestamp: Timestamp(seconds: 1_800_000_000), mode: .heat, tempInside: 20, tempOutside: nil,
            setpoint: 21, hysteresis: 0.5, output: .heatOn)
        var second = first
        second.timestamp = Timestamp(seconds: 1_800_000_001)
        let part = TransformPart(now: Timestamp(seconds: 1_800_000_002), samples: [first, second])
        var changed = first
        changed.setpoint = 5
        changed.mode = .cool
        #expect(TransformResult.transformed([changed, second]).fits(part))
        var moved = first
        moved.deviceSerial = "TH-2"
        #expect(!TransformResult.transformed([moved, second]).fits(part))
        #expect(!TransformResult.transformed([second, first]).fits(part))
        #expect(!TransformResult.transformed([first]).fits(part))
        #expect(TransformResult.rejected(index: 1, reason: "no").fits(part))
        #expect(!TransformResult.rejected(index: 2, reason: "no").fits(part))
        #expect(!TransformResult.failed(index: -1, error: "boom").fits(part))
        #expect(TransformResult.failed(index: nil, error: "does not load").fits(part))
    }

    @Test func evaluationAnswersRoundTrip() throws {
        let hot = [ScriptAlert(key: "high", severity: "critical", message: "hot °C\nstill", value: 30.25)]
        let devices = [
            DeviceEvaluation(steps: [[], hot, [], hot], stateJSON: #"{"n":7}"#, failure: nil),
            DeviceEvaluation(steps: [], stateJSON: "{}", failure: "boom at line 3"),
            DeviceEvaluation(steps: [hot], stateJSON: "{}", failure: "boom at line 4", failedSample: 2),
            DeviceEvaluation(
                steps: [[ScriptAlert(key: "a", severity: "warning", message: "", value: nil)]], stateJSON: "[]", failure: nil),
        ]
        let response = WorkerResponse.job(
            .evaluated([.evaluated(devices + [nil]), .skipped, .failed("does not load"), .evaluated([nil, nil])]))
        var buffer = ByteBuffer()
        try WorkerCodec.encode(response, into: &buffer)
        #expect(try WorkerCodec.decodeResponse(&buffer) == response)
        #expect(buffer.readableBytes == 0)
    }

    @Test func evaluationJobsTravelInBinaryAndInconsistentOnesAreRefused() throws {
        let samples = [
            Self.sample(1_795_000_000, outside: 4, rollup: nil), Self.sample(1_795_000_060, outside: nil, rollup: nil),
            Self.sample(1_795_000_120, outside: -2.5, rollup: nil),
        ]
        let job = EvaluateJob(
            tenant: WorkerTenant(id: UUID(), slug: "acme", tier: "pro", memoryBytes: 1 << 24), now: Timestamp(seconds: 1_795_000_200),
            timer: true, budgetMilliseconds: 500,
            devices: [
                EvaluateJob.Device(serial: "TH-Ü", name: "Küche \"oben\"", sampleCount: 2),
                EvaluateJob.Device(serial: "TH-2", name: "", sampleCount: 1),
            ],
            rules: [
                EvaluateJob.Rule(
                    script: WorkerScript(id: UUID(), version: 3, name: "threshold", configJSON: #"{"high_c":25}"#, source: nil),
                    states: [#"{"high":25.5}"#, nil]),
                EvaluateJob.Rule(
                    script: WorkerScript(id: UUID(), version: 1, name: "mine", configJSON: "{}", source: "return {}"),
                    states: [nil, "{}"]),
            ],
            samples: samples)
        var buffer = ByteBuffer()
        try WorkerCodec.encode(WorkerRequest.evaluate(job), into: &buffer)
        let encoded = buffer
        #expect(try WorkerCodec.decodeRequest(&buffer) == .evaluate(job))
        #expect(buffer.readableBytes == 0)

        var miscounted = job
        miscounted.devices[1].sampleCount = 2
        var lying = ByteBuffer()
        try WorkerCodec.encode(WorkerRequest.evaluate(miscounted), into: &lying)
        #expect(throws: WorkerProtocolError.self, "device sample counts must add up to the samples sent") {
            try WorkerCodec.decodeRequest(&lying)
        }
        var stateless = job
        stateless.rules[0].states = [nil]
        var short = ByteBuffer()
        try WorkerCodec.encode(WorkerRequest.evaluate(stateless), into: &short)
        #expect(throws: WorkerProtocolError.self, "a rule has a state slot per device") { try WorkerCodec.decodeRequest(&short) }
        var truncated = encoded.getSlice(at: 0, length: encoded.readableBytes - 5)!
        #expect(throws: WorkerProtocolError.self) { try WorkerCodec.decodeRequest(&truncated) }
        var asAnswer = encoded
        #expect(throws: WorkerProtocolError.self, "a request is not an answer") { try WorkerCodec.decodeResponse(&asAnswer) }
    }

    static func sample(_ seconds: Int64, outside: Double?, rollup: SampleRollup?) -> TelemetrySample {
        TelemetrySample(
            deviceSerial: "TH-Ü", timestamp: Timestamp(seconds: seconds), mode: .auto, tempInside: 20.25, tempOutside: outside,
            setpoint: 21, hysteresis: 0.5, output: .coolOn, rollup: rollup)
    }

    @Test func exportRowsCarryRollupsAndWorkersMayNotAnswerWithThem() throws {
        let hourly = SampleRollup(
            resolutionSeconds: 3600, count: 60, tempInsideMin: 18, tempInsideMax: 22.5, tempOutsideMin: -3, tempOutsideMax: 1,
            setpointMin: 20, setpointMax: 21, heatingShare: 0.25, coolingShare: 0.5)
        var indoorOnly = hourly
        indoorOnly.tempOutsideMin = nil
        indoorOnly.tempOutsideMax = nil
        let samples = [
            Self.sample(1_795_000_000, outside: 4, rollup: nil), Self.sample(1_795_000_060, outside: nil, rollup: hourly),
            Self.sample(1_795_003_600, outside: nil, rollup: indoorOnly), Self.sample(1_795_007_200, outside: nil, rollup: nil),
        ]
        let job = ExportJob(
            tenant: WorkerTenant(id: UUID(), slug: "acme", tier: "free", memoryBytes: 1 << 20),
            script: WorkerScript(id: UUID(), version: 1, name: "md", configJSON: "{}", source: nil), now: Timestamp(seconds: 1),
            piece: .rows, budgetMilliseconds: 250, samples: samples)
        var buffer = ByteBuffer()
        try WorkerCodec.encode(WorkerRequest.job(.export(job)), into: &buffer)
        #expect(try WorkerCodec.decodeRequest(&buffer) == .job(.export(job)))
        #expect(buffer.readableBytes == 0)

        var answer = ByteBuffer()
        try WorkerCodec.encode(WorkerResponse.transform([.transformed([samples[0]])]), into: &answer)
        #expect(try WorkerCodec.decodeResponse(&answer) == .transform([.transformed([samples[0]])]))
        var forged = ByteBuffer()
        try WorkerCodec.encode(WorkerResponse.transform([.transformed([samples[1]])]), into: &forged)
        #expect(throws: WorkerProtocolError.self, "a worker's answer is never a rollup") {
            try WorkerCodec.decodeResponse(&forged)
        }
    }

    /// A reader reads on after a frame only while its waits are short: sparse traffic costs no
    /// CPU, a busy exchange no wake-ups.
    @Test func readersReadOnOnlyWhileFramesComeQuickly() {
        let start = ContinuousClock.now
        var window = ReadOnWindow()
        #expect(window.startWaiting(at: start) == start)
        window.frameCame(at: start + .microseconds(40))
        let busy = start + .microseconds(50)
        #expect(window.startWaiting(at: busy) == busy + WorkerFraming.spinWindow)
        window.frameCame(at: busy + .milliseconds(3))
        let quiet = busy + .milliseconds(4)
        #expect(window.startWaiting(at: quiet) == quiet)
    }

    /// The worker's reader, which makes its stdin non-blocking: a frame that comes long after
    /// the last one is waited for asleep, not taken for the end of input; the end of input ends it.
    @Test func theWorkersReaderWaitsForLateFramesAndStopsAtTheEnd() throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        defer { close(ends[0]) }
        func send(_ text: String) {
            let frame = WorkerFraming.frame({ $0.writeString(text) }, allocator: ByteBufferAllocator())
            frame.withUnsafeReadableBytes { _ = write(ends[1], $0.baseAddress, $0.count) }
        }
        var reader = FrameReader(descriptor: ends[0])
        send("first")
        send("second")
        #expect(reader.next().map { String(buffer: $0) } == "first")
        #expect(reader.next().map { String(buffer: $0) } == "second")
        let writer = ends[1]
        let late = Thread {
            Thread.sleep(forTimeInterval: 0.02)
            let frame = WorkerFraming.frame({ $0.writeString("late") }, allocator: ByteBufferAllocator())
            frame.withUnsafeReadableBytes { _ = write(writer, $0.baseAddress, $0.count) }
            close(writer)
        }
        late.start()
        #expect(reader.next().map { String(buffer: $0) } == "late")
        #expect(reader.next() == nil)
    }
}
