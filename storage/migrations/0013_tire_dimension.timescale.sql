-- Tire metrics as metric + tire (contracts.metrics): `pressure_kpa` with tire 'FL' instead of the
-- metric `pressure_kpa.FL`, so dashboards and the API filter one metric and group by tire. Rows of
-- every other family have tire '' (not NULL: the column is part of the aggregates' key).
-- The readings' key stays (source_id, metric, time, event_id): an event is of one tire.
--
-- TimescaleDB: the continuous aggregates cannot change their grouping, so both rollups are dropped
-- and created again with the tire; until the refresh policy (re)applied by `storage.migrate up`
-- materializes them, real-time aggregation answers from the raw readings. Rollup history older
-- than the readings' retention (rollups outlive raw data) cannot be rebuilt and is lost: export it
-- first where it matters. Compressed chunks are decompressed for the rewrite (the key changes,
-- and so does the compression order); the compression policy compresses them again.

DROP MATERIALIZED VIEW IF EXISTS readings_1d;
DROP MATERIALIZED VIEW IF EXISTS readings_1h;

SELECT remove_compression_policy(hypertable, if_exists => true) FROM (VALUES ('readings'), ('aggregates')) AS t(hypertable);
SELECT decompress_chunk(chunk, if_compressed => true) FROM show_chunks('readings') AS chunk;
SELECT decompress_chunk(chunk, if_compressed => true) FROM show_chunks('aggregates') AS chunk;
ALTER TABLE readings SET (timescaledb.compress = false);
ALTER TABLE aggregates SET (timescaledb.compress = false);

ALTER TABLE readings ADD COLUMN IF NOT EXISTS tire text NOT NULL DEFAULT '';
ALTER TABLE aggregates ADD COLUMN IF NOT EXISTS tire text NOT NULL DEFAULT '';

-- `<metric>.<position>` as the jobs wrote tire readings before: the position is after the last dot
-- (a tire reading's own metric names have none).
UPDATE readings SET metric = regexp_replace(metric, '\.[^.]*$', ''), tire = substring(metric FROM '[^.]*$')
WHERE schema_name = 'tire.reading' AND position('.' IN metric) > 0;
UPDATE aggregates SET metric = regexp_replace(metric, '\.[^.]*$', ''), tire = substring(metric FROM '[^.]*$')
WHERE schema_name = 'tire.reading' AND position('.' IN metric) > 0;

ALTER TABLE aggregates DROP CONSTRAINT aggregates_pkey;
ALTER TABLE aggregates ADD PRIMARY KEY (source_id, metric, tire, window_s, window_start);

ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'source_id',
                          timescaledb.compress_orderby = 'metric, tire, time DESC');
ALTER TABLE aggregates SET (timescaledb.compress, timescaledb.compress_segmentby = 'source_id',
                            timescaledb.compress_orderby = 'metric, tire, window_s, window_start DESC');

CREATE MATERIALIZED VIEW readings_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, source_id, metric, tire,
       sum(value) AS sum, count(*) AS count, min(value) AS min, max(value) AS max
FROM readings
GROUP BY 1, source_id, metric, tire
WITH NO DATA;

CREATE MATERIALIZED VIEW readings_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, source_id, metric, tire,
       sum(sum) AS sum, sum(count)::bigint AS count, min(min) AS min, max(max) AS max
FROM readings_1h
GROUP BY 1, source_id, metric, tire
WITH NO DATA;
