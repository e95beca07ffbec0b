import Foundation

/// A customer organisation; every tenant-owned row carries its id.
public struct Tenant: Sendable, Equatable, Codable {
    public var id: UUID
    public var slug: String
    public var name: String
    /// The storage tier (`free`, `standard`, `pro`, …) a platform admin assigned.
    public var tier: String
    public var createdAt: Timestamp

    public init(id: UUID, slug: String, name: String, tier: String, createdAt: Timestamp) {
        self.id = id
        self.slug = slug
        self.name = name
        self.tier = tier
        self.createdAt = createdAt
    }
}

/// A person who can log in. `passwordHash` is a bcrypt hash, never the password.
public struct User: Sendable, Equatable {
    public var id: UUID
    public var email: String
    public var passwordHash: String
    public var isPlatformAdmin: Bool
    public var createdAt: Timestamp

    public init(id: UUID, email: String, passwordHash: String, isPlatformAdmin: Bool, createdAt: Timestamp) {
        self.id = id
        self.email = email
        self.passwordHash = passwordHash
        self.isPlatformAdmin = isPlatformAdmin
        self.createdAt = createdAt
    }
}

/// What a member may do inside a tenant.
public enum Role: String, Sendable, Codable, CaseIterable, Comparable {
    case viewer
    case member
    case admin
    case owner

    /// Viewers read; everyone else may change devices and data.
    public var canWrite: Bool { self != .viewer }

    /// Owners and admins manage scripts, members and settings.
    public var canAdminister: Bool { self == .owner || self == .admin }

    private var rank: Int {
        switch self {
        case .viewer: 0
        case .member: 1
        case .admin: 2
        case .owner: 3
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }
}

/// A user's place in a tenant.
public struct Membership: Sendable, Equatable {
    public var tenant: Tenant
    public var userID: UUID
    public var role: Role

    public init(tenant: Tenant, userID: UUID, role: Role) {
        self.tenant = tenant
        self.userID = userID
        self.role = role
    }
}

/// An invitation to join a tenant with a role, addressed to an email address. The invitee sees
/// it after logging in with that address and accepts or declines it; nothing tells the inviter
/// whether the address has an account.
public struct Invitation: Sendable, Equatable {
    public var id: UUID
    public var tenantID: UUID
    /// Normalised (see `IdentifierRules.normalizedEmail`).
    public var email: String
    public var role: Role
    public var invitedBy: UUID
    public var createdAt: Timestamp
    public var expiresAt: Timestamp

    public init(
        id: UUID, tenantID: UUID, email: String, role: Role, invitedBy: UUID, createdAt: Timestamp, expiresAt: Timestamp
    ) {
        self.id = id
        self.tenantID = tenantID
        self.email = email
        self.role = role
        self.invitedBy = invitedBy
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

/// An invitation as its invitee sees it: which tenant, and who invited them.
public struct ReceivedInvitation: Sendable, Equatable {
    public var invitation: Invitation
    public var tenant: Tenant
    public var inviterEmail: String

    public init(invitation: Invitation, tenant: Tenant, inviterEmail: String) {
        self.invitation = invitation
        self.tenant = tenant
        self.inviterEmail = inviterEmail
    }
}

/// A server-side login session. Only the SHA-256 of the cookie token is stored.
public struct Session: Sendable, Equatable {
    public var tokenHash: String
    public var userID: UUID
    public var tenantID: UUID
    public var createdAt: Timestamp
    public var lastSeenAt: Timestamp

    public init(tokenHash: String, userID: UUID, tenantID: UUID, createdAt: Timestamp, lastSeenAt: Timestamp) {
        self.tokenHash = tokenHash
        self.userID = userID
        self.tenantID = tenantID
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
    }
}

/// A long-lived bearer token for scripts and the CLI, acting as its user in one tenant.
/// What a user API token may do: `read` only reads, `write` acts with its user's role.
public enum TokenScope: String, Sendable, Codable, CaseIterable {
    case read
    case write
}

/// A user API token (Bearer) for scripts and the command line, stored as a hash.
public struct APIToken: Sendable, Equatable {
    public var id: UUID
    public var tenantID: UUID
    public var userID: UUID
    public var name: String
    public var tokenHash: String
    public var createdAt: Timestamp
    public var lastUsedAt: Timestamp?
    public var revokedAt: Timestamp?
    /// What the token may do; a `read` token acts with at most a viewer's rights.
    public var scope: TokenScope
    /// After this the token no longer works; nil never expires.
    public var expiresAt: Timestamp?

    public init(
        id: UUID, tenantID: UUID, userID: UUID, name: String, tokenHash: String, createdAt: Timestamp,
        lastUsedAt: Timestamp? = nil, revokedAt: Timestamp? = nil, scope: TokenScope = .write, expiresAt: Timestamp? = nil
    ) {
        self.scope = scope
        self.expiresAt = expiresAt
        self.id = id
        self.tenantID = tenantID
        self.userID = userID
        self.name = name
        self.tokenHash = tokenHash
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.revokedAt = revokedAt
    }
}
