/// The PostgreSQL schema, version by version. Telemetry is partitioned by month on `ts`
/// (native declarative partitioning) so retention can drop whole partitions; a DEFAULT
/// partition catches back-filled samples older than the first monthly partition.
enum PostgresMigrations {
    static let all: [Migration] = [
        Migration(
            version: 1, name: "accounts, devices, telemetry",
            statements: [
                """
                CREATE TABLE tenants (
                    id uuid PRIMARY KEY,
                    slug text NOT NULL UNIQUE,
                    name text NOT NULL,
                    tier text NOT NULL,
                    created_at timestamptz NOT NULL
                )
                """,
                """
                CREATE TABLE users (
                    id uuid PRIMARY KEY,
                    email text NOT NULL UNIQUE,
                    password_hash text NOT NULL,
                    is_platform_admin boolean NOT NULL DEFAULT false,
                    created_at timestamptz NOT NULL
                )
                """,
                """
                CREATE TABLE memberships (
                    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    role text NOT NULL,
                    created_at timestamptz NOT NULL,
                    PRIMARY KEY (tenant_id, user_id)
                )
                """,
                "CREATE INDEX memberships_by_user ON memberships (user_id, created_at)",
                """
                CREATE TABLE sessions (
                    token_hash text PRIMARY KEY,
                    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at timestamptz NOT NULL,
                    last_seen_at timestamptz NOT NULL
                )
                """,
                "CREATE INDEX sessions_by_last_seen ON sessions (last_seen_at)",
                """
                CREATE TABLE api_tokens (
                    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id uuid NOT NULL,
                    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    name text NOT NULL,
                    token_hash text NOT NULL UNIQUE,
                    created_at timestamptz NOT NULL,
                    last_used_at timestamptz,
                    revoked_at timestamptz,
                    PRIMARY KEY (tenant_id, id)
                )
                """,
                """
                CREATE TABLE devices (
                    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    serial text NOT NULL UNIQUE,
                    name text NOT NULL,
                    location text,
                    created_at timestamptz NOT NULL,
                    last_seen timestamptz,
                    revoked_at timestamptz,
                    key_hash text NOT NULL,
                    previous_key_hash text,
                    previous_key_expires_at timestamptz,
                    PRIMARY KEY (tenant_id, serial)
                )
                """,
                """
                CREATE TABLE telemetry (
                    tenant_id uuid NOT NULL,
                    device_serial text NOT NULL,
                    ts timestamptz NOT NULL,
                    mode text NOT NULL,
                    temp_inside double precision NOT NULL,
                    temp_outside double precision,
                    setpoint double precision NOT NULL,
                    hysteresis double precision NOT NULL,
                    output text NOT NULL,
                    PRIMARY KEY (tenant_id, device_serial, ts)
                ) PARTITION BY RANGE (ts)
                """,
                "CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT",
                """
                CREATE FUNCTION ensure_telemetry_partitions(months_ahead integer) RETURNS integer
                LANGUAGE plpgsql AS $$
                DECLARE
                    month_start date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
                    created integer := 0;
                    partition_name text;
                BEGIN
                    FOR i IN 0..months_ahead LOOP
                        partition_name := 'telemetry_' || to_char(month_start, 'YYYY_MM');
                        IF to_regclass(partition_name) IS NULL THEN
                            EXECUTE format(
                                'CREATE TABLE %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)',
                                partition_name,
                                (month_start::timestamp AT TIME ZONE 'UTC'),
                                ((month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
                            created := created + 1;
                        END IF;
                        month_start := (month_start + interval '1 month')::date;
                    END LOOP;
                    RETURN created;
                END
                $$
                """,
            ]),
        Migration(
            version: 2, name: "scripts",
            statements: [
                """
                CREATE TABLE scripts (
                    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id uuid NOT NULL,
                    name text NOT NULL,
                    hook text NOT NULL,
                    active_version integer,
                    failure_count integer NOT NULL DEFAULT 0,
                    quarantined_until timestamptz,
                    last_error text,
                    last_failure_input text,
                    created_at timestamptz NOT NULL,
                    PRIMARY KEY (tenant_id, id),
                    UNIQUE (tenant_id, name)
                )
                """,
                """
                CREATE TABLE script_versions (
                    tenant_id uuid NOT NULL,
                    script_id uuid NOT NULL,
                    version integer NOT NULL,
                    source text NOT NULL,
                    sha256 text NOT NULL,
                    config text NOT NULL,
                    author_id uuid NOT NULL,
                    created_at timestamptz NOT NULL,
                    PRIMARY KEY (tenant_id, script_id, version),
                    FOREIGN KEY (tenant_id, script_id) REFERENCES scripts (tenant_id, id) ON DELETE CASCADE
                )
                """,
            ]),
        Migration(
            version: 3, name: "api token scope and expiry",
            statements: [
                "ALTER TABLE api_tokens ADD COLUMN scope text NOT NULL DEFAULT 'write'",
                "ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz",
            ]),
        // Serials are unique per tenant, not platform-wide; devices are found by their key.
        Migration(
            version: 4, name: "serials unique per tenant, devices found by key",
            statements: [
                "ALTER TABLE devices DROP CONSTRAINT devices_serial_key",
                "CREATE UNIQUE INDEX devices_by_key ON devices (key_hash)",
                "CREATE INDEX devices_by_previous_key ON devices (previous_key_hash) WHERE previous_key_hash IS NOT NULL",
            ]),
        Migration(
            version: 5, name: "invitations",
            statements: [
                """
                CREATE TABLE invitations (
                    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id uuid NOT NULL,
                    email text NOT NULL,
                    role text NOT NULL,
                    invited_by uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at timestamptz NOT NULL,
                    expires_at timestamptz NOT NULL,
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
                    tenant_id uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
                    disabled_at timestamptz NOT NULL
                )
                """
            ]),
        Migration(
            version: 7, name: "contract policies",
            statements: [
                """
                CREATE TABLE contract_policies (
                    tenant_id uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
                    source text NOT NULL,
                    assigned_at timestamptz NOT NULL
                )
                """
            ]),
        Migration(
            version: 8, name: "password resets",
            statements: [
                """
                CREATE TABLE password_resets (
                    token_hash text PRIMARY KEY,
                    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at timestamptz NOT NULL,
                    expires_at timestamptz NOT NULL
                )
                """
            ]),
        Migration(
            version: 9, name: "alerts",
            statements: [
                """
                CREATE TABLE alert_channels (
                    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id uuid NOT NULL,
                    kind text NOT NULL,
                    name text NOT NULL,
                    recipients text NOT NULL,
                    url text,
                    secret text,
                    created_at timestamptz NOT NULL,
                    PRIMARY KEY (tenant_id, id)
                )
                """,
                """
                CREATE TABLE alert_rules (
                    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id uuid NOT NULL,
                    name text NOT NULL,
                    script text NOT NULL,
                    device_serial text,
                    config text NOT NULL,
                    for_seconds integer NOT NULL,
                    cooldown_seconds integer NOT NULL,
                    repeat_seconds integer,
                    notify_resolved boolean NOT NULL,
                    no_data_seconds integer,
                    enabled boolean NOT NULL,
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL,
                    PRIMARY KEY (tenant_id, id),
                    UNIQUE (tenant_id, name)
                )
                """,
                "CREATE INDEX alert_rules_enabled ON alert_rules (tenant_id) WHERE enabled",
                """
                CREATE TABLE alert_rule_channels (
                    tenant_id uuid NOT NULL,
                    rule_id uuid NOT NULL,
                    channel_id uuid NOT NULL,
                    position integer NOT NULL,
                    PRIMARY KEY (tenant_id, rule_id, channel_id),
                    FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules(tenant_id, id) ON DELETE CASCADE,
                    FOREIGN KEY (tenant_id, channel_id) REFERENCES alert_channels(tenant_id, id) ON DELETE CASCADE
                )
                """,
                """
                CREATE TABLE alert_rule_states (
                    tenant_id uuid NOT NULL,
                    rule_id uuid NOT NULL,
                    device_serial text NOT NULL,
                    state text NOT NULL,
                    notified text NOT NULL,
                    PRIMARY KEY (tenant_id, device_serial, rule_id),
                    FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules(tenant_id, id) ON DELETE CASCADE
                )
                """,
                """
                CREATE TABLE alerts (
                    tenant_id uuid NOT NULL,
                    id uuid NOT NULL,
                    rule_id uuid NOT NULL,
                    device_serial text NOT NULL,
                    key text NOT NULL,
                    state text NOT NULL,
                    severity text NOT NULL,
                    message text NOT NULL,
                    value double precision,
                    started_at timestamptz NOT NULL,
                    fired_at timestamptz,
                    resolved_at timestamptz,
                    last_notified_at timestamptz,
                    acknowledged_at timestamptz,
                    acknowledged_by uuid,
                    PRIMARY KEY (tenant_id, id),
                    FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules(tenant_id, id) ON DELETE CASCADE
                )
                """,
                "CREATE INDEX alerts_newest ON alerts (tenant_id, started_at DESC, id DESC)",
                "CREATE UNIQUE INDEX alerts_open ON alerts (tenant_id, rule_id, device_serial, key) WHERE state <> 'resolved'",
                """
                CREATE TABLE alert_silences (
                    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    id uuid NOT NULL,
                    device_serial text,
                    rule_id uuid,
                    until timestamptz NOT NULL,
                    comment text,
                    created_by uuid NOT NULL,
                    created_at timestamptz NOT NULL,
                    PRIMARY KEY (tenant_id, id),
                    FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules(tenant_id, id) ON DELETE CASCADE
                )
                """,
                """
                CREATE TABLE alert_deliveries (
                    tenant_id uuid NOT NULL,
                    id uuid NOT NULL UNIQUE,
                    alert_id uuid,
                    channel_id uuid NOT NULL,
                    event text NOT NULL,
                    status text NOT NULL,
                    attempts integer NOT NULL,
                    next_attempt_at timestamptz NOT NULL,
                    last_error text,
                    payload text NOT NULL,
                    created_at timestamptz NOT NULL,
                    sent_at timestamptz,
                    lease_owner uuid,
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
                    tenant_id uuid NOT NULL,
                    device_serial text NOT NULL,
                    ts timestamptz NOT NULL,
                    PRIMARY KEY (tenant_id, device_serial, ts)
                )
                """,
            ]),
        Migration(
            version: 10, name: "telemetry rollups",
            statements: [
                """
                CREATE TABLE telemetry_rollups (
                    tenant_id uuid NOT NULL,
                    device_serial text NOT NULL,
                    ts timestamptz NOT NULL,
                    resolution bigint NOT NULL,
                    samples bigint NOT NULL,
                    last_ts timestamptz NOT NULL,
                    mode text NOT NULL,
                    output text NOT NULL,
                    hysteresis double precision NOT NULL,
                    inside_min double precision NOT NULL,
                    inside_sum double precision NOT NULL,
                    inside_max double precision NOT NULL,
                    outside_count bigint NOT NULL,
                    outside_min double precision,
                    outside_sum double precision NOT NULL,
                    outside_max double precision,
                    setpoint_min double precision NOT NULL,
                    setpoint_sum double precision NOT NULL,
                    setpoint_max double precision NOT NULL,
                    heating bigint NOT NULL,
                    cooling bigint NOT NULL,
                    PRIMARY KEY (tenant_id, device_serial, ts, resolution)
                )
                """,
                "CREATE INDEX telemetry_rollups_by_time ON telemetry_rollups (tenant_id, ts)",
                "CREATE INDEX alerts_resolved ON alerts (tenant_id, resolved_at) WHERE resolved_at IS NOT NULL",
            ]),
        // Evaluation passes take a tenant's oldest queued samples first: keyed in that order, a
        // pass reads its rows off the key instead of sorting the tenant's whole backlog.
        Migration(
            version: 11, name: "alert queue in time order",
            statements: [
                "ALTER TABLE alert_queue DROP CONSTRAINT alert_queue_pkey, ADD PRIMARY KEY (tenant_id, ts, device_serial)"
            ]),
        // A commit queues its new samples of a tenant as one row (see `AlertQueueText`), taken in
        // commit order: one insert, read and delete per commit rather than per sample, and a
        // sample waits only for those committed before it. Samples queued before this version
        // move over as one batch per tenant.
        Migration(
            version: 12, name: "alert queue of batches",
            statements: [
                """
                CREATE TABLE alert_batches (
                    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    tenant_id uuid NOT NULL,
                    sample_count integer NOT NULL,
                    samples text NOT NULL
                )
                """,
                "CREATE INDEX alert_batches_by_tenant ON alert_batches (tenant_id, seq)",
                """
                INSERT INTO alert_batches (tenant_id, sample_count, samples)
                SELECT q.tenant_id, count(*), \(PostgresStore.queueLines(of: "t"))
                FROM alert_queue q
                JOIN telemetry t ON t.tenant_id = q.tenant_id AND t.device_serial = q.device_serial AND t.ts = q.ts
                GROUP BY q.tenant_id
                """,
                "DROP TABLE alert_queue",
            ]),
    ]
}
