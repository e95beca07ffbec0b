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

    /// Pushes the `ctx` table (the same shape as `luaValue`) without building a `LuaValue`.
    func push(to arguments: LuaArguments) throws(LuaError) {
        arguments.newTable(fieldCapacity: 5)
        arguments.newTable(fieldCapacity: 3)
        arguments.set("id", tenantID)
        arguments.set("slug", tenantSlug)
        arguments.set("tier", tier)
        arguments.setTable("tenant")
        if let deviceSerial {
            arguments.newTable(fieldCapacity: 2)
            arguments.set("serial", deviceSerial)
            arguments.set("name", deviceName ?? deviceSerial)
            arguments.setTable("device")
        }
        arguments.set("now", now.secondsSinceEpoch)
        arguments.set("now_iso", now.iso8601)
        try arguments.set("config", config)
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
        return .table(fields)
    }

    /// Pushes the sample table (the same shape as `value(_:)`) without building a `LuaValue`.
    static func push(_ sample: TelemetrySample, to arguments: LuaArguments) {
        arguments.newTable(fieldCapacity: 9)
        arguments.set("device_id", sample.deviceSerial)
        arguments.set("timestamp", sample.timestamp.iso8601)
        arguments.set("time", sample.timestamp.secondsSinceEpoch)
        arguments.set("mode", sample.mode.rawValue)
        arguments.set("temp_inside_c", sample.tempInside)
        if let outside = sample.tempOutside { arguments.set("temp_outside_c", outside) }
        arguments.set("setpoint_c", sample.setpoint)
        arguments.set("hysteresis_c", sample.hysteresis)
        arguments.set("output", sample.output.rawValue)
    }

    /// Reads a transformed sample from result 0 in place. The device and the timestamp cannot
    /// be changed by a script (they identify the sample); everything else is validated like
    /// ingest input.
    static func sample(_ results: LuaResults, original: TelemetrySample) throws(ScriptError) -> TelemetrySample {
        guard results.isTable(0) else { throw .contract("transform must return the sample table, or nil and a reason") }
        func number(_ field: StaticString, _ range: ClosedRange<Double>) throws(ScriptError) -> Double {
            guard let number = results.number(field, in: 0), number.isFinite, range.contains(number) else {
                throw .contract("transform returned an invalid \(field)")
            }
            return number
        }
        var sample = original
        guard let mode = results.string("mode", in: 0).flatMap(ThermostatMode.init(rawValue:)) else {
            throw .contract("transform returned an invalid mode")
        }
        guard let output = results.string("output", in: 0).flatMap(ThermostatOutput.init(rawValue:)) else {
            throw .contract("transform returned an invalid output")
        }
        sample.mode = mode
        sample.output = output
        sample.tempInside = try number("temp_inside_c", TelemetryRules.temperatureRange)
        sample.tempOutside = results.has("temp_outside_c", in: 0) ? try number("temp_outside_c", TelemetryRules.temperatureRange) : nil
        sample.setpoint = try number("setpoint_c", TelemetryRules.setpointRange)
        sample.hysteresis = try number("hysteresis_c", TelemetryRules.hysteresisRange)
        return sample
    }
}
