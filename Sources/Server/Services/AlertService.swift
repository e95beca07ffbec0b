import Crypto
import Foundation
import Notify
import PlatformCore
import Scripting
import Storage

/// The rules for alert rules, channels, alerts, silences and deliveries, shared by the JSON API
/// and the dashboard. Everyone in a tenant reads; members (and up) acknowledge and silence;
/// owners and admins change rules and channels, send tests and retry dead letters.
struct AlertService: Sendable {
    let store: any PlatformStore
    let catalog: PluginCatalog
    let deliveries: AlertDeliveryService
    let evaluator: AlertEvaluator
    let clock: any WallClock
    let isProduction: Bool
    let publicURL: String

    static let maximumListLimit = 500

    /// How far evaluation is for a tenant: samples waiting, and its timer runs.
    struct EvaluationStatus: Encodable {
        var queuedSamples: Int
        var timerRuns: Int
        var lastTimerRunAt: Timestamp?

        enum CodingKeys: String, CodingKey {
            case queuedSamples = "queued_samples"
            case timerRuns = "timer_runs"
            case lastTimerRunAt = "last_timer_run_at"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(queuedSamples, forKey: .queuedSamples)
            try container.encode(timerRuns, forKey: .timerRuns)
            try container.encode(lastTimerRunAt, forKey: .lastTimerRunAt)
        }
    }

    func status(tenantID: UUID) async throws -> EvaluationStatus {
        let run = evaluator.status.withLock { $0.timerRuns[tenantID] }
        return EvaluationStatus(
            queuedSamples: try await store.alertQueueLength(tenantID: tenantID), timerRuns: run?.count ?? 0,
            lastTimerRunAt: run?.at)
    }

    // MARK: Channels

    func channels(tenantID: UUID) async throws -> [AlertChannel] {
        try await store.alertChannels(tenantID: tenantID)
    }

    func channel(tenantID: UUID, id: UUID) async throws -> AlertChannel {
        guard let channel = try await store.alertChannel(tenantID: tenantID, id: id) else { throw PlatformError.notFound("Channel") }
        return channel
    }

    /// Creates a channel; a webhook gets a new signing secret (answered only here).
    func createChannel(by identity: Identity, fields: [String: JSONValue]) async throws -> AlertChannel {
        try requireAdministrator(identity)
        try Self.allow(fields, ["kind", "name", "to", "url"])
        guard case .string(let kindName) = fields["kind"] ?? .null else {
            throw PlatformError.invalid("kind", "is required: email or webhook", code: "missing_field")
        }
        guard let kind = AlertChannel.Kind(rawValue: kindName) else {
            throw PlatformError.invalid("kind", "must be email or webhook", code: "invalid_enum")
        }
        var channel = AlertChannel(
            id: UUID(), tenantID: identity.tenant.id, kind: kind, name: try name(fields), createdAt: clock.now())
        switch kind {
        case .email:
            guard fields["url"] == nil else { throw PlatformError.invalid("url", "is for webhook channels", code: "unknown_field") }
            channel.recipients = try recipients(fields["to"])
        case .webhook:
            guard fields["to"] == nil else { throw PlatformError.invalid("to", "is for email channels", code: "unknown_field") }
            channel.url = try webhookURL(fields["url"])
            channel.secret = Secrets.generate(prefix: "whsec_")
        }
        try await store.createAlertChannel(channel)
        return channel
    }

    func updateChannel(by identity: Identity, id: UUID, fields: [String: JSONValue]) async throws -> AlertChannel {
        try requireAdministrator(identity)
        var channel = try await channel(tenantID: identity.tenant.id, id: id)
        try Self.allow(fields, ["name", "to", "url"])
        if fields["name"] != nil { channel.name = try name(fields) }
        if let to = fields["to"] {
            guard channel.kind == .email else { throw PlatformError.invalid("to", "is for email channels", code: "unknown_field") }
            channel.recipients = try recipients(to)
        }
        if let url = fields["url"] {
            guard channel.kind == .webhook else { throw PlatformError.invalid("url", "is for webhook channels", code: "unknown_field") }
            channel.url = try webhookURL(url)
        }
        guard try await store.updateAlertChannel(channel) else { throw PlatformError.notFound("Channel") }
        return channel
    }

