import Foundation
import LuaSandbox
import Scripting
import Testing

/// State and config cross to Lua as JSON: the parser behind `LuaValue(jsonText:)` is strict,
/// keeps the integer rule of `JSONValue.luaValue`, and round-trips what `jsonText` writes.
@Suite struct JSONTextTests {
    @Test func parsesEveryKindOfValue() throws {
        let text = #" { "a": [1, -2, 0, 3.5, -0.25e1, 1E2, 12345678901234567, null], "b": {"c": true, "d": false}, "e": "" } "#
        let expected: LuaValue = [
            "a": [.integer(1), .integer(-2), .integer(0), .number(3.5), .number(-2.5), .integer(100), .number(12345678901234567), .nil],
            "b": ["c": true, "d": false], "e": "",
        ]
        #expect(try LuaValue(jsonText: text) == expected)
        #expect(try LuaValue(jsonText: "[]") == .array([]))
        #expect(try LuaValue(jsonText: "{}") == .table([:]))
        #expect(try LuaValue(jsonText: "-0") == .integer(0))
    }

    @Test func decodesEscapesAndUnicode() throws {
        #expect(try LuaValue(jsonText: #""a\"b\\c\/d\b\f\n\r\t""#) == .string("a\"b\\c/d\u{08}\u{0C}\n\r\t"))
        #expect(try LuaValue(jsonText: #""\u00e9\u20AC \ud83c\udf21 °C""#) == .string("é€ 🌡 °C"))
    }

    @Test(arguments: [
        "", " ", "{", "[1,]", "{\"a\":1,}", "{a:1}", "{\"a\" 1}", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "\"abc",
        "\"tab\there\"", #""\x""#, #""\u12""#, #""\ud800""#, #""\ud800\u0041""#, "[1] 2", "NaN", "Infinity", "'a'", "1e400",
    ])
    func refusesWhatIsNotJSON(_ text: String) {
        #expect(throws: JSONTextError.self, "\(text.debugDescription) is not JSON") { try LuaValue(jsonText: text) }
    }

    @Test func refusesNestingDeeperThanTheLimit() throws {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: JSONTextError.self) { try LuaValue(jsonText: deep) }
        let fine = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: Never.self) { try LuaValue(jsonText: fine) }
    }

    @Test func whatJSONTextWritesParsesBackToTheSameValue() throws {
        let value: LuaValue = [
            "since": .integer(1_795_000_000), "value": .number(21.25), "tiny": .number(1e-7), "name": "Küche \"oben\"\n\u{01}",
            "list": [1, 2.5, "x", false, ["nested": true]], "empty": .table([:]),
        ]
        #expect(try LuaValue(jsonText: value.jsonText) == value)
        #expect(LuaValue.table(["b": 1, "a": 2]).jsonText == #"{"a":2,"b":1}"#, "keys are sorted")
        #expect(LuaValue.number(.infinity).jsonText == "null")
        #expect(LuaValue.string("\u{01}").jsonText == #""\u0001""#)
    }
}
