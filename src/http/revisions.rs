//! /api/v1/notes/{id}/revisions: a note's history (`service::revisions`).

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
    extract::{ApiQuery, Auth, Read, Write, parse_id},
    state::AppState,
};
use crate::{
    domain::{
        note::Note,
        revision::{Revision, RevisionDiff},
    },
    http::error::{ApiResult, Problem},
    service::{
        PageRequest,
        notes::RequiredVersion,
        revisions::{self, RevisionPage, parse_version},
    },
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevisionListParams {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffParams {
    /// The version to compare with; default: the current one.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 9007199254740991.0)]
    pub against: Option<String>,
}

/// A note's revisions, newest first, without their bodies.
#[utoipa::path(get, path = "/api/v1/notes/{id}/revisions", operation_id = "list_revisions", tag = "revisions",
    params(("id" = String, Path, description = "Note id"), RevisionListParams),
    responses((status = 200, body = RevisionPage), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<RevisionListParams>,
) -> ApiResult<Json<RevisionPage>> {
    let id = parse_id(&id, "note")?;
    let page = PageRequest {
        limit: params.limit,
        cursor: params.cursor.as_deref(),
    };
    Ok(Json(
        revisions::page(state.store().as_ref(), id, page).await?,
    ))
}

/// The note as it was at one version (its current version included).
#[utoipa::path(get, path = "/api/v1/notes/{id}/revisions/{version}", operation_id = "get_revision", tag = "revisions",
    params(("id" = String, Path, description = "Note id"), ("version" = i64, Path, minimum = 1, maximum = 9007199254740991.0, description = "Version")),
    responses((status = 200, body = Revision), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn get(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Revision>> {
    let id = parse_id(&id, "note")?;
    let version = parse_version(&version, "version")?;
    Ok(Json(
        revisions::get(state.store().as_ref(), id, version).await?,
    ))
}

/// What changed from one version to another: a unified diff of the body
/// and every other field that differs.
#[utoipa::path(get, path = "/api/v1/notes/{id}/revisions/{version}/diff", operation_id = "diff_revision", tag = "revisions",
    params(("id" = String, Path, description = "Note id"), ("version" = i64, Path, minimum = 1, maximum = 9007199254740991.0, description = "Version"), DiffParams),
    responses((status = 200, body = RevisionDiff), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn diff(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path((id, version)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<DiffParams>,
) -> ApiResult<Json<RevisionDiff>> {
    let id = parse_id(&id, "note")?;
    let version = parse_version(&version, "version")?;
    let against = params
        .against
        .as_deref()
        .map(|a| parse_version(a, "against"))
        .transpose()?;
    Ok(Json(
        revisions::compare(state.store().as_ref(), id, version, against).await?,
    ))
}

/// Make a revision's content the note's next version. Honours `If-Match`.
#[utoipa::path(post, path = "/api/v1/notes/{id}/revisions/{version}/restore", operation_id = "restore_revision", tag = "revisions",
    params(("id" = String, Path, description = "Note id"), ("version" = i64, Path, minimum = 1, maximum = 9007199254740991.0, description = "Version"),
           ("If-Match" = Option<String>, Header, description = "`\"<version>\"` the note must be at")),
    responses((status = 200, body = Note, description = "The note at its new version; `ETag` set"),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem),
              (status = 422, body = Problem)),
    security(("bearer" = ["write"])))]
pub async fn restore(
    State(state): State<AppState>,
    who: Auth<Write>,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id, "note")?;
    let version = parse_version(&version, "version")?;
    let if_match = headers.get(header::IF_MATCH);
    let accepts = |v: i64| if_match.is_some_and(|h| etag::if_match(h, &v.to_string()));
    let required = if_match
        .is_some()
        .then_some(&accepts as RequiredVersion<'_>);
    let note = revisions::restore(&state.notes(), id, version, required, &who.0.actor()).await?;
    let tag = HeaderValue::from_str(&format!("\"{}\"", note.version)).expect("digits");
    let mut res = (StatusCode::OK, Json(note)).into_response();
    res.headers_mut().insert(header::ETAG, tag);
    Ok(res)
}
