import Foundation
import GRDB
import PlatformCore

extension SQLiteStore: DeviceStore {
    public func createDevice(_ device: Device, keyHash: String) async throws {
        try await pool.write { db in
            if try Bool.fetchOne(
                db, sql: "SELECT 1 FROM devices WHERE tenant_id = ? AND serial = ?",
                arguments: [device.tenantID.databaseText, device.serial]) != nil
            {
                throw PlatformError.conflict("A device with this serial is already registered", field: "serial")
            }
            try db.execute(
                sql: """
                    INSERT INTO devices (tenant_id, serial, name, location, created_at, key_hash)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    device.tenantID.databaseText, device.serial, device.name, device.location,
                    device.createdAt.microseconds, keyHash,
                ])
        }
    }

    private static func device(from row: Row) -> Device {
        Device(
            tenantID: row.uuid("tenant_id"), serial: row["serial"], name: row["name"], location: row["location"],
            createdAt: row.timestamp("created_at"), lastSeen: row.optionalTimestamp("last_seen"),
            revokedAt: row.optionalTimestamp("revoked_at"))
    }

    public func devices(tenantID: UUID) async throws -> [Device] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM devices WHERE tenant_id = ? ORDER BY serial", arguments: [tenantID.databaseText]
            ).map(Self.device(from:))
        }
    }

    public func device(tenantID: UUID, serial: String) async throws -> Device? {
        try await pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM devices WHERE tenant_id = ? AND serial = ?",
                arguments: [tenantID.databaseText, serial]
            ).map(Self.device(from:))
        }
    }

    public func credential(keyHash: String) async throws -> DeviceCredential? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT tenant_id, serial, key_hash, previous_key_hash, previous_key_expires_at, revoked_at
                    FROM devices WHERE key_hash = ?1 OR previous_key_hash = ?1 LIMIT 1
                    """,
                arguments: [keyHash]
            ).map(Self.credential(from:))
        }
    }

    public func credential(tenantID: UUID, serial: String) async throws -> DeviceCredential? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT tenant_id, serial, key_hash, previous_key_hash, previous_key_expires_at, revoked_at
                    FROM devices WHERE tenant_id = ? AND serial = ?
                    """,
                arguments: [tenantID.databaseText, serial]
            ).map(Self.credential(from:))
        }
    }

    private static func credential(from row: Row) -> DeviceCredential {
        DeviceCredential(
            tenantID: row.uuid("tenant_id"), serial: row["serial"], keyHash: row["key_hash"],
            previousKeyHash: row["previous_key_hash"],
            previousKeyExpiresAt: row.optionalTimestamp("previous_key_expires_at"),
            revoked: (row["revoked_at"] as Int64?) != nil)
    }

    public func rotateKey(tenantID: UUID, serial: String, newKeyHash: String, previousValidUntil: Timestamp)
        async throws -> Bool
    {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE devices SET
                        previous_key_hash = CASE WHEN revoked_at IS NULL THEN key_hash END,
                        previous_key_expires_at = CASE WHEN revoked_at IS NULL THEN ? END,
                        key_hash = ?, revoked_at = NULL
                    WHERE tenant_id = ? AND serial = ?
                    """,
                arguments: [previousValidUntil.microseconds, newKeyHash, tenantID.databaseText, serial])
            return db.changesCount > 0
        }
    }

    public func revokeDevice(tenantID: UUID, serial: String, at time: Timestamp) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE devices SET revoked_at = ?, previous_key_hash = NULL, previous_key_expires_at = NULL
                    WHERE tenant_id = ? AND serial = ?
                    """,
                arguments: [time.microseconds, tenantID.databaseText, serial])
            return db.changesCount > 0
        }
    }

    public func updateDevice(tenantID: UUID, serial: String, name: String?, location: String??) async throws -> Bool {
        try await pool.write { db in
            guard try Bool.fetchOne(
                db, sql: "SELECT 1 FROM devices WHERE tenant_id = ? AND serial = ?",
                arguments: [tenantID.databaseText, serial]) != nil
            else { return false }
            if let name {
                try db.execute(
                    sql: "UPDATE devices SET name = ? WHERE tenant_id = ? AND serial = ?",
                    arguments: [name, tenantID.databaseText, serial])
            }
            if let location {
                try db.execute(
                    sql: "UPDATE devices SET location = ? WHERE tenant_id = ? AND serial = ?",
                    arguments: [location, tenantID.databaseText, serial])
            }
            return true
        }
    }

    public func deleteDevice(tenantID: UUID, serial: String) async throws -> Bool {
        try await pool.write { db in
            for table in ["telemetry", "telemetry_rollups", "alert_rule_states", "alerts"] {
                try db.execute(
                    sql: "DELETE FROM \(table) WHERE tenant_id = ? AND device_serial = ?", arguments: [tenantID.databaseText, serial])
            }
            // Its queued samples too, out of the batches they share with other devices.
            let batches = try Row.fetchAll(
                db, sql: "SELECT seq, samples FROM alert_batches WHERE tenant_id = ?", arguments: [tenantID.databaseText])
            for batch in batches {
                let sequence: Int64 = batch[0]
                guard let (text, count) = AlertQueueText.removing(serial: serial, from: batch[1]) else { continue }
                if count == 0 {
                    try db.execute(sql: "DELETE FROM alert_batches WHERE seq = ?", arguments: [sequence])
                } else {
                    try db.execute(
                        sql: "UPDATE alert_batches SET samples = ?, sample_count = ? WHERE seq = ?", arguments: [text, count, sequence])
                }
            }
            try db.execute(
                sql: "DELETE FROM devices WHERE tenant_id = ? AND serial = ?", arguments: [tenantID.databaseText, serial])
            return db.changesCount > 0
        }
    }
}
