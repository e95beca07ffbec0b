import Foundation
import Logging
import Notify
import PlatformCore
import ServiceLifecycle
import Storage

/// One-shot administrative tasks for the CLI, each opening the store, doing its work and
/// closing it again.
public struct Operations: Sendable {
    let configuration: PlatformConfiguration
    let logger: Logger

    public init(configuration: PlatformConfiguration) {
        self.configuration = configuration
        var logger = Logger(label: "thermostat")
        logger.logLevel = .warning
        self.logger = logger
    }

    public func migrate() async throws -> [Int] {
        try await withStore { store in try await store.migrate() }
    }

    public func createPlatformAdmin(email: String, password: String) async throws -> User {
        try await withStore { store in
            try await store.migrate()
            let accounts = try AccountService(configuration: configuration, store: store, clock: SystemClock())
            return try await accounts.createPlatformAdmin(email: email, password: password)
        }
    }

    public func setTier(slug: String, tier: String) async throws {
        let tiers = try configuration.loadCatalog().policies.keys.sorted()
        guard tiers.contains(tier) else {
            throw PlatformError.invalid("tier", "must be one of the tiers in Policies/: \(tiers.joined(separator: ", "))")
        }
        try await withStore { store in
            try await store.migrate()
            guard let tenant = try await store.tenant(slug: slug) else { throw PlatformError.notFound("Tenant") }
            try await store.setTier(tenantID: tenant.id, tier: tier)
        }
    }

    /// Runs `body` while the store's service runs, then stops the store.
    private func withStore<Result: Sendable>(_ body: @Sendable (any PlatformStore) async throws -> Result) async throws
        -> Result
    {
        let store = try StoreFactory.open(
            databaseURL: configuration.databaseURL, logger: logger, timeBound: .seconds(configuration.databaseTimeoutSeconds))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            return try await body(store)
        }
    }
}

/// What `thermostat check --deploy` reports.
public struct DeploymentFinding: Sendable {
    public enum Severity: String, Sendable {
        case warning
        case error
    }

    public var severity: Severity
    public var message: String
}

/// Checks a configuration for settings that are unsafe in production: the one check behind
/// both `thermostat check --deploy` and the refusal of `thermostat serve` to start in
/// production on a blocking finding.
public enum DeploymentCheck {
    public static func run(_ configuration: PlatformConfiguration, deploy: Bool) -> [DeploymentFinding] {
        var findings: [DeploymentFinding] = []
        let severity: DeploymentFinding.Severity = deploy ? .error : .warning
        if let secret = configuration.secretKey {
            if secret.utf8.count < 32 {
                findings.append(.init(severity: severity, message: "THERMOSTAT_SECRET_KEY is shorter than 32 characters."))
            } else if looksLikePlaceholder(secret) {
                findings.append(
                    .init(
                        severity: severity,
                        message: "THERMOSTAT_SECRET_KEY looks like a placeholder, not a random key (it signs the dashboard's CSRF tokens); generate one with `openssl rand -base64 48`."))
            }
        } else {
            findings.append(.init(severity: severity, message: "THERMOSTAT_SECRET_KEY is not set."))
        }
        if configuration.environment != .production {
            findings.append(.init(severity: severity, message: "THERMOSTAT_ENV is development; set it to production."))
        }
        if !configuration.effectivePublicURL.hasPrefix("https://") {
            findings.append(
                .init(severity: severity, message: "The public URL (THERMOSTAT_PUBLIC_URL) is not https://; cookies and keys would cross the network in clear."))
        }
        if !configuration.databaseURL.hasPrefix("postgres") {
            findings.append(.init(severity: .warning, message: "SQLite is in use; PostgreSQL is recommended in production."))
        } else if let problem = plaintextFallback(databaseURL: configuration.databaseURL) {
            findings.append(.init(severity: severity, message: problem))
        }
        if let url = configuration.smtpURL {
            if let smtp = try? SMTPConfiguration(url: url) {
                let encrypted = smtp.url.hasPrefix("smtps://") || smtp.startTLS == .required
                if smtp.username != nil, !encrypted {
                    findings.append(
                        .init(
                            severity: severity,
                            message: "THERMOSTAT_SMTP_URL sends credentials without TLS; use smtps:// or ?starttls=required."))
                }
            }
        } else {
            findings.append(
                .init(severity: .warning, message: "THERMOSTAT_SMTP_URL is not set: no password-reset mail, no alert mail."))
        }
        if configuration.adminEmail != nil, configuration.smtpURL == nil {
            findings.append(.init(severity: .warning, message: "THERMOSTAT_ADMIN_EMAIL is set but mail is not (THERMOSTAT_SMTP_URL)."))
        }
        if configuration.bcryptCost < 10 {
            findings.append(.init(severity: severity, message: "THERMOSTAT_BCRYPT_COST is below 10."))
        }
        if configuration.trustedProxies == 0, isLoopback(configuration.host), configuration.isProduction {
            findings.append(
                .init(
                    severity: .warning,
                    message: "The server listens on loopback only, so it is probably behind a reverse proxy, but THERMOSTAT_TRUSTED_PROXIES is 0: every client would share the proxy's rate limits."))
        }
        if configuration.trustedProxies > 0, !isLoopback(configuration.host) {
            findings.append(
                .init(
                    severity: .warning,
                    message: "THERMOSTAT_TRUSTED_PROXIES is \(configuration.trustedProxies) and the server listens on \(configuration.host): a client that reaches it without the proxies can forge X-Forwarded-For. Let only the proxy connect."))
        }
        return findings
    }

