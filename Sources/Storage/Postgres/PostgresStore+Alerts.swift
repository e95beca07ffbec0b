import Foundation
import PlatformCore
import PostgresNIO

extension PostgresStore: AlertStore {
    // MARK: Channels

    private typealias ChannelRow = (UUID, UUID, String, String, String, String?, String?, Timestamp)
    private static let channelColumns = "id, tenant_id, kind, name, recipients, url, secret, created_at"

    private static func channel(_ row: ChannelRow) -> AlertChannel {
        AlertChannel(
            id: row.0, tenantID: row.1, kind: AlertChannel.Kind(rawValue: row.2) ?? .email, name: row.3,
            recipients: AlertColumns.recipients(row.4), url: row.5, secret: row.6, createdAt: row.7)
    }

    public func createAlertChannel(_ channel: AlertChannel) async throws {
        try await execute(
            """
            INSERT INTO alert_channels (tenant_id, id, kind, name, recipients, url, secret, created_at)
            VALUES (\(channel.tenantID), \(channel.id), \(channel.kind.rawValue), \(channel.name),
                \(AlertColumns.recipientsText(channel.recipients)), \(channel.url), \(channel.secret), \(channel.createdAt))
            """)
    }

    public func alertChannels(tenantID: UUID) async throws -> [AlertChannel] {
        try await rows(
            "SELECT \(unescaped: Self.channelColumns) FROM alert_channels WHERE tenant_id = \(tenantID) ORDER BY name, id",
            as: ChannelRow.self
        ).map(Self.channel)
    }

    public func alertChannel(tenantID: UUID, id: UUID) async throws -> AlertChannel? {
        try await rows(
            "SELECT \(unescaped: Self.channelColumns) FROM alert_channels WHERE tenant_id = \(tenantID) AND id = \(id)",
            as: ChannelRow.self
        ).first.map(Self.channel)
    }

    public func updateAlertChannel(_ channel: AlertChannel) async throws -> Bool {
        try await changedRows(
            """
            UPDATE alert_channels SET name = \(channel.name), recipients = \(AlertColumns.recipientsText(channel.recipients)),
                url = \(channel.url)
            WHERE tenant_id = \(channel.tenantID) AND id = \(channel.id) RETURNING 1
            """) > 0
    }

    public func deleteAlertChannel(tenantID: UUID, id: UUID) async throws -> Bool {
        try await changedRows("DELETE FROM alert_channels WHERE tenant_id = \(tenantID) AND id = \(id) RETURNING 1") > 0
    }

    // MARK: Rules

    private typealias RuleRow = (
        UUID, UUID, String, String, String?, String, Int, Int, Int?, Bool, Int?, Bool, Timestamp, Timestamp, [UUID]
    )
    private static let ruleColumns = """
        r.id, r.tenant_id, r.name, r.script, r.device_serial, r.config, r.for_seconds, r.cooldown_seconds, r.repeat_seconds,
        r.notify_resolved, r.no_data_seconds, r.enabled, r.created_at, r.updated_at,
        ARRAY(SELECT c.channel_id FROM alert_rule_channels c WHERE c.tenant_id = r.tenant_id AND c.rule_id = r.id
            ORDER BY c.position)
        """

    private static func rule(_ row: RuleRow) -> AlertRule {
        AlertRule(
            id: row.0, tenantID: row.1, name: row.2, script: row.3, deviceSerial: row.4, configJSON: row.5, forSeconds: row.6,
            cooldownSeconds: row.7, repeatSeconds: row.8, notifyResolved: row.9, noDataSeconds: row.10, channelIDs: row.14,
            enabled: row.11, createdAt: row.12, updatedAt: row.13)
    }

    public func createAlertRule(_ rule: AlertRule) async throws {
        let logger = logger
        do {
            try await transaction("create alert rule") { connection in
                try await connection.query(
                    """
                    INSERT INTO alert_rules (tenant_id, id, name, script, device_serial, config, for_seconds, cooldown_seconds,
                        repeat_seconds, notify_resolved, no_data_seconds, enabled, created_at, updated_at)
                    VALUES (\(rule.tenantID), \(rule.id), \(rule.name), \(rule.script), \(rule.deviceSerial), \(rule.configJSON),
                        \(rule.forSeconds), \(rule.cooldownSeconds), \(rule.repeatSeconds), \(rule.notifyResolved),
                        \(rule.noDataSeconds), \(rule.enabled), \(rule.createdAt), \(rule.updatedAt))
                    """, logger: logger)
                try await Self.saveChannels(of: rule, connection, logger: logger)
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw PlatformError.conflict("A rule with this name exists", field: "name")
        }
    }

    private static func saveChannels(of rule: AlertRule, _ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            "DELETE FROM alert_rule_channels WHERE tenant_id = \(rule.tenantID) AND rule_id = \(rule.id)", logger: logger)
        guard !rule.channelIDs.isEmpty else { return }
        try await connection.query(
            """
            INSERT INTO alert_rule_channels (tenant_id, rule_id, channel_id, position)
            SELECT \(rule.tenantID), \(rule.id), c, p::int FROM unnest(\(rule.channelIDs)) WITH ORDINALITY AS u(c, p)
            ON CONFLICT DO NOTHING
            """, logger: logger)
    }

