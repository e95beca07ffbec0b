import PlatformCore

/// The text a queued batch keeps its samples in, the same on both backends: one line per
/// sample, its fields separated by tabs — serial, time in microseconds, mode, inside
/// temperature, outside temperature (empty when there is none), setpoint, hysteresis, output.
/// Serials never hold a tab or a newline (see `Validation.validateSerial`). SQLite's commits
/// write it here; PostgreSQL's write it in SQL (`string_agg`), as do both backends' migrations
/// of the older per-sample queue.
enum AlertQueueText {
    static func encode(_ samples: [TelemetrySample]) -> String {
        var text = ""
        text.reserveCapacity(samples.count * 64)
        for sample in samples {
            if !text.isEmpty { text += "\n" }
            text += sample.deviceSerial
            text += "\t\(sample.timestamp.microseconds)\t"
            text += sample.mode.rawValue
            text += "\t\(sample.tempInside)\t"
            if let outside = sample.tempOutside { text += "\(outside)" }
            text += "\t\(sample.setpoint)\t\(sample.hysteresis)\t"
            text += sample.output.rawValue
        }
        return text
    }

    /// The samples of a batch's text. A line that does not read as a sample is left out: only
    /// this file's encoder and the backends' SQL write these lines. It reads the UTF-8 bytes
    /// (fields never hold a tab or a newline), not `Character`s: a pass decodes every sample it
    /// evaluates.
    static func decode(_ text: String) -> [TelemetrySample] {
        var text = text
        return text.withUTF8 { bytes in
            var samples: [TelemetrySample] = []
            var start = 0
            while start < bytes.count {
                let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
                if let sample = sample(in: UnsafeBufferPointer(rebasing: bytes[start..<end])) { samples.append(sample) }
                start = end + 1
            }
            return samples
        }
    }

    /// The sample of one line, or nil for a line of another shape.
    private static func sample(in line: UnsafeBufferPointer<UInt8>) -> TelemetrySample? {
        var cursor = 0
        func field() -> UnsafeBufferPointer<UInt8>? {
            guard cursor <= line.count else { return nil }
            let end = line[cursor...].firstIndex(of: UInt8(ascii: "\t")) ?? line.count
            defer { cursor = end + 1 }
            return UnsafeBufferPointer(rebasing: line[cursor..<end])
        }
        guard let serial = field(), !serial.isEmpty, let micros = field().flatMap(integer),
            let mode = field().flatMap({ ThermostatMode(rawValue: String(decoding: $0, as: UTF8.self)) }),
            let inside = field().flatMap(number), let outside = field(), let setpoint = field().flatMap(number),
            let hysteresis = field().flatMap(number),
            let output = field().flatMap({ ThermostatOutput(rawValue: String(decoding: $0, as: UTF8.self)) }),
            cursor > line.count
        else { return nil }
        let outsideValue = number(outside)
        guard outside.isEmpty || outsideValue != nil else { return nil }
        return TelemetrySample(
            deviceSerial: String(decoding: serial, as: UTF8.self), timestamp: Timestamp(microseconds: micros), mode: mode,
            tempInside: inside, tempOutside: outsideValue, setpoint: setpoint, hysteresis: hysteresis, output: output)
    }

    /// A decimal integer, with an optional minus sign.
    private static func integer(_ digits: UnsafeBufferPointer<UInt8>) -> Int64? {
        let negative = digits.first == UInt8(ascii: "-")
        let body = UnsafeBufferPointer(rebasing: digits[(negative ? 1 : 0)...])
        guard !body.isEmpty, body.count <= 19 else { return nil }
        var value: Int64 = 0
        for digit in body {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
            let (shifted, overflowShift) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowAdd) = shifted.addingReportingOverflow(Int64(digit - UInt8(ascii: "0")))
            guard !overflowShift, !overflowAdd else { return nil }
            value = next
        }
        return negative ? -value : value
    }

    private static func number(_ text: UnsafeBufferPointer<UInt8>) -> Double? {
        text.isEmpty ? nil : Double(String(decoding: text, as: UTF8.self))
    }

    /// The batch's text without the samples of device `serial`; nil when it has none of them.
    static func removing(serial: String, from text: String) -> (text: String, count: Int)? {
        let samples = decode(text)
        let kept = samples.filter { $0.deviceSerial != serial }
        return kept.count == samples.count ? nil : (encode(kept), kept.count)
    }
}
