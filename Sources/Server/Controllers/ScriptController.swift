import Crypto
import Foundation
import Hummingbird
import PlatformCore
import ScriptWorkers
import Scripting
import Storage

/// `/api/scripts/` and `/api/plugins/`: tenants' Lua scripts — upload (validated, never active
/// on upload), list, show, activate or roll back, deactivate, dry-run — and the built-in plugins
/// and tier policies, by `ScriptService`'s rules.
struct ScriptController {
    let scripts: ScriptService
    let clock: any WallClock

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

    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let now = clock.now()
        let items = try await scripts.list(tenantID: context.identity.tenant.id).map {
            ScriptJSON($0.0, latestVersion: $0.latestVersion, now: now)
        }
        return try jsonResponse(["scripts": items])
    }

    @Sendable func upload(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let body = try await request.decodeStrict(UploadBody.self, context: context)
        switch try await scripts.upload(
            by: context.identity, name: body.name, hook: body.hook, source: body.source, config: body.config)
        {
        case .invalid(let error):
            throw ScriptService.invalidScript(error)
        case .stored(let script, let version):
            var json = ScriptJSON(script, latestVersion: version.version, now: clock.now())
            json.version = version.version
            return try jsonResponse(["script": json], status: .created)
        }
    }

    @Sendable func show(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let (script, versions) = try await scripts.script(tenantID: context.identity.tenant.id, id: try scriptID(context))
        return try jsonResponse(
            ShowJSON(
                script: ScriptJSON(script, latestVersion: versions.last?.version, now: clock.now()),
                versions: versions.map(VersionJSON.init)))
    }

    @Sendable func activate(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try scriptID(context)
        let body = try await request.decodeStrictIfPresent(ActivateBody.self, context: context) ?? ActivateBody()
        return try await scriptResponse(try await scripts.activate(by: context.identity, scriptID: id, version: body.version))
    }

    /// Turns a script off: it stops running, its versions stay, and activating a version turns
    /// it on again.
    @Sendable func deactivate(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try scriptID(context)
        _ = try await request.decodeStrictIfPresent(DeactivateBody.self, context: context)
        return try await scriptResponse(try await scripts.deactivate(by: context.identity, scriptID: id))
    }

    @Sendable func dryRun(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try scriptID(context)
        let body = try await request.decodeStrictIfPresent(DryRunBody.self, context: context) ?? DryRunBody()
        let input: ScriptService.DryRunInput =
            if let sample = body.sample { .sample(sample) } else if let device = body.device {
                .device(serial: device, limit: body.limit ?? 10)
            } else { .none }
        return try jsonResponse(try await scripts.dryRun(by: context.identity, scriptID: id, version: body.version, input: input))
    }

    @Sendable func listPlugins(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        func json(_ plugin: Plugin) -> PluginJSON {
            PluginJSON(
                name: plugin.name, hook: plugin.hook.rawValue, version: plugin.version, description: plugin.description,
                config: plugin.defaultConfig.jsonValue)
        }
        let catalog = scripts.catalog
        return try jsonResponse(
            PluginsJSON(
                plugins: catalog.plugins.values.sorted { $0.name < $1.name }.map(json),
                policies: catalog.policies.values.sorted { $0.name < $1.name }.map(json)))
    }

    private func scriptResponse(_ script: Script) async throws -> Response {
        let latest = try await scripts.script(tenantID: script.tenantID, id: script.id).1.last?.version
        return try jsonResponse(["script": ScriptJSON(script, latestVersion: latest, now: clock.now())])
    }

    private func scriptID(_ context: AuthenticatedContext) throws -> UUID {
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else {
            throw PlatformError.notFound("Script")
        }
        return id
    }
}
