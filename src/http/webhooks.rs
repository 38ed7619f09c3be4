//! /api/v1/webhooks: targets that receive the change feed's events, and
//! their deliveries (`service::webhooks`). Admin scope throughout: a
//! webhook sends every note's id to a URL of its creator's choosing.

use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    extract::{Admin, ApiJson, ApiQuery, Auth, parse_id},
    state::AppState,
};
use crate::{
    domain::{
        delivery::Delivery,
        timestamp,
        webhook::{Webhook, WebhookPatch, WebhookRequest, WebhookWithSecret},
    },
    http::error::{ApiResult, Problem},
    service::{
        PageRequest,
        webhooks::{self, DeliveryPage},
    },
};

/// A secret in an answer must not outlive it in any cache on the way.
type NoStore = [(header::HeaderName, &'static str); 1];
const NO_STORE: NoStore = [(header::CACHE_CONTROL, "no-store")];

/// Create a webhook. Its signing secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/webhooks", operation_id = "create_webhook", tag = "webhooks",
    request_body = WebhookRequest,
    responses((status = 201, body = WebhookWithSecret, description = "The webhook and its signing secret; `Cache-Control: no-store`"),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem, description = "At the limit of webhooks"),
              (status = 422, body = Problem, description = "A bad or refused URL, an unknown event")),
    security(("bearer" = ["admin"])))]
pub async fn create(
    State(state): State<AppState>,
    _: Auth<Admin>,
    ApiJson(req): ApiJson<WebhookRequest>,
) -> ApiResult<(StatusCode, NoStore, Json<WebhookWithSecret>)> {
    let jobs = state.jobs();
    let created =
        webhooks::create(jobs.store.as_ref(), &jobs.sender, req, timestamp::now()).await?;
    Ok((StatusCode::CREATED, NO_STORE, Json(created)))
}

/// List webhooks (never their secrets).
#[utoipa::path(get, path = "/api/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks",
    responses((status = 200, body = Vec<Webhook>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn list(State(state): State<AppState>, _: Auth<Admin>) -> ApiResult<Json<Vec<Webhook>>> {
    Ok(Json(webhooks::list(state.store().as_ref()).await?))
}

/// One webhook.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", operation_id = "get_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = Webhook), (status = 404, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn get(
    State(state): State<AppState>,
    _: Auth<Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<Webhook>> {
    let id = parse_id(&id, "webhook")?;
    Ok(Json(webhooks::get(state.store().as_ref(), id).await?))
}

/// A webhook after a change; `secret` only when it was rotated.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The new signing secret, after `rotate_secret`: store it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Change a webhook: its URL, events, description, whether it is enabled,
/// or its secret (`rotate_secret`).
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", operation_id = "update_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    request_body = WebhookPatch,
    responses((status = 200, body = UpdatedWebhook, description = "`Cache-Control: no-store`"),
              (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn update(
    State(state): State<AppState>,
    _: Auth<Admin>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<WebhookPatch>,
) -> ApiResult<(NoStore, Json<UpdatedWebhook>)> {
    let id = parse_id(&id, "webhook")?;
    let jobs = state.jobs();
    let (webhook, secret) = webhooks::update(
        jobs.store.as_ref(),
        &jobs.sender,
        id,
        patch,
        timestamp::now(),
    )
    .await?;
    Ok((NO_STORE, Json(UpdatedWebhook { webhook, secret })))
}

/// Delete a webhook and its deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", operation_id = "delete_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn delete(
    State(state): State<AppState>,
    _: Auth<Admin>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "webhook")?;
    webhooks::delete(state.store().as_ref(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListParams {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A webhook's deliveries, newest first, each with its attempts: when,
/// the receiver's status, how long, and why it failed.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", operation_id = "list_webhook_deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), DeliveryListParams),
    responses((status = 200, body = DeliveryPage), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn deliveries(
    State(state): State<AppState>,
    _: Auth<Admin>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DeliveryListParams>,
) -> ApiResult<Json<DeliveryPage>> {
    let id = parse_id(&id, "webhook")?;
    let page = PageRequest {
        limit: params.limit,
        cursor: params.cursor.as_deref(),
    };
    Ok(Json(
        webhooks::deliveries(state.store().as_ref(), id, page).await?,
    ))
}

/// Send a delivery's message again (same `webhook-id`), as a new delivery.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", operation_id = "redeliver_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), ("delivery_id" = String, Path, description = "Delivery id")),
    responses((status = 202, body = Delivery, description = "The new delivery, queued"),
              (status = 404, body = Problem), (status = 409, body = Problem, description = "The webhook is disabled")),
    security(("bearer" = ["admin"])))]
pub async fn redeliver(
    State(state): State<AppState>,
    _: Auth<Admin>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let id = parse_id(&id, "webhook")?;
    let delivery_id = parse_id(&delivery_id, "delivery")?;
    let delivery = state
        .outbox()
        .redeliver(id, delivery_id, timestamp::now())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

/// Send a `ping` event: a test of the receiver and its signature check.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/ping", operation_id = "ping_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 202, body = Delivery, description = "The delivery, queued"),
              (status = 404, body = Problem), (status = 409, body = Problem, description = "The webhook is disabled")),
    security(("bearer" = ["admin"])))]
pub async fn ping(
    State(state): State<AppState>,
    _: Auth<Admin>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let id = parse_id(&id, "webhook")?;
    let delivery = state.outbox().ping(id, timestamp::now()).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}
