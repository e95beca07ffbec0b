import Foundation
import LuaSandbox

extension LuaValue {
    /// The value as JSON text (alert state is persisted this way). Maps become objects with
    /// sorted keys; non-finite numbers become null.
    public var jsonText: String {
        switch self {
        case .nil: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .integer(let number): return String(number)
        case .number(let number): return number.isFinite ? "\(number)" : "null"
        case .string(let text): return Self.quoted(text)
        case .array(let items): return "[" + items.map(\.jsonText).joined(separator: ",") + "]"
        case .table(let fields):
            return "{" + fields.keys.sorted().map { Self.quoted($0) + ":" + fields[$0]!.jsonText }.joined(separator: ",") + "}"
        }
    }

    /// Parses JSON text into a value (objects become tables, whole numbers integers).
    public init(jsonText: String) throws {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(jsonText.utf8))
        self = value.luaValue
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let control where control.value < 0x20:
                out += String(format: "\\u%04x", control.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
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
