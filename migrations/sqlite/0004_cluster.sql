-- Several nodes on one database (PostgreSQL; the tables exist here so both
-- engines answer the same reads): who is alive, which configuration each
-- runs, and the shared schedule they claim due slices from.

CREATE TABLE nodes (
    id              TEXT PRIMARY KEY,
    listen          TEXT NOT NULL,
    config_version  TEXT NOT NULL,
    started_at      INTEGER NOT NULL,
    heartbeat_at    INTEGER NOT NULL,
    stopped_at      INTEGER NULL
);

-- A configuration version (a hash of the loaded file) and when the cluster
-- first saw it: the newest one a live node runs owns the schedule.
CREATE TABLE config_versions (
    version     TEXT PRIMARY KEY,
    first_seen  INTEGER NOT NULL
);

-- One row per slice of the owning configuration. A node claims a due row by
-- setting its lease (FOR UPDATE SKIP LOCKED), runs it, and hands it back
-- with its next tick on the slice's grid.
CREATE TABLE schedule (
    slice           TEXT PRIMARY KEY,
    system_id       TEXT NOT NULL,
    check_id        TEXT NOT NULL,
    config_version  TEXT NOT NULL,
    interval_ms     INTEGER NOT NULL,
    due_at          INTEGER NOT NULL,
    lease_owner     TEXT NULL,
    lease_until     INTEGER NULL
);
CREATE INDEX schedule_due ON schedule (due_at);
