//! /api/v1/trash: deleted notes (`service::trash`).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    extract::{Admin, ApiQuery, Auth, Read, Write, parse_id},
    state::AppState,
};
use crate::{
    domain::note::Note,
    http::error::{ApiResult, Problem},
    service::{
        PageRequest,
        trash::{self, TrashPage},
    },
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrashListParams {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Deleted notes, most recently deleted first, with `deleted_at` and `deleted_by`.
#[utoipa::path(get, path = "/api/v1/trash", operation_id = "list_trash", tag = "trash", params(TrashListParams),
    responses((status = 200, body = TrashPage), (status = 422, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(state): State<AppState>,
    _: Auth<Read>,
    ApiQuery(params): ApiQuery<TrashListParams>,
) -> ApiResult<Json<TrashPage>> {
    let page = PageRequest {
        limit: params.limit,
        cursor: params.cursor.as_deref(),
    };
    Ok(Json(trash::page(state.store().as_ref(), page).await?))
}

/// Bring a note back from the trash: same id, version, tags, attachments and history.
#[utoipa::path(post, path = "/api/v1/trash/{id}/restore", operation_id = "restore_from_trash", tag = "trash",
    params(("id" = String, Path, description = "Note id")),
    responses((status = 200, body = Note, description = "The note, searchable again"), (status = 404, body = Problem)),
    security(("bearer" = ["write"])))]
pub async fn restore(
    State(state): State<AppState>,
    _: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult<Json<Note>> {
    let id = parse_id(&id, "note")?;
    Ok(Json(trash::restore(&state.notes(), id).await?))
}

/// Delete a trashed note for good: its row, history, attachments and their bytes.
#[utoipa::path(delete, path = "/api/v1/trash/{id}", operation_id = "delete_from_trash", tag = "trash",
    params(("id" = String, Path, description = "Note id")),
    responses((status = 204, description = "Deleted for good"), (status = 404, body = Problem)),
    security(("bearer" = ["write"])))]
pub async fn delete(
    State(state): State<AppState>,
    _: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "note")?;
    trash::delete(&state.notes(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Empty the trash: every trashed note deleted for good.
#[utoipa::path(delete, path = "/api/v1/trash", operation_id = "empty_trash", tag = "trash",
    responses((status = 204, description = "The trash is empty")),
    security(("bearer" = ["admin"])))]
pub async fn empty(State(state): State<AppState>, _: Auth<Admin>) -> ApiResult<StatusCode> {
    let n = trash::purge(&state.notes(), None).await?;
    tracing::info!(notes = n, "trash emptied");
    Ok(StatusCode::NO_CONTENT)
}
