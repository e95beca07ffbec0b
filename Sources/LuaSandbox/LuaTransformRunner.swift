import CLua
import CLuaShim

/// One device's telemetry samples in the layout of the C transform runner
/// (`LuaVM.runTransform`): the host writes each sample, the runner overwrites the fields a
/// transform returned. A batch serves many runs; its storage grows to the largest (a worker
/// call carries at most 1,000 samples: about 120 KB).
public final class LuaSampleBatch {
    /// The fields of one sample, as the host writes them and reads them back. `mode` and
    /// `output` index the names the run is given.
    public struct Sample: Equatable {
        public var time: Double
        public var mode: Int
        public var output: Int
        public var tempInside: Double
        public var tempOutside: Double?
        public var setpoint: Double
        public var hysteresis: Double

        public init(
            time: Double, mode: Int, output: Int, tempInside: Double, tempOutside: Double?, setpoint: Double, hysteresis: Double
        ) {
            self.time = time
            self.mode = mode
            self.output = output
            self.tempInside = tempInside
            self.tempOutside = tempOutside
            self.setpoint = setpoint
            self.hysteresis = hysteresis
        }
    }

    /// Bytes kept for each sample's ISO 8601 timestamp.
    public static let timestampCapacity = 40
    private var samples: UnsafeMutablePointer<tsb_sample>
    private var timestamps: UnsafeMutablePointer<UInt8>
    private var capacity = 0
    /// How many samples the batch holds.
    public private(set) var count = 0
    /// What the runner reads and reports back; `start` is where the last run began.
    fileprivate let report: UnsafeMutablePointer<tsb_sample_batch>
    private var start = 0

    public init() {
        samples = .allocate(capacity: 0)
        timestamps = .allocate(capacity: 0)
        report = .allocate(capacity: 1)
        report.initialize(to: tsb_sample_batch())
    }

    deinit {
        samples.deallocate()
        timestamps.deallocate()
        report.deallocate()
    }

    /// The sample whose call ended the last run: the one it stopped at, or the one whose call
    /// failed (after a run that finished, the batch's count).
    public var stoppedAt: Int { start + Int(report.pointee.next) }

    /// Empties the batch and makes room for `count` samples.
    public func reset(count: Int) {
        if count > capacity {
            samples.deallocate()
            timestamps.deallocate()
            capacity = max(count, capacity * 2)
            samples = .allocate(capacity: capacity)
            timestamps = .allocate(capacity: capacity * Self.timestampCapacity)
        }
        self.count = count
    }

    /// Writes sample `index`; `timestamp` writes its ISO 8601 text into the buffer it is given
    /// (`timestampCapacity` bytes) and returns the length.
    public func set(_ index: Int, _ sample: Sample, timestamp: (UnsafeMutableBufferPointer<UInt8>) -> Int) {
        precondition(index < count, "sample index out of the batch")
        let text = timestamps + index * Self.timestampCapacity
        let length = timestamp(UnsafeMutableBufferPointer(start: text, count: Self.timestampCapacity))
        samples[index] = tsb_sample(
            time: sample.time, timestamp: UnsafeRawPointer(text).assumingMemoryBound(to: CChar.self), timestamp_length: length,
            temp_inside: sample.tempInside, temp_outside: sample.tempOutside ?? 0, setpoint: sample.setpoint,
            hysteresis: sample.hysteresis, mode: Int32(sample.mode), output: Int32(sample.output),
            has_temp_outside: sample.tempOutside == nil ? 0 : 1)
    }

    /// Sample `index` as the last run left it.
    public subscript(index: Int) -> Sample {
        let sample = samples[index]
        return Sample(
            time: sample.time, mode: Int(sample.mode), output: Int(sample.output), tempInside: sample.temp_inside,
            tempOutside: sample.has_temp_outside != 0 ? sample.temp_outside : nil, setpoint: sample.setpoint,
            hysteresis: sample.hysteresis)
    }

    fileprivate func prepare(from start: Int) -> UnsafeMutablePointer<tsb_sample_batch> {
        precondition(start <= count, "a run starts inside the batch")
        self.start = start
        report.pointee.samples = samples + start
        report.pointee.count = Int32(count - start)
        report.pointee.next = 0
        report.pointee.ended = TSB_RUN_FINISHED
        return report
    }
}

