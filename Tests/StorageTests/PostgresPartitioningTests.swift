import Foundation
import Logging
import PlatformCore
import Storage
import StorageTesting
import Testing

@Suite("PostgreSQL partitioning", .enabled(if: TestDatabase.postgresAdminURL != nil))
struct PostgresPartitioningTests {
    @Test func monthlyPartitionsAreCreatedAheadAndOldSamplesLandInDefault() async throws {
        try await TestDatabase.withStore(.postgres) { store in
            let (user, tenant) = StoreConformanceTests.account("p@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            let now = Timestamp(Date())
            let old = TelemetrySample(
                deviceSerial: "TH-1", timestamp: Timestamp(seconds: 1_000_000_000), mode: .off, tempInside: 18,
                tempOutside: nil, setpoint: 20, hysteresis: 1, output: .off)
            var current = old
            current.timestamp = now
            let inserted = try await store.insert(
                [TelemetryRecord(tenantID: tenant.id, sample: old), TelemetryRecord(tenantID: tenant.id, sample: current)],
                receivedAt: now)
            #expect(inserted == [true, true])
            let partitions = try await (store as! PostgresStore).telemetryPartitions()
            #expect(partitions.contains("telemetry_default"))
            #expect(partitions.filter { $0.hasPrefix("telemetry_2") }.count >= 3, "this month and two ahead")
        }
    }

    @Test func partitionsAreDroppedOnlyWhenEveryRowInThemExpired() async throws {
        let url = try await TestDatabase.makeURL(.postgres)
        var logger = Logger(label: "partition-test")
        logger.logLevel = .warning
        let store = try StoreFactory.open(databaseURL: url, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await store.migrate()
            // A month the server kept a partition for long ago.
            try await TestDatabase.execute(
                """
                CREATE TABLE telemetry_2001_03 PARTITION OF telemetry
                FOR VALUES FROM ('2001-03-01 00:00:00+00') TO ('2001-04-01 00:00:00+00')
                """, databaseURL: url)
            let (first, keeper) = StoreConformanceTests.account("a@example.com")
            _ = try await store.createAccount(user: first, tenant: keeper)
            let (second, other) = StoreConformanceTests.account("b@example.com", tenantName: "Other")
            _ = try await store.createAccount(user: second, tenant: other)
            let march = Timestamp(seconds: 983_404_800)
            func record(_ tenant: Tenant, _ seconds: Double) -> TelemetryRecord {
                TelemetryRecord(
                    tenantID: tenant.id,
                    sample: TelemetrySample(
                        deviceSerial: "TH-1", timestamp: march.adding(seconds: seconds), mode: .heat, tempInside: 20,
                        tempOutside: nil, setpoint: 21, hysteresis: 0.5, output: .heatOn))
            }
            _ = try await store.insert(
                [record(keeper, 60), record(keeper, 86_400), record(other, 120), record(keeper, Double(Date().timeIntervalSince1970) - 983_404_800)],
                receivedAt: march)
            let april = Timestamp(seconds: 986_083_200)
            let postgres = try #require(store as? PostgresStore)

            #expect(try await store.dropExpiredPartitions(cutoffs: [keeper.id: april]) == 0, "a tenant that keeps everything")
            #expect(
                try await store.dropExpiredPartitions(cutoffs: [keeper.id: april, other.id: april.adding(seconds: -86_400)]) == 0,
                "a row not yet expired")
            #expect(try await postgres.telemetryPartitions().contains("telemetry_2001_03"))
            #expect(try await store.dropExpiredPartitions(cutoffs: [keeper.id: april, other.id: april]) == 3)
            let partitions = try await postgres.telemetryPartitions()
            #expect(!partitions.contains("telemetry_2001_03"))
            #expect(partitions.contains("telemetry_default") && partitions.filter { $0.hasPrefix("telemetry_2") }.count >= 3)
            let range = TelemetryRange(
                tenantID: keeper.id, serial: "TH-1", from: Timestamp(seconds: 0), to: Timestamp(seconds: 4_000_000_000), limit: 10)
            #expect(try await store.samples(range).count == 1, "this month's sample stays")
        }
        try await TestDatabase.dropPostgresDatabase(url)
    }
}
