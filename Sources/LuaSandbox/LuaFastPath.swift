import CLua
import CLuaShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A function of a loaded module, resolved once and kept in the registry so hot calls skip the
/// name lookup.
public struct LuaFunction: Sendable, Hashable {
    fileprivate let reference: Int32
}

/// Field names interned once in a VM (`LuaVM.recordLayout(_:)`), so a flat record (a table
/// with fixed string keys) is written or read with one C call instead of one per field.
public struct LuaRecordLayout: Sendable, Hashable {
    fileprivate let reference: Int32
    /// How many fields the layout names.
    public let count: Int
}

/// A value kept alive in a VM's registry between calls, such as a cached `ctx` table.
public struct LuaReference: Sendable, Hashable {
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

    public func push(_ number: Double) {
        lua_pushnumber(state, number)
    }

    public func push(_ string: String) {
        vm.pushString(string)
    }

    /// Pushes UTF-8 bytes as a Lua string.
    public func push(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        UnsafeRawBufferPointer(bytes).withMemoryRebound(to: CChar.self) { lua_pushlstring(state, $0.baseAddress, $0.count) }
    }

    public func pushNil() {
        lua_pushnil(state)
    }

    /// Pushes a value kept with `LuaVM.makeReference(_:)`.
    public func push(_ reference: LuaReference) {
        lua_rawgeti(state, tsb_registry_index(), lua_Integer(reference.reference))
    }

    /// Replaces the top `layout.count` values (one per field, in the layout's order; nil for an
    /// absent field) with a new table holding them.
    public func makeRecord(_ layout: LuaRecordLayout) {
        tsb_make_record(state, layout.reference, Int32(layout.count))
    }

    /// Pops the top value into field `field` of the table just below it.
    public func setField(_ field: Int, of layout: LuaRecordLayout) {
        precondition(field < layout.count, "field outside the layout")
        tsb_set_record_field(state, -2, layout.reference, Int32(field))
    }
}

/// The fields of one record read by `LuaResults.readRecord(_:in:_:)`, in the layout's order.
/// Valid only inside that closure.
public struct LuaRecordFields {
    fileprivate let fields: UnsafeMutableBufferPointer<tsb_field>

    public func isNil(_ field: Int) -> Bool {
        fields[field].type == LUA_TNIL
    }

    /// The field as a number; nil if it is not one (strings are not converted).
    public func number(_ field: Int) -> Double? {
        fields[field].type == LUA_TNUMBER ? fields[field].number : nil
    }

    /// The field's string bytes, valid only inside the `readRecord` closure; nil if it is not a
    /// string.
    public func bytes(_ field: Int) -> UnsafeBufferPointer<UInt8>? {
        guard fields[field].type == LUA_TSTRING, let pointer = fields[field].string else { return nil }
        return UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: fields[field].length)
    }

    /// The field as a string; nil if it is not one (numbers are not converted).
    public func string(_ field: Int) -> String? {
        guard fields[field].type == LUA_TSTRING, let pointer = fields[field].string else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: fields[field].length), as: UTF8.self)
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

    /// Reads the layout's fields of the table result `index` in one C call, without
    /// metamethods. Every field reads as nil when the result is not a table.
    public func readRecord<Result, Failure: Error>(
        _ layout: LuaRecordLayout, in index: Int, _ body: (LuaRecordFields) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try withUnsafeTemporaryAllocation(of: tsb_field.self, capacity: layout.count) { buffer throws(Failure) in
            if isTable(index) {
                tsb_read_record(state, base + Int32(index), layout.reference, Int32(layout.count), buffer.baseAddress)
            } else {
                for field in buffer.indices { buffer[field] = tsb_field(type: LUA_TNIL, number: 0, string: nil, length: 0) }
            }
            return try body(LuaRecordFields(fields: buffer))
        }
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
    /// Interns `names` in the VM as a record layout.
    public func recordLayout(_ names: [String]) throws(LuaError) -> LuaRecordLayout {
        let reference = names.withCStringArray { tsb_record_layout(rawState, $0, Int32(names.count)) }
        guard reference != LUA_NOREF else { throw LuaError(kind: .memoryExhausted, message: "could not create a record layout") }
        return LuaRecordLayout(reference: reference, count: names.count)
    }

    /// Keeps the one value `build` pushes alive in the VM until `release(_:)`.
    public func makeReference(_ build: (LuaArguments) throws(LuaError) -> Void) throws(LuaError) -> LuaReference {
        let top = lua_gettop(rawState)
        guard lua_checkstack(rawState, 16) != 0 else { throw LuaError(kind: .bridging, message: "Lua stack exhausted") }
        do {
            try build(LuaArguments(state: rawState, vm: self))
        } catch {
            lua_settop(rawState, top)
            throw error
        }
        precondition(lua_gettop(rawState) == top + 1, "makeReference builds exactly one value")
        return LuaReference(reference: luaL_ref(rawState, tsb_registry_index()))
    }

    /// Lets a referenced value be collected.
    public func release(_ reference: LuaReference) {
        luaL_unref(rawState, tsb_registry_index(), reference.reference)
    }

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

extension Array where Element == String {
    fileprivate func withCStringArray<Result>(_ body: (UnsafePointer<UnsafePointer<CChar>?>) -> Result) -> Result {
        let copies = map { strdup($0) }
        defer { copies.forEach { free($0) } }
        return copies.map { UnsafePointer($0) }.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

extension StaticString {
    fileprivate var utf8StartAsCChar: UnsafePointer<CChar> {
        UnsafeRawPointer(utf8Start).assumingMemoryBound(to: CChar.self)
    }
}
