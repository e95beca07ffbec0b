import Foundation
import NIOCore
import PlatformCore
import Scripting

/// A frame that does not decode: the peer is broken or not a worker of this build.
public struct WorkerProtocolError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The worker protocol's payloads (framing is `WorkerFraming`'s). The ingest path is encoded
/// by hand, field by field, since it runs per request; the rare jobs travel as JSON, with any
/// samples in the same compact binary form after it.
public enum WorkerCodec {
    private enum Tag: UInt8 {
        case transform = 1
        case job = 2
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
            buffer.writeBytes(call.script.id.bytes)
            buffer.writeInteger(Int64(call.script.version))
            writeString(call.script.name, into: &buffer)
            writeString(call.script.configJSON, into: &buffer)
            writeOptionalString(call.script.source, into: &buffer)
            buffer.writeInteger(call.now.microseconds)
            buffer.writeInteger(UInt32(clamping: call.budgetMilliseconds))
            write(call.samples, into: &buffer)
        case .job(let job):
            buffer.writeInteger(Tag.job.rawValue)
            try writeJSON(job, into: &buffer)
            if case .dryRun(let dryRun) = job {
                write(dryRun.samples, into: &buffer)
            }
        }
    }

    public static func decodeRequest(_ buffer: inout ByteBuffer) throws -> WorkerRequest {
        switch try tag(&buffer) {
        case .transform:
            let tenant = try readTenant(&buffer)
            let script = WorkerScript(
                id: try readUUID(&buffer), version: Int(try read(Int64.self, &buffer)), name: try readString(&buffer),
                configJSON: try readString(&buffer), source: try readOptionalString(&buffer))
            let now = Timestamp(microseconds: try read(Int64.self, &buffer))
            let budget = Int(try read(UInt32.self, &buffer))
            return .transform(
                TransformCall(tenant: tenant, script: script, now: now, budgetMilliseconds: budget, samples: try readSamples(&buffer)))
        case .job:
            var job = try readJSON(WorkerJob.self, &buffer)
            if case .dryRun(var dryRun) = job {
                dryRun.samples = try readSamples(&buffer)
                job = .dryRun(dryRun)
            }
            return .job(job)
        }
    }

    // MARK: Responses

    public static func encode(_ response: WorkerResponse, into buffer: inout ByteBuffer) throws {
        switch response {
        case .transform(let result):
            buffer.writeInteger(Tag.transform.rawValue)
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
        case .job(let result):
            buffer.writeInteger(Tag.job.rawValue)
            try writeJSON(result, into: &buffer)
        }
    }

    public static func decodeResponse(_ buffer: inout ByteBuffer) throws -> WorkerResponse {
        switch try tag(&buffer) {
        case .transform:
            guard let tag = TransformTag(rawValue: try read(UInt8.self, &buffer)) else {
                throw WorkerProtocolError(description: "unknown transform result")
            }
            switch tag {
            case .transformed:
                return .transform(.transformed(try readSamples(&buffer)))
            case .rejected:
                let index = Int(try read(UInt32.self, &buffer))
                return .transform(.rejected(index: index, reason: try readString(&buffer)))
            case .failed:
                let index = try read(Int64.self, &buffer)
                return .transform(.failed(index: index < 0 ? nil : Int(index), error: try readString(&buffer)))
            case .needsSource:
                return .transform(.needsSource)
            }
        case .job:
            return .job(try readJSON(WorkerJobResult.self, &buffer))
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

    private static func readTenant(_ buffer: inout ByteBuffer) throws -> WorkerTenant {
        WorkerTenant(
            id: try readUUID(&buffer), slug: try readString(&buffer), tier: try readString(&buffer),
            memoryBytes: Int(try read(Int64.self, &buffer)))
    }

    private static func write(_ samples: [TelemetrySample], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(samples.count))
        for sample in samples {
            writeString(sample.deviceSerial, into: &buffer)
            buffer.writeInteger(sample.timestamp.microseconds)
            buffer.writeInteger(modeCode(sample.mode))
            buffer.writeInteger(sample.tempInside.bitPattern)
            buffer.writeInteger(sample.tempOutside == nil ? UInt8(0) : UInt8(1))
            buffer.writeInteger((sample.tempOutside ?? 0).bitPattern)
            buffer.writeInteger(sample.setpoint.bitPattern)
            buffer.writeInteger(sample.hysteresis.bitPattern)
            buffer.writeInteger(outputCode(sample.output))
        }
    }

    private static func readSamples(_ buffer: inout ByteBuffer) throws -> [TelemetrySample] {
        let count = Int(try read(UInt32.self, &buffer))
        // Each sample takes at least 46 bytes: a count larger than the frame can hold is a lie.
        guard count <= buffer.readableBytes / 46 else { throw WorkerProtocolError(description: "bad sample count") }
        var samples: [TelemetrySample] = []
        samples.reserveCapacity(count)
        for _ in 0..<count {
            let serial = try readString(&buffer)
            let time = Timestamp(microseconds: try read(Int64.self, &buffer))
            let mode = try mode(try read(UInt8.self, &buffer))
            let inside = Double(bitPattern: try read(UInt64.self, &buffer))
            let hasOutside = try read(UInt8.self, &buffer) != 0
            let outside = Double(bitPattern: try read(UInt64.self, &buffer))
            let setpoint = Double(bitPattern: try read(UInt64.self, &buffer))
            let hysteresis = Double(bitPattern: try read(UInt64.self, &buffer))
            let output = try output(try read(UInt8.self, &buffer))
            samples.append(
                TelemetrySample(
                    deviceSerial: serial, timestamp: time, mode: mode, tempInside: inside, tempOutside: hasOutside ? outside : nil,
                    setpoint: setpoint, hysteresis: hysteresis, output: output))
        }
        return samples
    }

    private static func modeCode(_ mode: ThermostatMode) -> UInt8 {
        UInt8(ThermostatMode.allCases.firstIndex(of: mode)!)
    }

    private static func mode(_ code: UInt8) throws -> ThermostatMode {
        guard Int(code) < ThermostatMode.allCases.count else { throw WorkerProtocolError(description: "bad mode") }
        return ThermostatMode.allCases[Int(code)]
    }

    private static func outputCode(_ output: ThermostatOutput) -> UInt8 {
        UInt8(ThermostatOutput.allCases.firstIndex(of: output)!)
    }

    private static func output(_ code: UInt8) throws -> ThermostatOutput {
        guard Int(code) < ThermostatOutput.allCases.count else { throw WorkerProtocolError(description: "bad output") }
        return ThermostatOutput.allCases[Int(code)]
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
