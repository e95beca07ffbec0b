import Hummingbird
import PlatformCore

/// Resolves the caller of the user API from a `Bearer` user token or the session cookie and
/// stores it in the context. A presented but invalid Bearer token is refused at once; other
/// `Authorization` schemes are not user credentials and are ignored; a missing or expired
/// session leaves the context anonymous, and `AuthenticatedContext` turns that into a 401.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let accounts: AccountService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var context = context
        if let authorization = request.headers[.authorization], authorization.hasPrefix("Bearer ") {
            let token = String(authorization.dropFirst("Bearer ".count)).trimmingCharacters(in: .whitespaces)
            guard let identity = try await accounts.identity(apiToken: token) else {
                throw PlatformError(.unauthenticated, code: "invalid_token", message: "The API token is invalid or revoked")
            }
            context.identity = identity
        } else if let token = accounts.cookies.sessionToken(in: request) {
            context.identity = try await accounts.identity(sessionToken: token)
        }
        return try await next(request, context)
    }
}
