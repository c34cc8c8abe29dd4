-- Incidents and announcements operators post, with their timeline of updates.
CREATE TABLE incidents (
    id BIGSERIAL PRIMARY KEY,
    title TEXT NOT NULL,
    -- notice | minor | major | critical
    severity TEXT NOT NULL,
    -- JSON array of system ids
    systems TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    resolved_at BIGINT NULL
);
CREATE INDEX incidents_open ON incidents (resolved_at, id);
CREATE TABLE incident_updates (
    id BIGSERIAL PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    -- investigating | identified | monitoring | update | resolved
    state TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX incident_updates_of ON incident_updates (incident_id, id);
