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
    /// The canonical lower-case text form SQLite stores ids in. It keys every tenant's row by
    /// it, so ingest writes it once a sample and alert passes read it back once a row: written
    /// here byte by byte, since `uuidString.lowercased()` formats, then lower-cases through
    /// Unicode's tables.
    var databaseText: String {
        let digits: StaticString = "0123456789abcdef"
        return withUnsafeBytes(of: uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { text in
                var at = 0
                for (index, byte) in bytes.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        text[at] = UInt8(ascii: "-")
                        at += 1
                    }
                    text[at] = digits.utf8Start[Int(byte >> 4)]
                    text[at + 1] = digits.utf8Start[Int(byte & 0x0f)]
                    at += 2
                }
                return at
            }
        }
    }

    /// The UUID in `text` when it has the canonical form (36 characters, hyphens after the 8th,
    /// 12th, 16th and 20th digit, either case), as `UUID(uuidString:)` reads it; nil otherwise.
    init?(databaseText text: String) {
        var text = text
        let parsed = text.withUTF8 { utf8 -> uuid_t? in
            guard utf8.count == 36 else { return nil }
            var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            let complete = withUnsafeMutableBytes(of: &bytes) { bytes -> Bool in
                var at = 0
                for index in 0..<16 {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        guard utf8[at] == UInt8(ascii: "-") else { return false }
                        at += 1
                    }
                    guard let high = Self.hexValue(utf8[at]), let low = Self.hexValue(utf8[at + 1]) else { return false }
                    bytes[index] = high << 4 | low
                    at += 2
                }
                return true
            }
            return complete ? bytes : nil
        }
        guard let parsed else { return nil }
        self.init(uuid: parsed)
    }

    private static func hexValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension Row {
    func uuid(_ column: String) -> UUID {
        let text: String = self[column]
        return UUID(databaseText: text)!
    }

    func timestamp(_ column: String) -> Timestamp {
        Timestamp(microseconds: self[column])
    }

    func optionalTimestamp(_ column: String) -> Timestamp? {
        (self[column] as Int64?).map(Timestamp.init(microseconds:))
    }
}
