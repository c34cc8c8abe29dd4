-- The result fields plugins mark for aggregation (x-aggregate), per bucket
-- beside latency: {"<collector>.<field>": [samples, sum, min, max, newest,
-- newest_at], ...}. In the row the writer already rewrites, so they cost no
-- extra rows and stay exact across writers.
ALTER TABLE aggregates_hourly ADD COLUMN fields TEXT NOT NULL DEFAULT '{}';
ALTER TABLE aggregates_daily ADD COLUMN fields TEXT NOT NULL DEFAULT '{}';
