import Foundation
import PlatformCore
import PostgresNIO

extension PostgresStore: AccountStore {
    public func createAccount(user: User, tenant: Tenant) async throws -> Membership {
        let logger = logger
        return try await transaction("create account") { connection in
            let existing = try await connection.query(
                "SELECT 1 FROM users WHERE email = \(user.email) FOR UPDATE", logger: logger)
            for try await _ in existing {
                throw PlatformError.conflict("An account with this email already exists", field: "email")
            }
            var tenant = tenant
            var candidate = tenant.slug
            var suffix = 2
            while try await connection.query("SELECT 1 FROM tenants WHERE slug = \(candidate)", logger: logger)
                .decode(Int.self).first(where: { _ in true }) != nil
            {
                candidate = "\(tenant.slug)-\(suffix)"
                suffix += 1
            }
            tenant.slug = candidate
            try await connection.query(
                """
                INSERT INTO tenants (id, slug, name, tier, created_at)
                VALUES (\(tenant.id), \(tenant.slug), \(tenant.name), \(tenant.tier), \(tenant.createdAt))
                """, logger: logger)
            do {
                try await connection.query(
                    """
                    INSERT INTO users (id, email, password_hash, is_platform_admin, created_at)
                    VALUES (\(user.id), \(user.email), \(user.passwordHash), \(user.isPlatformAdmin), \(user.createdAt))
                    """, logger: logger)
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
                throw PlatformError.conflict("An account with this email already exists", field: "email")
            }
            try await connection.query(
                """
                INSERT INTO memberships (tenant_id, user_id, role, created_at)
                VALUES (\(tenant.id), \(user.id), \(Role.owner.rawValue), \(user.createdAt))
                """, logger: logger)
            return Membership(tenant: tenant, userID: user.id, role: .owner)
        }
    }

    private static func user(_ row: (UUID, String, String, Bool, Timestamp)) -> User {
        User(id: row.0, email: row.1, passwordHash: row.2, isPlatformAdmin: row.3, createdAt: row.4)
    }

    public func user(email: String) async throws -> User? {
        try await rows(
            "SELECT id, email, password_hash, is_platform_admin, created_at FROM users WHERE email = \(email)",
            as: (UUID, String, String, Bool, Timestamp).self
        ).first.map(Self.user)
    }

    public func user(id: UUID) async throws -> User? {
        try await rows(
            "SELECT id, email, password_hash, is_platform_admin, created_at FROM users WHERE id = \(id)",
            as: (UUID, String, String, Bool, Timestamp).self
        ).first.map(Self.user)
    }

    public func setPlatformAdmin(userID: UUID, _ isAdmin: Bool) async throws {
        try await execute("UPDATE users SET is_platform_admin = \(isAdmin) WHERE id = \(userID)")
    }

    private typealias MembershipRow = (UUID, String, String, String, Timestamp, UUID, String)

    private static func membership(_ row: MembershipRow) -> Membership {
        Membership(
            tenant: Tenant(id: row.0, slug: row.1, name: row.2, tier: row.3, createdAt: row.4),
            userID: row.5, role: Role(rawValue: row.6) ?? .viewer)
    }

    public func memberships(userID: UUID) async throws -> [Membership] {
        try await rows(
            """
            SELECT t.id, t.slug, t.name, t.tier, t.created_at, m.user_id, m.role
            FROM memberships m JOIN tenants t ON t.id = m.tenant_id
            WHERE m.user_id = \(userID) ORDER BY m.created_at
            """, as: MembershipRow.self
        ).map(Self.membership)
    }

    public func membership(userID: UUID, tenantID: UUID) async throws -> Membership? {
        try await rows(
            """
            SELECT t.id, t.slug, t.name, t.tier, t.created_at, m.user_id, m.role
            FROM memberships m JOIN tenants t ON t.id = m.tenant_id
            WHERE m.user_id = \(userID) AND m.tenant_id = \(tenantID)
            """, as: MembershipRow.self
        ).first.map(Self.membership)
    }

    public func tenant(slug: String) async throws -> Tenant? {
        try await rows(
            "SELECT id, slug, name, tier, created_at FROM tenants WHERE slug = \(slug)",
            as: (UUID, String, String, String, Timestamp).self
        ).first.map { Tenant(id: $0.0, slug: $0.1, name: $0.2, tier: $0.3, createdAt: $0.4) }
    }

    @discardableResult
    public func setMembership(tenantID: UUID, userID: UUID, role: Role, at time: Timestamp) async throws -> Bool {
        let logger = logger
        return try await transaction("set membership") { connection in
            if role != .owner {
                // Locking the owners makes concurrent demotions wait for each other, so the
                // second one sees the first one's result.
                var owners: [UUID] = []
                let rows = try await connection.query(
                    "SELECT user_id FROM memberships WHERE tenant_id = \(tenantID) AND role = 'owner' FOR UPDATE", logger: logger)
                for try await owner in rows.decode(UUID.self) { owners.append(owner) }
                if owners == [userID] { return false }
            }
            try await connection.query(
                """
                INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES (\(tenantID), \(userID), \(role.rawValue), \(time))
                ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role
                """, logger: logger)
            return true
        }
    }

