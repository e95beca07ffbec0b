import PlatformCore
import Testing

@testable import Storage

/// The queue's text form: what SQLite's encoder writes and what PostgreSQL's `string_agg` and
/// the migrations write read back as the same samples; a line of any other shape is left out.
@Suite struct AlertQueueTextTests {
    static let time = Timestamp(microseconds: 1_794_999_600_123_456)

    @Test func samplesReadBackExactly() {
        let samples = [
            TelemetrySample(
                deviceSerial: "TH-1", timestamp: Self.time, mode: .heat, tempInside: 0.1 + 0.2, tempOutside: nil, setpoint: 21,
                hysteresis: 0.5, output: .heatOn),
            TelemetrySample(
                deviceSerial: "a.b_c-9", timestamp: Timestamp(microseconds: -5), mode: .cool, tempInside: -1e-7,
                tempOutside: 1e21, setpoint: 21.123456789012345, hysteresis: 0, output: .coolOn),
        ]
        #expect(AlertQueueText.decode(AlertQueueText.encode(samples)) == samples)
        #expect(AlertQueueText.decode(AlertQueueText.encode([])).isEmpty)
    }

    @Test func theBackendsNumberFormsReadAsTheSameNumbers() {
        // PostgreSQL's float8 text ("21"), SQLite's printf('%!.17g') ("21.0", "1.0e+21").
        let text = "TH-1\t1794999600123456\tAUTO\t21\t1.0e+21\t21.0\t0.5\tOFF\nTH-1\t1794999600123457\tOFF\t-9.9999999999999995e-08\t\t20\t1\tHEAT_ON"
        let samples = AlertQueueText.decode(text)
        #expect(samples.map(\.tempInside) == [21, -1e-7])
        #expect(samples.map(\.tempOutside) == [1e21, nil])
        #expect(samples.map(\.setpoint) == [21, 20])
        #expect(samples.map(\.mode) == [.auto, .off] && samples.map(\.output) == [.off, .heatOn])
    }

    @Test func linesOfAnotherShapeAreLeftOut() {
        let good = "TH-1\t1\tHEAT\t20\t\t21\t0.5\tOFF"
        let bad = [
            "TH-1\t1\tHEAT\t20\t\t21\t0.5", "TH-1\tx\tHEAT\t20\t\t21\t0.5\tOFF", "TH-1\t1\tWARM\t20\t\t21\t0.5\tOFF",
            "TH-1\t1\tHEAT\tnope\t\t21\t0.5\tOFF", "TH-1\t1\tHEAT\t20\tnope\t21\t0.5\tOFF", "TH-1\t1\tHEAT\t20\t\t21\t0.5\tOFF\textra",
            "", "TH-1\t-\tHEAT\t20\t\t21\t0.5\tOFF", "TH-1\t99999999999999999999\tHEAT\t20\t\t21\t0.5\tOFF",
            "\t1\tHEAT\t20\t\t21\t0.5\tOFF", "TH-1\t1\tHEAT\t20\t\t21\t0.5\tOFF\t",
        ]
        #expect(AlertQueueText.decode((bad + [good]).joined(separator: "\n")).map(\.deviceSerial) == ["TH-1"])
    }

    @Test func removingADeviceKeepsTheOthersAndSaysWhenNothingChanged() {
        let samples = ["TH-1", "TH-2", "TH-1"].enumerated().map { index, serial in
            TelemetrySample(
                deviceSerial: serial, timestamp: Timestamp(microseconds: Int64(index)), mode: .heat, tempInside: 20, tempOutside: nil,
                setpoint: 21, hysteresis: 0.5, output: .off)
        }
        let text = AlertQueueText.encode(samples)
        let removed = AlertQueueText.removing(serial: "TH-1", from: text)
        #expect(removed?.count == 1 && removed.map { AlertQueueText.decode($0.text) } == [samples[1]])
        #expect(AlertQueueText.removing(serial: "TH-3", from: text) == nil)
        #expect(AlertQueueText.removing(serial: "TH-2", from: AlertQueueText.encode([samples[1]]))?.count == 0)
    }
}
