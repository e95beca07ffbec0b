import Crypto
import Foundation
import Hummingbird
import PlatformCore
import ScriptWorkers
import Scripting
import Storage

/// `/api/scripts/` and `/api/plugins/`: tenants' Lua scripts — upload (validated, never active
/// on upload), list, show, activate or roll back, deactivate, dry-run — and the built-in plugins and tier
/// policies. Changes need an owner or admin; every member may read.
struct ScriptController {
    let store: any PlatformStore
    let catalog: PluginCatalog
    let engine: ScriptEngine
    let clock: any WallClock
    /// Dry-runs and uploads run the tenant's Lua in a worker: limited per tenant.
    let trialLimiter: RateLimiter

    struct UploadBody: StrictRequestBody {
        static let fields: Set<String> = ["name", "hook", "source", "config"]
        var name: String
        var hook: String
        var source: String
        var config: JSONValue?
    }

    struct ActivateBody: StrictRequestBody {
        static let fields: Set<String> = ["version"]
        var version: Int?
    }

    struct DeactivateBody: StrictRequestBody {
        static let fields: Set<String> = []
    }

    struct DryRunBody: StrictRequestBody {
        static let fields: Set<String> = ["version", "sample", "device", "limit"]
        var version: Int?
        var sample: JSONValue?
        var device: String?
        var limit: Int?
    }

    func addRoutes(scripts: RouterGroup<AuthenticatedContext>, plugins: RouterGroup<AuthenticatedContext>) {
        scripts.get("", use: list)
        scripts.post("", use: upload)
        scripts.get(":id/", use: show)
        scripts.post(":id/activate/", use: activate)
        scripts.post(":id/deactivate/", use: deactivate)
        scripts.post(":id/dry-run/", use: dryRun)
        plugins.get("", use: listPlugins)
    }

