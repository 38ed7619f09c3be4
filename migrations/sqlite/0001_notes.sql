-- Notes, their tags, the full-text index and API keys.
--
-- `seq` is the row's position: assigned in commit order (SQLite has one
-- writer), so paginating on it is stable under concurrent inserts. The public
-- `id` is a UUIDv7.
CREATE TABLE notes (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    title       TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    tags        TEXT    NOT NULL DEFAULT '[]',   -- JSON array, normalized
    external_id TEXT    UNIQUE,
    metadata    TEXT    NOT NULL DEFAULT '{}',   -- JSON object
    created_at  TEXT    NOT NULL,                -- RFC 3339, fixed width
    updated_at  TEXT    NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE note_tags (
    tag      TEXT    NOT NULL,
    note_seq INTEGER NOT NULL REFERENCES notes (seq) ON DELETE CASCADE,
    PRIMARY KEY (tag, note_seq)
) WITHOUT ROWID;
CREATE INDEX note_tags_by_note ON note_tags (note_seq);

-- Contentless: the text already lives in `notes`; the index keeps only what
-- ranking needs. `extra` will hold text extracted from attachments.
-- prefix='2 3' makes short prefix queries (`ra*`) index look-ups.
CREATE VIRTUAL TABLE notes_fts USING fts5 (
    title, body, extra,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);

-- Triggers keep tags and the index in the same transaction as the write,
-- whatever code path wrote it.
CREATE TRIGGER notes_after_insert AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts (rowid, title, body, extra) VALUES (new.seq, new.title, new.body, '');
    INSERT OR IGNORE INTO note_tags (tag, note_seq) SELECT value, new.seq FROM json_each(new.tags);
END;

CREATE TRIGGER notes_after_update_text AFTER UPDATE OF title, body ON notes
WHEN old.title IS NOT new.title OR old.body IS NOT new.body BEGIN
    DELETE FROM notes_fts WHERE rowid = old.seq;
    INSERT INTO notes_fts (rowid, title, body, extra) VALUES (new.seq, new.title, new.body, '');
END;

CREATE TRIGGER notes_after_update_tags AFTER UPDATE OF tags ON notes
WHEN old.tags IS NOT new.tags BEGIN
    DELETE FROM note_tags WHERE note_seq = old.seq;
    INSERT OR IGNORE INTO note_tags (tag, note_seq) SELECT value, new.seq FROM json_each(new.tags);
END;

CREATE TRIGGER notes_after_delete AFTER DELETE ON notes BEGIN
    DELETE FROM notes_fts WHERE rowid = old.seq;
END;

CREATE TABLE api_keys (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    scopes     TEXT NOT NULL,            -- JSON array of scope names
    prefix     TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,     -- SHA-256 of the secret, hex
    created_at TEXT NOT NULL
);
