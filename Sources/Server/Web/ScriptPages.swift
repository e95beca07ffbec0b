import Foundation
import Hummingbird
import PlatformCore
import ScriptWorkers
import Scripting

/// `/scripts` and `/scripts/<id>`: the tenant's Lua scripts — upload with errors shown at their
/// line, versions with activation and roll-back, deactivation, dry-runs against a pasted sample
/// or a device's newest samples — and the built-in plugins, through `ScriptService`.
struct ScriptPages {
    let scripts: ScriptService
    let devices: DeviceService
    let pages: PageRenderer
    let clock: any WallClock

    struct ScriptRow {
        var id: String
        var name: String
        var hook: String
        var status: String
        var activeVersion: Int?
        var latestVersion: Int?
        var failureCount: Int
        var quarantinedUntil: String?
        var lastError: String?
    }

    struct PluginRow {
        var name: String
        var hook: String
        var version: String
        var description: String
        var defaultConfig: String
    }

    /// The editor: source with line numbers, and a refused upload's error at its line.
    struct EditorModel {
        /// Where the form posts: `/scripts` for a new script, else its versions.
        var action: String
        var isNew: Bool
        var name: String
        var hook: String
        var hooks: [HookOption]
        var source: String
        var config: String
        var error: String?
        var errorLine: Int?
        var hasErrorLine: Bool
        var lines: [SourceLine]
        var hasListing: Bool
    }

    struct HookOption {
        var value: String
        var selected: Bool
    }

    struct SourceLine {
        var number: Int
        var text: String
        var isError: Bool
    }

    struct ListModel {
        var scripts: [ScriptRow]
        var hasScripts: Bool
        var plugins: [PluginRow]
        var policies: [PluginRow]
        var canAdminister: Bool
        var editor: EditorModel
    }

    struct VersionRow {
        var version: Int
        var createdAt: String
        var sha256: String
        var isActive: Bool
    }

    struct DeviceOption {
        var serial: String
        var name: String
    }

    struct DryRunModel {
        var ran: Bool
        var results: [String]
        var logs: [String]
        var errors: [String]
        var hasLogs: Bool
        var hasErrors: Bool
        var sample: String
        var devices: [DeviceOption]
        var hasDevices: Bool
    }

