-- Webhooks (issue #24): targets that receive the change feed's events,
-- signed (Standard Webhooks), at least once, through the job queue.
CREATE TABLE webhooks (
    id              TEXT        NOT NULL PRIMARY KEY,
    url             TEXT        NOT NULL,
    events          TEXT        NOT NULL,   -- event names, or ["*"]
    description     TEXT,
    -- The signing secret, sealed under NOTES_SECRET_KEY: a dump of the
    -- database alone does not hand it out.
    secret          TEXT        NOT NULL,
    enabled         INTEGER     NOT NULL,
    disabled_reason TEXT,
    -- Changes numbered after this are for it: a webhook hears of what
    -- happened after it was created (or enabled again), not before.
    from_seq        INTEGER     NOT NULL,
    -- The first failed attempt since the last success: past
    -- NOTES_WEBHOOK_DISABLE_AFTER the webhook is disabled.
    failing_since   TEXT,
    created_at      TEXT        NOT NULL,
    updated_at      TEXT        NOT NULL
);

-- One message to one webhook, sent until it succeeds or its retries run
-- out; its id and body stay the same on every attempt.
CREATE TABLE webhook_deliveries (
    id           TEXT        NOT NULL PRIMARY KEY,
    webhook_id   TEXT        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    message_id   TEXT        NOT NULL,
    event        TEXT        NOT NULL,
    body         TEXT        NOT NULL,
    status       TEXT        NOT NULL,   -- pending, succeeded, failed
    attempts     INTEGER     NOT NULL,
    next_at      TEXT,            -- when a pending one is due
    enqueued_at  TEXT,            -- when its job was last queued (or due)
    locked_until TEXT,            -- an attempt is being sent until then
    created_at   TEXT        NOT NULL,
    finished_at  TEXT
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id DESC);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE status <> 'pending';

CREATE TABLE webhook_attempts (
    delivery_id  TEXT        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    n            INTEGER     NOT NULL,
    at           TEXT        NOT NULL,
    succeeded    INTEGER     NOT NULL,
    status_code  INTEGER,
    duration_ms  INTEGER     NOT NULL,
    error        TEXT,
    PRIMARY KEY (delivery_id, n)
);

-- How far the dispatcher has turned the feed into deliveries: one row, so
-- that replicas racing for the same changes commit them once.
CREATE TABLE webhook_dispatch (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    epoch TEXT    NOT NULL,
    seq   INTEGER NOT NULL
);
INSERT INTO webhook_dispatch (id, epoch, seq) SELECT 1, epoch, head FROM search_feed WHERE id = 1;
