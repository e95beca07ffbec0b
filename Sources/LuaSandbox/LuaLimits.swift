/// The resources one VM and one call may use.
public struct LuaLimits: Sendable, Equatable {
    /// Bytes the VM may hold (custom allocator); 16 MiB by default.
    public var memoryBytes: Int = 16 * 1024 * 1024
    /// VM instructions one call may execute; about a million by default. Every function call,
    /// C functions called from C included, counts as a few instructions.
    public var instructionBudget: Int64 = 1_000_000
    /// Wall-clock time one call may take, checked during the call (every few instructions and
    /// on every function call) and once more after it returns: a call that returns late fails.
    public var wallClock: Duration = .milliseconds(250)
    /// Bytes of `print` output kept between two drains of the log.
    public var logBytes: Int = 16 * 1024
    /// How deeply nested a value may be when it crosses between Swift and Lua.
    public var maximumDepth: Int = 32
    /// How many values (table entries included) one crossing may carry.
    public var maximumElements: Int = 100_000

    public init() {}
}
