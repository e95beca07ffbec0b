import Crypto
import Foundation
import PlatformCore
import ScriptWorkers
import Scripting
import Storage

/// The rules for a tenant's Lua scripts, shared by the JSON API and the dashboard: owners and
/// admins upload (validated in a worker, never active on upload), activate a version or roll
/// back, and deactivate; every member reads and dry-runs. Uploads and dry-runs run the tenant's
/// Lua, so they are rate-limited per tenant.
struct ScriptService: Sendable {
    let store: any PlatformStore
    let catalog: PluginCatalog
    let engine: ScriptEngine
    let clock: any WallClock
    let trialLimiter: RateLimiter

    static let maximumSourceBytes = 32 * 1024

    /// An upload's outcome: the stored version, or the reason Lua refused it (with its line).
    enum UploadOutcome: Sendable {
        case stored(Script, ScriptVersion)
        case invalid(WorkerScriptError)
    }

    /// What a dry-run runs against: a pasted sample, or a device's newest samples.
    enum DryRunInput: Sendable {
        case sample(JSONValue)
        case device(serial: String, limit: Int)
        case none
    }

    /// The tenant's scripts with their newest version number.
    func list(tenantID: UUID) async throws -> [(Script, latestVersion: Int?)] {
        var items: [(Script, latestVersion: Int?)] = []
        for script in try await store.scripts(tenantID: tenantID) {
            items.append((script, try await store.scriptVersions(tenantID: tenantID, scriptID: script.id).last?.version))
        }
        return items
    }

    func script(tenantID: UUID, id: UUID) async throws -> (Script, [ScriptVersion]) {
        guard let script = try await store.script(tenantID: tenantID, id: id) else { throw PlatformError.notFound("Script") }
        return (script, try await store.scriptVersions(tenantID: tenantID, scriptID: id))
    }

    func upload(by identity: Identity, name rawName: String, hook hookName: String, source: String, config: JSONValue?)
        async throws -> UploadOutcome
    {
        try requireAdministrator(identity)
        let name = try IdentifierRules.validName(rawName, field: "name")
        guard let hook = ScriptHook(rawValue: hookName) else {
            throw PlatformError.invalid("hook", "must be one of ingest, alert, export, storage_policy", code: "invalid_enum")
        }
        guard source.utf8.count <= Self.maximumSourceBytes else {
            throw PlatformError(.payloadTooLarge, code: "script_too_large", message: "Scripts are limited to 32 KiB", field: "source")
        }
        let config = config ?? .object([:])
        guard case .object = config else { throw PlatformError.invalid("config", "must be a JSON object", code: "wrong_type") }
        try trialLimiter.acquire(identity.tenant.id.uuidString)
        if let error = try await engine.validate(source: source, name: name, hook: hook, tenant: identity.tenant) {
            return .invalid(error)
        }
        let configJSON = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        let digest = SHA256.hash(data: Data(source.utf8)).lowercaseHex
        let (script, version) = try await store.addScriptVersion(
            tenantID: identity.tenant.id, name: name, hook: hook.rawValue, source: source, sha256: digest,
            configJSON: configJSON, authorID: identity.user.id, at: clock.now())
        return .stored(script, version)
    }

    /// Activates `version` (default: the newest), which is also how a script rolls back.
    func activate(by identity: Identity, scriptID: UUID, version: Int?) async throws -> Script {
        try requireAdministrator(identity)
        let (script, versions) = try await script(tenantID: identity.tenant.id, id: scriptID)
        guard let version = version ?? versions.last?.version,
            try await store.activateScript(tenantID: script.tenantID, scriptID: script.id, version: version)
        else {
            throw PlatformError.invalid("version", "no such version of this script", code: "unknown_version")
        }
        engine.invalidate(tenantID: script.tenantID)
        return try await self.script(tenantID: identity.tenant.id, id: scriptID).0
    }

    /// Turns a script off: it stops running, its versions stay.
    func deactivate(by identity: Identity, scriptID: UUID) async throws -> Script {
        try requireAdministrator(identity)
        guard try await store.deactivateScript(tenantID: identity.tenant.id, scriptID: scriptID) else {
            throw PlatformError.notFound("Script")
        }
        engine.invalidate(tenantID: identity.tenant.id)
        return try await script(tenantID: identity.tenant.id, id: scriptID).0
    }

    /// Runs `version` (default: the active one, else the newest) against `input`, storing nothing.
    func dryRun(by identity: Identity, scriptID: UUID, version requested: Int?, input: DryRunInput) async throws
        -> DryRunReport
    {
        let (script, versions) = try await script(tenantID: identity.tenant.id, id: scriptID)
        guard let version = versions.first(where: { $0.version == (requested ?? script.activeVersion ?? versions.last?.version) })
        else { throw PlatformError.invalid("version", "no such version of this script", code: "unknown_version") }
        let samples = try await dryRunSamples(input, script: script, tenantID: identity.tenant.id)
        try trialLimiter.acquire(identity.tenant.id.uuidString)
        return try await engine.dryRun(script: script, version: version, samples: samples, tenant: identity.tenant, now: clock.now())
    }

    private func dryRunSamples(_ input: DryRunInput, script: Script, tenantID: UUID) async throws -> [TelemetrySample] {
        switch input {
        case .sample(let sample):
            guard case .object = sample else { throw PlatformError.invalid("sample", "must be a telemetry sample object") }
            // An ingest script may convert units, so its input is range-checked only after it ran.
            return [
                try IngestPayload.decodeTrialSample(
                    Array(try JSONEncoder().encode(sample)), now: clock.now(),
                    checksRanges: script.hook != ScriptHook.ingest.rawValue)
            ]
        case .device(let serial, let limit):
            guard (1...100).contains(limit) else { throw PlatformError.invalid("limit", "must be from 1 to 100") }
            guard try await store.device(tenantID: tenantID, serial: serial) != nil else { throw PlatformError.notFound("Device") }
            return try await store.recentSamples(tenantID: tenantID, serial: serial, limit: limit)
        case .none:
            guard script.hook == ScriptHook.storagePolicy.rawValue else {
                throw PlatformError.invalid(
                    "sample", "give a sample, or a device whose recent samples to use", code: "missing_field")
            }
            return []
        }
    }

    private func requireAdministrator(_ identity: Identity) throws {
        guard identity.role.canAdminister else {
            throw PlatformError(.forbidden, code: "forbidden", message: "Only owners and admins change scripts")
        }
    }

    /// A script that does not compile or keep its hook's contract: 422 with Lua's message and line.
    static func invalidScript(_ error: WorkerScriptError) -> PlatformError {
        let line = error.line.map { " (line \($0))" } ?? ""
        return PlatformError(.validation, code: "invalid_script", message: "\(error.message)\(line)", field: "source")
    }
}