    public func alertRules(tenantID: UUID) async throws -> [AlertRule] {
        try await rows(
            "SELECT \(unescaped: Self.ruleColumns) FROM alert_rules r WHERE r.tenant_id = \(tenantID) ORDER BY r.name",
            as: RuleRow.self
        ).map(Self.rule)
    }

    public func alertRule(tenantID: UUID, id: UUID) async throws -> AlertRule? {
        try await rows(
            "SELECT \(unescaped: Self.ruleColumns) FROM alert_rules r WHERE r.tenant_id = \(tenantID) AND r.id = \(id)",
            as: RuleRow.self
        ).first.map(Self.rule)
    }

    public func updateAlertRule(_ rule: AlertRule) async throws -> Bool {
        let logger = logger
        do {
            return try await transaction("update alert rule") { connection in
                var changed = false
                for try await _ in try await connection.query(
                    """
                    UPDATE alert_rules SET name = \(rule.name), script = \(rule.script), device_serial = \(rule.deviceSerial),
                        config = \(rule.configJSON), for_seconds = \(rule.forSeconds), cooldown_seconds = \(rule.cooldownSeconds),
                        repeat_seconds = \(rule.repeatSeconds), notify_resolved = \(rule.notifyResolved),
                        no_data_seconds = \(rule.noDataSeconds), enabled = \(rule.enabled), updated_at = \(rule.updatedAt)
                    WHERE tenant_id = \(rule.tenantID) AND id = \(rule.id) RETURNING 1
                    """, logger: logger
                ).decode(Int.self) {
                    changed = true
                }
                guard changed else { return false }
                try await Self.saveChannels(of: rule, connection, logger: logger)
                return true
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw PlatformError.conflict("A rule with this name exists", field: "name")
        }
    }

    public func deleteAlertRule(tenantID: UUID, id: UUID) async throws -> Bool {
        try await changedRows("DELETE FROM alert_rules WHERE tenant_id = \(tenantID) AND id = \(id) RETURNING 1") > 0
    }

    public func tenantsWithAlertWork() async throws -> [UUID] {
        try await rows("SELECT tenant_id FROM alert_rules WHERE enabled UNION SELECT tenant_id FROM alerts WHERE state <> 'resolved'", as: UUID.self)
    }

    // MARK: Evaluation

    public func alertQueueTenants(limit: Int) async throws -> [UUID] {
        try await rows("SELECT DISTINCT tenant_id FROM alert_batches LIMIT \(limit)", as: UUID.self)
    }

    public func queuedBatches(tenantID: UUID, after: Int64?, sampleLimit: Int) async throws -> [QueuedBatch] {
        // Every batch holds a sample at least, so the first `sampleLimit` rows are enough to
        // find those that start before the limit.
        try await rows(
            """
            SELECT seq, samples FROM (
                SELECT seq, samples, sum(sample_count) OVER (ORDER BY seq) - sample_count AS before FROM (
                    SELECT seq, samples, sample_count FROM alert_batches
                    WHERE tenant_id = \(tenantID) AND seq > \(after ?? 0) ORDER BY seq LIMIT \(sampleLimit)
                ) AS first
            ) AS counted
            WHERE before < \(sampleLimit) ORDER BY seq
            """, as: (Int64, String).self
        ).map { QueuedBatch(sequence: $0.0, samples: AlertQueueText.decode($0.1)) }
    }

    public func alertQueueLength(tenantID: UUID) async throws -> Int {
        let counts: [Int64] = try await rows(
            "SELECT coalesce(sum(sample_count), 0)::int8 FROM alert_batches WHERE tenant_id = \(tenantID)", as: Int64.self)
        return Int(counts.first ?? 0)
    }

    public func clearAlertQueue(tenantID: UUID) async throws -> Int {
        let counts: [Int64] = try await rows(
            """
            WITH cleared AS (DELETE FROM alert_batches WHERE tenant_id = \(tenantID) RETURNING sample_count)
            SELECT coalesce(sum(sample_count), 0)::int8 FROM cleared
            """, as: Int64.self)
        return Int(counts.first ?? 0)
    }

    public func ruleDeviceStates(tenantID: UUID, serials: [String]) async throws -> [RuleDeviceState] {
        guard !serials.isEmpty else { return [] }
        return try await rows(
            """
            SELECT rule_id, device_serial, state, notified FROM alert_rule_states
            WHERE tenant_id = \(tenantID) AND device_serial = ANY(\(Array(Set(serials))))
            """, as: (UUID, String, String, String).self
        ).map { RuleDeviceState(ruleID: $0.0, deviceSerial: $0.1, stateJSON: $0.2, notifiedAt: AlertColumns.notified($0.3)) }
    }

    private typealias AlertRow = (
        UUID, UUID, UUID, String, String, String, String, String, Double?, Timestamp, Timestamp?, Timestamp?, Timestamp?,
        Timestamp?, UUID?
    )
    private static let alertColumns = """
        id, tenant_id, rule_id, device_serial, key, state, severity, message, value, started_at, fired_at, resolved_at,
        last_notified_at, acknowledged_at, acknowledged_by
        """

    private static func alert(_ row: AlertRow) -> Alert {
        Alert(
            id: row.0, tenantID: row.1, ruleID: row.2, deviceSerial: row.3, key: row.4, state: AlertState(rawValue: row.5) ?? .error,
            severity: row.6, message: row.7, value: row.8, startedAt: row.9, firedAt: row.10, resolvedAt: row.11,
            lastNotifiedAt: row.12, acknowledgedAt: row.13, acknowledgedBy: row.14)
    }

    public func openAlerts(tenantID: UUID) async throws -> [Alert] {
        try await rows(
            "SELECT \(unescaped: Self.alertColumns) FROM alerts WHERE tenant_id = \(tenantID) AND state <> 'resolved'",
            as: AlertRow.self
        ).map(Self.alert)
    }

    public func applyAlertChanges(_ changes: AlertChanges) async throws {
        guard !changes.isEmpty else { return }
        let logger = logger
        let tenant = changes.tenantID
        // The states and the consumed queue entries in one statement (a data-modifying CTE):
        // most passes store nothing else, and then that statement is the whole commit, atomic
        // on its own — one round trip instead of four (BEGIN, two statements, COMMIT), which
        // under load each wait tens of milliseconds for a turn on the CPU.
        let statesAndQueue: PostgresQuery = """
            WITH consumed AS (
                DELETE FROM alert_batches WHERE tenant_id = \(tenant) AND seq = ANY(\(changes.consumed))
            )
            INSERT INTO alert_rule_states (tenant_id, rule_id, device_serial, state, notified)
            SELECT \(tenant), r, s, st, n
            FROM unnest(\(changes.states.map(\.ruleID)), \(changes.states.map(\.deviceSerial)),
                \(changes.states.map(\.stateJSON)), \(changes.states.map { AlertColumns.notifiedText($0.notifiedAt) }))
                AS u(r, s, st, n)
            ON CONFLICT (tenant_id, device_serial, rule_id) DO UPDATE SET state = excluded.state, notified = excluded.notified
            """
        guard !changes.alerts.isEmpty || !changes.deliveries.isEmpty else {
            try await execute(statesAndQueue)
            return
        }
        try await transaction("store alert evaluation") { connection in
            try await connection.query(statesAndQueue, logger: logger)
            // Resolutions first (rows are stored in the order listed), so a key that resolves and
            // starts again in one pass never has two open alerts at once. A flapping load changes
            // hundreds of alerts per pass: one statement per chunk, not one round trip per alert.
            let alerts = changes.alerts.sorted(by: { ($0.state.isOpen ? 1 : 0) < ($1.state.isOpen ? 1 : 0) })
            for start in stride(from: 0, to: alerts.count, by: Self.rowsPerStatement) {
                try await connection.query(
                    .insert(
                        """
                        alerts (tenant_id, id, rule_id, device_serial, key, state, severity, message, value, started_at, fired_at,
                            resolved_at, last_notified_at)
                        """, rows: alerts[start..<min(start + Self.rowsPerStatement, alerts.count)],
                        tail: """
                            ON CONFLICT (tenant_id, id) DO UPDATE SET state = excluded.state, severity = excluded.severity,
                                message = excluded.message, value = excluded.value, fired_at = excluded.fired_at,
                                resolved_at = excluded.resolved_at, last_notified_at = excluded.last_notified_at
                            """
                    ) { alert in
                        [
                            tenant, alert.id, alert.ruleID, alert.deviceSerial, alert.key, alert.state.rawValue, alert.severity,
                            alert.message, alert.value, alert.startedAt, alert.firedAt, alert.resolvedAt, alert.lastNotifiedAt,
                        ]
                    }, logger: logger)
            }
            for start in stride(from: 0, to: changes.deliveries.count, by: Self.rowsPerStatement) {
                try await Self.insert(
                    changes.deliveries[start..<min(start + Self.rowsPerStatement, changes.deliveries.count)], connection, logger: logger)
            }
        }
    }

    // MARK: Alerts

    public func alerts(_ query: AlertQuery) async throws -> [Alert] {
        let states = query.states.isEmpty ? AlertState.allCases.map(\.rawValue) : query.states.map(\.rawValue)
        let beforeTime = query.before?.startedAt ?? Timestamp(microseconds: Int64.max / 2)
        let beforeID = query.before?.id ?? UUID(uuidString: "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF")!
        return try await rows(
            """
            SELECT \(unescaped: Self.alertColumns) FROM alerts
            WHERE tenant_id = \(query.tenantID) AND state = ANY(\(states))
                AND (\(query.deviceSerial)::text IS NULL OR device_serial = \(query.deviceSerial))
                AND (\(query.ruleID)::uuid IS NULL OR rule_id = \(query.ruleID))
                AND (started_at, id) < (\(beforeTime), \(beforeID))
            ORDER BY started_at DESC, id DESC LIMIT \(query.limit)
            """, as: AlertRow.self
        ).map(Self.alert)
    }

    public func alert(tenantID: UUID, id: UUID) async throws -> Alert? {
        try await rows(
            "SELECT \(unescaped: Self.alertColumns) FROM alerts WHERE tenant_id = \(tenantID) AND id = \(id)", as: AlertRow.self
        ).first.map(Self.alert)
    }

    public func acknowledgeAlert(tenantID: UUID, id: UUID, userID: UUID, at time: Timestamp) async throws -> Alert? {
        try await execute(
            """
            UPDATE alerts SET acknowledged_at = \(time), acknowledged_by = \(userID)
            WHERE tenant_id = \(tenantID) AND id = \(id) AND acknowledged_at IS NULL
            """)
        return try await alert(tenantID: tenantID, id: id)
    }

    // MARK: Silences

    public func createSilence(_ silence: AlertSilence) async throws {
        try await execute(
            """
            INSERT INTO alert_silences (tenant_id, id, device_serial, rule_id, until, comment, created_by, created_at)
            VALUES (\(silence.tenantID), \(silence.id), \(silence.deviceSerial), \(silence.ruleID), \(silence.until),
                \(silence.comment), \(silence.createdBy), \(silence.createdAt))
            """)
    }

    public func silences(tenantID: UUID, activeAt: Timestamp?) async throws -> [AlertSilence] {
        try await rows(
            """
            SELECT id, tenant_id, device_serial, rule_id, until, comment, created_by, created_at FROM alert_silences
            WHERE tenant_id = \(tenantID) AND (\(activeAt)::timestamptz IS NULL OR until > \(activeAt))
            ORDER BY created_at DESC, id
            """, as: (UUID, UUID, String?, UUID?, Timestamp, String?, UUID, Timestamp).self
        ).map {
            AlertSilence(
                id: $0.0, tenantID: $0.1, deviceSerial: $0.2, ruleID: $0.3, until: $0.4, comment: $0.5, createdBy: $0.6,
                createdAt: $0.7)
        }
    }

    public func deleteSilence(tenantID: UUID, id: UUID) async throws -> Bool {
        try await changedRows("DELETE FROM alert_silences WHERE tenant_id = \(tenantID) AND id = \(id) RETURNING 1") > 0
    }

    // MARK: Deliveries

    private typealias DeliveryRow = (
        UUID, UUID, UUID?, UUID, String, String, Int, Timestamp, String?, String, Timestamp, Timestamp?
    )
    private static let deliveryColumns = """
        id, tenant_id, alert_id, channel_id, event, status, attempts, next_attempt_at, last_error, payload, created_at, sent_at
        """

    private static func delivery(_ row: DeliveryRow) -> AlertDelivery {
        AlertDelivery(
            id: row.0, tenantID: row.1, alertID: row.2, channelID: row.3, event: NotificationEvent(rawValue: row.4) ?? .test,
            status: AlertDelivery.Status(rawValue: row.5) ?? .failed, attempts: row.6, nextAttemptAt: row.7, lastError: row.8,
            payloadJSON: row.9, createdAt: row.10, sentAt: row.11)
    }

    /// Rows per multi-row statement: at 13 binds a row, far below PostgreSQL's 65,535 binds.
    private static let rowsPerStatement = 1000

    private static func insert(
        _ deliveries: some Collection<AlertDelivery>, _ connection: PostgresConnection, logger: Logger
    ) async throws {
        try await connection.query(
            .insert(
                """
                alert_deliveries (tenant_id, id, alert_id, channel_id, event, status, attempts, next_attempt_at, last_error,
                    payload, created_at, sent_at)
                """, rows: deliveries
            ) { delivery in
                [
                    delivery.tenantID, delivery.id, delivery.alertID, delivery.channelID, delivery.event.rawValue,
                    delivery.status.rawValue, delivery.attempts, delivery.nextAttemptAt, delivery.lastError, delivery.payloadJSON,
                    delivery.createdAt, delivery.sentAt,
                ]
            }, logger: logger)
    }

    public func deliveries(tenantID: UUID, alertID: UUID?, limit: Int) async throws -> [AlertDelivery] {
        try await rows(
            """
            SELECT \(unescaped: Self.deliveryColumns) FROM alert_deliveries
            WHERE tenant_id = \(tenantID) AND (\(alertID)::uuid IS NULL OR alert_id = \(alertID))
            ORDER BY created_at DESC, id LIMIT \(limit)
            """, as: DeliveryRow.self
        ).map(Self.delivery)
    }

    public func delivery(tenantID: UUID, id: UUID) async throws -> AlertDelivery? {
        try await rows(
            "SELECT \(unescaped: Self.deliveryColumns) FROM alert_deliveries WHERE tenant_id = \(tenantID) AND id = \(id)",
            as: DeliveryRow.self
        ).first.map(Self.delivery)
    }

    public func claimDueDeliveries(now: Timestamp, leaseUntil: Timestamp, owner: UUID, limit: Int) async throws -> [AlertDelivery] {
        try await rows(
            """
            UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt_at = \(leaseUntil), lease_owner = \(owner)
            WHERE id IN (
                SELECT id FROM alert_deliveries WHERE status IN ('pending', 'retrying') AND next_attempt_at <= \(now)
                ORDER BY next_attempt_at LIMIT \(limit) FOR UPDATE SKIP LOCKED)
            RETURNING \(unescaped: Self.deliveryColumns)
            """, as: DeliveryRow.self
        ).map(Self.delivery)
    }

    public func claimDelivery(tenantID: UUID, id: UUID, leaseUntil: Timestamp, owner: UUID) async throws -> AlertDelivery? {
        try await rows(
            """
            UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt_at = \(leaseUntil), lease_owner = \(owner)
            WHERE tenant_id = \(tenantID) AND id = \(id) AND status IN ('pending', 'retrying')
            RETURNING \(unescaped: Self.deliveryColumns)
            """, as: DeliveryRow.self
        ).first.map(Self.delivery)
    }

    public func releaseDeliveryLeases(notOwnedBy owner: UUID, now: Timestamp) async throws -> Int {
        try await changedRows(
            """
            UPDATE alert_deliveries SET next_attempt_at = \(now), lease_owner = NULL
            WHERE lease_owner IS NOT NULL AND lease_owner <> \(owner) AND status IN ('pending', 'retrying') RETURNING 1
            """)
    }

    public func recordDeliveryOutcome(
        id: UUID, status: AlertDelivery.Status, nextAttemptAt: Timestamp, lastError: String?, sentAt: Timestamp?
    ) async throws {
        try await execute(
            """
            UPDATE alert_deliveries SET status = \(status.rawValue), next_attempt_at = \(nextAttemptAt),
                last_error = \(lastError), sent_at = \(sentAt), lease_owner = NULL
            WHERE id = \(id)
            """)
    }

    public func retryDelivery(tenantID: UUID, id: UUID, at time: Timestamp) async throws -> Bool {
        try await changedRows(
            """
            UPDATE alert_deliveries SET status = 'pending', attempts = 0, next_attempt_at = \(time)
            WHERE tenant_id = \(tenantID) AND id = \(id) AND status = 'failed' RETURNING 1
            """) > 0
    }

    public func resetAlertRuleStates(tenantID: UUID, ruleID: UUID) async throws {
        try await execute("DELETE FROM alert_rule_states WHERE tenant_id = \(tenantID) AND rule_id = \(ruleID)")
    }
}