    func deleteChannel(by identity: Identity, id: UUID) async throws {
        try requireAdministrator(identity)
        guard try await store.deleteAlertChannel(tenantID: identity.tenant.id, id: id) else { throw PlatformError.notFound("Channel") }
    }

    /// Sends a test notification through the channel now and answers with its delivery.
    func testChannel(by identity: Identity, id: UUID) async throws -> AlertDelivery {
        try requireAdministrator(identity)
        let channel = try await channel(tenantID: identity.tenant.id, id: id)
        let deliveryID = UUID()
        let now = clock.now()
        let payload = NotificationPayload(
            testDelivery: deliveryID, channel: channel, tenant: identity.tenant, publicURL: publicURL)
        let delivery = AlertDelivery(
            id: deliveryID, tenantID: identity.tenant.id, alertID: nil, channelID: channel.id, event: .test,
            nextAttemptAt: now.adding(seconds: AlertDeliveryService.leaseSeconds), payloadJSON: payload.json, createdAt: now)
        try await store.applyAlertChanges(AlertChanges(tenantID: identity.tenant.id, deliveries: [delivery]))
        return try await deliveries.sendNow(tenantID: identity.tenant.id, id: deliveryID) ?? delivery
    }

    private func name(_ fields: [String: JSONValue]) throws -> String {
        guard let value = fields["name"], value != .null else {
            throw PlatformError.invalid("name", "is required", code: "missing_field")
        }
        guard case .string(let text) = value else { throw PlatformError.invalid("name", "has the wrong type", code: "wrong_type") }
        return try IdentifierRules.validName(text, field: "name")
    }

    private func recipients(_ value: JSONValue?) throws -> [String] {
        guard case .array(let items) = value ?? .null, !items.isEmpty else {
            throw PlatformError.invalid("to", "must be a list of 1–\(AlertChannel.maximumRecipients) email addresses", code: "missing_field")
        }
        guard items.count <= AlertChannel.maximumRecipients else {
            throw PlatformError.invalid("to", "must be a list of 1–\(AlertChannel.maximumRecipients) email addresses")
        }
        var addresses: [String] = []
        for (index, item) in items.enumerated() {
            guard case .string(let text) = item, MailMessage.isAddress(text.trimmingCharacters(in: .whitespaces)) else {
                throw PlatformError.invalid("to[\(index)]", "is not an email address")
            }
            let address = text.trimmingCharacters(in: .whitespaces)
            if !addresses.contains(address) { addresses.append(address) }
        }
        return addresses
    }

    /// `https://` in production; `http://` too in development (local receivers). In
    /// production a URL naming a loopback, private or link-local address is refused.
    private func webhookURL(_ value: JSONValue?) throws -> String {
        guard case .string(let text) = value ?? .null else {
            throw PlatformError.invalid("url", "is required", code: "missing_field")
        }
        guard text.utf8.count <= 2000, let components = URLComponents(string: text), let host = components.host, !host.isEmpty,
            components.user == nil, components.password == nil
        else {
            throw PlatformError.invalid("url", "must be an absolute http(s) URL without credentials")
        }
        switch components.scheme?.lowercased() {
        case "https": break
        case "http" where !isProduction: break
        case "http": throw PlatformError.invalid("url", "must use https:// in production", code: "insecure_url")
        default: throw PlatformError.invalid("url", "must be an absolute http(s) URL without credentials")
        }
        if isProduction, Self.isInternalHost(host) {
            throw PlatformError.invalid("url", "must not point at a loopback, private or link-local address", code: "internal_url")
        }
        return text
    }

