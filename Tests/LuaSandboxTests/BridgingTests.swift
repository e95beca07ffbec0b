import LuaSandbox
import Testing

@Suite struct BridgingTests {
    @Test func valuesRoundTrip() throws {
        let vm = try LuaVM()
        let module = try vm.load(chunk: "return { echo = function(...) return ... end }", name: "echo")
        let values: [LuaValue] = [
            .nil, true, false, 0, -42, .integer(.max), 1.5, -0.25, "", "héllo ✓ 🌡", ["a", 1, 2.5, [true]],
            ["mode": "HEAT", "temp": 20.5, "nested": ["deep": [1, 2, 3]]], [:] as LuaValue,
        ]
        let results = try vm.call("echo", in: module, values)
        #expect(results.count == values.count)
        for (result, value) in zip(results, values) where value != [:] as LuaValue {
            #expect(result == value)
        }
        #expect(try vm.call("echo", in: module, [[:] as LuaValue]) == [.array([])], "an empty table reads back as an array")
    }

    @Test func integersAndFloatsStayDistinct() throws {
        let vm = try LuaVM()
        let module = try vm.load(chunk: "return { f = function() return 3, 3.0, 7 // 2, 7 / 2, 2^53 end }", name: "numbers")
        #expect(try vm.call("f", in: module, []) == [.integer(3), .number(3), .integer(3), .number(3.5), .number(9_007_199_254_740_992)])
    }

