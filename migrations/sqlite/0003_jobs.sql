-- Background jobs. `due_at` (ms since the epoch) is when a queued or failed
-- job may run, and for a running job when its lease ends: one index answers
-- "what is due" for new, retried and abandoned jobs alike.
CREATE TABLE jobs (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    kind         TEXT    NOT NULL,
    args         TEXT    NOT NULL,          -- JSON object
    status       TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    result       TEXT,                      -- JSON
    error        TEXT,
    created_at   TEXT    NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    due_at       INTEGER NOT NULL,
    lease_token  TEXT
);
CREATE INDEX jobs_due ON jobs (due_at) WHERE status IN ('queued', 'failed', 'running');
CREATE INDEX jobs_by_status ON jobs (status, seq);
CREATE INDEX jobs_by_kind ON jobs (kind, seq);

-- One row per schedule tick that was enqueued: the primary key is what
-- makes a tick fire once across replicas.
CREATE TABLE job_ticks (
    name   TEXT    NOT NULL,
    tick   INTEGER NOT NULL,                -- ms since the epoch
    job_id TEXT    NOT NULL,
    PRIMARY KEY (name, tick)
) WITHOUT ROWID;

-- Attachment text now arrives later, from the extract_text job.
CREATE TRIGGER attachments_after_update_text AFTER UPDATE OF search_text ON attachments
WHEN old.search_text IS NOT new.search_text BEGIN
    DELETE FROM notes_fts WHERE rowid = new.note_seq;
    INSERT INTO notes_fts (rowid, title, body, extra)
        SELECT seq, title, body,
               coalesce((SELECT group_concat(search_text, ' ') FROM attachments WHERE note_seq = new.note_seq), '')
        FROM notes WHERE seq = new.note_seq;
END;
