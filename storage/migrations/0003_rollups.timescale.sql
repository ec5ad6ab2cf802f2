-- TimescaleDB: hypertables, compression segmented by source, hourly and daily rollups as
-- continuous aggregates (the daily one built on the hourly one). Policies (retention,
-- compression, refresh) are not here: `storage.migrate up` applies them from the environment's
-- settings on every run, after checking that they cannot overlap.

SELECT create_hypertable('readings', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('aggregates', by_range('window_start', INTERVAL '7 days'),
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('alarm_events', by_range('last_seen', INTERVAL '7 days'),
                         if_not_exists => TRUE, migrate_data => TRUE);

ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'source_id',
                          timescaledb.compress_orderby = 'metric, time DESC');
ALTER TABLE aggregates SET (timescaledb.compress, timescaledb.compress_segmentby = 'source_id',
                            timescaledb.compress_orderby = 'metric, window_s, window_start DESC');
ALTER TABLE alarm_events SET (timescaledb.compress, timescaledb.compress_segmentby = 'source_id',
                              timescaledb.compress_orderby = 'last_seen DESC');

-- Real-time aggregation (materialized_only = false): rows newer than the last refresh are
-- aggregated at query time, so the rollups are never behind the raw data.
CREATE MATERIALIZED VIEW IF NOT EXISTS readings_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, source_id, metric,
       sum(value) AS sum, count(*) AS count, min(value) AS min, max(value) AS max
FROM readings
GROUP BY 1, source_id, metric
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS readings_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, source_id, metric,
       sum(sum) AS sum, sum(count)::bigint AS count, min(min) AS min, max(max) AS max
FROM readings_1h
GROUP BY 1, source_id, metric
WITH NO DATA;
