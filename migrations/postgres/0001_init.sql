-- checkhost schema, PostgreSQL flavour: the same tables and meaning as the
-- SQLite schema (see migrations/sqlite/). Times are Unix milliseconds.

CREATE TABLE checks (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    definition  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- environments: NULL = all current memberships, '[]' = env-less, '["a"]' = list.
CREATE TABLE assignments (
    system_id     TEXT NOT NULL,
    check_id      TEXT NOT NULL,
    environments  TEXT NULL,
    thresholds    TEXT NOT NULL,
    paused        BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (system_id, check_id)
);

-- One row per (system, check, environment | none): the recent outcomes
-- (newest first, '1' failed) that thresholds need, and the slice's status.
CREATE TABLE slices (
    id              BIGSERIAL PRIMARY KEY,
    system_id       TEXT NOT NULL,
    check_id        TEXT NOT NULL,
    environment_id  TEXT NULL,
    -- '' for env-less slices, so the unique key treats "no environment" as one value.
    env_key         TEXT NOT NULL,
    outcomes        TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'unknown',
    UNIQUE (system_id, check_id, env_key)
);
CREATE INDEX slices_by_system ON slices (system_id, env_key);

-- id = created_at << 20 | writer tag << 10 | sequence, made before the write.
CREATE TABLE runs (
    id          BIGINT PRIMARY KEY,
    slice_id    BIGINT NOT NULL,
    status      TEXT NOT NULL,
    latency_ms  DOUBLE PRECISION NOT NULL,
    result      TEXT NOT NULL,
    error       TEXT NULL
);
CREATE INDEX runs_by_slice ON runs (slice_id, id);

CREATE TABLE aggregates_hourly (
    slice_id     BIGINT NOT NULL,
    bucket       BIGINT NOT NULL,
    total        BIGINT NOT NULL,
    healthy      BIGINT NOT NULL,
    unhealthy    BIGINT NOT NULL,
    latency_sum  DOUBLE PRECISION NOT NULL,
    latency_min  DOUBLE PRECISION NOT NULL,
    latency_max  DOUBLE PRECISION NOT NULL,
    p95          DOUBLE PRECISION NOT NULL,
    sketch       TEXT NOT NULL,
    PRIMARY KEY (slice_id, bucket)
);

CREATE TABLE aggregates_daily (
    slice_id     BIGINT NOT NULL,
    bucket       BIGINT NOT NULL,
    total        BIGINT NOT NULL,
    healthy      BIGINT NOT NULL,
    unhealthy    BIGINT NOT NULL,
    latency_sum  DOUBLE PRECISION NOT NULL,
    latency_min  DOUBLE PRECISION NOT NULL,
    latency_max  DOUBLE PRECISION NOT NULL,
    p95          DOUBLE PRECISION NOT NULL,
    sketch       TEXT NOT NULL,
    PRIMARY KEY (slice_id, bucket)
);

CREATE TABLE entity_state (
    entity_id   TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE transitions (
    id              BIGSERIAL PRIMARY KEY,
    entity_id       TEXT NOT NULL,
    from_status     TEXT NOT NULL,
    to_status       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    check_id        TEXT NOT NULL,
    environment_id  TEXT NULL,
    created_at      BIGINT NOT NULL,
    run_id          BIGINT NULL
);
CREATE INDEX transitions_by_entity ON transitions (entity_id, created_at DESC);

-- One row per writer process; its id (mod 1024) is the tag in the run ids it makes.
CREATE TABLE writers (
    id          BIGSERIAL PRIMARY KEY,
    started_at  BIGINT NOT NULL
);
