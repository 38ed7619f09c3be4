//! A note's history in the admin UI: its revisions, one revision beside
//! what changed since, and a form that restores it (`service::revisions`).

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect},
};
use serde::Deserialize;

use super::{
    auth::AdminUser,
    pages::{Page, accept_write, chrome, field, parse_id, query},
    views::{History, RevisionDetail, render},
};
use crate::{
    http::state::AppState,
    service::{
        PageRequest,
        revisions::{self, parse_version},
    },
};

/// Revisions a history page lists; older ones are on the next page.
const REVISIONS_PER_PAGE: u32 = 50;

#[derive(Default, Deserialize)]
pub struct HistoryQuery {
    cursor: Option<String>,
}

pub async fn history(
    State(state): State<AppState>,
    user: AdminUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Page {
    let q: HistoryQuery = query(q)?;
    let id = parse_id(&id, "note")?;
    let note = state.notes().get(id).await?;
    let page = revisions::page(
        state.store().as_ref(),
        id,
        PageRequest {
            limit: Some(REVISIONS_PER_PAGE),
            cursor: q.cursor.as_deref(),
        },
    )
    .await?;
    Ok(render(&History {
        c: chrome(&state, &user, "notes"),
        note,
        revisions: page.items,
        next: page.next_cursor,
    }))
}

pub async fn revision(
    State(state): State<AppState>,
    user: AdminUser,
    Path((id, version)): Path<(String, String)>,
) -> Page {
    let id = parse_id(&id, "note")?;
    let version = parse_version(&version, "version")?;
    let note = state.notes().get(id).await?;
    let store = state.store().as_ref();
    let revision = revisions::get(store, id, version).await?;
    let diff = revisions::compare(store, id, version, None).await?;
    Ok(render(&RevisionDetail {
        c: chrome(&state, &user, "notes"),
        metadata: serde_json::to_string_pretty(&revision.metadata).unwrap_or_default(),
        note,
        revision,
        diff,
    }))
}

/// Restores a revision; the form carries the version the page showed as
/// current, so a change made since is a conflict, never overwritten.
pub async fn restore(
    State(state): State<AppState>,
    user: AdminUser,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let id = accept_write(&state, &user, &headers, &body, &id, "note")?;
    let version = parse_version(&version, "version")?;
    let shown = field(&body, "current").parse::<i64>().ok();
    let opened_on = move |current: i64| Some(current) == shown;
    let note = revisions::restore(
        &state.notes(),
        id,
        version,
        Some(&opened_on),
        &user.principal.actor(),
    )
    .await?;
    tracing::info!(note_id = %id, from = version, version = note.version, "admin UI: revision restored");
    Ok(Redirect::to(&format!("/admin/notes/{id}?restored={version}")).into_response())
}
