import Foundation
import LuaSandbox

/// A built-in script shipped with the server: a plugin from `Plugins/<name>/` or a tier policy
/// from `Policies/<tier>.lua`.
public struct Plugin: Sendable, Equatable {
    public var name: String
    public var hook: ScriptHook
    public var version: String
    public var description: String
    /// Configuration defaults; a script's own config is merged over them.
    public var defaultConfig: LuaValue
    public var source: String

    public init(name: String, hook: ScriptHook, version: String, description: String, defaultConfig: LuaValue, source: String) {
        self.name = name
        self.hook = hook
        self.version = version
        self.description = description
        self.defaultConfig = defaultConfig
        self.source = source
    }
}

/// The built-in plugins and tier policies, loaded and validated once at start-up.
public struct PluginCatalog: Sendable {
    public var plugins: [String: Plugin]
    public var policies: [String: Plugin]

    public init(plugins: [String: Plugin] = [:], policies: [String: Plugin] = [:]) {
        self.plugins = plugins
        self.policies = policies
    }

    /// Reads `Plugins/<name>/manifest.json` + `plugin.lua` and `Policies/<tier>.lua`. Every
    /// one must compile and keep its hook's contract, or loading fails naming it.
    public static func load(pluginsDirectory: URL, policiesDirectory: URL) throws -> PluginCatalog {
        var catalog = PluginCatalog()
        let files = FileManager.default
        for folder in try files.contentsOfDirectory(atPath: pluginsDirectory.path).sorted() {
            let directory = pluginsDirectory.appendingPathComponent(folder)
            var isDirectory: ObjCBool = false
            guard files.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            let manifest = try JSONDecoder().decode(
                Manifest.self, from: Data(contentsOf: directory.appendingPathComponent("manifest.json")))
            guard manifest.name == folder else {
                throw ScriptError.contract("plugin folder \(folder) holds a manifest named \(manifest.name)")
            }
            let source = try String(contentsOf: directory.appendingPathComponent("plugin.lua"), encoding: .utf8)
            catalog.plugins[manifest.name] = Plugin(
                name: manifest.name, hook: manifest.hook, version: manifest.version, description: manifest.description,
                defaultConfig: manifest.config?.luaValue ?? .table([:]), source: source)
        }
        for file in try files.contentsOfDirectory(atPath: policiesDirectory.path).sorted() where file.hasSuffix(".lua") {
            let tier = String(file.dropLast(4))
            let source = try String(contentsOf: policiesDirectory.appendingPathComponent(file), encoding: .utf8)
            catalog.policies[tier] = Plugin(
                name: tier, hook: .storagePolicy, version: "1", description: "Storage policy of the \(tier) tier",
                defaultConfig: .table([:]), source: source)
        }
        let runner = try ScriptRunner(catalog: catalog)
        for plugin in catalog.plugins.values.sorted(by: { $0.name < $1.name }) + catalog.policies.values.sorted(by: { $0.name < $1.name }) {
            do {
                _ = try runner.load(plugin: plugin)
            } catch {
                throw ScriptError.contract("built-in \(plugin.name) is invalid: \(error)")
            }
        }
        return catalog
    }

    private struct Manifest: Decodable {
        var name: String
        var hook: ScriptHook
        var version: String
        var description: String
        var config: JSONValue?
    }
}

/// Any JSON value, for manifests and stored script configuration.
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let array = try? container.decode([JSONValue].self) {
            self = .array(array)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .number(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        case .array(let array): try container.encode(array)
        case .object(let object): try container.encode(object)
        }
    }

    /// Whole numbers become Lua integers, so `config.minutes` is `5`, not `5.0`.
    public var luaValue: LuaValue {
        switch self {
        case .null: .nil
        case .bool(let flag): .bool(flag)
        case .number(let number):
            number.rounded() == number && abs(number) < 9e15 ? .integer(Int64(number)) : .number(number)
        case .string(let text): .string(text)
        case .array(let array): .array(array.map(\.luaValue))
        case .object(let object): .table(object.mapValues(\.luaValue))
        }
    }
}
