import Foundation
import PlatformCore
import Scripting

/// The alerting API's JSON shapes. Optional fields are always present, `null` when unset.
private func text(_ id: UUID?) -> String? { id?.uuidString.lowercased() }

struct ChannelJSON: Encodable {
    var channel: AlertChannel
    /// The signing secret, only in the answer that created the channel.
    var showSecret = false

    enum CodingKeys: String, CodingKey {
        case id, kind, name, to, url, secret
        case createdAt = "created_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(text(channel.id), forKey: .id)
        try container.encode(channel.kind.rawValue, forKey: .kind)
        try container.encode(channel.name, forKey: .name)
        switch channel.kind {
        case .email: try container.encode(channel.recipients, forKey: .to)
        case .webhook: try container.encode(channel.url, forKey: .url)
        }
        if showSecret { try container.encode(channel.secret, forKey: .secret) }
        try container.encode(channel.createdAt, forKey: .createdAt)
    }
}

struct RuleJSON: Encodable {
    var rule: AlertRule

    enum CodingKeys: String, CodingKey {
        case id, name, script, device, config, channels, enabled
        case forSeconds = "for_seconds"
        case cooldownSeconds = "cooldown_seconds"
        case repeatSeconds = "repeat_seconds"
        case notifyResolved = "notify_resolved"
        case noDataSeconds = "no_data_seconds"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(text(rule.id), forKey: .id)
        try container.encode(rule.name, forKey: .name)
        try container.encode(rule.script, forKey: .script)
        try container.encode(rule.deviceSerial, forKey: .device)
        try container.encode(
            (try? JSONDecoder().decode(JSONValue.self, from: Data(rule.configJSON.utf8))) ?? .object([:]), forKey: .config)
        try container.encode(rule.forSeconds, forKey: .forSeconds)
        try container.encode(rule.cooldownSeconds, forKey: .cooldownSeconds)
        try container.encode(rule.repeatSeconds, forKey: .repeatSeconds)
        try container.encode(rule.notifyResolved, forKey: .notifyResolved)
        try container.encode(rule.noDataSeconds, forKey: .noDataSeconds)
        try container.encode(rule.channelIDs.map { text($0) }, forKey: .channels)
        try container.encode(rule.enabled, forKey: .enabled)
        try container.encode(rule.createdAt, forKey: .createdAt)
        try container.encode(rule.updatedAt, forKey: .updatedAt)
    }
}

struct AlertJSON: Encodable {
    var alert: Alert

    enum CodingKeys: String, CodingKey {
        case id, rule, device, key, state, severity, message, value
        case startedAt = "started_at"
        case firedAt = "fired_at"
        case resolvedAt = "resolved_at"
        case lastNotifiedAt = "last_notified_at"
        case acknowledgedAt = "acknowledged_at"
        case acknowledgedBy = "acknowledged_by"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(text(alert.id), forKey: .id)
        try container.encode(text(alert.ruleID), forKey: .rule)
        try container.encode(alert.deviceSerial, forKey: .device)
        try container.encode(alert.key, forKey: .key)
        try container.encode(alert.state.rawValue, forKey: .state)
        try container.encode(alert.severity, forKey: .severity)
        try container.encode(alert.message, forKey: .message)
        try container.encode(alert.value, forKey: .value)
        try container.encode(alert.startedAt, forKey: .startedAt)
        try container.encode(alert.firedAt, forKey: .firedAt)
        try container.encode(alert.resolvedAt, forKey: .resolvedAt)
        try container.encode(alert.lastNotifiedAt, forKey: .lastNotifiedAt)
        try container.encode(alert.acknowledgedAt, forKey: .acknowledgedAt)
        try container.encode(text(alert.acknowledgedBy), forKey: .acknowledgedBy)
    }
}

struct SilenceJSON: Encodable {
    var silence: AlertSilence

    enum CodingKeys: String, CodingKey {
        case id, device, rule, until, comment
        case createdBy = "created_by"
        case createdAt = "created_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(text(silence.id), forKey: .id)
        try container.encode(silence.deviceSerial, forKey: .device)
        try container.encode(text(silence.ruleID), forKey: .rule)
        try container.encode(silence.until, forKey: .until)
        try container.encode(silence.comment, forKey: .comment)
        try container.encode(text(silence.createdBy), forKey: .createdBy)
        try container.encode(silence.createdAt, forKey: .createdAt)
    }
}

struct DeliveryJSON: Encodable {
    var delivery: AlertDelivery

    enum CodingKeys: String, CodingKey {
        case id, alert, channel, event, status, attempts
        case nextAttemptAt = "next_attempt_at"
        case lastError = "last_error"
        case createdAt = "created_at"
        case sentAt = "sent_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(text(delivery.id), forKey: .id)
        try container.encode(text(delivery.alertID), forKey: .alert)
        try container.encode(text(delivery.channelID), forKey: .channel)
        try container.encode(delivery.event.rawValue, forKey: .event)
        try container.encode(delivery.status.rawValue, forKey: .status)
        try container.encode(delivery.attempts, forKey: .attempts)
        let waiting = delivery.status == .pending || delivery.status == .retrying
        try container.encode(waiting ? delivery.nextAttemptAt : nil, forKey: .nextAttemptAt)
        try container.encode(delivery.lastError, forKey: .lastError)
        try container.encode(delivery.createdAt, forKey: .createdAt)
        try container.encode(delivery.sentAt, forKey: .sentAt)
    }
}

/// A page of alerts, newest first; `next` (the `after` of the next page) when it is full.
struct AlertPageJSON: Encodable {
    var alerts: [AlertJSON]
    var next: String?
}
