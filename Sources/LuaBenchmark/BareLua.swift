import CLua

/// The floor under the transform's figures: the same Lua work as one transform call (a table of
/// the sample's nine fields, `ctx.now` set, the call, the six answer fields read back), done
/// through the plain Lua C API in an unsandboxed VM: no hook, no memory cap, no clock reads,
/// Lua's default allocator, the timestamps' text made beforehand. What the sandbox, the runner
/// and the worker add shows against it, measured in the same run: this machine's speed drifts
/// by a factor of two between hours, and the interpreter's share of a transform drifts with it.
final class BareLuaTransform {
    private let state: OpaquePointer
    private let function: Int32
    private let context: Int32
    private let sampleKeys: Int32
    private let answerKeys: Int32
    private let strings: Int32
    private let base: Int32
    private let timestamps: [String]

    /// A VM holding `source` (a chunk returning the transform function) and the names it needs;
    /// `timestamps` are the samples' texts, one a sample of a run.
    init(source: String, timestamps: [String]) {
        guard let state = luaL_newstate() else { fatalError("no Lua state") }
        self.state = state
        self.timestamps = timestamps
        guard luaL_loadstring(state, source) == LUA_OK, lua_pcallk(state, 0, 1, 0, 0, nil) == LUA_OK else {
            fatalError("the bare transform does not load")
        }
        function = lua_gettop(state)
        lua_createtable(state, 0, 8)
        context = lua_gettop(state)
        let sampleFields = [
            "device_id", "timestamp", "time", "mode", "temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c", "output",
        ]
        let answerFields = ["mode", "output", "temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c"]
        sampleKeys = lua_gettop(state) + 1
        for name in sampleFields { lua_pushstring(state, name) }
        answerKeys = lua_gettop(state) + 1
        for name in answerFields { lua_pushstring(state, name) }
        strings = lua_gettop(state) + 1
        for text in ["TH-0000", "HEAT", "HEAT_ON"] { lua_pushstring(state, text) }
        base = lua_gettop(state)
    }

    deinit {
        lua_close(state)
    }

    /// Runs the transform once for each timestamp; returns the sum of the answers' numbers, so
    /// that nothing is optimised away.
    func run() -> Double {
        var sum = 0.0
        for (index, timestamp) in timestamps.enumerated() {
            lua_pushvalue(state, function)
            lua_createtable(state, 0, 9)
            let table = lua_gettop(state)
            func set(_ field: Int32) {
                lua_pushvalue(state, sampleKeys + field)
                lua_rotate(state, -2, 1)
                lua_rawset(state, table)
            }
            lua_pushvalue(state, strings)
            set(0)
            lua_pushstring(state, timestamp)
            set(1)
            lua_pushnumber(state, Double(index))
            set(2)
            lua_pushvalue(state, strings + 1)
            set(3)
            lua_pushnumber(state, 20.5)
            set(4)
            lua_pushnumber(state, 3.5)
            set(5)
            lua_pushnumber(state, 21)
            set(6)
            lua_pushnumber(state, 0.5)
            set(7)
            lua_pushvalue(state, strings + 2)
            set(8)
            lua_pushvalue(state, context)
            lua_pushnumber(state, Double(index))
            lua_setfield(state, -2, "now")
            lua_callk(state, 2, 1, 0, nil)
            for field in 0..<Int32(6) {
                lua_pushvalue(state, answerKeys + field)
                lua_rawget(state, -2)
                sum += lua_tonumberx(state, -1, nil)
                lua_settop(state, -2)
            }
            lua_settop(state, base)
        }
        return sum
    }
}
