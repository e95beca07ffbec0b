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
    /// What went wrong, as safe to store and log: at most `maximumTextLength` characters,
    /// control and bidirectional-formatting characters escaped (see `escaped(_:)`).
    public var message: String {
        didSet { message = Self.escaped(message) }
    }
    /// The chunk (script) name, escaped the same way.
    public var chunk: String? {
        didSet { chunk = chunk.map(Self.escaped) }
    }
    public var line: Int?

    public init(kind: Kind, message: String, chunk: String? = nil, line: Int? = nil) {
        self.kind = kind
        self.message = Self.escaped(message)
        self.chunk = chunk.map(Self.escaped)
        self.line = line
    }

    /// Splits Lua's `chunk:line: message` form.
    init(kind: Kind, luaMessage: String) {
        self.kind = kind
        let parts = luaMessage.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, let line = Int(parts[1]), !parts[0].isEmpty {
            chunk = Self.escaped(String(parts[0]))
            self.line = line
            message = Self.escaped(parts[2].trimmingCharacters(in: .whitespaces))
        } else {
            message = Self.escaped(luaMessage)
        }
    }

    /// Unicode scalars a message or chunk name keeps (escapes included); longer text is cut
    /// and ends with "…".
    public static let maximumTextLength = 512

    /// Error text comes from scripts (their `error(...)` values, their names) and ends up in the
    /// database, in logs and on terminals: bound its length, and escape every control character
    /// (newlines, ANSI escape sequences, DEL, C1) and the invisible characters that reorder or
    /// hide text (bidirectional overrides, zero-width marks) as `\n`, `\t` or `\u{…}`.
    /// Escaping escaped text changes nothing.
    public static func escaped(_ text: some StringProtocol) -> String {
        escaped(text, limit: maximumTextLength, keepingTabs: false)
    }

    /// `escaped(_:)` with another bound, optionally leaving tabs as they are (`print` separates
    /// its values with tabs).
    static func escaped(_ text: some StringProtocol, limit: Int, keepingTabs: Bool) -> String {
        var result = ""
        var length = 0
        for scalar in text.unicodeScalars {
            let piece: String
            switch scalar {
            case "\t" where keepingTabs: piece = "\t"
            case "\n": piece = "\\n"
            case "\r": piece = "\\r"
            case "\t": piece = "\\t"
            case _ where needsEscape(scalar): piece = "\\u{\(String(scalar.value, radix: 16))}"
            default: piece = String(scalar)
            }
            let pieceLength = piece.unicodeScalars.count
            guard length + pieceLength <= limit else {
                result += "…"
                break
            }
            result += piece
            length += pieceLength
        }
        return result
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x200B...0x200F, 0x202A...0x202E, 0x2060...0x2069, 0xFEFF: true
        default: false
        }
    }

    public var description: String {
        switch (chunk, line) {
        case let (chunk?, line?): "\(chunk):\(line): \(message)"
        default: message
        }
    }
}
