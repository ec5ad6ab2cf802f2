-- Tire metrics as metric + tire (contracts.metrics): `pressure_kpa` with tire 'FL' instead of the
-- metric `pressure_kpa.FL`, so dashboards and the API filter one metric and group by tire. Rows of
-- every other family have tire '' (not NULL: the column is part of the aggregates' key).
-- The readings' key stays (source_id, metric, time, event_id): an event is of one tire.

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

-- The rollups group by tire too (a view cannot gain a column in the middle: recreate both).
DROP VIEW IF EXISTS readings_1d;
DROP VIEW IF EXISTS readings_1h;

CREATE VIEW readings_1h AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, source_id, metric, tire,
       sum(value) AS sum, count(*) AS count, min(value) AS min, max(value) AS max
FROM readings
GROUP BY 1, source_id, metric, tire;

CREATE VIEW readings_1d AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, source_id, metric, tire,
       sum(sum) AS sum, sum(count)::bigint AS count, min(min) AS min, max(max) AS max
FROM readings_1h
GROUP BY 1, source_id, metric, tire;
