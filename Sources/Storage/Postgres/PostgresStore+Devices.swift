import Foundation
import PlatformCore
import PostgresNIO

extension PostgresStore: DeviceStore {
    public func createDevice(_ device: Device, keyHash: String) async throws {
        do {
            try await execute(
                """
                INSERT INTO devices (tenant_id, serial, name, location, created_at, key_hash)
                VALUES (\(device.tenantID), \(device.serial), \(device.name), \(device.location), \(device.createdAt),
                    \(keyHash))
                """)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw PlatformError.conflict("A device with this serial is already registered", field: "serial")
        }
    }

    private typealias DeviceRow = (UUID, String, String, String?, Timestamp, Timestamp?, Timestamp?)

    private static func device(_ row: DeviceRow) -> Device {
        Device(
            tenantID: row.0, serial: row.1, name: row.2, location: row.3, createdAt: row.4, lastSeen: row.5,
            revokedAt: row.6)
    }

    public func devices(tenantID: UUID) async throws -> [Device] {
        try await rows(
            """
            SELECT tenant_id, serial, name, location, created_at, last_seen, revoked_at FROM devices
            WHERE tenant_id = \(tenantID) ORDER BY serial
            """, as: DeviceRow.self
        ).map(Self.device)
    }

    public func device(tenantID: UUID, serial: String) async throws -> Device? {
        try await rows(
            """
            SELECT tenant_id, serial, name, location, created_at, last_seen, revoked_at FROM devices
            WHERE tenant_id = \(tenantID) AND serial = \(serial)
            """, as: DeviceRow.self
        ).first.map(Self.device)
    }

    private typealias CredentialRow = (UUID, String, String, String?, Timestamp?, Bool)

    private static func credential(_ row: CredentialRow) -> DeviceCredential {
        DeviceCredential(
            tenantID: row.0, serial: row.1, keyHash: row.2, previousKeyHash: row.3, previousKeyExpiresAt: row.4,
            revoked: row.5)
    }

    public func credential(keyHash: String) async throws -> DeviceCredential? {
        try await rows(
            """
            SELECT tenant_id, serial, key_hash, previous_key_hash, previous_key_expires_at, revoked_at IS NOT NULL
            FROM devices WHERE key_hash = \(keyHash) OR previous_key_hash = \(keyHash) LIMIT 1
            """, as: CredentialRow.self
        ).first.map(Self.credential)
    }

    public func credential(tenantID: UUID, serial: String) async throws -> DeviceCredential? {
        try await rows(
            """
            SELECT tenant_id, serial, key_hash, previous_key_hash, previous_key_expires_at, revoked_at IS NOT NULL
            FROM devices WHERE tenant_id = \(tenantID) AND serial = \(serial)
            """, as: CredentialRow.self
        ).first.map(Self.credential)
    }

    public func rotateKey(tenantID: UUID, serial: String, newKeyHash: String, previousValidUntil: Timestamp)
        async throws -> Bool
    {
        try await changedRows(
            """
            UPDATE devices SET
                previous_key_hash = CASE WHEN revoked_at IS NULL THEN key_hash END,
                previous_key_expires_at = CASE WHEN revoked_at IS NULL THEN \(previousValidUntil) END,
                key_hash = \(newKeyHash), revoked_at = NULL
            WHERE tenant_id = \(tenantID) AND serial = \(serial) RETURNING 1
            """) > 0
    }

    public func revokeDevice(tenantID: UUID, serial: String, at time: Timestamp) async throws -> Bool {
        try await changedRows(
            """
            UPDATE devices SET revoked_at = \(time), previous_key_hash = NULL, previous_key_expires_at = NULL
            WHERE tenant_id = \(tenantID) AND serial = \(serial) RETURNING 1
            """) > 0
    }

    public func updateDevice(tenantID: UUID, serial: String, name: String?, location: String??) async throws -> Bool {
        let setsLocation = location != nil
        return try await changedRows(
            """
            UPDATE devices SET name = COALESCE(\(name), name),
                location = CASE WHEN \(setsLocation) THEN \(location ?? nil) ELSE location END
            WHERE tenant_id = \(tenantID) AND serial = \(serial) RETURNING 1
            """) > 0
    }

    public func deleteDevice(tenantID: UUID, serial: String) async throws -> Bool {
        let logger = logger
        return try await transaction("delete device") { connection in
            for table in ["telemetry", "telemetry_rollups", "alert_rule_states", "alerts"] {
                try await connection.query(
                    "DELETE FROM \(unescaped: table) WHERE tenant_id = \(tenantID) AND device_serial = \(serial)", logger: logger)
            }
            // Its queued samples too, out of the batches they share with other devices.
            var changed: [(Int64, String, Int)] = []
            for try await (sequence, text) in try await connection.query(
                "SELECT seq, samples FROM alert_batches WHERE tenant_id = \(tenantID) FOR UPDATE", logger: logger
            ).decode((Int64, String).self) {
                if let (kept, count) = AlertQueueText.removing(serial: serial, from: text) { changed.append((sequence, kept, count)) }
            }
            for (sequence, text, count) in changed {
                if count == 0 {
                    try await connection.query("DELETE FROM alert_batches WHERE seq = \(sequence)", logger: logger)
                } else {
                    try await connection.query(
                        "UPDATE alert_batches SET samples = \(text), sample_count = \(count) WHERE seq = \(sequence)", logger: logger)
                }
            }
            var deleted = false
            for try await _ in try await connection.query(
                "DELETE FROM devices WHERE tenant_id = \(tenantID) AND serial = \(serial) RETURNING 1", logger: logger)
            {
                deleted = true
            }
            return deleted
        }
    }
}
