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
    /// Set when this row stands for a stored rollup of many samples (downsampling): then the
    /// temperatures and setpoint are the bucket's averages, `timestamp` its start, and mode,
    /// hysteresis and output those of its newest sample.
    public var rollup: SampleRollup?

    public init(
        deviceSerial: String, timestamp: Timestamp, mode: ThermostatMode, tempInside: Double,
        tempOutside: Double?, setpoint: Double, hysteresis: Double, output: ThermostatOutput, rollup: SampleRollup? = nil
    ) {
        self.deviceSerial = deviceSerial
        self.timestamp = timestamp
        self.mode = mode
        self.tempInside = tempInside
        self.tempOutside = tempOutside
        self.setpoint = setpoint
        self.hysteresis = hysteresis
        self.output = output
        self.rollup = rollup
    }
}

/// What a rollup adds to the averages its row carries: the bucket's width, how many samples it
/// summarises, their extremes, and the share of them with the output heating or cooling.
public struct SampleRollup: Sendable, Equatable {
    public var resolutionSeconds: Int
    public var count: Int
    public var tempInsideMin: Double
    public var tempInsideMax: Double
    /// Nil when none of the samples had an outdoor reading.
    public var tempOutsideMin: Double?
    public var tempOutsideMax: Double?
    public var setpointMin: Double
    public var setpointMax: Double
    public var heatingShare: Double
    public var coolingShare: Double

    public init(
        resolutionSeconds: Int, count: Int, tempInsideMin: Double, tempInsideMax: Double, tempOutsideMin: Double?,
        tempOutsideMax: Double?, setpointMin: Double, setpointMax: Double, heatingShare: Double, coolingShare: Double
    ) {
        self.resolutionSeconds = resolutionSeconds
        self.count = count
        self.tempInsideMin = tempInsideMin
        self.tempInsideMax = tempInsideMax
        self.tempOutsideMin = tempOutsideMin
        self.tempOutsideMax = tempOutsideMax
        self.setpointMin = setpointMin
        self.setpointMax = setpointMax
        self.heatingShare = heatingShare
        self.coolingShare = coolingShare
    }
}

/// The time resolutions the platform aggregates at: query buckets and downsampling steps. Each
/// divides every larger one, so finer buckets nest exactly in coarser ones (epoch-aligned).
public enum TelemetryResolution {
    public static let seconds: [String: Int] = ["1m": 60, "5m": 300, "15m": 900, "1h": 3600, "2h": 7200, "1d": 86_400]
    /// The names in increasing width, for messages.
    public static let names = seconds.sorted { $0.value < $1.value }.map(\.key)
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
