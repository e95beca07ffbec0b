import Foundation
import NIOCore
import PlatformCore
import Scripting

/// A frame that does not decode: the peer is broken or not a worker of this build.
public struct WorkerProtocolError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The worker protocol's payloads (framing is `WorkerFraming`'s). The ingest path is encoded
/// by hand, field by field, since it runs per request, and so are alert evaluations (they run
/// per committed sample); the rare jobs travel as JSON, with any samples in the same compact
/// binary form after it.
public enum WorkerCodec {
    private enum Tag: UInt8 {
        case transform = 1
        case job = 2
        /// An alert evaluation's answer, in binary (it runs per committed sample).
        case evaluated = 3
        /// An alert evaluation job, in binary: its rules' states are most of a pass's bytes.
        case evaluate = 4
    }

    private enum TransformTag: UInt8 {
        case transformed = 0
        case rejected = 1
        case failed = 2
        case needsSource = 3
    }

    // MARK: Requests

    public static func encode(_ request: WorkerRequest, into buffer: inout ByteBuffer) throws {
        switch request {
        case .transform(let call):
            buffer.writeInteger(Tag.transform.rawValue)
            write(call.tenant, into: &buffer)
            write(call.script, into: &buffer)
            buffer.writeInteger(UInt32(clamping: call.budgetMilliseconds))
            buffer.writeInteger(UInt32(call.parts.count))
            for part in call.parts {
                buffer.writeInteger(part.now.microseconds)
                write(part.samples, into: &buffer)
            }
        case .evaluate(let evaluate):
            buffer.writeInteger(Tag.evaluate.rawValue)
            write(evaluate, into: &buffer)
        case .job(let job):
            buffer.writeInteger(Tag.job.rawValue)
            try writeJSON(job, into: &buffer)
            if case .export(let export) = job {
                write(export.samples, into: &buffer)
            }
            if case .dryRun(let dryRun) = job {
                write(dryRun.samples, into: &buffer)
            }
        }
    }

    public static func decodeRequest(_ buffer: inout ByteBuffer) throws -> WorkerRequest {
        switch try tag(&buffer) {
        case .transform:
            let tenant = try readTenant(&buffer)
            let script = try readScript(&buffer)
            let budget = Int(try read(UInt32.self, &buffer))
            let count = Int(try read(UInt32.self, &buffer))
            guard count <= buffer.readableBytes / 12 else { throw WorkerProtocolError(description: "bad part count") }
            var parts: [TransformPart] = []
            parts.reserveCapacity(count)
            for _ in 0..<count {
                let now = Timestamp(microseconds: try read(Int64.self, &buffer))
                parts.append(TransformPart(now: now, samples: try readSamples(&buffer)))
            }
            return .transform(TransformCall(tenant: tenant, script: script, budgetMilliseconds: budget, parts: parts))
        case .job:
            var job = try readJSON(WorkerJob.self, &buffer)
            if case .export(var export) = job {
                export.samples = try readSamples(&buffer, allowingRollups: true)
                job = .export(export)
            }
            if case .dryRun(var dryRun) = job {
                dryRun.samples = try readSamples(&buffer)
                job = .dryRun(dryRun)
            }
            return .job(job)
        case .evaluate:
            return .evaluate(try readEvaluateJob(&buffer))
        case .evaluated:
            throw WorkerProtocolError(description: "an answer where a request belongs")
        }
    }

    // MARK: Responses

