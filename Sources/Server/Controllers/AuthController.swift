import Foundation
import Hummingbird
import PlatformCore

/// `/api/auth/`: register, login, logout, and who am I.
struct AuthController {
    let accounts: AccountService
    let registerLimiter: RateLimiter
    let loginLimiter: RateLimiter
    /// Login attempts per account (normalised email), so spreading guesses at one account over
    /// many addresses does not multiply them.
    let accountLoginLimiter: RateLimiter
    let secureCookies: Bool
    let clientAddress: ClientAddressResolver

    struct RegisterBody: StrictRequestBody {
        static let fields: Set<String> = ["email", "password", "tenant_name"]
        var email: String
        var password: String
        var tenantName: String?

        enum CodingKeys: String, CodingKey {
            case email, password
            case tenantName = "tenant_name"
        }
    }

    struct LoginBody: StrictRequestBody {
        static let fields: Set<String> = ["email", "password"]
        var email: String
        var password: String
    }

    struct AccountJSON: Encodable {
        var user: UserJSON
        var tenant: TenantJSON
    }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("register/", use: register)
        group.post("login/", use: login)
        group.post("logout/", use: logout)
        group.group(context: AuthenticatedContext.self).get("me/", use: me)
    }

    @Sendable func register(_ request: Request, context: AppRequestContext) async throws -> Response {
        try registerLimiter.acquire(clientAddress.key(request, peer: context.remoteAddress))
        let body = try await request.decodeStrict(RegisterBody.self, context: context)
        let (membership, user, token) = try await accounts.register(
            email: body.email, password: body.password, tenantName: body.tenantName)
        var response = try jsonResponse(
            AccountJSON(user: UserJSON(user), tenant: TenantJSON(membership)), status: .created)
        response.setCookie(sessionCookie(token))
        return response
    }

    @Sendable func login(_ request: Request, context: AppRequestContext) async throws -> Response {
        try loginLimiter.acquire(clientAddress.key(request, peer: context.remoteAddress))
        let body = try await request.decodeStrict(LoginBody.self, context: context)
        if let account = try? IdentifierRules.normalizedEmail(body.email) {
            try accountLoginLimiter.acquire(account)
        }
        let (membership, user, token) = try await accounts.login(email: body.email, password: body.password)
        if let old = request.cookies[AuthenticationMiddleware.sessionCookieName]?.value {
            try await accounts.endSession(token: old)
        }
        var response = try jsonResponse(AccountJSON(user: UserJSON(user), tenant: TenantJSON(membership)))
        response.setCookie(sessionCookie(token))
        return response
    }

    @Sendable func logout(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard context.identity != nil, let token = request.cookies[AuthenticationMiddleware.sessionCookieName]?.value
        else {
            throw PlatformError.unauthenticated
        }
        try await accounts.endSession(token: token)
        var response = Response(status: .noContent)
        response.setCookie(
            Cookie(
                name: AuthenticationMiddleware.sessionCookieName, value: "", maxAge: 0, path: "/", secure: secureCookies,
                httpOnly: true, sameSite: .lax))
        return response
    }

    @Sendable func me(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        return try jsonResponse(
            AccountJSON(
                user: UserJSON(identity.user),
                tenant: TenantJSON(Membership(tenant: identity.tenant, userID: identity.user.id, role: identity.role))))
    }

    private func sessionCookie(_ token: String) -> Cookie {
        Cookie(
            name: AuthenticationMiddleware.sessionCookieName, value: token, path: "/", secure: secureCookies,
            httpOnly: true, sameSite: .lax)
    }
}
