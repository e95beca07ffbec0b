import Foundation
import Logging
import Notify
import PlatformCore
import ScriptWorkers
import Scripting

/// Every setting of the server, read once from the environment and overridden by command-line
/// flags. The README documents each variable.
public struct PlatformConfiguration: Sendable {
    /// `development` relaxes nothing about security; it only marks a deployment as not ready for
    /// production (see `thermostat check --deploy`). `production` adds HSTS and Secure cookies.
    public enum Environment: String, Sendable {
        case development
        case production
    }

    public var host = "127.0.0.1"
    public var port = 8080
    public var databaseURL = "sqlite:./var/thermostat.sqlite"
    public var environment = Environment.development
    public var secretKey: String?
    /// The URL devices and browsers use to reach the platform; goes into provisioning URIs and is
    /// the accepted `Origin`. Defaults to `http://host:port`.
    public var publicURL: String?
    public var logLevel = Logger.Level.info
    /// bcrypt work factor (4…31).
    public var bcryptCost = 12
    public var sessionIdleTimeoutSeconds: Double = 9000
    /// A session ends this long after login, however active (the idle timeout ends it sooner).
    public var sessionLifetimeSeconds: Double = 604_800
    public var telemetryRatePerMinute = 60
    public var loginRatePerMinute = 5
    public var registerRatePerHour = 3
    /// How long a rotated-out device key keeps working.
    public var keyRotationGraceSeconds: Double = 86_400
    /// A device counts as online when it reported within this window.
    public var onlineWindowSeconds: Double = 300
    /// Built-in Lua plugins (`<name>/manifest.json` + `plugin.lua`).
    public var pluginsDirectory = "Plugins"
    /// Tier storage policies (`<tier>.lua`).
    public var policiesDirectory = "Policies"
    /// The dashboard's Mustache templates (`*.mustache`).
    public var templatesDirectory = "Templates"
    /// The dashboard's own static files (CSS, JavaScript), served under `/static/`.
    public var staticDirectory = "Public"
    /// Chart.js as Debian's `libjs-chart.js` installs it, served as `/static/chart.min.js`.
    public var chartJSPath = "/usr/share/javascript/chart.js/chart.min.js"
    /// How many reverse proxies in front of the server append to `X-Forwarded-For`. Rate limits
    /// count against the address the outermost of them saw (that many entries from the right);
    /// 0 means clients connect directly and the socket's peer is used.
    public var trustedProxies = 0
    /// Login attempts per account (normalised email) per hour, whatever address they come from.
    public var loginRatePerAccountPerHour = 20
    /// Failed device authentications per client address per minute before ingest answers 429.
    public var deviceAuthFailuresPerMinute = 30
    /// A connection with no request activity for this long is closed (a stalled body included).
    public var httpIdleTimeoutSeconds = 60
    /// The time a client has to send a complete request head, counted from when the connection
    /// opens or the previous response ends (so also how long an idle keep-alive connection stays).
    public var httpHeaderTimeoutSeconds = 10
    /// Lua worker processes that run tenant scripts; tenants are spread over them.
    public var luaWorkers = max(1, ProcessInfo.processInfo.activeProcessorCount)
    /// Hard wall-clock limit of one script call in a worker: a worker still running a call
    /// after it is killed and replaced.
    public var scriptDeadlineMilliseconds = 1000
    /// Address-space cap of each Lua worker process.
    public var luaWorkerMemoryMegabytes = 1024
    /// Outgoing mail (password resets, alert notifications): `smtp://[user:pass@]host:port[?starttls=…]` or
    /// `smtps://…`; nil turns mail off.
    public var smtpURL: String?
    /// The sender of outgoing mail.
    public var mailFrom = "thermostat@example.com"
    /// How often the alert timer runs: `timer = true` scripts on devices' newest samples,
    /// `no_data_seconds` checks, `for_seconds` promotions and reminders.
    public var alertTimerSeconds = 30
    /// Attempts at one notification before it is `failed` (a dead letter).
    public var deliveryAttempts = 6
    /// The first retry's delay; each further retry doubles it (with jitter, capped at an hour).
    public var deliveryRetrySeconds = 30
    /// Where unexpected server errors and failed background jobs are mailed, as a digest; nil
    /// mails nobody.
    public var adminEmail: String?
    /// The shortest time between two operator digests.
    public var adminDigestSeconds = 300
    /// How often the retention job deletes samples older than each tenant's `retention_days`.
    public var retentionIntervalSeconds = 600
    /// Member invitations each tenant may send per hour.
    public var invitationsPerHour = 20
    /// Dry-runs and uploads per tenant per minute (each runs the tenant's Lua).
    public var scriptTrialsPerMinute = 30
    /// The most one unit of database work may take (a query, or a telemetry transaction with its
    /// commit, connection lease included). Past it the request fails with 503 instead of waiting
    /// on a database that does not answer.
    public var databaseTimeoutSeconds = 10
    /// On SIGTERM/SIGINT, how long in-flight requests get to finish (their samples committed)
    /// before the ones still waiting are answered 503 and the process exits.
    public var shutdownDrainSeconds = 15

