import CLua
import CLuaShim

/// A script's returned table, kept alive in its VM's registry.
public struct LuaModule: Sendable, Hashable {
    fileprivate let reference: Int32
}

/// One sandboxed Lua 5.4 VM: safe libraries only, a memory cap, an instruction budget and a
/// wall-clock limit per call, `print` captured into a bounded log, `require` limited to
/// modules the host registered.
///
/// A VM is not thread-safe: use it from one task at a time (the scripting layer keeps each
/// tenant's VM behind an actor). After any error the VM is still consistent — Lua unwinds to
/// the protected call — so it can be reused; the stack is reset after every call.
public final class LuaVM {
    public let limits: LuaLimits
    private let state: OpaquePointer

    /// The raw state, for the fast-path call API in this module.
    @usableFromInline var rawState: OpaquePointer { state }

    /// The C runner of alert rules (`runAlertRule`), kept in the registry on first use.
    lazy var alertRunner: LuaFunction = {
        tsb_push_alert_runner(state)
        return LuaFunction(reference: luaL_ref(state, tsb_registry_index()))
    }()

    /// The C runner of ingest transforms (`runTransform`), kept in the registry on first use.
    lazy var transformRunner: LuaFunction = {
        tsb_push_transform_runner(state)
        return LuaFunction(reference: luaL_ref(state, tsb_registry_index()))
    }()

    public init(limits: LuaLimits = LuaLimits()) throws(LuaError) {
        guard let state = tsb_open(limits.memoryBytes, limits.logBytes) else {
            throw LuaError(kind: .memoryExhausted, message: "could not create a Lua VM")
        }
        self.limits = limits
        self.state = state
    }

    deinit {
        tsb_close(state)
    }

    /// Bytes the VM currently holds.
    public var memoryInUse: Int { tsb_memory_in_use(state) }

    /// Runs a full garbage collection now.
    public func collectGarbage() {
        tsb_collect_garbage(state)
    }

    /// Makes `source` loadable by `require(name)` from scripts in this VM.
    public func registerModule(name: String, source: String) throws(LuaError) {
        let status = source.withCString { sourcePointer in
            name.withCString { namePointer in
                tsb_register_module(state, namePointer, sourcePointer, source.utf8.count)
            }
        }
        guard status == LUA_OK else { throw LuaError(kind: .memoryExhausted, message: "could not register module \(name)") }
    }

    /// The module names the chunk of the last `load(chunk:name:)` passed to `require` while it
    /// ran, each once, in the order of their first call.
    public private(set) var requiredByLastLoad: [String] = []

    /// Compiles and runs a chunk (text only, never bytecode) and keeps the table it returns.
    /// `name` appears in error messages (`name:12: …`).
    public func load(chunk source: String, name: String) throws(LuaError) -> LuaModule {
        let top = lua_gettop(state)
        tsb_trace_requires(state, 1)
        defer {
            requiredByLastLoad = (0..<tsb_required_count(state)).map { index in
                var length = 0
                let pointer = tsb_required_name(state, index, &length)
                return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
            }
            tsb_trace_requires(state, 0)
            lua_settop(state, top)
        }
        let status = source.withCString { sourcePointer in
            "=\(name)".withCString { tsb_load(state, sourcePointer, source.utf8.count, $0) }
        }
        guard status == LUA_OK else {
            throw LuaError(kind: status == LUA_ERRMEM ? .memoryExhausted : .syntax, luaMessage: message(at: -1))
        }
        try protectedCall(arguments: 0, results: 1)
        guard lua_type(state, -1) == LUA_TTABLE else {
            throw LuaError(kind: .runtime, message: "the script must return a table", chunk: name)
        }
        return LuaModule(reference: luaL_ref(state, tsb_registry_index()))
    }

    /// Forgets a module so its table can be collected.
    public func unload(_ module: LuaModule) {
        luaL_unref(state, tsb_registry_index(), module.reference)
    }

    /// Whether the module's table has a function under `name`.
    public func hasFunction(_ name: String, in module: LuaModule) -> Bool {
        let top = lua_gettop(state)
        defer { lua_settop(state, top) }
        return pushField(name, of: module) == LUA_TFUNCTION
    }

