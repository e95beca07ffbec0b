import Foundation
import Logging
import PlatformCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The production backend: PostgreSQL 15+ through a pooled PostgresNIO client.
///
/// `run()` drives the connection pool and, while it runs, keeps monthly telemetry partitions
/// created ahead of time; it must be running (as a service) before any query.
public final class PostgresStore: PlatformStore, Sendable {
    let client: PostgresClient
    let logger: Logger
    public let backendName = "postgresql"
    /// Opens when `run()` starts the pool: `migrate()`, the first query of every start, waits
    /// for it rather than leasing a connection from a pool that is not running yet.
    private let poolStarted = StartSignal()

    /// Months of telemetry partitions kept created ahead of the current one.
    static let partitionsAhead = 2

    public init(url: String, logger: Logger, maximumConnections: Int = 20) throws {
        var configuration = try PostgresURL.configuration(from: url)
        configuration.options.maximumConnections = maximumConnections
        self.logger = logger
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                self.poolStarted.open()
                await self.client.run()
            }
            group.addTask { await self.maintainPartitions() }
        }
    }

    /// `migrate()` creates the partitions a start needs; this keeps them ahead while running.
    private func maintainPartitions() async {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(3600))
                do {
                    try await self.ensurePartitions()
                } catch {
                    self.logger.warning(
                        "telemetry partition maintenance failed", metadata: ["error": "\(String(reflecting: error))"])
                }
            }
        }
    }

    private func ensurePartitions() async throws {
        try await client.query("SELECT ensure_telemetry_partitions(\(Int32(Self.partitionsAhead)))", logger: logger)
    }

    /// Runs `body` in a transaction, rethrowing the body's own error rather than the wrapper.
    func transaction<Result>(_ body: (PostgresConnection) async throws -> sending Result) async throws -> sending Result {
        do {
            return try await client.withTransaction(logger: logger, body)
        } catch let error as PostgresTransactionError {
            if let closureError = error.closureError { throw closureError }
            throw error
        }
    }

    @discardableResult
    public func migrate() async throws -> [Int] {
        await poolStarted.wait()
        let applied = try await transaction { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(7351001)", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            var applied: Set<Int> = []
            for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger)
                .decode(Int.self)
            {
                applied.insert(version)
            }
            var newlyApplied: [Int] = []
            for migration in PostgresMigrations.all where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                newlyApplied.append(migration.version)
            }
            return newlyApplied
        }
        try await ensurePartitions()
        return applied
    }

    public func ping() async throws {
        try await client.query("SELECT 1", logger: logger)
    }

    /// Runs a query and decodes every row.
    func rows<each Column: PostgresDecodable>(
        _ query: PostgresQuery, as types: (repeat each Column).Type
    ) async throws -> [(repeat each Column)] {
        var out: [(repeat each Column)] = []
        for try await row in try await client.query(query, logger: logger).decode((repeat each Column).self) {
            out.append(row)
        }
        return out
    }

    /// Runs a statement ending in `RETURNING 1`; returns how many rows it changed.
    func changedRows(_ query: PostgresQuery) async throws -> Int {
        try await rows(query, as: Int.self).count
    }
}

/// Parses `postgres://user:password@host:port/database?sslmode=…` (and `?host=/socket/dir`).
enum PostgresURL {
    static func configuration(from text: String) throws -> PostgresClient.Configuration {
        guard let components = URLComponents(string: text),
            components.scheme == "postgres" || components.scheme == "postgresql"
        else {
            throw PlatformError(.badRequest, code: "invalid_database_url", message: "Not a postgres:// URL")
        }
        let query = Dictionary(
            (components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        let username = components.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        let password = components.password.flatMap { $0.removingPercentEncoding }
        var database = components.path
        if database.hasPrefix("/") { database.removeFirst() }
        let databaseName = database.isEmpty ? username : database
        if let socketDirectory = query["host"], socketDirectory.hasPrefix("/") {
            let port = components.port ?? Int(query["port"] ?? "") ?? 5432
            return PostgresClient.Configuration(
                unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: username, password: password,
                database: databaseName)
        }
        let tls: PostgresClient.Configuration.TLS
        switch query["sslmode"] ?? "prefer" {
        case "disable": tls = .disable
        case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
        default: tls = .prefer(.makeClientConfiguration())
        }
        return PostgresClient.Configuration(
            host: components.host ?? "127.0.0.1", port: components.port ?? 5432, username: username,
            password: password, database: databaseName, tls: tls)
    }
}

extension PostgresStore {
    /// The names of the telemetry table's partitions, for operations and tests.
    public func telemetryPartitions() async throws -> [String] {
        var names: [String] = []
        let query: PostgresQuery = """
            SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'telemetry'::regclass ORDER BY c.relname
            """
        for try await name in try await client.query(query, logger: logger).decode(String.self) {
            names.append(name)
        }
        return names
    }
}

/// A one-way signal: `wait()` returns once `open()` has been called, at once after that.
final class StartSignal: Sendable {
    private struct State {
        var isOpen = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func open() {
        let waiters = state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let isOpen = state.withLock { state in
                if !state.isOpen { state.waiters.append(continuation) }
                return state.isOpen
            }
            if isOpen { continuation.resume() }
        }
    }
}