    public init() {}

    /// Reads `THERMOSTAT_*` and `DATABASE_URL` from `environment`. Throws on malformed values.
    public init(environment variables: [String: String]) throws {
        func integer(_ name: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let text = variables[name] else { return nil }
            guard let value = Int(text), range.contains(value) else {
                throw ConfigurationError(variable: name, message: "must be an integer in \(range)")
            }
            return value
        }
        if let host = variables["THERMOSTAT_HOST"] { self.host = host }
        if let port = try integer("THERMOSTAT_PORT", 0...65535) { self.port = port }
        if let url = variables["DATABASE_URL"] { databaseURL = url }
        if let name = variables["THERMOSTAT_ENV"] {
            guard let value = Environment(rawValue: name) else {
                throw ConfigurationError(variable: "THERMOSTAT_ENV", message: "must be development or production")
            }
            environment = value
        }
        secretKey = variables["THERMOSTAT_SECRET_KEY"]
        publicURL = variables["THERMOSTAT_PUBLIC_URL"]
        if let level = variables["THERMOSTAT_LOG_LEVEL"] {
            guard let value = Logger.Level(rawValue: level) else {
                throw ConfigurationError(variable: "THERMOSTAT_LOG_LEVEL", message: "must be trace, debug, info, notice, warning, error or critical")
            }
            logLevel = value
        }
        if let cost = try integer("THERMOSTAT_BCRYPT_COST", 4...31) { bcryptCost = cost }
        if let seconds = try integer("THERMOSTAT_SESSION_IDLE_SECONDS", 60...2_592_000) {
            sessionIdleTimeoutSeconds = Double(seconds)
        }
        if let seconds = try integer("THERMOSTAT_SESSION_LIFETIME_SECONDS", 300...31_536_000) {
            sessionLifetimeSeconds = Double(seconds)
        }
        if let rate = try integer("THERMOSTAT_TELEMETRY_RATE_PER_MINUTE", 1...10_000_000) { telemetryRatePerMinute = rate }
        if let rate = try integer("THERMOSTAT_LOGIN_RATE_PER_MINUTE", 1...1_000_000) { loginRatePerMinute = rate }
        if let rate = try integer("THERMOSTAT_REGISTER_RATE_PER_HOUR", 1...1_000_000) { registerRatePerHour = rate }
        if let seconds = try integer("THERMOSTAT_KEY_GRACE_SECONDS", 0...31_536_000) {
            keyRotationGraceSeconds = Double(seconds)
        }
        if let seconds = try integer("THERMOSTAT_DATABASE_TIMEOUT_SECONDS", 1...3600) { databaseTimeoutSeconds = seconds }
        if let seconds = try integer("THERMOSTAT_SHUTDOWN_DRAIN_SECONDS", 1...3600) { shutdownDrainSeconds = seconds }
        if let count = try integer("THERMOSTAT_LUA_WORKERS", 1...256) { luaWorkers = count }
        if let milliseconds = try integer("THERMOSTAT_SCRIPT_DEADLINE_MS", 50...60_000) { scriptDeadlineMilliseconds = milliseconds }
        if let megabytes = try integer("THERMOSTAT_LUA_WORKER_MEMORY_MB", 256...65_536) { luaWorkerMemoryMegabytes = megabytes }
        if let rate = try integer("THERMOSTAT_SCRIPT_TRIALS_PER_MINUTE", 1...100_000) { scriptTrialsPerMinute = rate }
        if let rate = try integer("THERMOSTAT_INVITATIONS_PER_HOUR", 1...100_000) { invitationsPerHour = rate }
        if let seconds = try integer("THERMOSTAT_RETENTION_INTERVAL_SECONDS", 10...86_400) { retentionIntervalSeconds = seconds }
        if let seconds = try integer("THERMOSTAT_ALERT_TIMER_SECONDS", 1...3600) { alertTimerSeconds = seconds }
        if let count = try integer("THERMOSTAT_DELIVERY_ATTEMPTS", 1...50) { deliveryAttempts = count }
        if let seconds = try integer("THERMOSTAT_DELIVERY_RETRY_SECONDS", 1...86_400) { deliveryRetrySeconds = seconds }
        if let address = variables["THERMOSTAT_ADMIN_EMAIL"], !address.isEmpty {
            guard MailMessage.isAddress(address) else {
                throw ConfigurationError(variable: "THERMOSTAT_ADMIN_EMAIL", message: "must be an email address")
            }
            adminEmail = address
        }
        if let seconds = try integer("THERMOSTAT_ADMIN_DIGEST_SECONDS", 10...86_400) { adminDigestSeconds = seconds }
        if let url = variables["THERMOSTAT_SMTP_URL"], !url.isEmpty { smtpURL = url }
        if let from = variables["THERMOSTAT_MAIL_FROM"] { mailFrom = from }
        if let folder = variables["THERMOSTAT_PLUGINS_DIR"] { pluginsDirectory = folder }
        if let folder = variables["THERMOSTAT_POLICIES_DIR"] { policiesDirectory = folder }
        if let folder = variables["THERMOSTAT_TEMPLATES_DIR"] { templatesDirectory = folder }
        if let folder = variables["THERMOSTAT_STATIC_DIR"] { staticDirectory = folder }
        if let path = variables["THERMOSTAT_CHARTJS_PATH"] { chartJSPath = path }
        if variables["THERMOSTAT_TRUST_FORWARDED_FOR"] != nil {
            throw ConfigurationError(
                variable: "THERMOSTAT_TRUST_FORWARDED_FOR",
                message: "is replaced by THERMOSTAT_TRUSTED_PROXIES (the number of proxies in front of the server, e.g. 1)")
        }
        if let hops = try integer("THERMOSTAT_TRUSTED_PROXIES", 0...10) { trustedProxies = hops }
        if let rate = try integer("THERMOSTAT_LOGIN_RATE_PER_ACCOUNT_PER_HOUR", 1...1_000_000) {
            loginRatePerAccountPerHour = rate
        }
        if let rate = try integer("THERMOSTAT_DEVICE_AUTH_FAILURES_PER_MINUTE", 1...1_000_000) {
            deviceAuthFailuresPerMinute = rate
        }
        if let seconds = try integer("THERMOSTAT_HTTP_IDLE_TIMEOUT_SECONDS", 1...3600) { httpIdleTimeoutSeconds = seconds }
        if let seconds = try integer("THERMOSTAT_HTTP_HEADER_TIMEOUT_SECONDS", 1...3600) { httpHeaderTimeoutSeconds = seconds }
    }

