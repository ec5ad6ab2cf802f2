-- Who acknowledged or cleared an alarm by hand, and when: one row per change the API made, written
-- in the same statement as the change (api.routers.alarms). `key_name` is the API key's name;
-- `fleet_id` the alarm's, so the audit is scoped like everything else. No foreign key to alarms:
-- the record of who did what outlives the alarm row.
-- Plain SQL for PostgreSQL and TimescaleDB alike (a small table: not a hypertable).
CREATE TABLE IF NOT EXISTS alarm_audit (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id  text        NOT NULL,
    action    text        NOT NULL CHECK (action IN ('acknowledge', 'clear')),
    key_name  text        NOT NULL,
    fleet_id  text        NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    note      text
);
CREATE INDEX IF NOT EXISTS alarm_audit_alert_idx ON alarm_audit (alert_id, at);
CREATE INDEX IF NOT EXISTS alarm_audit_fleet_idx ON alarm_audit (fleet_id, at DESC);

-- Who cleared by hand (NULL: the pipeline cleared it), beside acknowledged_by.
ALTER TABLE alarms ADD COLUMN IF NOT EXISTS cleared_by text;
