//! /api/v1/keys: managed with the master key.

use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
};
use uuid::Uuid;

use super::{
    extract::{ApiJson, Auth, Master, parse_id},
    state::AppState,
};
use crate::{
    domain::{
        keys::{ApiKey, CreatedKey, KeyRequest, generate_key},
        timestamp,
    },
    http::error::{ApiError, ApiResult, Problem},
    store::NewKey,
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
        Json(create_key(&state, req).await?),
    ))
}

/// Validates and stores a new key; the secret is only in the answer.
pub async fn create_key(state: &AppState, req: KeyRequest) -> ApiResult<CreatedKey> {
    let (name, scopes) = req.validate().map_err(ApiError::validation)?;
    let generated = generate_key();
    let key = ApiKey {
        id: Uuid::now_v7(),
        name,
        scopes,
        prefix: generated.prefix,
        created_at: timestamp::now(),
    };
    state
        .store()
        .create_key(NewKey {
            key: key.clone(),
            hash: generated.hash,
        })
        .await?;
    tracing::info!(key_id = %key.id, name = %key.name, "API key created");
    Ok(CreatedKey {
        api_key: key,
        key: generated.secret,
    })
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
    revoke_key(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke_key(state: &AppState, id: &str) -> ApiResult<()> {
    let id = parse_id(id, "key")?;
    if state.store().delete_key(id).await? {
        tracing::info!(key_id = %id, "API key revoked");
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no key with id {id}")))
    }
}
