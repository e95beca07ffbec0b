import Foundation
import PlatformCore
import Testing

@Suite struct TelemetryJSONParserTests {
    let now = Timestamp(iso8601: "2026-11-29T07:00:00Z")!
    static let valid = #"{"device_id":"TH-1","mode":"HEAT","temp_inside_c":20.5,"temp_outside_c":null,"setpoint_c":2.1e1,"hysteresis_c":0.5,"output":"HEAT_ON","timestamp":"2026-11-29T06:59:00Z"}"#

    func outcome(_ json: String) -> Result<IngestPayload, PlatformError> {
        Result { () throws(PlatformError) in try IngestPayload.decode(Array(json.utf8), serial: "TH-1", now: now) }
    }

    func isMalformed(_ json: String) -> Bool {
        if case .failure(let error) = outcome(json) { return error.kind == .badRequest }
        return false
    }

    @Test func acceptsEscapesWhitespaceAndAnyFieldOrder() throws {
        let json = " \n{ \"timestamp\" : \"2026-11-29T06:59:00Z\" ,\t\"output\":\"HEAT\\u005fON\", \"hysteresis_c\":0, \"setpoint_c\":21, \"temp_inside_c\":-0.5E1, \"mode\":\"\\u0041UTO\", \"device_id\":\"TH\\u002d1\" } \r\n"
        let sample = try outcome(json).get().samples[0]
        #expect(sample.output == .heatOn)
        #expect(sample.mode == .auto)
        #expect(sample.tempInside == -5)
        #expect(sample.tempOutside == nil)
        #expect(sample.deviceSerial == "TH-1")
    }

    @Test(arguments: [
        "", " ", "{", "}", "[]", "null", "\"x\"", "{\"device_id\" \"TH-1\"}", "{\"device_id\":\"TH-1\",}",
        "{\"device_id\":\"TH-1\"} x", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":+1}", "{\"a\":1e}", "{\"a\":NaN}",
        "{\"a\":tru}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"tab\there\"}", "{\"a\":\"open}", "{'a':1}",
        "{\"a\":[1,2,]}", "{\"a\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}",
    ])
    func rejectsInvalidJSONAsMalformed(_ json: String) {
        #expect(isMalformed(json), "\(json)")
    }

    @Test func syntaxErrorsWinOverFieldErrors() {
        #expect(isMalformed(#"{"mode":"HOT", "x": }"#))
        #expect(isMalformed(#"{"samples":[{"mode":"HOT"}], "x" 1}"#))
    }

    @Test func unknownFieldsWithNestedValuesAreNamed() {
        guard case .failure(let error) = outcome(#"{"extra":{"a":[1,{"b":null}],"c":"\u00e9"},"#.appending(Self.valid.dropFirst()))
        else {
            Issue.record("accepted an unknown field")
            return
        }
        #expect(error.code == "unknown_field")
        #expect(error.field == "extra")
    }

    /// Mutations of a valid body: the parser calls a body malformed exactly when Foundation's
    /// JSON parser rejects it.
    @Test func agreesWithFoundationOnMutatedBodies() {
        var generator = SplitMix64(seed: 2026)
        let alphabet = Array("{}[]\",:0123456789.eE+-\\ntrfalsu ".utf8)
        let base = Array(("{\"samples\":[" + Self.valid + "," + Self.valid + "]}").utf8)
        var disagreements: [String] = []
        for _ in 0..<3000 {
            var mutated = base
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let index = Int.random(in: 0..<mutated.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: mutated.remove(at: index)
                case 1: mutated[index] = alphabet.randomElement(using: &generator)!
                default: mutated.insert(alphabet.randomElement(using: &generator)!, at: index)
                }
            }
            let text = String(decoding: mutated, as: UTF8.self)
            let foundationRejects = (try? JSONSerialization.jsonObject(with: Data(mutated))) == nil
            if foundationRejects != isMalformed(text) { disagreements.append(text) }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(3))")
    }
}

/// A small deterministic generator, so a failing mutation can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