    public static func encode(_ response: WorkerResponse, into buffer: inout ByteBuffer) throws {
        switch response {
        case .transform(let results):
            buffer.writeInteger(Tag.transform.rawValue)
            buffer.writeInteger(UInt32(results.count))
            for result in results { write(result, into: &buffer) }
        case .job(.evaluated(let rules)):
            buffer.writeInteger(Tag.evaluated.rawValue)
            buffer.writeInteger(UInt32(rules.count))
            for rule in rules {
                switch rule {
                case .evaluated(let devices):
                    buffer.writeInteger(UInt8(0))
                    buffer.writeInteger(UInt32(devices.count))
                    for device in devices {
                        if let device {
                            buffer.writeInteger(UInt8(1))
                            write(device, into: &buffer)
                        } else {
                            buffer.writeInteger(UInt8(0))
                        }
                    }
                case .skipped:
                    buffer.writeInteger(UInt8(1))
                case .failed(let message):
                    buffer.writeInteger(UInt8(2))
                    writeString(message, into: &buffer)
                }
            }
        case .job(let result):
            buffer.writeInteger(Tag.job.rawValue)
            try writeJSON(result, into: &buffer)
        }
    }

    private static func write(_ job: EvaluateJob, into buffer: inout ByteBuffer) {
        write(job.tenant, into: &buffer)
        buffer.writeInteger(job.now.microseconds)
        buffer.writeInteger(UInt8(job.timer ? 1 : 0))
        buffer.writeInteger(UInt32(clamping: job.budgetMilliseconds))
        buffer.writeInteger(UInt32(job.devices.count))
        for device in job.devices {
            writeString(device.serial, into: &buffer)
            writeString(device.name, into: &buffer)
            buffer.writeInteger(UInt32(device.sampleCount))
        }
        buffer.writeInteger(UInt32(job.rules.count))
        for rule in job.rules {
            write(rule.script, into: &buffer)
            buffer.writeInteger(UInt32(rule.states.count))
            for state in rule.states { writeOptionalString(state, into: &buffer) }
        }
        write(job.samples, into: &buffer)
    }

    private static func readEvaluateJob(_ buffer: inout ByteBuffer) throws -> EvaluateJob {
        let tenant = try readTenant(&buffer)
        let now = Timestamp(microseconds: try read(Int64.self, &buffer))
        let timer = try read(UInt8.self, &buffer) == 1
        let budget = Int(try read(UInt32.self, &buffer))
        let deviceCount = Int(try read(UInt32.self, &buffer))
        guard deviceCount <= buffer.readableBytes / 12 else { throw WorkerProtocolError(description: "bad device count") }
        var devices: [EvaluateJob.Device] = []
        devices.reserveCapacity(deviceCount)
        for _ in 0..<deviceCount {
            devices.append(
                EvaluateJob.Device(serial: try readString(&buffer), name: try readString(&buffer), sampleCount: Int(try read(UInt32.self, &buffer))))
        }
        let ruleCount = Int(try read(UInt32.self, &buffer))
        // A rule takes at least 37 bytes (id, version, three lengths, the source flag, the
        // state count): a count the frame cannot hold is refused before anything is reserved.
        guard ruleCount <= buffer.readableBytes / 37 else { throw WorkerProtocolError(description: "bad rule count") }
        var rules: [EvaluateJob.Rule] = []
        rules.reserveCapacity(ruleCount)
        for _ in 0..<ruleCount {
            let script = try readScript(&buffer)
            let stateCount = Int(try read(UInt32.self, &buffer))
            guard stateCount == devices.count else { throw WorkerProtocolError(description: "a rule's states do not match the devices") }
            var states: [String?] = []
            states.reserveCapacity(stateCount)
            for _ in 0..<stateCount { states.append(try readOptionalString(&buffer)) }
            rules.append(EvaluateJob.Rule(script: script, states: states))
        }
        let samples = try readSamples(&buffer)
        guard devices.reduce(0, { $0 + $1.sampleCount }) == samples.count else {
            throw WorkerProtocolError(description: "the devices' sample counts do not add up")
        }
        return EvaluateJob(tenant: tenant, now: now, timer: timer, budgetMilliseconds: budget, devices: devices, rules: rules, samples: samples)
    }

