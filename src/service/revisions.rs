//! A note's history: its revisions, what changed between two versions, and
//! going back to one. The database keeps the revisions (a trigger on every
//! version bump); this layer reads them and restores through the same
//! patch path as any other change, so a restore is itself a new version
//! with its own revision.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    PageRequest, ServiceError, ServiceResult, cursor,
    notes::{NoteService, RequiredVersion},
};
use crate::{
    domain::{
        note::{MAX_NOTE_VERSION, Note, NotePatch},
        revision::{Revision, RevisionDiff, RevisionSummary, diff},
    },
    store::Store,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionPage {
    pub items: Vec<RevisionSummary>,
    pub next_cursor: Option<String>,
}

/// A version as a client names it in a path or a query: 1 up to the
/// highest a note can reach.
pub fn parse_version(raw: &str, field: &str) -> ServiceResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| (1..=MAX_NOTE_VERSION).contains(v))
        .ok_or_else(|| {
            ServiceError::invalid(
                field,
                format!("must be a version number, 1 to {MAX_NOTE_VERSION}"),
            )
        })
}

/// One page of the note's revisions, newest first.
pub async fn page(
    store: &dyn Store,
    note_id: Uuid,
    page: PageRequest<'_>,
) -> ServiceResult<RevisionPage> {
    let (limit, before) = page.resolve()?;
    note(store, note_id).await?;
    let mut items = store.list_revisions(note_id, before, limit + 1).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|r| cursor::encode(r.version))
    } else {
        None
    };
    Ok(RevisionPage { items, next_cursor })
}

/// The note at `version`: a revision, or the note itself at its current one.
pub async fn get(store: &dyn Store, note_id: Uuid, version: i64) -> ServiceResult<Revision> {
    let current = note(store, note_id).await?;
    at(store, &current, version).await
}

/// What changed from `version` to `against` (default: the current version).
pub async fn compare(
    store: &dyn Store,
    note_id: Uuid,
    version: i64,
    against: Option<i64>,
) -> ServiceResult<RevisionDiff> {
    let current = note(store, note_id).await?;
    let old = at(store, &current, version).await?;
    let new = match against {
        Some(v) => at(store, &current, v).await?,
        None => Revision::current(&current, None),
    };
    Ok(diff(&old, &new))
}

/// Makes revision `version`'s content the note's next version (its
/// external id stays), through the patch path: `required` is an
/// `If-Match`, and a restore that changes nothing makes no version.
pub async fn restore(
    notes: &NoteService<'_>,
    note_id: Uuid,
    version: i64,
    required: Option<RequiredVersion<'_>>,
    actor: &str,
) -> ServiceResult<Note> {
    // The current version included: its content is the note's, so the
    // patch path makes no new version, and still checks the If-Match.
    let current = notes.get(note_id).await?;
    let revision = at(notes.store, &current, version).await?;
    let patch = NotePatch {
        title: Some(Some(revision.title)),
        body: Some(Some(revision.body)),
        tags: Some(Some(revision.tags)),
        external_id: None,
        metadata: Some(Some(Value::Object(revision.metadata))),
    };
    notes.patch(note_id, &patch, required, actor).await
}

async fn note(store: &dyn Store, id: Uuid) -> ServiceResult<Note> {
    store
        .get_note(id)
        .await?
        .ok_or(ServiceError::NotFound { what: "note", id })
}

async fn at(store: &dyn Store, current: &Note, version: i64) -> ServiceResult<Revision> {
    store
        .get_revision(current.id, version)
        .await?
        .ok_or(ServiceError::NoRevision {
            note: current.id,
            version,
        })
}
