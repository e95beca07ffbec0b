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
    /// Ends the work on a connection as soon as the connection closes.
    private let connectionWatch = ConnectionWatch()

    /// Months of telemetry partitions kept created ahead of the current one.
    static let partitionsAhead = 2

    /// How long one unit of database work may take, from leasing a connection to its last row
    /// or its COMMIT. Past it the caller gets `database_timeout` (503) and the connection is
    /// closed, which fails whatever still waits on it and rolls back its transaction.
    public let timeBound: Duration

    public init(url: String, logger: Logger, maximumConnections: Int = 20, timeBound: Duration = .seconds(10)) throws {
        var configuration = try PostgresURL.configuration(from: url)
        configuration.options.maximumConnections = maximumConnections
        // Bounded by our own deadline too, so a server that accepts the TCP connection but never
        // answers (paused, overloaded) does not hold a new connection longer than a statement.
        configuration.options.connectTimeout = min(configuration.options.connectTimeout, timeBound)
        self.logger = logger
        self.timeBound = timeBound
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
        try await execute("SELECT ensure_telemetry_partitions(\(Int32(Self.partitionsAhead)))")
    }

    /// Runs `body` on a pooled connection within `bound` (the lease included).
    ///
    /// PostgresNIO hands a statement to its connection's channel without a write promise; when
    /// the connection has died and NIO has already torn down its pipeline, the statement is
    /// dropped and its result promise is never completed, so an `await` on it never returns. That
    /// is what hung shutdown after a database restart (a ROLLBACK sent on a connection the
    /// restart had closed). Every statement therefore runs under a time bound that does not
    /// depend on the statement ever answering: past it the connection is closed and the caller
    /// gets `database_timeout` at once. A connection that closes under the work (a restart)
    /// fails it at once with `database_connection_lost`.
    func withConnection<Result: Sendable>(
        _ what: String, bound: Duration? = nil,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let leased = LeasedConnection()
        let client = client
        let logger = logger
        let watch = connectionWatch
        return try await withTimeBound(
            bound ?? timeBound, what: what,
            onExpiry: {
                if leased.closedUnderWork {
                    logger.notice(
                        "database connection closed under work; answering it now",
                        metadata: ["work": "\(what)", "was_waiting_for": "\(leased.stage)"])
                } else {
                    logger.warning(
                        "database work exceeded its time bound; closing its connection",
                        metadata: [
                            "work": "\(what)", "bound": "\(bound ?? self.timeBound)", "was_waiting_for": "\(leased.stage)",
                        ])
                }
                await leased.close()
            },
            { control in
                try await client.withConnection { connection in
                    leased.set(connection)
                    watch.begin(on: connection, leased: leased, control: control)
                    defer { watch.end(on: connection) }
                    return try await body(connection)
                }
            })
    }

    /// Runs `body` in a transaction (`begin` … COMMIT, ROLLBACK when it throws), all of it within
    /// the time bound, rethrowing the body's own error.
    func transaction<Result: Sendable>(
        _ what: String, bound: Duration? = nil, begin: PostgresQuery = "BEGIN",
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let logger = logger
        return try await withConnection(what, bound: bound) { connection in
            try await connection.query(begin, logger: logger)
            let result: Result
            do {
                result = try await body(connection)
                // Cancelled (its bound expired or its caller went away): never commit late.
                try Task.checkCancellation()
            } catch {
                // A closed connection has no transaction left to roll back, and a statement sent
                // on it may never be answered (see `withConnection`).
                if !connection.isClosed {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                }
                throw error
            }
            try await connection.query("COMMIT", logger: logger)
            return result
        }
    }

    /// Runs one statement, discarding any rows.
    func execute(_ query: PostgresQuery) async throws {
        let logger = logger
        _ = try await withConnection(Self.describe(query)) { connection in
            try await connection.query(query, logger: logger)
        }
    }

    /// The start of a statement, to say in a log which work ran out of time.
    static func describe(_ query: PostgresQuery) -> String {
        let words = query.sql.split(whereSeparator: \.isWhitespace).prefix(4).joined(separator: " ")
        return words.count > 60 ? String(words.prefix(60)) : words
    }

    @discardableResult
    public func migrate() async throws -> [Int] {
        await poolStarted.wait()
        let logger = logger
        // Migrations may rewrite large tables: their bound is generous, not the statement one.
        let applied = try await transaction("migrations", bound: .seconds(3600)) { connection in
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
        try await execute("SELECT 1")
    }

    /// Runs a query and decodes every row.
    func rows<each Column: PostgresDecodable & Sendable>(
        _ query: PostgresQuery, as types: (repeat each Column).Type
    ) async throws -> [(repeat each Column)] {
        let logger = logger
        return try await withConnection(Self.describe(query)) { connection in
            var out: [(repeat each Column)] = []
            for try await row in try await connection.query(query, logger: logger).decode((repeat each Column).self) {
                out.append(row)
            }
            return out
        }
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
        try await rows(
            """
            SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'telemetry'::regclass ORDER BY c.relname
            """, as: String.self)
    }
}

