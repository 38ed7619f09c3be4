-- Search moves out of the database into a tantivy index beside it (see
-- docs/decisions.md). The database keeps only a change feed the index
-- follows: every note write takes fresh numbers from `search_feed.head` in
-- its own transaction and stamps them on the note (`change_seq`) or on a
-- tombstone. The row lock on `search_feed` is held to commit, so numbers
-- become visible in order: a reader that sees head H sees every change <= H.
DROP INDEX notes_search;
ALTER TABLE notes DROP COLUMN search;

-- One row. `generation` changes when every index must be rebuilt (a
-- `reindex` job, a restore); `head` is the last number handed out.
CREATE TABLE search_feed (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation TEXT    NOT NULL,
    head       BIGINT  NOT NULL
);

ALTER TABLE notes ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
UPDATE notes SET change_seq = seq;
CREATE INDEX notes_by_change ON notes (change_seq);
INSERT INTO search_feed (id, generation, head)
    VALUES (1, md5(random()::text || clock_timestamp()::text), coalesce((SELECT max(seq) FROM notes), 0));

-- A deleted note leaves its number here, so an index that still holds the
-- note learns to drop it.
CREATE TABLE note_tombstones (
    change_seq BIGINT PRIMARY KEY,
    note_id    UUID   NOT NULL
);

-- Other replicas learn of a change at once (LISTEN notes_search_feed) rather
-- than at their next poll. Note writes already commit one at a time behind
-- the feed's row lock, so the notification adds no new serialization.
CREATE FUNCTION notes_search_feed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('notes_search_feed', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER search_feed_notify AFTER UPDATE OF head ON search_feed
    FOR EACH ROW EXECUTE FUNCTION notes_search_feed_notify();
