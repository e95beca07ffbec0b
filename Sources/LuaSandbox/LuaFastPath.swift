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
    @usableFromInline let reference: Int32

    @usableFromInline init(reference: Int32) {
        self.reference = reference
    }
}

/// Field names interned once in a VM (`LuaVM.recordLayout(_:)`), so a flat record (a table
/// with fixed string keys) is written or read with one C call instead of one per field.
public struct LuaRecordLayout: Sendable, Hashable {
    @usableFromInline let reference: Int32
    /// How many fields the layout names.
    public let count: Int

    @usableFromInline init(reference: Int32, count: Int) {
        self.reference = reference
        self.count = count
    }
}

/// A value kept alive in a VM's registry between calls, such as a cached `ctx` table.
public struct LuaReference: Sendable, Hashable {
    @usableFromInline let reference: Int32

    @usableFromInline init(reference: Int32) {
        self.reference = reference
    }
}

/// Builds call arguments directly on the Lua stack, without intermediate `LuaValue`s. Valid
/// only inside the `arguments` closure of `LuaVM.call(_:arguments:results:)`.
///
/// The small methods of the fast path are `@inlinable`, so the scripting module gets them (and
/// the generic `call` and `readRecord`) specialised and inlined: about 0.1 µs of a 1.4 µs
/// transform, measured with `LuaBenchmark`.
public struct LuaArguments {
    @usableFromInline let state: OpaquePointer
    @usableFromInline let vm: LuaVM

    @usableFromInline init(state: OpaquePointer, vm: LuaVM) {
        self.state = state
        self.vm = vm
    }

    public func push(_ value: LuaValue) throws(LuaError) {
        var budget = vm.limits.maximumElements
        try vm.push(value, depth: 0, budget: &budget)
    }

    @inlinable
    public func push(_ number: Double) {
        lua_pushnumber(state, number)
    }

    public func push(_ string: String) {
        vm.pushString(string)
    }

    /// Pushes UTF-8 bytes as a Lua string.
    @inlinable
    public func push(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        _ = UnsafeRawBufferPointer(bytes).withMemoryRebound(to: CChar.self) { lua_pushlstring(state, $0.baseAddress, $0.count) }
    }

    @inlinable
    public func pushNil() {
        lua_pushnil(state)
    }

    /// Pushes a value kept with `LuaVM.makeReference(_:)`.
    @inlinable
    public func push(_ reference: LuaReference) {
        lua_rawgeti(state, tsb_registry_index(), lua_Integer(reference.reference))
    }

    /// Replaces the top `layout.count` values (one per field, in the layout's order; nil for an
    /// absent field) with a new table holding them.
    @inlinable
    public func makeRecord(_ layout: LuaRecordLayout) {
        tsb_make_record(state, layout.reference, Int32(layout.count))
    }

    /// Pushes a function resolved with `LuaVM.function(_:in:)`.
    @inlinable
    public func push(_ function: LuaFunction) {
        lua_rawgeti(state, tsb_registry_index(), lua_Integer(function.reference))
    }

    /// Pushes an array of `elements`, each the one value `push` pushes for it.
    public func pushArray<Elements: Collection>(_ elements: Elements, push: (Elements.Element) -> Void) {
        lua_createtable(state, Int32(clamping: elements.count), 0)
        for (position, element) in elements.enumerated() {
            push(element)
            lua_rawseti(state, -2, lua_Integer(position + 1))
        }
    }

    /// Pops the top `layout.count` values (one per field, in the layout's order; nil clears a
    /// field) into the table just below them.
    @inlinable
    public func fillRecord(_ layout: LuaRecordLayout) {
        tsb_fill_record(state, -Int32(layout.count) - 1, layout.reference, Int32(layout.count))
    }


}

/// The fields of one record read by `LuaResults.readRecord(_:in:_:)`, in the layout's order.
/// Valid only inside that closure.
public struct LuaRecordFields {
    @usableFromInline let fields: UnsafeMutableBufferPointer<tsb_field>

    @usableFromInline init(fields: UnsafeMutableBufferPointer<tsb_field>) {
        self.fields = fields
    }

    @inlinable
    public func isNil(_ field: Int) -> Bool {
        fields[field].type == LUA_TNIL
    }

    /// The field as a number; nil if it is not one (strings are not converted).
    @inlinable
    public func number(_ field: Int) -> Double? {
        fields[field].type == LUA_TNUMBER ? fields[field].number : nil
    }

