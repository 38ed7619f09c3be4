-- Webhooks (issue #24): targets that receive the change feed's events,
-- signed (Standard Webhooks), at least once, through the job queue.
CREATE TABLE webhooks (
    id              UUID        NOT NULL PRIMARY KEY,
    url             TEXT        NOT NULL,
    events          JSONB       NOT NULL,   -- event names, or ["*"]
    description     TEXT,
    -- The signing secret, sealed under NOTES_SECRET_KEY: a dump of the
    -- database alone does not hand it out.
    secret          TEXT        NOT NULL,
    enabled         BOOLEAN     NOT NULL,
    disabled_reason TEXT,
    -- Changes numbered after this are for it: a webhook hears of what
    -- happened after it was created (or enabled again), not before.
    from_seq        BIGINT      NOT NULL,
    -- The first failed attempt since the last success: past
    -- NOTES_WEBHOOK_DISABLE_AFTER the webhook is disabled.
    failing_since   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- One message to one webhook, sent until it succeeds or its retries run
-- out; its id and body stay the same on every attempt.
CREATE TABLE webhook_deliveries (
    id           UUID        NOT NULL PRIMARY KEY,
    webhook_id   UUID        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    message_id   TEXT        NOT NULL,
    event        TEXT        NOT NULL,
    body         TEXT        NOT NULL,
    status       TEXT        NOT NULL,   -- pending, succeeded, failed
    attempts     INTEGER     NOT NULL,
    next_at      TIMESTAMPTZ,            -- when a pending one is due
    enqueued_at  TIMESTAMPTZ,            -- when its job was last queued (or due)
    locked_until TIMESTAMPTZ,            -- an attempt is being sent until then
    created_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id DESC);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE status <> 'pending';

CREATE TABLE webhook_attempts (
    delivery_id  UUID        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    n            INTEGER     NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    succeeded    BOOLEAN     NOT NULL,
    status_code  INTEGER,
    duration_ms  BIGINT      NOT NULL,
    error        TEXT,
    PRIMARY KEY (delivery_id, n)
);

-- How far the dispatcher has turned the feed into deliveries: one row, so
-- that replicas racing for the same changes commit them once.
CREATE TABLE webhook_dispatch (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    epoch TEXT    NOT NULL,
    seq   BIGINT  NOT NULL
);
INSERT INTO webhook_dispatch (id, epoch, seq) SELECT 1, epoch, head FROM search_feed WHERE id = 1;
