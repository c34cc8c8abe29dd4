-- Schema for the batched writer. Slices get an integer id that runs and
-- aggregates refer to, and carry the recent outcomes that thresholds need,
-- so evaluating state never scans runs. Run ids are made by the writer
-- before the write: created_at << 20 | writer tag << 10 | sequence. They sort
-- by time, carry the run's timestamp, and make a retried batch idempotent.

CREATE TABLE slices (
    id              INTEGER PRIMARY KEY,
    system_id       TEXT NOT NULL,
    check_id        TEXT NOT NULL,
    environment_id  TEXT NULL,
    -- '' for env-less slices, so the unique key treats "no environment" as one value.
    env_key         TEXT NOT NULL,
    -- newest first, '1' failed, '0' passed; as many as the thresholds need.
    outcomes        TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'unknown',
    UNIQUE (system_id, check_id, env_key)
);
CREATE INDEX slices_by_system ON slices (system_id, env_key);

INSERT OR IGNORE INTO slices (system_id, check_id, environment_id, env_key)
    SELECT system_id, check_id, environment_id, COALESCE(environment_id, '') FROM runs
    UNION SELECT system_id, check_id, environment_id, env_key FROM aggregates_hourly
    UNION SELECT system_id, check_id, environment_id, env_key FROM aggregates_daily;

UPDATE slices SET
    outcomes = COALESCE((SELECT group_concat(f, '') FROM (
        SELECT CASE r.status WHEN 'healthy' THEN '0' ELSE '1' END AS f FROM runs r
        WHERE r.system_id = slices.system_id AND r.check_id = slices.check_id
          AND r.environment_id IS slices.environment_id
        ORDER BY r.created_at DESC, r.id DESC LIMIT 100)), '');

CREATE TABLE runs_v2 (
    id          INTEGER PRIMARY KEY,
    slice_id    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    latency_ms  REAL NOT NULL,
    result      TEXT NOT NULL,
    error       TEXT NULL
);
INSERT INTO runs_v2 (id, slice_id, status, latency_ms, result, error)
    SELECT (r.created_at << 20) | (r.id & 1048575), s.id, r.status, r.latency_ms, r.result, r.error
    FROM runs r JOIN slices s ON s.system_id = r.system_id AND s.check_id = r.check_id
        AND s.env_key = COALESCE(r.environment_id, '');
DROP TABLE runs;
ALTER TABLE runs_v2 RENAME TO runs;
CREATE INDEX runs_by_slice ON runs (slice_id, id);

CREATE TABLE aggregates_hourly_v2 (
    slice_id     INTEGER NOT NULL,
    bucket       INTEGER NOT NULL,
    total        INTEGER NOT NULL,
    healthy      INTEGER NOT NULL,
    unhealthy    INTEGER NOT NULL,
    latency_sum  REAL NOT NULL,
    latency_min  REAL NOT NULL,
    latency_max  REAL NOT NULL,
    p95          REAL NOT NULL,
    sketch       TEXT NOT NULL,
    PRIMARY KEY (slice_id, bucket)
);
INSERT INTO aggregates_hourly_v2
    SELECT s.id, a.bucket, a.total, a.healthy, a.unhealthy, a.latency_sum, a.latency_min,
           a.latency_max, MIN(MAX(a.p95, a.latency_min), a.latency_max), a.sketch
    FROM aggregates_hourly a JOIN slices s ON s.system_id = a.system_id AND s.check_id = a.check_id
        AND s.env_key = a.env_key;
DROP TABLE aggregates_hourly;
ALTER TABLE aggregates_hourly_v2 RENAME TO aggregates_hourly;

CREATE TABLE aggregates_daily_v2 (
    slice_id     INTEGER NOT NULL,
    bucket       INTEGER NOT NULL,
    total        INTEGER NOT NULL,
    healthy      INTEGER NOT NULL,
    unhealthy    INTEGER NOT NULL,
    latency_sum  REAL NOT NULL,
    latency_min  REAL NOT NULL,
    latency_max  REAL NOT NULL,
    p95          REAL NOT NULL,
    sketch       TEXT NOT NULL,
    PRIMARY KEY (slice_id, bucket)
);
INSERT INTO aggregates_daily_v2
    SELECT s.id, a.bucket, a.total, a.healthy, a.unhealthy, a.latency_sum, a.latency_min,
           a.latency_max, MIN(MAX(a.p95, a.latency_min), a.latency_max), a.sketch
    FROM aggregates_daily a JOIN slices s ON s.system_id = a.system_id AND s.check_id = a.check_id
        AND s.env_key = a.env_key;
DROP TABLE aggregates_daily;
ALTER TABLE aggregates_daily_v2 RENAME TO aggregates_daily;

ALTER TABLE transitions ADD COLUMN run_id INTEGER NULL;

-- One row per writer process; its id (mod 1024) is the tag in the run ids it makes.
CREATE TABLE writers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  INTEGER NOT NULL
);
