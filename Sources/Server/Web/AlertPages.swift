import Foundation
import Hummingbird
import PlatformCore
import Scripting
import Storage

/// `/alerts` (open alerts, recent history and silences), `/alerts/<id>` (one alert with its
/// delivery log), `/alerts/rules` (rules, edited by owners and admins) and `/alerts/channels`
/// (where notifications go, with "send test"), through `AlertService` like the JSON API: it
/// enforces the roles, the pages only hide what a role cannot use.
struct AlertPages {
    let alerts: AlertService
    let devices: DeviceService
    let members: MemberService
    let pages: PageRenderer
    let clock: any WallClock

    /// One alert as the tables show it, every time already text.
    struct AlertRow {
        var id: String
        var serial: String
        var deviceName: String
        var ruleID: String
        var ruleName: String
        var key: String
        var state: String
        var severity: String
        var message: String
        var valueText: String
        var startedAt: String
        var firedAt: String
        var hasFired: Bool
        var resolvedAt: String
        var hasResolved: Bool
        var acknowledged: Bool
        var acknowledgedAt: String
        var acknowledgedByText: String
        var isOpen: Bool
    }

    struct SilenceRow {
        var id: String
        var deviceText: String
        var silenceSerial: String
        var hasDevice: Bool
        var ruleText: String
        var until: String
        var comment: String
        var createdByText: String
    }

    struct Option {
        var value: String
        var label: String
        var selected: Bool
    }

    struct ListModel {
        var openAlerts: [AlertRow]
        var hasOpen: Bool
        var history: [AlertRow]
        var hasHistory: Bool
        var silences: [SilenceRow]
        var hasSilences: Bool
        var deviceOptions: [Option]
        var hourOptions: [Option]
        var canWrite: Bool
        var silenceError: String?
        var subAlerts: Bool
    }

    struct DeliveryRow {
        var id: String
        var event: String
        var channelName: String
        var status: String
        var attempts: Int
        var createdAt: String
        var sentAt: String
        var hasSent: Bool
        var nextAttemptAt: String
        var waiting: Bool
        var lastError: String
        var hasLastError: Bool
        var failed: Bool
        var deliveryAlertID: String
        var hasAlert: Bool
    }

    struct DetailModel {
        var alert: AlertRow
        var lastNotifiedAt: String
        var hasNotified: Bool
        var deliveries: [DeliveryRow]
        var hasDeliveries: Bool
        var canWrite: Bool
        var canAdminister: Bool
        var subAlerts: Bool
    }

    struct RuleRow {
        var id: String
        var name: String
        var script: String
        var deviceText: String
        var ruleSerial: String
        var hasDevice: Bool
        var enabled: Bool
        var channelsText: String
        var timingText: String
    }

    struct ChannelChoice {
        var id: String
        var name: String
        var kind: String
        var checked: Bool
    }

    /// The rule form: a new rule (`isNew`) or an existing one, with a refused save's error.
    struct RuleForm {
        var action: String
        var isNew: Bool
        var submitLabel: String
        var name: String
        var plugins: [Option]
        var scripts: [Option]
        var hasScripts: Bool
        var devices: [Option]
        var deviceChosen: Bool
        var config: String
        var forSeconds: String
        var cooldownSeconds: String
        var repeatSeconds: String
        var noDataSeconds: String
        var notifyResolved: Bool
        var enabled: Bool
        var channels: [ChannelChoice]
        var hasChannels: Bool
        var ruleError: String?
        var ruleErrorField: String
    }

    struct RulesModel {
        var rules: [RuleRow]
        var hasRules: Bool
        var canAdminister: Bool
        var form: RuleForm
        var subRules: Bool
    }

    struct RuleModel {
        var rule: RuleRow
        var configText: String
        var canAdminister: Bool
        var form: RuleForm
        var subRules: Bool
    }

    struct ChannelRow {
        var id: String
        var kind: String
        var name: String
        var target: String
        var createdAt: String
    }

