//! /api/v1/keys: managed with the master key.

use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
};

use super::{
    extract::{ApiJson, Auth, Master, parse_id},
    state::AppState,
};
use crate::{
    domain::keys::{ApiKey, CreatedKey, KeyRequest},
    http::error::{ApiResult, Problem},
    service::keys,
};

/// Create an API key. The secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/keys", operation_id = "create_key", tag = "keys", request_body = KeyRequest,
    responses((status = 201, body = CreatedKey, description = "The key and its secret; `Cache-Control: no-store`"),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["master"])))]
pub async fn create(
    State(state): State<AppState>,
    _: Auth<Master>,
    ApiJson(req): ApiJson<KeyRequest>,
) -> ApiResult<(
    StatusCode,
    [(header::HeaderName, &'static str); 1],
    Json<CreatedKey>,
)> {
    // The secret must not outlive this answer in any cache on the way.
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(keys::create(state.store().as_ref(), req).await?),
    ))
}

/// List API keys (never their secrets).
#[utoipa::path(get, path = "/api/v1/keys", operation_id = "list_keys", tag = "keys",
    responses((status = 200, body = Vec<ApiKey>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = ["master"])))]
pub async fn list(State(state): State<AppState>, _: Auth<Master>) -> ApiResult<Json<Vec<ApiKey>>> {
    Ok(Json(state.store().list_keys().await?))
}

/// Revoke an API key, at once, on every replica.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", operation_id = "delete_key", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = ["master"])))]
pub async fn delete(
    State(state): State<AppState>,
    _: Auth<Master>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    keys::revoke(state.store().as_ref(), parse_id(&id, "key")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
