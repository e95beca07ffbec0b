import Foundation
import PlatformCore
import Storage

/// Who belongs to a tenant, and the rules for changing it, shared by the JSON API and the
/// dashboard: only owners and admins manage members, nobody grants a role above their own or
/// changes the role of someone above them, and the last owner cannot be demoted.
struct MemberService: Sendable {
    let store: any PlatformStore
    let clock: any WallClock

    func members(tenantID: UUID) async throws -> [(User, Role)] {
        try await store.members(tenantID: tenantID)
    }

    /// Adds the user with `email` to the caller's tenant with `roleName`, or changes their role.
    func setMember(by identity: Identity, email rawEmail: String, roleName: String) async throws -> (User, Role) {
        guard identity.role.canAdminister else {
            throw PlatformError(.forbidden, code: "forbidden", message: "Only owners and admins manage members")
        }
        guard let role = Role(rawValue: roleName) else {
            throw PlatformError.invalid("role", "must be one of owner, admin, member, viewer", code: "invalid_enum")
        }
        guard role <= identity.role else {
            throw PlatformError(.forbidden, code: "forbidden", message: "You cannot grant a role above your own", field: "role")
        }
        let email = try IdentifierRules.normalizedEmail(rawEmail)
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
        return (user, role)
    }
}
