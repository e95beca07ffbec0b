import LuaSandbox

/// Why a script could not be used or did not produce a usable answer.
public enum ScriptError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Lua itself failed: syntax, runtime error, exhausted budget or memory, bridging.
    case lua(LuaError)
    /// The script ran but does not keep the hook's contract (missing function, wrong result).
    case contract(String)

    public var description: String {
        switch self {
        case .lua(let error): error.description
        case .contract(let message): LuaError.escaped(message)
        }
    }
}