    /// Whether a URL's host names this machine or a private network by itself: `localhost`
    /// and the `.local`/`.internal` names, and IP literals in the loopback, private,
    /// link-local, shared and unspecified ranges (IPv4, IPv6 and IPv4-mapped IPv6). IPv4 in the
    /// short, octal, hex or numeric forms resolvers accept (`127.1`, `0177.0.0.1`, `0x7f.1`,
    /// `2130706433`) counts as internal: only the dotted four-decimal form is judged by its range.
    static func isInternalHost(_ rawHost: String) -> Bool {
        var host = rawHost.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        while host.hasSuffix(".") { host.removeLast() }
        if host == "localhost" || host.hasSuffix(".localhost") || host.hasSuffix(".local") || host.hasSuffix(".internal") {
            return true
        }
        // As browsers do: a host whose last label is a number is an IPv4 address in some form.
        let last = host.split(separator: ".").last.map(String.init) ?? ""
        if !host.contains(":"), !last.isEmpty, last.allSatisfy(\.isNumber) || last.hasPrefix("0x") {
            var address = in_addr()
            // Only the plain dotted-decimal form is judged by its range; the short, octal, hex
            // and numeric forms that resolvers also accept are refused outright.
            guard inet_pton(AF_INET, host, &address) == 1 else { return true }
            return isInternal(ipv4: withUnsafeBytes(of: address) { Array($0) })
        }
        guard host.contains(":") else { return false }
        var address = in6_addr()
        guard inet_pton(AF_INET6, host, &address) == 1 else { return true }
        let bytes = withUnsafeBytes(of: address) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == bytes[11], bytes[10] == 0 || bytes[10] == 0xFF {
            // IPv4-compatible (`::`, `::1` among them) and IPv4-mapped: judged by the IPv4.
            return isInternal(ipv4: Array(bytes[12..<16]))
        }
        // Unique local fc00::/7 and link-local fe80::/10.
        return bytes[0] & 0xFE == 0xFC || (bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80)
    }

    private static func isInternal(ipv4 octets: [UInt8]) -> Bool {
        switch (octets[0], octets[1]) {
        case (127, _), (10, _), (0, _), (169, 254), (192, 168): true
        case (172, 16...31), (100, 64...127): true
        default: false
        }
    }

    // MARK: Rules

    func rules(tenantID: UUID) async throws -> [AlertRule] {
        try await store.alertRules(tenantID: tenantID)
    }

    func rule(tenantID: UUID, id: UUID) async throws -> AlertRule {
        guard let rule = try await store.alertRule(tenantID: tenantID, id: id) else { throw PlatformError.notFound("Rule") }
        return rule
    }

    static let ruleFields: Set<String> = [
        "name", "script", "device", "config", "for_seconds", "cooldown_seconds", "repeat_seconds", "notify_resolved",
        "no_data_seconds", "channels", "enabled",
    ]

    func createRule(by identity: Identity, fields: [String: JSONValue]) async throws -> AlertRule {
        try requireAdministrator(identity)
        guard fields["name"] != nil else { throw PlatformError.invalid("name", "is required", code: "missing_field") }
        guard fields["script"] != nil else { throw PlatformError.invalid("script", "is required", code: "missing_field") }
        let now = clock.now()
        var rule = AlertRule(id: UUID(), tenantID: identity.tenant.id, name: "", script: "", deviceSerial: nil, createdAt: now)
        try await apply(fields, to: &rule, tenantID: identity.tenant.id)
        try await store.createAlertRule(rule)
        return rule
    }

    /// Changes the given settings; the rule's alerts stay, and so does its per-device state
    /// unless the script changed.
    func updateRule(by identity: Identity, id: UUID, fields: [String: JSONValue]) async throws -> AlertRule {
        try requireAdministrator(identity)
        var rule = try await rule(tenantID: identity.tenant.id, id: id)
        let previousScript = rule.script
        try await apply(fields, to: &rule, tenantID: identity.tenant.id)
        rule.updatedAt = clock.now()
        guard try await store.updateAlertRule(rule) else { throw PlatformError.notFound("Rule") }
        if rule.script != previousScript { try await store.resetAlertRuleStates(tenantID: rule.tenantID, ruleID: rule.id) }
        return rule
    }

    func deleteRule(by identity: Identity, id: UUID) async throws {
        try requireAdministrator(identity)
        guard try await store.deleteAlertRule(tenantID: identity.tenant.id, id: id) else { throw PlatformError.notFound("Rule") }
    }

    /// The alert scripts a rule may name: the built-in plugins and the tenant's alert scripts.
    func scriptNames(tenantID: UUID) async throws -> (plugins: [String], scripts: [String]) {
        let plugins = catalog.plugins.values.filter { $0.hook == .alert }.map(\.name).sorted()
        let scripts = try await store.scripts(tenantID: tenantID).filter { $0.hook == ScriptHook.alert.rawValue }.map(\.name)
        return (plugins, scripts)
    }

