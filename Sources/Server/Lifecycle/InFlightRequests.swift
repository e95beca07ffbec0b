import Hummingbird
import Synchronization

/// How many requests the server is handling right now, for the shutdown log.
final class InFlightRequests: Sendable {
    private let count = Atomic<Int>(0)

    init() {}

    var current: Int { count.load(ordering: .relaxed) }

    func enter() { count.add(1, ordering: .relaxed) }
    func leave() { count.subtract(1, ordering: .relaxed) }
}

/// Counts every request from the moment the router sees it until its response is returned.
struct InFlightRequestsMiddleware<Context: RequestContext>: RouterMiddleware {
    let requests: InFlightRequests

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        requests.enter()
        defer { requests.leave() }
        return try await next(request, context)
    }
}
