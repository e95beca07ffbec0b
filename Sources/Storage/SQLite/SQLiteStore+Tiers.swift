import Foundation
import GRDB
import PlatformCore

extension SQLiteStore: TierStore {
    public func allTenants() async throws -> [Tenant] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, slug, name, tier, created_at FROM tenants ORDER BY created_at").map { row in
                Tenant(
                    id: row.uuid("id"), slug: row["slug"], name: row["name"], tier: row["tier"],
                    createdAt: row.timestamp("created_at"))
            }
        }
    }

    public func disabledTenants() async throws -> Set<UUID> {
        try await pool.read { db in
            Set(try Row.fetchAll(db, sql: "SELECT tenant_id FROM disabled_tenants").map { $0.uuid("tenant_id") })
        }
    }

    public func setTenantDisabled(tenantID: UUID, _ disabled: Bool, at time: Timestamp) async throws {
        try await pool.write { db in
            if disabled {
                try db.execute(
                    sql: "INSERT INTO disabled_tenants (tenant_id, disabled_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    arguments: [tenantID.databaseText, time.microseconds])
            } else {
                try db.execute(sql: "DELETE FROM disabled_tenants WHERE tenant_id = ?", arguments: [tenantID.databaseText])
            }
        }
    }

    public func sampleCounts() async throws -> [UUID: Int] {
        try await pool.read { db in
            var counts: [UUID: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT tenant_id, count(*) AS samples FROM telemetry GROUP BY tenant_id") {
                counts[row.uuid("tenant_id")] = row["samples"]
            }
            return counts
        }
    }

    public func deviceCount(tenantID: UUID) async throws -> Int {
        try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM devices WHERE tenant_id = ?", arguments: [tenantID.databaseText])
                ?? 0
        }
    }

    public func deleteSamples(tenantID: UUID, serial: String, before cutoff: Timestamp, limit: Int) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql: """
                    DELETE FROM telemetry WHERE (tenant_id, device_serial, ts) IN (
                        SELECT tenant_id, device_serial, ts FROM telemetry
                        WHERE tenant_id = ? AND device_serial = ? AND ts < ? ORDER BY ts LIMIT ?)
                    """,
                arguments: [tenantID.databaseText, serial, cutoff.microseconds, limit])
            return db.changesCount
        }
    }

    public func deleteOldestSamples(tenantID: UUID, count: Int) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql: """
                    DELETE FROM telemetry WHERE (tenant_id, device_serial, ts) IN (
                        SELECT tenant_id, device_serial, ts FROM telemetry WHERE tenant_id = ? ORDER BY ts LIMIT ?)
                    """,
                arguments: [tenantID.databaseText, count])
            return db.changesCount
        }
    }

    public func contractPolicy(tenantID: UUID) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(
                db, sql: "SELECT source FROM contract_policies WHERE tenant_id = ?", arguments: [tenantID.databaseText])
        }
    }

    public func setContractPolicy(tenantID: UUID, source: String?, at time: Timestamp) async throws {
        try await pool.write { db in
            if let source {
                try db.execute(
                    sql: """
                        INSERT INTO contract_policies (tenant_id, source, assigned_at) VALUES (?, ?, ?)
                        ON CONFLICT (tenant_id) DO UPDATE SET source = excluded.source, assigned_at = excluded.assigned_at
                        """,
                    arguments: [tenantID.databaseText, source, time.microseconds])
            } else {
                try db.execute(sql: "DELETE FROM contract_policies WHERE tenant_id = ?", arguments: [tenantID.databaseText])
            }
        }
    }
}
