import Foundation
import Hummingbird
import PlatformCore
import Storage

/// `/tokens` (user API tokens: created with the secret shown once, revoked), `/members` (the
/// tenant's people; owners and admins invite them and change roles) and `/account` (password,
/// and invitations to other tenants to accept or decline).
struct AccountPages {
    let accounts: AccountService
    let limits: AuthController.Limits
    let members: MemberService
    let store: any AccountStore
    let pages: PageRenderer
    let clock: any WallClock

    struct TokenRow {
        var id: String
        var name: String
        var createdAt: String
        var lastUsedAt: String
        var revoked: Bool
        var scope: String
        var expiresAt: String
        var expired: Bool
    }

    struct TokensModel {
        var tokens: [TokenRow]
        var hasTokens: Bool
        var newSecret: String?
        var newName: String?
        var name: String
        var error: String?
    }

    struct MemberRow {
        var email: String
        var role: String
        var isYou: Bool
        /// Whether the viewer may change this member's role, and the choices.
        var canChangeRole: Bool
        var roleOptions: [RoleOption]
    }

    struct InvitationRow {
        var id: String
        var email: String
        var role: String
        var expiresAt: String
        var expired: Bool
    }

    struct ReceivedRow {
        var id: String
        var tenantName: String
        var role: String
        var invitedBy: String
        var expiresAt: String
    }

    struct RoleOption {
        var value: String
        var selected: Bool
    }

    struct MembersModel {
        var members: [MemberRow]
        var canAdminister: Bool
        var roles: [RoleOption]
        var invitations: [InvitationRow]
        var hasInvitations: Bool
        var email: String
        var error: String?
    }

    struct AccountModel {
        var email: String
        var tenantName: String
        var role: String
        var received: [ReceivedRow]
        var hasReceived: Bool
        var error: String?
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("tokens", use: tokens)
        group.post("tokens", use: createToken)
        group.post("tokens/:id/revoke", use: revokeToken)
        group.get("members", use: showMembers)
        group.post("members/invite", use: invite)
        group.post("members/role", use: setRole)
        group.post("invitations/:id/withdraw", use: withdraw)
        group.post("invitations/:id/accept", use: accept)
        group.post("invitations/:id/decline", use: decline)
        group.get("account", use: account)
        group.post("account/password", use: changePassword)
    }

    @Sendable func tokens(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await tokensPage(context, flash: WebNotice.flash(request))
    }

    @Sendable func createToken(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let name = context.form.text("name") ?? ""
        do {
            let days = try context.form.text("expires_in_days").map { text in
                guard let days = Int(text) else { throw PlatformError.invalid("expires_in_days", "must be a number of days") }
                return days
            }
            let (token, secret) = try await accounts.createAPIToken(
                for: context.identity, name: name, scope: try TokenController.scope(context.form.text("scope")),
                expiresInDays: days)
            return try await tokensPage(context, newSecret: secret, newName: token.name, status: .created)
        } catch let error as PlatformError where error.kind == .validation {
            return try await tokensPage(context, name: name, error: error.message, status: .unprocessableContent)
        }
    }