    struct ChannelsModel {
        var channels: [ChannelRow]
        var hasChannels: Bool
        var canAdminister: Bool
        var newSecret: String?
        var newSecretName: String
        var kinds: [Option]
        var channelName: String
        var channelTo: String
        var channelURL: String
        var channelError: String?
        var deliveries: [DeliveryRow]
        var hasDeliveries: Bool
        var subChannels: Bool
    }

    /// What a rule form posted, as text, so a refused save shows it again.
    struct RuleInput {
        var name: String
        var script: String
        var device: String
        var config: String
        var forSeconds: String
        var cooldownSeconds: String
        var repeatSeconds: String
        var noDataSeconds: String
        var notifyResolved: Bool
        var enabled: Bool
        var channelIDs: [String]
    }

    /// Open alerts are listed in this order of states, then newest first.
    static let openStates: [AlertState] = [.firing, .pending, .noData, .error]
    static let historyLimit = 50
    static let silenceHours = [1, 4, 24, 168]

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("alerts", use: list)
        group.post("alerts/silences", use: createSilence)
        group.post("alerts/silences/:id/delete", use: deleteSilence)
        group.get("alerts/rules", use: listRules)
        group.post("alerts/rules", use: createRule)
        group.get("alerts/rules/:id", use: showRule)
        group.post("alerts/rules/:id", use: updateRule)
        group.post("alerts/rules/:id/delete", use: deleteRule)
        group.get("alerts/channels", use: listChannels)
        group.post("alerts/channels", use: createChannel)
        group.post("alerts/channels/:id/test", use: testChannel)
        group.post("alerts/channels/:id/delete", use: deleteChannel)
        group.post("alerts/deliveries/:id/retry", use: retryDelivery)
        group.get("alerts/:id", use: show)
        group.post("alerts/:id/ack", use: acknowledge)
    }

    // MARK: Alerts

    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await listPage(context, flash: AlertNotice.flash(request))
    }

    @Sendable func show(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let tenantID = context.identity.tenant.id
        let alert = try await alerts.alert(tenantID: tenantID, id: try uuid(context, "Alert"))
        let names = try await lookups(tenantID: tenantID)
        let deliveries = try await alerts.deliveries(tenantID: tenantID, alertID: alert.id, limit: 200)
        let model = DetailModel(
            alert: Self.row(alert, names: names), lastNotifiedAt: alert.lastNotifiedAt?.iso8601 ?? "",
            hasNotified: alert.lastNotifiedAt != nil,
            deliveries: deliveries.map { Self.deliveryRow($0, channels: names.channels) },
            hasDeliveries: !deliveries.isEmpty, canWrite: context.identity.role.canWrite,
            canAdminister: context.identity.role.canAdminister, subAlerts: true)
        return try await pages.page(
            "alert", title: "Alert", section: .alerts, context: context, content: model,
            flash: AlertNotice.flash(request))
    }

    @Sendable func acknowledge(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try uuid(context, "Alert")
        _ = try await alerts.acknowledge(by: context.identity, id: id)
        let back = context.form.text("from") == "detail" ? "/alerts/\(id.uuidString.lowercased())" : "/alerts"
        return PageRenderer.redirect(to: "\(back)?notice=acknowledged")
    }

    @Sendable func createSilence(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let form = context.form
        do {
            guard let hours = form.text("hours").flatMap({ Int($0) }), Self.silenceHours.contains(hours) else {
                throw PlatformError.invalid("hours", "must be 1, 4, 24 or 168 hours")
            }
            var fields: [String: JSONValue] = [:]
            fields["until"] = .string(clock.now().adding(seconds: Double(hours * 3600)).iso8601)
            if let serial = form.text("device") {
                fields["device"] = .string(serial)
            } else {
                fields["device"] = JSONValue.null
            }
            if let comment = form.text("comment") { fields["comment"] = .string(comment) }
            _ = try await alerts.createSilence(by: context.identity, fields: fields)
            return PageRenderer.redirect(to: "/alerts?notice=silenced")
        } catch let error as PlatformError where Self.isFormError(error) {
            return try await listPage(
                context, silenceError: Self.describe(error), status: ErrorMapping.status(for: error.kind))
        }
    }

    @Sendable func deleteSilence(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await alerts.deleteSilence(by: context.identity, id: try uuid(context, "Silence"))
        return PageRenderer.redirect(to: "/alerts?notice=silence-removed")
    }

    private func listPage(
        _ context: AuthenticatedContext, silenceError: String? = nil, flash: LayoutModel.Flash? = nil,
        status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let tenantID = context.identity.tenant.id
        let names = try await lookups(tenantID: tenantID)
        let openAlerts = try await alerts.alerts(
            AlertQuery(tenantID: tenantID, states: Self.openStates, limit: AlertService.maximumListLimit))
        let ordered = Self.openStates.flatMap { state in openAlerts.filter { $0.state == state } }
        let resolved = try await alerts.alerts(AlertQuery(tenantID: tenantID, states: [.resolved], limit: Self.historyLimit))
            .sorted { ($0.resolvedAt ?? $0.startedAt) > ($1.resolvedAt ?? $1.startedAt) }
        let silences = try await alerts.silences(tenantID: tenantID, activeOnly: true).map { silence in
            SilenceRow(
                id: silence.id.uuidString.lowercased(),
                deviceText: Self.deviceText(silence.deviceSerial, names: names),
                silenceSerial: silence.deviceSerial ?? "", hasDevice: silence.deviceSerial != nil,
                ruleText: silence.ruleID.map { names.rules[$0] ?? "a deleted rule" } ?? "All rules",
                until: silence.until.iso8601, comment: silence.comment ?? "",
                createdByText: names.people[silence.createdBy] ?? "a former member")
        }
        let deviceOptions =
            [Option(value: "", label: "All devices", selected: false)]
            + names.deviceList.map { Option(value: $0.serial, label: "\($0.name) (\($0.serial))", selected: false) }
        let hourOptions = Self.silenceHours.map { hours in
            Option(value: String(hours), label: hours == 168 ? "7 days" : hours == 1 ? "1 hour" : "\(hours) hours", selected: hours == 1)
        }
        let openRows = ordered.map { Self.row($0, names: names) }
        let historyRows = resolved.map { Self.row($0, names: names) }
        let model = ListModel(
            openAlerts: openRows, hasOpen: !openRows.isEmpty, history: historyRows, hasHistory: !historyRows.isEmpty,
            silences: silences, hasSilences: !silences.isEmpty, deviceOptions: deviceOptions, hourOptions: hourOptions,
            canWrite: context.identity.role.canWrite, silenceError: silenceError, subAlerts: true)
        return try await pages.page(
            "alerts", title: "Alerts", section: .alerts, context: context, content: model, flash: flash, status: status)
    }

    // MARK: Rules

    @Sendable func listRules(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await rulesPage(context, input: Self.newRuleInput, flash: AlertNotice.flash(request))
    }

    @Sendable func createRule(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let input = try await ruleInput(request, context: context)
        do {
            _ = try await alerts.createRule(by: context.identity, fields: try Self.ruleFields(input))
            return PageRenderer.redirect(to: "/alerts/rules?notice=rule-created")
        } catch let error as PlatformError where Self.isFormError(error) {
            return try await rulesPage(
                context, input: input, error: error, status: ErrorMapping.status(for: error.kind))
        }
    }

    @Sendable func showRule(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let rule = try await alerts.rule(tenantID: context.identity.tenant.id, id: try uuid(context, "Rule"))
        return try await rulePage(context, rule: rule, input: Self.input(rule), flash: AlertNotice.flash(request))
    }

    @Sendable func updateRule(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try uuid(context, "Rule")
        let rule = try await alerts.rule(tenantID: context.identity.tenant.id, id: id)
        let input = try await ruleInput(request, context: context)
        do {
            _ = try await alerts.updateRule(by: context.identity, id: id, fields: try Self.ruleFields(input))
            return PageRenderer.redirect(to: "/alerts/rules/\(id.uuidString.lowercased())?notice=rule-saved")
        } catch let error as PlatformError where Self.isFormError(error) {
            return try await rulePage(
                context, rule: rule, input: input, error: error, status: ErrorMapping.status(for: error.kind))
        }
    }

    @Sendable func deleteRule(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await alerts.deleteRule(by: context.identity, id: try uuid(context, "Rule"))
        return PageRenderer.redirect(to: "/alerts/rules?notice=rule-deleted")
    }

    private func rulesPage(
        _ context: AuthenticatedContext, input: RuleInput, error: PlatformError? = nil, flash: LayoutModel.Flash? = nil,
        status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let tenantID = context.identity.tenant.id
        let names = try await lookups(tenantID: tenantID)
        let rows = try await alerts.rules(tenantID: tenantID).map { Self.ruleRow($0, names: names) }
        let form = try await ruleForm(
            tenantID: tenantID, names: names, input: input, action: "/alerts/rules", isNew: true, error: error)
        return try await pages.page(
            "alert-rules", title: "Alert rules", section: .alerts, context: context,
            content: RulesModel(
                rules: rows, hasRules: !rows.isEmpty, canAdminister: context.identity.role.canAdminister, form: form,
                subRules: true),
            flash: flash, status: status)
    }

    private func rulePage(
        _ context: AuthenticatedContext, rule: AlertRule, input: RuleInput, error: PlatformError? = nil,
        flash: LayoutModel.Flash? = nil, status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let tenantID = context.identity.tenant.id
        let names = try await lookups(tenantID: tenantID)
        let form = try await ruleForm(
            tenantID: tenantID, names: names, input: input, action: "/alerts/rules/\(rule.id.uuidString.lowercased())",
            isNew: false, error: error)
        return try await pages.page(
            "alert-rule", title: rule.name, section: .alerts, context: context,
            content: RuleModel(
                rule: Self.ruleRow(rule, names: names), configText: ScriptPages.prettyConfig(rule.configJSON),
                canAdminister: context.identity.role.canAdminister, form: form, subRules: true),
            flash: flash, status: status)
    }

    private func ruleForm(
        tenantID: UUID, names: Lookups, input: RuleInput, action: String, isNew: Bool, error: PlatformError?
    ) async throws -> RuleForm {
        let scriptNames = try await alerts.scriptNames(tenantID: tenantID)
        let channels = names.channelList.map {
            ChannelChoice(
                id: $0.id.uuidString.lowercased(), name: $0.name, kind: $0.kind.rawValue,
                checked: input.channelIDs.contains($0.id.uuidString.lowercased()))
        }
        let scripts = scriptNames.scripts.map { Option(value: $0, label: "\($0) (your script)", selected: $0 == input.script) }
        return RuleForm(
            action: action, isNew: isNew, submitLabel: isNew ? "Create rule" : "Save rule", name: input.name,
            plugins: scriptNames.plugins.map { Option(value: $0, label: "\($0) (built-in)", selected: $0 == input.script) },
            scripts: scripts, hasScripts: !scripts.isEmpty,
            devices: names.deviceList.map {
                Option(value: $0.serial, label: "\($0.name) (\($0.serial))", selected: $0.serial == input.device)
            },
            deviceChosen: !input.device.isEmpty, config: input.config, forSeconds: input.forSeconds,
            cooldownSeconds: input.cooldownSeconds, repeatSeconds: input.repeatSeconds, noDataSeconds: input.noDataSeconds,
            notifyResolved: input.notifyResolved, enabled: input.enabled, channels: channels, hasChannels: !channels.isEmpty,
            ruleError: error.map(Self.describe), ruleErrorField: error?.field ?? "")
    }

    /// The rule form's fields; `channels` is a repeated field, read from the body itself (the
    /// form fields keep only a name's last value).
    private func ruleInput(_ request: Request, context: AuthenticatedContext) async throws -> RuleInput {
        var request = request
        let body = try await request.collectBody(upTo: WebMiddleware.maximumFormBytes)
        let form = context.form
        return RuleInput(
            name: form.text("name") ?? "", script: form.text("script") ?? "", device: form.text("device") ?? "",
            config: form.text("config") ?? "{}", forSeconds: form.text("for_seconds") ?? "",
            cooldownSeconds: form.text("cooldown_seconds") ?? "", repeatSeconds: form.text("repeat_seconds") ?? "",
            noDataSeconds: form.text("no_data_seconds") ?? "", notifyResolved: form["notify_resolved"] != nil,
            enabled: form["enabled"] != nil, channelIDs: Self.values(named: "channels", in: String(buffer: body)))
    }

    static let newRuleInput = RuleInput(
        name: "", script: "threshold", device: "", config: "{}", forSeconds: "0",
        cooldownSeconds: String(AlertRule.defaultCooldownSeconds), repeatSeconds: "", noDataSeconds: "", notifyResolved: true,
        enabled: true, channelIDs: [])

    static func input(_ rule: AlertRule) -> RuleInput {
        RuleInput(
            name: rule.name, script: rule.script, device: rule.deviceSerial ?? "",
            config: ScriptPages.prettyConfig(rule.configJSON), forSeconds: String(rule.forSeconds),
            cooldownSeconds: String(rule.cooldownSeconds), repeatSeconds: rule.repeatSeconds.map { String($0) } ?? "",
            noDataSeconds: rule.noDataSeconds.map { String($0) } ?? "", notifyResolved: rule.notifyResolved,
            enabled: rule.enabled, channelIDs: rule.channelIDs.map { $0.uuidString.lowercased() })
    }

    /// The fields `AlertService` takes, from the form's text: every setting is sent, so an
    /// empty number means its default (`for_seconds` 0, `cooldown_seconds` 900) or none.
    static func ruleFields(_ input: RuleInput) throws -> [String: JSONValue] {
        guard let config = try? JSONDecoder().decode(JSONValue.self, from: Data(input.config.utf8)) else {
            throw PlatformError.invalid("config", "is not valid JSON", code: "malformed_json")
        }
        let forSeconds = try Self.seconds(input.forSeconds, "for_seconds") ?? .number(0)
        let cooldownSeconds = try Self.seconds(input.cooldownSeconds, "cooldown_seconds") ?? .null
        let repeatSeconds = try Self.seconds(input.repeatSeconds, "repeat_seconds") ?? .null
        let noDataSeconds = try Self.seconds(input.noDataSeconds, "no_data_seconds") ?? .null
        var fields: [String: JSONValue] = [:]
        fields["name"] = .string(input.name)
        fields["script"] = .string(input.script)
        fields["device"] = input.device.isEmpty ? JSONValue.null : JSONValue.string(input.device)
        fields["config"] = config
        fields["for_seconds"] = forSeconds
        fields["cooldown_seconds"] = cooldownSeconds
        fields["repeat_seconds"] = repeatSeconds
        fields["no_data_seconds"] = noDataSeconds
        fields["notify_resolved"] = .bool(input.notifyResolved)
        fields["enabled"] = .bool(input.enabled)
        fields["channels"] = .array(input.channelIDs.map { JSONValue.string($0) })
        return fields
    }

    /// A number field: nil when empty, else a whole number (the service checks the range).
    private static func seconds(_ text: String, _ field: String) throws -> JSONValue? {
        guard !text.isEmpty else { return nil }
        guard let value = Int(text) else {
            throw PlatformError.invalid(field, "must be a whole number of seconds")
        }
        return .number(Double(value))
    }

    // MARK: Channels

    @Sendable func listChannels(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await channelsPage(context, flash: AlertNotice.flash(request))
    }

    @Sendable func createChannel(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let form = context.form
        let kind = form.text("kind") ?? ""
        let name = form.text("name") ?? ""
        let to = form.text("to") ?? ""
        let url = form.text("url") ?? ""
        var fields: [String: JSONValue] = ["kind": .string(kind), "name": .string(name)]
        switch kind {
        case AlertChannel.Kind.email.rawValue:
            let addresses = to.split(whereSeparator: { $0 == "," || $0 == ";" || $0.isWhitespace }).map { String($0) }
            fields["to"] = .array(addresses.map { JSONValue.string($0) })
        case AlertChannel.Kind.webhook.rawValue:
            fields["url"] = .string(url)
        default:
            break
        }
        do {
            let channel = try await alerts.createChannel(by: context.identity, fields: fields)
            return try await channelsPage(
                context, newSecret: channel.secret, newSecretName: channel.name,
                flash: .init(message: "Channel \(channel.name) created.", isError: false), status: .created)
        } catch let error as PlatformError where Self.isFormError(error) {
            return try await channelsPage(
                context, kind: kind, name: name, to: to, url: url, error: Self.describe(error),
                status: ErrorMapping.status(for: error.kind))
        }
    }

    /// Sends a test through the channel now and shows how it went.
    @Sendable func testChannel(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try uuid(context, "Channel")
        let channel = try await alerts.channel(tenantID: context.identity.tenant.id, id: id)
        let delivery = try await alerts.testChannel(by: context.identity, id: id)
        let flash: LayoutModel.Flash
        if delivery.status == .sent {
            flash = LayoutModel.Flash(message: "Test sent to \(channel.name).", isError: false)
        } else {
            let reason = delivery.lastError ?? "the delivery is " + delivery.status.rawValue
            flash = LayoutModel.Flash(message: "Test failed: " + reason, isError: true)
        }
        return try await channelsPage(context, flash: flash)
    }

    @Sendable func deleteChannel(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await alerts.deleteChannel(by: context.identity, id: try uuid(context, "Channel"))
        return PageRenderer.redirect(to: "/alerts/channels?notice=channel-deleted")
    }

    @Sendable func retryDelivery(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let delivery = try await alerts.retryDelivery(by: context.identity, id: try uuid(context, "Delivery"))
        let back = delivery.alertID.map { "/alerts/\($0.uuidString.lowercased())" } ?? "/alerts/channels"
        return PageRenderer.redirect(to: "\(back)?notice=delivery-retried")
    }

    private func channelsPage(
        _ context: AuthenticatedContext, newSecret: String? = nil, newSecretName: String = "", kind: String = "webhook",
        name: String = "", to: String = "", url: String = "", error: String? = nil, flash: LayoutModel.Flash? = nil,
        status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let tenantID = context.identity.tenant.id
        let names = try await lookups(tenantID: tenantID)
        let rows = names.channelList.map {
            ChannelRow(
                id: $0.id.uuidString.lowercased(), kind: $0.kind.rawValue, name: $0.name,
                target: $0.kind == .email ? $0.recipients.joined(separator: ", ") : ($0.url ?? ""),
                createdAt: $0.createdAt.iso8601)
        }
        let deliveries = try await alerts.deliveries(tenantID: tenantID, alertID: nil, limit: 20)
        let model = ChannelsModel(
            channels: rows, hasChannels: !rows.isEmpty, canAdminister: context.identity.role.canAdminister,
            newSecret: newSecret, newSecretName: newSecretName,
            kinds: ["webhook", "email"].map { Option(value: $0, label: $0, selected: $0 == kind) }, channelName: name,
            channelTo: to, channelURL: url, channelError: error,
            deliveries: deliveries.map { Self.deliveryRow($0, channels: names.channels) },
            hasDeliveries: !deliveries.isEmpty, subChannels: true)
        return try await pages.page(
            "alert-channels", title: "Alert channels", section: .alerts, context: context, content: model, flash: flash,
            status: status)
    }

    // MARK: Shared

    /// Names to show instead of ids: devices, rules, channels and people of the tenant.
    struct Lookups {
        var deviceList: [(serial: String, name: String)]
        var devices: [String: String]
        var rules: [UUID: String]
        var channelList: [AlertChannel]
        var channels: [UUID: String]
        var people: [UUID: String]
    }

    private func lookups(tenantID: UUID) async throws -> Lookups {
        let deviceList = try await devices.summaries(tenantID: tenantID).map { (serial: $0.device.serial, name: $0.device.name) }
        let channelList = try await alerts.channels(tenantID: tenantID)
        let ruleList = try await alerts.rules(tenantID: tenantID)
        let memberList = try await members.members(tenantID: tenantID)
        var deviceNames: [String: String] = [:]
        for device in deviceList { deviceNames[device.serial] = device.name }
        var ruleNames: [UUID: String] = [:]
        for rule in ruleList { ruleNames[rule.id] = rule.name }
        var channelNames: [UUID: String] = [:]
        for channel in channelList { channelNames[channel.id] = channel.name }
        var people: [UUID: String] = [:]
        for member in memberList { people[member.0.id] = member.0.email }
        return Lookups(
            deviceList: deviceList, devices: deviceNames, rules: ruleNames, channelList: channelList, channels: channelNames,
            people: people)
    }

    static func row(_ alert: Alert, names: Lookups) -> AlertRow {
        row(
            alert, deviceName: names.devices[alert.deviceSerial] ?? alert.deviceSerial,
            ruleName: names.rules[alert.ruleID] ?? "a deleted rule",
            acknowledgedBy: alert.acknowledgedBy.map { names.people[$0] ?? "a former member" } ?? "")
    }

    static func row(_ alert: Alert, deviceName: String, ruleName: String, acknowledgedBy: String) -> AlertRow {
        AlertRow(
            id: alert.id.uuidString.lowercased(), serial: alert.deviceSerial, deviceName: deviceName,
            ruleID: alert.ruleID.uuidString.lowercased(), ruleName: ruleName, key: alert.key, state: alert.state.rawValue,
            severity: alert.severity, message: alert.message, valueText: alert.value.map(Self.number) ?? "—",
            startedAt: alert.startedAt.iso8601, firedAt: alert.firedAt?.iso8601 ?? "", hasFired: alert.firedAt != nil,
            resolvedAt: alert.resolvedAt?.iso8601 ?? "", hasResolved: alert.resolvedAt != nil,
            acknowledged: alert.acknowledgedAt != nil, acknowledgedAt: alert.acknowledgedAt?.iso8601 ?? "",
            acknowledgedByText: acknowledgedBy, isOpen: alert.state.isOpen)
    }

    /// The newest alerts of one device, for its page.
    static func deviceAlertRows(_ alerts: AlertService, tenantID: UUID, serial: String, deviceName: String) async throws
        -> [AlertRow]
    {
        let ruleList = try await alerts.rules(tenantID: tenantID)
        var ruleNames: [UUID: String] = [:]
        for rule in ruleList { ruleNames[rule.id] = rule.name }
        let found = try await alerts.alerts(AlertQuery(tenantID: tenantID, deviceSerial: serial, limit: 20))
        return found.map {
            Self.row($0, deviceName: deviceName, ruleName: ruleNames[$0.ruleID] ?? "a deleted rule", acknowledgedBy: "")
        }
    }

    static func ruleRow(_ rule: AlertRule, names: Lookups) -> RuleRow {
        let channels = rule.channelIDs.map { names.channels[$0] ?? "a deleted channel" }
        var timing = ["for \(rule.forSeconds) s", "cooldown \(rule.cooldownSeconds) s"]
        if let repeatSeconds = rule.repeatSeconds { timing.append("repeat every \(repeatSeconds) s") }
        if let noData = rule.noDataSeconds { timing.append("no data after \(noData) s") }
        if rule.notifyResolved { timing.append("notifies when resolved") }
        return RuleRow(
            id: rule.id.uuidString.lowercased(), name: rule.name, script: rule.script,
            deviceText: Self.deviceText(rule.deviceSerial, names: names),
            ruleSerial: rule.deviceSerial ?? "", hasDevice: rule.deviceSerial != nil, enabled: rule.enabled,
            channelsText: channels.isEmpty ? "none" : channels.joined(separator: ", "),
            timingText: timing.joined(separator: ", "))
    }

    /// "Name (serial)" of a device, or "All devices" for none.
    static func deviceText(_ serial: String?, names: Lookups) -> String {
        guard let serial else { return "All devices" }
        guard let name = names.devices[serial] else { return serial }
        return "\(name) (\(serial))"
    }

    static func deliveryRow(_ delivery: AlertDelivery, channels: [UUID: String]) -> DeliveryRow {
        DeliveryRow(
            id: delivery.id.uuidString.lowercased(), event: delivery.event.rawValue,
            channelName: channels[delivery.channelID] ?? "a deleted channel", status: delivery.status.rawValue,
            attempts: delivery.attempts, createdAt: delivery.createdAt.iso8601, sentAt: delivery.sentAt?.iso8601 ?? "",
            hasSent: delivery.sentAt != nil, nextAttemptAt: delivery.nextAttemptAt.iso8601,
            waiting: delivery.status == .pending || delivery.status == .retrying, lastError: delivery.lastError ?? "",
            hasLastError: delivery.lastError != nil, failed: delivery.status == .failed,
            deliveryAlertID: delivery.alertID?.uuidString.lowercased() ?? "", hasAlert: delivery.alertID != nil)
    }

    static func number(_ value: Double) -> String {
        String(format: "%g", value)
    }

    /// Every value of a repeated field of a urlencoded body, in order.
    static func values(named name: String, in body: String) -> [String] {
        var values: [String] = []
        for pair in body.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, Self.decode(parts[0]) == name, let value = Self.decode(parts[1]) else { continue }
            let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { values.append(trimmed) }
        }
        return values
    }

    private static func decode(_ part: Substring) -> String? {
        String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    /// A refused field's message with the field named as the form labels it.
    static func describe(_ error: PlatformError) -> String {
        guard let field = error.field else { return error.message }
        let label: String
        if field.hasPrefix("to[") {
            label = "An address in To"
        } else if field.hasPrefix("channels[") {
            label = "A channel"
        } else {
            label = fieldLabels[field] ?? field
        }
        return "\(label) \(error.message)"
    }

    static let fieldLabels: [String: String] = [
        "name": "Name", "script": "Script", "device": "Device", "config": "Config", "for_seconds": "Pending for",
        "cooldown_seconds": "Cooldown", "repeat_seconds": "Repeat every", "no_data_seconds": "No data after",
        "notify_resolved": "Notify when resolved", "enabled": "Enabled", "channels": "Channels", "kind": "Kind",
        "to": "To", "url": "URL", "until": "Until", "hours": "Duration", "comment": "Comment", "rule": "Rule",
    ]

    private static func isFormError(_ error: PlatformError) -> Bool {
        [.validation, .conflict].contains(error.kind)
    }

    private func uuid(_ context: AuthenticatedContext, _ what: String) throws -> UUID {
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else {
            throw PlatformError.notFound(what)
        }
        return id
    }
}

/// Fixed messages the alert pages' redirects ask for (`?notice=CODE`), like `WebNotice`.
enum AlertNotice {
    static let messages: [String: String] = [
        "acknowledged": "Alert acknowledged: its reminders stop.",
        "silenced": "Silence added: matching alerts notify nobody until it ends (they are still evaluated and listed).",
        "silence-removed": "Silence removed.",
        "rule-created": "Rule created: it judges every new sample from now on.",
        "rule-saved": "Rule saved.",
        "rule-deleted": "Rule deleted.",
        "channel-deleted": "Channel deleted.",
        "delivery-retried": "Delivery sent again: its status is below.",
    ]

    static func flash(_ request: Request) -> LayoutModel.Flash? {
        request.uri.queryParameters["notice"].flatMap { messages[String($0)] }.map { .init(message: $0, isError: false) }
    }
}
