/// The operating mode a thermostat reports.
public enum ThermostatMode: String, Sendable, Codable, CaseIterable {
    case off = "OFF"
    case heat = "HEAT"
    case cool = "COOL"
    case auto = "AUTO"
}

/// What the thermostat's relay output is doing.
public enum ThermostatOutput: String, Sendable, Codable, CaseIterable {
    case off = "OFF"
    case heatOn = "HEAT_ON"
    case coolOn = "COOL_ON"
}

/// One telemetry reading as the firmware sends it (see DESIGN.md, "Telemetry sample").
public struct TelemetrySample: Sendable, Equatable {
    public var deviceSerial: String
    public var timestamp: Timestamp
    public var mode: ThermostatMode
    public var tempInside: Double
    /// Nil for thermostats without an outdoor sensor.
    public var tempOutside: Double?
    public var setpoint: Double
    public var hysteresis: Double
    public var output: ThermostatOutput

    public init(
        deviceSerial: String, timestamp: Timestamp, mode: ThermostatMode, tempInside: Double,
        tempOutside: Double?, setpoint: Double, hysteresis: Double, output: ThermostatOutput
    ) {
        self.deviceSerial = deviceSerial
        self.timestamp = timestamp
        self.mode = mode
        self.tempInside = tempInside
        self.tempOutside = tempOutside
        self.setpoint = setpoint
        self.hysteresis = hysteresis
        self.output = output
    }
}

/// The plausibility rules a sample must meet before the platform stores it.
public enum TelemetryRules {
    public static let temperatureRange: ClosedRange<Double> = -60...100
    public static let setpointRange: ClosedRange<Double> = 5...35
    public static let hysteresisRange: ClosedRange<Double> = 0...10
    /// How far ahead of the server clock a device clock may run.
    public static let maximumFutureSkewSeconds: Double = 300
    /// Samples older than this are refused as implausible (a device with an unset clock).
    public static let earliestTimestamp = Timestamp(seconds: 946_684_800)
    public static let maximumSamplesPerRequest = 1000
    public static let maximumBodyBytes = 256 * 1024

    /// The plausible-range checks alone, for samples that ingest scripts produced or kept.
    public static func checkRanges(_ samples: [TelemetrySample], isBatch: Bool) throws(PlatformError) {
        for (index, sample) in samples.enumerated() {
            let prefix = isBatch ? "samples[\(index)]." : ""
            let checks: [(String, Double?, ClosedRange<Double>)] = [
                ("temp_inside_c", sample.tempInside, temperatureRange), ("temp_outside_c", sample.tempOutside, temperatureRange),
                ("setpoint_c", sample.setpoint, setpointRange), ("hysteresis_c", sample.hysteresis, hysteresisRange),
            ]
            for (field, value, range) in checks {
                if let value, !(value.isFinite && range.contains(value)) {
                    throw .invalid(
                        prefix + field, "must be between \(range.lowerBound) and \(range.upperBound)", code: "out_of_range")
                }
            }
        }
    }
}
