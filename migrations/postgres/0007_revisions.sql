-- Note revisions (issue #25). Every change that bumps a note's version keeps
-- the state it replaced, whatever code path wrote it: a PATCH, an ingest
-- upsert, a restore of a revision. The trigger does it in the writer's
-- transaction, so no write path can forget.
--
-- `changed_by` is who made a version: an API key's id, `master` or `dev`
-- (NULL for versions made before it was recorded). A revision carries the
-- author of the version it holds, as it carries that version's time.
--
-- Bodies are stored whole (TOAST compresses large ones): a revision of a
-- 10 KB note costs at most about 10 KB (docs/revisions.md).
ALTER TABLE notes ADD COLUMN changed_by TEXT;

CREATE TABLE note_revisions (
    note_id    UUID        NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    version    BIGINT      NOT NULL,
    title      TEXT        NOT NULL,
    body       TEXT        NOT NULL,
    tags       JSONB       NOT NULL,
    metadata   JSONB       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    changed_by TEXT,
    PRIMARY KEY (note_id, version)
);
-- Age retention (`purge`) scans by time.
CREATE INDEX note_revisions_by_time ON note_revisions (updated_at);

CREATE FUNCTION notes_keep_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO note_revisions (note_id, version, title, body, tags, metadata, updated_at, changed_by)
    VALUES (OLD.id, OLD.version, OLD.title, OLD.body, OLD.tags, OLD.metadata, OLD.updated_at,
            OLD.changed_by)
    ON CONFLICT (note_id, version) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER notes_keep_revision AFTER UPDATE OF version ON notes
    FOR EACH ROW WHEN (NEW.version > OLD.version) EXECUTE FUNCTION notes_keep_revision();
