import LuaSandbox
import Testing

/// Scripts written to hurt the host. Each must end in a clear error, quickly, and leave the VM
/// (or at least a fresh one) working.
@Suite struct HostileScriptTests {
    static func run(_ body: String, limits: LuaLimits = LuaLimits()) throws -> (LuaVM, Result<[LuaValue], LuaError>) {
        let vm = try LuaVM(limits: limits)
        let module = try vm.load(chunk: "return { f = function(...)\n\(body)\nend }", name: "hostile")
        let result = Result { () throws(LuaError) in try vm.call("f", in: module, []) }
        return (vm, result)
    }

    static func expectFailure(_ body: String, _ kinds: Set<LuaError.Kind>, containing text: String? = nil) throws {
        var kinds = kinds
        // On a loaded machine the wall-clock guard may stop a runaway before its budget does.
        if kinds.contains(.budgetExhausted) || kinds.contains(.memoryExhausted) { kinds.insert(.timeout) }
        let (vm, result) = try run(body)
        switch result {
        case .success(let values):
            Issue.record("hostile script succeeded: \(values)")
        case .failure(let error):
            #expect(kinds.contains(error.kind), "\(error)")
            if let text { #expect(error.message.contains(text), "\(error)") }
        }
        let check = try vm.load(chunk: "return { ok = function() return 1 + 1 end }", name: "after")
        #expect(try vm.call("ok", in: check, []) == [2], "the VM still works after: \(body)")
    }

    @Test func infiniteLoops() throws {
        try Self.expectFailure("while true do end", [.budgetExhausted])
        try Self.expectFailure("local i = 0 repeat i = i + 1 until false", [.budgetExhausted])
        try Self.expectFailure("while true do pcall(function() while true do end end) end", [.budgetExhausted])
        try Self.expectFailure("for i = 1, math.huge do local x = {} end", [.budgetExhausted, .memoryExhausted])
    }

    @Test func wallClockGuard() throws {
        var limits = LuaLimits()
        limits.instructionBudget = .max
        limits.wallClock = .milliseconds(50)
        let (_, result) = try Self.run("while true do end", limits: limits)
        guard case .failure(let error) = result else {
            Issue.record("ran forever")
            return
        }
        #expect(error.kind == .timeout)
    }

    @Test func memoryBombs() throws {
        try Self.expectFailure("local t = {} local i = 0 while true do i = i + 1 t[i] = { i, i, i } end", [.memoryExhausted, .budgetExhausted])
        try Self.expectFailure("return string.rep('x', 1e9)", [.runtime, .memoryExhausted])
        try Self.expectFailure("return ('x'):rep(2^20):rep(64)", [.runtime, .memoryExhausted])
        try Self.expectFailure("return string.rep('', 1e12)", [.runtime], containing: "sandbox limit")
        try Self.expectFailure("local s = 'x' while true do s = s .. s end", [.memoryExhausted])
        try Self.expectFailure("local t = {} for i = 1, 1e7 do t[#t + 1] = tostring(i) .. 'padding' end", [.memoryExhausted, .budgetExhausted])
        try Self.expectFailure("return table.move({1}, 1, 1e12, 2)", [.runtime], containing: "sandbox limit")
        try Self.expectFailure("return table.concat({}, ',', 1, 1e9)", [.runtime])
    }

    @Test func memoryCapIsPerVMAndRecovers() throws {
        var limits = LuaLimits()
        limits.memoryBytes = 2 * 1024 * 1024
        let (vm, result) = try Self.run("local t = {} while true do t[#t + 1] = ('y'):rep(1000) .. #t end", limits: limits)
        guard case .failure(let error) = result else {
            Issue.record("no memory error")
            return
        }
        #expect(error.kind == .memoryExhausted)
        #expect(vm.memoryInUse < limits.memoryBytes)
    }

    @Test func recursionAndCStack() throws {
        try Self.expectFailure("local function f() return 1 + f() end return f()", [.runtime, .memoryExhausted])
        try Self.expectFailure(
            "local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) return t[k] end return t.x",
            [.runtime, .memoryExhausted, .budgetExhausted])
        try Self.expectFailure(
            "local function nest(n) return coroutine.wrap(function() return nest(n + 1)() end) end return nest(0)()",
            [.runtime, .memoryExhausted, .budgetExhausted])
        try Self.expectFailure("local s = string.rep('(', 300) return assert(load('return ' .. s))", [.runtime], containing: "overflow")
        try Self.expectFailure(
            "local function f(s) return s:gsub('.', function(c) return f(c) end) end return f('ab')",
            [.runtime, .memoryExhausted, .budgetExhausted])
    }

    @Test func backtrackingPatterns() throws {
        try Self.expectFailure("return string.find(string.rep('a', 1e5), '.-.-.-.-.-.-.-b')", [.runtime], containing: "too costly")
        try Self.expectFailure("return string.match(string.rep('a', 5000), '(a*)*b')", [.runtime], containing: "too costly")
        try Self.expectFailure("for w in string.gmatch(string.rep('ab', 3000), '.-.-.-x') do end", [.runtime], containing: "too costly")
        try Self.expectFailure("return (string.rep('a', 300)):gsub('a?a?a?a?a?a?a?a?', '')", [.runtime], containing: "too costly")
        try Self.expectFailure("return string.find('abc', string.rep('a', 300))", [.runtime], containing: "longer than")
        let (_, ordinary) = try Self.run("return string.match('T=21.5C', 'T=([%d%.]+)C'), ('a,b,c'):gsub(',', ';')")
        #expect(try ordinary.get() == ["21.5", "a;b;c", 2])
    }

    @Test func coroutinesThatNeverEnd() throws {
        try Self.expectFailure(
            "local co = coroutine.wrap(function() while true do coroutine.yield() end end) while true do co() end",
            [.budgetExhausted])
        try Self.expectFailure("local co = coroutine.create(function() while true do end end) return coroutine.resume(co)", [.budgetExhausted])
    }

    @Test func escapeAttempts() throws {
        for global in ["io", "debug", "package", "dofile", "loadfile", "string.dump", "os.execute", "os.exit", "os.getenv", "os.remove"] {
            let (_, result) = try Self.run("return \(global) == nil")
            #expect(try result.get() == [true], "\(global) is reachable")
        }
        try Self.expectFailure("return require('io')", [.runtime], containing: "not available")
        try Self.expectFailure("return require('os')", [.runtime], containing: "not available")
        try Self.expectFailure("return collectgarbage('collect')", [.runtime], containing: "only \"count\"")
        let (_, count) = try Self.run("return type(collectgarbage('count'))")
        #expect(try count.get() == ["number"])
        let (_, binary) = try Self.run(#"return load("\27Lua\84\0\25\147\13\10\26\10")"#)
        let loaded = try binary.get()
        #expect(loaded.first == .nil)
        #expect(loaded.last?.stringValue?.contains("binary") == true)
        try Self.expectFailure("return setmetatable({}, { __gc = function() while true do end end })", [.runtime], containing: "__gc")
        let (_, envLoad) = try Self.run("return load('return x', 'chunk', 't', { x = 5 })()")
        #expect(try envLoad.get() == [5])
    }

    @Test func stringMetatableIsLocked() throws {
        let (_, meta) = try Self.run("return getmetatable('')")
        #expect(try meta.get() == ["locked"])
        try Self.expectFailure("getmetatable('').__index = function() return 'pwned' end", [.runtime])
        let vm = try LuaVM()
        let tamper = try vm.load(chunk: "string.upper = function() return 'pwned' end return { f = function() return ('a'):upper() end }", name: "tamper")
        #expect(try vm.call("f", in: tamper, []) == ["pwned"], "a script may change its own VM")
        let other = try LuaVM()
        let clean = try other.load(chunk: "return { f = function() return ('a'):upper() end }", name: "clean")
        #expect(try other.call("f", in: clean, []) == ["A"], "but never another VM")
    }

    @Test func concurrentVMsDoNotShareGlobals() async throws {
        try await withThrowingTaskGroup(of: [LuaValue].self) { group in
            for tenant in 0..<4 {
                group.addTask {
                    let vm = try LuaVM()
                    let module = try vm.load(
                        chunk: "secret = \(tenant) return { f = function() local s = 0 for i = 1, 20000 do s = s + i end return secret, s end }",
                        name: "tenant\(tenant)")
                    var last: [LuaValue] = []
                    for _ in 0..<50 { last = try vm.call("f", in: module, []) }
                    return last
                }
            }
            var seen: Set<Int64> = []
            for try await result in group {
                guard case .integer(let secret) = result.first else {
                    Issue.record("no secret")
                    continue
                }
                seen.insert(secret)
                #expect(result.last == .integer(200_010_000))
            }
            #expect(seen == [0, 1, 2, 3])
        }
    }

    @Test func errorHandlingPathsStayUnderTheLimits() throws {
        try Self.expectFailure("return xpcall(function() while true do end end, function() while true do end end)", [.budgetExhausted])
        try Self.expectFailure("return xpcall(function() error('x') end, function() while true do end end)", [.budgetExhausted])
        let (_, handled) = try Self.run("return xpcall(function(a) error(a .. '!') end, function(e) return 'handled ' .. e end, 'boom')")
        #expect(try handled.get().first == false)
        #expect(try handled.get().last?.stringValue?.hasSuffix("handled hostile:2: boom!") == true)
        let (_, fine) = try Self.run("return xpcall(function(a, b) return a + b end, print, 1, 2)")
        #expect(try fine.get() == [true, 3])
        #expect(throws: LuaError.self, "to-be-closed variables run with hooks off when a coroutine dies, so they are refused") {
            _ = try Self.run(
                "local co = coroutine.wrap(function() local x <close> = setmetatable({}, { __close = function() while true do end end }) error('die') end) co()")
        }
        let (_, built) = try Self.run("local f, message = load('local x <' .. 'close> = nil') return f == nil, message")
        #expect(try built.get().first == true)
        #expect(try built.get().last?.stringValue?.contains("<close>") == true, "load() refuses code built at run time too")
        let vm = try LuaVM()
        #expect(throws: LuaError.self) { try vm.load(chunk: "local x < close > = nil return {}", name: "closer") }
    }

    @Test func fakeLengthsCannotDriveCLoops() throws {
        for function in ["table.insert(t, 1, 'x')", "table.remove(t, 1)", "table.sort(t)", "table.concat(t)", "table.unpack(t)"] {
            try Self.expectFailure(
                "local t = setmetatable({}, { __len = function() return 1e15 end }) \(function)", [.runtime])
        }
        try Self.expectFailure(
            "local function f(s) return (s:gsub('.', function(c) return f(c .. c) end)) end return f('ab')",
            [.runtime, .memoryExhausted, .budgetExhausted])
    }

    @Test func budgetErrorsNameTheLine() throws {
        let vm = try LuaVM()
        let module = try vm.load(chunk: "return { f = function()\n  local x = 0\n  while true do x = x + 1 end\nend }", name: "spin")
        #expect(throws: LuaError(kind: .budgetExhausted, message: "instruction budget exhausted", chunk: "spin", line: 3)) {
            try vm.call("f", in: module, [])
        }
    }

    @Test func budgetResetsBetweenCalls() throws {
        var limits = LuaLimits()
        limits.instructionBudget = 100_000
        let vm = try LuaVM(limits: limits)
        let module = try vm.load(chunk: "return { f = function(n) local s = 0 for i = 1, n do s = s + i end return s end }", name: "budget")
        for _ in 0..<20 {
            #expect(try vm.call("f", in: module, [10_000]) == [.integer(50_005_000)])
        }
        #expect {
            try vm.call("f", in: module, [10_000_000])
        } throws: { error in
            [.budgetExhausted, .timeout].contains((error as? LuaError)?.kind)
        }
        #expect(try vm.call("f", in: module, [10]) == [55])
    }
}
