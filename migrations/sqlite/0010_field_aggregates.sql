-- The result fields plugins mark for aggregation (x-aggregate), per slice,
-- collector and field, in the same hourly and daily tiers as latency. Every
-- aggregate kind reads from these columns, and each merges by addition,
-- min, max or newest, so writers on several nodes can upsert without
-- reading first.
CREATE TABLE field_aggregates_hourly (
    slice_id    INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    -- the collector's plugin id; <id>#2 for its second use in the check
    collector   TEXT NOT NULL,
    field       TEXT NOT NULL,
    samples     INTEGER NOT NULL,
    value_sum   REAL NOT NULL,
    value_min   REAL NOT NULL,
    value_max   REAL NOT NULL,
    -- the newest value and when it was measured
    value_last  REAL NOT NULL,
    last_at     INTEGER NOT NULL,
    PRIMARY KEY (slice_id, bucket, collector, field)
);
CREATE TABLE field_aggregates_daily (
    slice_id    INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    -- the collector's plugin id; <id>#2 for its second use in the check
    collector   TEXT NOT NULL,
    field       TEXT NOT NULL,
    samples     INTEGER NOT NULL,
    value_sum   REAL NOT NULL,
    value_min   REAL NOT NULL,
    value_max   REAL NOT NULL,
    -- the newest value and when it was measured
    value_last  REAL NOT NULL,
    last_at     INTEGER NOT NULL,
    PRIMARY KEY (slice_id, bucket, collector, field)
);
