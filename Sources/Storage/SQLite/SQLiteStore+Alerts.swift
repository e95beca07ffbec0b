import Foundation
import GRDB
import PlatformCore

extension SQLiteStore: AlertStore {
    // MARK: Channels

    public func createAlertChannel(_ channel: AlertChannel) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO alert_channels (tenant_id, id, kind, name, recipients, url, secret, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    channel.tenantID.databaseText, channel.id.databaseText, channel.kind.rawValue, channel.name,
                    AlertColumns.recipientsText(channel.recipients), channel.url, channel.secret, channel.createdAt.microseconds,
                ])
        }
    }

    static func channel(from row: Row) -> AlertChannel {
        AlertChannel(
            id: row.uuid("id"), tenantID: row.uuid("tenant_id"), kind: AlertChannel.Kind(rawValue: row["kind"]) ?? .email,
            name: row["name"], recipients: AlertColumns.recipients(row["recipients"]), url: row["url"], secret: row["secret"],
            createdAt: row.timestamp("created_at"))
    }

    public func alertChannels(tenantID: UUID) async throws -> [AlertChannel] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM alert_channels WHERE tenant_id = ? ORDER BY name, id", arguments: [tenantID.databaseText]
            ).map(Self.channel(from:))
        }
    }

    public func alertChannel(tenantID: UUID, id: UUID) async throws -> AlertChannel? {
        try await pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM alert_channels WHERE tenant_id = ? AND id = ?",
                arguments: [tenantID.databaseText, id.databaseText]
            ).map(Self.channel(from:))
        }
    }

    public func updateAlertChannel(_ channel: AlertChannel) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE alert_channels SET name = ?, recipients = ?, url = ? WHERE tenant_id = ? AND id = ?",
                arguments: [
                    channel.name, AlertColumns.recipientsText(channel.recipients), channel.url, channel.tenantID.databaseText,
                    channel.id.databaseText,
                ])
            return db.changesCount > 0
        }
    }

    public func deleteAlertChannel(tenantID: UUID, id: UUID) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "DELETE FROM alert_channels WHERE tenant_id = ? AND id = ?", arguments: [tenantID.databaseText, id.databaseText])
            return db.changesCount > 0
        }
    }

    // MARK: Rules

    public func createAlertRule(_ rule: AlertRule) async throws {
        try await pool.write { db in
            do {
                try db.execute(
                    sql: """
                        INSERT INTO alert_rules (tenant_id, id, name, script, device_serial, config, for_seconds,
                            cooldown_seconds, repeat_seconds, notify_resolved, no_data_seconds, enabled, created_at, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: Self.ruleArguments(rule))
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                throw PlatformError.conflict("A rule with this name exists", field: "name")
            }
            try Self.saveChannels(of: rule, db)
        }
    }

    private static func ruleArguments(_ rule: AlertRule) -> StatementArguments {
        [
            rule.tenantID.databaseText, rule.id.databaseText, rule.name, rule.script, rule.deviceSerial, rule.configJSON,
            rule.forSeconds, rule.cooldownSeconds, rule.repeatSeconds, rule.notifyResolved, rule.noDataSeconds, rule.enabled,
            rule.createdAt.microseconds, rule.updatedAt.microseconds,
        ]
    }

    private static func saveChannels(of rule: AlertRule, _ db: Database) throws {
        try db.execute(
            sql: "DELETE FROM alert_rule_channels WHERE tenant_id = ? AND rule_id = ?",
            arguments: [rule.tenantID.databaseText, rule.id.databaseText])
        for (position, channel) in rule.channelIDs.enumerated() {
            try db.execute(
                sql: "INSERT OR IGNORE INTO alert_rule_channels (tenant_id, rule_id, channel_id, position) VALUES (?, ?, ?, ?)",
                arguments: [rule.tenantID.databaseText, rule.id.databaseText, channel.databaseText, position])
        }
    }

    private static func rules(_ db: Database, where condition: String, _ arguments: StatementArguments) throws -> [AlertRule] {
        var rules = try Row.fetchAll(db, sql: "SELECT * FROM alert_rules WHERE \(condition) ORDER BY name", arguments: arguments)
            .map { row in
                AlertRule(
                    id: row.uuid("id"), tenantID: row.uuid("tenant_id"), name: row["name"], script: row["script"],
                    deviceSerial: row["device_serial"], configJSON: row["config"], forSeconds: row["for_seconds"],
                    cooldownSeconds: row["cooldown_seconds"], repeatSeconds: row["repeat_seconds"],
                    notifyResolved: row["notify_resolved"], noDataSeconds: row["no_data_seconds"], enabled: row["enabled"],
                    createdAt: row.timestamp("created_at"), updatedAt: row.timestamp("updated_at"))
            }
        guard !rules.isEmpty else { return [] }
        let tenants = Set(rules.map(\.tenantID))
        var channels: [UUID: [UUID]] = [:]
        for tenant in tenants {
            for row in try Row.fetchAll(
                db, sql: "SELECT rule_id, channel_id FROM alert_rule_channels WHERE tenant_id = ? ORDER BY position",
                arguments: [tenant.databaseText])
            {
                channels[row.uuid("rule_id"), default: []].append(row.uuid("channel_id"))
            }
        }
        for index in rules.indices { rules[index].channelIDs = channels[rules[index].id] ?? [] }
        return rules
    }

    public func alertRules(tenantID: UUID) async throws -> [AlertRule] {
        try await pool.read { db in try Self.rules(db, where: "tenant_id = ?", [tenantID.databaseText]) }
    }

    public func alertRule(tenantID: UUID, id: UUID) async throws -> AlertRule? {
        try await pool.read { db in
            try Self.rules(db, where: "tenant_id = ? AND id = ?", [tenantID.databaseText, id.databaseText]).first
        }
    }

    public func updateAlertRule(_ rule: AlertRule) async throws -> Bool {
        try await pool.write { db in
            do {
                try db.execute(
                    sql: """
                        UPDATE alert_rules SET name = ?, script = ?, device_serial = ?, config = ?, for_seconds = ?,
                            cooldown_seconds = ?, repeat_seconds = ?, notify_resolved = ?, no_data_seconds = ?, enabled = ?,
                            updated_at = ?
                        WHERE tenant_id = ? AND id = ?
                        """,
                    arguments: [
                        rule.name, rule.script, rule.deviceSerial, rule.configJSON, rule.forSeconds, rule.cooldownSeconds,
                        rule.repeatSeconds, rule.notifyResolved, rule.noDataSeconds, rule.enabled, rule.updatedAt.microseconds,
                        rule.tenantID.databaseText, rule.id.databaseText,
                    ])
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                throw PlatformError.conflict("A rule with this name exists", field: "name")
            }
            guard db.changesCount > 0 else { return false }
            try Self.saveChannels(of: rule, db)
            return true
        }
    }

    public func deleteAlertRule(tenantID: UUID, id: UUID) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "DELETE FROM alert_rules WHERE tenant_id = ? AND id = ?", arguments: [tenantID.databaseText, id.databaseText])
            return db.changesCount > 0
        }
    }

    public func tenantsWithAlertWork() async throws -> [UUID] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT tenant_id FROM alert_rules WHERE enabled UNION SELECT tenant_id FROM alerts WHERE state <> 'resolved'").compactMap(UUID.init(databaseText:))
        }
    }

    // MARK: Evaluation

    public func alertQueueTenants(limit: Int) async throws -> [UUID] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT tenant_id FROM alert_batches LIMIT ?", arguments: [limit])
                .compactMap(UUID.init(databaseText:))
        }
    }

    public func queuedBatches(tenantID: UUID, after: Int64?, sampleLimit: Int) async throws -> [QueuedBatch] {
        let rows = try await pool.read { db in
            // Every batch holds a sample at least, so the first `sampleLimit` rows are enough to
            // find those that start before the limit.
            try Row.fetchAll(
                db,
                sql: """
                    SELECT seq, samples FROM (
                        SELECT seq, samples, sum(sample_count) OVER (ORDER BY seq) - sample_count AS before FROM (
                            SELECT seq, samples, sample_count FROM alert_batches
                            WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3
                        )
                    )
                    WHERE before < ?3 ORDER BY seq
                    """,
                arguments: [tenantID.databaseText, after ?? 0, sampleLimit])
        }
        // Decoded off the database's threads.
        return rows.map { row in QueuedBatch(sequence: row[0], samples: AlertQueueText.decode(row[1])) }
    }

    public func alertQueueLength(tenantID: UUID) async throws -> Int {
        try await pool.read { db in
            try Int.fetchOne(
                db, sql: "SELECT coalesce(sum(sample_count), 0) FROM alert_batches WHERE tenant_id = ?",
                arguments: [tenantID.databaseText]) ?? 0
        }
    }

    public func clearAlertQueue(tenantID: UUID) async throws -> Int {
        try await pool.write { db in
            try Int.fetchAll(
                db, sql: "DELETE FROM alert_batches WHERE tenant_id = ? RETURNING sample_count", arguments: [tenantID.databaseText]
            ).reduce(0, +)
        }
    }

    public func ruleDeviceStates(tenantID: UUID, serials: [String]) async throws -> [RuleDeviceState] {
        guard !serials.isEmpty else { return [] }
        // One statement for all the pass's devices (their serials as a JSON array), read by
        // column index: a pass reads a state per rule and device, so this runs hot.
        let serialsJSON = String(decoding: try JSONEncoder().encode(Array(Set(serials))), as: UTF8.self)
        return try await pool.read { db in
            var states: [RuleDeviceState] = []
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT rule_id, device_serial, state, notified FROM alert_rule_states
                    WHERE tenant_id = ? AND device_serial IN (SELECT value FROM json_each(?))
                    """,
                arguments: [tenantID.databaseText, serialsJSON])
            while let row = try rows.next() {
                let ruleID: String = row[0]
                states.append(
                    RuleDeviceState(
                        ruleID: UUID(databaseText: ruleID)!, deviceSerial: row[1], stateJSON: row[2],
                        notifiedAt: AlertColumns.notified(row[3])))
            }
            return states
        }
    }

    static func alert(from row: Row) -> Alert {
        Alert(
            id: row.uuid("id"), tenantID: row.uuid("tenant_id"), ruleID: row.uuid("rule_id"), deviceSerial: row["device_serial"],
            key: row["key"], state: AlertState(rawValue: row["state"]) ?? .error, severity: row["severity"],
            message: row["message"], value: row["value"], startedAt: row.timestamp("started_at"),
            firedAt: row.optionalTimestamp("fired_at"), resolvedAt: row.optionalTimestamp("resolved_at"),
            lastNotifiedAt: row.optionalTimestamp("last_notified_at"), acknowledgedAt: row.optionalTimestamp("acknowledged_at"),
            acknowledgedBy: (row["acknowledged_by"] as String?).flatMap(UUID.init(databaseText:)))
    }

    public func openAlerts(tenantID: UUID) async throws -> [Alert] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM alerts WHERE tenant_id = ? AND state <> 'resolved'", arguments: [tenantID.databaseText]
            ).map(Self.alert(from:))
        }
    }

    public func applyAlertChanges(_ changes: AlertChanges) async throws {
        guard !changes.isEmpty else { return }
        let tenant = changes.tenantID.databaseText
        try await pool.write { db in
            let saveState = try db.cachedStatement(
                sql: """
                    INSERT INTO alert_rule_states (tenant_id, rule_id, device_serial, state, notified) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (tenant_id, device_serial, rule_id) DO UPDATE SET state = excluded.state, notified = excluded.notified
                    """)
            for state in changes.states {
                try saveState.execute(arguments: [
                    tenant, state.ruleID.databaseText, state.deviceSerial, state.stateJSON,
                    AlertColumns.notifiedText(state.notifiedAt),
                ])
            }
            // Resolutions first, so a key that resolves and starts again in one pass never has
            // two open alerts at once.
            let saveAlert = try db.cachedStatement(
                sql: """
                    INSERT INTO alerts (tenant_id, id, rule_id, device_serial, key, state, severity, message, value, started_at,
                        fired_at, resolved_at, last_notified_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (tenant_id, id) DO UPDATE SET state = excluded.state, severity = excluded.severity,
                        message = excluded.message, value = excluded.value, fired_at = excluded.fired_at,
                        resolved_at = excluded.resolved_at, last_notified_at = excluded.last_notified_at
                    """)
            for alert in changes.alerts.sorted(by: { ($0.state.isOpen ? 1 : 0) < ($1.state.isOpen ? 1 : 0) }) {
                try saveAlert.execute(arguments: [
                    tenant, alert.id.databaseText, alert.ruleID.databaseText, alert.deviceSerial, alert.key, alert.state.rawValue,
                    alert.severity, alert.message, alert.value, alert.startedAt.microseconds, alert.firedAt?.microseconds,
                    alert.resolvedAt?.microseconds, alert.lastNotifiedAt?.microseconds,
                ])
            }
            for delivery in changes.deliveries {
                try Self.insert(delivery, db)
            }
            let consume = try db.cachedStatement(sql: "DELETE FROM alert_batches WHERE seq = ? AND tenant_id = ?")
            for sequence in changes.consumed {
                try consume.execute(arguments: [sequence, tenant])
            }
        }
    }

    // MARK: Alerts

    public func alerts(_ query: AlertQuery) async throws -> [Alert] {
        var conditions = ["tenant_id = ?"]
        var arguments: StatementArguments = [query.tenantID.databaseText]
        if !query.states.isEmpty {
            conditions.append("state IN (\(query.states.map { _ in "?" }.joined(separator: ", ")))")
            for state in query.states { _ = arguments.append(contentsOf: [state.rawValue]) }
        }
        if let serial = query.deviceSerial {
            conditions.append("device_serial = ?")
            _ = arguments.append(contentsOf: [serial])
        }
        if let rule = query.ruleID {
            conditions.append("rule_id = ?")
            _ = arguments.append(contentsOf: [rule.databaseText])
        }
        if let before = query.before {
            conditions.append("(started_at < ? OR (started_at = ? AND id < ?))")
            _ = arguments.append(contentsOf: [before.startedAt.microseconds, before.startedAt.microseconds, before.id.databaseText])
        }
        _ = arguments.append(contentsOf: [query.limit])
        let sql = "SELECT * FROM alerts WHERE \(conditions.joined(separator: " AND ")) ORDER BY started_at DESC, id DESC LIMIT ?"
        let bound = arguments
        return try await pool.read { db in try Row.fetchAll(db, sql: sql, arguments: bound).map(Self.alert(from:)) }
    }

    public func alert(tenantID: UUID, id: UUID) async throws -> Alert? {
        try await pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM alerts WHERE tenant_id = ? AND id = ?", arguments: [tenantID.databaseText, id.databaseText]
            ).map(Self.alert(from:))
        }
    }

    public func acknowledgeAlert(tenantID: UUID, id: UUID, userID: UUID, at time: Timestamp) async throws -> Alert? {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ?
                    WHERE tenant_id = ? AND id = ? AND acknowledged_at IS NULL
                    """,
                arguments: [time.microseconds, userID.databaseText, tenantID.databaseText, id.databaseText])
            return try Row.fetchOne(
                db, sql: "SELECT * FROM alerts WHERE tenant_id = ? AND id = ?", arguments: [tenantID.databaseText, id.databaseText]
            ).map(Self.alert(from:))
        }
    }

    // MARK: Silences

    public func createSilence(_ silence: AlertSilence) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO alert_silences (tenant_id, id, device_serial, rule_id, until, comment, created_by, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    silence.tenantID.databaseText, silence.id.databaseText, silence.deviceSerial, silence.ruleID?.databaseText,
                    silence.until.microseconds, silence.comment, silence.createdBy.databaseText, silence.createdAt.microseconds,
                ])
        }
    }

    public func silences(tenantID: UUID, activeAt: Timestamp?) async throws -> [AlertSilence] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM alert_silences WHERE tenant_id = ? AND until > ? ORDER BY created_at DESC, id",
                arguments: [tenantID.databaseText, activeAt?.microseconds ?? Int64.min]
            ).map { row in
                AlertSilence(
                    id: row.uuid("id"), tenantID: row.uuid("tenant_id"), deviceSerial: row["device_serial"],
                    ruleID: (row["rule_id"] as String?).flatMap(UUID.init(databaseText:)), until: row.timestamp("until"),
                    comment: row["comment"], createdBy: row.uuid("created_by"), createdAt: row.timestamp("created_at"))
            }
        }
    }

    public func deleteSilence(tenantID: UUID, id: UUID) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "DELETE FROM alert_silences WHERE tenant_id = ? AND id = ?", arguments: [tenantID.databaseText, id.databaseText])
            return db.changesCount > 0
        }
    }

    // MARK: Deliveries

    private static func insert(_ delivery: AlertDelivery, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO alert_deliveries (tenant_id, id, alert_id, channel_id, event, status, attempts, next_attempt_at,
                    last_error, payload, created_at, sent_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                delivery.tenantID.databaseText, delivery.id.databaseText, delivery.alertID?.databaseText,
                delivery.channelID.databaseText, delivery.event.rawValue, delivery.status.rawValue, delivery.attempts,
                delivery.nextAttemptAt.microseconds, delivery.lastError, delivery.payloadJSON, delivery.createdAt.microseconds,
                delivery.sentAt?.microseconds,
            ])
    }

    static func delivery(from row: Row) -> AlertDelivery {
        AlertDelivery(
            id: row.uuid("id"), tenantID: row.uuid("tenant_id"), alertID: (row["alert_id"] as String?).flatMap(UUID.init(databaseText:)),
            channelID: row.uuid("channel_id"), event: NotificationEvent(rawValue: row["event"]) ?? .test,
            status: AlertDelivery.Status(rawValue: row["status"]) ?? .failed, attempts: row["attempts"],
            nextAttemptAt: row.timestamp("next_attempt_at"), lastError: row["last_error"], payloadJSON: row["payload"],
            createdAt: row.timestamp("created_at"), sentAt: row.optionalTimestamp("sent_at"))
    }

    public func deliveries(tenantID: UUID, alertID: UUID?, limit: Int) async throws -> [AlertDelivery] {
        try await pool.read { db in
            if let alertID {
                return try Row.fetchAll(
                    db,
                    sql: "SELECT * FROM alert_deliveries WHERE tenant_id = ? AND alert_id = ? ORDER BY created_at DESC, id LIMIT ?",
                    arguments: [tenantID.databaseText, alertID.databaseText, limit]
                ).map(Self.delivery(from:))
            }
            return try Row.fetchAll(
                db, sql: "SELECT * FROM alert_deliveries WHERE tenant_id = ? ORDER BY created_at DESC, id LIMIT ?",
                arguments: [tenantID.databaseText, limit]
            ).map(Self.delivery(from:))
        }
    }

    public func delivery(tenantID: UUID, id: UUID) async throws -> AlertDelivery? {
        try await pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM alert_deliveries WHERE tenant_id = ? AND id = ?",
                arguments: [tenantID.databaseText, id.databaseText]
            ).map(Self.delivery(from:))
        }
    }

    public func claimDueDeliveries(now: Timestamp, leaseUntil: Timestamp, owner: UUID, limit: Int) async throws -> [AlertDelivery] {
        try await pool.write { db in
            try Row.fetchAll(
                db,
                sql: """
                    UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt_at = ?, lease_owner = ?
                    WHERE id IN (
                        SELECT id FROM alert_deliveries WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ?
                        ORDER BY next_attempt_at LIMIT ?)
                    RETURNING *
                    """,
                arguments: [leaseUntil.microseconds, owner.databaseText, now.microseconds, limit]
            ).map(Self.delivery(from:))
        }
    }

    public func claimDelivery(tenantID: UUID, id: UUID, leaseUntil: Timestamp, owner: UUID) async throws -> AlertDelivery? {
        try await pool.write { db in
            try Row.fetchOne(
                db,
                sql: """
                    UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt_at = ?, lease_owner = ?
                    WHERE tenant_id = ? AND id = ? AND status IN ('pending', 'retrying')
                    RETURNING *
                    """,
                arguments: [leaseUntil.microseconds, owner.databaseText, tenantID.databaseText, id.databaseText]
            ).map(Self.delivery(from:))
        }
    }

    public func releaseDeliveryLeases(notOwnedBy owner: UUID, now: Timestamp) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE alert_deliveries SET next_attempt_at = ?, lease_owner = NULL
                    WHERE lease_owner IS NOT NULL AND lease_owner <> ? AND status IN ('pending', 'retrying')
                    """,
                arguments: [now.microseconds, owner.databaseText])
            return db.changesCount
        }
    }

    public func recordDeliveryOutcome(
        id: UUID, status: AlertDelivery.Status, nextAttemptAt: Timestamp, lastError: String?, sentAt: Timestamp?
    ) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE alert_deliveries SET status = ?, next_attempt_at = ?, last_error = ?, sent_at = ?, lease_owner = NULL
                    WHERE id = ?
                    """,
                arguments: [status.rawValue, nextAttemptAt.microseconds, lastError, sentAt?.microseconds, id.databaseText])
        }
    }

    public func retryDelivery(tenantID: UUID, id: UUID, at time: Timestamp) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE alert_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?
                    WHERE tenant_id = ? AND id = ? AND status = 'failed'
                    """,
                arguments: [time.microseconds, tenantID.databaseText, id.databaseText])
            return db.changesCount > 0
        }
    }

    public func resetAlertRuleStates(tenantID: UUID, ruleID: UUID) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "DELETE FROM alert_rule_states WHERE tenant_id = ? AND rule_id = ?",
                arguments: [tenantID.databaseText, ruleID.databaseText])
        }
    }
}
