import Foundation
import Hummingbird
import Logging
import Notify
import PlatformCore
import Storage

/// Registration, login, sessions and user API tokens: the rules of who may act as whom.
struct AccountService: Sendable {
    let store: any PlatformStore
    let hasher: PasswordHasher
    let passwordPolicy: PasswordPolicy
    let clock: any WallClock
    let sessionIdleTimeoutSeconds: Double
    /// A session ends this long after login however active it is.
    let sessionLifetimeSeconds: Double
    let cookies: SessionCookies
    /// Disabled tenants: their sessions and tokens stop working and nobody logs in to them.
    let gate: TenantGate
    /// Sends password-reset links; nil when the server has no mail configured.
    let mailer: (any Mailer)?
    let mailFrom: String
    let publicURL: String
    let logger: Logger
    /// How long a password-reset link works.
    static let resetLifetimeSeconds: Double = 3600
    init(
        configuration: PlatformConfiguration, store: any PlatformStore, gate: TenantGate = TenantGate(),
        clock: any WallClock, logger: Logger = Logger(label: "thermostat")
    ) throws {
        self.store = store
        self.gate = gate
        self.logger = logger
        mailFrom = configuration.mailFrom
        publicURL = configuration.effectivePublicURL
        if let url = configuration.smtpURL {
            do {
                mailer = SMTPMailer(configuration: try SMTPConfiguration(url: url))
            } catch {
                throw ConfigurationError(variable: "THERMOSTAT_SMTP_URL", message: "\(error)")
            }
            guard MailMessage.isAddress(configuration.mailFrom) else {
                throw ConfigurationError(variable: "THERMOSTAT_MAIL_FROM", message: "must be an email address")
            }
        } else {
            mailer = nil
        }
        hasher = PasswordHasher(cost: configuration.bcryptCost)
        passwordPolicy = PasswordPolicy(commonPasswords: try CommonPasswords.load())
        self.clock = clock
        sessionIdleTimeoutSeconds = configuration.sessionIdleTimeoutSeconds
        sessionLifetimeSeconds = configuration.sessionLifetimeSeconds
        cookies = SessionCookies(secure: configuration.isProduction)
    }

    /// Sessions record activity at most this often, so reads do not each cost a write.
    static let touchIntervalSeconds: Double = 60

    /// Creates a user who owns a new tenant, and a session for them.
    func register(email rawEmail: String, password: String, tenantName: String?) async throws
        -> (Membership, User, sessionToken: String)
    {
        let email = try IdentifierRules.normalizedEmail(rawEmail)
        try passwordPolicy.validate(password, email: email)
        let name = tenantName?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let displayName = try IdentifierRules.validName(
            name.isEmpty ? String(email.split(separator: "@")[0]) : name, field: "tenant_name")
        let now = clock.now()
        let user = User(
            id: UUID(), email: email, passwordHash: try await hasher.hash(password), isPlatformAdmin: false,
            createdAt: now)
        let tenant = Tenant(
            id: UUID(), slug: IdentifierRules.slug(from: displayName), name: displayName, tier: "free", createdAt: now)
        let membership = try await store.createAccount(user: user, tenant: tenant)
        let token = try await startSession(userID: user.id, tenantID: membership.tenant.id)
        return (membership, user, token)
    }

    /// Checks credentials with the same work for known and unknown emails; one generic error.
    func login(email rawEmail: String, password: String) async throws -> (Membership, User, sessionToken: String) {
        let email = (try? IdentifierRules.normalizedEmail(rawEmail)) ?? ""
        let user = email.isEmpty ? nil : try await store.user(email: email)
        guard try await hasher.verify(password, hash: user?.passwordHash), let user else {
            throw PlatformError.invalidCredentials
        }
        let memberships = try await store.memberships(userID: user.id)
        guard !memberships.isEmpty else { throw PlatformError.invalidCredentials }
        guard let membership = memberships.first(where: { !gate.isDisabled($0.tenant.id) }) else {
            throw PlatformError.tenantDisabled
        }
        let token = try await startSession(userID: user.id, tenantID: membership.tenant.id)
        return (membership, user, token)
    }

