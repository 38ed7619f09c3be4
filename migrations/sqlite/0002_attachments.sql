-- Attachments: metadata here, bytes in object storage under a key the server
-- generates (attachments/<note id>/<attachment id>), so a filename never
-- chooses where bytes land and orphans can be found by prefix.
CREATE TABLE attachments (
    id           TEXT    NOT NULL PRIMARY KEY,
    note_seq     INTEGER NOT NULL REFERENCES notes (seq) ON DELETE CASCADE,
    note_id      TEXT    NOT NULL,
    filename     TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT    NOT NULL,
    storage_key  TEXT    NOT NULL UNIQUE,
    created_at   TEXT    NOT NULL,
    -- Extracted text of text-like attachments, already tokenized; joins the
    -- note's search document (the `extra` column of notes_fts).
    search_text  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX attachments_by_note ON attachments (note_seq);

-- The index row of a note is rebuilt from title, body and its attachments'
-- text whenever any of them changes.
DROP TRIGGER notes_after_update_text;

CREATE TRIGGER notes_after_update_text AFTER UPDATE OF title, body ON notes
WHEN old.title IS NOT new.title OR old.body IS NOT new.body BEGIN
    DELETE FROM notes_fts WHERE rowid = old.seq;
    INSERT INTO notes_fts (rowid, title, body, extra) VALUES (new.seq, new.title, new.body,
        coalesce((SELECT group_concat(search_text, ' ') FROM attachments WHERE note_seq = new.seq), ''));
END;

CREATE TRIGGER attachments_after_insert AFTER INSERT ON attachments
WHEN new.search_text != '' BEGIN
    DELETE FROM notes_fts WHERE rowid = new.note_seq;
    INSERT INTO notes_fts (rowid, title, body, extra)
        SELECT seq, title, body,
               coalesce((SELECT group_concat(search_text, ' ') FROM attachments WHERE note_seq = new.note_seq), '')
        FROM notes WHERE seq = new.note_seq;
END;

CREATE TRIGGER attachments_after_delete AFTER DELETE ON attachments
WHEN old.search_text != '' BEGIN
    DELETE FROM notes_fts WHERE rowid = old.note_seq;
    INSERT INTO notes_fts (rowid, title, body, extra)
        SELECT seq, title, body,
               coalesce((SELECT group_concat(search_text, ' ') FROM attachments WHERE note_seq = old.note_seq), '')
        FROM notes WHERE seq = old.note_seq;
END;