    private func apply(_ fields: [String: JSONValue], to rule: inout AlertRule, tenantID: UUID) async throws {
        try Self.allow(fields, Self.ruleFields)
        if fields["name"] != nil { rule.name = try name(fields) }
        if let value = fields["script"] {
            guard case .string(let script) = value else { throw PlatformError.invalid("script", "has the wrong type", code: "wrong_type") }
            let names = try await scriptNames(tenantID: tenantID)
            guard names.plugins.contains(script) || names.scripts.contains(script) else {
                throw PlatformError.invalid("script", "names no built-in alert plugin or alert script of this tenant", code: "unknown_script")
            }
            rule.script = script
        }
        if let value = fields["device"] {
            switch value {
            case .null: rule.deviceSerial = nil
            case .string(let serial):
                guard try await store.device(tenantID: tenantID, serial: serial) != nil else {
                    throw PlatformError.invalid("device", "names no device of this tenant", code: "unknown_device")
                }
                rule.deviceSerial = serial
            default: throw PlatformError.invalid("device", "must be a serial or null", code: "wrong_type")
            }
        }
        if let value = fields["config"] {
            guard case .object = value else { throw PlatformError.invalid("config", "must be a JSON object", code: "wrong_type") }
            let text = String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
            guard text.utf8.count <= 16 * 1024 else { throw PlatformError.invalid("config", "must be at most 16 KiB as JSON") }
            rule.configJSON = text
        }
        if let value = fields["for_seconds"] { rule.forSeconds = try seconds(value, "for_seconds", minimum: 0) ?? 0 }
        if let value = fields["cooldown_seconds"] {
            rule.cooldownSeconds = try seconds(value, "cooldown_seconds", minimum: 0) ?? AlertRule.defaultCooldownSeconds
        }
        if let value = fields["repeat_seconds"] { rule.repeatSeconds = try seconds(value, "repeat_seconds", minimum: 60) }
        if let value = fields["no_data_seconds"] { rule.noDataSeconds = try seconds(value, "no_data_seconds", minimum: 60) }
        if let value = fields["notify_resolved"] { rule.notifyResolved = try flag(value, "notify_resolved") }
        if let value = fields["enabled"] { rule.enabled = try flag(value, "enabled") }
        if let value = fields["channels"] {
            guard case .array(let items) = value, items.count <= AlertRule.maximumChannels else {
                throw PlatformError.invalid("channels", "must be a list of at most \(AlertRule.maximumChannels) channel ids")
            }
            let existing = Set(try await store.alertChannels(tenantID: tenantID).map(\.id))
            var ids: [UUID] = []
            for (index, item) in items.enumerated() {
                guard case .string(let text) = item, let id = UUID(uuidString: text), existing.contains(id) else {
                    throw PlatformError.invalid("channels[\(index)]", "names no channel of this tenant", code: "unknown_channel")
                }
                if !ids.contains(id) { ids.append(id) }
            }
            rule.channelIDs = ids
        }
    }

    private func seconds(_ value: JSONValue, _ field: String, minimum: Int) throws -> Int? {
        switch value {
        case .null: return nil
        case .number(let number) where number.rounded() == number && number >= Double(minimum) && number <= Double(AlertRule.longestSeconds):
            return Int(number)
        default:
            throw PlatformError.invalid(field, "must be a whole number of seconds from \(minimum) to \(AlertRule.longestSeconds), or null")
        }
    }

    private func flag(_ value: JSONValue, _ field: String) throws -> Bool {
        guard case .bool(let flag) = value else { throw PlatformError.invalid(field, "must be true or false", code: "wrong_type") }
        return flag
    }

    private static func allow(_ fields: [String: JSONValue], _ allowed: Set<String>) throws {
        for key in fields.keys.sorted() where !allowed.contains(key) {
            throw PlatformError.invalid(key, "is not a known field", code: "unknown_field")
        }
    }

    // MARK: Alerts

    func alerts(_ query: AlertQuery) async throws -> [Alert] {
        try await store.alerts(query)
    }

    func alert(tenantID: UUID, id: UUID) async throws -> Alert {
        guard let alert = try await store.alert(tenantID: tenantID, id: id) else { throw PlatformError.notFound("Alert") }
        return alert
    }

