import LuaSandbox
import PlatformCore

/// What a script learns about the call in `ctx`: the tenant, the device, the time and the
/// script's own configuration.
public struct ScriptContext: Sendable, Equatable {
    public var tenantID: String
    public var tenantSlug: String
    public var tier: String
    public var deviceSerial: String?
    public var deviceName: String?
    public var now: Timestamp
    public var config: LuaValue

    public init(
        tenantID: String, tenantSlug: String, tier: String, deviceSerial: String?, deviceName: String?, now: Timestamp,
        config: LuaValue
    ) {
        self.tenantID = tenantID
        self.tenantSlug = tenantSlug
        self.tier = tier
        self.deviceSerial = deviceSerial
        self.deviceName = deviceName
        self.now = now
        self.config = config
    }

    var tenantValue: LuaValue { ["id": .string(tenantID), "slug": .string(tenantSlug), "tier": .string(tier)] }

    /// Whether `other` differs from this context only in the device and the time, so a `ctx`
    /// table built for one can be reused for the other after updating those.
    func hasSameScope(as other: ScriptContext) -> Bool {
        tenantID == other.tenantID && tenantSlug == other.tenantSlug && tier == other.tier && config == other.config
    }

    var luaValue: LuaValue {
        var fields: [String: LuaValue] = [
            "tenant": tenantValue, "now": .number(now.secondsSinceEpoch), "now_iso": .string(now.iso8601), "config": config,
        ]
        if let deviceSerial {
            fields["device"] = ["serial": .string(deviceSerial), "name": .string(deviceName ?? deviceSerial)]
        }
        return .table(fields)
    }
}

/// Telemetry samples as scripts see them: the JSON field names, plus `time` in epoch seconds.
public enum SampleBridge {
    public static func value(_ sample: TelemetrySample) -> LuaValue {
        var fields: [String: LuaValue] = [
            "device_id": .string(sample.deviceSerial), "timestamp": .string(sample.timestamp.iso8601),
            "time": .number(sample.timestamp.secondsSinceEpoch), "mode": .string(sample.mode.rawValue),
            "temp_inside_c": .number(sample.tempInside), "setpoint_c": .number(sample.setpoint),
            "hysteresis_c": .number(sample.hysteresis), "output": .string(sample.output.rawValue),
        ]
        if let outside = sample.tempOutside { fields["temp_outside_c"] = .number(outside) }
        if let rollup = sample.rollup { fields["rollup"] = value(rollup) }
        return .table(fields)
    }

    /// A rollup as scripts see it: the JSON API's `rollup` object.
    static func value(_ rollup: SampleRollup) -> LuaValue {
        func extremes(_ low: Double, _ high: Double) -> LuaValue { ["min": .number(low), "max": .number(high)] }
        var fields: [String: LuaValue] = [
            "resolution_seconds": .integer(Int64(rollup.resolutionSeconds)), "samples": .integer(Int64(rollup.count)),
            "temp_inside_c": extremes(rollup.tempInsideMin, rollup.tempInsideMax),
            "setpoint_c": extremes(rollup.setpointMin, rollup.setpointMax),
            "heating_share": .number(rollup.heatingShare), "cooling_share": .number(rollup.coolingShare),
        ]
        if let low = rollup.tempOutsideMin, let high = rollup.tempOutsideMax { fields["temp_outside_c"] = extremes(low, high) }
        return .table(fields)
    }

    /// The fields of the sample table, in the order `push` writes them.
    public static let fieldNames = [
        "device_id", "timestamp", "time", "mode", "temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c", "output",
    ]

    /// The fields a transform may change, in the order `sample(_:layout:original:)` reads them.
    public static let writableFieldNames = ["mode", "output", "temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c"]

    /// Pushes the sample table (the same shape as `value(_:)`) in one record write.
    static func push(_ sample: TelemetrySample, layout: LuaRecordLayout, to arguments: LuaArguments) {
        arguments.push(sample.deviceSerial)
        sample.timestamp.withISO8601Bytes { arguments.push(utf8: $0) }
        arguments.push(sample.timestamp.secondsSinceEpoch)
        arguments.push(sample.mode.rawValue)
        arguments.push(sample.tempInside)
        if let outside = sample.tempOutside { arguments.push(outside) } else { arguments.pushNil() }
        arguments.push(sample.setpoint)
        arguments.push(sample.hysteresis)
        arguments.push(sample.output.rawValue)
        arguments.makeRecord(layout)
    }

    /// The sample as a transform run's batch holds it (`LuaSampleBatch`): mode and output as
    /// indexes into their `allCases`, the names the run interns.
    static func batchSample(_ sample: TelemetrySample) -> LuaSampleBatch.Sample {
        LuaSampleBatch.Sample(
            time: sample.timestamp.secondsSinceEpoch, mode: ThermostatMode.allCases.firstIndex(of: sample.mode)!,
            output: ThermostatOutput.allCases.firstIndex(of: sample.output)!, tempInside: sample.tempInside,
            tempOutside: sample.tempOutside, setpoint: sample.setpoint, hysteresis: sample.hysteresis)
    }

    /// Writes what a transform run took for the batch's samples `start..<end` over
    /// `samples[offset + start]…`; device, timestamp and rollup stay.
    static func takeAnswers(_ batch: LuaSampleBatch, upTo end: Int, from start: Int, into samples: inout [TelemetrySample], at offset: Int) {
        for index in start..<max(start, end) {
            let answer = batch[index]
            samples[offset + index].mode = ThermostatMode.allCases[answer.mode]
            samples[offset + index].output = ThermostatOutput.allCases[answer.output]
            samples[offset + index].tempInside = answer.tempInside
            samples[offset + index].tempOutside = answer.tempOutside
            samples[offset + index].setpoint = answer.setpoint
            samples[offset + index].hysteresis = answer.hysteresis
        }
    }

    /// Reads a transformed sample from result 0 in place. The device and the timestamp cannot
    /// be changed by a script (they identify the sample); everything else is validated like
    /// ingest input.
    static func sample(_ results: LuaResults, layout: LuaRecordLayout, original: TelemetrySample) throws(ScriptError)
        -> TelemetrySample
    {
        guard results.isTable(0) else { throw .contract("transform must return the sample table, or nil and a reason") }
        return try results.readRecord(layout, in: 0) { fields throws(ScriptError) in
            func number(_ field: Int, _ range: ClosedRange<Double>) throws(ScriptError) -> Double {
                guard let number = fields.number(field), number.isFinite, range.contains(number) else {
                    throw .contract("transform returned an invalid \(writableFieldNames[field])")
                }
                return number
            }
            var sample = original
            guard let mode = fields.bytes(0).flatMap(ThermostatMode.init(utf8:)) else {
                throw .contract("transform returned an invalid mode")
            }
            guard let output = fields.bytes(1).flatMap(ThermostatOutput.init(utf8:)) else {
                throw .contract("transform returned an invalid output")
            }
            sample.mode = mode
            sample.output = output
            sample.tempInside = try number(2, TelemetryRules.temperatureRange)
            sample.tempOutside = fields.isNil(3) ? nil : try number(3, TelemetryRules.temperatureRange)
            sample.setpoint = try number(4, TelemetryRules.setpointRange)
            sample.hysteresis = try number(5, TelemetryRules.hysteresisRange)
            return sample
        }
    }
}
