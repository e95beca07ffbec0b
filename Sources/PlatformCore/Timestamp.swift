import Foundation

/// An instant with microsecond precision, stored as microseconds since the Unix epoch.
///
/// Telemetry is identified by (device, timestamp), so the platform keeps timestamps as exact
/// integers: they compare, hash and round-trip through both databases without floating-point
/// drift.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var microseconds: Int64

    public init(microseconds: Int64) {
        self.microseconds = microseconds
    }

    public init(_ date: Date) {
        self.microseconds = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }

    public init(seconds: Int64) {
        self.microseconds = seconds * 1_000_000
    }

    public var date: Date { Date(timeIntervalSince1970: Double(microseconds) / 1_000_000) }

    public var secondsSinceEpoch: Double { Double(microseconds) / 1_000_000 }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.microseconds < rhs.microseconds }

    public func adding(seconds: Double) -> Timestamp {
        Timestamp(microseconds: microseconds + Int64(seconds * 1_000_000))
    }

    /// Parses an ISO 8601 / RFC 3339 date-time with a zone designator (`Z` or `±HH:MM`).
    ///
    /// Hand-written because it sits on the ingest hot path, where Foundation's formatters cost
    /// several microseconds a call. Returns nil for anything that is not a complete date-time
    /// with a zone.
    public init?(iso8601 text: String) {
        var text = text
        guard let parsed = text.withUTF8({ Timestamp.parse($0) }) else { return nil }
        self = parsed
    }

    /// Parses RFC 3339 bytes; see `init?(iso8601:)`.
    static func parse(_ s: UnsafeBufferPointer<UInt8>) -> Timestamp? {
        var i = 0
        func digits(_ count: Int) -> Int? {
            guard i + count <= s.count else { return nil }
            var value = 0
            for _ in 0..<count {
                let c = s[i]
                guard c >= 48, c <= 57 else { return nil }
                value = value * 10 + Int(c - 48)
                i += 1
            }
            return value
        }
        func expect(_ byte: UInt8) -> Bool {
            guard i < s.count, s[i] == byte else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2),
            expect(UInt8(ascii: "-")), let day = digits(2)
        else { return nil }
        guard i < s.count, s[i] == UInt8(ascii: "T") || s[i] == UInt8(ascii: "t") || s[i] == UInt8(ascii: " ")
        else { return nil }
        i += 1
        guard let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2),
            expect(UInt8(ascii: ":")), let second = digits(2)
        else { return nil }
        var fractionMicros = 0
        if i < s.count, s[i] == UInt8(ascii: ".") || s[i] == UInt8(ascii: ",") {
            i += 1
            var scale = 100_000
            var count = 0
            while i < s.count, s[i] >= 48, s[i] <= 57 {
                fractionMicros += Int(s[i] - 48) * scale
                scale /= 10
                count += 1
                i += 1
            }
            guard count > 0, count <= 9 else { return nil }
        }
        guard i < s.count else { return nil }
        var offsetSeconds = 0
        switch s[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = s[i] == UInt8(ascii: "+") ? 1 : -1
            i += 1
            guard let offsetHours = digits(2), expect(UInt8(ascii: ":")), let offsetMinutes = digits(2),
                offsetHours < 24, offsetMinutes < 60
            else { return nil }
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
        default:
            return nil
        }
        guard i == s.count else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year: year, month: month),
            hour < 24, minute < 60, second < 60
        else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        return Timestamp(microseconds: seconds * 1_000_000 + Int64(fractionMicros))
    }

    /// RFC 3339 in UTC with millisecond or microsecond precision as needed, e.g.
    /// `2026-11-29T07:00:00Z` or `2026-11-29T07:00:00.250Z`. Written into one buffer: it is on
    /// the query, export and scripting hot paths.
    public var iso8601: String {
        String(unsafeUninitializedCapacity: Self.maximumISO8601Length) { writeISO8601(into: $0) }
    }

    /// Calls `body` with the `iso8601` text's UTF-8 in a stack buffer, without making a
    /// `String` (a heap allocation for text this long).
    public func withISO8601Bytes(_ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.maximumISO8601Length) { buffer in
            let count = writeISO8601(into: buffer)
            body(UnsafeBufferPointer(rebasing: buffer[..<count]))
        }
    }

    /// The longest `iso8601` text, in bytes.
    public static let maximumISO8601Length = 40

    /// Writes the `iso8601` text into `buffer` (at least `maximumISO8601Length` bytes); returns
    /// its length.
    public func writeISO8601(into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        precondition(buffer.count >= Self.maximumISO8601Length, "the buffer is too small for a timestamp")
        let totalSeconds = microseconds >= 0 ? microseconds / 1_000_000 : (microseconds - 999_999) / 1_000_000
        let micros = Int(microseconds - totalSeconds * 1_000_000)
        let days = totalSeconds >= 0 ? totalSeconds / 86_400 : (totalSeconds - 86_399) / 86_400
        let secondOfDay = Int(totalSeconds - days * 86_400)
        let (year, month, day) = civilFromDays(Int(days))
        var index = 0
        func digits(_ value: Int, _ width: Int) {
            var value = value
            var position = index + width - 1
            while position >= index {
                buffer[position] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
                position -= 1
            }
            index += width
        }
        func byte(_ character: Unicode.Scalar) {
            buffer[index] = UInt8(ascii: character)
            index += 1
        }
        if year < 0 || year > 9999 {
            for character in String(year).utf8 {
                buffer[index] = character
                index += 1
            }
        } else {
            digits(year, 4)
        }
        byte("-")
        digits(month, 2)
        byte("-")
        digits(day, 2)
        byte("T")
        digits(secondOfDay / 3600, 2)
        byte(":")
        digits(secondOfDay / 60 % 60, 2)
        byte(":")
        digits(secondOfDay % 60, 2)
        if micros != 0 {
            byte(".")
            if micros % 1000 == 0 { digits(micros / 1000, 3) } else { digits(micros, 6) }
        }
        byte("Z")
        return index
    }

    public var description: String { iso8601 }
}

/// Timestamps travel in JSON as RFC 3339 strings.
extension Timestamp: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let parsed = Timestamp(iso8601: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "Expected an ISO 8601 date-time with a zone")
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(iso8601)
    }
}


private func isLeap(_ year: Int) -> Bool { (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 }

private func daysInMonth(year: Int, month: Int) -> Int {
    switch month {
    case 2: return isLeap(year) ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
private func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
}

private func civilFromDays(_ days: Int) -> (Int, Int, Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
}