    /// Finds a folder the server ships with (`Plugins`, `Policies`): an absolute path as given,
    /// else relative to the working directory, else next to the executable or in one of its
    /// parent folders (so `.build/release/thermostat` finds the repository's folders from
    /// anywhere). Throws a clear error when it is nowhere.
    public static func locateFolder(_ path: String, variable: String) throws -> URL {
        let files = FileManager.default
        var isDirectory: ObjCBool = false
        if files.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return URL(fileURLWithPath: path)
        }
        guard !path.hasPrefix("/") else {
            throw ConfigurationError(variable: variable, message: "names a folder '\(path)' that does not exist")
        }
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        var folder = executable.resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = folder.appendingPathComponent(path)
            if files.fileExists(atPath: candidate.path, isDirectory: &isDirectory), isDirectory.boolValue { return candidate }
            folder = folder.deletingLastPathComponent()
        }
        throw ConfigurationError(
            variable: variable, message: "names a folder '\(path)' that exists neither here nor beside the executable")
    }

    /// The built-in plugins and tier policies from the configured folders, loaded and checked.
    public func loadCatalog() throws -> PluginCatalog {
        try PluginCatalog.load(
            pluginsDirectory: try Self.locateFolder(pluginsDirectory, variable: "THERMOSTAT_PLUGINS_DIR"),
            policiesDirectory: try Self.locateFolder(policiesDirectory, variable: "THERMOSTAT_POLICIES_DIR"))
    }

    /// The Lua worker pool's settings, with the plugin and policy folders located.
    public func luaWorkerPool() throws -> LuaWorkerPool.Configuration {
        LuaWorkerPool.Configuration(
            executable: LuaWorkerPool.Configuration.defaultExecutable(),
            pluginsDirectory: try Self.locateFolder(pluginsDirectory, variable: "THERMOSTAT_PLUGINS_DIR").path,
            policiesDirectory: try Self.locateFolder(policiesDirectory, variable: "THERMOSTAT_POLICIES_DIR").path,
            size: luaWorkers, callDeadline: .milliseconds(scriptDeadlineMilliseconds),
            workerMemoryMegabytes: luaWorkerMemoryMegabytes)
    }

    /// The base URL put into provisioning URIs.
    public var effectivePublicURL: String {
        if let publicURL { return publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL }
        return "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    public var isProduction: Bool { environment == .production }
}

/// A configuration value that cannot be used.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var variable: String
    public var message: String

    public var description: String { "\(variable) \(message)" }
}
