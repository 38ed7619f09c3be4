//! Jobs as a client inspects and retries them.

use std::str::FromStr;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{PageRequest, ServiceError, ServiceResult, cursor};
use crate::{
    domain::timestamp,
    queue::{Job, JobKind, JobListQuery, JobStatus, Queue, QueueError},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<Job>,
    pub next_cursor: Option<String>,
}

/// One page of the jobs, newest first, filtered by status and kind (by
/// name, as a client gives them).
pub async fn page(
    queue: &dyn Queue,
    status: Option<&str>,
    kind: Option<&str>,
    page: PageRequest<'_>,
) -> ServiceResult<JobPage> {
    let (limit, after) = page.resolve()?;
    let status = status
        .map(JobStatus::from_str)
        .transpose()
        .map_err(|e| ServiceError::invalid("status", e))?;
    let kind = kind
        .map(JobKind::from_str)
        .transpose()
        .map_err(|e| ServiceError::invalid("kind", e))?;
    let page = queue
        .list(&JobListQuery {
            status,
            kind,
            limit,
            after,
        })
        .await?;
    Ok(JobPage {
        items: page.items,
        next_cursor: page.next.map(cursor::encode),
    })
}

/// Puts a dead job back in the queue, its attempts reset.
pub async fn retry(queue: &dyn Queue, id: Uuid) -> ServiceResult<Job> {
    queue
        .retry(id, timestamp::now())
        .await
        .map_err(|e| match e {
            QueueError::NotFound => ServiceError::NotFound { what: "job", id },
            e => e.into(),
        })
}
