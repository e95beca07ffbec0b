import Foundation

/// Why a script failed, with where (chunk and line) when Lua knows it.
public struct LuaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The category of failure.
    public enum Kind: String, Sendable {
        /// The source does not compile.
        case syntax
        /// The script raised an error (or called something wrongly).
        case runtime
        /// The call ran past its instruction budget.
        case budgetExhausted = "budget_exhausted"
        /// The VM hit its memory cap.
        case memoryExhausted = "memory_exhausted"
        /// The call ran past its wall-clock limit.
        case timeout
        /// A value could not cross between Swift and Lua (a function, a cycle, too deep, too big).
        case bridging
    }

    public var kind: Kind
    public var message: String
    public var chunk: String?
    public var line: Int?

    public init(kind: Kind, message: String, chunk: String? = nil, line: Int? = nil) {
        self.kind = kind
        self.message = message
        self.chunk = chunk
        self.line = line
    }

    /// Splits Lua's `chunk:line: message` form.
    init(kind: Kind, luaMessage: String) {
        self.kind = kind
        let parts = luaMessage.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, let line = Int(parts[1]), !parts[0].isEmpty {
            chunk = String(parts[0])
            self.line = line
            message = parts[2].trimmingCharacters(in: .whitespaces)
        } else {
            message = luaMessage
        }
    }

    public var description: String {
        switch (chunk, line) {
        case let (chunk?, line?): "\(chunk):\(line): \(message)"
        default: message
        }
    }
}
