import Foundation
import LuaSandbox

extension LuaValue {
    /// The value as JSON text (alert state is persisted this way). Maps become objects with
    /// sorted keys; non-finite numbers become null.
    public var jsonText: String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        writeJSON(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private func writeJSON(into out: inout [UInt8]) {
        switch self {
        case .nil: out.append(contentsOf: "null".utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .integer(let number): out.append(contentsOf: String(number).utf8)
        case .number(let number): out.append(contentsOf: (number.isFinite ? "\(number)" : "null").utf8)
        case .string(let text): Self.writeQuoted(text, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                item.writeJSON(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .table(let fields):
            out.append(UInt8(ascii: "{"))
            for (index, key) in fields.keys.sorted().enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeQuoted(key, into: &out)
                out.append(UInt8(ascii: ":"))
                fields[key]!.writeJSON(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Parses JSON text into a value (objects become tables, whole numbers integers). The
    /// parser is `JSONTextParser`: alert states cross to the worker as JSON on every pass,
    /// and Foundation's decoder (through `JSONValue`) took a third of the worker's time there.
    public init(jsonText: String) throws {
        var text = jsonText
        self = try text.withUTF8 { bytes in
            var parser = JSONTextParser(bytes: bytes)
            return try parser.document()
        }
    }

    private static func writeQuoted(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: #"\t"#.utf8)
            case ..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension LuaValue {
    /// The value as a `JSONValue`, for API responses.
    public var jsonValue: JSONValue {
        switch self {
        case .nil: .null
        case .bool(let flag): .bool(flag)
        case .integer(let number): .number(Double(number))
        case .number(let number): number.isFinite ? .number(number) : .null
        case .string(let text): .string(text)
        case .array(let items): .array(items.map(\.jsonValue))
        case .table(let fields): .object(fields.mapValues(\.jsonValue))
        }
    }
}

/// Why JSON text did not parse, and where.
public struct JSONTextError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var offset: Int

    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}

/// A strict JSON (RFC 8259) parser producing `LuaValue`s directly, with the conversions of
/// `JSONValue.luaValue`: `null` is `.nil`, whole numbers below 9e15 are integers, every other
/// number a double.
struct JSONTextParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    /// Deeper nesting is refused rather than risking the stack (Foundation's limit too).
    static let maximumDepth = 512

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// The one value the text holds, with nothing but whitespace around it.
    mutating func document() throws(JSONTextError) -> LuaValue {
        let value = try value(depth: 0)
        skipWhitespace()
        guard index == bytes.count else { throw failure("text after the value") }
        return value
    }

    private func failure(_ message: String) -> JSONTextError {
        JSONTextError(message: message, offset: index)
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func value(depth: Int) throws(JSONTextError) -> LuaValue {
        skipWhitespace()
        guard index < bytes.count else { throw failure("the text ends where a value belongs") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .nil
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw failure("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONTextError) {
        let length = word.utf8CodeUnitCount
        guard bytes.count - index >= length,
            memcmp(bytes.baseAddress! + index, word.utf8Start, length) == 0
        else { throw failure("unknown literal") }
        index += length
    }

    /// Skips whitespace, then `byte` if it comes next; whether it did.
    private mutating func skip(_ byte: UInt8) -> Bool {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    /// After an object's or array's member: true at a ',' (another follows), false at
    /// `closing` (the container ends).
    private mutating func anotherMember(before closing: UInt8, in container: String) throws(JSONTextError) -> Bool {
        if skip(UInt8(ascii: ",")) { return true }
        if skip(closing) { return false }
        guard index < bytes.count else { throw failure("the text ends inside \(container)") }
        throw failure("expected ',' or '\(Character(Unicode.Scalar(closing)))' in \(container)")
    }

    private mutating func object(depth: Int) throws(JSONTextError) -> LuaValue {
        guard depth <= Self.maximumDepth else { throw failure("nested too deeply") }
        index += 1
        var fields: [String: LuaValue] = [:]
        if skip(UInt8(ascii: "}")) { return .table(fields) }
        repeat {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw failure("a key must be a string") }
            let key = try string()
            guard skip(UInt8(ascii: ":")) else { throw failure("expected ':' after a key") }
            fields[key] = try value(depth: depth)
        } while try anotherMember(before: UInt8(ascii: "}"), in: "an object")
        return .table(fields)
    }

    private mutating func array(depth: Int) throws(JSONTextError) -> LuaValue {
        guard depth <= Self.maximumDepth else { throw failure("nested too deeply") }
        index += 1
        var items: [LuaValue] = []
        if skip(UInt8(ascii: "]")) { return .array(items) }
        repeat {
            items.append(try value(depth: depth))
        } while try anotherMember(before: UInt8(ascii: "]"), in: "an array")
        return .array(items)
    }

    /// A string; `index` is at its opening quote.
    private mutating func string() throws(JSONTextError) -> String {
        index += 1
        let start = index
        // The common case: no escapes, one copy.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                defer { index += 1 }
                return try validUTF8(UnsafeBufferPointer(rebasing: bytes[start..<index]))
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw failure("a control character in a string") }
            index += 1
        }
        var decoded = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return try decoded.withUnsafeBufferPointer { buffer throws(JSONTextError) in try validUTF8(buffer) }
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { break }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
                case UInt8(ascii: "b"): decoded.append(0x08)
                case UInt8(ascii: "f"): decoded.append(0x0C)
                case UInt8(ascii: "n"): decoded.append(0x0A)
                case UInt8(ascii: "r"): decoded.append(0x0D)
                case UInt8(ascii: "t"): decoded.append(0x09)
                case UInt8(ascii: "u"): decoded.append(contentsOf: String(try unicodeEscape()).utf8)
                default: throw failure("an unknown escape")
                }
            case ..<0x20: throw failure("a control character in a string")
            default: decoded.append(byte)
            }
        }
        throw failure("the text ends inside a string")
    }

    private func validUTF8(_ buffer: UnsafeBufferPointer<UInt8>) throws(JSONTextError) -> String {
        guard let text = String(validating: buffer, as: UTF8.self) else { throw failure("a string that is not UTF-8") }
        return text
    }

    /// The character of a `\uXXXX` escape (`index` after the `u`), joining surrogate pairs.
    private mutating func unicodeEscape() throws(JSONTextError) -> Character {
        let first = try hexQuad()
        var scalar = first
        if (0xD800..<0xDC00).contains(first) {
            guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                throw failure("a lone surrogate")
            }
            index += 2
            let second = try hexQuad()
            guard (0xDC00..<0xE000).contains(second) else { throw failure("a lone surrogate") }
            scalar = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        }
        guard let unicode = Unicode.Scalar(scalar) else { throw failure("a lone surrogate") }
        return Character(unicode)
    }

    private mutating func hexQuad() throws(JSONTextError) -> UInt32 {
        guard bytes.count - index >= 4 else { throw failure("a short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("a bad \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func digits() -> Int {
        let start = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        return index - start
    }

    private mutating func number() throws(JSONTextError) -> LuaValue {
        let start = index
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        let integerStart = index
        let integerDigits = digits()
        guard integerDigits > 0 else { throw failure("a number without digits") }
        guard integerDigits == 1 || bytes[integerStart] != UInt8(ascii: "0") else { throw failure("a number with a leading zero") }
        var whole = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { throw failure("a number without digits after '.'") }
            whole = false
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw failure("a number without exponent digits") }
            whole = false
        }
        if whole && integerDigits <= 15 {
            // Below 1e15, so exact and an integer by the rule below.
            var value: Int64 = 0
            for byte in bytes[integerStart..<integerStart + integerDigits] { value = value * 10 + Int64(byte - UInt8(ascii: "0")) }
            return .integer(negative ? -value : value)
        }
        guard let number = Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)),
            number.isFinite
        else { throw failure("a number out of range") }
        return number.rounded() == number && abs(number) < 9e15 ? .integer(Int64(number)) : .number(number)
    }
}
