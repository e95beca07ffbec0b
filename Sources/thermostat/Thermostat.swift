import ArgumentParser
import Foundation
import Logging
import PlatformCore
import ScriptWorkers
import Scripting
import Server

/// The entry point. `thermostat lua-worker` runs synchronously on the main thread before the
/// async runtime starts any thread, so the worker confines itself (drops root) while it is the
/// only thread; every other command runs on the async runtime, as an async `main` would.
@main
enum ThermostatEntry {
    static func main() {
        if CommandLine.arguments.dropFirst().first == LuaWorkerCommand.configuration.commandName {
            LuaWorkerCommand.main(Array(CommandLine.arguments.dropFirst(2)))
        }
        Task {
            await Thermostat.main()
            exit(0)
        }
        dispatchMain()
    }
}

/// The `thermostat` command: serve the platform and operate it.
struct Thermostat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "ThermostatRTOS Platform: hosted service for ESP32 thermostats.",
        subcommands: [
            Serve.self, Migrate.self, CreateAdmin.self, Check.self, TenantCommand.self, ScriptCommand.self, LuaWorkerCommand.self,
        ])
}

/// Flags shared by every command; each overrides its environment variable.
struct ConfigurationOptions: ParsableArguments {
    @Option(help: "Address to listen on (THERMOSTAT_HOST, default 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on (THERMOSTAT_PORT, default 8080).")
    var port: Int?

    @Option(help: "sqlite:PATH or postgres://… (DATABASE_URL, default sqlite:./var/thermostat.sqlite).")
    var database: String?

    func resolve() throws -> PlatformConfiguration {
        var configuration = try PlatformConfiguration(environment: ProcessInfo.processInfo.environment)
        if let host { configuration.host = host }
        if let port {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535") }
            configuration.port = port
        }
        if let database { configuration.databaseURL = database }
        return configuration
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending migrations and serve the platform until SIGINT or SIGTERM.")

    @OptionGroup var options: ConfigurationOptions

    func run() async throws {
        let configuration = try options.resolve()
        try DeploymentCheck.requireServable(configuration)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = configuration.logLevel
            return handler
        }
        let app = try await buildApplication(configuration: configuration)
        try await app.runService()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations and exit.")

    @OptionGroup var options: ConfigurationOptions

    func run() async throws {
        let configuration = try options.resolve()
        let applied = try await Operations(configuration: configuration).migrate()
        print(applied.isEmpty ? "Database is up to date." : "Applied migrations \(applied.map(String.init).joined(separator: ", ")).")
    }
}

struct CreateAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-admin",
        abstract: "Create a platform administrator. The password is read from the terminal (or stdin), never a flag.")

    @OptionGroup var options: ConfigurationOptions

    @Option(help: "The administrator's email address.")
    var email: String

    func run() async throws {
        let configuration = try options.resolve()
        let password = try PasswordPrompt.read()
        let user = try await Operations(configuration: configuration).createPlatformAdmin(email: email, password: password)
        print("Created platform administrator \(user.email).")
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check the configuration; --deploy checks it is safe for production.")

    @OptionGroup var options: ConfigurationOptions

    @Flag(help: "Fail on settings unsafe for a production deployment.")
    var deploy = false

    func run() async throws {
        let configuration = try options.resolve()
        let findings = DeploymentCheck.run(configuration, deploy: deploy)
        for finding in findings {
            print("\(finding.severity.rawValue.uppercased()): \(finding.message)")
        }
        if findings.contains(where: { $0.severity == .error }) {
            throw ExitCode(1)
        }
        print(findings.isEmpty ? "No issues found." : "No blocking issues.")
    }
}

struct TenantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant", abstract: "Manage tenants.", subcommands: [SetTier.self])

    struct SetTier: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-tier", abstract: "Assign a storage tier to a tenant.")

        @OptionGroup var options: ConfigurationOptions

        @Argument(help: "The tenant's slug.")
        var slug: String

        @Argument(help: "The tier: a policy in Policies/ (free, standard and pro ship with the server).")
        var tier: String

        func run() async throws {
            let configuration = try options.resolve()
            try await Operations(configuration: configuration).setTier(slug: slug, tier: tier)
            print("Tenant \(slug) is now on the \(tier) tier.")
        }
    }
}

struct ScriptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "script", abstract: "Work with Lua scripts.", subcommands: [CheckScript.self])

    struct CheckScript: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Compile and validate a script; with --sample, run it on one sample. Non-zero exit on failure.")

        @Argument(help: "The Lua file.")
        var file: String

        @Option(help: "ingest, alert, export or storage_policy.")
        var hook: String

        @Option(help: "One telemetry sample as JSON, to run the script on.")
        var sample: String?

        @Option(help: "The script's configuration as a JSON object (ctx.config).")
        var config: String?

        @Option(help: "Folder of built-in plugins (THERMOSTAT_PLUGINS_DIR, default ./Plugins).")
        var plugins: String?

        @Option(help: "Folder of tier policies (THERMOSTAT_POLICIES_DIR, default ./Policies).")
        var policies: String?

        func run() async throws {
            var configuration = try PlatformConfiguration(environment: ProcessInfo.processInfo.environment)
            if let plugins { configuration.pluginsDirectory = plugins }
            if let policies { configuration.policiesDirectory = policies }
            let source: String
            do {
                source = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ValidationError("Cannot read \(file): \(error.localizedDescription)")
            }
            let name = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
            let check = ScriptCheck(
                source: source, name: name, hook: hook, sampleJSON: sample, configJSON: config,
                workers: try configuration.luaWorkerPool())
            let (lines, passed) = await check.run()
            lines.forEach { print($0) }
            if !passed { throw ExitCode(1) }
        }
    }
}

/// `thermostat lua-worker`: one Lua worker process, started by the server (or by `script
/// check`) with its requests on stdin and its answers on stdout. Not for people to run.
struct LuaWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lua-worker", abstract: "Run tenant Lua for the server over stdin/stdout (started by the server).",
        shouldDisplay: false)

    @Option(help: "Folder of built-in plugins.")
    var plugins: String

    @Option(help: "Folder of tier policies.")
    var policies: String

    @Option(help: "Address-space cap in MiB.")
    var memoryMb: Int

    @Option(help: "CPU seconds one request may use.")
    var cpuSeconds: Int

    func run() throws {
        let catalog = try PluginCatalog.load(
            pluginsDirectory: URL(fileURLWithPath: plugins), policiesDirectory: URL(fileURLWithPath: policies))
        LuaWorkerProcess.run(
            catalog: catalog,
            limits: LuaWorkerProcess.Limits(addressSpaceBytes: memoryMb * 1024 * 1024, cpuSecondsPerRequest: cpuSeconds))
    }
}

/// Reads a password without echo from a terminal, or one line from piped stdin.
enum PasswordPrompt {
    static func read() throws -> String {
        if isatty(STDIN_FILENO) != 0 {
            var original = termios()
            tcgetattr(STDIN_FILENO, &original)
            var silent = original
            silent.c_lflag &= ~tcflag_t(ECHO)
            FileHandle.standardError.write(Data("Password: ".utf8))
            tcsetattr(STDIN_FILENO, TCSANOW, &silent)
            defer {
                tcsetattr(STDIN_FILENO, TCSANOW, &original)
                FileHandle.standardError.write(Data("\n".utf8))
            }
            guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                throw ValidationError("No password given.")
            }
            return line
        }
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw ValidationError("No password on standard input.")
        }
        return line
    }
}
