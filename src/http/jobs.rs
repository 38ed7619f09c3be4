//! /api/v1/jobs: enqueue, inspect, list and retry background jobs.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    extract::{Admin, ApiJson, ApiQuery, Auth, Read, Write, parse_id},
    state::AppState,
};
use crate::{
    domain::{
        keys::{Principal, Scope},
        validation::FieldError,
    },
    http::error::{ApiError, ApiResult, Problem},
    queue::{Job, JobKind, JobStatus, model::JobRequest},
    service::{
        PageRequest,
        jobs::{self, JobPage},
    },
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListParams {
    /// queued, running, succeeded, failed or dead.
    #[param(value_type = Option<JobStatus>)]
    pub status: Option<String>,
    /// A job kind, e.g. `backup`.
    #[param(value_type = Option<JobKind>)]
    pub kind: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn accepted(job: Job) -> Response {
    let location = HeaderValue::from_str(&format!("/api/v1/jobs/{}", job.id)).expect("uuid path");
    let mut res = (StatusCode::ACCEPTED, Json(job)).into_response();
    res.headers_mut().insert(header::LOCATION, location);
    res
}

/// Enqueue a job. Unknown kinds and bad arguments are refused here, never
/// discovered by a worker. `backup`, `purge`, `reindex` and a `ping` longer
/// than 1000 ms need the admin scope. An API key may have at most
/// `NOTES_MAX_QUEUED_JOBS_PER_KEY` jobs queued or running at once (429 past it).
#[utoipa::path(post, path = "/api/v1/jobs", operation_id = "create_job", tag = "jobs", request_body = JobRequest,
    responses((status = 202, body = Job, description = "Queued; `Location` names the job"),
              (status = 400, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem),
              (status = 429, body = Problem, description = "The key already has as many jobs queued or running as it may")),
    security(("bearer" = ["write"])))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiJson(request): ApiJson<JobRequest>,
) -> ApiResult<Response> {
    let job = request.validate().map_err(ApiError::validation)?;
    // Maintenance kinds touch the whole deployment (a backup writes every
    // note and key hash where it is told), and a long ping holds a worker
    // for a minute: admins only.
    if let Some(why) = job.admin_only()
        && !auth.0.has(Scope::Admin)
    {
        return Err(ApiError::forbidden(why));
    }
    // A key may choose where a backup goes only within what the operator
    // configured: never /tmp, never another bucket.
    if let Some(to) = job.args.get("to").and_then(|v| v.as_str()) {
        state
            .settings()
            .storage
            .check_backup_destination(to)
            .map_err(|e| ApiError::validation(vec![FieldError::new("args.to", e)]))?;
    }
    // API keys share the queue under a cap; the master key (and the open
    // API of development mode) is the operator's.
    let Principal::Key { id: key, .. } = auth.0 else {
        return Ok(accepted(state.enqueue(job).await?));
    };
    match state.enqueue_for(key, job).await? {
        Some(job) => Ok(accepted(job)),
        None => {
            let limit = state.settings().jobs.max_queued_per_key;
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-jobs",
                format!(
                    "this key already has {limit} jobs queued or running, the limit \
                     (NOTES_MAX_QUEUED_JOBS_PER_KEY); submit more once some have finished"
                ),
            ))
        }
    }
}

/// One job, with its result or error.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", operation_id = "get_job", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn get(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    let id = parse_id(&id, "job")?;
    state
        .queue()
        .get(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no job with id {id}")))
}

/// Jobs, newest first, filtered by status and kind.
#[utoipa::path(get, path = "/api/v1/jobs", operation_id = "list_jobs", tag = "jobs", params(JobListParams),
    responses((status = 200, body = JobPage), (status = 422, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(state): State<AppState>,
    _: Auth<Read>,
    ApiQuery(params): ApiQuery<JobListParams>,
) -> ApiResult<Json<JobPage>> {
    let page = PageRequest {
        limit: params.limit,
        cursor: params.cursor.as_deref(),
    };
    let (status, kind) = (params.status.as_deref(), params.kind.as_deref());
    Ok(Json(
        jobs::page(state.queue().as_ref(), status, kind, page).await?,
    ))
}

/// Put a dead job back in the queue, attempts reset.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 202, body = Job), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "The job is not dead")),
    security(("bearer" = ["admin"])))]
pub async fn retry(
    State(state): State<AppState>,
    _: Auth<Admin>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id, "job")?;
    Ok(accepted(jobs::retry(state.queue().as_ref(), id).await?))
}