    /// The module's field `name` converted to a value (functions are not values).
    public func field(_ name: String, of module: LuaModule) throws(LuaError) -> LuaValue {
        let top = lua_gettop(state)
        defer { lua_settop(state, top) }
        pushField(name, of: module)
        var budget = limits.maximumElements
        return try value(at: lua_gettop(state), depth: 0, budget: &budget, visiting: [])
    }

    /// Calls `module.function(arguments…)` under the limits and returns its results.
    public func call(_ function: String, in module: LuaModule, _ arguments: [LuaValue]) throws(LuaError) -> [LuaValue] {
        let top = lua_gettop(state)
        defer { lua_settop(state, top) }
        guard pushField(function, of: module) == LUA_TFUNCTION else {
            throw LuaError(kind: .runtime, message: "the script has no function '\(function)'")
        }
        guard lua_checkstack(state, Int32(arguments.count) + 8) != 0 else {
            throw LuaError(kind: .bridging, message: "too many arguments")
        }
        var budget = limits.maximumElements
        for argument in arguments {
            try push(argument, depth: 0, budget: &budget)
        }
        try protectedCall(arguments: Int32(arguments.count), results: LUA_MULTRET)
        var results: [LuaValue] = []
        let count = lua_gettop(state) - top
        results.reserveCapacity(Int(count))
        budget = limits.maximumElements
        for index in 0..<count {
            results.append(try value(at: top + 1 + index, depth: 0, budget: &budget, visiting: []))
        }
        return results
    }

    /// The `print` output since the last drain; a final line says how many lines did not fit.
    /// Control characters other than tabs (ANSI escapes, carriage returns) and invisible
    /// formatting characters are escaped as in `LuaError`, since lines end up on terminals.
    public func drainLog() -> [String] {
        var length = 0
        var dropped = 0
        guard let pointer = tsb_take_log(state, &length, &dropped) else { return [] }
        let text = String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map {
            LuaError.escaped($0, limit: .max, keepingTabs: true)
        }
        if dropped > 0 { lines.append("… \(dropped) more line(s) dropped: the log is full") }
        return lines
    }

    // MARK: Internals

    @usableFromInline func protectedCall(arguments: Int32, results: Int32) throws(LuaError) {
        let deadline = tsb_now_ns() + limits.wallClock.nanoseconds
        let status = tsb_pcall(state, arguments, results, limits.instructionBudget, deadline)
        let text: String
        if status == LUA_OK {
            switch tsb_last_abort(state) {
            case TSB_ABORT_BUDGET: text = "instruction budget exhausted (the script caught the error and went on)"
            case TSB_ABORT_DEADLINE: text = "time limit exceeded (the script caught the error and went on)"
            case TSB_ABORT_LATE: text = "time limit exceeded (the call returned after its deadline)"
            default: return
            }
        } else {
            text = message(at: -1)
        }
        switch tsb_last_abort(state) {
        case TSB_ABORT_BUDGET: throw LuaError(kind: .budgetExhausted, luaMessage: text)
        case TSB_ABORT_DEADLINE, TSB_ABORT_LATE: throw LuaError(kind: .timeout, luaMessage: text)
        case TSB_ABORT_MEMORY: throw LuaError(kind: .memoryExhausted, luaMessage: text)
        default: throw LuaError(kind: .runtime, luaMessage: text)
        }
    }

    /// Pushes `module[name]` without invoking metamethods; returns its Lua type.
    @discardableResult
    func rawPushField(_ name: String, of module: LuaModule) -> Int32 {
        pushField(name, of: module)
    }

    @discardableResult
    private func pushField(_ name: String, of module: LuaModule) -> Int32 {
        lua_rawgeti(state, tsb_registry_index(), lua_Integer(module.reference))
        pushString(name)
        let type = lua_rawget(state, -2)
        lua_rotate(state, -2, 1)
        tsb_pop(state, 1)
        return type
    }

