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
    /// this file's encoder and the backends' SQL write these lines.
    static func decode(_ text: String) -> [TelemetrySample] {
        var samples: [TelemetrySample] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 8, let micros = Int64(fields[1]), let mode = ThermostatMode(rawValue: String(fields[2])),
                let inside = Double(fields[3]), let setpoint = Double(fields[5]), let hysteresis = Double(fields[6]),
                let output = ThermostatOutput(rawValue: String(fields[7]))
            else { continue }
            let outside = fields[4].isEmpty ? nil : Double(fields[4])
            guard fields[4].isEmpty || outside != nil else { continue }
            samples.append(
                TelemetrySample(
                    deviceSerial: String(fields[0]), timestamp: Timestamp(microseconds: micros), mode: mode, tempInside: inside,
                    tempOutside: outside, setpoint: setpoint, hysteresis: hysteresis, output: output))
        }
        return samples
    }

    /// The batch's text without the samples of device `serial`; nil when it has none of them.
    static func removing(serial: String, from text: String) -> (text: String, count: Int)? {
        let samples = decode(text)
        let kept = samples.filter { $0.deviceSerial != serial }
        return kept.count == samples.count ? nil : (encode(kept), kept.count)
    }
}
