import Foundation
import Logging
import PlatformCore
import PostgresNIO
import StorageTesting
import Testing

@testable import Storage

/// What a connection that dies under a statement does to the statement's caller. PostgresNIO
/// 1.33 drops a statement written to a connection whose pipeline NIO has already torn down (the
/// write carries no promise, so nothing ever completes the statement's own promise): an
/// `await` on it would never return. Found as a SIGTERM that hung after a database restart.
/// The store answers such work when the connection's close is seen, and in any case when its
/// time bound runs out.
@Suite("PostgreSQL connection faults", .enabled(if: TestDatabase.postgresAdminURL != nil), .timeLimit(.minutes(1)))
struct PostgresConnectionFaultTests {
    /// A fresh, migrated store with the given time bound, running for the duration of `body`.
    func withStore(bound: Duration, _ body: @Sendable (PostgresStore) async throws -> Void) async throws {
        let store = try PostgresStore(
            url: try await TestDatabase.makeURL(.postgres), logger: Logger(label: "fault-tests"), timeBound: bound)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await store.migrate()
            try await body(store)
        }
    }

    /// Ends the server side of `connection` the way a restart does (FATAL 57P01) and waits
    /// until NIO has closed the channel and run every task queued on its event loop, which
    /// includes taking down the pipeline.
    static func terminate(_ connection: PostgresConnection, through store: PostgresStore) async throws {
        var pid: Int32 = 0
        for try await value in try await connection.query("SELECT pg_backend_pid()", logger: store.logger).decode(Int32.self) {
            pid = value
        }
        try await store.execute("SELECT pg_terminate_backend(\(pid))")
        try await connection.closeFuture.get()
        try await connection.eventLoop.submit {}.get()
    }

    /// The bound is far away: the connection's close must be what answers.
    @Test func aStatementOnAConnectionThatDiedFailsInsteadOfHanging() async throws {
        try await withStore(bound: .seconds(45)) { store in
            let error = await #expect(throws: (any Error).self) {
                try await store.withConnection("test statement") { connection in
                    try await Self.terminate(connection, through: store)
                    try await connection.query("SELECT 1", logger: store.logger)
                }
            }
            // The driver reports the closed connection, or the store does when the driver drops
            // the statement; what matters is that the caller is answered.
            #expect(
                error is PSQLError || (error as? PlatformError)?.code == "database_connection_lost",
                "\(String(describing: error))")
            try await store.ping()
        }
    }

    @Test func aTransactionWhoseConnectionDiesFailsAndRollsBack() async throws {
        try await withStore(bound: .seconds(45)) { store in
            try await store.execute("CREATE TABLE fault_probe (n integer)")
            let error = await #expect(throws: (any Error).self) {
                try await store.transaction("test transaction") { connection in
                    try await connection.query("INSERT INTO fault_probe VALUES (1)", logger: store.logger)
                    try await Self.terminate(connection, through: store)
                    try await connection.query("INSERT INTO fault_probe VALUES (2)", logger: store.logger)
                }
            }
            #expect(
                error is PSQLError || (error as? PlatformError)?.code == "database_connection_lost",
                "\(String(describing: error))")
            let rows = try await store.rows("SELECT count(*)::int8 FROM fault_probe", as: Int64.self)
            #expect(rows == [0])
        }
    }

    @Test func workThatOutlivesItsBoundIsAnsweredWhenTheBoundIsOver() async throws {
        try await withStore(bound: .seconds(5)) { store in
            let error = await #expect(throws: PlatformError.self) {
                try await store.withConnection("sleep") { connection in
                    try await connection.query("SELECT pg_sleep(30)", logger: store.logger)
                }
            }
            #expect(error?.code == "database_timeout")
            try await store.ping()
        }
    }
}
