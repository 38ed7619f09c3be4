-- Search moves out of the database into a tantivy index beside it (see
-- docs/decisions.md). The database keeps only a change feed the index
-- follows: every note write takes fresh numbers from `search_feed.head` in
-- its own transaction and stamps them on the note (`change_seq`) or on a
-- tombstone, so "everything up to head" is a stable, ordered delta.
DROP TRIGGER notes_after_insert;
DROP TRIGGER notes_after_update_text;
DROP TRIGGER notes_after_delete;
DROP TRIGGER attachments_after_insert;
DROP TRIGGER attachments_after_delete;
DROP TRIGGER attachments_after_update_text;
DROP TABLE notes_fts;

-- Tags still come from the notes row, whatever code path wrote it.
CREATE TRIGGER notes_after_insert AFTER INSERT ON notes BEGIN
    INSERT OR IGNORE INTO note_tags (tag, note_seq) SELECT value, new.seq FROM json_each(new.tags);
END;

-- One row. `generation` changes when every index must be rebuilt (a
-- `reindex` job, a restore); `head` is the last number handed out.
CREATE TABLE search_feed (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation TEXT    NOT NULL,
    head       INTEGER NOT NULL
);

ALTER TABLE notes ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE notes SET change_seq = seq;
CREATE INDEX notes_by_change ON notes (change_seq);
INSERT INTO search_feed (id, generation, head)
    VALUES (1, lower(hex(randomblob(16))), coalesce((SELECT max(seq) FROM notes), 0));

-- A deleted note leaves its number here, so an index that still holds the
-- note learns to drop it.
CREATE TABLE note_tombstones (
    change_seq INTEGER PRIMARY KEY,
    note_id    TEXT    NOT NULL
);
