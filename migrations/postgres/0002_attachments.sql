-- Attachments: metadata here, bytes in object storage under a key the server
-- generates (attachments/<note id>/<attachment id>).
CREATE TABLE attachments (
    id           UUID        NOT NULL PRIMARY KEY,
    note_id      UUID        NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    filename     TEXT        NOT NULL,
    content_type TEXT        NOT NULL,
    size         BIGINT      NOT NULL,
    sha256       TEXT        NOT NULL,
    storage_key  TEXT        NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    -- Extracted, tokenized text of text-like attachments: weight C of the
    -- note's search vector.
    search_text  TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX attachments_by_note ON attachments (note_id);
