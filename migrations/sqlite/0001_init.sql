-- checkhost schema, SQLite flavour. Times are Unix milliseconds.

CREATE TABLE checks (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    definition  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- environments: NULL = all current memberships, '[]' = env-less, '["a"]' = list.
CREATE TABLE assignments (
    system_id     TEXT NOT NULL,
    check_id      TEXT NOT NULL,
    environments  TEXT NULL,
    thresholds    TEXT NOT NULL,
    paused        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (system_id, check_id)
);

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id       TEXT NOT NULL,
    check_id        TEXT NOT NULL,
    environment_id  TEXT NULL,
    status          TEXT NOT NULL,
    latency_ms      REAL NOT NULL,
    result          TEXT NOT NULL,
    error           TEXT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX runs_by_slice ON runs (system_id, check_id, environment_id, created_at DESC, id DESC);
CREATE INDEX runs_by_time ON runs (created_at);

-- env_key is '' for env-less runs so the unique key treats NULLs as equal.
CREATE TABLE aggregates_hourly (
    check_id        TEXT NOT NULL,
    system_id       TEXT NOT NULL,
    environment_id  TEXT NULL,
    env_key         TEXT NOT NULL,
    bucket          INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    healthy         INTEGER NOT NULL,
    unhealthy       INTEGER NOT NULL,
    latency_sum     REAL NOT NULL,
    latency_min     REAL NOT NULL,
    latency_max     REAL NOT NULL,
    p95             REAL NOT NULL,
    sketch          TEXT NOT NULL,
    PRIMARY KEY (check_id, system_id, env_key, bucket)
);

CREATE TABLE aggregates_daily (
    check_id        TEXT NOT NULL,
    system_id       TEXT NOT NULL,
    environment_id  TEXT NULL,
    env_key         TEXT NOT NULL,
    bucket          INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    healthy         INTEGER NOT NULL,
    unhealthy       INTEGER NOT NULL,
    latency_sum     REAL NOT NULL,
    latency_min     REAL NOT NULL,
    latency_max     REAL NOT NULL,
    p95             REAL NOT NULL,
    sketch          TEXT NOT NULL,
    PRIMARY KEY (check_id, system_id, env_key, bucket)
);

CREATE TABLE entity_state (
    entity_id   TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE transitions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_id       TEXT NOT NULL,
    from_status     TEXT NOT NULL,
    to_status       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    check_id        TEXT NOT NULL,
    environment_id  TEXT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX transitions_by_entity ON transitions (entity_id, created_at DESC);