    /// Moves a signed-in person to another of their tenants: a new session for that tenant
    /// replaces `identity`'s (a slug they do not belong to is a 404, like any other tenant's).
    func switchTenant(_ identity: Identity, toSlug slug: String) async throws -> (Membership, sessionToken: String) {
        try identity.requireSession()
        guard case .session(let oldHash) = identity.credential else { throw PlatformError.unauthenticated }
        guard let membership = try await store.memberships(userID: identity.user.id).first(where: { $0.tenant.slug == slug })
        else { throw PlatformError.notFound("Tenant") }
        if gate.isDisabled(membership.tenant.id) { throw PlatformError.tenantDisabled }
        let token = try await startSession(userID: identity.user.id, tenantID: membership.tenant.id)
        try await store.deleteSession(tokenHash: oldHash)
        return (membership, token)
    }

    /// Mails a password-reset link when `email` has an account. The answer is the same either
    /// way, and the mail goes out after it, so neither its content nor its timing tells whether
    /// the address has an account.
    func requestPasswordReset(email rawEmail: String) async throws {
        guard let mailer else {
            throw PlatformError(
                .unavailable, code: "mail_not_configured",
                message: "Password reset by email is not set up on this server; ask its operator")
        }
        guard let email = try? IdentifierRules.normalizedEmail(rawEmail), let user = try await store.user(email: email) else {
            return
        }
        let token = Secrets.generate(prefix: Secrets.passwordResetPrefix)
        let now = clock.now()
        try await store.createPasswordReset(
            tokenHash: Secrets.hash(token), userID: user.id, at: now, expiresAt: now.adding(seconds: Self.resetLifetimeSeconds))
        let message = MailMessage(
            from: mailFrom, to: [user.email], subject: "Reset your ThermostatRTOS password",
            text: """
                Someone (hopefully you) asked to reset the password of \(user.email).

                To choose a new one, open this link within an hour:
                \(publicURL)/reset-password?token=\(token)

                If it was not you, ignore this mail: your password stays as it is.
                """)
        let logger = logger
        Task {
            do {
                try await mailer.send(message)
            } catch {
                logger.error("password reset mail failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Sets a new password with a reset token (used up, whatever happens next); every session
    /// of the user ends.
    func resetPassword(token: String, newPassword: String) async throws {
        let invalid = PlatformError(
            .validation, code: "invalid_reset_token", message: "This reset link is invalid, used or expired; ask for a new one",
            field: "token")
        guard token.utf8.count <= 128,
            let userID = try await store.consumePasswordReset(tokenHash: Secrets.hash(token), now: clock.now()),
            let user = try await store.user(id: userID)
        else { throw invalid }
        try passwordPolicy.validate(newPassword, email: user.email, field: "new_password")
        try await store.changePassword(userID: user.id, passwordHash: try await hasher.hash(newPassword), keptSessionHash: nil)
    }

    /// Changes the signed-in person's password after checking the current one; every other
    /// session of theirs ends (the one making the change stays).
    func changePassword(_ identity: Identity, current: String, new password: String) async throws {
        try identity.requireSession()
        guard try await hasher.verify(current, hash: identity.user.passwordHash) else {
            throw PlatformError.invalid("current_password", "is not your current password", code: "wrong_password")
        }
        try passwordPolicy.validate(password, email: identity.user.email, field: "new_password")
        var keptSession: String?
        if case .session(let hash) = identity.credential { keptSession = hash }
        try await store.changePassword(
            userID: identity.user.id, passwordHash: try await hasher.hash(password), keptSessionHash: keptSession)
    }

    private func startSession(userID: UUID, tenantID: UUID) async throws -> String {
        let token = Secrets.generate(prefix: Secrets.sessionPrefix)
        let now = clock.now()
        try await store.createSession(
            Session(tokenHash: Secrets.hash(token), userID: userID, tenantID: tenantID, createdAt: now, lastSeenAt: now))
        return token
    }

    func endSession(token: String) async throws {
        try await store.deleteSession(tokenHash: Secrets.hash(token))
    }

    /// The identity behind a session cookie, or nil when it is unknown, idle too long or older
    /// than the session lifetime (an expired session is deleted).
    func identity(sessionToken token: String) async throws -> Identity? {
        let hash = Secrets.hash(token)
        guard let session = try await store.session(tokenHash: hash) else { return nil }
        let now = clock.now()
        let idle = now.secondsSinceEpoch - session.lastSeenAt.secondsSinceEpoch
        let age = now.secondsSinceEpoch - session.createdAt.secondsSinceEpoch
        if idle > sessionIdleTimeoutSeconds || age > sessionLifetimeSeconds {
            try await store.deleteSession(tokenHash: hash)
            return nil
        }
        guard let identity = try await identity(userID: session.userID, tenantID: session.tenantID, .session(tokenHash: hash))
        else { return nil }
        if idle > Self.touchIntervalSeconds {
            try await store.touchSession(tokenHash: hash, at: now)
        }
        return identity
    }

    /// The identity behind a user API token, or nil when it is unknown, revoked or expired. A
    /// `read` token acts with at most a viewer's rights.
    func identity(apiToken token: String) async throws -> Identity? {
        guard let stored = try await store.apiToken(tokenHash: Secrets.hash(token)), stored.revokedAt == nil else {
            return nil
        }
        let now = clock.now()
        if let expiry = stored.expiresAt, now >= expiry { return nil }
        if stored.lastUsedAt.map({ now.secondsSinceEpoch - $0.secondsSinceEpoch > Self.touchIntervalSeconds }) ?? true {
            try await store.touchAPIToken(id: stored.id, at: now)
        }
        guard var identity = try await identity(userID: stored.userID, tenantID: stored.tenantID, .apiToken(id: stored.id))
        else { return nil }
        if stored.scope == .read { identity.role = min(identity.role, .viewer) }
        return identity
    }

    private func identity(userID: UUID, tenantID: UUID, _ credential: Identity.Credential) async throws -> Identity? {
        if gate.isDisabled(tenantID) { throw PlatformError.tenantDisabled }
        guard let user = try await store.user(id: userID),
            let membership = try await store.membership(userID: userID, tenantID: tenantID)
        else { return nil }
        return Identity(user: user, tenant: membership.tenant, role: membership.role, credential: credential)
    }

    /// The longest a token may be made to last.
    static let maximumTokenLifetimeDays = 3650

    /// Creates a user API token; returns it with its secret, shown this once. Only a person
    /// signed in with a session creates tokens: a token cannot mint more of itself.
    func createAPIToken(for identity: Identity, name: String, scope: TokenScope, expiresInDays: Int?) async throws
        -> (APIToken, secret: String)
    {
        try identity.requireSession()
        let name = try IdentifierRules.validName(name, field: "name")
        if let days = expiresInDays, !(1...Self.maximumTokenLifetimeDays).contains(days) {
            throw PlatformError.invalid("expires_in_days", "must be from 1 to \(Self.maximumTokenLifetimeDays)")
        }
        let secret = Secrets.generate(prefix: Secrets.apiTokenPrefix)
        let now = clock.now()
        let token = APIToken(
            id: UUID(), tenantID: identity.tenant.id, userID: identity.user.id, name: name,
            tokenHash: Secrets.hash(secret), createdAt: now, scope: scope,
            expiresAt: expiresInDays.map { now.adding(seconds: Double($0) * 86_400) })
        try await store.createAPIToken(token)
        return (token, secret)
    }

    /// Creates a platform operator with a tenant of their own.
    func createPlatformAdmin(email rawEmail: String, password: String) async throws -> User {
        let email = try IdentifierRules.normalizedEmail(rawEmail)
        try passwordPolicy.validate(password, email: email)
        let now = clock.now()
        let user = User(
            id: UUID(), email: email, passwordHash: try await hasher.hash(password), isPlatformAdmin: true,
            createdAt: now)
        let tenant = Tenant(id: UUID(), slug: "operators", name: "Operators", tier: "pro", createdAt: now)
        _ = try await store.createAccount(user: user, tenant: tenant)
        return user
    }
}
