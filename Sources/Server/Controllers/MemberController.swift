import Foundation
import Hummingbird
import PlatformCore
import Storage

/// `/api/tenant/members/` and `/api/tenant/invitations/`: who belongs to the caller's tenant,
/// role changes, and invitations (owners and admins); `/api/auth/invitations/`: the invitations
/// the caller received, to accept or decline. All by `MemberService`'s rules.
struct MemberController {
    let members: MemberService

    struct MemberBody: StrictRequestBody {
        static let fields: Set<String> = ["email", "role"]
        var email: String
        var role: String
    }

    struct MemberJSON: Encodable {
        var user: UserJSON
        var role: String
    }

    struct ListJSON: Encodable {
        var members: [MemberJSON]
    }

    struct InvitationJSON: Encodable {
        var id: String
        var email: String
        var role: String
        var createdAt: Timestamp
        var expiresAt: Timestamp
        var tenant: InvitedTenantJSON?
        var invitedBy: String?

        init(_ invitation: Invitation, tenant: Tenant? = nil, invitedBy: String? = nil) {
            id = invitation.id.uuidString.lowercased()
            email = invitation.email
            role = invitation.role.rawValue
            createdAt = invitation.createdAt
            expiresAt = invitation.expiresAt
            self.tenant = tenant.map(InvitedTenantJSON.init)
            self.invitedBy = invitedBy
        }

        enum CodingKeys: String, CodingKey {
            case id, email, role, tenant
            case createdAt = "created_at"
            case expiresAt = "expires_at"
            case invitedBy = "invited_by"
        }
    }

    struct InvitedTenantJSON: Encodable {
        var slug: String
        var name: String

        init(_ tenant: Tenant) {
            slug = tenant.slug
            name = tenant.name
        }
    }

    func addRoutes(members group: RouterGroup<AuthenticatedContext>, invitations: RouterGroup<AuthenticatedContext>,
        received: RouterGroup<AuthenticatedContext>)
    {
        group.get("", use: list)
        group.post("", use: setRole)
        invitations.get("", use: listInvitations)
        invitations.post("", use: invite)
        invitations.delete(":id/", use: withdraw)
        received.get("", use: receivedInvitations)
        received.post(":id/accept/", use: accept)
        received.post(":id/decline/", use: decline)
    }

    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let list = try await members.members(tenantID: context.identity.tenant.id)
        return try jsonResponse(ListJSON(members: list.map { MemberJSON(user: UserJSON($0.0), role: $0.1.rawValue) }))
    }

    @Sendable func setRole(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let body = try await request.decodeStrict(MemberBody.self, context: context)
        let (user, role) = try await members.setRole(by: context.identity, email: body.email, roleName: body.role)
        return try jsonResponse(MemberJSON(user: UserJSON(user), role: role.rawValue))
    }

    @Sendable func listInvitations(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let list = try await members.invitations(by: context.identity)
        return try jsonResponse(["invitations": list.map { InvitationJSON($0) }])
    }

    @Sendable func invite(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let body = try await request.decodeStrict(MemberBody.self, context: context)
        let invitation = try await members.invite(by: context.identity, email: body.email, roleName: body.role)
        return try jsonResponse(["invitation": InvitationJSON(invitation)], status: .created)
    }

    @Sendable func withdraw(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await members.withdrawInvitation(by: context.identity, id: try Self.id(context))
        return Response(status: .noContent)
    }

    @Sendable func receivedInvitations(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let list = try await members.receivedInvitations(for: context.identity.user)
        return try jsonResponse([
            "invitations": list.map { InvitationJSON($0.invitation, tenant: $0.tenant, invitedBy: $0.inviterEmail) }
        ])
    }

    @Sendable func accept(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let membership = try await members.accept(by: context.identity, id: try Self.id(context))
        return try jsonResponse(["tenant": TenantJSON(membership)])
    }

    @Sendable func decline(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await members.decline(by: context.identity, id: try Self.id(context))
        return Response(status: .noContent)
    }

    private static func id(_ context: AuthenticatedContext) throws -> UUID {
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else {
            throw PlatformError.notFound("Invitation")
        }
        return id
    }
}
