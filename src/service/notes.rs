//! Notes as a request changes them: create, a page of a listing, a patch
//! that retries against concurrent writers, and a delete that takes the
//! attachments' objects with it.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{PageRequest, ServiceError, ServiceResult, cursor, searchable};
use crate::{
    blobs::Blobs,
    domain::note::{Note, NoteDraft, NotePatch, normalize_tag_filter},
    index::DynIndex,
    store::{ListQuery, Store, StoreError, list_notes_within},
};

/// A page ends early, with a cursor, once its notes' text passes this.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Optimistic retries of a patch that requires no version; each loss means
/// another writer made progress, so this only runs out under extreme
/// contention.
const MAX_PATCH_ATTEMPTS: usize = 64;

#[derive(Debug, Serialize, ToSchema)]
pub struct NotePage {
    pub items: Vec<Note>,
    pub next_cursor: Option<String>,
}

/// A version a patch requires (an `If-Match`): whether the note's current
/// version is one it accepts.
pub type RequiredVersion<'a> = &'a (dyn Fn(i64) -> bool + Sync);

/// The notes of a deployment, with what a write must reach: the index it
/// waits for (a write returns once it is searchable) and the objects of a
/// deleted note's attachments.
pub struct NoteService<'a> {
    pub store: &'a dyn Store,
    pub index: Option<&'a DynIndex>,
    pub blobs: &'a Blobs,
}

impl NoteService<'_> {
    /// Validates and stores a new note, made by `actor`; returns once it
    /// is searchable.
    pub async fn create(&self, draft: NoteDraft, actor: &str) -> ServiceResult<Note> {
        let input = draft.validate().map_err(ServiceError::Invalid)?;
        let note = self.store.create_note(input.by(actor)).await?;
        searchable(self.index).await;
        Ok(note)
    }

    pub async fn get(&self, id: Uuid) -> ServiceResult<Note> {
        self.store.get_note(id).await?.ok_or(not_found(id))
    }

    /// Applies `patch` to note `id`. With `required`, only to a version it
    /// accepts: otherwise a version mismatch naming the current one.
    /// Without, the client asked for "apply my change", so a concurrent
    /// writer means re-read and re-apply, not fail.
    pub async fn patch(
        &self,
        id: Uuid,
        patch: &NotePatch,
        required: Option<RequiredVersion<'_>>,
        actor: &str,
    ) -> ServiceResult<Note> {
        for _ in 0..MAX_PATCH_ATTEMPTS {
            let current = self.get(id).await?;
            if let Some(accepts) = required
                && !accepts(current.version)
            {
                return Err(StoreError::VersionMismatch {
                    current: current.version,
                }
                .into());
            }
            let input = patch.apply(&current).map_err(ServiceError::Invalid)?;
            if input.same_content(&current) {
                return Ok(current);
            }
            match self
                .store
                .update_note(id, input.by(actor), current.version)
                .await
            {
                Ok(note) => {
                    searchable(self.index).await;
                    return Ok(note);
                }
                Err(StoreError::VersionMismatch { .. }) if required.is_none() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Contended("note"))
    }

    /// Moves the note (and with it its attachments and history) to the
    /// trash; returns once it is out of search.
    pub async fn trash(&self, id: Uuid, actor: &str) -> ServiceResult<()> {
        if !self.store.trash_note(id, actor).await? {
            return Err(not_found(id));
        }
        searchable(self.index).await;
        Ok(())
    }

    /// Deletes the note for good, trash skipped, then its attachments'
    /// objects.
    pub async fn delete_permanently(&self, id: Uuid) -> ServiceResult<()> {
        let keys = self.store.delete_note(id).await?.ok_or(not_found(id))?;
        searchable(self.index).await;
        self.blobs.delete_all(&keys).await;
        Ok(())
    }
}

/// One page of the notes, newest first, only those with `tag` if given.
pub async fn page(
    store: &dyn Store,
    tag: Option<&str>,
    page: PageRequest<'_>,
) -> ServiceResult<NotePage> {
    let (limit, after) = page.resolve()?;
    let tag = tag
        .map(normalize_tag_filter)
        .transpose()
        .map_err(|e| ServiceError::Invalid(vec![e]))?;
    let query = ListQuery { tag, limit, after };
    let page = list_notes_within(store, &query, MAX_PAGE_BYTES).await?;
    Ok(NotePage {
        items: page.items,
        next_cursor: page.next.map(cursor::encode),
    })
}

fn not_found(id: Uuid) -> ServiceError {
    ServiceError::NotFound { what: "note", id }
}
