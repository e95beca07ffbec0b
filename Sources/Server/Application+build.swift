import Foundation
import Hummingbird
import Logging
import Notify
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
    let assets = try await WebAssets.load(configuration)
    let platform = try Platform(
        configuration: configuration, store: store, assets: assets, clock: clock, logger: logger)
    var app = Application(
        router: platform.router(),
        server: configuration.httpServer,
        configuration: ApplicationConfiguration(
            address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        logger: logger)
    // The shutdown monitor comes first so that the service group stops it last (see its comment).
    app.addServices(
        platform.shutdownMonitor, store, platform.writer, platform.sessionSweeper, platform.workers, platform.usageJob,
        platform.storageJobs, platform.alertDeliveries, platform.alertEvaluator, platform.digest)
    app.beforeServerStarts {
        let applied = try await store.migrate()
        if !applied.isEmpty {
            logger.info("applied migrations", metadata: ["versions": "\(applied)", "backend": "\(store.backendName)"])
        }
        platform.schema.open()
    }
    return PlatformApplication(inner: app, shutdownMonitor: platform.shutdownMonitor, liveEvents: platform.events)
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
    let events: TelemetryBroadcast
    let devices: DeviceService
    let members: MemberService
    let scriptService: ScriptService
    let exports: ExportService
    let quotas: QuotaService
    let usageJob: TenantUsageJob
    let schema = SchemaReadiness()
    let retention: RetentionJob
    let downsampling: DownsampleJob
    let storageJobs: StorageJobs
    let digest: OperatorDigest
    let alertDeliveries: AlertDeliveryService
    let alertEvaluator: AlertEvaluator
    let alerts: AlertService
    let assets: WebAssets
    let csrf: CSRFProtection

    init(
        configuration: PlatformConfiguration, store: any PlatformStore, assets: WebAssets, clock: any WallClock,
        logger: Logger
    ) throws {
        self.configuration = configuration
        self.store = store
        self.clock = clock
        self.assets = assets
        csrf = CSRFProtection(secretKey: configuration.secretKey)
        events = TelemetryBroadcast()
        let gate = TenantGate()
        accounts = try AccountService(configuration: configuration, store: store, gate: gate, clock: clock, logger: logger)
        catalog = try configuration.loadCatalog()
        workers = LuaWorkerPool(configuration: try configuration.luaWorkerPool(), logger: logger)
        scripts = ScriptEngine(
            store: store, workers: workers,
            policiesDirectory: try PlatformConfiguration.locateFolder(
                configuration.policiesDirectory, variable: "THERMOSTAT_POLICIES_DIR"),
            clock: clock, logger: logger)
        quotas = QuotaService(store: store, scripts: scripts, gate: gate, clock: clock)
        credentials = DeviceCredentialCache(store: store, clock: clock)
        digest = OperatorDigest(
            mailer: accounts.mailer, from: configuration.mailFrom, recipient: configuration.adminEmail,
            period: .seconds(configuration.adminDigestSeconds), clock: clock, logger: logger)
        alertDeliveries = AlertDeliveryService(
            store: store, mailer: accounts.mailer, mailFrom: configuration.mailFrom, webhooks: HTTPWebhookSender(),
            isProduction: configuration.isProduction, clock: clock,
            maximumAttempts: configuration.deliveryAttempts, retryBaseSeconds: Double(configuration.deliveryRetrySeconds),
            schema: schema, logger: logger)
        alertEvaluator = AlertEvaluator(
            store: store, engine: scripts, catalog: catalog, deliveries: alertDeliveries, digest: digest, gate: gate,
            clock: clock, schema: schema,
            timerPeriod: .seconds(configuration.alertTimerSeconds), publicURL: configuration.effectivePublicURL, logger: logger)
        alerts = AlertService(
            store: store, catalog: catalog, deliveries: alertDeliveries, evaluator: alertEvaluator, clock: clock, isProduction: configuration.isProduction,
            publicURL: configuration.effectivePublicURL)
        writer = GroupCommitWriter(
            store: store, clock: clock, logger: logger,
            maximumConcurrentCommits: store.backendName == "sqlite" ? 1 : 4,
            requestTimeBound: .seconds(configuration.databaseTimeoutSeconds),
            // A backstop for any backend: PostgreSQL's own bound fires first and closes the
            // connection; this one holds even for a store call that never returns.
            commitTimeBound: .seconds(configuration.databaseTimeoutSeconds + 2),
            events: TelemetryFanOut(targets: [events, quotas, alertEvaluator]))
        requests = InFlightRequests()
        shutdownMonitor = ShutdownMonitor(
            drainTime: .seconds(configuration.shutdownDrainSeconds), requests: requests, writer: writer, logger: logger)
        devices = DeviceService(
            store: store, credentials: credentials, quotas: quotas, clock: clock, configuration: configuration)
        members = MemberService(
            store: store, clock: clock,
            invitationLimiter: RateLimiter(limit: configuration.invitationsPerHour, periodSeconds: 3600, clock: clock))
        scriptService = ScriptService(
            store: store, catalog: catalog, engine: scripts, clock: clock,
            trialLimiter: RateLimiter(limit: configuration.scriptTrialsPerMinute, periodSeconds: 60, clock: clock))
        exports = ExportService(store: store, catalog: catalog, engine: scripts, clock: clock)
        sessionSweeper = SessionSweeper(
            store: store, clock: clock, idleTimeoutSeconds: configuration.sessionIdleTimeoutSeconds, logger: logger)
        usageJob = TenantUsageJob(quotas: quotas, schema: schema, digest: digest, logger: logger)
        let storage = StorageJobEnvironment(store: store, quotas: quotas, clock: clock, logger: logger)
        retention = RetentionJob(environment: storage)
        downsampling = DownsampleJob(environment: storage)
        storageJobs = StorageJobs(
            retention: retention, downsampling: downsampling, period: .seconds(configuration.retentionIntervalSeconds),
            digest: digest, logger: logger)
    }

    func router() -> Router<AppRequestContext> {
        let router = Router(context: AppRequestContext.self)
        router.add(middleware: InFlightRequestsMiddleware(requests: requests))
        router.add(
            middleware: RequestGuardMiddleware(
                allowedOrigin: configuration.effectivePublicURL, isProduction: configuration.isProduction, digest: digest))
        HealthController(
            store: store, startedAt: .now, commits: writer.health, shutdown: shutdownMonitor,
            pingTimeout: min(HealthController.pingTimeout, .seconds(configuration.databaseTimeoutSeconds))
        ).addRoutes(to: router)

        let clientAddress = ClientAddressResolver(trustedProxies: configuration.trustedProxies)
        let authLimits = AuthController.Limits(
            register: RateLimiter(limit: configuration.registerRatePerHour, periodSeconds: 3600, clock: clock),
            login: RateLimiter(limit: configuration.loginRatePerMinute, periodSeconds: 60, clock: clock),
            loginPerAccount: RateLimiter(
                limit: configuration.loginRatePerAccountPerHour, periodSeconds: 3600, clock: clock))
        addAPIRoutes(to: router, clientAddress: clientAddress, authLimits: authLimits)
        addDashboardRoutes(to: router, clientAddress: clientAddress, authLimits: authLimits)
        return router
    }

    /// `/api/…`: JSON in and out.
    private func addAPIRoutes(
        to router: Router<AppRequestContext>, clientAddress: ClientAddressResolver, authLimits: AuthController.Limits
    ) {
        let api = router.group("api").add(middleware: JSONWritesMiddleware())
        let telemetry = TelemetryController(
            store: store, credentials: credentials, writer: writer, scripts: scripts, events: events, quotas: quotas,
            deviceLimiter: RateLimiter(limit: configuration.telemetryRatePerMinute, periodSeconds: 60, clock: clock),
            authFailureLimiter: RateLimiter(
                limit: configuration.deviceAuthFailuresPerMinute, periodSeconds: 60, clock: clock),
            clientAddress: clientAddress, clock: clock)
        telemetry.addIngestRoute(to: api.group("telemetry"))

        let users = api.group().add(middleware: AuthenticationMiddleware(accounts: accounts))
        AuthController(
            accounts: accounts, limits: authLimits, clientAddress: clientAddress
        ).addRoutes(to: users.group("auth"))
        let authenticated = users.group(context: AuthenticatedContext.self)
        DeviceController(devices: devices, store: store, clock: clock, configuration: configuration)
            .addRoutes(to: authenticated.group("devices"))
        telemetry.addQueryRoutes(to: authenticated.group("telemetry"))
        ExportController(exports: exports).addRoutes(to: authenticated.group("telemetry"))
        TierController(
            store: store, quotas: quotas, scripts: scripts, retention: retention, downsampling: downsampling, clock: clock)
            .addRoutes(usage: authenticated.group("usage"), admin: authenticated.group("admin/tenants"))
        TokenController(accounts: accounts, store: store, clock: clock).addRoutes(to: authenticated.group("tokens"))
        MemberController(members: members).addRoutes(
            members: authenticated.group("tenant/members"), invitations: authenticated.group("tenant/invitations"),
            received: authenticated.group("auth/invitations"))
        ScriptController(scripts: scriptService, clock: clock)
            .addRoutes(scripts: authenticated.group("scripts"), plugins: authenticated.group("plugins"))
        AlertController(alerts: alerts).addRoutes(to: authenticated.group("alerts"))
    }

    /// The dashboard: HTML pages with form posts, and its static files.
    private func addDashboardRoutes(
        to router: Router<AppRequestContext>, clientAddress: ClientAddressResolver, authLimits: AuthController.Limits
    ) {
        StaticFileController(assets: assets).addRoutes(to: router)
        let pages = PageRenderer(assets: assets, csrf: csrf, store: store)
        let web = router.group().add(middleware: WebMiddleware(accounts: accounts, pages: pages))
        SessionPages(accounts: accounts, pages: pages, limits: authLimits, clientAddress: clientAddress)
            .addRoutes(to: web)
        let signedIn = web.group(context: AuthenticatedContext.self)
        DevicePages(devices: devices, alerts: alerts, pages: pages).addRoutes(to: signedIn)
        AlertPages(alerts: alerts, devices: devices, members: members, pages: pages, clock: clock).addRoutes(to: signedIn)
        ScriptPages(scripts: scriptService, devices: devices, pages: pages, clock: clock).addRoutes(to: signedIn)
        ExportPages(exports: exports, devices: devices, pages: pages).addRoutes(to: signedIn)
        AccountPages(accounts: accounts, limits: authLimits, members: members, store: store, pages: pages, clock: clock)
            .addRoutes(to: signedIn)
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
