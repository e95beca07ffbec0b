import Foundation
import HTTPTypes
import HummingbirdTesting
import PlatformCore
import Server
import StorageTesting
import Testing

@testable import Storage

/// The probes: `/health/live` never touches the database; `/health/ready` follows the database
/// and the outcome of recent telemetry commits; `/health/` stays the seed's.
@Suite("Health probes")
struct HealthTests {
    @Test(arguments: Backend.available)
    func liveAndReadyAnswer200WhenAllIsWell(_ backend: Backend) async throws {
        try await TestPlatform.run(backend) { client, _ in
            let live = try await client.json("/health/live")
            #expect(live.status == .ok)
            #expect(try live.object()["status"] as? String == "ok")
            let ready = try await client.json("/health/ready")
            #expect(ready.status == .ok)
            #expect(try ready.object()["status"] as? String == "ready")
            #expect(try await client.json("/health/").status == .ok)
        }
    }

    /// Every commit fails while the database refuses telemetry rows (as on a full disk): more
    /// failing commits at once than the writer has slots, then one that succeeds, which shows
    /// the failed ones gave their slots back.
    @Test(arguments: Backend.available)
    func readinessIs503WhileCommitsFailAnd200AfterOneSucceeds(_ backend: Backend) async throws {
        let clock = ManualClock()
        try await TestPlatform.run(backend, clock: clock) { client, store in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            try await Self.refuseTelemetryWrites(store, true)

            let start = clock.now().adding(seconds: -600)
            let statuses = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String?).self) { group in
                for index in 0..<8 {
                    group.addTask {
                        let reply = try await client.ingest(
                            device, SampleJSON.make(serial: device.serial, at: start.adding(seconds: Double(index))))
                        return (reply.status, reply.errorCode)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0.0 == .serviceUnavailable && $0.1 == "storage_unavailable" }, "\(statuses)")

            let unready = try await client.json("/health/ready")
            #expect(unready.status == .serviceUnavailable)
            #expect(unready.headers[.retryAfter] == "1")
            #expect(try unready.object()["reason"] as? String == "commits_failing")
            #expect(try await client.json("/health/live").status == .ok)
            #expect(try await client.json("/health/").status == .ok, "the seed's check only asks the database to answer")

            try await Self.refuseTelemetryWrites(store, false)
            let stored = try await client.ingest(device, SampleJSON.make(serial: device.serial, at: start))
            #expect(stored.status == .ok)
            #expect(try stored.object()["accepted"] as? Int == 1)
            #expect(try await client.json("/health/ready").status == .ok)
        }
    }

    @Test(.enabled(if: TestDatabase.postgresAdminURL != nil))
    func readinessIs503AndLivenessStays200WhenTheDatabaseIsGone() async throws {
        let url = try await TestDatabase.makeURL(.postgres)
        let store = try StoreFactory.open(databaseURL: url, logger: TestPlatformLog.logger)
        let app = try await buildApplication(configuration: TestPlatform.configuration(), store: store)
        try await app.test(.router) { client in
            #expect(try await client.json("/health/ready").status == .ok)
            try await TestDatabase.dropPostgresDatabase(url)
            let down = try await client.json("/health/ready")
            #expect(down.status == .serviceUnavailable)
            #expect(try down.object()["reason"] as? String == "database_unreachable")
            #expect(try await client.json("/health/live").status == .ok)
        }
    }

    /// Makes the database itself refuse (or accept again) every new telemetry row.
    static func refuseTelemetryWrites(_ store: any PlatformStore, _ refuse: Bool) async throws {
        switch store {
        case let sqlite as SQLiteStore:
            try await sqlite.execute(
                sql: refuse
                    ? "CREATE TRIGGER refuse_telemetry BEFORE INSERT ON telemetry BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                    : "DROP TRIGGER refuse_telemetry")
        case let postgres as PostgresStore:
            if refuse {
                try await postgres.execute(
                    """
                    CREATE FUNCTION refuse_telemetry() RETURNS trigger LANGUAGE plpgsql
                    AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$
                    """)
                try await postgres.execute(
                    "CREATE TRIGGER refuse_telemetry BEFORE INSERT ON telemetry FOR EACH STATEMENT EXECUTE FUNCTION refuse_telemetry()")
            } else {
                try await postgres.execute("DROP TRIGGER refuse_telemetry ON telemetry")
                try await postgres.execute("DROP FUNCTION refuse_telemetry()")
            }
        default:
            Issue.record("unknown store \(type(of: store))")
        }
    }
}
