-- Pauses set through the API, and the notification outbox.

-- An API pause or resume wins over the configuration's `paused` until the
-- next API call, and survives restarts and reloads.
CREATE TABLE assignment_pauses (
    system_id   TEXT NOT NULL,
    check_id    TEXT NOT NULL,
    paused      BOOLEAN NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (system_id, check_id)
);

-- One row per (transition or reminder, webhook target), written in the same
-- transaction as the transition. The body is rendered once, so every retry
-- sends the same bytes under the same idempotency key.
-- state: pending | delivered | failed (attempts exhausted) | suppressed.
CREATE TABLE outbox (
    id               BIGSERIAL PRIMARY KEY,
    transition_id    BIGINT NOT NULL,
    entity_id        TEXT NOT NULL,
    target           TEXT NOT NULL,
    kind             TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    body             TEXT NOT NULL,
    content_type     TEXT NOT NULL,
    state            TEXT NOT NULL,
    reason           TEXT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claimed_by       TEXT NULL,
    claimed_until    BIGINT NULL,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT NULL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_entity ON outbox (entity_id, target, created_at);

-- Every delivery attempt, for the delivery log.
CREATE TABLE delivery_attempts (
    outbox_id    BIGINT NOT NULL,
    attempt      BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    status_code  BIGINT NULL,
    error        TEXT NULL,
    duration_ms  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (outbox_id, attempt)
);

CREATE INDEX transitions_by_run ON transitions (run_id);

-- The API's cache of entity states reads what changed since its last look.
CREATE INDEX entity_state_by_time ON entity_state (updated_at);
