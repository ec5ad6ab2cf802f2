-- Hourly and daily rollups of raw readings on plain PostgreSQL (no TimescaleDB extension).
-- Same names and columns as the TimescaleDB continuous aggregates, so every query works on both.

-- time_bucket() as TimescaleDB defines it for timestamptz (origin Monday 2000-01-03 UTC).
CREATE OR REPLACE FUNCTION time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00');

CREATE OR REPLACE VIEW readings_1h AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, source_id, metric,
       sum(value) AS sum, count(*) AS count, min(value) AS min, max(value) AS max
FROM readings
GROUP BY 1, source_id, metric;

CREATE OR REPLACE VIEW readings_1d AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, source_id, metric,
       sum(sum) AS sum, sum(count)::bigint AS count, min(min) AS min, max(max) AS max
FROM readings_1h
GROUP BY 1, source_id, metric;
