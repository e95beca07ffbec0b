import Foundation
import Hummingbird
import PlatformCore
import Storage

/// `/api/tenant/members/`: who belongs to the caller's tenant, and (owners and admins) adding
/// an existing user or changing a member's role, by `MemberService`'s rules.
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

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("", use: list)
        group.post("", use: setMember)
    }

    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let list = try await members.members(tenantID: context.identity.tenant.id)
        return try jsonResponse(ListJSON(members: list.map { MemberJSON(user: UserJSON($0.0), role: $0.1.rawValue) }))
    }

    @Sendable func setMember(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let body = try await request.decodeStrict(MemberBody.self, context: context)
        let (user, role) = try await members.setMember(by: context.identity, email: body.email, roleName: body.role)
        return try jsonResponse(MemberJSON(user: UserJSON(user), role: role.rawValue))
    }
}
