import Foundation
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
}