    static let maximumSourceBytes = 32 * 1024

    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let now = clock.now()
        let scripts = try await store.scripts(tenantID: context.identity.tenant.id)
        var items: [ScriptJSON] = []
        for script in scripts {
            let latest = try await store.scriptVersions(tenantID: script.tenantID, scriptID: script.id).last?.version
            items.append(ScriptJSON(script, latestVersion: latest, now: now))
        }
        return try jsonResponse(["scripts": items])
    }

    @Sendable func upload(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try requireAdministrator(context)
        let body = try await request.decodeStrict(UploadBody.self, context: context)
        let name = try IdentifierRules.validName(body.name, field: "name")
        guard let hook = ScriptHook(rawValue: body.hook) else {
            throw PlatformError.invalid("hook", "must be one of ingest, alert, export, storage_policy", code: "invalid_enum")
        }
        guard body.source.utf8.count <= Self.maximumSourceBytes else {
            throw PlatformError(.payloadTooLarge, code: "script_too_large", message: "Scripts are limited to 32 KiB", field: "source")
        }
        let config = body.config ?? .object([:])
        guard case .object = config else { throw PlatformError.invalid("config", "must be a JSON object", code: "wrong_type") }
        try trialLimiter.acquire(context.identity.tenant.id.uuidString)
        if let error = try await engine.validate(source: body.source, name: name, hook: hook, tenant: context.identity.tenant) {
            throw Self.invalidScript(error)
        }
        let configJSON = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        let digest = SHA256.hash(data: Data(body.source.utf8)).map { String(format: "%02x", $0) }.joined()
        let (script, version) = try await store.addScriptVersion(
            tenantID: context.identity.tenant.id, name: name, hook: hook.rawValue, source: body.source, sha256: digest,
            configJSON: configJSON, authorID: context.identity.user.id, at: clock.now())
        var json = ScriptJSON(script, latestVersion: version.version, now: clock.now())
        json.version = version.version
        return try jsonResponse(["script": json], status: .created)
    }

    @Sendable func show(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let script = try await ownScript(context)
        let versions = try await store.scriptVersions(tenantID: script.tenantID, scriptID: script.id)
        return try jsonResponse(
            ShowJSON(
                script: ScriptJSON(script, latestVersion: versions.last?.version, now: clock.now()),
                versions: versions.map(VersionJSON.init)))
    }

    @Sendable func activate(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try requireAdministrator(context)
        let script = try await ownScript(context)
        let body = try await request.decodeStrictIfPresent(ActivateBody.self, context: context) ?? ActivateBody()
        let versions = try await store.scriptVersions(tenantID: script.tenantID, scriptID: script.id)
        guard let version = body.version ?? versions.last?.version,
            try await store.activateScript(tenantID: script.tenantID, scriptID: script.id, version: version)
        else {
            throw PlatformError.invalid("version", "no such version of this script", code: "unknown_version")
        }
        engine.invalidate(tenantID: script.tenantID)
        let updated = try await ownScript(context)
        return try jsonResponse(["script": ScriptJSON(updated, latestVersion: versions.last?.version, now: clock.now())])
    }

    /// Turns a script off: it stops running, its versions stay, and activating a version turns
    /// it on again.
    @Sendable func deactivate(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try requireAdministrator(context)
        let script = try await ownScript(context)
        _ = try await request.decodeStrictIfPresent(DeactivateBody.self, context: context)
        guard try await store.deactivateScript(tenantID: script.tenantID, scriptID: script.id) else {
            throw PlatformError.notFound("Script")
        }
        engine.invalidate(tenantID: script.tenantID)
        let updated = try await ownScript(context)
        let latest = try await store.scriptVersions(tenantID: script.tenantID, scriptID: script.id).last?.version
        return try jsonResponse(["script": ScriptJSON(updated, latestVersion: latest, now: clock.now())])
    }

    @Sendable func dryRun(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let script = try await ownScript(context)
        let body = try await request.decodeStrictIfPresent(DryRunBody.self, context: context) ?? DryRunBody()
        let versions = try await store.scriptVersions(tenantID: script.tenantID, scriptID: script.id)
        guard let version = versions.first(where: { $0.version == (body.version ?? script.activeVersion ?? versions.last?.version) })
        else { throw PlatformError.invalid("version", "no such version of this script", code: "unknown_version") }
        let needsSamples = script.hook != ScriptHook.storagePolicy.rawValue || body.sample != nil || body.device != nil
        let samples = needsSamples ? try await dryRunSamples(body, script: script, context: context) : []
        let tenant = context.identity.tenant
        try trialLimiter.acquire(tenant.id.uuidString)
        let report = try await engine.dryRun(
            script: script, version: version, samples: samples, tenant: tenant, now: clock.now())
        return try jsonResponse(report)
    }

    @Sendable func listPlugins(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        func json(_ plugin: Plugin) -> PluginJSON {
            PluginJSON(
                name: plugin.name, hook: plugin.hook.rawValue, version: plugin.version, description: plugin.description,
                config: plugin.defaultConfig.jsonValue)
        }
        return try jsonResponse(
            PluginsJSON(
                plugins: catalog.plugins.values.sorted { $0.name < $1.name }.map(json),
                policies: catalog.policies.values.sorted { $0.name < $1.name }.map(json)))
    }

    private func dryRunSamples(_ body: DryRunBody, script: Script, context: AuthenticatedContext) async throws
        -> [TelemetrySample]
    {
        if let sample = body.sample {
            guard case .object = sample else { throw PlatformError.invalid("sample", "must be a telemetry sample object") }
            // An ingest script may convert units, so its input is range-checked only after it ran.
            return [
                try IngestPayload.decodeTrialSample(
                    Array(try JSONEncoder().encode(sample)), now: clock.now(), checksRanges: script.hook != ScriptHook.ingest.rawValue)
            ]
        }
        guard let serial = body.device else {
            throw PlatformError.invalid("sample", "give a sample, or a device whose recent samples to use", code: "missing_field")
        }
        let limit = body.limit ?? 10
        guard (1...100).contains(limit) else { throw PlatformError.invalid("limit", "must be from 1 to 100") }
        let tenantID = context.identity.tenant.id
        guard try await store.device(tenantID: tenantID, serial: serial) != nil else { throw PlatformError.notFound("Device") }
        return try await store.recentSamples(tenantID: tenantID, serial: serial, limit: limit)
    }

    private func requireAdministrator(_ context: AuthenticatedContext) throws {
        guard context.identity.role.canAdminister else {
            throw PlatformError(.forbidden, code: "forbidden", message: "Only owners and admins change scripts")
        }
    }

    private func ownScript(_ context: AuthenticatedContext) async throws -> Script {
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)),
            let script = try await store.script(tenantID: context.identity.tenant.id, id: id)
        else { throw PlatformError.notFound("Script") }
        return script
    }

    /// A script that does not compile or keep its hook's contract: 422 with Lua's message and line.
    static func invalidScript(_ error: WorkerScriptError) -> PlatformError {
        let line = error.line.map { " (line \($0))" } ?? ""
        return PlatformError(.validation, code: "invalid_script", message: "\(error.message)\(line)", field: "source")
    }
}
