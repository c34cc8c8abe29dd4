-- An assignment's flapping detection, as JSON {changes, windowMs}; NULL: off.
ALTER TABLE assignments ADD COLUMN flapping TEXT NULL;
