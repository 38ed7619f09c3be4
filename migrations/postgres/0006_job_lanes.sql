-- Lanes (issue 21): the service's own jobs (text extraction, backups,
-- purges, reindexing) wait in the `internal` lane, what API clients submit
-- in the `user` lane, and each lane is claimed in due order on its own, so a
-- backlog of user jobs never delays the service's work: one ordered scan of
-- `jobs_lane_due` per lane. `jobs_due` stays while binaries from before the
-- lanes may still run against this schema (a rollback; the SQLite claim
-- names that index), so this migration is additive; a later one can drop it.
ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT 'user' CHECK (lane IN ('internal', 'user'));
UPDATE jobs SET lane = 'internal' WHERE kind IN ('reindex', 'extract_text', 'backup', 'purge');
CREATE INDEX jobs_lane_due ON jobs (lane, due_at) WHERE status IN ('queued', 'failed', 'running');

-- The API key a job was submitted with, for the per-key cap on jobs waiting
-- or running (NOTES_MAX_QUEUED_JOBS_PER_KEY); NULL for the service's own.
ALTER TABLE jobs ADD COLUMN owner UUID;
CREATE INDEX jobs_owner_active ON jobs (owner)
    WHERE owner IS NOT NULL AND status IN ('queued', 'failed', 'running');
