//! /api/v1/notes: thin handlers over the store; the rules live in `domain`.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    etag,
    extract::{ApiJson, ApiQuery, Auth, Read, Write, parse_id},
    response::not_modified,
    state::AppState,
};
use crate::{
    domain::{
        note::{Note, NoteDraft, NotePatch},
        validation::FieldError,
    },
    http::error::{ApiError, ApiResult, Problem},
    search::normalize_tag_filter,
    store::{ListQuery, StoreError, list_notes_within},
};

pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;
/// A page ends early, with a cursor, once its notes' text passes this.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Optimistic retries of a PATCH without If-Match; each loss means another
/// writer made progress, so this only runs out under extreme contention.
const MAX_PATCH_ATTEMPTS: usize = 64;

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

#[derive(Debug, Serialize, ToSchema)]
pub struct NotePage {
    pub items: Vec<Note>,
    pub next_cursor: Option<String>,
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

// The cursor is opaque to clients so that its encoding can change.
pub(super) fn encode_cursor(position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("n:{position}"))
}

/// The position a `cursor` parameter names; none, or an empty one, is the
/// first page.
pub(super) fn cursor_position(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .filter(|c| !c.is_empty())
        .map(decode_cursor)
        .transpose()
}

fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("n:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            ApiError::validation(vec![FieldError::new(
                "cursor",
                "is not a cursor this API returned",
            )])
        })
}

/// Create a note.
#[utoipa::path(post, path = "/api/v1/notes", operation_id = "create_note", tag = "notes", request_body = NoteDraft,
    responses((status = 201, body = Note, description = "Created; `Location` and `ETag` headers set"),
              (status = 400, body = Problem), (status = 409, body = Problem, description = "external_id taken"),
              (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["write"])))]
pub async fn create(
    State(state): State<AppState>,
    _: Auth<Write>,
    ApiJson(draft): ApiJson<NoteDraft>,
) -> ApiResult<Response> {
    let note = create_note(&state, draft).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/notes/{}", note.id)).expect("uuid path");
    let mut res = with_etag(StatusCode::CREATED, note);
    res.headers_mut().insert(header::LOCATION, location);
    Ok(res)
}

/// Validates and stores a new note; returns once it is searchable.
pub async fn create_note(state: &AppState, draft: NoteDraft) -> ApiResult<Note> {
    let input = draft.validate().map_err(ApiError::validation)?;
    let note = state.store().create_note(input).await?;
    state.searchable().await;
    Ok(note)
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
    Ok(Json(note_page(&state, params).await?))
}

pub async fn note_page(state: &AppState, params: ListParams) -> ApiResult<NotePage> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::validation(vec![FieldError::new(
            "limit",
            format!("must be 1 to {MAX_PAGE}"),
        )]));
    }
    let tag = params
        .tag
        .as_deref()
        .map(normalize_tag_filter)
        .transpose()
        .map_err(|e| ApiError::validation(vec![e]))?;
    let after = cursor_position(params.cursor.as_deref())?;
    let query = ListQuery { tag, limit, after };
    let page = list_notes_within(state.store().as_ref(), &query, MAX_PAGE_BYTES).await?;
    Ok(NotePage {
        items: page.items,
        next_cursor: page.next.map(encode_cursor),
    })
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
    let id = parse_id(&id, "note")?;
    let note = state
        .store()
        .get_note(id)
        .await?
        .ok_or_else(|| not_found(id))?;
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
    _: Auth<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<NotePatch>,
) -> ApiResult<Response> {
    let note = update_note(&state, &id, &patch, headers.get(header::IF_MATCH)).await?;
    Ok(with_etag(StatusCode::OK, note))
}

/// Applies `patch` to note `id`. With `if_match` (an `If-Match` value),
/// only to the version it names: otherwise a 412 naming the current one.
pub async fn update_note(
    state: &AppState,
    id: &str,
    patch: &NotePatch,
    if_match: Option<&HeaderValue>,
) -> ApiResult<Note> {
    let id = parse_id(id, "note")?;
    // Without If-Match the client asked for "apply my change", so a
    // concurrent writer means re-read and re-apply, not fail.
    for _ in 0..MAX_PATCH_ATTEMPTS {
        let current = state
            .store()
            .get_note(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if let Some(expected) = if_match
            && !etag::if_match(expected, &current.version.to_string())
        {
            return Err(StoreError::VersionMismatch {
                current: current.version,
            }
            .into());
        }
        let input = patch.apply(&current).map_err(ApiError::validation)?;
        if input.same_content(&current) {
            return Ok(current);
        }
        match state.store().update_note(id, input, current.version).await {
            Ok(note) => {
                state.searchable().await;
                return Ok(note);
            }
            Err(StoreError::VersionMismatch { .. }) if if_match.is_none() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the note is being changed concurrently; retry",
    ))
}

/// Delete a note.
#[utoipa::path(delete, path = "/api/v1/notes/{id}", operation_id = "delete_note", tag = "notes",
    params(("id" = String, Path, description = "Note id")),
    responses((status = 204, description = "Deleted, with its attachments"), (status = 404, body = Problem)),
    security(("bearer" = ["write"])))]
pub async fn delete(
    State(state): State<AppState>,
    _: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "note")?;
    let keys = state
        .store()
        .delete_note(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    state.searchable().await;
    state.blobs().delete_all(&keys).await;
    Ok(StatusCode::NO_CONTENT)
}

fn not_found(id: uuid::Uuid) -> ApiError {
    ApiError::not_found(format!("no note with id {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        for bad in ["", "!!", "bjo", &URL_SAFE_NO_PAD.encode("x:1")] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
