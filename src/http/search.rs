//! GET /api/v1/search

use axum::{Json, extract::State};

use super::{
    extract::{ApiQuery, Auth, Read},
    state::AppState,
};
use crate::{
    error::{ApiError, ApiResult, Problem},
    search::{self, SearchError, SearchParams, SearchResponse},
};

/// Full-text search over titles (weighted higher) and bodies.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", params(SearchParams),
    responses((status = 200, body = SearchResponse), (status = 422, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn search(
    State(state): State<AppState>,
    _: Auth<Read>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<Json<SearchResponse>> {
    match search::search(state.store.as_ref(), params).await {
        Ok(res) => Ok(Json(res)),
        Err(SearchError::Invalid(errors)) => Err(ApiError::validation(errors)),
        Err(SearchError::Store(e)) => Err(e.into()),
    }
}
