import Foundation
import PlatformCore
import Testing

@Suite struct TimestampTests {
    @Test(arguments: [
        ("2026-11-29T07:00:00Z", Int64(1_795_935_600_000_000)),
        ("2026-11-29T07:00:00.250Z", 1_795_935_600_250_000),
        ("2026-11-29T08:00:00+01:00", 1_795_935_600_000_000),
        ("2026-11-29T02:30:00.000001-04:30", 1_795_935_600_000_001),
        ("2000-02-29T00:00:00Z", 951_782_400_000_000),
        ("1970-01-01T00:00:00Z", 0),
    ])
    func parsesRFC3339(_ text: String, _ micros: Int64) {
        #expect(Timestamp(iso8601: text)?.microseconds == micros)
    }

    @Test(arguments: [
        "", "2026-11-29", "2026-11-29T07:00:00", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
        "2026-11-29T24:00:00Z", "2026-11-29T07:00:00+25:00", "2026-11-29T07:00:00Zjunk", "2026-11-29T07:00:00.Z",
        "26-11-29T07:00:00Z", "2026-11-29T07:60:00Z", "２０２６-11-29T07:00:00Z",
    ])
    func rejectsIncompleteOrImpossibleDates(_ text: String) {
        #expect(Timestamp(iso8601: text) == nil)
    }

    @Test func formatsAndRoundTrips() {
        for micros: Int64 in [0, 1, 999_999, 1_795_935_600_250_000, 1_795_935_600_000_123, -1_000_001] {
            let timestamp = Timestamp(microseconds: micros)
            #expect(Timestamp(iso8601: timestamp.iso8601) == timestamp)
        }
        #expect(Timestamp(microseconds: 1_795_935_600_250_000).iso8601 == "2026-11-29T07:00:00.250Z")
        #expect(Timestamp(microseconds: 1_795_935_600_000_000).iso8601 == "2026-11-29T07:00:00Z")
    }

    @Test func agreesWithFoundation() throws {
        let formatter = ISO8601DateFormatter()
        for seconds in stride(from: -2_000_000_000, to: 4_000_000_000, by: 97_654_321) {
            let date = Date(timeIntervalSince1970: Double(seconds))
            let parsed = try #require(Timestamp(iso8601: formatter.string(from: date)))
            #expect(parsed.microseconds == Int64(seconds) * 1_000_000)
        }
    }
}
