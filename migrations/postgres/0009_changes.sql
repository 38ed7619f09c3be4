-- The change feed as a product (issue #24): clients sync from it, the SSE
-- stream and webhooks follow it. Notes keep one position each, their last
-- change (`change_seq`), so a client starting from nothing reads every note
-- once; what cannot be read off a note's row goes to a log of events:
-- deletions (as before, the index drops the note) and attachments created or
-- deleted (the index re-reads the note, which no longer takes a new number
-- for them, so a client is not told the note changed when it did not).
ALTER TABLE note_tombstones RENAME TO feed_events;
ALTER TABLE feed_events ADD COLUMN kind TEXT NOT NULL DEFAULT 'note.deleted';
ALTER TABLE feed_events ADD COLUMN attachment_id UUID;
-- When it happened: events older than NOTES_CHANGES_RETENTION_DAYS are
-- pruned by `purge`, and `search_feed.floor` remembers the last one pruned.
ALTER TABLE feed_events ADD COLUMN at TIMESTAMPTZ NOT NULL DEFAULT now();
ALTER TABLE feed_events ALTER COLUMN at DROP DEFAULT;

-- A note's entry says "created" to a client that last read before the note
-- was created, and "restored" to one that last read before it came back
-- from the trash.
ALTER TABLE notes ADD COLUMN created_seq BIGINT NOT NULL DEFAULT 0;
UPDATE notes SET created_seq = change_seq;
ALTER TABLE notes ADD COLUMN restored_seq BIGINT;
ALTER TABLE notes ADD COLUMN restored_at TIMESTAMPTZ;

-- `epoch` changes when the numbers start over (a restore from a backup), so
-- a client's cursor from before is refused rather than misread; `floor` is
-- the newest event pruned: a cursor below it has missed deletions.
ALTER TABLE search_feed ADD COLUMN epoch TEXT NOT NULL DEFAULT '';
UPDATE search_feed SET epoch = substr(md5(random()::text || clock_timestamp()::text), 1, 16);
ALTER TABLE search_feed ADD COLUMN floor BIGINT NOT NULL DEFAULT 0;
