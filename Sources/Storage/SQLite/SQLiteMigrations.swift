/// The SQLite schema, version by version. Timestamps are INTEGER microseconds since the epoch,
/// ids are lower-case UUID text.
enum SQLiteMigrations {
    static let all: [Migration] = [
        Migration(
            version: 1, name: "accounts, devices, telemetry",
            statements: [
                """
                CREATE TABLE tenants (
                    id TEXT PRIMARY KEY,
                    slug TEXT NOT NULL UNIQUE,
                    name TEXT NOT NULL,
                    tier TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                )
                """,
                """
                CREATE TABLE users (
                    id TEXT PRIMARY KEY,
                    email TEXT NOT NULL UNIQUE,
                    password_hash TEXT NOT NULL,
                    is_platform_admin INTEGER NOT NULL DEFAULT 0,
                    created_at INTEGER NOT NULL
                )
                """,
                """
                CREATE TABLE memberships (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    role TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, user_id)
                )
                """,
                "CREATE INDEX memberships_by_user ON memberships (user_id, created_at)",
                """
                CREATE TABLE sessions (
                    token_hash TEXT PRIMARY KEY,
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at INTEGER NOT NULL,
                    last_seen_at INTEGER NOT NULL
                )
                """,
                "CREATE INDEX sessions_by_last_seen ON sessions (last_seen_at)",
                """
                CREATE TABLE api_tokens (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id TEXT NOT NULL,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    token_hash TEXT NOT NULL UNIQUE,
                    created_at INTEGER NOT NULL,
                    last_used_at INTEGER,
                    revoked_at INTEGER,
                    PRIMARY KEY (tenant_id, id)
                )
                """,
                """
                CREATE TABLE devices (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    serial TEXT NOT NULL UNIQUE,
                    name TEXT NOT NULL,
                    location TEXT,
                    created_at INTEGER NOT NULL,
                    last_seen INTEGER,
                    revoked_at INTEGER,
                    key_hash TEXT NOT NULL,
                    previous_key_hash TEXT,
                    previous_key_expires_at INTEGER,
                    PRIMARY KEY (tenant_id, serial)
                )
                """,
                """
                CREATE TABLE telemetry (
                    tenant_id TEXT NOT NULL,
                    device_serial TEXT NOT NULL,
                    ts INTEGER NOT NULL,
                    mode TEXT NOT NULL,
                    temp_inside REAL NOT NULL,
                    temp_outside REAL,
                    setpoint REAL NOT NULL,
                    hysteresis REAL NOT NULL,
                    output TEXT NOT NULL,
                    PRIMARY KEY (tenant_id, device_serial, ts)
                ) WITHOUT ROWID
                """,
            ]),
        Migration(
            version: 2, name: "scripts",
            statements: [
                """
                CREATE TABLE scripts (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    hook TEXT NOT NULL,
                    active_version INTEGER,
                    failure_count INTEGER NOT NULL DEFAULT 0,
                    quarantined_until INTEGER,
                    last_error TEXT,
                    last_failure_input TEXT,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, id),
                    UNIQUE (tenant_id, name)
                )
                """,
                """
                CREATE TABLE script_versions (
                    tenant_id TEXT NOT NULL,
                    script_id TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    source TEXT NOT NULL,
                    sha256 TEXT NOT NULL,
                    config TEXT NOT NULL,
                    author_id TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, script_id, version),
                    FOREIGN KEY (tenant_id, script_id) REFERENCES scripts (tenant_id, id) ON DELETE CASCADE
                )
                """,
            ]),
        Migration(
            version: 3, name: "api token scope and expiry",
            statements: [
                "ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'write'",
                "ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER",
            ]),
        // Serials are unique per tenant, not platform-wide; devices are found by their key.
        Migration(
            version: 4, name: "serials unique per tenant, devices found by key",
            statements: [
                """
                CREATE TABLE devices_per_tenant (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    serial TEXT NOT NULL,
                    name TEXT NOT NULL,
                    location TEXT,
                    created_at INTEGER NOT NULL,
                    last_seen INTEGER,
                    revoked_at INTEGER,
                    key_hash TEXT NOT NULL,
                    previous_key_hash TEXT,
                    previous_key_expires_at INTEGER,
                    PRIMARY KEY (tenant_id, serial)
                )
                """,
                """
                INSERT INTO devices_per_tenant
                SELECT tenant_id, serial, name, location, created_at, last_seen, revoked_at, key_hash, previous_key_hash,
                    previous_key_expires_at
                FROM devices
                """,
                "DROP TABLE devices",
                "ALTER TABLE devices_per_tenant RENAME TO devices",
                "CREATE UNIQUE INDEX devices_by_key ON devices (key_hash)",
                "CREATE INDEX devices_by_previous_key ON devices (previous_key_hash) WHERE previous_key_hash IS NOT NULL",
            ]),
        Migration(
            version: 5, name: "invitations",
            statements: [
                """
                CREATE TABLE invitations (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id TEXT NOT NULL,
                    email TEXT NOT NULL,
                    role TEXT NOT NULL,
                    invited_by TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, id),
                    UNIQUE (tenant_id, email)
                )
                """,
                "CREATE INDEX invitations_by_email ON invitations (email)",
            ]),
        Migration(
            version: 6, name: "disabled tenants",
            statements: [
                """
                CREATE TABLE disabled_tenants (
                    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
                    disabled_at INTEGER NOT NULL
                )
                """
            ]),
        Migration(
            version: 7, name: "contract policies",
            statements: [
                """
                CREATE TABLE contract_policies (
                    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
                    source TEXT NOT NULL,
                    assigned_at INTEGER NOT NULL
                )
                """
            ]),
        Migration(
            version: 8, name: "password resets",
            statements: [
                """
                CREATE TABLE password_resets (
                    token_hash TEXT PRIMARY KEY,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL
                )
                """
            ]),
        Migration(
            version: 9, name: "alerts",
            statements: [
                """
                CREATE TABLE alert_channels (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    name TEXT NOT NULL,
                    recipients TEXT NOT NULL,
                    url TEXT,
                    secret TEXT,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, id)
                )
                """,
                """
                CREATE TABLE alert_rules (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    script TEXT NOT NULL,
                    device_serial TEXT,
                    config TEXT NOT NULL,
                    for_seconds INTEGER NOT NULL,
                    cooldown_seconds INTEGER NOT NULL,
                    repeat_seconds INTEGER,
                    notify_resolved INTEGER NOT NULL,
                    no_data_seconds INTEGER,
                    enabled INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, id),
                    UNIQUE (tenant_id, name)
                )
                """,
                "CREATE INDEX alert_rules_enabled ON alert_rules (tenant_id) WHERE enabled",
                """
                CREATE TABLE alert_rule_channels (
                    tenant_id TEXT NOT NULL,
                    rule_id TEXT NOT NULL,
                    channel_id TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, rule_id, channel_id),
                    FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules(tenant_id, id) ON DELETE CASCADE,
                    FOREIGN KEY (tenant_id, channel_id) REFERENCES alert_channels(tenant_id, id) ON DELETE CASCADE
                )
                """,
                """
                CREATE TABLE alert_rule_states (
                    tenant_id TEXT NOT NULL,
                    rule_id TEXT NOT NULL,
                    device_serial TEXT NOT NULL,
                    state TEXT NOT NULL,
                    notified TEXT NOT NULL,
                    PRIMARY KEY (tenant_id, device_serial, rule_id),
                    FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules(tenant_id, id) ON DELETE CASCADE
                ) WITHOUT ROWID
                """,
                """
                CREATE TABLE alerts (
                    tenant_id TEXT NOT NULL,
                    id TEXT NOT NULL,
                    rule_id TEXT NOT NULL,
                    device_serial TEXT NOT NULL,
                    key TEXT NOT NULL,
                    state TEXT NOT NULL,
                    severity TEXT NOT NULL,
                    message TEXT NOT NULL,
                    value REAL,
                    started_at INTEGER NOT NULL,
                    fired_at INTEGER,
                    resolved_at INTEGER,
                    last_notified_at INTEGER,
                    acknowledged_at INTEGER,
                    acknowledged_by TEXT,
                    PRIMARY KEY (tenant_id, id),
                    FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules(tenant_id, id) ON DELETE CASCADE
                )
                """,
                "CREATE INDEX alerts_newest ON alerts (tenant_id, started_at DESC, id DESC)",
                "CREATE UNIQUE INDEX alerts_open ON alerts (tenant_id, rule_id, device_serial, key) WHERE state <> 'resolved'",
                """
                CREATE TABLE alert_silences (
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id TEXT NOT NULL,
                    device_serial TEXT,
                    rule_id TEXT,
                    until INTEGER NOT NULL,
                    comment TEXT,
                    created_by TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, id),
                    FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules(tenant_id, id) ON DELETE CASCADE
                )
                """,
                """
                CREATE TABLE alert_deliveries (
                    tenant_id TEXT NOT NULL,
                    id TEXT NOT NULL UNIQUE,
                    alert_id TEXT,
                    channel_id TEXT NOT NULL,
                    event TEXT NOT NULL,
                    status TEXT NOT NULL,
                    attempts INTEGER NOT NULL,
                    next_attempt_at INTEGER NOT NULL,
                    last_error TEXT,
                    payload TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    sent_at INTEGER,
                    lease_owner TEXT,
                    PRIMARY KEY (tenant_id, id),
                    FOREIGN KEY (tenant_id, alert_id) REFERENCES alerts(tenant_id, id) ON DELETE CASCADE,
                    FOREIGN KEY (tenant_id, channel_id) REFERENCES alert_channels(tenant_id, id) ON DELETE CASCADE
                )
                """,
                "CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status IN ('pending', 'retrying')",
                "CREATE INDEX alert_deliveries_by_alert ON alert_deliveries (tenant_id, alert_id)",
                "CREATE INDEX alert_deliveries_newest ON alert_deliveries (tenant_id, created_at DESC)",
                """
                CREATE TABLE alert_queue (
                    tenant_id TEXT NOT NULL,
                    device_serial TEXT NOT NULL,
                    ts INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, device_serial, ts)
                ) WITHOUT ROWID
                """,
            ]),
        Migration(
            version: 10, name: "telemetry rollups",
            statements: [
                """
                CREATE TABLE telemetry_rollups (
                    tenant_id TEXT NOT NULL,
                    device_serial TEXT NOT NULL,
                    ts INTEGER NOT NULL,
                    resolution INTEGER NOT NULL,
                    samples INTEGER NOT NULL,
                    last_ts INTEGER NOT NULL,
                    mode TEXT NOT NULL,
                    output TEXT NOT NULL,
                    hysteresis REAL NOT NULL,
                    inside_min REAL NOT NULL,
                    inside_sum REAL NOT NULL,
                    inside_max REAL NOT NULL,
                    outside_count INTEGER NOT NULL,
                    outside_min REAL,
                    outside_sum REAL NOT NULL,
                    outside_max REAL,
                    setpoint_min REAL NOT NULL,
                    setpoint_sum REAL NOT NULL,
                    setpoint_max REAL NOT NULL,
                    heating INTEGER NOT NULL,
                    cooling INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, device_serial, ts, resolution)
                ) WITHOUT ROWID
                """,
                "CREATE INDEX telemetry_rollups_by_time ON telemetry_rollups (tenant_id, ts)",
                "CREATE INDEX alerts_resolved ON alerts (tenant_id, resolved_at) WHERE resolved_at IS NOT NULL",
            ]),
        // Evaluation passes take a tenant's oldest queued samples first: keyed in that order, a
        // pass reads its rows off the key instead of sorting the tenant's whole backlog.
        Migration(
            version: 11, name: "alert queue in time order",
            statements: [
                """
                CREATE TABLE alert_queue_by_time (
                    tenant_id TEXT NOT NULL,
                    device_serial TEXT NOT NULL,
                    ts INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, ts, device_serial)
                ) WITHOUT ROWID
                """,
                "INSERT INTO alert_queue_by_time (tenant_id, device_serial, ts) SELECT tenant_id, device_serial, ts FROM alert_queue",
                "DROP TABLE alert_queue",
                "ALTER TABLE alert_queue_by_time RENAME TO alert_queue",
            ]),
        // A commit queues its new samples of a tenant as one row (see `AlertQueueText`), taken in
        // commit order: one insert, read and delete per commit rather than per sample, and a
        // sample waits only for those committed before it. Samples queued before this version
        // move over as one batch per tenant (`%!.17g`: SQLite's printf keeps 17 digits only with `!`).
        Migration(
            version: 12, name: "alert queue of batches",
            statements: [
                """
                CREATE TABLE alert_batches (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    tenant_id TEXT NOT NULL,
                    sample_count INTEGER NOT NULL,
                    samples TEXT NOT NULL
                )
                """,
                "CREATE INDEX alert_batches_by_tenant ON alert_batches (tenant_id, seq)",
                """
                INSERT INTO alert_batches (tenant_id, sample_count, samples)
                SELECT tenant_id, count(*), group_concat(line, char(10)) FROM (
                    SELECT q.tenant_id, t.device_serial || char(9) || t.ts || char(9) || t.mode || char(9)
                        || printf('%!.17g', t.temp_inside) || char(9)
                        || CASE WHEN t.temp_outside IS NULL THEN '' ELSE printf('%!.17g', t.temp_outside) END || char(9)
                        || printf('%!.17g', t.setpoint) || char(9) || printf('%!.17g', t.hysteresis) || char(9) || t.output AS line
                    FROM alert_queue q
                    JOIN telemetry t ON t.tenant_id = q.tenant_id AND t.device_serial = q.device_serial AND t.ts = q.ts
                    ORDER BY q.tenant_id, q.ts, q.device_serial
                ) GROUP BY tenant_id
                """,
                "DROP TABLE alert_queue",
            ]),
    ]
}