    struct DetailModel {
        var script: ScriptRow
        var versions: [VersionRow]
        var isActive: Bool
        var isQuarantined: Bool
        var canAdminister: Bool
        var editor: EditorModel
        var dryRun: DryRunModel
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("scripts", use: list)
        group.post("scripts", use: upload)
        group.get("scripts/:id", use: show)
        group.post("scripts/:id/versions", use: uploadVersion)
        group.post("scripts/:id/activate", use: activate)
        group.post("scripts/:id/deactivate", use: deactivate)
        group.post("scripts/:id/dry-run", use: dryRun)
    }

    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await listPage(context, editor: Self.editor(name: "", hook: "ingest", source: Self.starter, config: "{}"))
    }

    @Sendable func upload(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let form = context.form
        let name = form.text("name") ?? ""
        let hook = form.text("hook") ?? ""
        let source = Self.normalizedSource(form["source"] ?? "")
        let configText = form.text("config") ?? "{}"
        do {
            switch try await scripts.upload(
                by: context.identity, name: name, hook: hook, source: source, config: try Self.config(configText))
            {
            case .stored(let script, let version):
                return PageRenderer.redirect(
                    to: "/scripts/\(script.id.uuidString.lowercased())?notice=script-uploaded&version=\(version.version)")
            case .invalid(let error):
                let editor = Self.editor(
                    name: name, hook: hook, source: source, config: configText, error: error.message, line: error.line)
                return try await listPage(context, editor: editor, status: .unprocessableContent)
            }
        } catch let error as PlatformError where Self.isFormError(error) {
            let editor = Self.editor(name: name, hook: hook, source: source, config: configText, error: error.message)
            return try await listPage(context, editor: editor, status: ErrorMapping.status(for: error.kind))
        }
    }

    @Sendable func show(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await detailPage(request, context: context)
    }

    @Sendable func uploadVersion(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try scriptID(context)
        let (script, _) = try await scripts.script(tenantID: context.identity.tenant.id, id: id)
        let source = Self.normalizedSource(context.form["source"] ?? "")
        let configText = context.form.text("config") ?? "{}"
        do {
            switch try await scripts.upload(
                by: context.identity, name: script.name, hook: script.hook, source: source, config: try Self.config(configText))
            {
            case .stored(_, let version):
                return PageRenderer.redirect(
                    to: "/scripts/\(id.uuidString.lowercased())?notice=script-uploaded&version=\(version.version)")
            case .invalid(let error):
                let editor = Self.editor(
                    scriptID: id, name: script.name, hook: script.hook, source: source, config: configText,
                    error: error.message, line: error.line)
                return try await detailPage(request, context: context, editor: editor, status: .unprocessableContent)
            }
        } catch let error as PlatformError where Self.isFormError(error) {
            let editor = Self.editor(
                scriptID: id, name: script.name, hook: script.hook, source: source, config: configText,
                error: error.message)
            return try await detailPage(
                request, context: context, editor: editor, status: ErrorMapping.status(for: error.kind))
        }
    }

    @Sendable func activate(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try scriptID(context)
        let version = context.form.text("version").flatMap { Int($0) }
        _ = try await scripts.activate(by: context.identity, scriptID: id, version: version)
        return PageRenderer.redirect(to: "/scripts/\(id.uuidString.lowercased())?notice=script-activated")
    }

    @Sendable func deactivate(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try scriptID(context)
        _ = try await scripts.deactivate(by: context.identity, scriptID: id)
        return PageRenderer.redirect(to: "/scripts/\(id.uuidString.lowercased())?notice=script-deactivated")
    }

    @Sendable func dryRun(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try scriptID(context)
        let form = context.form
        let sampleText = form.text("sample") ?? ""
        let version = form.text("version").flatMap { Int($0) }
        var model = try await dryRunForm(context, sample: sampleText)
        do {
            let input: ScriptService.DryRunInput
            if let serial = form.text("device") {
                input = .device(serial: serial, limit: form.text("limit").flatMap { Int($0) } ?? 10)
            } else if !sampleText.isEmpty {
                guard let sample = try? JSONDecoder().decode(JSONValue.self, from: Data(sampleText.utf8)) else {
                    throw PlatformError.invalid("sample", "is not valid JSON")
                }
                input = .sample(sample)
            } else {
                input = .none
            }
            let report = try await scripts.dryRun(by: context.identity, scriptID: id, version: version, input: input)
            model.ran = true
            model.results = report.results.map(Self.prettyJSON)
            model.logs = report.logs
            model.errors = report.errors
        } catch let error as PlatformError where Self.isFormError(error) || error.kind == .notFound {
            model.ran = true
            model.errors = [error.message]
        }
        model.hasLogs = !model.logs.isEmpty
        model.hasErrors = !model.errors.isEmpty
        return try await detailPage(request, context: context, dryRun: model)
    }

    private func listPage(_ context: AuthenticatedContext, editor: EditorModel, status: HTTPResponse.Status = .ok)
        async throws -> Response
    {
        let now = clock.now()
        let rows = try await scripts.list(tenantID: context.identity.tenant.id).map {
            Self.row($0.0, latestVersion: $0.latestVersion, now: now)
        }
        let catalog = scripts.catalog
        func plugin(_ plugin: Plugin) -> PluginRow {
            PluginRow(
                name: plugin.name, hook: plugin.hook.rawValue, version: plugin.version, description: plugin.description,
                defaultConfig: Self.prettyJSON(plugin.defaultConfig.jsonValue))
        }
        let model = ListModel(
            scripts: rows, hasScripts: !rows.isEmpty,
            plugins: catalog.plugins.values.sorted { $0.name < $1.name }.map(plugin),
            policies: catalog.policies.values.sorted { $0.name < $1.name }.map(plugin),
            canAdminister: context.identity.role.canAdminister, editor: editor)
        return try await pages.page(
            "scripts", title: "Scripts", section: .scripts, context: context, content: model, status: status)
    }

    private func detailPage(
        _ request: Request, context: AuthenticatedContext, editor: EditorModel? = nil, dryRun: DryRunModel? = nil,
        status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let (script, versions) = try await scripts.script(tenantID: context.identity.tenant.id, id: try scriptID(context))
        let now = clock.now()
        let row = Self.row(script, latestVersion: versions.last?.version, now: now)
        let latest = versions.last
        let form: DryRunModel
        if let dryRun { form = dryRun } else { form = try await dryRunForm(context, sample: "") }
        let model = DetailModel(
            script: row,
            versions: versions.reversed().map {
                VersionRow(
                    version: $0.version, createdAt: $0.createdAt.iso8601, sha256: String($0.sha256.prefix(12)),
                    isActive: $0.version == script.activeVersion)
            },
            isActive: script.activeVersion != nil, isQuarantined: row.status == "quarantined",
            canAdminister: context.identity.role.canAdminister,
            editor: editor
                ?? Self.editor(
                    scriptID: script.id, name: script.name, hook: script.hook, source: latest?.source ?? "",
                    config: latest.map { Self.prettyConfig($0.configJSON) } ?? "{}"),
            dryRun: form)
        return try await pages.page(
            "script", title: script.name, section: .scripts, context: context, content: model,
            flash: WebNotice.flash(request), status: status)
    }

    private func dryRunForm(_ context: AuthenticatedContext, sample: String) async throws -> DryRunModel {
        let options = try await devices.summaries(tenantID: context.identity.tenant.id).map {
            DeviceOption(serial: $0.device.serial, name: $0.device.name)
        }
        return DryRunModel(
            ran: false, results: [], logs: [], errors: [], hasLogs: false, hasErrors: false,
            sample: sample.isEmpty ? Self.exampleSample(now: clock.now()) : sample, devices: options,
            hasDevices: !options.isEmpty)
    }

    private func scriptID(_ context: AuthenticatedContext) throws -> UUID {
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else {
            throw PlatformError.notFound("Script")
        }
        return id
    }

    private static func isFormError(_ error: PlatformError) -> Bool {
        [.validation, .payloadTooLarge, .conflict].contains(error.kind)
    }

    static func row(_ script: Script, latestVersion: Int?, now: Timestamp) -> ScriptRow {
        let json = ScriptJSON(script, latestVersion: latestVersion, now: now)
        return ScriptRow(
            id: json.id, name: script.name, hook: script.hook, status: json.status, activeVersion: script.activeVersion,
            latestVersion: latestVersion, failureCount: script.failureCount,
            quarantinedUntil: json.status == "quarantined" ? script.quarantinedUntil?.iso8601 : nil,
            lastError: script.lastError)
    }

    static func editor(
        scriptID: UUID? = nil, name: String, hook: String, source: String, config: String, error: String? = nil,
        line: Int? = nil
    ) -> EditorModel {
        let lines =
            error == nil
            ? []
            : source.split(separator: "\n", omittingEmptySubsequences: false).enumerated().map {
                SourceLine(number: $0.offset + 1, text: String($0.element), isError: $0.offset + 1 == line)
            }
        return EditorModel(
            action: scriptID.map { "/scripts/\($0.uuidString.lowercased())/versions" } ?? "/scripts", isNew: scriptID == nil,
            name: name, hook: hook,
            hooks: ScriptHook.allCases.map { HookOption(value: $0.rawValue, selected: $0.rawValue == hook) },
            source: source, config: config, error: error, errorLine: line, hasErrorLine: line != nil, lines: lines,
            hasListing: !lines.isEmpty)
    }

    /// Browsers send textarea lines as CRLF; Lua and the stored digest see LF.
    static func normalizedSource(_ source: String) -> String {
        source.replacingOccurrences(of: "\r\n", with: "\n")
    }

    static func config(_ text: String) throws -> JSONValue {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
            throw PlatformError.invalid("config", "is not valid JSON", code: "malformed_json")
        }
        return value
    }

    static func prettyJSON(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }

    static func prettyConfig(_ json: String) -> String {
        (try? JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))).map(prettyJSON) ?? json
    }

    static func exampleSample(now: Timestamp) -> String {
        #"{"device_id": "TH-0001", "mode": "HEAT", "temp_inside_c": 20.5, "temp_outside_c": 3.5, "setpoint_c": 21, "hysteresis_c": 0.5, "output": "HEAT_ON", "timestamp": "\#(now.iso8601)"}"#
    }

    static let starter = """
        return {
          transform = function(sample, ctx)
            return sample
          end,
        }
        """
}
