import Foundation

/// A decoded and validated ingest request body: one sample or a batch.
///
/// Decoding is strict: unknown fields, wrong types and unknown enum values are rejected with
/// the offending field named (`samples[3].temp_inside_c`), and a batch with one bad sample is
/// rejected whole.
public struct IngestPayload: Sendable {
    public var samples: [TelemetrySample]

    public init(samples: [TelemetrySample]) {
        self.samples = samples
    }

    /// Decodes and validates a request body for the device `serial` at server time `now`.
    public static func decode(_ body: some DataProtocol, serial: String, now: Timestamp) throws(PlatformError)
        -> IngestPayload
    {
        let data = body as? Data ?? Data(body)
        let decoded: Envelope
        do {
            decoded = try JSONDecoder().decode(Envelope.self, from: data)
        } catch let error as PlatformError {
            throw error
        } catch let DecodingError.typeMismatch(_, context) {
            throw .invalid(fieldPath(context.codingPath), "has the wrong type", code: "wrong_type")
        } catch let DecodingError.valueNotFound(_, context) {
            throw .invalid(fieldPath(context.codingPath), "must not be null", code: "missing_field")
        } catch let DecodingError.keyNotFound(key, context) {
            throw .invalid(fieldPath(context.codingPath + [key]), "is required", code: "missing_field")
        } catch {
            throw .malformed("Request body is not valid JSON")
        }
        if decoded.samples.isEmpty {
            throw .invalid("samples", "must contain at least one sample")
        }
        if decoded.samples.count > TelemetryRules.maximumSamplesPerRequest {
            throw PlatformError(
                .payloadTooLarge, code: "too_many_samples",
                message: "At most \(TelemetryRules.maximumSamplesPerRequest) samples per request", field: "samples")
        }
        let latest = now.adding(seconds: TelemetryRules.maximumFutureSkewSeconds)
        for (index, sample) in decoded.samples.enumerated() {
            let prefix = decoded.isBatch ? "samples[\(index)]." : ""
            if sample.deviceSerial != serial {
                throw .invalid(prefix + "device_id", "does not match the authenticated device", code: "device_mismatch")
            }
            if sample.timestamp > latest {
                throw .invalid(prefix + "timestamp", "is more than 5 minutes in the future", code: "timestamp_in_future")
            }
            if sample.timestamp < TelemetryRules.earliestTimestamp {
                throw .invalid(prefix + "timestamp", "is before 2000-01-01", code: "timestamp_too_old")
            }
        }
        return IngestPayload(samples: decoded.samples)
    }
}

private func fieldPath(_ path: [any CodingKey]) -> String {
    var out = ""
    for key in path {
        if let index = key.intValue {
            out += "[\(index)]"
        } else {
            out += out.isEmpty ? key.stringValue : "." + key.stringValue
        }
    }
    return out.isEmpty ? "body" : out
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

private struct Envelope: Decodable {
    var samples: [TelemetrySample]
    var isBatch: Bool

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        if container.contains(AnyKey(stringValue: "samples")) {
            for key in container.allKeys where key.stringValue != "samples" {
                throw PlatformError.invalid(key.stringValue, "is not a known field", code: "unknown_field")
            }
            samples = try container.decode([TelemetrySample].self, forKey: AnyKey(stringValue: "samples"))
            isBatch = true
        } else {
            samples = [try TelemetrySample(from: decoder)]
            isBatch = false
        }
    }
}

extension TelemetrySample: Decodable {
    private static let knownFields: Set<String> = [
        "device_id", "mode", "temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c", "output", "timestamp",
    ]

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        let prefix = fieldPath(decoder.codingPath)
        func name(_ field: String) -> String { prefix == "body" ? field : prefix + "." + field }
        for key in container.allKeys where !Self.knownFields.contains(key.stringValue) {
            throw PlatformError.invalid(name(key.stringValue), "is not a known field", code: "unknown_field")
        }
        func string(_ field: String) throws -> String {
            try container.decode(String.self, forKey: AnyKey(stringValue: field))
        }
        func number(_ field: String, _ range: ClosedRange<Double>) throws -> Double {
            let value = try container.decode(Double.self, forKey: AnyKey(stringValue: field))
            guard value.isFinite, range.contains(value) else {
                throw PlatformError.invalid(
                    name(field), "must be between \(range.lowerBound) and \(range.upperBound)", code: "out_of_range")
            }
            return value
        }
        deviceSerial = try string("device_id")
        let modeText = try string("mode")
        guard let mode = ThermostatMode(rawValue: modeText) else {
            throw PlatformError.invalid(name("mode"), "must be one of OFF, HEAT, COOL, AUTO", code: "invalid_enum")
        }
        self.mode = mode
        let outputText = try string("output")
        guard let output = ThermostatOutput(rawValue: outputText) else {
            throw PlatformError.invalid(name("output"), "must be one of OFF, HEAT_ON, COOL_ON", code: "invalid_enum")
        }
        self.output = output
        tempInside = try number("temp_inside_c", TelemetryRules.temperatureRange)
        let outsideKey = AnyKey(stringValue: "temp_outside_c")
        if try !container.contains(outsideKey) || container.decodeNil(forKey: outsideKey) {
            tempOutside = nil
        } else {
            tempOutside = try number("temp_outside_c", TelemetryRules.temperatureRange)
        }
        setpoint = try number("setpoint_c", TelemetryRules.setpointRange)
        hysteresis = try number("hysteresis_c", TelemetryRules.hysteresisRange)
        guard let timestamp = Timestamp(iso8601: try string("timestamp")) else {
            throw PlatformError.invalid(
                name("timestamp"), "must be an ISO 8601 date-time with a zone, e.g. 2026-11-29T07:00:00Z",
                code: "invalid_timestamp")
        }
        self.timestamp = timestamp
    }
}
