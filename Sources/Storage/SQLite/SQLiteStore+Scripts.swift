import Foundation
import GRDB
import PlatformCore

extension SQLiteStore: ScriptStore {
    public func addScriptVersion(
        tenantID: UUID, name: String, hook: String, source: String, sha256: String, configJSON: String, authorID: UUID,
        at time: Timestamp
    ) async throws -> (Script, ScriptVersion) {
        try await pool.write { db in
            let tenant = tenantID.databaseText
            var script: Script
            if let row = try Row.fetchOne(
                db, sql: "SELECT * FROM scripts WHERE tenant_id = ? AND name = ?", arguments: [tenant, name])
            {
                script = Self.script(from: row)
                guard script.hook == hook else {
                    throw PlatformError.conflict("This name is taken by a script for the \(script.hook) hook", field: "hook")
                }
            } else {
                script = Script(id: UUID(), tenantID: tenantID, name: name, hook: hook, createdAt: time)
                try db.execute(
                    sql: "INSERT INTO scripts (tenant_id, id, name, hook, created_at) VALUES (?, ?, ?, ?, ?)",
                    arguments: [tenant, script.id.databaseText, name, hook, time.microseconds])
            }
            let latest = try Int.fetchOne(
                db, sql: "SELECT max(version) FROM script_versions WHERE tenant_id = ? AND script_id = ?",
                arguments: [tenant, script.id.databaseText]) ?? 0
            let version = ScriptVersion(
                scriptID: script.id, version: latest + 1, source: source, sha256: sha256, configJSON: configJSON,
                authorID: authorID, createdAt: time)
            try db.execute(
                sql: """
                    INSERT INTO script_versions (tenant_id, script_id, version, source, sha256, config, author_id, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    tenant, script.id.databaseText, version.version, source, sha256, configJSON, authorID.databaseText,
                    time.microseconds,
                ])
            return (script, version)
        }
    }

    static func script(from row: Row) -> Script {
        Script(
            id: row.uuid("id"), tenantID: row.uuid("tenant_id"), name: row["name"], hook: row["hook"],
            activeVersion: row["active_version"], failureCount: row["failure_count"],
            quarantinedUntil: row.optionalTimestamp("quarantined_until"), lastError: row["last_error"],
            lastFailureInput: row["last_failure_input"], createdAt: row.timestamp("created_at"))
    }

    static func version(from row: Row) -> ScriptVersion {
        ScriptVersion(
            scriptID: row.uuid("script_id"), version: row["version"], source: row["source"], sha256: row["sha256"],
            configJSON: row["config"], authorID: row.uuid("author_id"), createdAt: row.timestamp("created_at"))
    }

    public func scripts(tenantID: UUID) async throws -> [Script] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM scripts WHERE tenant_id = ? ORDER BY name", arguments: [tenantID.databaseText])
                .map(Self.script(from:))
        }
    }

    public func script(tenantID: UUID, id: UUID) async throws -> Script? {
        try await pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM scripts WHERE tenant_id = ? AND id = ?", arguments: [tenantID.databaseText, id.databaseText]
            ).map(Self.script(from:))
        }
    }

    public func scriptVersions(tenantID: UUID, scriptID: UUID) async throws -> [ScriptVersion] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM script_versions WHERE tenant_id = ? AND script_id = ? ORDER BY version",
                arguments: [tenantID.databaseText, scriptID.databaseText]
            ).map(Self.version(from:))
        }
    }

    public func activateScript(tenantID: UUID, scriptID: UUID, version: Int) async throws -> Bool {
        try await pool.write { db in
            guard try Bool.fetchOne(
                db, sql: "SELECT 1 FROM script_versions WHERE tenant_id = ? AND script_id = ? AND version = ?",
                arguments: [tenantID.databaseText, scriptID.databaseText, version]) != nil
            else { return false }
            try db.execute(
                sql: """
                    UPDATE scripts SET active_version = ?, failure_count = 0, quarantined_until = NULL, last_error = NULL,
                        last_failure_input = NULL
                    WHERE tenant_id = ? AND id = ?
                    """,
                arguments: [version, tenantID.databaseText, scriptID.databaseText])
            return true
        }
    }

    public func deactivateScript(tenantID: UUID, scriptID: UUID) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE scripts SET active_version = NULL, quarantined_until = NULL WHERE tenant_id = ? AND id = ?",
                arguments: [tenantID.databaseText, scriptID.databaseText])
            return db.changesCount > 0
        }
    }

    public func activeScripts(tenantID: UUID, hook: String) async throws -> [(Script, ScriptVersion)] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT s.*, v.version, v.source, v.sha256, v.config, v.author_id, v.created_at AS version_created_at,
                        v.script_id
                    FROM scripts s JOIN script_versions v
                        ON v.tenant_id = s.tenant_id AND v.script_id = s.id AND v.version = s.active_version
                    WHERE s.tenant_id = ? AND s.hook = ? ORDER BY s.name
                    """,
                arguments: [tenantID.databaseText, hook]
            ).map { row in
                let version = ScriptVersion(
                    scriptID: row.uuid("script_id"), version: row["version"], source: row["source"], sha256: row["sha256"],
                    configJSON: row["config"], authorID: row.uuid("author_id"), createdAt: row.timestamp("version_created_at"))
                return (Self.script(from: row), version)
            }
        }
    }

    public func recordScriptOutcome(
        tenantID: UUID, scriptID: UUID, failureCount: Int, error: String?, input: String?, quarantinedUntil: Timestamp?
    ) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE scripts SET failure_count = ?, last_error = COALESCE(?, last_error),
                        last_failure_input = COALESCE(?, last_failure_input), quarantined_until = ?
                    WHERE tenant_id = ? AND id = ?
                    """,
                arguments: [
                    failureCount, error, input, quarantinedUntil?.microseconds, tenantID.databaseText, scriptID.databaseText,
                ])
        }
    }
}
