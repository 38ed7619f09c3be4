-- The trash (issue #25). A deleted note stays in its row, marked with when
-- and by whom it was deleted, and leaves every read: get, lists, search
-- (the feed reports it deleted), attachments. Restoring it clears the mark;
-- `purge` deletes it for good after NOTES_TRASH_RETENTION_DAYS.
ALTER TABLE notes ADD COLUMN deleted_at TIMESTAMPTZ;
ALTER TABLE notes ADD COLUMN deleted_by TEXT;
-- The trash page lists by when a note was trashed (its change number).
CREATE INDEX notes_trashed ON notes (change_seq) WHERE deleted_at IS NOT NULL;