    public func members(tenantID: UUID) async throws -> [(User, Role)] {
        try await rows(
            """
            SELECT u.id, u.email, u.password_hash, u.is_platform_admin, u.created_at, m.role
            FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = \(tenantID) ORDER BY m.created_at
            """, as: (UUID, String, String, Bool, Timestamp, String).self
        ).map { (Self.user(($0.0, $0.1, $0.2, $0.3, $0.4)), Role(rawValue: $0.5) ?? .viewer) }
    }

    public func tenant(id: UUID) async throws -> Tenant? {
        try await rows(
            "SELECT id, slug, name, tier, created_at FROM tenants WHERE id = \(id)",
            as: (UUID, String, String, String, Timestamp).self
        ).first.map { Tenant(id: $0.0, slug: $0.1, name: $0.2, tier: $0.3, createdAt: $0.4) }
    }

    public func setTier(tenantID: UUID, tier: String) async throws {
        try await execute("UPDATE tenants SET tier = \(tier) WHERE id = \(tenantID)")
    }

    public func createSession(_ session: Session) async throws {
        try await execute(
            """
            INSERT INTO sessions (token_hash, tenant_id, user_id, created_at, last_seen_at)
            VALUES (\(session.tokenHash), \(session.tenantID), \(session.userID), \(session.createdAt),
                \(session.lastSeenAt))
            """)
    }

    public func session(tokenHash: String) async throws -> Session? {
        try await rows(
            """
            SELECT token_hash, user_id, tenant_id, created_at, last_seen_at FROM sessions
            WHERE token_hash = \(tokenHash)
            """, as: (String, UUID, UUID, Timestamp, Timestamp).self
        ).first.map { Session(tokenHash: $0.0, userID: $0.1, tenantID: $0.2, createdAt: $0.3, lastSeenAt: $0.4) }
    }

    public func touchSession(tokenHash: String, at time: Timestamp) async throws {
        try await execute(
            "UPDATE sessions SET last_seen_at = \(time) WHERE token_hash = \(tokenHash)")
    }

    public func deleteSession(tokenHash: String) async throws {
        try await execute("DELETE FROM sessions WHERE token_hash = \(tokenHash)")
    }

    public func createPasswordReset(tokenHash: String, userID: UUID, at time: Timestamp, expiresAt: Timestamp) async throws {
        try await execute(
            """
            INSERT INTO password_resets (token_hash, user_id, created_at, expires_at)
            VALUES (\(tokenHash), \(userID), \(time), \(expiresAt))
            """)
    }

    public func consumePasswordReset(tokenHash: String, now: Timestamp) async throws -> UUID? {
        let users: [UUID] = try await rows(
            "DELETE FROM password_resets WHERE token_hash = \(tokenHash) AND expires_at > \(now) RETURNING user_id",
            as: UUID.self)
        try await execute("DELETE FROM password_resets WHERE token_hash = \(tokenHash)")
        return users.first
    }

    public func changePassword(userID: UUID, passwordHash: String, keptSessionHash: String?) async throws {
        let logger = logger
        try await transaction("change password") { connection in
            try await connection.query(
                "UPDATE users SET password_hash = \(passwordHash) WHERE id = \(userID)", logger: logger)
            try await connection.query(
                "DELETE FROM sessions WHERE user_id = \(userID) AND token_hash IS DISTINCT FROM \(keptSessionHash)",
                logger: logger)
        }
    }

    public func deleteSessions(idleSince cutoff: Timestamp) async throws -> Int {
        try await changedRows("DELETE FROM sessions WHERE last_seen_at < \(cutoff) RETURNING 1")
    }

    public func createAPIToken(_ token: APIToken) async throws {
        try await execute(
            """
            INSERT INTO api_tokens (tenant_id, id, user_id, name, token_hash, created_at, scope, expires_at)
            VALUES (\(token.tenantID), \(token.id), \(token.userID), \(token.name), \(token.tokenHash),
                \(token.createdAt), \(token.scope.rawValue), \(token.expiresAt))
            """)
    }

    private typealias TokenRow = (UUID, UUID, UUID, String, String, Timestamp, Timestamp?, Timestamp?, String, Timestamp?)

    private static let tokenColumns =
        "id, tenant_id, user_id, name, token_hash, created_at, last_used_at, revoked_at, scope, expires_at"

    private static func apiToken(_ row: TokenRow) -> APIToken {
        APIToken(
            id: row.0, tenantID: row.1, userID: row.2, name: row.3, tokenHash: row.4, createdAt: row.5,
            lastUsedAt: row.6, revokedAt: row.7, scope: TokenScope(rawValue: row.8) ?? .read, expiresAt: row.9)
    }