    /// A device's evaluation: its state, failure and failed sample (-1 for none), then its
    /// steps, each its alerts.
    private static func write(_ device: DeviceEvaluation, into buffer: inout ByteBuffer) {
        writeString(device.stateJSON, into: &buffer)
        writeOptionalString(device.failure, into: &buffer)
        buffer.writeInteger(device.failedSample.map { Int64($0) } ?? -1)
        buffer.writeInteger(UInt32(device.steps.count))
        for step in device.steps {
            buffer.writeInteger(UInt32(step.count))
            for alert in step {
                writeString(alert.key, into: &buffer)
                writeString(alert.severity, into: &buffer)
                writeString(alert.message, into: &buffer)
                if let value = alert.value {
                    buffer.writeInteger(UInt8(1))
                    buffer.writeInteger(value.bitPattern)
                } else {
                    buffer.writeInteger(UInt8(0))
                }
            }
        }
    }

    private static func readDeviceEvaluation(_ buffer: inout ByteBuffer) throws -> DeviceEvaluation {
        let state = try readString(&buffer)
        let failure = try readOptionalString(&buffer)
        let failedSample = try read(Int64.self, &buffer)
        let count = Int(try read(UInt32.self, &buffer))
        guard count <= buffer.readableBytes / 4 else { throw WorkerProtocolError(description: "bad step count") }
        var steps: [[ScriptAlert]] = []
        steps.reserveCapacity(count)
        for _ in 0..<count {
            let alertCount = Int(try read(UInt32.self, &buffer))
            guard alertCount <= buffer.readableBytes else { throw WorkerProtocolError(description: "bad alert count") }
            var alerts: [ScriptAlert] = []
            for _ in 0..<alertCount {
                let key = try readString(&buffer)
                let severity = try readString(&buffer)
                let message = try readString(&buffer)
                let value = try read(UInt8.self, &buffer) == 1 ? Double(bitPattern: try read(UInt64.self, &buffer)) : nil
                alerts.append(ScriptAlert(key: key, severity: severity, message: message, value: value))
            }
            steps.append(alerts)
        }
        return DeviceEvaluation(
            steps: steps, stateJSON: state, failure: failure, failedSample: failedSample < 0 ? nil : Int(clamping: failedSample))
    }

    private static func write(_ result: TransformResult, into buffer: inout ByteBuffer) {
        switch result {
        case .transformed(let samples):
            buffer.writeInteger(TransformTag.transformed.rawValue)
            write(samples, into: &buffer)
        case .rejected(let index, let reason):
            buffer.writeInteger(TransformTag.rejected.rawValue)
            buffer.writeInteger(UInt32(index))
            writeString(reason, into: &buffer)
        case .failed(let index, let error):
            buffer.writeInteger(TransformTag.failed.rawValue)
            buffer.writeInteger(index.map { Int64($0) } ?? -1)
            writeString(error, into: &buffer)
        case .needsSource:
            buffer.writeInteger(TransformTag.needsSource.rawValue)
        }
    }

    public static func decodeResponse(_ buffer: inout ByteBuffer) throws -> WorkerResponse {
        switch try tag(&buffer) {
        case .transform:
            let count = Int(try read(UInt32.self, &buffer))
            guard count <= buffer.readableBytes else { throw WorkerProtocolError(description: "bad result count") }
            var results: [TransformResult] = []
            results.reserveCapacity(count)
            for _ in 0..<count { results.append(try readTransformResult(&buffer)) }
            return .transform(results)
        case .job:
            return .job(try readJSON(WorkerJobResult.self, &buffer))
        case .evaluated:
            let count = Int(try read(UInt32.self, &buffer))
            guard count <= buffer.readableBytes else { throw WorkerProtocolError(description: "bad rule count") }
            var rules: [RuleEvaluation] = []
            for _ in 0..<count {
                switch try read(UInt8.self, &buffer) {
                case 0:
                    let deviceCount = Int(try read(UInt32.self, &buffer))
                    guard deviceCount <= buffer.readableBytes else { throw WorkerProtocolError(description: "bad device count") }
                    var devices: [DeviceEvaluation?] = []
                    devices.reserveCapacity(deviceCount)
                    for _ in 0..<deviceCount {
                        devices.append(try read(UInt8.self, &buffer) == 1 ? try readDeviceEvaluation(&buffer) : nil)
                    }
                    rules.append(.evaluated(devices))
                case 1: rules.append(.skipped)
                case 2: rules.append(.failed(try readString(&buffer)))
                default: throw WorkerProtocolError(description: "unknown rule evaluation")
                }
            }
            return .job(.evaluated(rules))
        case .evaluate:
            throw WorkerProtocolError(description: "a request where an answer belongs")
        }
    }

