/// A strict, allocation-light JSON parser for ingest bodies: one sample object or
/// `{"samples": [...]}`.
///
/// Ingest is the hottest path of the platform and a general `JSONDecoder` spends most of its
/// time on generic containers; this parser reads the bytes once and builds `TelemetrySample`s
/// directly. It accepts exactly RFC 8259 JSON. The first field error is remembered while
/// parsing goes on, so a syntax error anywhere still wins (400 before 422).
struct TelemetryJSONParser {
    struct Body {
        var samples: [TelemetrySample]
        var isBatch: Bool
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    /// Off when ingest scripts run first: they may convert units, and their output is checked.
    private let checksRanges: Bool
    private var position = 0
    private var fieldError: PlatformError?
    private static let maximumDepth = 32

    init(bytes: UnsafeBufferPointer<UInt8>, checksRanges: Bool) {
        self.bytes = bytes
        self.checksRanges = checksRanges
    }

    mutating func parseBody() throws(PlatformError) -> Body {
        skipWhitespace()
        guard peek() == UInt8(ascii: "{") else {
            throw syntaxError(position < bytes.count ? "Request body must be a JSON object" : "Request body is empty")
        }
        position += 1
        var single = SampleFields()
        var firstSingleKey: String?
        var samples: [TelemetrySample]?
        try parseMembers { parser, key throws(PlatformError) in
            if key.matches("samples") {
                samples = try parser.parseSampleArray()
            } else {
                if firstSingleKey == nil { firstSingleKey = key.string }
                try parser.parseField(key, into: &single, prefix: "")
            }
        }
        skipWhitespace()
        guard position == bytes.count else { throw syntaxError("Unexpected data after the JSON object") }
        if let samples {
            if let extra = firstSingleKey {
                throw PlatformError.invalid(extra, "is not a known field", code: "unknown_field")
            }
            if let fieldError { throw fieldError }
            guard !samples.isEmpty else { throw PlatformError.invalid("samples", "must contain at least one sample") }
            return Body(samples: samples, isBatch: true)
        }
        if let fieldError { throw fieldError }
        return Body(samples: [try single.build(prefix: "")], isBatch: false)
    }

    // MARK: Samples

