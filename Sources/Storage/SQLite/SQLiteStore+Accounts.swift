import Foundation
import GRDB
import PlatformCore

extension SQLiteStore: AccountStore {
    public func createAccount(user: User, tenant: Tenant) async throws -> Membership {
        try await pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE email = ?", arguments: [user.email]) != nil {
                throw PlatformError.conflict("An account with this email already exists", field: "email")
            }
            var tenant = tenant
            tenant.slug = try Self.freeSlug(tenant.slug, in: db)
            try db.execute(
                sql: "INSERT INTO tenants (id, slug, name, tier, created_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [tenant.id.databaseText, tenant.slug, tenant.name, tenant.tier, tenant.createdAt.microseconds])
            try db.execute(
                sql: "INSERT INTO users (id, email, password_hash, is_platform_admin, created_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [
                    user.id.databaseText, user.email, user.passwordHash, user.isPlatformAdmin, user.createdAt.microseconds,
                ])
            try db.execute(
                sql: "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES (?, ?, ?, ?)",
                arguments: [tenant.id.databaseText, user.id.databaseText, Role.owner.rawValue, user.createdAt.microseconds])
            return Membership(tenant: tenant, userID: user.id, role: .owner)
        }
    }

    private static func freeSlug(_ base: String, in db: Database) throws -> String {
        var candidate = base
        var suffix = 2
        while try Bool.fetchOne(db, sql: "SELECT 1 FROM tenants WHERE slug = ?", arguments: [candidate]) != nil {
            candidate = "\(base)-\(suffix)"
            suffix += 1
        }
        return candidate
    }

    public func user(email: String) async throws -> User? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE email = ?", arguments: [email]).map(Self.user(from:))
        }
    }

    public func user(id: UUID) async throws -> User? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE id = ?", arguments: [id.databaseText]).map(Self.user(from:))
        }
    }

    private static func user(from row: Row) -> User {
        User(
            id: row.uuid("id"), email: row["email"], passwordHash: row["password_hash"],
            isPlatformAdmin: row["is_platform_admin"], createdAt: row.timestamp("created_at"))
    }

    public func setPlatformAdmin(userID: UUID, _ isAdmin: Bool) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE users SET is_platform_admin = ? WHERE id = ?", arguments: [isAdmin, userID.databaseText])
        }
    }

    private static let membershipSelect = """
        SELECT t.id, t.slug, t.name, t.tier, t.created_at, m.user_id, m.role
        FROM memberships m JOIN tenants t ON t.id = m.tenant_id
        """

    private static func membership(from row: Row) -> Membership {
        Membership(
            tenant: Tenant(
                id: row.uuid("id"), slug: row["slug"], name: row["name"], tier: row["tier"],
                createdAt: row.timestamp("created_at")),
            userID: row.uuid("user_id"), role: Role(rawValue: row["role"]) ?? .viewer)
    }

    public func memberships(userID: UUID) async throws -> [Membership] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: Self.membershipSelect + " WHERE m.user_id = ? ORDER BY m.created_at",
                arguments: [userID.databaseText]
            ).map(Self.membership(from:))
        }
    }

    public func membership(userID: UUID, tenantID: UUID) async throws -> Membership? {
        try await pool.read { db in
            try Row.fetchOne(
                db, sql: Self.membershipSelect + " WHERE m.user_id = ? AND m.tenant_id = ?",
                arguments: [userID.databaseText, tenantID.databaseText]
            ).map(Self.membership(from:))
        }
    }

    public func tenant(slug: String) async throws -> Tenant? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM tenants WHERE slug = ?", arguments: [slug]).map(Self.tenant(from:))
        }
    }

    public func tenant(id: UUID) async throws -> Tenant? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM tenants WHERE id = ?", arguments: [id.databaseText]).map(Self.tenant(from:))
        }
    }

    private static func tenant(from row: Row) -> Tenant {
        Tenant(
            id: row.uuid("id"), slug: row["slug"], name: row["name"], tier: row["tier"], createdAt: row.timestamp("created_at"))
    }

    @discardableResult
    public func setMembership(tenantID: UUID, userID: UUID, role: Role, at time: Timestamp) async throws -> Bool {
        // One writer at a time: the check and the change cannot interleave with another's.
        try await pool.write { db in
            if role != .owner {
                let owners = try String.fetchAll(
                    db, sql: "SELECT user_id FROM memberships WHERE tenant_id = ? AND role = 'owner'",
                    arguments: [tenantID.databaseText])
                if owners == [userID.databaseText] { return false }
            }
            try db.execute(
                sql: """
                    INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role
                    """,
                arguments: [tenantID.databaseText, userID.databaseText, role.rawValue, time.microseconds])
            return true
        }
    }

    public func members(tenantID: UUID) async throws -> [(User, Role)] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT u.*, m.role FROM memberships m JOIN users u ON u.id = m.user_id
                    WHERE m.tenant_id = ? ORDER BY m.created_at
                    """,
                arguments: [tenantID.databaseText]
            ).map { (Self.user(from: $0), Role(rawValue: $0["role"]) ?? .viewer) }
        }
    }

    public func setTier(tenantID: UUID, tier: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE tenants SET tier = ? WHERE id = ?", arguments: [tier, tenantID.databaseText])
        }
    }

    public func createSession(_ session: Session) async throws {
        try await pool.write { db in
            try db.execute(
                sql:
                    "INSERT INTO sessions (token_hash, tenant_id, user_id, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [
                    session.tokenHash, session.tenantID.databaseText, session.userID.databaseText,
                    session.createdAt.microseconds, session.lastSeenAt.microseconds,
                ])
        }
    }

    public func session(tokenHash: String) async throws -> Session? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE token_hash = ?", arguments: [tokenHash]).map { row in
                Session(
                    tokenHash: row["token_hash"], userID: row.uuid("user_id"), tenantID: row.uuid("tenant_id"),
                    createdAt: row.timestamp("created_at"), lastSeenAt: row.timestamp("last_seen_at"))
            }
        }
    }

    public func touchSession(tokenHash: String, at time: Timestamp) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", arguments: [time.microseconds, tokenHash])
        }
    }

    public func deleteSession(tokenHash: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM sessions WHERE token_hash = ?", arguments: [tokenHash])
        }
    }

    public func createPasswordReset(tokenHash: String, userID: UUID, at time: Timestamp, expiresAt: Timestamp) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                arguments: [tokenHash, userID.databaseText, time.microseconds, expiresAt.microseconds])
        }
    }

    public func consumePasswordReset(tokenHash: String, now: Timestamp) async throws -> UUID? {
        try await pool.write { db in
            let row = try Row.fetchOne(
                db, sql: "SELECT user_id, expires_at FROM password_resets WHERE token_hash = ?", arguments: [tokenHash])
            try db.execute(sql: "DELETE FROM password_resets WHERE token_hash = ?", arguments: [tokenHash])
            guard let row, row.timestamp("expires_at") > now else { return nil }
            return row.uuid("user_id")
        }
    }

    public func changePassword(userID: UUID, passwordHash: String, keptSessionHash: String?) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE users SET password_hash = ? WHERE id = ?", arguments: [passwordHash, userID.databaseText])
            try db.execute(
                sql: "DELETE FROM sessions WHERE user_id = ? AND token_hash IS NOT ?",
                arguments: [userID.databaseText, keptSessionHash])
        }
    }

    public func deleteSessions(idleSince cutoff: Timestamp) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM sessions WHERE last_seen_at < ?", arguments: [cutoff.microseconds])
            return db.changesCount
        }
    }

    public func createAPIToken(_ token: APIToken) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO api_tokens (tenant_id, id, user_id, name, token_hash, created_at, scope, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    token.tenantID.databaseText, token.id.databaseText, token.userID.databaseText, token.name,
                    token.tokenHash, token.createdAt.microseconds, token.scope.rawValue, token.expiresAt?.microseconds,
                ])
        }
    }

    private static func apiToken(from row: Row) -> APIToken {
        APIToken(
            id: row.uuid("id"), tenantID: row.uuid("tenant_id"), userID: row.uuid("user_id"), name: row["name"],
            tokenHash: row["token_hash"], createdAt: row.timestamp("created_at"),
            lastUsedAt: row.optionalTimestamp("last_used_at"), revokedAt: row.optionalTimestamp("revoked_at"),
            scope: TokenScope(rawValue: row["scope"]) ?? .read, expiresAt: row.optionalTimestamp("expires_at"))
    }

    public func apiToken(tokenHash: String) async throws -> APIToken? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM api_tokens WHERE token_hash = ?", arguments: [tokenHash])
                .map(Self.apiToken(from:))
        }
    }

    public func apiTokens(tenantID: UUID, userID: UUID) async throws -> [APIToken] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM api_tokens WHERE tenant_id = ? AND user_id = ? ORDER BY created_at",
                arguments: [tenantID.databaseText, userID.databaseText]
            ).map(Self.apiToken(from:))
        }
    }

    public func revokeAPIToken(tenantID: UUID, userID: UUID, id: UUID, at time: Timestamp) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE api_tokens SET revoked_at = ?
                    WHERE tenant_id = ? AND user_id = ? AND id = ? AND revoked_at IS NULL
                    """,
                arguments: [time.microseconds, tenantID.databaseText, userID.databaseText, id.databaseText])
            return db.changesCount > 0
        }
    }

    public func touchAPIToken(id: UUID, at time: Timestamp) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE api_tokens SET last_used_at = ? WHERE id = ?", arguments: [time.microseconds, id.databaseText])
        }
    }
}