    /// Throws when `serve` must not start: in production, on anything `check --deploy` rejects.
    public static func requireServable(_ configuration: PlatformConfiguration) throws {
        guard configuration.isProduction else { return }
        let blocking = run(configuration, deploy: true).filter { $0.severity == .error }
        guard blocking.isEmpty else {
            throw DeploymentRefused(findings: blocking)
        }
    }

    /// Why a `postgres://` URL may talk to a remote server in clear, or nil. PostgresNIO (like
    /// libpq) treats a missing `sslmode` as `prefer`, which silently falls back to plaintext when
    /// the server (or someone in between) does not offer TLS; `allow` and `disable` likewise.
    static func plaintextFallback(databaseURL: String) -> String? {
        guard let components = URLComponents(string: databaseURL) else {
            return "DATABASE_URL is not a valid URL."
        }
        let query = Dictionary(
            (components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        if let socketDirectory = query["host"], socketDirectory.hasPrefix("/") { return nil }
        let host = components.host ?? "127.0.0.1"
        guard !isLoopback(host) else { return nil }
        let mode = query["sslmode"]
        guard let mode, ["require", "verify-ca", "verify-full"].contains(mode) else {
            return "DATABASE_URL reaches \(host) with \(mode.map { "sslmode=\($0)" } ?? "no sslmode") and may fall back to plaintext; add sslmode=verify-full (or require)."
        }
        return nil
    }

    static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return bare == "localhost" || bare == "::1" || bare.hasPrefix("127.")
    }

    /// A secret made of few distinct characters or of a placeholder word was not generated.
    static func looksLikePlaceholder(_ secret: String) -> Bool {
        let lowered = secret.lowercased()
        let words = ["change", "secret", "example", "placeholder", "default", "password", "xxxx", "1234"]
        return Set(secret.unicodeScalars).count < 12 || words.contains { lowered.contains($0) }
    }
}

/// `serve` refused to start in production; the description lists what `check --deploy` rejects.
public struct DeploymentRefused: Error, CustomStringConvertible {
    public var findings: [DeploymentFinding]

    public var description: String {
        (["Refusing to serve in production; `thermostat check --deploy` reports:"]
            + findings.map { "ERROR: \($0.message)" }).joined(separator: "\n")
    }
}
