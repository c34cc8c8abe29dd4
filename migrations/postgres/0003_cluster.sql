-- Several nodes on one database: who is alive, which configuration each
-- runs, and the shared schedule they claim due slices from.

CREATE TABLE nodes (
    id              TEXT PRIMARY KEY,
    listen          TEXT NOT NULL,
    config_version  TEXT NOT NULL,
    started_at      BIGINT NOT NULL,
    heartbeat_at    BIGINT NOT NULL,
    stopped_at      BIGINT NULL
);

-- A configuration version (a hash of the loaded file) and when the cluster
-- first saw it: the newest one a live node runs owns the schedule.
CREATE TABLE config_versions (
    version     TEXT PRIMARY KEY,
    first_seen  BIGINT NOT NULL
);

-- One row per slice of the owning configuration. A node claims a due row by
-- setting its lease (FOR UPDATE SKIP LOCKED), runs it, and hands it back
-- with its next tick on the slice's grid.
CREATE TABLE schedule (
    slice           TEXT PRIMARY KEY,
    system_id       TEXT NOT NULL,
    check_id        TEXT NOT NULL,
    config_version  TEXT NOT NULL,
    interval_ms     BIGINT NOT NULL,
    due_at          BIGINT NOT NULL,
    lease_owner     TEXT NULL,
    lease_until     BIGINT NULL
);
CREATE INDEX schedule_due ON schedule (due_at);