    public func apiToken(tokenHash: String) async throws -> APIToken? {
        try await rows(
            "SELECT \(unescaped: Self.tokenColumns) FROM api_tokens WHERE token_hash = \(tokenHash)", as: TokenRow.self
        ).first.map(Self.apiToken)
    }

    public func apiTokens(tenantID: UUID, userID: UUID) async throws -> [APIToken] {
        try await rows(
            """
            SELECT \(unescaped: Self.tokenColumns) FROM api_tokens
            WHERE tenant_id = \(tenantID) AND user_id = \(userID) ORDER BY created_at
            """, as: TokenRow.self
        ).map(Self.apiToken)
    }

    public func revokeAPIToken(tenantID: UUID, userID: UUID, id: UUID, at time: Timestamp) async throws -> Bool {
        try await changedRows(
            """
            UPDATE api_tokens SET revoked_at = \(time)
            WHERE tenant_id = \(tenantID) AND user_id = \(userID) AND id = \(id) AND revoked_at IS NULL RETURNING 1
            """) > 0
    }

    public func touchAPIToken(id: UUID, at time: Timestamp) async throws {
        try await execute("UPDATE api_tokens SET last_used_at = \(time) WHERE id = \(id)")
    }
}

extension PostgresStore {
    private typealias InvitationRow = (UUID, UUID, String, String, UUID, Timestamp, Timestamp)

    private static let invitationColumns = "i.id, i.tenant_id, i.email, i.role, i.invited_by, i.created_at, i.expires_at"

    private static func invitation(_ row: InvitationRow) -> Invitation {
        Invitation(
            id: row.0, tenantID: row.1, email: row.2, role: Role(rawValue: row.3) ?? .viewer, invitedBy: row.4,
            createdAt: row.5, expiresAt: row.6)
    }

    public func saveInvitation(_ invitation: Invitation) async throws {
        let logger = logger
        try await transaction("save invitation") { connection in
            try await connection.query(
                "DELETE FROM invitations WHERE tenant_id = \(invitation.tenantID) AND email = \(invitation.email)",
                logger: logger)
            try await connection.query(
                """
                INSERT INTO invitations (tenant_id, id, email, role, invited_by, created_at, expires_at)
                VALUES (\(invitation.tenantID), \(invitation.id), \(invitation.email), \(invitation.role.rawValue),
                    \(invitation.invitedBy), \(invitation.createdAt), \(invitation.expiresAt))
                """, logger: logger)
        }
    }

    public func invitations(tenantID: UUID) async throws -> [Invitation] {
        try await rows(
            """
            SELECT \(unescaped: Self.invitationColumns) FROM invitations i
            WHERE i.tenant_id = \(tenantID) ORDER BY i.created_at
            """, as: InvitationRow.self
        ).map(Self.invitation)
    }

    public func invitations(email: String, now: Timestamp) async throws -> [ReceivedInvitation] {
        try await rows(
            """
            SELECT \(unescaped: Self.invitationColumns), t.slug, t.name, t.tier, t.created_at, u.email
            FROM invitations i JOIN tenants t ON t.id = i.tenant_id JOIN users u ON u.id = i.invited_by
            WHERE i.email = \(email) AND i.expires_at > \(now) ORDER BY i.created_at
            """,
            as: (UUID, UUID, String, String, UUID, Timestamp, Timestamp, String, String, String, Timestamp, String).self
        ).map { row in
            ReceivedInvitation(
                invitation: Self.invitation((row.0, row.1, row.2, row.3, row.4, row.5, row.6)),
                tenant: Tenant(id: row.1, slug: row.7, name: row.8, tier: row.9, createdAt: row.10), inviterEmail: row.11)
        }
    }

    public func deleteInvitation(tenantID: UUID, id: UUID) async throws -> Bool {
        try await changedRows("DELETE FROM invitations WHERE tenant_id = \(tenantID) AND id = \(id) RETURNING 1") > 0
    }

    public func declineInvitation(id: UUID, email: String) async throws -> Bool {
        try await changedRows("DELETE FROM invitations WHERE id = \(id) AND email = \(email) RETURNING 1") > 0
    }

    public func acceptInvitation(id: UUID, email: String, userID: UUID, at time: Timestamp) async throws -> Membership? {
        let logger = logger
        let tenantID: UUID? = try await transaction("accept invitation") { connection in
            let rows = try await connection.query(
                """
                DELETE FROM invitations WHERE id = \(id) AND email = \(email) AND expires_at > \(time)
                RETURNING tenant_id, role
                """, logger: logger)
            var found: (UUID, String)?
            for try await row in rows.decode((UUID, String).self) { found = row }
            guard let (tenantID, role) = found else { return nil }
            try await connection.query(
                """
                INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES (\(tenantID), \(userID), \(role), \(time))
                ON CONFLICT (tenant_id, user_id) DO NOTHING
                """, logger: logger)
            return tenantID
        }
        guard let tenantID else { return nil }
        return try await membership(userID: userID, tenantID: tenantID)
    }
}
