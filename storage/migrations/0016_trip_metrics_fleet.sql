-- Trip metrics per fleet as well as per region, so a key for some fleets sees its own fleets' trips
-- (api.routers.insights sums the fleets in scope). Rows written before held every fleet's trips of
-- a region in one row: they get the fleet '*', which no fleet-scoped key can hold (in a key, '*'
-- means every fleet), so only keys for every fleet see them.
-- Plain SQL for PostgreSQL and TimescaleDB alike (trip_metrics is not a hypertable).
ALTER TABLE trip_metrics ADD COLUMN IF NOT EXISTS fleet_id text NOT NULL DEFAULT '*';
ALTER TABLE trip_metrics ALTER COLUMN fleet_id DROP DEFAULT;
ALTER TABLE trip_metrics DROP CONSTRAINT trip_metrics_pkey;
ALTER TABLE trip_metrics ADD PRIMARY KEY (region_id, fleet_id, window_s, window_start);
