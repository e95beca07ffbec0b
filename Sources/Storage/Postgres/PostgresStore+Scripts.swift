import Foundation
import PlatformCore
import PostgresNIO

extension PostgresStore: ScriptStore {
    private typealias ScriptRow = (UUID, UUID, String, String, Int?, Int, Timestamp?, String?, String?, Timestamp)
    private static let scriptColumns =
        "s.id, s.tenant_id, s.name, s.hook, s.active_version, s.failure_count, s.quarantined_until, s.last_error, s.last_failure_input, s.created_at"

    private static func script(_ row: ScriptRow) -> Script {
        Script(
            id: row.0, tenantID: row.1, name: row.2, hook: row.3, activeVersion: row.4, failureCount: row.5,
            quarantinedUntil: row.6, lastError: row.7, lastFailureInput: row.8, createdAt: row.9)
    }

    public func addScriptVersion(
        tenantID: UUID, name: String, hook: String, source: String, sha256: String, configJSON: String, authorID: UUID,
        at time: Timestamp
    ) async throws -> (Script, ScriptVersion) {
        let logger = logger
        return try await transaction("add script version") { connection in
            try await connection.query(
                """
                INSERT INTO scripts (tenant_id, id, name, hook, created_at)
                VALUES (\(tenantID), \(UUID()), \(name), \(hook), \(time)) ON CONFLICT (tenant_id, name) DO NOTHING
                """, logger: logger)
            var found: Script?
            for try await row in try await connection.query(
                "SELECT \(unescaped: Self.scriptColumns) FROM scripts s WHERE s.tenant_id = \(tenantID) AND s.name = \(name) FOR UPDATE",
                logger: logger
            ).decode(ScriptRow.self) {
                found = Self.script(row)
            }
            guard let script = found else { throw PlatformError.notFound("Script") }
            guard script.hook == hook else {
                throw PlatformError.conflict("This name is taken by a script for the \(script.hook) hook", field: "hook")
            }
            var latest = 0
            for try await value in try await connection.query(
                "SELECT COALESCE(max(version), 0) FROM script_versions WHERE tenant_id = \(tenantID) AND script_id = \(script.id)",
                logger: logger
            ).decode(Int.self) {
                latest = value
            }
            let version = ScriptVersion(
                scriptID: script.id, version: latest + 1, source: source, sha256: sha256, configJSON: configJSON,
                authorID: authorID, createdAt: time)
            try await connection.query(
                """
                INSERT INTO script_versions (tenant_id, script_id, version, source, sha256, config, author_id, created_at)
                VALUES (\(tenantID), \(script.id), \(version.version), \(source), \(sha256), \(configJSON), \(authorID), \(time))
                """, logger: logger)
            return (script, version)
        }
    }

    public func scripts(tenantID: UUID) async throws -> [Script] {
        try await rows(
            "SELECT \(unescaped: Self.scriptColumns) FROM scripts s WHERE s.tenant_id = \(tenantID) ORDER BY s.name",
            as: ScriptRow.self
        ).map(Self.script)
    }

    public func script(tenantID: UUID, id: UUID) async throws -> Script? {
        try await rows(
            "SELECT \(unescaped: Self.scriptColumns) FROM scripts s WHERE s.tenant_id = \(tenantID) AND s.id = \(id)",
            as: ScriptRow.self
        ).first.map(Self.script)
    }

    private typealias VersionRow = (UUID, Int, String, String, String, UUID, Timestamp)

    private static func version(_ row: VersionRow) -> ScriptVersion {
        ScriptVersion(
            scriptID: row.0, version: row.1, source: row.2, sha256: row.3, configJSON: row.4, authorID: row.5, createdAt: row.6)
    }

    public func scriptVersions(tenantID: UUID, scriptID: UUID) async throws -> [ScriptVersion] {
        try await rows(
            """
            SELECT script_id, version, source, sha256, config, author_id, created_at FROM script_versions
            WHERE tenant_id = \(tenantID) AND script_id = \(scriptID) ORDER BY version
            """, as: VersionRow.self
        ).map(Self.version)
    }

    public func activateScript(tenantID: UUID, scriptID: UUID, version: Int) async throws -> Bool {
        try await changedRows(
            """
            UPDATE scripts SET active_version = \(version), failure_count = 0, quarantined_until = NULL, last_error = NULL,
                last_failure_input = NULL
            WHERE tenant_id = \(tenantID) AND id = \(scriptID) AND EXISTS (
                SELECT 1 FROM script_versions v WHERE v.tenant_id = \(tenantID) AND v.script_id = \(scriptID)
                    AND v.version = \(version))
            RETURNING 1
            """) > 0
    }

    public func deactivateScript(tenantID: UUID, scriptID: UUID) async throws -> Bool {
        try await changedRows(
            """
            UPDATE scripts SET active_version = NULL, quarantined_until = NULL
            WHERE tenant_id = \(tenantID) AND id = \(scriptID) RETURNING 1
            """) > 0
    }

    public func activeScripts(tenantID: UUID, hook: String) async throws -> [(Script, ScriptVersion)] {
        try await rows(
            """
            SELECT \(unescaped: Self.scriptColumns),
                v.script_id, v.version, v.source, v.sha256, v.config, v.author_id, v.created_at
            FROM scripts s JOIN script_versions v
                ON v.tenant_id = s.tenant_id AND v.script_id = s.id AND v.version = s.active_version
            WHERE s.tenant_id = \(tenantID) AND s.hook = \(hook) ORDER BY s.name
            """,
            as: (UUID, UUID, String, String, Int?, Int, Timestamp?, String?, String?, Timestamp, UUID, Int, String, String, String, UUID, Timestamp).self
        ).map { row in
            (
                Self.script((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9)),
                Self.version((row.10, row.11, row.12, row.13, row.14, row.15, row.16))
            )
        }
    }

    public func recordScriptOutcome(
        tenantID: UUID, scriptID: UUID, failureCount: Int, error: String?, input: String?, quarantinedUntil: Timestamp?
    ) async throws {
        try await execute(
            """
            UPDATE scripts SET failure_count = \(failureCount), last_error = COALESCE(\(error), last_error),
                last_failure_input = COALESCE(\(input), last_failure_input), quarantined_until = \(quarantinedUntil)
            WHERE tenant_id = \(tenantID) AND id = \(scriptID)
            """)
    }
}
