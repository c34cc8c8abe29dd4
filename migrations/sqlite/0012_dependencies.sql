-- A notice held because a dependency of its assignment is unhealthy names
-- that dependency, so the notice can go out when the dependency recovers
-- while the dependent is still down.
ALTER TABLE outbox ADD COLUMN held_by TEXT NULL;
CREATE INDEX outbox_held ON outbox (held_by) WHERE held_by IS NOT NULL;
