import Foundation
import PlatformCore
import Storage

/// Who belongs to a tenant, and the rules for changing it, shared by the JSON API and the
/// dashboard. People join only by accepting an invitation sent to their email address; no
/// answer tells the inviter whether that address has an account. Only owners and admins invite
/// and change roles, nobody grants a role above their own or changes the role of someone above
/// them, and the last owner cannot be demoted.
struct MemberService: Sendable {
    let store: any PlatformStore
    let clock: any WallClock
    /// Invitations each tenant may send per hour.
    let invitationLimiter: RateLimiter
    /// How long an invitation stays valid.
    static let invitationLifetimeSeconds: Double = 7 * 86_400

    func members(tenantID: UUID) async throws -> [(User, Role)] {
        try await store.members(tenantID: tenantID)
    }

    /// Changes the role of a member of the caller's tenant, found by email.
    func setRole(by identity: Identity, email rawEmail: String, roleName: String) async throws -> (User, Role) {
        let role = try Self.grantableRole(roleName, by: identity)
        let email = try IdentifierRules.normalizedEmail(rawEmail)
        let members = try await store.members(tenantID: identity.tenant.id)
        guard let (user, current) = members.first(where: { $0.0.email == email }) else {
            throw PlatformError(
                .notFound, code: "not_a_member",
                message: "No member of this tenant has that email address; send an invitation instead", field: "email")
        }
        guard current <= identity.role else {
            throw PlatformError(.forbidden, code: "forbidden", message: "You cannot change the role of someone above you")
        }
        guard try await store.setMembership(tenantID: identity.tenant.id, userID: user.id, role: role, at: clock.now()) else {
            throw PlatformError.conflict("A tenant needs at least one owner", field: "role")
        }
        return (user, role)
    }

    /// Invites `email` to the caller's tenant with `roleName` (a pending invitation to the same
    /// address is replaced). The answer is the same whether or not the address has an account.
    func invite(by identity: Identity, email rawEmail: String, roleName: String) async throws -> Invitation {
        let role = try Self.grantableRole(roleName, by: identity)
        let email = try IdentifierRules.normalizedEmail(rawEmail)
        if try await store.members(tenantID: identity.tenant.id).contains(where: { $0.0.email == email }) {
            throw PlatformError.conflict("That address already belongs to a member of this tenant", field: "email")
        }
        try invitationLimiter.acquire(identity.tenant.id.uuidString)
        let now = clock.now()
        let invitation = Invitation(
            id: UUID(), tenantID: identity.tenant.id, email: email, role: role, invitedBy: identity.user.id,
            createdAt: now, expiresAt: now.adding(seconds: Self.invitationLifetimeSeconds))
        try await store.saveInvitation(invitation)
        return invitation
    }

    func invitations(by identity: Identity) async throws -> [Invitation] {
        try requireAdministrator(identity)
        return try await store.invitations(tenantID: identity.tenant.id)
    }

    func withdrawInvitation(by identity: Identity, id: UUID) async throws {
        try requireAdministrator(identity)
        guard try await store.deleteInvitation(tenantID: identity.tenant.id, id: id) else {
            throw PlatformError.notFound("Invitation")
        }
    }

    /// The unexpired invitations addressed to the signed-in person.
    func receivedInvitations(for user: User) async throws -> [ReceivedInvitation] {
        try await store.invitations(email: user.email, now: clock.now())
    }

    /// Joins the invitation's tenant with its role. Needs a login session: joining a tenant is
    /// the person's decision, not a token's.
    func accept(by identity: Identity, id: UUID) async throws -> Membership {
        try requireSession(identity)
        guard let membership = try await store.acceptInvitation(
            id: id, email: identity.user.email, userID: identity.user.id, at: clock.now())
        else { throw PlatformError.notFound("Invitation") }
        return membership
    }

    func decline(by identity: Identity, id: UUID) async throws {
        try requireSession(identity)
        guard try await store.declineInvitation(id: id, email: identity.user.email) else {
            throw PlatformError.notFound("Invitation")
        }
    }

    private static func grantableRole(_ name: String, by identity: Identity) throws -> Role {
        guard identity.role.canAdminister else {
            throw PlatformError(.forbidden, code: "forbidden", message: "Only owners and admins manage members")
        }
        guard let role = Role(rawValue: name) else {
            throw PlatformError.invalid("role", "must be one of owner, admin, member, viewer", code: "invalid_enum")
        }
        guard role <= identity.role else {
            throw PlatformError(.forbidden, code: "forbidden", message: "You cannot grant a role above your own", field: "role")
        }
        return role
    }

    private func requireAdministrator(_ identity: Identity) throws {
        guard identity.role.canAdminister else {
            throw PlatformError(.forbidden, code: "forbidden", message: "Only owners and admins manage members")
        }
    }

    private func requireSession(_ identity: Identity) throws {
        try identity.requireSession()
    }
}
