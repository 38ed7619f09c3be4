//! /api/v1/notes: thin handlers over the store; the rules live in `domain`.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    etag,
    extract::{ApiJson, ApiQuery, Auth, Read, Write, parse_id},
    response::not_modified,
    state::AppState,
};
use crate::{
    domain::{
        keys::Scope,
        note::{Note, NoteDraft, NotePatch},
    },
    http::error::{ApiError, ApiResult, Problem},
    service::{
        PageRequest,
        notes::{self, NotePage},
    },
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only notes with this tag.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub tag: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn etag(note: &Note) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", note.version)).expect("digits are a valid header")
}

fn with_etag(status: StatusCode, note: Note) -> Response {
    let tag = etag(&note);
    let mut res = (status, Json(note)).into_response();
    res.headers_mut().insert(header::ETAG, tag);
    res
}

/// Create a note.
#[utoipa::path(post, path = "/api/v1/notes", operation_id = "create_note", tag = "notes", request_body = NoteDraft,
    responses((status = 201, body = Note, description = "Created; `Location` and `ETag` headers set"),
              (status = 400, body = Problem), (status = 409, body = Problem, description = "external_id taken"),
              (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["write"])))]
pub async fn create(
    State(state): State<AppState>,
    who: Auth<Write>,
    ApiJson(draft): ApiJson<NoteDraft>,
) -> ApiResult<Response> {
    let note = state.notes().create(draft, &who.0.actor()).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/notes/{}", note.id)).expect("uuid path");
    let mut res = with_etag(StatusCode::CREATED, note);
    res.headers_mut().insert(header::LOCATION, location);
    Ok(res)
}

/// List notes, newest first, with cursor pagination.
#[utoipa::path(get, path = "/api/v1/notes", operation_id = "list_notes", tag = "notes", params(ListParams),
    responses((status = 200, body = NotePage), (status = 422, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(state): State<AppState>,
    _: Auth<Read>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<NotePage>> {
    let page = PageRequest {
        limit: params.limit,
        cursor: params.cursor.as_deref(),
    };
    let tag = params.tag.as_deref();
    Ok(Json(notes::page(state.store().as_ref(), tag, page).await?))
}

/// Get one note. Honours `If-None-Match`.
#[utoipa::path(get, path = "/api/v1/notes/{id}", operation_id = "get_note", tag = "notes",
    params(("id" = String, Path, description = "Note id")),
    responses((status = 200, body = Note, description = "`ETag: \"<version>\"`"), (status = 304), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn get(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let note = state.notes().get(parse_id(&id, "note")?).await?;
    if let Some(inm) = headers.get(header::IF_NONE_MATCH)
        && etag::if_none_match(inm, &note.version.to_string())
    {
        return Ok(not_modified(etag(&note)));
    }
    Ok(with_etag(StatusCode::OK, note))
}

/// Partially update a note. With `If-Match`, only if it is still at that version.
#[utoipa::path(patch, path = "/api/v1/notes/{id}", tag = "notes", request_body = NotePatch,
    params(("id" = String, Path, description = "Note id"),
           ("If-Match" = Option<String>, Header, description = "`\"<version>\"` the update applies to (strong comparison: a weak `W/` tag never matches)")),
    responses((status = 200, body = Note), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "external_id taken, or the note is at its highest version (2^53 − 1) and cannot change"), (status = 412, body = Problem),
              (status = 422, body = Problem)),
    security(("bearer" = ["write"])))]
pub async fn update(
    State(state): State<AppState>,
    who: Auth<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<NotePatch>,
) -> ApiResult<Response> {
    let id = parse_id(&id, "note")?;
    let if_match = headers.get(header::IF_MATCH);
    let accepts = |version: i64| if_match.is_some_and(|h| etag::if_match(h, &version.to_string()));
    let required = if_match
        .is_some()
        .then_some(&accepts as notes::RequiredVersion<'_>);
    let note = state
        .notes()
        .patch(id, &patch, required, &who.0.actor())
        .await?;
    Ok(with_etag(StatusCode::OK, note))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// `true` (admin scope): delete for good, skipping the trash.
    pub permanent: Option<bool>,
}

/// Delete a note: it moves to the trash with its attachments and history.
#[utoipa::path(delete, path = "/api/v1/notes/{id}", operation_id = "delete_note", tag = "notes",
    params(("id" = String, Path, description = "Note id"), DeleteParams),
    responses((status = 204, description = "In the trash (or, with `permanent=true`, deleted for good with its attachments)"),
              (status = 403, body = Problem, description = "`permanent=true` without the admin scope"),
              (status = 404, body = Problem)),
    security(("bearer" = ["write"])))]
pub async fn delete(
    State(state): State<AppState>,
    who: Auth<Write>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "note")?;
    if params.permanent == Some(true) {
        if !who.0.has(Scope::Admin) {
            return Err(ApiError::forbidden(
                "deleting for good (permanent=true) needs the 'admin' scope",
            ));
        }
        state.notes().delete_permanently(id).await?;
    } else {
        state.notes().trash(id, &who.0.actor()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