    func message(at index: Int32) -> String {
        var length = 0
        guard let pointer = tsb_tostring(state, index, &length) else { return "(no message)" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    @usableFromInline func pushString(_ string: String) {
        var string = string
        string.withUTF8 { bytes in
            _ = bytes.withMemoryRebound(to: CChar.self) { lua_pushlstring(state, $0.baseAddress, $0.count) }
        }
    }

    func push(_ value: LuaValue, depth: Int, budget: inout Int) throws(LuaError) {
        budget -= 1
        guard budget >= 0 else { throw LuaError(kind: .bridging, message: "value has more than \(limits.maximumElements) elements") }
        guard depth <= limits.maximumDepth, lua_checkstack(state, 4) != 0 else {
            throw LuaError(kind: .bridging, message: "value is nested deeper than \(limits.maximumDepth) levels")
        }
        switch value {
        case .nil: lua_pushnil(state)
        case .bool(let flag): lua_pushboolean(state, flag ? 1 : 0)
        case .integer(let number): lua_pushinteger(state, number)
        case .number(let number): lua_pushnumber(state, number)
        case .string(let text): pushString(text)
        case .array(let elements):
            lua_createtable(state, Int32(clamping: elements.count), 0)
            for (index, element) in elements.enumerated() {
                try push(element, depth: depth + 1, budget: &budget)
                lua_rawseti(state, -2, lua_Integer(index + 1))
            }
        case .table(let fields):
            lua_createtable(state, 0, Int32(clamping: fields.count))
            for (key, element) in fields {
                pushString(key)
                try push(element, depth: depth + 1, budget: &budget)
                lua_rawset(state, -3)
            }
        }
    }

    func value(at index: Int32, depth: Int, budget: inout Int, visiting: Set<UnsafeRawPointer>) throws(LuaError)
        -> LuaValue
    {
        budget -= 1
        guard budget >= 0 else {
            throw LuaError(kind: .bridging, message: "returned value has more than \(limits.maximumElements) elements")
        }
        switch lua_type(state, index) {
        case LUA_TNIL, LUA_TNONE: return .nil
        case LUA_TBOOLEAN: return .bool(lua_toboolean(state, index) != 0)
        case LUA_TNUMBER:
            if lua_isinteger(state, index) != 0 { return .integer(lua_tointegerx(state, index, nil)) }
            return .number(lua_tonumberx(state, index, nil))
        case LUA_TSTRING: return .string(message(at: index))
        case LUA_TTABLE: return try table(at: index, depth: depth, budget: &budget, visiting: visiting)
        default:
            let name = String(cString: lua_typename(state, lua_type(state, index)))
            throw LuaError(kind: .bridging, message: "a \(name) value cannot leave the script")
        }
    }

    private func table(at index: Int32, depth: Int, budget: inout Int, visiting: Set<UnsafeRawPointer>) throws(LuaError)
        -> LuaValue
    {
        guard depth < limits.maximumDepth, lua_checkstack(state, 4) != 0 else {
            throw LuaError(kind: .bridging, message: "returned value is nested deeper than \(limits.maximumDepth) levels")
        }
        guard let identity = lua_topointer(state, index), !visiting.contains(identity) else {
            throw LuaError(kind: .bridging, message: "returned table contains a cycle")
        }
        let visiting = visiting.union([identity])
        var integers: [(Int64, LuaValue)] = []
        var strings: [String: LuaValue] = [:]
        lua_pushnil(state)
        while lua_next(state, index) != 0 {
            let element = try value(at: lua_gettop(state), depth: depth + 1, budget: &budget, visiting: visiting)
            switch lua_type(state, -2) {
            case LUA_TSTRING:
                strings[message(at: -2)] = element
            case LUA_TNUMBER where lua_isinteger(state, -2) != 0:
                integers.append((lua_tointegerx(state, -2, nil), element))
            default:
                lua_settop(state, -3)
                throw LuaError(kind: .bridging, message: "table keys must be strings or the integers 1…n")
            }
            tsb_pop(state, 1)
        }
        if integers.isEmpty { return strings.isEmpty ? .array([]) : .table(strings) }
        guard strings.isEmpty else {
            throw LuaError(kind: .bridging, message: "a table mixes array entries and named fields")
        }
        integers.sort { $0.0 < $1.0 }
        guard integers.enumerated().allSatisfy({ $0.offset + 1 == Int($0.element.0) }) else {
            throw LuaError(kind: .bridging, message: "array keys must be exactly 1…n")
        }
        return .array(integers.map(\.1))
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
