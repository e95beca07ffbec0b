import Foundation
import PlatformCore
import Testing

@Suite struct IngestPayloadTests {
    static let now = Timestamp(iso8601: "2026-11-29T07:00:00Z")!

    static func sample(_ overrides: [String: String] = [:], removing: [String] = []) -> String {
        var fields: [String: String] = [
            "device_id": "\"TH-1\"", "mode": "\"HEAT\"", "temp_inside_c": "20.5", "temp_outside_c": "3.25",
            "setpoint_c": "21", "hysteresis_c": "0.5", "output": "\"HEAT_ON\"", "timestamp": "\"2026-11-29T06:59:00Z\"",
        ]
        for (key, value) in overrides { fields[key] = value }
        for key in removing { fields[key] = nil }
        return "{" + fields.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
    }

    func decode(_ json: String) throws(PlatformError) -> IngestPayload {
        try IngestPayload.decode(Data(json.utf8), serial: "TH-1", now: Self.now)
    }

    func error(_ json: String) -> PlatformError? {
        do {
            _ = try decode(json)
            return nil
        } catch {
            return error
        }
    }

    @Test func decodesOneSampleExactly() throws {
        let payload = try decode(Self.sample())
        #expect(
            payload.samples == [
                TelemetrySample(
                    deviceSerial: "TH-1", timestamp: Timestamp(iso8601: "2026-11-29T06:59:00Z")!, mode: .heat, tempInside: 20.5,
                    tempOutside: 3.25, setpoint: 21, hysteresis: 0.5, output: .heatOn)
            ])
    }

    @Test func decodesBatchesAndOptionalOutsideTemperature() throws {
        let batch = "{\"samples\":[\(Self.sample()),\(Self.sample(["temp_outside_c": "null"])),\(Self.sample(removing: ["temp_outside_c"]))]}"
        let payload = try decode(batch)
        #expect(payload.samples.map(\.tempOutside) == [3.25, nil, nil])
    }

    @Test(arguments: [
        (["mode": "\"HOT\""], "mode", "invalid_enum"),
        (["output": "\"ON\""], "output", "invalid_enum"),
        (["temp_inside_c": "\"20\""], "temp_inside_c", "wrong_type"),
        (["temp_inside_c": "101"], "temp_inside_c", "out_of_range"),
        (["temp_outside_c": "-61"], "temp_outside_c", "out_of_range"),
        (["setpoint_c": "4.9"], "setpoint_c", "out_of_range"),
        (["hysteresis_c": "10.5"], "hysteresis_c", "out_of_range"),
        (["timestamp": "\"2026-11-29 06:59\""], "timestamp", "invalid_timestamp"),
        (["timestamp": "\"2026-11-29T06:59:00\""], "timestamp", "invalid_timestamp"),
        (["timestamp": "\"2026-11-29T07:05:01Z\""], "timestamp", "timestamp_in_future"),
        (["timestamp": "\"1999-12-31T23:59:59Z\""], "timestamp", "timestamp_too_old"),
        (["device_id": "\"TH-2\""], "device_id", "device_mismatch"),
        (["colour": "\"red\""], "colour", "unknown_field"),
        (["mode": "null"], "mode", "missing_field"),
    ])
    func rejectsBadFieldsNamingThem(_ overrides: [String: String], _ field: String, _ code: String) {
        let failure = error(Self.sample(overrides))
        #expect(failure?.field == field)
        #expect(failure?.code == code)
        #expect(failure?.kind == .validation)
    }

    @Test func missingFieldIsNamed() {
        let failure = error(Self.sample(removing: ["setpoint_c"]))
        #expect(failure?.field == "setpoint_c")
        #expect(failure?.code == "missing_field")
    }

    @Test func batchWithOneBadSampleIsRejectedWholeNamingTheIndex() {
        let batch = "{\"samples\":[\(Self.sample()),\(Self.sample()),\(Self.sample(["mode": "\"WARM\""]))]}"
        let failure = error(batch)
        #expect(failure?.field == "samples[2].mode")
    }

    @Test func malformedAndOversizedInput() {
        #expect(error("{not json")?.kind == .badRequest)
        #expect(error("[1,2]")?.kind == .validation || error("[1,2]")?.kind == .badRequest)
        #expect(error("{\"samples\":[]}")?.field == "samples")
        #expect(error("{\"samples\":[], \"extra\":1}")?.code == "unknown_field")
        let many = "{\"samples\":[" + Array(repeating: Self.sample(), count: 1001).joined(separator: ",") + "]}"
        #expect(error(many)?.kind == .payloadTooLarge)
    }
}
