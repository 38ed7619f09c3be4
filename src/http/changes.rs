//! /api/v1/changes: the change feed clients sync from (`service::changes`).

use std::{convert::Infallible, time::Duration};

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    error::{ApiError, ApiResult, Problem, problem_type},
    extract::{ApiQuery, Auth, Read},
    state::AppState,
};
use crate::service::{
    ServiceError,
    changes::{self, ChangesAnswer, ChangesRequest, Followed, Wake},
};

/// A comment this often keeps proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often an idle stream looks at the feed without a wake-up.
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesParams {
    /// A `cursor` or `next_cursor` of an earlier answer; without it, the feed
    /// from the start of what is kept (every note once, as `note.created`).
    pub since: Option<String>,
    /// 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `note`: each note's change carries the note (a page then ends early
    /// once its notes pass 8 MiB of text).
    pub include: Option<String>,
}

/// The changes after `since`, oldest first: notes created, updated, deleted
/// (trashed or for good) and restored, attachments created and deleted. A
/// note appears once, at its latest change; `410` when the cursor is older
/// than the deletions kept (`NOTES_CHANGES_RETENTION_DAYS`) or from before
/// a restore: list every note again, then follow from a fresh cursor.
#[utoipa::path(get, path = "/api/v1/changes", operation_id = "list_changes", tag = "changes",
    params(ChangesParams),
    responses((status = 200, body = ChangesAnswer),
        (status = 410, body = Problem, description = "The cursor cannot be continued from: resync from a full listing"),
        (status = 422, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(state): State<AppState>,
    _: Auth<Read>,
    ApiQuery(params): ApiQuery<ChangesParams>,
) -> ApiResult<Json<ChangesAnswer>> {
    let request = ChangesRequest {
        since: params.since.as_deref(),
        limit: params.limit,
        include_note: include_note(params.include.as_deref())?,
    };
    Ok(Json(changes::page(state.store().as_ref(), request).await?))
}

pub fn include_note(include: Option<&str>) -> Result<bool, ServiceError> {
    match include {
        None | Some("") => Ok(false),
        Some("note") => Ok(true),
        Some(_) => Err(ServiceError::invalid("include", "must be `note`")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Where to start, as `since` of `/api/v1/changes`; a `Last-Event-ID`
    /// header (what an EventSource sends when it reconnects) wins over it.
    pub since: Option<String>,
    /// `note`: each note's change carries the note.
    pub include: Option<String>,
}

/// The changes after `since`, then each change as it happens, as
/// Server-Sent Events: `id:` the change's cursor, `event:` its type,
/// `data:` the change as `/api/v1/changes` lists it. A reconnect with
/// `Last-Event-ID` resumes with no gap and no duplicate; a comment every
/// 15 s keeps proxies from closing an idle stream. When the cursor can no
/// longer be continued from, an `expired` event (a problem) ends the stream.
#[utoipa::path(get, path = "/api/v1/changes/stream", operation_id = "stream_changes", tag = "changes",
    params(StreamParams,
        ("Last-Event-ID" = Option<String>, Header, description = "The last event's `id:`, to resume after it")),
    responses((status = 200, content_type = "text/event-stream", body = String,
            description = "Server-Sent Events, one per change"),
        (status = 410, body = Problem, description = "The cursor cannot be continued from: resync from a full listing"),
        (status = 422, body = Problem),
        (status = 429, body = Problem, description = "This key holds NOTES_MAX_STREAMS_PER_KEY streams already")),
    security(("bearer" = ["read"])))]
pub async fn stream(
    State(state): State<AppState>,
    auth: Auth<Read>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> ApiResult<Response> {
    let include_note = include_note(params.include.as_deref())?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(v.to_str().map_err(|_| {
            ServiceError::invalid("Last-Event-ID", "is not a cursor this API returned")
        })?),
        None => None,
    };
    let since = resume.filter(|v| !v.is_empty()).or(params.since.as_deref());
    let request = ChangesRequest {
        since,
        ..Default::default()
    };
    let cursor = request.cursor()?;
    let store = state.store().clone();
    if let Some(cursor) = &cursor {
        // Refused with a status while one can still be sent.
        let page = store.changes(cursor.seq, 1, None).await?;
        changes::check(cursor, &page)?;
    }
    let slot = state.streams().take(&auth.0.actor())?;
    let wake = Wake {
        index: state.index().map(|i| i.watch_status()),
        poll: POLL,
        stop: state.stopping(),
    };
    let events = changes::follow(store, cursor, include_note, wake).filter_map(move |followed| {
        // The slot is given back when the stream is dropped.
        let _held = &slot;
        std::future::ready(event(followed).map(Ok::<_, Infallible>))
    });
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT).text(""));
    // Proxies that buffer (nginx) pass events on at once.
    let no_buffering = (
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(([no_buffering], sse).into_response())
}

fn event(followed: Followed) -> Option<Event> {
    match followed {
        Followed::Change(change) => Event::default()
            .id(change.cursor.clone())
            .event(change.kind.as_str())
            .json_data(&change)
            .ok(),
        Followed::Expired(why) => {
            let problem = ApiError::from(ServiceError::ChangesExpired(why)).problem();
            debug_assert_eq!(problem.kind, problem_type("changes-expired"));
            Event::default().event("expired").json_data(&problem).ok()
        }
        Followed::Failed(e) => {
            // The stream ends; the client reconnects with its last id.
            tracing::warn!(error = %e, "a change stream could not read the feed");
            None
        }
    }
}