    private static func readTransformResult(_ buffer: inout ByteBuffer) throws -> TransformResult {
        guard let tag = TransformTag(rawValue: try read(UInt8.self, &buffer)) else {
            throw WorkerProtocolError(description: "unknown transform result")
        }
        switch tag {
        case .transformed:
            return .transformed(try readSamples(&buffer))
        case .rejected:
            let index = Int(try read(UInt32.self, &buffer))
            return .rejected(index: index, reason: try readString(&buffer))
        case .failed:
            let index = try read(Int64.self, &buffer)
            return .failed(index: index < 0 ? nil : Int(index), error: try readString(&buffer))
        case .needsSource:
            return .needsSource
        }
    }

    // MARK: Fields

    private static func tag(_ buffer: inout ByteBuffer) throws -> Tag {
        guard let tag = Tag(rawValue: try read(UInt8.self, &buffer)) else {
            throw WorkerProtocolError(description: "unknown message kind")
        }
        return tag
    }

    private static func read<Value: FixedWidthInteger>(_ type: Value.Type, _ buffer: inout ByteBuffer) throws -> Value {
        guard let value = buffer.readInteger(as: Value.self) else { throw WorkerProtocolError(description: "truncated frame") }
        return value
    }

    private static func writeString(_ string: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(string.utf8.count))
        buffer.writeString(string)
    }

    private static func readString(_ buffer: inout ByteBuffer) throws -> String {
        let length = Int(try read(UInt32.self, &buffer))
        guard let string = buffer.readString(length: length) else { throw WorkerProtocolError(description: "truncated string") }
        return string
    }

    private static func writeOptionalString(_ string: String?, into buffer: inout ByteBuffer) {
        if let string {
            buffer.writeInteger(UInt8(1))
            writeString(string, into: &buffer)
        } else {
            buffer.writeInteger(UInt8(0))
        }
    }

    private static func readOptionalString(_ buffer: inout ByteBuffer) throws -> String? {
        try read(UInt8.self, &buffer) == 0 ? nil : try readString(&buffer)
    }

    private static func readUUID(_ buffer: inout ByteBuffer) throws -> UUID {
        guard let bytes = buffer.readBytes(length: 16) else { throw WorkerProtocolError(description: "truncated id") }
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }

    private static func write(_ tenant: WorkerTenant, into buffer: inout ByteBuffer) {
        buffer.writeBytes(tenant.id.bytes)
        writeString(tenant.slug, into: &buffer)
        writeString(tenant.tier, into: &buffer)
        buffer.writeInteger(Int64(tenant.memoryBytes))
    }

    private static func write(_ script: WorkerScript, into buffer: inout ByteBuffer) {
        buffer.writeBytes(script.id.bytes)
        buffer.writeInteger(Int64(script.version))
        writeString(script.name, into: &buffer)
        writeString(script.configJSON, into: &buffer)
        writeOptionalString(script.source, into: &buffer)
    }

    private static func readScript(_ buffer: inout ByteBuffer) throws -> WorkerScript {
        WorkerScript(
            id: try readUUID(&buffer), version: Int(try read(Int64.self, &buffer)), name: try readString(&buffer),
            configJSON: try readString(&buffer), source: try readOptionalString(&buffer))
    }

    private static func readTenant(_ buffer: inout ByteBuffer) throws -> WorkerTenant {
        WorkerTenant(
            id: try readUUID(&buffer), slug: try readString(&buffer), tier: try readString(&buffer),
            memoryBytes: Int(try read(Int64.self, &buffer)))
    }

    /// Bytes of one sample besides its serial: the serial's length (4), time (8), mode (1),
    /// inside (8), flags (1: outside present, rollup follows) and outside (8), setpoint (8),
    /// hysteresis (8), output (1).
    private static let fixedSampleBytes = 47
    /// Bytes of a rollup after its sample: resolution and count (8 each), eight doubles.
    private static let rollupBytes = 80
    private static let hasOutsideFlag: UInt8 = 1
    private static let hasRollupFlag: UInt8 = 2

    /// Samples as fixed little-endian records, written in one pass over raw memory: per-field
    /// `ByteBuffer` calls cost more than the Lua call they carry.
    private static func write(_ samples: [TelemetrySample], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(samples.count))
        let total = samples.reduce(0) { $0 + fixedSampleBytes + $1.deviceSerial.utf8.count + ($1.rollup == nil ? 0 : rollupBytes) }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { space in
            var offset = 0
            func store<Value: FixedWidthInteger>(_ value: Value) {
                space.storeBytes(of: value.littleEndian, toByteOffset: offset, as: Value.self)
                offset += MemoryLayout<Value>.size
            }
            for sample in samples {
                var serial = sample.deviceSerial
                serial.withUTF8 { bytes in
                    store(UInt32(bytes.count))
                    UnsafeMutableRawBufferPointer(rebasing: space[offset..<offset + bytes.count]).copyMemory(from: UnsafeRawBufferPointer(bytes))
                    offset += bytes.count
                }
                store(sample.timestamp.microseconds)
                store(modeCode(sample.mode))
                store(sample.tempInside.bitPattern)
                store((sample.tempOutside == nil ? 0 : hasOutsideFlag) | (sample.rollup == nil ? 0 : hasRollupFlag))
                store((sample.tempOutside ?? 0).bitPattern)
                store(sample.setpoint.bitPattern)
                store(sample.hysteresis.bitPattern)
                store(outputCode(sample.output))
                if let rollup = sample.rollup {
                    store(Int64(rollup.resolutionSeconds))
                    store(Int64(rollup.count))
                    store(rollup.tempInsideMin.bitPattern)
                    store(rollup.tempInsideMax.bitPattern)
                    store((rollup.tempOutsideMin ?? .nan).bitPattern)
                    store((rollup.tempOutsideMax ?? .nan).bitPattern)
                    store(rollup.setpointMin.bitPattern)
                    store(rollup.setpointMax.bitPattern)
                    store(rollup.heatingShare.bitPattern)
                    store(rollup.coolingShare.bitPattern)
                }
            }
            return offset
        }
    }

    /// Reads samples; only an export's rows may be rollups (what a worker answers never is).
    private static func readSamples(_ buffer: inout ByteBuffer, allowingRollups: Bool = false) throws -> [TelemetrySample] {
        let count = Int(try read(UInt32.self, &buffer))
        // A count larger than the frame can hold is a lie.
        guard count <= buffer.readableBytes / fixedSampleBytes else { throw WorkerProtocolError(description: "bad sample count") }
        return try buffer.readWithUnsafeReadableBytes { bytes -> (Int, [TelemetrySample]) in
            var offset = 0
            func load<Value: FixedWidthInteger>(_ type: Value.Type) throws -> Value {
                guard offset + MemoryLayout<Value>.size <= bytes.count else { throw WorkerProtocolError(description: "truncated sample") }
                defer { offset += MemoryLayout<Value>.size }
                return Value(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Value.self))
            }
            var samples: [TelemetrySample] = []
            samples.reserveCapacity(count)
            for _ in 0..<count {
                let length = Int(try load(UInt32.self))
                guard offset + length <= bytes.count else { throw WorkerProtocolError(description: "truncated serial") }
                let serial = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length]), as: UTF8.self)
                offset += length
                let time = Timestamp(microseconds: try load(Int64.self))
                let mode = try mode(try load(UInt8.self))
                let inside = Double(bitPattern: try load(UInt64.self))
                let flags = try load(UInt8.self)
                guard flags & ~(hasOutsideFlag | hasRollupFlag) == 0, allowingRollups || flags & hasRollupFlag == 0 else {
                    throw WorkerProtocolError(description: "bad sample flags")
                }
                let outside = Double(bitPattern: try load(UInt64.self))
                let setpoint = Double(bitPattern: try load(UInt64.self))
                let hysteresis = Double(bitPattern: try load(UInt64.self))
                let output = try output(try load(UInt8.self))
                var rollup: SampleRollup?
                if flags & hasRollupFlag != 0 {
                    let resolution = Int(try load(Int64.self))
                    let count = Int(try load(Int64.self))
                    func double() throws -> Double { Double(bitPattern: try load(UInt64.self)) }
                    let insideMin = try double()
                    let insideMax = try double()
                    let outsideMin = try double()
                    let outsideMax = try double()
                    rollup = SampleRollup(
                        resolutionSeconds: resolution, count: count, tempInsideMin: insideMin, tempInsideMax: insideMax,
                        tempOutsideMin: outsideMin.isNaN ? nil : outsideMin, tempOutsideMax: outsideMax.isNaN ? nil : outsideMax,
                        setpointMin: try double(), setpointMax: try double(), heatingShare: try double(),
                        coolingShare: try double())
                }
                samples.append(
                    TelemetrySample(
                        deviceSerial: serial, timestamp: time, mode: mode, tempInside: inside,
                        tempOutside: flags & hasOutsideFlag != 0 ? outside : nil, setpoint: setpoint, hysteresis: hysteresis,
                        output: output, rollup: rollup))
            }
            return (offset, samples)
        }
    }

    // Codes by hand: `allCases` builds an array on every use.
    private static func modeCode(_ mode: ThermostatMode) -> UInt8 {
        switch mode {
        case .off: 0
        case .heat: 1
        case .cool: 2
        case .auto: 3
        }
    }

    private static func mode(_ code: UInt8) throws -> ThermostatMode {
        switch code {
        case 0: .off
        case 1: .heat
        case 2: .cool
        case 3: .auto
        default: throw WorkerProtocolError(description: "bad mode")
        }
    }

    private static func outputCode(_ output: ThermostatOutput) -> UInt8 {
        switch output {
        case .off: 0
        case .heatOn: 1
        case .coolOn: 2
        }
    }

    private static func output(_ code: UInt8) throws -> ThermostatOutput {
        switch code {
        case 0: .off
        case 1: .heatOn
        case 2: .coolOn
        default: throw WorkerProtocolError(description: "bad output")
        }
    }

    private static func writeJSON<Value: Encodable>(_ value: Value, into buffer: inout ByteBuffer) throws {
        let data = try JSONEncoder().encode(value)
        buffer.writeInteger(UInt32(data.count))
        buffer.writeBytes(data)
    }

    private static func readJSON<Value: Decodable>(_ type: Value.Type, _ buffer: inout ByteBuffer) throws -> Value {
        let length = Int(try read(UInt32.self, &buffer))
        guard let bytes = buffer.readBytes(length: length) else { throw WorkerProtocolError(description: "truncated JSON") }
        return try JSONDecoder().decode(Value.self, from: Data(bytes))
    }
}

extension UUID {
    fileprivate var bytes: [UInt8] {
        withUnsafeBytes(of: uuid) { Array($0) }
    }
}
