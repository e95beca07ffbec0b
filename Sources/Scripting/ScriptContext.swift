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

    /// Reads back a transformed sample. The device and the timestamp cannot be changed by a
    /// script (they identify the sample); everything else is validated like ingest input.
    static func sample(_ value: LuaValue, original: TelemetrySample) throws(ScriptError) -> TelemetrySample {
        guard case .table = value else { throw .contract("transform must return the sample table, or nil and a reason") }
        func number(_ field: String, _ range: ClosedRange<Double>) throws(ScriptError) -> Double {
            guard let number = value[field]?.doubleValue, number.isFinite, range.contains(number) else {
                throw .contract("transform returned an invalid \(field)")
            }
            return number
        }
        var sample = original
        guard let mode = value["mode"]?.stringValue.flatMap(ThermostatMode.init(rawValue:)) else {
            throw .contract("transform returned an invalid mode")
        }
        guard let output = value["output"]?.stringValue.flatMap(ThermostatOutput.init(rawValue:)) else {
            throw .contract("transform returned an invalid output")
        }
        sample.mode = mode
        sample.output = output
        sample.tempInside = try number("temp_inside_c", TelemetryRules.temperatureRange)
        sample.tempOutside = value["temp_outside_c"] == nil ? nil : try number("temp_outside_c", TelemetryRules.temperatureRange)
        sample.setpoint = try number("setpoint_c", TelemetryRules.setpointRange)
        sample.hysteresis = try number("hysteresis_c", TelemetryRules.hysteresisRange)
        return sample
    }
}
