import Foundation
import PlatformCore
import PostgresNIO
import StorageTesting
import Testing

@testable import Storage

/// Samples queued one row each (schema version 11) move into batches when version 12 applies,
/// exactly as they were committed.
@Suite struct AlertQueueMigrationTests {
    @Test(arguments: Backend.available)
    func samplesQueuedOneByOneBecomeABatchPerTenant(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = StoreConformanceTests.account("m@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            let (otherUser, other) = StoreConformanceTests.account("n@example.com")
            _ = try await store.createAccount(user: otherUser, tenant: other)
            for (owner, serial) in [(tenant.id, "TH-A"), (tenant.id, "TH-B"), (other.id, "TH-A")] {
                try await store.createDevice(
                    Device(tenantID: owner, serial: serial, name: serial, location: nil, createdAt: RollupConformanceTests.hour),
                    keyHash: "\(owner)\(serial)")
            }
            var samples = Array(RollupConformanceTests.samples(serial: "TH-A").prefix(8))
            samples[0].tempInside = 0.1 + 0.2
            samples[1].setpoint = 21.123456789012345
            let deviceBSamples = Array(RollupConformanceTests.samples(serial: "TH-B").prefix(3))
            let records =
                (samples + deviceBSamples).map { TelemetryRecord(tenantID: tenant.id, sample: $0) }
                + samples.prefix(2).map { TelemetryRecord(tenantID: other.id, sample: $0) }
            _ = try await store.insert(records, receivedAt: RollupConformanceTests.hour)

            // Back to version 11: every stored sample queued, one row each.
            try await Self.execute(
                [
                    "DROP TABLE alert_batches",
                    backend == .sqlite
                        ? "CREATE TABLE alert_queue (tenant_id TEXT NOT NULL, device_serial TEXT NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (tenant_id, ts, device_serial)) WITHOUT ROWID"
                        : "CREATE TABLE alert_queue (tenant_id uuid NOT NULL, device_serial text NOT NULL, ts timestamptz NOT NULL, PRIMARY KEY (tenant_id, ts, device_serial))",
                    "INSERT INTO alert_queue (tenant_id, device_serial, ts) SELECT tenant_id, device_serial, ts FROM telemetry",
                    "DELETE FROM schema_migrations WHERE version = 12",
                ], on: store)
            #expect(try await store.migrate() == [12])

            let batches = try await store.queuedBatches(tenantID: tenant.id, after: nil, sampleLimit: 1000)
            #expect(batches.count == 1)
            let moved = batches.first?.samples ?? []
            #expect(moved.filter { $0.deviceSerial == "TH-A" } == samples)
            #expect(moved.filter { $0.deviceSerial == "TH-B" } == deviceBSamples)
            #expect(try await store.alertQueueLength(tenantID: tenant.id) == 11)
            #expect(try await store.alertQueueLength(tenantID: other.id) == 2)
        }
    }

    static func execute(_ statements: [String], on store: any PlatformStore) async throws {
        for statement in statements {
            if let sqlite = store as? SQLiteStore {
                try await sqlite.execute(sql: statement)
            } else if let postgres = store as? PostgresStore {
                try await postgres.execute(PostgresQuery(unsafeSQL: statement))
            } else {
                Issue.record("an unknown store")
            }
        }
    }
}