    @Test(arguments: [
        ("return { f = function() return print end }", "function value cannot leave"),
        ("return { f = function() local t = {} t.self = t return t end }", "cycle"),
        ("return { f = function() local t = {} for i = 1, 40 do t = { t } end return t end }", "nested deeper"),
        ("return { f = function() return { 1, 2, x = 3 } end }", "mixes"),
        ("return { f = function() return { [1] = 1, [3] = 3 } end }", "exactly 1"),
        ("return { f = function() return { [1.5] = 1 } end }", "keys must be"),
        ("return { f = function() return coroutine.create(print) end }", "thread value"),
        ("return { f = function() local t = {} for i = 1, 200000 do t[i] = i end return t end }", "more than"),
    ])
    func unsupportedReturnsAreClearErrors(_ source: String, _ expected: String) throws {
        let vm = try LuaVM()
        let module = try vm.load(chunk: source, name: "bad")
        #expect {
            _ = try vm.call("f", in: module, [])
        } throws: { error in
            guard let error = error as? LuaError else { return false }
            return error.kind == .bridging && error.message.contains(expected)
        }
        let after = try vm.load(chunk: "return { ok = function() return 1 end }", name: "after")
        #expect(try vm.call("ok", in: after, []) == [1])
    }

    @Test func argumentsOverTheLimitsAreRefused() throws {
        var limits = LuaLimits()
        limits.maximumDepth = 4
        let vm = try LuaVM(limits: limits)
        let module = try vm.load(chunk: "return { f = function(x) return x end }", name: "limits")
        let deep: LuaValue = [[[[[["too deep"]]]]]]
        #expect {
            try vm.call("f", in: module, [deep])
        } throws: { error in
            (error as? LuaError)?.kind == .bridging && (error as? LuaError)?.message.contains("deeper") == true
        }
        #expect(try vm.call("f", in: module, [[["fine"]]]) == [[["fine"]]])
    }

    @Test func missingFunctionsAndNonTableScripts() throws {
        let vm = try LuaVM()
        let module = try vm.load(chunk: "return { transform = function(s) return s end, name = 'x' }", name: "m")
        #expect(vm.hasFunction("transform", in: module))
        #expect(!vm.hasFunction("name", in: module))
        #expect(try vm.field("name", of: module) == "x")
        #expect { try vm.call("evaluate", in: module, []) } throws: { ($0 as? LuaError)?.message.contains("no function 'evaluate'") == true }
        #expect { try vm.load(chunk: "return 42", name: "number") } throws: { ($0 as? LuaError)?.message.contains("must return a table") == true }
    }

    @Test func errorsCarryChunkAndLine() throws {
        let vm = try LuaVM()
        do {
            _ = try vm.load(chunk: "return {\n  f = function(\n", name: "broken")
            Issue.record("compiled")
        } catch {
            #expect(error.kind == .syntax)
            #expect(error.chunk == "broken")
            #expect(error.line == 3)
        }
        let module = try vm.load(chunk: "return {\n f = function()\n  error('boom')\n end }", name: "raises")
        do {
            _ = try vm.call("f", in: module, [])
            Issue.record("did not raise")
        } catch {
            #expect(error.kind == .runtime)
            #expect(error.chunk == "raises")
            #expect(error.line == 3)
            #expect(error.message == "boom")
        }
    }

    @Test func errorValuesThatAreNotStrings() throws {
        let vm = try LuaVM()
        let module = try vm.load(
            chunk: """
                return {
                  table = function() error({ code = 7 }) end,
                  message = function() error({ message = "from a table" }) end,
                  none = function() error() end,
                  meta = function() error(setmetatable({}, { __tostring = function() while true do end end })) end,
                }
                """, name: "errors")
        for (function, expected) in [
            ("table", "(error object is a table value)"), ("message", "from a table"), ("none", "(error object is a nil value)"),
            ("meta", "(error object is a table value)"),
        ] {
            #expect(throws: LuaError(kind: .runtime, message: expected)) { try vm.call(function, in: module, []) }
        }
    }

    @Test func printGoesToABoundedLog() throws {
        var limits = LuaLimits()
        limits.logBytes = 64
        let vm = try LuaVM(limits: limits)
        let module = try vm.load(
            chunk: "return { f = function() print('hello', 1, nil, true) for i = 1, 20 do print('line', i) end end }",
            name: "logger")
        _ = try vm.call("f", in: module, [])
        let log = vm.drainLog()
        #expect(log.first == "hello\t1\tnil\ttrue")
        #expect(log.last?.contains("dropped") == true)
        #expect(log.count < 12)
        #expect(vm.drainLog().isEmpty)
    }

    @Test func requireLoadsOnlyRegisteredModules() throws {
        let vm = try LuaVM()
        try vm.registerModule(name: "units", source: "return { f_to_c = function(f) return (f - 32) * 5 / 9 end }")
        let module = try vm.load(
            chunk: """
                local units = require("units")
                return {
                  convert = function(f) return units.f_to_c(f) end,
                  same = function() return require("units") == units end,
                  other = function() return require("io") end,
                }
                """, name: "user")
        #expect(try vm.call("convert", in: module, [212]) == [100.0])
        #expect(try vm.call("same", in: module, []) == [true])
        #expect { try vm.call("other", in: module, []) } throws: { ($0 as? LuaError)?.message.contains("not available") == true }
    }

    @Test func loadRecordsWhichModulesTheChunkRequired() throws {
        let vm = try LuaVM()
        try vm.registerModule(name: "a", source: "return { b = require('b') }")
        try vm.registerModule(name: "b", source: "return {}")
        _ = try vm.load(chunk: "local a = require('a') local again = require('a') return { f = function() return require('b') end }", name: "s")
        #expect(vm.requiredByLastLoad == ["a", "b"], "each once, in the order of their first require")
        _ = try vm.load(chunk: "return {}", name: "t")
        #expect(vm.requiredByLastLoad.isEmpty)
    }

    /// A module whose code fails must not stay marked as loading: the next require reports the
    /// module's own error again, not that it requires itself.
    @Test func aModuleThatFailsToLoadCanBeRequiredAgain() throws {
        let vm = try LuaVM()
        try vm.registerModule(name: "flaky", source: "if not FIXED then error('not yet') end return { ok = true }")
        let module = try vm.load(chunk: "return { f = function() return require('flaky').ok end, fix = function() FIXED = true end }", name: "s")
        for _ in 0..<2 {
            #expect {
                _ = try vm.call("f", in: module, [])
            } throws: { error in
                (error as? LuaError)?.message.contains("not yet") == true
            }
        }
        _ = try vm.call("fix", in: module, [])
        #expect(try vm.call("f", in: module, []) == [true])
    }

    /// A record copier copies the named fields as they are (a float stays a float, an absent
    /// field stays absent) into a table of its own, and takes only plain field names.
    @Test func aRecordCopierCopiesTheNamedFields() throws {
        let vm = try LuaVM()
        let copier = try vm.recordCopier(["serial", "setpoint", "outside", "mode"])
        let record: LuaValue = ["serial": "TH-1", "setpoint": .number(21), "mode": "HEAT"]
        let copy = try vm.call(copier, arguments: { arguments throws(LuaError) in
            try arguments.push(record)
            return 1
        }, results: { results throws(LuaError) in try results.value(0) })
        #expect(copy == record)
        for names in [[], ["a b"], ["x\"] = 1 --"]] {
            #expect(throws: LuaError.self) { try vm.recordCopier(names) }
        }
    }
}
