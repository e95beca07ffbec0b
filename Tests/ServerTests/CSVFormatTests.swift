import PlatformCore
import Testing

@testable import Server

/// The CSV writer's field and number rules (RFC 4180).
@Suite("CSV format")
struct CSVFormatTests {
    @Test func fieldsAreQuotedOnlyWhenNeeded() {
        #expect(CSVFormat.field("TH-0001") == "TH-0001")
        #expect(CSVFormat.field("a,b") == #""a,b""#)
        #expect(CSVFormat.field(#"say "hi""#) == #""say ""hi""""#)
        #expect(CSVFormat.field("two\r\nlines") == "\"two\r\nlines\"")
        #expect(CSVFormat.field("line\nbreak") == "\"line\nbreak\"")
        #expect(CSVFormat.field("Küche ☃") == "Küche ☃")
    }

    @Test func numbersAreShortAndExact() {
        #expect(CSVFormat.number(21) == "21")
        #expect(CSVFormat.number(-3.25) == "-3.25")
        #expect(CSVFormat.number(21.1) == "21.1")
        #expect(CSVFormat.number(0.1 + 0.2) == "0.30000000000000004")
        #expect(Double(CSVFormat.number(1e-7)) == 1e-7)
    }
}
