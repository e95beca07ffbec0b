import Foundation
import Hummingbird
import PlatformCore

/// `/api/auth/`: register, login, logout, switch tenant, change password, and who am I.
struct AuthController {
    /// The limits on registering and logging in, shared with the dashboard's forms.
    struct Limits: Sendable {
        var register: RateLimiter
        var login: RateLimiter
        /// Login attempts per account (normalised email), so spreading guesses at one account
        /// over many addresses does not multiply them.
        var loginPerAccount: RateLimiter
    }

    let accounts: AccountService
    let limits: Limits
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

    struct SwitchTenantBody: StrictRequestBody {
        static let fields: Set<String> = ["tenant"]
        var tenant: String
    }

    struct PasswordBody: StrictRequestBody {
        static let fields: Set<String> = ["current_password", "new_password"]
        var currentPassword: String
        var newPassword: String

        enum CodingKeys: String, CodingKey {
            case currentPassword = "current_password"
            case newPassword = "new_password"
        }
    }

    struct ResetRequestBody: StrictRequestBody {
        static let fields: Set<String> = ["email"]
        var email: String
    }

    struct ResetBody: StrictRequestBody {
        static let fields: Set<String> = ["token", "new_password"]
        var token: String
        var newPassword: String

        enum CodingKeys: String, CodingKey {
            case token
            case newPassword = "new_password"
        }
    }

    struct AccountJSON: Encodable {
        var user: UserJSON
        var tenant: TenantJSON
        /// Every tenant the user belongs to (only in `me`).
        var tenants: [TenantJSON]?
    }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("register/", use: register)
        group.post("login/", use: login)
        group.post("logout/", use: logout)
        group.post("password-reset/", use: requestPasswordReset)
        group.post("password-reset/confirm/", use: resetPassword)
        let signedIn = group.group(context: AuthenticatedContext.self)
        signedIn.get("me/", use: me)
        signedIn.post("switch-tenant/", use: switchTenant)
        signedIn.post("password/", use: changePassword)
    }

    @Sendable func register(_ request: Request, context: AppRequestContext) async throws -> Response {
        try limits.register.acquire(clientAddress.key(request, peer: context.remoteAddress))
        let body = try await request.decodeStrict(RegisterBody.self, context: context)
        let (membership, user, token) = try await accounts.register(
            email: body.email, password: body.password, tenantName: body.tenantName)
        if let old = accounts.cookies.sessionToken(in: request) {
            try await accounts.endSession(token: old)
        }
        var response = try jsonResponse(
            AccountJSON(user: UserJSON(user), tenant: TenantJSON(membership)), status: .created)
        response.setCookie(sessionCookie(token))
        return response
    }

    @Sendable func login(_ request: Request, context: AppRequestContext) async throws -> Response {
        try limits.login.acquire(clientAddress.key(request, peer: context.remoteAddress))
        let body = try await request.decodeStrict(LoginBody.self, context: context)
        if let account = try? IdentifierRules.normalizedEmail(body.email) {
            try limits.loginPerAccount.acquire(account)
        }
        let (membership, user, token) = try await accounts.login(email: body.email, password: body.password)
        if let old = accounts.cookies.sessionToken(in: request) {
            try await accounts.endSession(token: old)
        }
        var response = try jsonResponse(AccountJSON(user: UserJSON(user), tenant: TenantJSON(membership)))
        response.setCookie(sessionCookie(token))
        return response
    }

    @Sendable func logout(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard context.identity != nil, let token = accounts.cookies.sessionToken(in: request)
        else {
            throw PlatformError.unauthenticated
        }
        try await accounts.endSession(token: token)
        var response = Response(status: .noContent)
        response.setCookie(accounts.cookies.expiredSession())
        return response
    }

    /// 202 whether or not the address has an account; a link goes out by mail when it has.
    @Sendable func requestPasswordReset(_ request: Request, context: AppRequestContext) async throws -> Response {
        try limits.login.acquire(clientAddress.key(request, peer: context.remoteAddress))
        let body = try await request.decodeStrict(ResetRequestBody.self, context: context)
        if let account = try? IdentifierRules.normalizedEmail(body.email) { try limits.loginPerAccount.acquire(account) }
        try await accounts.requestPasswordReset(email: body.email)
        return Response(status: .accepted)
    }

    @Sendable func resetPassword(_ request: Request, context: AppRequestContext) async throws -> Response {
        try limits.login.acquire(clientAddress.key(request, peer: context.remoteAddress))
        let body = try await request.decodeStrict(ResetBody.self, context: context)
        try await accounts.resetPassword(token: body.token, newPassword: body.newPassword)
        return Response(status: .noContent)
    }

    @Sendable func me(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        let memberships = try await accounts.store.memberships(userID: identity.user.id)
        return try jsonResponse(
            AccountJSON(
                user: UserJSON(identity.user),
                tenant: TenantJSON(Membership(tenant: identity.tenant, userID: identity.user.id, role: identity.role)),
                tenants: memberships.map(TenantJSON.init)))
    }

    @Sendable func switchTenant(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let body = try await request.decodeStrict(SwitchTenantBody.self, context: context)
        let (membership, token) = try await accounts.switchTenant(context.identity, toSlug: body.tenant)
        var response = try jsonResponse(AccountJSON(user: UserJSON(context.identity.user), tenant: TenantJSON(membership)))
        response.setCookie(sessionCookie(token))
        return response
    }

    @Sendable func changePassword(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let body = try await request.decodeStrict(PasswordBody.self, context: context)
        // Guessing the current password here counts like guessing it at login.
        try limits.loginPerAccount.acquire(context.identity.user.email)
        try await accounts.changePassword(context.identity, current: body.currentPassword, new: body.newPassword)
        return Response(status: .noContent)
    }

    private func sessionCookie(_ token: String) -> Cookie {
        accounts.cookies.session(token)
    }
}