/// How a run of `LuaVM.runTransform` ended.
public enum LuaTransformRunEnd: Equatable, Sendable {
    /// Every sample's answer was taken into the batch.
    case finished
    /// The answer for sample `index` is the run's results, for the host to read: a rejection,
    /// or anything the runner does not take as it is.
    case answer(index: Int)
    /// The batch's time ran out before sample `index` started.
    case outOfTime(index: Int)
}

/// The names and ranges a transform run checks answers against.
public struct LuaTransformLayouts {
    let sample: LuaRecordLayout
    let answer: LuaRecordLayout
    let context: LuaRecordLayout
    let modes: LuaRecordLayout
    let outputs: LuaRecordLayout
    let temperature: ClosedRange<Double>
    let setpoint: ClosedRange<Double>
    let hysteresis: ClosedRange<Double>

    /// `sample` names the sample table's nine fields, `answer` the six read back, `context` the
    /// five of `ctx` rewritten per call (see `tsb_push_transform_runner`); `modes` and
    /// `outputs` are the names a sample's indexes stand for; the ranges are those the host
    /// validates.
    public init(
        sample: LuaRecordLayout, answer: LuaRecordLayout, context: LuaRecordLayout, modes: LuaRecordLayout,
        outputs: LuaRecordLayout, temperature: ClosedRange<Double>, setpoint: ClosedRange<Double>, hysteresis: ClosedRange<Double>
    ) {
        self.sample = sample
        self.answer = answer
        self.context = context
        self.modes = modes
        self.outputs = outputs
        self.temperature = temperature
        self.setpoint = setpoint
        self.hysteresis = hysteresis
    }
}

extension LuaVM {
    /// Runs an ingest `transform` over `batch`'s samples from `start` on, all of one device
    /// (`serial`), in one protected call (the C runner `tsb_push_transform_runner` describes):
    /// each call gets a fresh sample table and `ctx` (pushed by `context`: the table, then its
    /// five values) with its fields rewritten, under the limits of a call of its own. Answers
    /// the runner takes are written into the batch. `results` gets how the run ended and, when
    /// it stopped at an answer, that call's two results. No sample starts after `deadline`. A
    /// script error or a call out of its limits is thrown; `stoppedAt` then names the sample it
    /// happened in.
    public func runTransform<Result>(
        _ transform: LuaFunction, batch: LuaSampleBatch, from start: Int, serial: String,
        until deadline: ContinuousClock.Instant,
        layouts: LuaTransformLayouts, context: (LuaArguments) -> Void,
        results: (LuaTransformRunEnd, LuaResults) throws(LuaError) -> Result
    ) throws(LuaError) -> Result {
        let report = batch.prepare(from: start)
        report.pointee.temperature_min = layouts.temperature.lowerBound
        report.pointee.temperature_max = layouts.temperature.upperBound
        report.pointee.setpoint_min = layouts.setpoint.lowerBound
        report.pointee.setpoint_max = layouts.setpoint.upperBound
        report.pointee.hysteresis_min = layouts.hysteresis.lowerBound
        report.pointee.hysteresis_max = layouts.hysteresis.upperBound
        return try call(
            transformRunner,
            arguments: { arguments throws(LuaError) in
                guard lua_checkstack(rawState, 24) != 0 else { throw LuaError(kind: .bridging, message: "Lua stack exhausted") }
                let base = lua_gettop(rawState)
                arguments.push(transform)
                context(arguments)
                for layout in [layouts.context, layouts.sample, layouts.answer, layouts.modes, layouts.outputs] {
                    lua_pushinteger(rawState, lua_Integer(layout.reference))
                }
                lua_pushlightuserdata(rawState, report)
                arguments.push(serial)
                let batchDeadline = tsb_now_ns() + (deadline - ContinuousClock.now).nanoseconds
                for number in [limits.wallClock.nanoseconds, limits.instructionBudget, batchDeadline] {
                    lua_pushinteger(rawState, number)
                }
                return lua_gettop(rawState) - base
            },
            results: { answer throws(LuaError) in
                let index = start + Int(report.pointee.next)
                let end: LuaTransformRunEnd =
                    switch report.pointee.ended {
                    case TSB_RUN_ANSWER: .answer(index: index)
                    case TSB_RUN_OUT_OF_TIME: .outOfTime(index: index)
                    default: .finished
                    }
                return try results(end, answer)
            })
    }
}
