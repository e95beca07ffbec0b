import Foundation

/// A condition an alert script reports as active now. The platform diffs the keys of
/// consecutive evaluations per (rule, device): a new key starts an alert, a key no longer
/// reported resolves it.
public struct ActiveCondition: Sendable, Equatable, Codable {
    public var key: String
    public var severity: String
    public var message: String
    /// The reading behind the condition, when the script gives one.
    public var value: Double?

    /// The longest key and message the platform keeps.
    public static let maximumKeyLength = 200
    public static let maximumMessageLength = 1000

    public init(key: String, severity: String, message: String, value: Double? = nil) {
        self.key = key
        self.severity = severity
        self.message = message
        self.value = value
    }
}

/// A notification the lifecycle decided to send: the alert as it is at that moment and why.
public struct PendingNotification: Sendable, Equatable {
    public var alert: Alert
    public var event: NotificationEvent

    public init(alert: Alert, event: NotificationEvent) {
        self.alert = alert
        self.event = event
    }
}

/// The alert lifecycle of one rule on one device: it turns what the rule's script reports (the
/// conditions active now), script failures, silence from the device and the passing of time
/// into alert transitions and notifications. Pure: the caller loads the open alerts and the
/// per-(rule, device) state, applies events in order, then stores `changedAlerts`,
/// `deviceState` and `notifications` in one transaction.
///
/// - A new key starts an alert: `pending`, then `firing` once it has been active for the rule's
///   `for_seconds` (at once when that is 0). A key no longer reported resolves its alert.
/// - A firing notification goes out unless the device or rule is silenced, or the same key
///   notified on this device within `cooldown_seconds` (so a flapping condition stays quiet).
/// - A resolved notification goes out when the rule asks for it and the alert's firing was
///   notified; a reminder every `repeat_seconds` while it fires, until acknowledged.
/// - `noData` puts the open alerts in `no_data` and opens one `#no_data` alert; the next sample
///   brings them back (or resolves them).
/// - `fail` opens (or updates) one `#error` alert; the next successful evaluation resolves it.
public struct AlertTracker: Sendable {
    public let rule: AlertRule
    public let serial: String
    public private(set) var deviceState: RuleDeviceState
    /// Every alert this tracker created or changed, by id, as it is now.
    public private(set) var changedAlerts: [UUID: Alert] = [:]
    public private(set) var notifications: [PendingNotification] = []
    private var open: [String: Alert]
    private let silences: [AlertSilence]
    private let makeID: @Sendable () -> UUID

    public init(
        rule: AlertRule, serial: String, openAlerts: [Alert], deviceState: RuleDeviceState?, silences: [AlertSilence],
        makeID: @escaping @Sendable () -> UUID = { UUID() }
    ) {
        self.rule = rule
        self.serial = serial
        self.deviceState = deviceState ?? RuleDeviceState(ruleID: rule.id, deviceSerial: serial)
        open = Dictionary(openAlerts.map { ($0.key, $0) }, uniquingKeysWith: { $1 })
        self.silences = silences
        self.makeID = makeID
    }

    /// The alerts open now.
    public var openAlerts: [Alert] { Array(open.values) }

    /// A successful evaluation: `conditions` are the keys active now. `sampleArrived` is false
    /// for the timer's evaluations of a device's newest (old) sample, which say nothing about
    /// whether the device is talking again.
    public mutating func apply(_ conditions: [ActiveCondition], at now: Timestamp, script stateJSON: String, sampleArrived: Bool = true) {
        deviceState.stateJSON = stateJSON
        if sampleArrived { dataArrived(at: now) }
        if let error = open[Alert.errorKey] { resolve(error, at: now) }
        let active = Set(conditions.map(\.key))
        for alert in open.values where alert.key != Alert.noDataKey && !active.contains(alert.key) {
            resolve(alert, at: now)
        }
        for condition in conditions {
            if var alert = open[condition.key] {
                alert.severity = condition.severity
                alert.message = condition.message
                alert.value = condition.value
                store(alert)
            } else {
                store(
                    Alert(
                        id: makeID(), tenantID: rule.tenantID, ruleID: rule.id, deviceSerial: serial, key: condition.key,
                        state: .pending, severity: condition.severity, message: condition.message, value: condition.value,
                        startedAt: now))
            }
        }
        tick(at: now)
    }

    /// The script failed (or is quarantined) on this device: one `#error` alert says why.
    public mutating func fail(_ message: String, at now: Timestamp, sampleArrived: Bool) {
        if sampleArrived { dataArrived(at: now) }
        let text = String(message.prefix(1000))
        if var alert = open[Alert.errorKey] {
            guard alert.message != text else { return }
            alert.message = text
            store(alert)
        } else {
            store(
                Alert(
                    id: makeID(), tenantID: rule.tenantID, ruleID: rule.id, deviceSerial: serial, key: Alert.errorKey,
                    state: .error, severity: "warning", message: text, startedAt: now))
        }
    }

