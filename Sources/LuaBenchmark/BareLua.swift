import CLua
import PlatformCore
import Scripting

/// The floor under the transform's figures: the same Lua work as one transform call (a table of
/// the sample's fields, `ctx.now` set, the call, the writable fields read back), done through
/// the plain Lua C API in an unsandboxed VM: no hook, no memory cap, no clock reads, Lua's
/// default allocator, the samples' values and timestamps' text made beforehand. What the
/// sandbox, the runner and the worker add shows against it, measured in the same run: this
/// machine's speed drifts by a factor of two between hours, and the interpreter's share of a
/// transform drifts with it.
final class BareLuaTransform {
    /// One sample as the loop pushes it: numbers, and the stack slots of its strings.
    private struct Row {
        var timestamp: String
        var time: Double
        var mode: Int32
        var inside: Double
        var outside: Double?
        var setpoint: Double
        var hysteresis: Double
        var output: Int32
    }

    /// The stack slots of the sample table's keys.
    private struct Keys {
        var device, timestamp, time, mode, inside, outside, setpoint, hysteresis, output: Int32
    }

    private let state: OpaquePointer
    private let function: Int32
    private let context: Int32
    private let keys: Keys
    private let answerKeys: Int32
    private let serial: Int32
    private let base: Int32
    private let rows: [Row]

    /// A VM holding `source` (a chunk returning the transform function), the field names
    /// (`SampleBridge`'s) and the strings of `samples`, one device's, for runs over them.
    init(source: String, samples: [TelemetrySample]) {
        guard let state = luaL_newstate() else { fatalError("no Lua state") }
        self.state = state
        guard luaL_loadstring(state, source) == LUA_OK, lua_pcallk(state, 0, 1, 0, 0, nil) == LUA_OK else {
            fatalError("the bare transform does not load")
        }
        function = lua_gettop(state)
        lua_createtable(state, 0, 8)
        context = lua_gettop(state)
        var slots: [String: Int32] = [:]
        for name in SampleBridge.fieldNames {
            lua_pushstring(state, name)
            slots[name] = lua_gettop(state)
        }
        func slot(_ name: String) -> Int32 {
            guard let slot = slots[name] else { fatalError("the sample table has no field \(name)") }
            return slot
        }
        keys = Keys(
            device: slot("device_id"), timestamp: slot("timestamp"), time: slot("time"), mode: slot("mode"),
            inside: slot("temp_inside_c"), outside: slot("temp_outside_c"), setpoint: slot("setpoint_c"),
            hysteresis: slot("hysteresis_c"), output: slot("output"))
        answerKeys = lua_gettop(state) + 1
        for name in SampleBridge.writableFieldNames { lua_pushstring(state, name) }
        lua_pushstring(state, samples.first?.deviceSerial ?? "")
        serial = lua_gettop(state)
        let modes = ThermostatMode.allCases.map { mode in
            lua_pushstring(state, mode.rawValue)
            return lua_gettop(state)
        }
        let outputs = ThermostatOutput.allCases.map { output in
            lua_pushstring(state, output.rawValue)
            return lua_gettop(state)
        }
        rows = samples.map { sample in
            Row(
                timestamp: sample.timestamp.iso8601, time: sample.timestamp.secondsSinceEpoch,
                mode: modes[ThermostatMode.allCases.firstIndex(of: sample.mode)!], inside: sample.tempInside,
                outside: sample.tempOutside, setpoint: sample.setpoint, hysteresis: sample.hysteresis,
                output: outputs[ThermostatOutput.allCases.firstIndex(of: sample.output)!])
        }
        base = lua_gettop(state)
    }

    deinit {
        lua_close(state)
    }

    /// Runs the transform once for each sample; returns the sum of the answers' numbers, so
    /// that nothing is optimised away.
    func run() -> Double {
        var sum = 0.0
        for row in rows {
            lua_pushvalue(state, function)
            lua_createtable(state, 0, Int32(SampleBridge.fieldNames.count))
            let table = lua_gettop(state)
            /// Sets the field whose key is at `key` to the value on top.
            func set(_ key: Int32) {
                lua_pushvalue(state, key)
                lua_rotate(state, -2, 1)
                lua_rawset(state, table)
            }
            lua_pushvalue(state, serial)
            set(keys.device)
            lua_pushstring(state, row.timestamp)
            set(keys.timestamp)
            lua_pushnumber(state, row.time)
            set(keys.time)
            lua_pushvalue(state, row.mode)
            set(keys.mode)
            lua_pushnumber(state, row.inside)
            set(keys.inside)
            if let outside = row.outside {
                lua_pushnumber(state, outside)
                set(keys.outside)
            }
            lua_pushnumber(state, row.setpoint)
            set(keys.setpoint)
            lua_pushnumber(state, row.hysteresis)
            set(keys.hysteresis)
            lua_pushvalue(state, row.output)
            set(keys.output)
            lua_pushvalue(state, context)
            lua_pushnumber(state, row.time)
            lua_setfield(state, -2, "now")
            lua_callk(state, 2, 1, 0, nil)
            for field in SampleBridge.writableFieldNames.indices {
                lua_pushvalue(state, answerKeys + Int32(field))
                lua_rawget(state, -2)
                sum += lua_tonumberx(state, -1, nil)
                lua_settop(state, -2)
            }
            lua_settop(state, base)
        }
        return sum
    }
}
