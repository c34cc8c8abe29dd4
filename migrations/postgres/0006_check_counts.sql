-- "2 of 3 checks": of the checks that count in an entity, how many are
-- healthy, kept with its status (NULL until the entity is next evaluated).
ALTER TABLE entity_state ADD COLUMN healthy_checks INTEGER NULL;
ALTER TABLE entity_state ADD COLUMN total_checks INTEGER NULL;
