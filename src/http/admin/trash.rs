//! The trash in the admin UI: delete a note (to the trash), list what is
//! there, restore a note or delete it for good (`service::trash`).

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect},
};
use serde::Deserialize;

use super::{
    auth::AdminUser,
    pages::{Page, accept_write, chrome, query},
    views::{TrashList, render},
};
use crate::{
    http::state::AppState,
    service::{PageRequest, trash},
};

const TRASHED_PER_PAGE: u32 = 50;

#[derive(Default, Deserialize)]
pub struct TrashQuery {
    cursor: Option<String>,
    deleted: Option<String>,
    purged: Option<String>,
}

pub async fn list(State(state): State<AppState>, user: AdminUser, RawQuery(q): RawQuery) -> Page {
    let q: TrashQuery = query(q)?;
    let page = trash::page(
        state.store().as_ref(),
        PageRequest {
            limit: Some(TRASHED_PER_PAGE),
            cursor: q.cursor.as_deref(),
        },
    )
    .await?;
    let notice = if q.deleted.is_some() {
        Some("The note is in the trash. Restore it from here.")
    } else if q.purged.is_some() {
        Some("The note is deleted for good.")
    } else {
        None
    };
    Ok(render(&TrashList {
        c: chrome(&state, &user, "trash"),
        notes: page.items,
        next: page.next_cursor,
        notice,
    }))
}

/// The note page's delete button: to the trash, never for good.
pub async fn delete_note(
    State(state): State<AppState>,
    user: AdminUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let id = accept_write(&state, &user, &headers, &body, &id, "note")?;
    state.notes().trash(id, &user.principal.actor()).await?;
    tracing::info!(note_id = %id, "admin UI: note moved to the trash");
    Ok(Redirect::to("/admin/trash?deleted=1").into_response())
}

pub async fn restore(
    State(state): State<AppState>,
    user: AdminUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let id = accept_write(&state, &user, &headers, &body, &id, "note")?;
    trash::restore(&state.notes(), id).await?;
    Ok(Redirect::to(&format!("/admin/notes/{id}?restored_from_trash=1")).into_response())
}

pub async fn purge(
    State(state): State<AppState>,
    user: AdminUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let id = accept_write(&state, &user, &headers, &body, &id, "note")?;
    trash::delete(&state.notes(), id).await?;
    tracing::info!(note_id = %id, "admin UI: note deleted for good");
    Ok(Redirect::to("/admin/trash?purged=1").into_response())
}
