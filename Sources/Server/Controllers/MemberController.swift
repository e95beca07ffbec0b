import Foundation
import Hummingbird
import PlatformCore
import Storage

/// `/api/tenant/members/`: who belongs to the caller's tenant, and (owners and admins) adding
/// an existing user or changing a member's role. Nobody can give a role above their own, and
/// the last owner cannot be demoted.
struct MemberController {
    let store: any PlatformStore
    let clock: any WallClock

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

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("", use: list)
        group.post("", use: setMember)
    }

    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let members = try await store.members(tenantID: context.identity.tenant.id)
        return try jsonResponse(ListJSON(members: members.map { MemberJSON(user: UserJSON($0.0), role: $0.1.rawValue) }))
    }

    @Sendable func setMember(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let identity = context.identity
        guard identity.role.canAdminister else {
            throw PlatformError(.forbidden, code: "forbidden", message: "Only owners and admins manage members")
        }
        let body = try await request.decodeStrict(MemberBody.self, context: context)
        guard let role = Role(rawValue: body.role) else {
            throw PlatformError.invalid("role", "must be one of owner, admin, member, viewer", code: "invalid_enum")
        }
        guard role <= identity.role else {
            throw PlatformError(.forbidden, code: "forbidden", message: "You cannot grant a role above your own", field: "role")
        }
        let email = try IdentifierRules.normalizedEmail(body.email)
        guard let user = try await store.user(email: email) else { throw PlatformError.notFound("User") }
        let members = try await store.members(tenantID: identity.tenant.id)
        if let current = members.first(where: { $0.0.id == user.id })?.1 {
            guard current <= identity.role else {
                throw PlatformError(.forbidden, code: "forbidden", message: "You cannot change the role of someone above you")
            }
        }
        guard try await store.setMembership(tenantID: identity.tenant.id, userID: user.id, role: role, at: clock.now()) else {
            throw PlatformError.conflict("A tenant needs at least one owner", field: "role")
        }
        return try jsonResponse(MemberJSON(user: UserJSON(user), role: role.rawValue))
    }
}
