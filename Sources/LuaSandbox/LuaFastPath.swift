import CLua
import CLuaShim

/// A function of a loaded module, resolved once and kept in the registry so hot calls skip the
/// name lookup.
public struct LuaFunction: Sendable, Hashable {
    fileprivate let reference: Int32
}

/// Builds call arguments directly on the Lua stack, without intermediate `LuaValue`s. Valid
/// only inside the `arguments` closure of `LuaVM.call(_:arguments:results:)`.
public struct LuaArguments {
    fileprivate let state: OpaquePointer
    fileprivate let vm: LuaVM

    /// Pushes a new table, which the `set` functions then fill.
    public func newTable(fieldCapacity: Int) {
        lua_createtable(state, 0, Int32(clamping: fieldCapacity))
    }

    public func set(_ key: StaticString, _ value: Double) {
        lua_pushnumber(state, value)
        lua_setfield(state, -2, key.utf8StartAsCChar)
    }

    public func set(_ key: StaticString, _ value: String) {
        vm.pushString(value)
        lua_setfield(state, -2, key.utf8StartAsCChar)
    }

    /// Sets a field to the table on top of the stack (made with `newTable` and filled).
    public func setTable(_ key: StaticString) {
        lua_setfield(state, -2, key.utf8StartAsCChar)
    }

    public func set(_ key: StaticString, _ value: LuaValue) throws(LuaError) {
        try push(value)
        lua_setfield(state, -2, key.utf8StartAsCChar)
    }

    public func push(_ value: LuaValue) throws(LuaError) {
        var budget = vm.limits.maximumElements
        try vm.push(value, depth: 0, budget: &budget)
    }
}

/// Reads a call's results in place. Valid only inside the `results` closure.
public struct LuaResults {
    fileprivate let state: OpaquePointer
    fileprivate let vm: LuaVM
    fileprivate let base: Int32
    public let count: Int

    /// Whether result `index` (0-based) is nil or missing.
    public func isNil(_ index: Int) -> Bool {
        index >= count || lua_type(state, base + Int32(index)) == LUA_TNIL
    }

    public func isTable(_ index: Int) -> Bool {
        index < count && lua_type(state, base + Int32(index)) == LUA_TTABLE
    }

    /// A number field of the table result `index`, without metamethods; nil if not a number.
    public func number(_ key: StaticString, in index: Int) -> Double? {
        pushField(key, of: index)
        defer { tsb_pop(state, 1) }
        return lua_type(state, -1) == LUA_TNUMBER ? lua_tonumberx(state, -1, nil) : nil
    }

    /// A string field of the table result `index`, without metamethods; nil if not a string.
    public func string(_ key: StaticString, in index: Int) -> String? {
        pushField(key, of: index)
        defer { tsb_pop(state, 1) }
        return lua_type(state, -1) == LUA_TSTRING ? vm.message(at: -1) : nil
    }

    /// Whether the table result `index` has a non-nil `key`.
    public func has(_ key: StaticString, in index: Int) -> Bool {
        pushField(key, of: index)
        defer { tsb_pop(state, 1) }
        return lua_type(state, -1) != LUA_TNIL
    }

    /// Result `index` converted in full.
    public func value(_ index: Int) throws(LuaError) -> LuaValue {
        guard index < count else { return .nil }
        var budget = vm.limits.maximumElements
        return try vm.value(at: base + Int32(index), depth: 0, budget: &budget, visiting: [])
    }

    private func pushField(_ key: StaticString, of index: Int) {
        guard index < count, lua_type(state, base + Int32(index)) == LUA_TTABLE else {
            lua_pushnil(state)
            return
        }
        lua_pushstring(state, key.utf8StartAsCChar)
        lua_rawget(state, base + Int32(index))
    }
}

extension LuaVM {
    /// Resolves `module[name]` to a function handle for `call(_:arguments:results:)`.
    public func function(_ name: String, in module: LuaModule) throws(LuaError) -> LuaFunction {
        guard hasFunction(name, in: module) else {
            throw LuaError(kind: .runtime, message: "the script has no function '\(name)'")
        }
        rawPushField(name, of: module)
        return LuaFunction(reference: luaL_ref(rawState, tsb_registry_index()))
    }

    /// Calls a function with arguments pushed by `arguments` (which returns how many it pushed)
    /// and reads the results with `results`, all under the VM's limits.
    public func call<Result>(
        _ function: LuaFunction,
        arguments: (LuaArguments) throws(LuaError) -> Int32,
        results: (LuaResults) throws(LuaError) -> Result
    ) throws(LuaError) -> Result {
        let top = lua_gettop(rawState)
        defer { lua_settop(rawState, top) }
        lua_rawgeti(rawState, tsb_registry_index(), lua_Integer(function.reference))
        guard lua_checkstack(rawState, 16) != 0 else { throw LuaError(kind: .bridging, message: "Lua stack exhausted") }
        let count = try arguments(LuaArguments(state: rawState, vm: self))
        try protectedCall(arguments: count, results: LUA_MULTRET)
        return try results(LuaResults(state: rawState, vm: self, base: top + 1, count: Int(lua_gettop(rawState) - top)))
    }
}

extension StaticString {
    fileprivate var utf8StartAsCChar: UnsafePointer<CChar> {
        UnsafeRawPointer(utf8Start).assumingMemoryBound(to: CChar.self)
    }
}
