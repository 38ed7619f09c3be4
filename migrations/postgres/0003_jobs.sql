-- Background jobs. `due_at` (ms since the epoch) is when a queued or failed
-- job may run, and for a running job when its lease ends: one index answers
-- "what is due" for new, retried and abandoned jobs alike.
CREATE TABLE jobs (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           UUID        NOT NULL UNIQUE,
    kind         TEXT        NOT NULL,
    args         JSONB       NOT NULL,
    status       TEXT        NOT NULL,
    attempts     INTEGER     NOT NULL DEFAULT 0,
    max_attempts INTEGER     NOT NULL,
    result       JSONB,
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    due_at       BIGINT      NOT NULL,
    lease_token  UUID
);
CREATE INDEX jobs_due ON jobs (due_at) WHERE status IN ('queued', 'failed', 'running');
CREATE INDEX jobs_by_status ON jobs (status, seq);
CREATE INDEX jobs_by_kind ON jobs (kind, seq);

-- One row per schedule tick that was enqueued: the primary key is what
-- makes a tick fire once across replicas.
CREATE TABLE job_ticks (
    name   TEXT   NOT NULL,
    tick   BIGINT NOT NULL,                 -- ms since the epoch
    job_id UUID   NOT NULL,
    PRIMARY KEY (name, tick)
);
