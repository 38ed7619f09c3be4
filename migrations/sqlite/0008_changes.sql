-- The change feed as a product (issue #24): clients sync from it, the SSE
-- stream and webhooks follow it. Notes keep one position each, their last
-- change (`change_seq`), so a client starting from nothing reads every note
-- once; what cannot be read off a note's row goes to a log of events:
-- deletions (as before, the index drops the note) and attachments created or
-- deleted (the index re-reads the note, which no longer takes a new number
-- for them, so a client is not told the note changed when it did not).
ALTER TABLE note_tombstones RENAME TO feed_events;
ALTER TABLE feed_events ADD COLUMN kind TEXT NOT NULL DEFAULT 'note.deleted';
ALTER TABLE feed_events ADD COLUMN attachment_id TEXT;
-- When it happened: events older than NOTES_CHANGES_RETENTION_DAYS are
-- pruned by `purge`, and `search_feed.floor` remembers the last one pruned.
ALTER TABLE feed_events ADD COLUMN at TEXT NOT NULL DEFAULT '';
UPDATE feed_events SET at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now');

-- A note's entry says "created" to a client that last read before the note
-- was created, and "restored" to one that last read before it came back
-- from the trash.
ALTER TABLE notes ADD COLUMN created_seq INTEGER NOT NULL DEFAULT 0;
UPDATE notes SET created_seq = change_seq;
ALTER TABLE notes ADD COLUMN restored_seq INTEGER;
ALTER TABLE notes ADD COLUMN restored_at TEXT;

-- `epoch` changes when the numbers start over (a restore from a backup), so
-- a client's cursor from before is refused rather than misread; `floor` is
-- the newest event pruned: a cursor below it has missed deletions.
ALTER TABLE search_feed ADD COLUMN epoch TEXT NOT NULL DEFAULT '';
UPDATE search_feed SET epoch = lower(hex(randomblob(8)));
ALTER TABLE search_feed ADD COLUMN floor INTEGER NOT NULL DEFAULT 0;
