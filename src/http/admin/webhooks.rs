//! Webhooks in the admin UI: each with its recent deliveries and their
//! attempts, and a button to send a delivery again (`service::webhooks`).

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect},
};
use serde::Deserialize;

use super::{
    auth::AdminUser,
    pages::{Page, accept_write, chrome, query},
    views::{WebhookList, WebhookRow, render},
};
use crate::{
    domain::timestamp,
    http::state::AppState,
    service::{PageRequest, webhooks},
};

/// Deliveries shown under each webhook.
const RECENT: u32 = 10;

#[derive(Default, Deserialize)]
pub struct WebhooksQuery {
    redelivered: Option<String>,
}

pub async fn list(State(state): State<AppState>, user: AdminUser, RawQuery(q): RawQuery) -> Page {
    let q: WebhooksQuery = query(q)?;
    let store = state.store();
    let mut hooks = Vec::new();
    for webhook in webhooks::list(store.as_ref()).await? {
        let recent = PageRequest {
            limit: Some(RECENT),
            cursor: None,
        };
        let deliveries = webhooks::deliveries(store.as_ref(), webhook.id, recent)
            .await?
            .deliveries;
        hooks.push(WebhookRow {
            webhook,
            deliveries,
        });
    }
    Ok(render(&WebhookList {
        c: chrome(&state, &user, "webhooks"),
        hooks,
        notice: q
            .redelivered
            .map(|_| "The message is queued to be sent again."),
    }))
}

pub async fn redeliver(
    State(state): State<AppState>,
    user: AdminUser,
    Path((id, delivery_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let id = accept_write(&state, &user, &headers, &body, &id, "webhook")?;
    let delivery_id = super::pages::parse_id(&delivery_id, "delivery")?;
    let delivery = state
        .outbox()
        .redeliver(id, delivery_id, timestamp::now())
        .await?;
    tracing::info!(webhook_id = %id, delivery_id = %delivery.id, "admin UI: webhook delivery sent again");
    Ok(Redirect::to("/admin/webhooks?redelivered=1").into_response())
}
