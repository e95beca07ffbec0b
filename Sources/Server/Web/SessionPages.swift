import Foundation
import Hummingbird
import PlatformCore

/// `/login`, `/signup`, `/logout` and `/switch-tenant`: the dashboard's way in and out, through
/// the same `AccountService` and rate limits as the JSON API.
struct SessionPages {
    let accounts: AccountService
    let pages: PageRenderer
    let limits: AuthController.Limits
    let clientAddress: ClientAddressResolver

    struct LoginModel {
        var email: String
        /// Where to go after logging in (a path on this site).
        var next: String
        var error: String?
    }

    struct ResetRequestModel {
        var email: String
        var sent: Bool
        var error: String?
    }

    struct ResetModel {
        var token: String
        var error: String?
    }

    struct SignupModel {
        var email: String
        var tenantName: String
        var error: String?
    }

    func addRoutes(to router: RouterGroup<AppRequestContext>) {
        router.get("login", use: showLogin)
        router.post("login", use: login)
        router.get("signup", use: showSignup)
        router.post("signup", use: signup)
        router.post("logout", use: logout)
        router.get("forgot-password", use: showForgotPassword)
        router.post("forgot-password", use: forgotPassword)
        router.get("reset-password", use: showResetPassword)
        router.post("reset-password", use: resetPassword)
        router.group(context: AuthenticatedContext.self).post("switch-tenant", use: switchTenant)
    }

    @Sendable func showLogin(_ request: Request, context: AppRequestContext) async throws -> Response {
        let next = request.uri.queryParameters["next"].flatMap { WebMiddleware.returnPath(String($0)) }
        if context.identity != nil { return PageRenderer.redirect(to: next ?? "/") }
        let flash: LayoutModel.Flash? =
            if request.uri.queryParameters["expired"] != nil {
                .init(message: "Your session expired. Log in again to continue.", isError: false)
            } else if request.uri.queryParameters["reset"] != nil {
                .init(message: "Password changed. Log in with the new one; your other sessions have ended.", isError: false)
            } else { nil }
        return try publicForm(
            "login", title: "Log in", request: request, content: LoginModel(email: "", next: next ?? "/"), flash: flash)
    }

    @Sendable func login(_ request: Request, context: AppRequestContext) async throws -> Response {
        let form = context.form ?? FormFields(urlencoded: "")
        let email = form.text("email") ?? ""
        let next = form.text("next").flatMap(WebMiddleware.returnPath)
        let model = LoginModel(email: email, next: next ?? "/")
        do {
            try limits.login.acquire(clientAddress.key(request, peer: context.remoteAddress))
            if let account = try? IdentifierRules.normalizedEmail(email) { try limits.loginPerAccount.acquire(account) }
            let (_, _, token) = try await accounts.login(email: email, password: form["password"] ?? "")
            if let old = accounts.cookies.sessionToken(in: request) {
                try await accounts.endSession(token: old)
            }
            return PageRenderer.redirect(to: next ?? "/", cookies: [accounts.cookies.session(token)])
        } catch let error as PlatformError where error.kind != .internalFailure && error.kind != .unavailable {
            var model = model
            model.error = error.message
            var response = try publicForm(
                "login", title: "Log in", request: request, content: model, status: ErrorMapping.status(for: error.kind))
            if case .rateLimited(let seconds) = error.kind { response.headers[.retryAfter] = String(seconds) }
            return response
        }
    }

    @Sendable func showSignup(_ request: Request, context: AppRequestContext) async throws -> Response {
        if context.identity != nil { return PageRenderer.redirect(to: "/") }
        return try publicForm("signup", title: "Sign up", request: request, content: SignupModel(email: "", tenantName: ""))
    }

