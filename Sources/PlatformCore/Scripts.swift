import Foundation

/// A tenant's named script for one hook, with its activation and failure state.
public struct Script: Sendable, Equatable {
    public var id: UUID
    public var tenantID: UUID
    public var name: String
    /// `ingest`, `alert`, `export` or `storage_policy`.
    public var hook: String
    public var activeVersion: Int?
    /// Consecutive failures of the active version; reset by a success or an activation.
    public var failureCount: Int
    /// While set and in the future, the script is skipped.
    public var quarantinedUntil: Timestamp?
    public var lastError: String?
    /// The input (JSON) of the last failure, to show the tenant what broke it.
    public var lastFailureInput: String?
    public var createdAt: Timestamp

    public init(
        id: UUID, tenantID: UUID, name: String, hook: String, activeVersion: Int? = nil, failureCount: Int = 0,
        quarantinedUntil: Timestamp? = nil, lastError: String? = nil, lastFailureInput: String? = nil, createdAt: Timestamp
    ) {
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.hook = hook
        self.activeVersion = activeVersion
        self.failureCount = failureCount
        self.quarantinedUntil = quarantinedUntil
        self.lastError = lastError
        self.lastFailureInput = lastFailureInput
        self.createdAt = createdAt
    }
}

/// One immutable uploaded version of a script.
public struct ScriptVersion: Sendable, Equatable {
    public var scriptID: UUID
    public var version: Int
    public var source: String
    /// SHA-256 of the source, hex.
    public var sha256: String
    /// The script's configuration, a JSON object.
    public var configJSON: String
    public var authorID: UUID
    public var createdAt: Timestamp

    public init(
        scriptID: UUID, version: Int, source: String, sha256: String, configJSON: String, authorID: UUID, createdAt: Timestamp
    ) {
        self.scriptID = scriptID
        self.version = version
        self.source = source
        self.sha256 = sha256
        self.configJSON = configJSON
        self.authorID = authorID
        self.createdAt = createdAt
    }
}

/// How long a failing script is skipped: the window doubles with every failure past the
/// threshold (1 min, 2 min, 4 min … capped at a day), so a short burst costs minutes while a
/// script that keeps failing is retried ever more rarely — never disabled for good.
public enum QuarantinePolicy {
    public static let failuresBeforeQuarantine = 3
    public static let firstWindowSeconds: Double = 60
    public static let longestWindowSeconds: Double = 86_400

    /// The window after `failures` consecutive failures, or nil while under the threshold.
    public static func window(afterFailures failures: Int) -> Double? {
        guard failures >= failuresBeforeQuarantine else { return nil }
        let doublings = min(failures - failuresBeforeQuarantine, 20)
        return min(firstWindowSeconds * pow(2, Double(doublings)), longestWindowSeconds)
    }
}
