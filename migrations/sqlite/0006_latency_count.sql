-- Runs of a check that could not be prepared have no latency: buckets count
-- the runs that have one, and averages divide by that count.
ALTER TABLE aggregates_hourly ADD COLUMN latency_count INTEGER NOT NULL DEFAULT 0;
UPDATE aggregates_hourly SET latency_count = total;
ALTER TABLE aggregates_daily ADD COLUMN latency_count INTEGER NOT NULL DEFAULT 0;
UPDATE aggregates_daily SET latency_count = total;