    @Sendable func signup(_ request: Request, context: AppRequestContext) async throws -> Response {
        let form = context.form ?? FormFields(urlencoded: "")
        var model = SignupModel(email: form.text("email") ?? "", tenantName: form.text("tenant_name") ?? "")
        do {
            try limits.register.acquire(clientAddress.key(request, peer: context.remoteAddress))
            let (_, _, token) = try await accounts.register(
                email: model.email, password: form["password"] ?? "", tenantName: model.tenantName)
            if let old = accounts.cookies.sessionToken(in: request) {
                try await accounts.endSession(token: old)
            }
            return PageRenderer.redirect(to: "/", cookies: [accounts.cookies.session(token)])
        } catch let error as PlatformError where error.kind != .internalFailure && error.kind != .unavailable {
            model.error = error.message
            var response = try publicForm(
                "signup", title: "Sign up", request: request, content: model, status: ErrorMapping.status(for: error.kind))
            if case .rateLimited(let seconds) = error.kind { response.headers[.retryAfter] = String(seconds) }
            return response
        }
    }

    @Sendable func showForgotPassword(_ request: Request, context: AppRequestContext) async throws -> Response {
        try publicForm(
            "forgot-password", title: "Forgot your password?", request: request,
            content: ResetRequestModel(email: "", sent: false))
    }

    @Sendable func forgotPassword(_ request: Request, context: AppRequestContext) async throws -> Response {
        let email = context.form?.text("email") ?? ""
        do {
            try limits.login.acquire(clientAddress.key(request, peer: context.remoteAddress))
            if let account = try? IdentifierRules.normalizedEmail(email) { try limits.loginPerAccount.acquire(account) }
            try await accounts.requestPasswordReset(email: email)
            return try publicForm(
                "forgot-password", title: "Forgot your password?", request: request,
                content: ResetRequestModel(email: email, sent: true))
        } catch let error as PlatformError where error.kind != .internalFailure {
            return try publicForm(
                "forgot-password", title: "Forgot your password?", request: request,
                content: ResetRequestModel(email: email, sent: false, error: error.message),
                status: ErrorMapping.status(for: error.kind))
        }
    }

    @Sendable func showResetPassword(_ request: Request, context: AppRequestContext) async throws -> Response {
        let token = request.uri.queryParameters["token"].map(String.init) ?? ""
        return try publicForm("reset-password", title: "Choose a new password", request: request, content: ResetModel(token: token))
    }

    @Sendable func resetPassword(_ request: Request, context: AppRequestContext) async throws -> Response {
        let form = context.form ?? FormFields(urlencoded: "")
        let token = form["token"] ?? ""
        do {
            try limits.login.acquire(clientAddress.key(request, peer: context.remoteAddress))
            try await accounts.resetPassword(token: token, newPassword: form["new_password"] ?? "")
            return PageRenderer.redirect(to: "/login?reset=1")
        } catch let error as PlatformError where error.kind != .internalFailure && error.kind != .unavailable {
            return try publicForm(
                "reset-password", title: "Choose a new password", request: request,
                content: ResetModel(token: token, error: error.message), status: ErrorMapping.status(for: error.kind))
        }
    }

    @Sendable func logout(_ request: Request, context: AppRequestContext) async throws -> Response {
        if context.identity != nil, let token = accounts.cookies.sessionToken(in: request) {
            try await accounts.endSession(token: token)
        }
        return PageRenderer.redirect(to: "/login", cookies: [accounts.cookies.expiredSession()])
    }

    @Sendable func switchTenant(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let slug = context.form.text("tenant") ?? ""
        let (_, token) = try await accounts.switchTenant(context.identity, toSlug: slug)
        return PageRenderer.redirect(to: "/", cookies: [accounts.cookies.session(token)])
    }

    /// A form page shown before login, bound to the pre-session cookie (set here when missing).
    private func publicForm(
        _ template: String, title: String, request: Request, content: some Any, flash: LayoutModel.Flash? = nil,
        status: HTTPResponse.Status = .ok
    ) throws -> Response {
        var binding = accounts.cookies.presession(in: request) ?? ""
        let isNew = binding.count < 20
        if isNew { binding = Secrets.generate(prefix: "") }
        var response = try pages.publicPage(
            template, title: title, binding: binding, content: content, flash: flash, status: status)
        if isNew {
            response.setCookie(accounts.cookies.presession(binding))
        }
        return response
    }
}