    @Sendable func revokeToken(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)),
            try await store.revokeAPIToken(
                tenantID: context.identity.tenant.id, userID: context.identity.user.id, id: id, at: clock.now())
        else { throw PlatformError.notFound("Token") }
        return PageRenderer.redirect(to: "/tokens?notice=token-revoked")
    }

    private func tokensPage(
        _ context: AuthenticatedContext, newSecret: String? = nil, newName: String? = nil, name: String = "",
        error: String? = nil, flash: LayoutModel.Flash? = nil, status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let now = clock.now()
        let rows = try await store.apiTokens(tenantID: context.identity.tenant.id, userID: context.identity.user.id).map {
            TokenRow(
                id: $0.id.uuidString.lowercased(), name: $0.name, createdAt: $0.createdAt.iso8601,
                lastUsedAt: $0.lastUsedAt?.iso8601 ?? "never", revoked: $0.revokedAt != nil, scope: $0.scope.rawValue,
                expiresAt: $0.expiresAt?.iso8601 ?? "never", expired: $0.expiresAt.map { $0 <= now } ?? false)
        }
        return try await pages.page(
            "tokens", title: "API tokens", section: .tokens, context: context,
            content: TokensModel(
                tokens: rows, hasTokens: !rows.isEmpty, newSecret: newSecret, newName: newName, name: name, error: error),
            flash: flash, status: status)
    }

    @Sendable func showMembers(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await membersPage(context, flash: WebNotice.flash(request))
    }

    @Sendable func invite(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let email = context.form.text("email") ?? ""
        do {
            _ = try await members.invite(by: context.identity, email: email, roleName: context.form.text("role") ?? "")
            return PageRenderer.redirect(to: "/members?notice=invitation-sent")
        } catch let error as PlatformError where Self.isFormError(error) {
            return try await membersPage(
                context, email: email, error: error.message, status: ErrorMapping.status(for: error.kind))
        }
    }

    @Sendable func setRole(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        do {
            _ = try await members.setRole(
                by: context.identity, email: context.form.text("email") ?? "", roleName: context.form.text("role") ?? "")
            return PageRenderer.redirect(to: "/members?notice=member-saved")
        } catch let error as PlatformError where Self.isFormError(error) {
            return try await membersPage(context, error: error.message, status: ErrorMapping.status(for: error.kind))
        }
    }

    @Sendable func withdraw(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await members.withdrawInvitation(by: context.identity, id: try Self.invitationID(context))
        return PageRenderer.redirect(to: "/members?notice=invitation-withdrawn")
    }

    @Sendable func accept(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        _ = try await members.accept(by: context.identity, id: try Self.invitationID(context))
        return PageRenderer.redirect(to: "/account?notice=invitation-accepted")
    }

    @Sendable func decline(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await members.decline(by: context.identity, id: try Self.invitationID(context))
        return PageRenderer.redirect(to: "/account?notice=invitation-declined")
    }

    private static func invitationID(_ context: AuthenticatedContext) throws -> UUID {
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else {
            throw PlatformError.notFound("Invitation")
        }
        return id
    }

    private static func isFormError(_ error: PlatformError) -> Bool {
        switch error.kind {
        case .validation, .conflict, .notFound, .forbidden, .rateLimited: true
        default: false
        }
    }

    private func membersPage(
        _ context: AuthenticatedContext, email: String = "", error: String? = nil, flash: LayoutModel.Flash? = nil,
        status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let identity = context.identity
        let grantable = Role.allCases.filter { $0 <= identity.role }
        let rows = try await members.members(tenantID: identity.tenant.id).map { user, role in
            MemberRow(
                email: user.email, role: role.rawValue, isYou: user.id == identity.user.id,
                canChangeRole: identity.role.canAdminister && user.id != identity.user.id && role <= identity.role,
                roleOptions: grantable.map { RoleOption(value: $0.rawValue, selected: $0 == role) })
        }
        let roles = grantable.map { RoleOption(value: $0.rawValue, selected: $0 == .member) }
        let now = clock.now()
        let invitations =
            identity.role.canAdminister
            ? try await members.invitations(by: identity).map {
                InvitationRow(
                    id: $0.id.uuidString.lowercased(), email: $0.email, role: $0.role.rawValue,
                    expiresAt: $0.expiresAt.iso8601, expired: $0.expiresAt <= now)
            } : []
        return try await pages.page(
            "members", title: "Members", section: .members, context: context,
            content: MembersModel(
                members: rows, canAdminister: identity.role.canAdminister, roles: roles, invitations: invitations,
                hasInvitations: !invitations.isEmpty, email: email, error: error),
            flash: flash, status: status)
    }

    @Sendable func account(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await accountPage(context, flash: WebNotice.flash(request))
    }

    @Sendable func changePassword(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        do {
            try limits.loginPerAccount.acquire(context.identity.user.email)
            try await accounts.changePassword(
                context.identity, current: context.form["current_password"] ?? "",
                new: context.form["new_password"] ?? "")
            return try await accountPage(
                context, flash: .init(message: "Password changed. Your other sessions have ended.", isError: false))
        } catch let error as PlatformError where error.kind != .internalFailure && error.kind != .unavailable {
            return try await accountPage(context, error: error.message, status: ErrorMapping.status(for: error.kind))
        }
    }

    private func accountPage(
        _ context: AuthenticatedContext, error: String? = nil, flash: LayoutModel.Flash? = nil,
        status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let identity = context.identity
        let received = try await members.receivedInvitations(for: identity.user).map {
            ReceivedRow(
                id: $0.invitation.id.uuidString.lowercased(), tenantName: $0.tenant.name,
                role: $0.invitation.role.rawValue, invitedBy: $0.inviterEmail, expiresAt: $0.invitation.expiresAt.iso8601)
        }
        return try await pages.page(
            "account", title: "Account", section: .account, context: context,
            content: AccountModel(
                email: identity.user.email, tenantName: identity.tenant.name, role: identity.role.rawValue,
                received: received, hasReceived: !received.isEmpty, error: error),
            flash: flash, status: status)
    }
}
