-- Note revisions (issue #25). Every change that bumps a note's version keeps
-- the state it replaced, whatever code path wrote it: a PATCH, an ingest
-- upsert, a restore of a revision. The trigger does it in the writer's
-- transaction, so no write path can forget.
--
-- `changed_by` is who made a version: an API key's id, `master` or `dev`
-- (NULL for versions made before it was recorded). A revision carries the
-- author of the version it holds, as it carries that version's time.
--
-- Bodies are stored whole, as the note held them: a revision of a 10 KB
-- note costs about 12 KB on disk (docs/revisions.md has the measured figure).
ALTER TABLE notes ADD COLUMN changed_by TEXT;

CREATE TABLE note_revisions (
    note_id    TEXT    NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    title      TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    tags       TEXT    NOT NULL,   -- JSON array, as in notes
    metadata   TEXT    NOT NULL,   -- JSON object
    updated_at TEXT    NOT NULL,
    changed_by TEXT,
    UNIQUE (note_id, version)
);
-- Age retention (`purge`) scans by time.
CREATE INDEX note_revisions_by_time ON note_revisions (updated_at);

CREATE TRIGGER notes_keep_revision AFTER UPDATE OF version ON notes
WHEN new.version > old.version BEGIN
    INSERT OR IGNORE INTO note_revisions
        (note_id, version, title, body, tags, metadata, updated_at, changed_by)
    VALUES
        (old.id, old.version, old.title, old.body, old.tags, old.metadata, old.updated_at,
         old.changed_by);
END;
