-- Indexes for the API's reads (fleet status, alarm filters and heatmaps, inactive devices,
-- KPIs). Both plain PostgreSQL and TimescaleDB; every statement is idempotent.

-- Alarm listing filtered by type or source, newest first (keyset on last_seen, alert_id).
CREATE INDEX IF NOT EXISTS alarms_type_last_seen_idx ON alarms (alert_type, last_seen DESC, alert_id);
CREATE INDEX IF NOT EXISTS alarms_source_last_seen_idx ON alarms (source_id, last_seen DESC, alert_id);
-- Heatmaps bucket alarms by when they started.
CREATE INDEX IF NOT EXISTS alarms_first_seen_idx ON alarms (first_seen);

-- Fleet pages per kind and buildings per site/zone.
CREATE INDEX IF NOT EXISTS source_state_kind_idx ON source_state (kind, source_id);
CREATE INDEX IF NOT EXISTS source_state_site_zone_idx ON source_state (site_id, zone_id) WHERE site_id IS NOT NULL;

-- "Inactive now" reads the few flagged devices, not every device.
CREATE INDEX IF NOT EXISTS device_inactivity_inactive_idx ON device_inactivity (device_id) WHERE inactive;

-- KPIs over a time range for the whole fleet.
CREATE INDEX IF NOT EXISTS driving_kpis_window_idx ON driving_kpis (window_s, window_start);

-- Retention pruning (`storage.migrate prune`) of tables that are not hypertables.
CREATE INDEX IF NOT EXISTS trip_metrics_window_idx ON trip_metrics (window_start);
