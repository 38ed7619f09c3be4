//! GET /api/v1/search

use axum::{Json, extract::State};

use super::{
    extract::{ApiQuery, Auth, Read},
    state::AppState,
};
use crate::{
    http::error::{ApiError, ApiResult, Problem},
    search::{self, SearchError, SearchParams, SearchResponse},
};

/// Full-text search over titles (weighted higher) and bodies.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", params(SearchParams),
    responses((status = 200, body = SearchResponse), (status = 422, body = Problem),
        (status = 503, description = "the search index is being built", body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn search(
    State(state): State<AppState>,
    _: Auth<Read>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<Json<SearchResponse>> {
    let Some(index) = state.index() else {
        return Err(ApiError::unavailable("this process serves no search"));
    };
    Ok(Json(search::search(index.as_ref(), params).await?))
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Invalid(errors) => ApiError::validation(errors),
            SearchError::Index(e) => e.into(),
        }
    }
}
