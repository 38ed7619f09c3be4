//! GET /api/v1/search and /api/v1/search/suggest

use axum::{Json, extract::State};

use super::{
    extract::{ApiListQuery, ApiQuery, Auth, Read},
    state::AppState,
};
use crate::{
    http::error::{ApiError, ApiResult, Problem},
    search::{self, SearchError, SearchParams, SearchResponse, SuggestParams, SuggestResponse},
};

/// Full-text search over titles (weighted higher) and bodies, tolerant of
/// typos and of a last word still being typed; filters, sorts and tag
/// counts.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", params(SearchParams),
    responses((status = 200, body = SearchResponse), (status = 422, body = Problem),
        (status = 503, description = "the search index is being built", body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn search(
    State(state): State<AppState>,
    _: Auth<Read>,
    ApiListQuery(params): ApiListQuery<SearchParams>,
) -> ApiResult<Json<SearchResponse>> {
    let Some(index) = state.index() else {
        return Err(ApiError::unavailable("this process serves no search"));
    };
    Ok(Json(search::search(index.as_ref(), params).await?))
}

/// Completions of the last word typed, from the index's words, tolerant of
/// typos, by the notes they are in. For a search box: no refresh, cheap.
#[utoipa::path(get, path = "/api/v1/search/suggest", tag = "search", params(SuggestParams),
    responses((status = 200, body = SuggestResponse), (status = 422, body = Problem),
        (status = 503, description = "the search index is being built", body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn suggest(
    State(state): State<AppState>,
    _: Auth<Read>,
    ApiQuery(params): ApiQuery<SuggestParams>,
) -> ApiResult<Json<SuggestResponse>> {
    let Some(index) = state.index() else {
        return Err(ApiError::unavailable("this process serves no search"));
    };
    Ok(Json(search::suggest(index.as_ref(), params).await?))
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Invalid(errors) => ApiError::validation(errors),
            SearchError::Index(e) => e.into(),
        }
    }
}
