import Foundation
import Hummingbird
import Logging
import PlatformCore
import ScriptWorkers
import Scripting
import ServiceLifecycle
import Storage

/// Builds the whole platform for a configuration: the one wiring used by `thermostat serve`
/// and by the tests. Pending migrations run before the server accepts connections.
public func buildApplication(
    configuration: PlatformConfiguration,
    store: (any PlatformStore)? = nil,
    clock: any WallClock = SystemClock(),
    logger: Logger? = nil
) async throws -> some ApplicationProtocol {
    let logger = {
        var logger = logger ?? Logger(label: "thermostat")
        logger.logLevel = configuration.logLevel
        return logger
    }()
    let store = try store
        ?? StoreFactory.open(
            databaseURL: configuration.databaseURL, logger: logger,
            timeBound: .seconds(configuration.databaseTimeoutSeconds))
    let platform = try Platform(configuration: configuration, store: store, clock: clock, logger: logger)
    var app = Application(
        router: platform.router(),
        server: configuration.httpServer,
        configuration: ApplicationConfiguration(
            address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        logger: logger)
    // The shutdown monitor comes first so that the service group stops it last (see its comment).
    app.addServices(platform.shutdownMonitor, store, platform.writer, platform.sessionSweeper, platform.workers)
    app.beforeServerStarts {
        let applied = try await store.migrate()
        if !applied.isEmpty {
            logger.info("applied migrations", metadata: ["versions": "\(applied)", "backend": "\(store.backendName)"])
        }
    }
    return PlatformApplication(inner: app, shutdownMonitor: platform.shutdownMonitor)
}

/// The parts of a running platform and how they connect.
struct Platform {
    let configuration: PlatformConfiguration
    let store: any PlatformStore
    let clock: any WallClock
    let accounts: AccountService
    let credentials: DeviceCredentialCache
    let writer: GroupCommitWriter
    let requests: InFlightRequests
    let shutdownMonitor: ShutdownMonitor
    let sessionSweeper: SessionSweeper
    let catalog: PluginCatalog
    let workers: LuaWorkerPool
    let scripts: ScriptEngine

    init(configuration: PlatformConfiguration, store: any PlatformStore, clock: any WallClock, logger: Logger) throws {
        self.configuration = configuration
        self.store = store
        self.clock = clock
        accounts = AccountService(
            store: store, hasher: PasswordHasher(cost: configuration.bcryptCost),
            passwordPolicy: PasswordPolicy(commonPasswords: try CommonPasswords.load()), clock: clock,
            sessionIdleTimeoutSeconds: configuration.sessionIdleTimeoutSeconds)
        credentials = DeviceCredentialCache(store: store, clock: clock)
        writer = GroupCommitWriter(
            store: store, clock: clock, logger: logger,
            maximumConcurrentCommits: store.backendName == "sqlite" ? 1 : 4,
            requestTimeBound: .seconds(configuration.databaseTimeoutSeconds),
            // A backstop for any backend: PostgreSQL's own bound fires first and closes the
            // connection; this one holds even for a store call that never returns.
            commitTimeBound: .seconds(configuration.databaseTimeoutSeconds + 2))
        requests = InFlightRequests()
        shutdownMonitor = ShutdownMonitor(
            drainTime: .seconds(configuration.shutdownDrainSeconds), requests: requests, writer: writer, logger: logger)
        catalog = try configuration.loadCatalog()
        workers = LuaWorkerPool(configuration: try configuration.luaWorkerPool(), logger: logger)
        scripts = ScriptEngine(store: store, workers: workers, clock: clock, logger: logger)
        sessionSweeper = SessionSweeper(
            store: store, clock: clock, idleTimeoutSeconds: configuration.sessionIdleTimeoutSeconds, logger: logger)
    }

    func router() -> Router<AppRequestContext> {
        let router = Router(context: AppRequestContext.self)
        router.add(middleware: InFlightRequestsMiddleware(requests: requests))
        router.add(
            middleware: RequestGuardMiddleware(
                allowedOrigin: configuration.effectivePublicURL, isProduction: configuration.isProduction))
        HealthController(
            store: store, startedAt: .now, commits: writer.health, shutdown: shutdownMonitor,
            pingTimeout: min(HealthController.pingTimeout, .seconds(configuration.databaseTimeoutSeconds))
        ).addRoutes(to: router)

        let clientAddress = ClientAddressResolver(trustedProxies: configuration.trustedProxies)
        let telemetry = TelemetryController(
            store: store, credentials: credentials, writer: writer, scripts: scripts,
            deviceLimiter: RateLimiter(limit: configuration.telemetryRatePerMinute, periodSeconds: 60, clock: clock),
            authFailureLimiter: RateLimiter(
                limit: configuration.deviceAuthFailuresPerMinute, periodSeconds: 60, clock: clock),
            clientAddress: clientAddress, clock: clock)
        telemetry.addIngestRoute(to: router.group("api/telemetry"))

        let api = router.group("api").add(middleware: AuthenticationMiddleware(accounts: accounts))
        AuthController(
            accounts: accounts,
            registerLimiter: RateLimiter(limit: configuration.registerRatePerHour, periodSeconds: 3600, clock: clock),
            loginLimiter: RateLimiter(limit: configuration.loginRatePerMinute, periodSeconds: 60, clock: clock),
            accountLoginLimiter: RateLimiter(
                limit: configuration.loginRatePerAccountPerHour, periodSeconds: 3600, clock: clock),
            secureCookies: configuration.isProduction, clientAddress: clientAddress
        ).addRoutes(to: api.group("auth"))
        let authenticated = api.group(context: AuthenticatedContext.self)
        DeviceController(store: store, credentials: credentials, clock: clock, configuration: configuration)
            .addRoutes(to: authenticated.group("devices"))
        telemetry.addQueryRoute(to: authenticated.group("telemetry"))
        TokenController(accounts: accounts, store: store, clock: clock).addRoutes(to: authenticated.group("tokens"))
        MemberController(store: store, clock: clock).addRoutes(to: authenticated.group("tenant/members"))
        ScriptController(
            store: store, catalog: catalog, engine: scripts, clock: clock,
            trialLimiter: RateLimiter(limit: configuration.scriptTrialsPerMinute, periodSeconds: 60, clock: clock))
            .addRoutes(scripts: authenticated.group("scripts"), plugins: authenticated.group("plugins"))
        return router
    }
}

/// Deletes idle sessions every few minutes so the table does not grow without bound.
struct SessionSweeper: Service {
    let store: any PlatformStore
    let clock: any WallClock
    let idleTimeoutSeconds: Double
    let logger: Logger

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(300))
                do {
                    _ = try await store.deleteSessions(idleSince: clock.now().adding(seconds: -idleTimeoutSeconds))
                } catch {
                    logger.warning("session sweep failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// The bundled list of the most common passwords, refused at registration.
enum CommonPasswords {
    static func load() throws -> Set<String> {
        guard let url = Bundle.module.url(forResource: "common-passwords", withExtension: "txt") else {
            throw ConfigurationError(variable: "common-passwords.txt", message: "is missing from the bundle")
        }
        let text = try String(contentsOf: url, encoding: .utf8)
        return Set(text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) })
    }
}
