-- Probes: processes on other machines that run a location's slices and
-- report back. A probe slice's env_key ends in '@<location>'.
ALTER TABLE slices ADD COLUMN location_id TEXT NULL;
-- A probe slice's newest run by measured time, written with each change of
-- its outcomes: a run spooled before the newest written (a no-probe run,
-- say) and delivered after it is stored, but its state follows the newest.
ALTER TABLE slices ADD COLUMN newest_at BIGINT NULL;

-- A probe's run is stored under an id made at ingest (so the event stream
-- never skips a late run); when it was measured earlier, this says when.
ALTER TABLE runs ADD COLUMN measured_at BIGINT NULL;

-- One row per probe token; only the token's SHA-256 is kept. The rest is
-- what its last heartbeat said, and the newest run sequence stored, which
-- makes a retried batch idempotent.
CREATE TABLE probes (
    id             TEXT PRIMARY KEY,
    location_id    TEXT NOT NULL,
    token_hash     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT NULL,
    version        TEXT NULL,
    seen_at        BIGINT NULL,
    clock_skew_ms  BIGINT NULL,
    spool_depth    BIGINT NULL,
    spool_dropped  BIGINT NULL,
    last_seq       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX probes_by_location ON probes (location_id);