    /// The field's string bytes, valid only inside the `readRecord` closure; nil if it is not a
    /// string.
    @inlinable
    public func bytes(_ field: Int) -> UnsafeBufferPointer<UInt8>? {
        guard fields[field].type == LUA_TSTRING, let pointer = fields[field].string else { return nil }
        return UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: fields[field].length)
    }
}

/// Reads a call's results in place. Valid only inside the `results` closure.
public struct LuaResults {
    @usableFromInline let state: OpaquePointer
    @usableFromInline let vm: LuaVM
    @usableFromInline let base: Int32
    public let count: Int

    @usableFromInline init(state: OpaquePointer, vm: LuaVM, base: Int32, count: Int) {
        self.state = state
        self.vm = vm
        self.base = base
        self.count = count
    }

    /// Whether result `index` (0-based) is nil or missing.
    @inlinable
    public func isNil(_ index: Int) -> Bool {
        index >= count || lua_type(state, base + Int32(index)) == LUA_TNIL
    }

    @inlinable
    public func isTable(_ index: Int) -> Bool {
        index < count && lua_type(state, base + Int32(index)) == LUA_TTABLE
    }

    /// Reads the layout's fields of the table result `index` in one C call, without
    /// metamethods. Every field reads as nil when the result is not a table.
    @inlinable
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

    /// Reads the layout's fields of each element of the array result `index`, in order, as
    /// `readRecord` does (an element that is not a table reads as all nil). Returns false,
    /// before reading any element, when the result is not a table whose keys are exactly 1…n
    /// or has more than the VM's `maximumElements` entries.
    public func readRecords<Failure: Error>(
        _ layout: LuaRecordLayout, inArray index: Int, _ body: (LuaRecordFields) throws(Failure) -> Void
    ) throws(Failure) -> Bool {
        guard isTable(index), lua_checkstack(state, 4) != 0 else { return false }
        let table = base + Int32(index)
        let length = Int(lua_rawlen(state, table))
        guard length <= vm.limits.maximumElements else { return false }
        // `length` distinct integer keys, each within 1…length, are exactly 1…length.
        var entries = 0
        lua_pushnil(state)
        while lua_next(state, table) != 0 {
            tsb_pop(state, 1)
            entries += 1
            var isInteger: Int32 = 0
            let key = lua_type(state, -1) == LUA_TNUMBER ? lua_tointegerx(state, -1, &isInteger) : 0
            guard isInteger != 0, key >= 1, key <= lua_Integer(length) else {
                tsb_pop(state, 1)
                return false
            }
        }
        guard entries == length else { return false }
        return try withUnsafeTemporaryAllocation(of: tsb_field.self, capacity: layout.count) { buffer throws(Failure) in
            for position in 0..<length {
                if lua_rawgeti(state, table, lua_Integer(position + 1)) == LUA_TTABLE {
                    tsb_read_record(state, -1, layout.reference, Int32(layout.count), buffer.baseAddress)
                } else {
                    for field in buffer.indices { buffer[field] = tsb_field(type: LUA_TNIL, number: 0, string: nil, length: 0) }
                }
                defer { tsb_pop(state, 1) }
                try body(LuaRecordFields(fields: buffer))
            }
            return true
        }
    }

    /// Whether result `index` is nil, missing, or a table without entries: the common answer
    /// of an alert rule with nothing active, recognised without converting anything.
    public func isEmpty(_ index: Int) -> Bool {
        if isNil(index) { return true }
        guard isTable(index) else { return false }
        lua_pushnil(state)
        guard lua_next(state, base + Int32(index)) != 0 else { return true }
        lua_settop(state, -3)
        return false
    }

    /// Whether result `index` is the very value `reference` keeps (the same table, not an equal
    /// one).
    @inlinable
    public func isSame(_ index: Int, as reference: LuaReference) -> Bool {
        guard index < count else { return false }
        lua_rawgeti(state, tsb_registry_index(), lua_Integer(reference.reference))
        defer { lua_settop(state, -2) }
        return lua_rawequal(state, base + Int32(index), -1) != 0
    }

    /// Keeps result `index` alive in the VM until `LuaVM.release(_:)`, unconverted.
    public func reference(_ index: Int) -> LuaReference {
        lua_pushvalue(state, base + Int32(index))
        return LuaReference(reference: luaL_ref(state, tsb_registry_index()))
    }

    /// Result `index` converted in full.
    public func value(_ index: Int) throws(LuaError) -> LuaValue {
        guard index < count else { return .nil }
        var budget = vm.limits.maximumElements
        return try vm.value(at: base + Int32(index), depth: 0, budget: &budget, visiting: [])
    }
}

