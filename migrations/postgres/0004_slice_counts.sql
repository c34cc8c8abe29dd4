-- Whether a slice counts in its entities: its assignment exists, is not
-- paused and still selects its environment. Kept by each configuration sync
-- and pause, so state is derived from what is enabled, not from whichever
-- slices last ran.
ALTER TABLE slices ADD COLUMN counts BOOLEAN NOT NULL DEFAULT TRUE;
