import Foundation
import GRDB
import PlatformCore
import ServiceLifecycle

/// The embedded backend: one SQLite file in WAL mode through a GRDB pool (readers in parallel,
/// one writer). `synchronous=FULL` so a committed sample survives power loss, not only a crash;
/// group commit keeps the fsync cost per sample small.
public final class SQLiteStore: PlatformStore, Sendable {
    let pool: DatabasePool
    public let backendName = "sqlite"

    /// Opens (creating if needed) the database file at `path`; creates its folder too.
    public init(path: String) throws {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try pool.close()
    }

    @discardableResult
    public func migrate() async throws -> [Int] {
        try await pool.write { db in
            try db.execute(
                sql: "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            )
            let applied = Set(try Int.fetchAll(db, sql: "SELECT version FROM schema_migrations"))
            var newlyApplied: [Int] = []
            for migration in SQLiteMigrations.all where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try db.execute(sql: statement)
                }
                try db.execute(
                    sql: "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    arguments: [migration.version, migration.name, Timestamp(Date()).microseconds])
                newlyApplied.append(migration.version)
            }
            return newlyApplied
        }
    }

    public func ping() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    /// Runs SQL statements through the writer, for tests that change the schema under a running
    /// server (PostgreSQL's counterpart is `PostgresStore.execute`).
    func execute(sql: String) async throws {
        try await pool.write { db in try db.execute(sql: sql) }
    }
}

extension UUID {
    /// The canonical lower-case text form both databases use.
    var databaseText: String { uuidString.lowercased() }
}

extension Row {
    func uuid(_ column: String) -> UUID {
        let text: String = self[column]
        return UUID(uuidString: text)!
    }

    func timestamp(_ column: String) -> Timestamp {
        Timestamp(microseconds: self[column])
    }

    func optionalTimestamp(_ column: String) -> Timestamp? {
        (self[column] as Int64?).map(Timestamp.init(microseconds:))
    }
}
