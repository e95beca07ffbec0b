import Foundation
import Hummingbird
import PlatformCore
import Storage

/// Health endpoints.
///
/// - `GET /health/` (the seed's): database reachability, version and uptime; 503 when the
///   database does not answer.
/// - `GET /health/live`: the process answers; never touches the database, so a database outage
///   does not get the server restarted (and it is the no-database baseline for benchmarks).
/// - `GET /health/ready`: whether to send traffic here: 503 with a reason while the database
///   does not answer, while recent telemetry commits fail (a full disk, a database refusing
///   writes) or while the server drains for shutdown; 200 once those pass.
struct HealthController {
    let store: any PlatformStore
    let startedAt: ContinuousClock.Instant
    let commits: CommitHealth
    let shutdown: ShutdownMonitor
    var pingTimeout = Self.pingTimeout
    static let version = "0.1.0"
    /// A database that does not answer within this long counts as unreachable: a load balancer
    /// needs a prompt answer more than a patient one.
    static let pingTimeout: Duration = .seconds(2)
    /// How soon a client may ask again after a 503.
    static let retryAfterSeconds = "1"
    /// A failed commit keeps readiness at 503 until a commit succeeds, or for this long when no
    /// commit is tried (no traffic reaches an instance taken out of rotation).
    static let commitFailureWindow: Duration = .seconds(30)

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

    struct ProbeJSON: Encodable {
        var status: String
        var reason: String?
        var message: String?
    }

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("health/", use: health)
        router.get("health/live", use: live)
        router.get("health/ready", use: ready)
    }

    @Sendable func health(_ request: Request, context: AppRequestContext) async throws -> Response {
        let reachable = await databaseAnswers(context: context)
        let uptime = Int((ContinuousClock.now - startedAt).components.seconds)
        return try jsonResponse(
            HealthJSON(
                status: reachable ? "ok" : "unavailable", database: reachable ? "ok" : "unreachable",
                backend: store.backendName, version: Self.version, uptimeSeconds: uptime),
            status: reachable ? .ok : .serviceUnavailable, headers: reachable ? [:] : [.retryAfter: Self.retryAfterSeconds])
    }

    @Sendable func live(_ request: Request, context: AppRequestContext) async throws -> Response {
        try jsonResponse(ProbeJSON(status: "ok"))
    }

    @Sendable func ready(_ request: Request, context: AppRequestContext) async throws -> Response {
        if shutdown.isDraining {
            return try unready("shutting_down", "The server is shutting down")
        }
        if let failure = commits.failure(within: Self.commitFailureWindow) {
            return try unready("commits_failing", "Recent telemetry commits failed: \(failure.reason)")
        }
        guard await databaseAnswers(context: context) else {
            return try unready("database_unreachable", "The database did not answer within \(pingTimeout)")
        }
        return try jsonResponse(ProbeJSON(status: "ready"))
    }

    private func unready(_ reason: String, _ message: String) throws -> Response {
        try jsonResponse(
            ProbeJSON(status: "unavailable", reason: reason, message: message), status: .serviceUnavailable,
            headers: [.retryAfter: Self.retryAfterSeconds])
    }

    /// Whether `SELECT 1` (or the backend's equivalent) answers within `pingTimeout`. The ping is
    /// abandoned, not awaited, past that: a ping stuck on a dead connection cannot hold the
    /// health check (a task group racing a sleep would wait for it).
    private func databaseAnswers(context: AppRequestContext) async -> Bool {
        do {
            let store = store
            try await withTimeBound(pingTimeout, what: "health check ping") { try await store.ping() }
            return true
        } catch {
            context.logger.warning("health check: database unreachable", metadata: ["error": "\(error)"])
            return false
        }
    }
}
