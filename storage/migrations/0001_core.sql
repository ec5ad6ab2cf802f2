-- fleet-monitor core schema. Plain PostgreSQL; the TimescaleDB migrations that follow turn the
-- time-series tables into hypertables when the extension is present.
-- Every writer upserts on deterministic keys, so replays after a restart change nothing.

-- Raw readings, one row per (event, metric): the narrow form serves every family's trends.
CREATE TABLE IF NOT EXISTS readings (
    time         timestamptz      NOT NULL,
    source_id    text             NOT NULL,
    fleet_id     text             NOT NULL,
    schema_name  text             NOT NULL,
    metric       text             NOT NULL,
    value        double precision NOT NULL,
    event_id     text             NOT NULL,
    PRIMARY KEY (source_id, metric, time, event_id)
);
CREATE INDEX IF NOT EXISTS readings_time_idx ON readings (time DESC);

-- Event-time tumbling window aggregates per source and metric.
CREATE TABLE IF NOT EXISTS aggregates (
    window_start timestamptz      NOT NULL,
    window_end   timestamptz      NOT NULL,
    window_s     integer          NOT NULL CHECK (window_s > 0),
    source_id    text             NOT NULL,
    fleet_id     text             NOT NULL,
    schema_name  text             NOT NULL,
    metric       text             NOT NULL,
    avg          double precision NOT NULL,
    min          double precision NOT NULL,
    max          double precision NOT NULL,
    count        bigint           NOT NULL CHECK (count > 0),
    PRIMARY KEY (source_id, metric, window_s, window_start)
);
CREATE INDEX IF NOT EXISTS aggregates_window_idx ON aggregates (window_s, window_start DESC);

-- Alarms: one row per incident (alert_id is deterministic per source, type and incident start).
-- status: active -> acknowledged (by a person) -> cleared (by the pipeline when back in bounds).
CREATE TABLE IF NOT EXISTS alarms (
    alert_id        text             PRIMARY KEY,
    alert_type      text             NOT NULL,
    severity        text             NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status          text             NOT NULL CHECK (status IN ('active', 'acknowledged', 'cleared')),
    source_id       text             NOT NULL,
    fleet_id        text             NOT NULL,
    first_seen      timestamptz      NOT NULL,
    last_seen       timestamptz      NOT NULL,
    cleared_at      timestamptz,
    count           bigint           NOT NULL CHECK (count > 0),
    value           double precision,
    threshold       double precision,
    message         text             NOT NULL DEFAULT '',
    acknowledged_at timestamptz,
    acknowledged_by text,
    updated_at      timestamptz      NOT NULL DEFAULT now()
);
-- At most one open alarm per (source, type): the database enforces what the jobs promise.
CREATE UNIQUE INDEX IF NOT EXISTS alarms_one_open_per_source_type
    ON alarms (source_id, alert_type) WHERE status <> 'cleared';
CREATE INDEX IF NOT EXISTS alarms_last_seen_idx ON alarms (last_seen DESC, alert_id);
CREATE INDEX IF NOT EXISTS alarms_status_idx ON alarms (status, severity);

-- Alarm history as shipped by Vector from the alerts topic (append-only, one row per record).
-- Vector's postgres sink inserts explicit NULLs for absent columns: no column may rely on a default.
CREATE TABLE IF NOT EXISTS alarm_events (
    alert_id    text             NOT NULL,
    alert_type  text             NOT NULL,
    severity    text             NOT NULL,
    status      text             NOT NULL,
    source_id   text             NOT NULL,
    fleet_id    text,
    first_seen  timestamptz      NOT NULL,
    last_seen   timestamptz      NOT NULL,
    cleared_at  timestamptz,
    count       bigint           NOT NULL,
    value       double precision,
    threshold   double precision,
    message     text
);
CREATE INDEX IF NOT EXISTS alarm_events_alert_idx ON alarm_events (alert_id, last_seen);
CREATE INDEX IF NOT EXISTS alarm_events_time_idx ON alarm_events (last_seen DESC);

-- Latest known state per source, for a fleet status page that reads one row per source.
CREATE TABLE IF NOT EXISTS source_state (
    source_id    text        PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('vehicle', 'building_device', 'device')),
    fleet_id     text        NOT NULL,
    site_id      text,
    zone_id      text,
    last_seen    timestamptz NOT NULL,
    last_schema  text        NOT NULL,
    latest       jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS source_state_fleet_idx ON source_state (fleet_id, source_id);

-- Device liveness as the inactivity job sees it.
CREATE TABLE IF NOT EXISTS device_inactivity (
    device_id      text             PRIMARY KEY,
    last_seen      timestamptz      NOT NULL,
    timeout_s      double precision NOT NULL CHECK (timeout_s > 0),
    inactive       boolean          NOT NULL,
    inactive_since timestamptz,
    updated_at     timestamptz      NOT NULL
);

-- Self-driving KPIs per vehicle and window.
CREATE TABLE IF NOT EXISTS driving_kpis (
    window_start          timestamptz      NOT NULL,
    window_end            timestamptz      NOT NULL,
    window_s              integer          NOT NULL CHECK (window_s > 0),
    source_id             text             NOT NULL,
    fleet_id              text             NOT NULL,
    interventions         bigint           NOT NULL,
    disengagements        bigint           NOT NULL,
    distance_km           double precision NOT NULL,
    km_per_intervention   double precision,  -- NULL when there was no intervention
    PRIMARY KEY (source_id, window_s, window_start)
);

-- Per-region trip metrics per window.
CREATE TABLE IF NOT EXISTS trip_metrics (
    window_start     timestamptz      NOT NULL,
    window_end       timestamptz      NOT NULL,
    window_s         integer          NOT NULL CHECK (window_s > 0),
    region_id        text             NOT NULL,
    trips            bigint           NOT NULL,
    revenue          double precision NOT NULL,
    avg_duration_s   double precision NOT NULL,
    avg_distance_km  double precision NOT NULL,
    PRIMARY KEY (region_id, window_s, window_start)
);

-- Payloads the pipeline could not use: malformed (with the parse error and field) or later
-- than the allowed lateness. `id` is deterministic (hash of origin and payload) for idempotency.
CREATE TABLE IF NOT EXISTS dead_letters (
    id           text        PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('malformed', 'late')),
    topic        text        NOT NULL,
    payload      text        NOT NULL,
    error        text        NOT NULL,
    field        text,
    received_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_received_idx ON dead_letters (received_at DESC);
