//! The store's rows as both SQL backends read and write them: one row type
//! per table, and the two value types whose column type differs. SQLite
//! keeps ids and times as text (an RFC 3339 string of fixed width, which
//! sorts as the time does); PostgreSQL as `uuid` and `timestamptz`. Tags,
//! metadata and scopes are JSON on both (`TEXT` there, `JSONB` here), which
//! sqlx's `Json` already encodes either way.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::{
    Decode, Encode, FromRow, Postgres, Sqlite, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgRow, PgTypeInfo, PgValueRef},
    sqlite::{SqliteArgumentsBuffer, SqliteRow, SqliteTypeInfo, SqliteValueRef},
    types::Json,
};
use uuid::Uuid;

use super::{Change, IndexDoc};
use crate::domain::{
    attachment::{Attachment, StoredAttachment},
    change::{ChangeEntry, ChangeKind},
    keys::{ApiKey, Scope},
    note::{Note, TrashedNote},
    revision::{Revision, RevisionSummary},
    timestamp,
    webhook::{StoredWebhook, Webhook},
};

/// A value both backends can bind.
pub trait Bind:
    for<'q> Encode<'q, Sqlite> + Type<Sqlite> + for<'q> Encode<'q, Postgres> + Type<Postgres> + Send
{
}
impl<T> Bind for T where
    T: for<'q> Encode<'q, Sqlite>
        + Type<Sqlite>
        + for<'q> Encode<'q, Postgres>
        + Type<Postgres>
        + Send
{
}

/// A row type both backends can read.
pub trait Rows: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}
impl<T> Rows for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A note's or attachment's id: hyphenated text on SQLite, `uuid` on
/// PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub Uuid);

impl Type<Sqlite> for Id {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Id {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.0.hyphenated().to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Id {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(Self(Uuid::parse_str(text)?))
    }
}

impl Type<Postgres> for Id {
    fn type_info() -> PgTypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Id {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Id {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <Uuid as Decode<Postgres>>::decode(value).map(Self)
    }
}

/// A point in time: [`timestamp::format`]'s text on SQLite, `timestamptz`
/// on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub DateTime<Utc>);

impl Type<Sqlite> for Time {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Time {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(timestamp::format(&self.0), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Time {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(Self(timestamp::parse(text)?))
    }
}

impl Type<Postgres> for Time {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Time {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Time {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<Postgres>>::decode(value).map(Self)
    }
}

/// What a note read returns, in [`NoteRow`]'s order.
pub const NOTE_COLUMNS: &str =
    "seq, id, title, body, tags, external_id, metadata, created_at, updated_at, version";

/// [`NOTE_COLUMNS`] of the table named `alias` in a join.
pub fn note_columns_of(alias: &str) -> String {
    NOTE_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(FromRow)]
pub struct NoteRow {
    seq: i64,
    id: Id,
    title: String,
    body: String,
    tags: Json<Vec<String>>,
    external_id: Option<String>,
    metadata: Json<Map<String, Value>>,
    created_at: Time,
    updated_at: Time,
    version: i64,
}

impl NoteRow {
    /// The note and its position (what a listing's cursor names).
    pub fn into_positioned(self) -> (i64, Note) {
        (
            self.seq,
            Note {
                id: self.id.0,
                title: self.title,
                body: self.body,
                tags: self.tags.0,
                external_id: self.external_id,
                metadata: self.metadata.0,
                created_at: self.created_at.0,
                updated_at: self.updated_at.0,
                version: self.version,
            },
        )
    }

