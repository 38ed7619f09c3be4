//! The trash: deleted notes, listed, restored, or deleted for good (their
//! attachments' objects with them).

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{PageRequest, ServiceError, ServiceResult, cursor, notes::NoteService, searchable};
use crate::{
    domain::note::{Note, TrashedNote},
    store::Store,
};

/// Notes deleted for good per transaction when the trash is emptied or
/// purged: each batch holds its notes' storage keys in memory.
const PURGE_BATCH: u32 = 500;

#[derive(Debug, Serialize, ToSchema)]
pub struct TrashPage {
    pub items: Vec<TrashedNote>,
    pub next_cursor: Option<String>,
}

/// One page of the trash, most recently deleted first.
pub async fn page(store: &dyn Store, page: PageRequest<'_>) -> ServiceResult<TrashPage> {
    let (limit, after) = page.resolve()?;
    let page = store.list_trash(after, limit).await?;
    Ok(TrashPage {
        items: page.items,
        next_cursor: page.next.map(cursor::encode),
    })
}

/// Brings a note back from the trash; returns once it is searchable again.
pub async fn restore(notes: &NoteService<'_>, id: Uuid) -> ServiceResult<Note> {
    let note = notes
        .store
        .restore_note(id)
        .await?
        .ok_or(not_in_trash(id))?;
    searchable(notes.index).await;
    tracing::info!(note_id = %id, "note restored from the trash");
    Ok(note)
}

/// Deletes a trashed note for good, then its attachments' objects.
pub async fn delete(notes: &NoteService<'_>, id: Uuid) -> ServiceResult<()> {
    let keys = notes
        .store
        .purge_trashed(id)
        .await?
        .ok_or(not_in_trash(id))?;
    notes.blobs.delete_all(&keys).await;
    Ok(())
}

/// Deletes for good every trashed note (trashed before `before`, if
/// given), in batches; returns how many went.
pub async fn purge(
    notes: &NoteService<'_>,
    before: Option<chrono::DateTime<chrono::Utc>>,
) -> ServiceResult<u64> {
    let mut total = 0;
    loop {
        let (n, keys) = notes.store.purge_trash(before, PURGE_BATCH).await?;
        notes.blobs.delete_all(&keys).await;
        total += n;
        if n < u64::from(PURGE_BATCH) {
            return Ok(total);
        }
    }
}

fn not_in_trash(id: Uuid) -> ServiceError {
    ServiceError::NotFound {
        what: "note in the trash",
        id,
    }
}