    /// The device has sent nothing for the rule's `no_data_seconds`.
    public mutating func noData(since lastHeard: Timestamp, at now: Timestamp) {
        guard open[Alert.noDataKey] == nil else { return }
        for var alert in open.values where alert.state == .pending || alert.state == .firing {
            alert.state = .noData
            store(alert)
        }
        let minutes = Int((now.secondsSinceEpoch - lastHeard.secondsSinceEpoch) / 60)
        var alert = Alert(
            id: makeID(), tenantID: rule.tenantID, ruleID: rule.id, deviceSerial: serial, key: Alert.noDataKey, state: .noData,
            severity: "warning", message: "\(serial) has sent nothing for \(minutes) minutes (rule \(rule.name))",
            startedAt: now, firedAt: now)
        if mayNotifyFiring(alert, at: now) {
            alert.lastNotifiedAt = now
            deviceState.notifiedAt[alert.key] = now
            store(alert)
            notifications.append(PendingNotification(alert: alert, event: .noData))
        } else {
            store(alert)
        }
    }

    /// Time passed: pending alerts whose `for_seconds` elapsed fire; firing ones may remind.
    public mutating func tick(at now: Timestamp) {
        for alert in open.values.sorted(by: { $0.startedAt < $1.startedAt }) {
            switch alert.state {
            case .pending where now.secondsSinceEpoch - alert.startedAt.secondsSinceEpoch >= Double(rule.forSeconds):
                fire(alert, at: now)
            case .firing:
                remind(alert, at: now)
            default:
                break
            }
        }
        deviceState.notifiedAt = deviceState.notifiedAt.filter {
            now.secondsSinceEpoch - $0.value.secondsSinceEpoch < Double(rule.cooldownSeconds)
        }
    }

    /// The rule was disabled or no longer watches the device: its open alerts resolve without
    /// notifying anyone.
    public mutating func close(at now: Timestamp) {
        for var alert in open.values {
            alert.state = .resolved
            alert.resolvedAt = now
            store(alert)
        }
    }

    /// A sample came in: the `#no_data` alert resolves and alerts held in `no_data` go back to
    /// where they were (the evaluation that follows resolves those no longer reported).
    private mutating func dataArrived(at now: Timestamp) {
        guard let noData = open[Alert.noDataKey] else { return }
        resolve(noData, at: now)
        for var alert in open.values where alert.state == .noData {
            alert.state = alert.firedAt == nil ? .pending : .firing
            store(alert)
        }
    }

    private mutating func fire(_ alert: Alert, at now: Timestamp) {
        var alert = alert
        alert.state = .firing
        alert.firedAt = now
        if mayNotifyFiring(alert, at: now) {
            alert.lastNotifiedAt = now
            deviceState.notifiedAt[alert.key] = now
            notifications.append(PendingNotification(alert: alert, event: .firing))
        }
        store(alert)
    }

    private mutating func remind(_ alert: Alert, at now: Timestamp) {
        guard let repeatSeconds = rule.repeatSeconds, repeatSeconds > 0, alert.acknowledgedAt == nil, !isSilenced(at: now),
            let since = alert.lastNotifiedAt ?? alert.firedAt,
            now.secondsSinceEpoch - since.secondsSinceEpoch >= Double(repeatSeconds)
        else { return }
        var alert = alert
        alert.lastNotifiedAt = now
        deviceState.notifiedAt[alert.key] = now
        notifications.append(PendingNotification(alert: alert, event: .reminder))
        store(alert)
    }

    private mutating func resolve(_ alert: Alert, at now: Timestamp) {
        var alert = alert
        let wasNotified = alert.lastNotifiedAt != nil && alert.state != .pending && alert.state != .error
        alert.state = .resolved
        alert.resolvedAt = now
        if rule.notifyResolved, wasNotified, !isSilenced(at: now) {
            alert.lastNotifiedAt = now
            notifications.append(PendingNotification(alert: alert, event: .resolved))
        }
        store(alert)
    }

    private func mayNotifyFiring(_ alert: Alert, at now: Timestamp) -> Bool {
        guard !isSilenced(at: now) else { return false }
        guard let last = deviceState.notifiedAt[alert.key] else { return true }
        return now.secondsSinceEpoch - last.secondsSinceEpoch >= Double(rule.cooldownSeconds)
    }

    private func isSilenced(at now: Timestamp) -> Bool {
        silences.contains { $0.covers(ruleID: rule.id, serial: serial, at: now) }
    }

    private mutating func store(_ alert: Alert) {
        changedAlerts[alert.id] = alert
        if alert.state.isOpen { open[alert.key] = alert } else if open[alert.key]?.id == alert.id { open[alert.key] = nil }
    }
}
