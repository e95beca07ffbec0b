import Foundation
import Notify
import PlatformCore

/// What a notification says, fixed when the delivery is created (so every retry sends the same
/// body): the webhook's JSON body, from which the email is rendered too.
struct NotificationPayload: Codable, Sendable, Equatable {
    var delivery: String
    var event: NotificationEvent
    var alert: String?
    var rule: String?
    var ruleID: String?
    var device: String?
    var deviceName: String?
    var key: String?
    var state: String
    var severity: String?
    var message: String
    var value: Double?
    var startedAt: String?
    var firedAt: String?
    var resolvedAt: String?
    var tenant: String
    var url: String?

    enum CodingKeys: String, CodingKey {
        case delivery, event, alert, rule, device, key, state, severity, message, value, tenant, url
        case ruleID = "rule_id"
        case deviceName = "device_name"
        case startedAt = "started_at"
        case firedAt = "fired_at"
        case resolvedAt = "resolved_at"
    }

    /// The payload of a notification about `alert`.
    init(
        delivery: UUID, event: NotificationEvent, alert: Alert, rule: AlertRule, deviceName: String?, tenant: Tenant,
        publicURL: String
    ) {
        self.delivery = delivery.uuidString.lowercased()
        self.event = event
        self.alert = alert.id.uuidString.lowercased()
        self.rule = rule.name
        ruleID = rule.id.uuidString.lowercased()
        device = alert.deviceSerial
        self.deviceName = deviceName
        key = alert.key
        state = alert.state.rawValue
        severity = alert.severity
        message = alert.message
        value = alert.value
        startedAt = alert.startedAt.iso8601
        firedAt = alert.firedAt?.iso8601
        resolvedAt = alert.resolvedAt?.iso8601
        self.tenant = tenant.slug
        let serial = alert.deviceSerial.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? alert.deviceSerial
        url = "\(publicURL)/devices/\(serial)"
    }

    /// A channel's test notification.
    init(testDelivery delivery: UUID, channel: AlertChannel, tenant: Tenant, publicURL: String) {
        self.delivery = delivery.uuidString.lowercased()
        event = .test
        state = "test"
        message = "A test notification for the channel '\(channel.name)'"
        self.tenant = tenant.slug
        url = "\(publicURL)/alerts"
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }

    static func decode(_ text: String) -> NotificationPayload? {
        try? JSONDecoder().decode(NotificationPayload.self, from: Data(text.utf8))
    }

    /// `[FIRING] …`, `[RESOLVED] …`, `[NO DATA] …` (and `[TEST] …`).
    var subject: String {
        let tag =
            switch event {
            case .firing: "[FIRING]"
            case .reminder: "[FIRING] (reminder)"
            case .resolved: "[RESOLVED]"
            case .noData: "[NO DATA]"
            case .test: "[TEST]"
            }
        let what = [rule, device].compactMap { $0 }.joined(separator: " on ")
        let line = what.isEmpty ? message : "\(what): \(message)"
        // A header holds one line: a script's multi-line message is joined for the subject.
        let flat = "\(tag) \(line)".split(whereSeparator: \.isNewline).joined(separator: " ")
        return String(flat.prefix(200))
    }

    /// The plain-text mail body.
    var text: String {
        var lines: [String] = [message, ""]
        if let device { lines.append("Device:   \(device)" + (deviceName.map { $0 == device ? "" : " (\($0))" } ?? "")) }
        if let rule { lines.append("Rule:     \(rule)") }
        lines.append("State:    \(state)")
        if let severity { lines.append("Severity: \(severity)") }
        if let value { lines.append("Value:    \(value)") }
        if let startedAt { lines.append("Started:  \(startedAt)") }
        if let firedAt { lines.append("Fired:    \(firedAt)") }
        if let resolvedAt { lines.append("Resolved: \(resolvedAt)") }
        lines.append("Tenant:   \(tenant)")
        if let url { lines += ["", url] }
        lines += ["", "Delivery \(delivery)"]
        return lines.joined(separator: "\n") + "\n"
    }
}