extension LuaVM {
    /// Interns `names` in the VM as a record layout.
    public func recordLayout(_ names: [String]) throws(LuaError) -> LuaRecordLayout {
        guard !names.isEmpty else { throw LuaError(kind: .bridging, message: "a record layout needs at least one field") }
        let copies = names.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let reference = copies.allSatisfy({ $0 != nil })
            ? copies.map { UnsafePointer($0) }.withUnsafeBufferPointer { tsb_record_layout(rawState, $0.baseAddress!, Int32(names.count)) }
            : LUA_NOREF
        guard reference != LUA_NOREF else { throw LuaError(kind: .memoryExhausted, message: "could not create a record layout") }
        return LuaRecordLayout(reference: reference, count: names.count)
    }

    /// A function of the VM that copies a flat record with the fields `names` into a fresh
    /// table, for runners that hand each call a copy (`runAlertRule`). It is Lua code, a table
    /// constructor, so the VM builds the copy with its own instructions instead of a call into
    /// the C API per field. It reads the fields by plain indexing, which is raw only for a table
    /// without a metatable: `runAlertRule`'s runner refuses any other.
    public func recordCopier(_ names: [String]) throws(LuaError) -> LuaFunction {
        func isPlain(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: "_") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
        }
        guard !names.isEmpty, names.allSatisfy({ $0.utf8.allSatisfy(isPlain) }) else {
            throw LuaError(kind: .bridging, message: "a record copier needs plain field names")
        }
        let fields = names.map { "[\"\($0)\"] = record[\"\($0)\"]" }.joined(separator: ", ")
        let module = try load(chunk: "return { copy = function(record) return { \(fields) } end }", name: "record copier")
        return try function("copy", in: module)
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

    /// A referenced value converted in full.
    public func value(of reference: LuaReference) throws(LuaError) -> LuaValue {
        let top = lua_gettop(rawState)
        defer { lua_settop(rawState, top) }
        guard lua_checkstack(rawState, 16) != 0 else { throw LuaError(kind: .bridging, message: "Lua stack exhausted") }
        lua_rawgeti(rawState, tsb_registry_index(), lua_Integer(reference.reference))
        var budget = limits.maximumElements
        return try value(at: lua_gettop(rawState), depth: 0, budget: &budget, visiting: [])
    }

    /// Lets a referenced value be collected.
    public func release(_ reference: LuaReference) {
        luaL_unref(rawState, tsb_registry_index(), reference.reference)
    }

    /// Lets a resolved function be collected.
    public func release(_ function: LuaFunction) {
        luaL_unref(rawState, tsb_registry_index(), function.reference)
    }

    /// Runs an alert rule's `evaluate` over one device's samples in one protected call (the C
    /// runner `tsb_push_alert_runner` describes): each sample's table a fresh copy of its
    /// element of `samples` (an array `LuaArguments.pushArray(_:push:)` made) that `copier`
    /// makes (`recordCopier(_:)`), or without one the element itself, the state
    /// carried from call to call, `context` pushing the `ctx` table and its five values, which
    /// `contextLayout` names and which are rewritten before every call. Every call has the limits
    /// of a call of its own, and all must end within `share`. `results` reads the last state
    /// (result 0), then the steps. Any fault, or an answer the runner leaves to the caller's
    /// own reader, is an error: the caller then runs the rule one call per sample.
    public func runAlertRule<Result>(
        _ evaluate: LuaFunction, samples: LuaReference, copier: LuaFunction?, state: LuaValue, share: Duration,
        context: (LuaArguments) -> Void, contextLayout: LuaRecordLayout, maximumKeyBytes: Int,
        results: (LuaResults) throws(LuaError) -> Result
    ) throws(LuaError) -> Result {
        try call(
            alertRunner,
            arguments: { arguments throws(LuaError) in
                let base = lua_gettop(rawState)
                arguments.push(evaluate)
                arguments.push(samples)
                try arguments.push(state)
                context(arguments)
                for number in [
                    lua_Integer(contextLayout.reference), share.nanoseconds, limits.wallClock.nanoseconds,
                    limits.instructionBudget, lua_Integer(limits.maximumElements), lua_Integer(maximumKeyBytes),
                ] {
                    lua_pushinteger(rawState, number)
                }
                if let copier {
                    arguments.push(copier)
                } else {
                    lua_pushnil(rawState)
                }
                return lua_gettop(rawState) - base
            },
            results: results)
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
    @inlinable
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