/// Fails the work running on a connection as soon as the connection closes (a restart, a
/// network failure), rather than when its time bound runs out: a statement the driver wrote
/// before the close has been failed by then, and one written after it would never be answered.
final class ConnectionWatch: Sendable {
    private struct Work {
        var leased: LeasedConnection
        var control: TimeBoundControl
    }

    private struct State {
        /// Connections whose close is watched (one callback each, however much work they run).
        var watched: Set<PostgresConnection.ID> = []
        var current: [PostgresConnection.ID: Work] = [:]
    }

    private let state = Mutex(State())

    func begin(on connection: PostgresConnection, leased: LeasedConnection, control: TimeBoundControl) {
        let id = connection.id
        let isNew = state.withLock { state in
            state.current[id] = Work(leased: leased, control: control)
            return state.watched.insert(id).inserted
        }
        guard isNew else { return }
        connection.closeFuture.whenComplete { _ in
            // Queued behind the pipeline teardown NIO schedules when a channel closes.
            connection.eventLoop.execute { self.closed(id) }
        }
    }

    func end(on connection: PostgresConnection) {
        _ = state.withLock { $0.current.removeValue(forKey: connection.id) }
    }

    private func closed(_ id: PostgresConnection.ID) {
        let work = state.withLock { state in
            state.watched.remove(id)
            return state.current.removeValue(forKey: id)
        }
        guard let work else { return }
        work.leased.markClosedUnderWork()
        work.control.abandon(
            throwing: PlatformError(
                .unavailable, code: "database_connection_lost", message: "The database connection closed; retry"))
    }
}

/// The connection a bounded unit of work leased, so that its expiry can close it.
final class LeasedConnection: Sendable {
    private let connection = Mutex<PostgresConnection?>(nil)
    private let closedUnder = Atomic<Bool>(false)

    /// True when the work ended because its connection closed, not because time ran out.
    var closedUnderWork: Bool { closedUnder.load(ordering: .relaxed) }

    func markClosedUnderWork() {
        closedUnder.store(true, ordering: .relaxed)
    }

    func set(_ leased: PostgresConnection) {
        connection.withLock { $0 = leased }
    }

    /// What the work was waiting for, for the log: a connection from the pool, an answer on a
    /// live connection (a slow or stopped server), or an answer on a connection that had
    /// already closed (a statement the driver dropped: it would never have come).
    var stage: String {
        guard let leased = connection.withLock({ $0 }) else { return "a connection from the pool" }
        return leased.isClosed
            ? "an answer on connection \(leased.id), which had already closed"
            : "an answer on open connection \(leased.id)"
    }

    /// Closes the channel at once (no Terminate handshake: the server may not be answering),
    /// which fails every statement still queued or running on it.
    func close() async {
        guard let leased = connection.withLock({ $0 }) else { return }
        try? await leased.close()
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
