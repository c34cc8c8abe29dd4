-- Whether each objective's burn-rate page condition held when last
-- evaluated. The evaluation that flips it writes the objective's notices in
-- the same transaction, so several nodes (or a restart) notify once.
CREATE TABLE slo_alerts (
    slo_id      TEXT PRIMARY KEY,
    paging      INTEGER NOT NULL,
    changed_at  BIGINT NOT NULL
);