    private mutating func parseSampleArray() throws(PlatformError) -> [TelemetrySample] {
        skipWhitespace()
        guard peek() == UInt8(ascii: "[") else {
            recordFieldError(.invalid("samples", "must be an array of samples", code: "wrong_type"))
            try skipValue(depth: 1)
            return []
        }
        position += 1
        var samples: [TelemetrySample] = []
        samples.reserveCapacity(min(bytes.count / 150, TelemetryRules.maximumSamplesPerRequest))
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            position += 1
            return samples
        }
        var index = 0
        while true {
            if index == TelemetryRules.maximumSamplesPerRequest {
                throw PlatformError(
                    .payloadTooLarge, code: "too_many_samples",
                    message: "At most \(TelemetryRules.maximumSamplesPerRequest) samples per request", field: "samples")
            }
            let prefix = "samples[\(index)]."
            skipWhitespace()
            if peek() == UInt8(ascii: "{") {
                position += 1
                var fields = SampleFields()
                try parseMembers { parser, key throws(PlatformError) in
                    try parser.parseField(key, into: &fields, prefix: prefix)
                }
                if fieldError == nil {
                    do throws(PlatformError) {
                        samples.append(try fields.build(prefix: prefix))
                    } catch {
                        recordFieldError(error)
                    }
                }
            } else {
                recordFieldError(.invalid("samples[\(index)]", "must be a sample object", code: "wrong_type"))
                try skipValue(depth: 2)
            }
            index += 1
            skipWhitespace()
            switch next() {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "]"): return samples
            default: throw syntaxError("Expected ',' or ']' in the samples array")
            }
        }
    }

    private mutating func parseField(_ key: Key, into fields: inout SampleFields, prefix: String) throws(PlatformError) {
        skipWhitespace()
        switch key.field {
        case .deviceID:
            fields.deviceID = try parseStringField(key, prefix: prefix)?.string
        case .mode:
            fields.mode = try parseEnumField(key, prefix: prefix, name: "mode", ThermostatMode.init(utf8:)) ?? fields.mode
        case .output:
            fields.output = try parseEnumField(key, prefix: prefix, name: "output", ThermostatOutput.init(utf8:)) ?? fields.output
        case .timestamp:
            if let text = try parseStringField(key, prefix: prefix) {
                if let timestamp = text.withBytes({ Timestamp.parse($0) }) {
                    fields.timestamp = timestamp
                } else {
                    recordFieldError(
                        .invalid(
                            prefix + "timestamp", "must be an ISO 8601 date-time with a zone, e.g. 2026-11-29T07:00:00Z",
                            code: "invalid_timestamp"))
                }
            }
        case .tempInside:
            fields.tempInside = try parseNumberField(key, prefix: prefix, range: TelemetryRules.temperatureRange)
        case .tempOutside:
            if peek() == UInt8(ascii: "n") {
                try expectLiteral("null")
                fields.tempOutsideIsNull = true
            } else {
                fields.tempOutside = try parseNumberField(key, prefix: prefix, range: TelemetryRules.temperatureRange)
            }
        case .setpoint:
            fields.setpoint = try parseNumberField(key, prefix: prefix, range: TelemetryRules.setpointRange)
        case .hysteresis:
            fields.hysteresis = try parseNumberField(key, prefix: prefix, range: TelemetryRules.hysteresisRange)
        case nil:
            recordFieldError(.invalid(prefix + key.string, "is not a known field", code: "unknown_field"))
            try skipValue(depth: 2)
        }
    }

    /// A string value, or nil after recording a type error.
    private mutating func parseStringField(_ key: Key, prefix: String) throws(PlatformError) -> JSONText? {
        switch peek() {
        case UInt8(ascii: "\""):
            return try parseString()
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            recordFieldError(.invalid(prefix + key.string, "must not be null", code: "missing_field"))
            return nil
        default:
            recordFieldError(.invalid(prefix + key.string, "has the wrong type", code: "wrong_type"))
            try skipValue(depth: 2)
            return nil
        }
    }

    private mutating func parseNumberField(_ key: Key, prefix: String, range: ClosedRange<Double>) throws(PlatformError)
        -> Double?
    {
        switch peek() {
        case UInt8(ascii: "-")?, (UInt8(ascii: "0")...UInt8(ascii: "9"))?:
            let value = try parseNumber()
            guard value.isFinite, !checksRanges || range.contains(value) else {
                recordFieldError(
                    .invalid(
                        prefix + key.string, "must be between \(range.lowerBound) and \(range.upperBound)",
                        code: "out_of_range"))
                return nil
            }
            return value
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            recordFieldError(.invalid(prefix + key.string, "must not be null", code: "missing_field"))
            return nil
        default:
            recordFieldError(.invalid(prefix + key.string, "has the wrong type", code: "wrong_type"))
            try skipValue(depth: 2)
            return nil
        }
    }

    /// A string field naming one case of `Value`; an unknown name is recorded as a field error
    /// listing the allowed ones, and nil (or a JSON null) leaves the field unset.
    private mutating func parseEnumField<Value: RawRepresentable<String> & CaseIterable>(
        _ key: Key, prefix: String, name: String, _ make: (UnsafeBufferPointer<UInt8>) -> Value?
    ) throws(PlatformError) -> Value? {
        guard let text = try parseStringField(key, prefix: prefix) else { return nil }
        if let value = text.withBytes(make) { return value }
        let allowed = Value.allCases.map(\.rawValue).joined(separator: ", ")
        recordFieldError(.invalid(prefix + name, "must be one of \(allowed)", code: "invalid_enum"))
        return nil
    }

    private mutating func recordFieldError(_ error: PlatformError) {
        if fieldError == nil { fieldError = error }
    }

    // MARK: JSON grammar

    /// Parses `"key": value` pairs up to the closing brace; the opening brace is consumed.
    private mutating func parseMembers(_ member: (inout TelemetryJSONParser, Key) throws(PlatformError) -> Void)
        throws(PlatformError)
    {
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            position += 1
            return
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw syntaxError("Expected a field name") }
            let key = Key(text: try parseString())
            skipWhitespace()
            guard next() == UInt8(ascii: ":") else { throw syntaxError("Expected ':' after a field name") }
            try member(&self, key)
            skipWhitespace()
            switch next() {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "}"): return
            default: throw syntaxError("Expected ',' or '}' in an object")
            }
        }
    }

    private mutating func skipValue(depth: Int) throws(PlatformError) {
        guard depth <= Self.maximumDepth else { throw syntaxError("JSON is nested too deeply") }
        skipWhitespace()
        switch peek() {
        case UInt8(ascii: "\""):
            _ = try parseString()
        case UInt8(ascii: "{"):
            position += 1
            try parseMembers { parser, _ throws(PlatformError) in try parser.skipValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            position += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "]") {
                position += 1
                return
            }
            while true {
                try skipValue(depth: depth + 1)
                skipWhitespace()
                switch next() {
                case UInt8(ascii: ","): continue
                case UInt8(ascii: "]"): return
                default: throw syntaxError("Expected ',' or ']' in an array")
                }
            }
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        case UInt8(ascii: "-")?, (UInt8(ascii: "0")...UInt8(ascii: "9"))?: _ = try parseNumber()
        default: throw syntaxError("Expected a JSON value")
        }
    }

    private mutating func parseString() throws(PlatformError) -> JSONText {
        position += 1
        let start = position
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: bytes[start..<position])
                position += 1
                return JSONText(raw: raw, decoded: [])
            }
            if byte == UInt8(ascii: "\\") { return try parseEscapedString(from: start) }
            if byte < 0x20 { throw syntaxError("Control character in a string") }
            position += 1
        }
        throw syntaxError("Unterminated string")
    }

    private mutating func parseEscapedString(from start: Int) throws(PlatformError) -> JSONText {
        var out = Array(bytes[start..<position])
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                return JSONText(raw: nil, decoded: out)
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { break }
                let escape = bytes[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard next() == UInt8(ascii: "\\"), next() == UInt8(ascii: "u") else {
                            throw syntaxError("Unpaired surrogate in a string")
                        }
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw syntaxError("Unpaired surrogate in a string") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw syntaxError("Unpaired surrogate in a string")
                    }
                    out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                default:
                    throw syntaxError("Invalid escape in a string")
                }
            default:
                if byte < 0x20 { throw syntaxError("Control character in a string") }
                out.append(byte)
            }
        }
        throw syntaxError("Unterminated string")
    }

    private mutating func parseHex4() throws(PlatformError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard position < bytes.count else { throw syntaxError("Truncated \\u escape") }
            let byte = bytes[position]
            position += 1
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw syntaxError("Invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// Validates the RFC 8259 number grammar, then converts the token.
    private mutating func parseNumber() throws(PlatformError) -> Double {
        let start = position
        if peek() == UInt8(ascii: "-") { position += 1 }
        guard let first = peek(), isDigit(first) else { throw syntaxError("Invalid number") }
        position += 1
        if first != UInt8(ascii: "0") {
            while let byte = peek(), isDigit(byte) { position += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            position += 1
            guard let byte = peek(), isDigit(byte) else { throw syntaxError("Invalid number") }
            while let byte = peek(), isDigit(byte) { position += 1 }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            position += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { position += 1 }
            guard let byte = peek(), isDigit(byte) else { throw syntaxError("Invalid number") }
            while let byte = peek(), isDigit(byte) { position += 1 }
        }
        let token = UnsafeBufferPointer(rebasing: bytes[start..<position])
        guard let value = Double(String(decoding: token, as: UTF8.self)) else { throw syntaxError("Invalid number") }
        return value
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(PlatformError) {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw syntaxError("Invalid literal") }
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: count)
        for offset in 0..<count where bytes[position + offset] != expected[offset] {
            throw syntaxError("Invalid literal")
        }
        position += count
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func next() -> UInt8? {
        guard position < bytes.count else { return nil }
        defer { position += 1 }
        return bytes[position]
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private func syntaxError(_ message: String) -> PlatformError {
        .malformed("Request body is not valid JSON: \(message) at byte \(position)")
    }
}

/// A JSON string's bytes: a view into the body when it had no escapes (the common case, no
/// allocation), otherwise the decoded copy. Valid only while the body is.
private struct JSONText {
    var raw: UnsafeBufferPointer<UInt8>?
    var decoded: [UInt8]

    func withBytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        if let raw { return body(raw) }
        return decoded.withUnsafeBufferPointer(body)
    }

    var string: String { withBytes { String(decoding: $0, as: UTF8.self) } }
}

/// A member name, with the sample field it names if any.
private struct Key {
    enum Field {
        case deviceID, mode, tempInside, tempOutside, setpoint, hysteresis, output, timestamp
    }

    let text: JSONText
    let field: Field?

    init(text: JSONText) {
        self.text = text
        field = text.withBytes { bytes in Self.fields.first { $0.0.elementsEqual(bytes) }?.1 }
    }

    private static let fields: [([UInt8], Field)] = [
        (Array("device_id".utf8), .deviceID), (Array("mode".utf8), .mode), (Array("temp_inside_c".utf8), .tempInside),
        (Array("temp_outside_c".utf8), .tempOutside), (Array("setpoint_c".utf8), .setpoint),
        (Array("hysteresis_c".utf8), .hysteresis), (Array("output".utf8), .output), (Array("timestamp".utf8), .timestamp),
    ]

    func matches(_ name: StaticString) -> Bool {
        text.withBytes { $0.elementsEqual(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)) }
    }

    var string: String { text.string }
}

/// The fields of one sample as they are found, in any order.
private struct SampleFields {
    var deviceID: String?
    var mode: ThermostatMode?
    var output: ThermostatOutput?
    var tempInside: Double?
    var tempOutside: Double?
    var tempOutsideIsNull = false
    var setpoint: Double?
    var hysteresis: Double?
    var timestamp: Timestamp?

    func build(prefix: String) throws(PlatformError) -> TelemetrySample {
        func missing(_ field: String) -> PlatformError {
            .invalid(prefix + field, "is required", code: "missing_field")
        }
        guard let deviceID else { throw missing("device_id") }
        guard let mode else { throw missing("mode") }
        guard let output else { throw missing("output") }
        guard let tempInside else { throw missing("temp_inside_c") }
        guard let setpoint else { throw missing("setpoint_c") }
        guard let hysteresis else { throw missing("hysteresis_c") }
        guard let timestamp else { throw missing("timestamp") }
        return TelemetrySample(
            deviceSerial: deviceID, timestamp: timestamp, mode: mode, tempInside: tempInside,
            tempOutside: tempOutsideIsNull ? nil : tempOutside, setpoint: setpoint, hysteresis: hysteresis, output: output)
    }
}

extension ThermostatMode {
    /// The mode whose raw value is exactly these UTF-8 bytes, without building a `String`.
    public init?(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        guard let mode = Self.allCases.first(where: { $0.rawValue.hasUTF8(bytes) }) else { return nil }
        self = mode
    }
}

extension ThermostatOutput {
    /// The output whose raw value is exactly these UTF-8 bytes, without building a `String`.
    public init?(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        guard let output = Self.allCases.first(where: { $0.rawValue.hasUTF8(bytes) }) else { return nil }
        self = output
    }
}

extension String {
    /// Whether the string's UTF-8 is exactly `bytes`: a length check, then a byte loop over
    /// the contiguous storage of the literal raw values of the enums above (the generic
    /// `elementsEqual` showed up in profiles of the scripting hot path).
    fileprivate func hasUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard utf8.count == bytes.count else { return false }
        return utf8.withContiguousStorageIfAvailable { own in
            for index in own.indices where own[index] != bytes[index] { return false }
            return true
        } ?? utf8.elementsEqual(bytes)
    }
}
