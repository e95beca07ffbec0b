import LuaSandbox
import Testing

/// The VM's small-block pool: blocks resized within a size class, across classes and across
/// the pool's edge keep their bytes, freed blocks are used again, blocks past the pool's region
/// come from malloc, and the VM's count of bytes in use comes back once everything is collected.
@Suite struct AllocatorTests {
    /// Strings of every length up to 2 KiB (each one block of its own size) and tables grown one
    /// element at a time to 300 (their parts resized through every class and past the pool's
    /// largest), all checked after they were built, three times over in one VM.
    static let churn = """
        return { f = function(round)
          local strings, tables = {}, {}
          for length = 1, 2048 do strings[length] = string.rep(string.char(65 + (length + round) % 26), length) end
          for n = 1, 64 do
            local t = {}
            for i = 1, 300 do t[i] = i * n + round; t["k" .. i] = -i end
            tables[n] = t
          end
          for length = 1, 2048, 7 do
            local s = strings[length]
            assert(#s == length and s:byte(1) == 65 + (length + round) % 26 and s:byte(length) == s:byte(1), "string " .. length)
          end
          local sum = 0
          for n = 1, 64 do
            local t = tables[n]
            assert(#t == 300, "length of table " .. n)
            for i = 1, 300 do assert(t[i] == i * n + round and t["k" .. i] == -i, "table " .. n .. " element " .. i) end
            sum = sum + t[300]
          end
          return sum
        end,
        -- More small blocks alive at once than the VM's region holds (2 MiB): the rest come from
        -- malloc, and both kinds are freed together.
        flood = function(round)
          local small = {}
          for i = 1, 40000 do small[i] = { i + round } end
          local sum = 0
          for i = 1, 40000 do sum = sum + small[i][1] end
          return sum
        end }
        """

    @Test func blocksKeepTheirBytesAndComeBack() throws {
        // Each call does a few hundred thousand steps: room for them on a machine busy with
        // the other tests (the limits are not what this test is about).
        var limits = LuaLimits()
        limits.instructionBudget = 50_000_000
        limits.wallClock = .seconds(60)
        let vm = try LuaVM(limits: limits)
        let module = try vm.load(chunk: Self.churn, name: "churn")
        var afterRounds: [Int] = []
        for round in 0..<3 {
            let expected = (1...64).reduce(0) { $0 + 300 * $1 + round }
            #expect(try vm.call("f", in: module, [.integer(Int64(round))]) == [.integer(Int64(expected))])
            let flooded = (1...40_000).reduce(0) { $0 + $1 + round }
            #expect(try vm.call("flood", in: module, [.integer(Int64(round))]) == [.integer(Int64(flooded))])
            vm.collectGarbage()
            afterRounds.append(vm.memoryInUse)
        }
        // The rounds built megabytes; what stays is Lua's own (its string table grown to the
        // strings' number), about the same after each round once grown.
        #expect(afterRounds.allSatisfy { $0 < 512 * 1024 }, "\(afterRounds)")
        #expect(abs(afterRounds[2] - afterRounds[1]) < 64 * 1024, "\(afterRounds)")
    }
}
