import Foundation
import Hummingbird
import PlatformCore
import Storage

/// `GET /health/`: database reachability, version and uptime; 503 when the database is not
/// reachable, so load balancers take the instance out.
struct HealthController {
    let store: any PlatformStore
    let startedAt: ContinuousClock.Instant
    static let version = "0.1.0"
    /// A database that does not answer within this long counts as unreachable: a load balancer
    /// needs a prompt answer more than a patient one.
    static let pingTimeout: Duration = .seconds(2)
    /// How soon a client may ask again after a 503.
    static let retryAfterSeconds = "1"

    struct HealthJSON: Encodable {
        var status: String
        var database: String
        var backend: String
        var version: String
        var uptimeSeconds: Int

        enum CodingKeys: String, CodingKey {
            case status, database, backend, version
            case uptimeSeconds = "uptime_seconds"
        }
    }

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("health/", use: health)
    }

    @Sendable func health(_ request: Request, context: AppRequestContext) async throws -> Response {
        let reachable: Bool
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.ping() }
                group.addTask {
                    try await Task.sleep(for: Self.pingTimeout)
                    throw PlatformError(.unavailable, code: "database_timeout", message: "The database did not answer in time")
                }
                defer { group.cancelAll() }
                try await group.next()
            }
            reachable = true
        } catch {
            context.logger.warning("health check: database unreachable", metadata: ["error": "\(error)"])
            reachable = false
        }
        let uptime = Int((ContinuousClock.now - startedAt).components.seconds)
        return try jsonResponse(
            HealthJSON(
                status: reachable ? "ok" : "unavailable", database: reachable ? "ok" : "unreachable",
                backend: store.backendName, version: Self.version, uptimeSeconds: uptime),
            status: reachable ? .ok : .serviceUnavailable, headers: reachable ? [:] : [.retryAfter: Self.retryAfterSeconds])
    }
}
