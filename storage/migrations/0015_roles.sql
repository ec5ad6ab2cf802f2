-- Least-privilege roles (storage/roles.py names them and makes their LOGIN users). NOLOGIN group
-- roles hold the privileges; `python -m storage.migrate roles` creates the LOGIN users that are
-- members of them, with passwords the deployer provides (none is ever written here).
--   fleet_owner   owns the schema and every object in it; later migrations run as it (storage.migrate).
--                 It is its own login: TimescaleDB runs a hypertable's policy jobs as the table's
--                 owner and refuses an owner without LOGIN. No password until `roles` sets one.
--   fleet_writer  the loader, the alert shipper / Vector: INSERT/UPDATE on the tables they write,
--                 SELECT only on the columns their upserts read
--   fleet_api     the API: SELECT on what it reads, UPDATE on the alarm lifecycle columns only,
--                 INSERT on alarm_audit (0014) when that table exists
--   fleet_grafana dashboards: SELECT only (its LOGIN user is read-only with a statement timeout)
-- Needs a role with CREATEROLE (the bootstrap superuser); every statement is idempotent.

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['fleet_owner', 'fleet_writer', 'fleet_api', 'fleet_grafana'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', name);
        END IF;
    END LOOP;
    ALTER ROLE fleet_owner LOGIN;
END
$$;

-- Nobody but the owner creates objects in the schema (PostgreSQL < 15 let everyone).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO fleet_owner;
GRANT USAGE ON SCHEMA public TO fleet_writer, fleet_api, fleet_grafana;

-- Every table, view, rollup and function of the schema so far (made by the bootstrap user) goes
-- to fleet_owner; the TimescaleDB extension's own objects stay the extension's.
DO $$
DECLARE
    object record;
    rollups text[] := '{}';
BEGIN
    IF to_regclass('timescaledb_information.continuous_aggregates') IS NOT NULL THEN
        EXECUTE 'SELECT coalesce(array_agg(view_name::text), ''{}'') FROM timescaledb_information.continuous_aggregates'
                ' WHERE view_schema = ''public''' INTO rollups;
    END IF;
    FOR object IN
        SELECT c.oid, c.relname, c.relkind FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
          -- a serial's or identity's sequence moves with its table
          AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
          AND pg_get_userbyid(c.relowner) <> 'fleet_owner'
    LOOP
        IF object.relkind = 'm' OR object.relname = ANY (rollups) THEN  -- a continuous aggregate is a view
            EXECUTE format('ALTER MATERIALIZED VIEW %I OWNER TO fleet_owner', object.relname);
        ELSIF object.relkind = 'v' THEN
            EXECUTE format('ALTER VIEW %I OWNER TO fleet_owner', object.relname);
        ELSIF object.relkind = 'S' THEN
            EXECUTE format('ALTER SEQUENCE %I OWNER TO fleet_owner', object.relname);
        ELSE
            EXECUTE format('ALTER TABLE %I OWNER TO fleet_owner', object.relname);
        END IF;
    END LOOP;
    FOR object IN
        SELECT p.oid FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO fleet_owner', object.oid::regprocedure);
    END LOOP;
END
$$;

-- Writer: what storage.writes upserts (loader) and what Vector / the alert shipper append. Its
-- staging tables copy the written columns' types (CREATE TEMP TABLE ... AS SELECT, no rows), and
-- ON CONFLICT DO UPDATE reads the stored row: SELECT on the written columns, nothing more.
GRANT SELECT, INSERT, UPDATE ON readings, aggregates, source_state, device_inactivity, driving_kpis, trip_metrics,
    dead_letters, loader_offsets TO fleet_writer;
GRANT INSERT ON alarm_events TO fleet_writer;
GRANT INSERT, SELECT (alert_id, alert_type, severity, status, source_id, fleet_id, first_seen, last_seen, cleared_at,
                      count, value, threshold, message),
    UPDATE (severity, status, last_seen, cleared_at, count, value, threshold, message, updated_at)
    ON alarms TO fleet_writer;

-- API: its reads (api/routers: the tables, the rollups, and the migration ledger for /ready) and
-- the alarm lifecycle (acknowledge/clear) columns.
GRANT SELECT ON readings, readings_1h, readings_1d, aggregates, alarms, source_state, device_inactivity, driving_kpis,
    trip_metrics, schema_migrations TO fleet_api;
GRANT UPDATE (status, acknowledged_at, acknowledged_by, cleared_at, updated_at) ON alarms TO fleet_api;
-- Who acknowledged/cleared what (0014): the API records it; the loader's alarm upsert forgets a
-- person's clear once the pipeline moves the alarm on (storage.writes).
GRANT SELECT, INSERT ON alarm_audit TO fleet_api;
GRANT UPDATE (cleared_by) ON alarms TO fleet_api, fleet_writer;

-- Grafana: reads everything the dashboards and Explore may show.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO fleet_grafana;

-- Objects later migrations make (as fleet_owner): readable by the API and Grafana from the start.
-- Write grants are never implicit: a migration adding a table the writer fills grants it there.
ALTER DEFAULT PRIVILEGES FOR ROLE fleet_owner IN SCHEMA public GRANT SELECT ON TABLES TO fleet_api, fleet_grafana;