    /// Records who acknowledged the alert: its reminders stop (its evaluation does not).
    func acknowledge(by identity: Identity, id: UUID) async throws -> Alert {
        try identity.requireWrite()
        guard let alert = try await store.acknowledgeAlert(tenantID: identity.tenant.id, id: id, userID: identity.user.id, at: clock.now())
        else { throw PlatformError.notFound("Alert") }
        return alert
    }

    // MARK: Silences

    func silences(tenantID: UUID, activeOnly: Bool) async throws -> [AlertSilence] {
        try await store.silences(tenantID: tenantID, activeAt: activeOnly ? clock.now() : nil)
    }

    func createSilence(by identity: Identity, fields: [String: JSONValue]) async throws -> AlertSilence {
        try identity.requireWrite()
        try Self.allow(fields, ["device", "rule", "until", "comment"])
        let now = clock.now()
        var silence = AlertSilence(
            id: UUID(), tenantID: identity.tenant.id, deviceSerial: nil, ruleID: nil, until: now, comment: nil,
            createdBy: identity.user.id, createdAt: now)
        switch fields["device"] ?? .null {
        case .null: break
        case .string(let serial):
            guard try await store.device(tenantID: identity.tenant.id, serial: serial) != nil else {
                throw PlatformError.invalid("device", "names no device of this tenant", code: "unknown_device")
            }
            silence.deviceSerial = serial
        default: throw PlatformError.invalid("device", "must be a serial or null", code: "wrong_type")
        }
        switch fields["rule"] ?? .null {
        case .null: break
        case .string(let text):
            guard let id = UUID(uuidString: text), try await store.alertRule(tenantID: identity.tenant.id, id: id) != nil else {
                throw PlatformError.invalid("rule", "names no rule of this tenant", code: "unknown_rule")
            }
            silence.ruleID = id
        default: throw PlatformError.invalid("rule", "must be a rule id or null", code: "wrong_type")
        }
        guard case .string(let untilText) = fields["until"] ?? .null else {
            throw PlatformError.invalid("until", "is required (an ISO 8601 time)", code: "missing_field")
        }
        guard let until = Timestamp(iso8601: untilText), until > now, until.secondsSinceEpoch - now.secondsSinceEpoch <= 366 * 86_400
        else {
            throw PlatformError.invalid("until", "must be an ISO 8601 time in the future, within a year")
        }
        silence.until = until
        switch fields["comment"] ?? .null {
        case .null: break
        case .string(let comment):
            guard comment.count <= 500 else { throw PlatformError.invalid("comment", "must be at most 500 characters") }
            silence.comment = comment
        default: throw PlatformError.invalid("comment", "has the wrong type", code: "wrong_type")
        }
        try await store.createSilence(silence)
        return silence
    }

    func deleteSilence(by identity: Identity, id: UUID) async throws {
        try identity.requireWrite()
        guard try await store.deleteSilence(tenantID: identity.tenant.id, id: id) else { throw PlatformError.notFound("Silence") }
    }

    // MARK: Deliveries

    func deliveries(tenantID: UUID, alertID: UUID?, limit: Int) async throws -> [AlertDelivery] {
        try await store.deliveries(tenantID: tenantID, alertID: alertID, limit: limit)
    }

    /// Sends a failed delivery again now, with a fresh count of attempts.
    func retryDelivery(by identity: Identity, id: UUID) async throws -> AlertDelivery {
        try requireAdministrator(identity)
        guard try await store.delivery(tenantID: identity.tenant.id, id: id) != nil else { throw PlatformError.notFound("Delivery") }
        // Due only after a lease, so the background sender leaves it to the send below.
        let due = clock.now().adding(seconds: AlertDeliveryService.leaseSeconds)
        guard try await store.retryDelivery(tenantID: identity.tenant.id, id: id, at: due) else {
            throw PlatformError.conflict("Only a failed delivery can be retried", field: "status")
        }
        guard let delivery = try await deliveries.sendNow(tenantID: identity.tenant.id, id: id) else {
            throw PlatformError.notFound("Delivery")
        }
        return delivery
    }

    private func requireAdministrator(_ identity: Identity) throws {
        guard identity.role.canAdminister else {
            throw PlatformError(.forbidden, code: "forbidden", message: "Only owners and admins change alert rules and channels")
        }
    }
}
