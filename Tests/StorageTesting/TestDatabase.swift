import Foundation
import Logging
import PostgresNIO
import Storage

/// A backend the shared test suites run against.
public enum Backend: String, Sendable, CaseIterable, CustomStringConvertible {
    case sqlite
    case postgres

    public var description: String { rawValue }

    /// SQLite always; PostgreSQL when `make test` started a cluster (TEST_DATABASE_URL).
    public static var available: [Backend] {
        TestDatabase.postgresAdminURL == nil ? [.sqlite] : [.sqlite, .postgres]
    }
}

/// Creates an empty database for one test: a new SQLite file in a temporary folder, or a new
/// database in the throwaway PostgreSQL cluster.
public enum TestDatabase {
    public static var postgresAdminURL: String? {
        ProcessInfo.processInfo.environment["TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A `DATABASE_URL` for a fresh, empty database.
    public static func makeURL(_ backend: Backend) async throws -> String {
        switch backend {
        case .sqlite:
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("thermostat-test-\(UUID().uuidString)")
            return "sqlite:\(folder.path)/test.sqlite"
        case .postgres:
            guard let admin = postgresAdminURL, var components = URLComponents(string: admin) else {
                throw TestDatabaseError.postgresUnavailable
            }
            let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            try await createDatabase(named: name, adminURL: admin)
            components.path = "/" + name
            return components.string!
        }
    }

    /// A fresh, migrated store whose service runs for the duration of `body`.
    public static func withStore<Result: Sendable>(
        _ backend: Backend, _ body: @Sendable (any PlatformStore) async throws -> Result
    ) async throws -> Result {
        let store = try StoreFactory.open(databaseURL: try await makeURL(backend), logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await store.migrate()
            return try await body(store)
        }
    }

    /// Drops a database made by `makeURL(.postgres)`, disconnecting its clients.
    public static func dropPostgresDatabase(_ url: String) async throws {
        guard let admin = postgresAdminURL, let name = URLComponents(string: url)?.path.dropFirst() else {
            throw TestDatabaseError.postgresUnavailable
        }
        try await adminQuery("DROP DATABASE \(name) WITH (FORCE)", adminURL: admin)
    }

    static let logger: Logger = {
        var logger = Logger(label: "test-database")
        logger.logLevel = .warning
        return logger
    }()

    private static func createDatabase(named name: String, adminURL: String) async throws {
        try await adminQuery("CREATE DATABASE \(name)", adminURL: adminURL)
    }

    /// Runs one statement in a PostgreSQL database made by `makeURL(.postgres)`, for a test
    /// that must set up what the store's API cannot (a partition of a month long gone).
    public static func execute(_ sql: String, databaseURL: String) async throws {
        try await adminQuery(sql, adminURL: databaseURL)
    }

    /// One statement on a connection of its own (no pool to start and stop).
    private static func adminQuery(_ sql: String, adminURL: String) async throws {
        guard let components = URLComponents(string: adminURL) else { throw TestDatabaseError.postgresUnavailable }
        let configuration = PostgresConnection.Configuration(
            host: components.host ?? "127.0.0.1", port: components.port ?? 5432, username: components.user ?? "postgres",
            password: components.password, database: String(components.path.dropFirst()), tls: .disable)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}

/// Why a test database could not be made.
public enum TestDatabaseError: Error {
    case postgresUnavailable
}
