import Foundation
import PlatformCore
import Scripting

/// A script as the API shows it: its state, and for a quarantined script why and until when.
struct ScriptJSON: Encodable {
    var id: String
    var name: String
    var hook: String
    var activeVersion: Int?
    var latestVersion: Int?
    var version: Int?
    var status: String
    var failureCount: Int
    var quarantinedUntil: Timestamp?
    var lastError: String?
    var lastFailureInput: String?
    var createdAt: Timestamp

    init(_ script: Script, latestVersion: Int?, now: Timestamp) {
        id = script.id.uuidString.lowercased()
        name = script.name
        hook = script.hook
        activeVersion = script.activeVersion
        self.latestVersion = latestVersion
        if let until = script.quarantinedUntil, until > now {
            status = "quarantined"
        } else {
            status = script.activeVersion == nil ? "inactive" : "active"
        }
        failureCount = script.failureCount
        quarantinedUntil = script.quarantinedUntil
        lastError = script.lastError
        lastFailureInput = script.lastFailureInput
        createdAt = script.createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, hook, version, status
        case activeVersion = "active_version"
        case latestVersion = "latest_version"
        case failureCount = "failure_count"
        case quarantinedUntil = "quarantined_until"
        case lastError = "last_error"
        case lastFailureInput = "last_failure_input"
        case createdAt = "created_at"
    }
}

struct VersionJSON: Encodable {
    var version: Int
    var sha256: String
    var config: JSONValue
    var authorID: String
    var createdAt: Timestamp
    var source: String

    init(_ version: ScriptVersion) {
        self.version = version.version
        sha256 = version.sha256
        config = (try? JSONDecoder().decode(JSONValue.self, from: Data(version.configJSON.utf8))) ?? .object([:])
        authorID = version.authorID.uuidString.lowercased()
        createdAt = version.createdAt
        source = version.source
    }

    enum CodingKeys: String, CodingKey {
        case version, sha256, config, source
        case authorID = "author_id"
        case createdAt = "created_at"
    }
}

struct ShowJSON: Encodable {
    var script: ScriptJSON
    var versions: [VersionJSON]
}

struct PluginJSON: Encodable {
    var name: String
    var hook: String
    var version: String
    var description: String
    var config: JSONValue
}

struct PluginsJSON: Encodable {
    var plugins: [PluginJSON]
    var policies: [PluginJSON]
}