    pub fn into_note(self) -> Note {
        self.into_positioned().1
    }
}

/// What a revision read returns, in [`RevisionRow`]'s order.
pub const REVISION_COLUMNS: &str = "version, title, body, tags, metadata, updated_at, changed_by";

#[derive(FromRow)]
pub struct RevisionRow {
    version: i64,
    title: String,
    body: String,
    tags: Json<Vec<String>>,
    metadata: Json<Map<String, Value>>,
    updated_at: Time,
    changed_by: Option<String>,
}

impl From<RevisionRow> for Revision {
    fn from(r: RevisionRow) -> Self {
        Self {
            version: r.version,
            title: r.title,
            body: r.body,
            tags: r.tags.0,
            metadata: r.metadata.0,
            updated_at: r.updated_at.0,
            changed_by: r.changed_by,
        }
    }
}

/// A revision in a listing: [`REVISION_COLUMNS`] with the body's length
/// in bytes (`body_bytes`) in place of the body.
#[derive(FromRow)]
pub struct RevisionSummaryRow {
    version: i64,
    title: String,
    body_bytes: i64,
    tags: Json<Vec<String>>,
    metadata: Json<Map<String, Value>>,
    updated_at: Time,
    changed_by: Option<String>,
}

impl From<RevisionSummaryRow> for RevisionSummary {
    fn from(r: RevisionSummaryRow) -> Self {
        Self {
            version: r.version,
            title: r.title,
            body_bytes: u64::try_from(r.body_bytes).unwrap_or(0),
            tags: r.tags.0,
            metadata: r.metadata.0,
            updated_at: r.updated_at.0,
            changed_by: r.changed_by,
        }
    }
}

/// What an attachment read returns, in [`AttachmentRow`]'s order.
pub const ATTACHMENT_COLUMNS: &str =
    "id, note_id, filename, content_type, size, sha256, storage_key, created_at";

#[derive(FromRow)]
pub struct AttachmentRow {
    id: Id,
    note_id: Id,
    filename: String,
    content_type: String,
    size: i64,
    sha256: String,
    storage_key: String,
    created_at: Time,
}

impl AttachmentRow {
    pub fn into_stored(self) -> StoredAttachment {
        StoredAttachment {
            attachment: Attachment {
                id: self.id.0,
                note_id: self.note_id.0,
                filename: self.filename,
                content_type: self.content_type,
                size: self.size as u64,
                sha256: self.sha256,
                created_at: self.created_at.0,
            },
            storage_key: self.storage_key,
            // Not needed after the write; kept in the database for the index.
            search_text: String::new(),
        }
    }
}

/// A note an ingest names: trashed or not.
#[derive(FromRow)]
pub struct ExistingRow {
    #[sqlx(flatten)]
    pub note: NoteRow,
    pub trashed: bool,
}

/// What a trash read returns: [`NOTE_COLUMNS`], then `change_seq` (its
/// place in the trash), `deleted_at`, `deleted_by`.
pub const TRASHED_COLUMNS: &str = "change_seq, deleted_at, deleted_by";

#[derive(FromRow)]
pub struct TrashedRow {
    #[sqlx(flatten)]
    pub note: NoteRow,
    pub change_seq: i64,
    pub deleted_at: Time,
    pub deleted_by: Option<String>,
}

impl TrashedRow {
    pub fn into_positioned(self) -> (i64, TrashedNote) {
        (
            self.change_seq,
            TrashedNote {
                note: self.note.into_note(),
                deleted_at: self.deleted_at.0,
                deleted_by: self.deleted_by,
            },
        )
    }
}

/// An attachment as a backup holds it: with its extracted text.
#[derive(FromRow)]
pub struct ExportAttachmentRow {
    #[sqlx(flatten)]
    pub row: AttachmentRow,
    pub search_text: String,
}

pub const KEY_COLUMNS: &str = "id, name, scopes, prefix, created_at";

#[derive(FromRow)]
pub struct KeyRow {
    id: Id,
    name: String,
    scopes: Json<Vec<Scope>>,
    prefix: String,
    created_at: Time,
}

impl KeyRow {
    pub fn into_key(self) -> ApiKey {
        ApiKey {
            id: self.id.0,
            name: self.name,
            scopes: self.scopes.0,
            prefix: self.prefix,
            created_at: self.created_at.0,
        }
    }
}

/// A key as a backup holds it: with the hash of its secret.
#[derive(FromRow)]
pub struct ExportKeyRow {
    #[sqlx(flatten)]
    pub row: KeyRow,
    pub key_hash: String,
}

/// A note as the search index takes it, with its change number: what a
/// backend's `FEED_NOTES` statement returns, in this order.
#[derive(FromRow)]
pub struct FeedRow {
    change_seq: i64,
    id: Id,
    title: String,
    body: String,
    tags: Json<Vec<String>>,
    extra: String,
    created_at: Time,
    updated_at: Time,
    attachments: i64,
}

impl FeedRow {
    pub fn into_change(self) -> (i64, Change) {
        let doc = IndexDoc {
            id: self.id.0,
            title: self.title,
            body: self.body,
            tags: self.tags.0,
            extra: self.extra,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
            attachments: u32::try_from(self.attachments).unwrap_or(u32::MAX),
        };
        (self.change_seq, Change::Upsert(doc))
    }
}

/// A live note as the change feed lists it: where it stands, not its text.
#[derive(FromRow)]
pub struct ChangedNoteRow {
    change_seq: i64,
    id: Id,
    version: i64,
    updated_at: Time,
    created_seq: i64,
    restored_seq: Option<i64>,
    restored_at: Option<Time>,
}

impl ChangedNoteRow {
    /// Its entry to a reader who has seen every change up to `after`.
    pub fn into_entry(self, after: i64) -> (i64, ChangeEntry) {
        let at = match self.restored_at {
            Some(r) if r.0 > self.updated_at.0 => r.0,
            _ => self.updated_at.0,
        };
        let entry = ChangeEntry {
            seq: self.change_seq,
            kind: ChangeKind::of_note(after, self.created_seq, self.restored_seq),
            note_id: self.id.0,
            attachment_id: None,
            version: Some(self.version),
            at,
            note: None,
        };
        (self.change_seq, entry)
    }
}

/// An event of the feed's log: a deletion, an attachment's.
#[derive(FromRow)]
pub struct EventRow {
    change_seq: i64,
    kind: String,
    note_id: Id,
    attachment_id: Option<Id>,
    at: Time,
}

impl EventRow {
    /// `None` for a kind clients are not shown.
    pub fn into_entry(self) -> Option<(i64, ChangeEntry)> {
        let entry = ChangeEntry {
            seq: self.change_seq,
            kind: ChangeKind::parse(&self.kind)?,
            note_id: self.note_id.0,
            attachment_id: self.attachment_id.map(|a| a.0),
            version: None,
            at: self.at.0,
            note: None,
        };
        Some((self.change_seq, entry))
    }
}

pub const WEBHOOK_COLUMNS: &str = "id, url, events, description, secret, enabled, disabled_reason, \
     from_seq, failing_since, created_at, updated_at";

#[derive(FromRow)]
pub struct WebhookRow {
    id: Id,
    url: String,
    events: Json<Vec<String>>,
    description: Option<String>,
    secret: String,
    enabled: bool,
    disabled_reason: Option<String>,
    from_seq: i64,
    failing_since: Option<Time>,
    created_at: Time,
    updated_at: Time,
}

impl WebhookRow {
    pub fn into_stored(self) -> StoredWebhook {
        StoredWebhook {
            webhook: Webhook {
                id: self.id.0,
                url: self.url,
                events: self.events.0,
                description: self.description,
                enabled: self.enabled,
                disabled_reason: self.disabled_reason,
                failing_since: self.failing_since.map(|t| t.0),
                created_at: self.created_at.0,
                updated_at: self.updated_at.0,
            },
            secret: self.secret,
            from_seq: self.from_seq,
        }
    }
}
