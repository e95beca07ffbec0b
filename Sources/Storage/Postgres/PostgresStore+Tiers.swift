import Foundation
import PlatformCore
import PostgresNIO

extension PostgresStore: TierStore {
    public func allTenants() async throws -> [Tenant] {
        try await rows(
            "SELECT id, slug, name, tier, created_at FROM tenants ORDER BY created_at",
            as: (UUID, String, String, String, Timestamp).self
        ).map { Tenant(id: $0.0, slug: $0.1, name: $0.2, tier: $0.3, createdAt: $0.4) }
    }

    public func disabledTenants() async throws -> Set<UUID> {
        Set(try await rows("SELECT tenant_id FROM disabled_tenants", as: UUID.self))
    }

    public func setTenantDisabled(tenantID: UUID, _ disabled: Bool, at time: Timestamp) async throws {
        if disabled {
            try await execute(
                "INSERT INTO disabled_tenants (tenant_id, disabled_at) VALUES (\(tenantID), \(time)) ON CONFLICT DO NOTHING")
        } else {
            try await execute("DELETE FROM disabled_tenants WHERE tenant_id = \(tenantID)")
        }
    }

    public func sampleCounts() async throws -> [UUID: Int] {
        var counts: [UUID: Int] = [:]
        for (tenant, samples) in try await rows(
            "SELECT tenant_id, count(*)::int8 FROM telemetry GROUP BY tenant_id", as: (UUID, Int64).self)
        {
            counts[tenant] = Int(samples)
        }
        return counts
    }

    public func deviceCount(tenantID: UUID) async throws -> Int {
        let counts: [Int64] = try await rows("SELECT count(*)::int8 FROM devices WHERE tenant_id = \(tenantID)", as: Int64.self)
        return Int(counts.first ?? 0)
    }

    public func deleteSamples(tenantID: UUID, serial: String, before cutoff: Timestamp, limit: Int) async throws -> Int {
        try await changedRows(
            """
            DELETE FROM telemetry WHERE (tenant_id, device_serial, ts) IN (
                SELECT tenant_id, device_serial, ts FROM telemetry
                WHERE tenant_id = \(tenantID) AND device_serial = \(serial) AND ts < \(cutoff) ORDER BY ts LIMIT \(limit))
            RETURNING 1
            """)
    }

    public func deleteOldestSamples(tenantID: UUID, count: Int) async throws -> Int {
        try await changedRows(
            """
            DELETE FROM telemetry WHERE (tenant_id, device_serial, ts) IN (
                SELECT tenant_id, device_serial, ts FROM telemetry WHERE tenant_id = \(tenantID) ORDER BY ts LIMIT \(count))
            RETURNING 1
            """)
    }

    public func contractPolicy(tenantID: UUID) async throws -> String? {
        let sources: [String] = try await rows(
            "SELECT source FROM contract_policies WHERE tenant_id = \(tenantID)", as: String.self)
        return sources.first
    }

    public func setContractPolicy(tenantID: UUID, source: String?, at time: Timestamp) async throws {
        if let source {
            try await execute(
                """
                INSERT INTO contract_policies (tenant_id, source, assigned_at) VALUES (\(tenantID), \(source), \(time))
                ON CONFLICT (tenant_id) DO UPDATE SET source = excluded.source, assigned_at = excluded.assigned_at
                """)
        } else {
            try await execute("DELETE FROM contract_policies WHERE tenant_id = \(tenantID)")
        }
    }
}
