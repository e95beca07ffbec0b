import Logging
import PlatformCore

/// Opens the backend a `DATABASE_URL` names: `sqlite:PATH` (or a bare path) or `postgres://…`.
public enum StoreFactory {
    /// `timeBound` limits each unit of PostgreSQL work (see `PostgresStore.timeBound`).
    public static func open(databaseURL: String, logger: Logger, timeBound: Duration = .seconds(10)) throws -> any PlatformStore {
        if databaseURL.hasPrefix("postgres://") || databaseURL.hasPrefix("postgresql://") {
            return try PostgresStore(url: databaseURL, logger: logger, timeBound: timeBound)
        }
        var path = databaseURL
        if path.hasPrefix("sqlite://") {
            path.removeFirst("sqlite://".count)
        } else if path.hasPrefix("sqlite:") {
            path.removeFirst("sqlite:".count)
        }
        guard !path.isEmpty else {
            throw PlatformError(.badRequest, code: "invalid_database_url", message: "The SQLite path is empty")
        }
        return try SQLiteStore(path: path)
    }
}