extension SQLiteStore {
    private static func invitation(from row: Row) -> Invitation {
        Invitation(
            id: row.uuid("id"), tenantID: row.uuid("tenant_id"), email: row["email"],
            role: Role(rawValue: row["role"]) ?? .viewer, invitedBy: row.uuid("invited_by"),
            createdAt: row.timestamp("created_at"), expiresAt: row.timestamp("expires_at"))
    }

    public func saveInvitation(_ invitation: Invitation) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "DELETE FROM invitations WHERE tenant_id = ? AND email = ?",
                arguments: [invitation.tenantID.databaseText, invitation.email])
            try db.execute(
                sql: """
                    INSERT INTO invitations (tenant_id, id, email, role, invited_by, created_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    invitation.tenantID.databaseText, invitation.id.databaseText, invitation.email,
                    invitation.role.rawValue, invitation.invitedBy.databaseText, invitation.createdAt.microseconds,
                    invitation.expiresAt.microseconds,
                ])
        }
    }

    public func invitations(tenantID: UUID) async throws -> [Invitation] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM invitations WHERE tenant_id = ? ORDER BY created_at",
                arguments: [tenantID.databaseText]
            ).map(Self.invitation(from:))
        }
    }

    public func invitations(email: String, now: Timestamp) async throws -> [ReceivedInvitation] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT i.*, t.slug AS tenant_slug, t.name AS tenant_name, t.tier AS tenant_tier,
                        t.created_at AS tenant_created_at, u.email AS inviter_email
                    FROM invitations i JOIN tenants t ON t.id = i.tenant_id JOIN users u ON u.id = i.invited_by
                    WHERE i.email = ? AND i.expires_at > ? ORDER BY i.created_at
                    """,
                arguments: [email, now.microseconds]
            ).map { row in
                let invitation = Self.invitation(from: row)
                return ReceivedInvitation(
                    invitation: invitation,
                    tenant: Tenant(
                        id: invitation.tenantID, slug: row["tenant_slug"], name: row["tenant_name"],
                        tier: row["tenant_tier"], createdAt: row.timestamp("tenant_created_at")),
                    inviterEmail: row["inviter_email"])
            }
        }
    }

    public func deleteInvitation(tenantID: UUID, id: UUID) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "DELETE FROM invitations WHERE tenant_id = ? AND id = ?",
                arguments: [tenantID.databaseText, id.databaseText])
            return db.changesCount > 0
        }
    }

    public func declineInvitation(id: UUID, email: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "DELETE FROM invitations WHERE id = ? AND email = ?", arguments: [id.databaseText, email])
            return db.changesCount > 0
        }
    }

    public func acceptInvitation(id: UUID, email: String, userID: UUID, at time: Timestamp) async throws -> Membership? {
        let tenantID: UUID? = try await pool.write { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM invitations WHERE id = ? AND email = ? AND expires_at > ?",
                    arguments: [id.databaseText, email, time.microseconds])
            else { return nil }
            let invitation = Self.invitation(from: row)
            try db.execute(
                sql: """
                    INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (tenant_id, user_id) DO NOTHING
                    """,
                arguments: [
                    invitation.tenantID.databaseText, userID.databaseText, invitation.role.rawValue, time.microseconds,
                ])
            try db.execute(
                sql: "DELETE FROM invitations WHERE tenant_id = ? AND id = ?",
                arguments: [invitation.tenantID.databaseText, id.databaseText])
            return invitation.tenantID
        }
        guard let tenantID else { return nil }
        return try await membership(userID: userID, tenantID: tenantID)
    }
}
