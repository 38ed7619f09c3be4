-- Notes, the full-text index and API keys.
--
-- The search vector is computed from text the service has already tokenized
-- (folded case and diacritics, the same tokens SQLite FTS5 sees), so both
-- backends match the same words. Title weighs A, body B, attachment text C.
CREATE TABLE notes (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          UUID        NOT NULL UNIQUE,
    title       TEXT        NOT NULL,
    body        TEXT        NOT NULL,
    tags        JSONB       NOT NULL DEFAULT '[]',
    external_id TEXT        UNIQUE,
    metadata    JSONB       NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    version     BIGINT      NOT NULL DEFAULT 1,
    search      TSVECTOR    NOT NULL
);

CREATE INDEX notes_search ON notes USING GIN (search);
CREATE INDEX notes_tags ON notes USING GIN (tags jsonb_path_ops);

CREATE TABLE api_keys (
    id         UUID        NOT NULL PRIMARY KEY,
    name       TEXT        NOT NULL,
    scopes     JSONB       NOT NULL,
    prefix     TEXT        NOT NULL,
    key_hash   TEXT        NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);
