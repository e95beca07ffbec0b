import Foundation
import Logging
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
            let accounts = AccountService(
                store: store, hasher: PasswordHasher(cost: configuration.bcryptCost),
                passwordPolicy: PasswordPolicy(commonPasswords: try CommonPasswords.load()), clock: SystemClock(),
                sessionIdleTimeoutSeconds: configuration.sessionIdleTimeoutSeconds)
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

/// Checks a configuration for settings that are unsafe in production.
public enum DeploymentCheck {
    public static func run(_ configuration: PlatformConfiguration, deploy: Bool) -> [DeploymentFinding] {
        var findings: [DeploymentFinding] = []
        let severity: DeploymentFinding.Severity = deploy ? .error : .warning
        if let secret = configuration.secretKey {
            if secret.utf8.count < 32 {
                findings.append(.init(severity: severity, message: "THERMOSTAT_SECRET_KEY is shorter than 32 characters."))
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
        }
        if configuration.bcryptCost < 10 {
            findings.append(.init(severity: severity, message: "THERMOSTAT_BCRYPT_COST is below 10."))
        }
        return findings
    }
}
