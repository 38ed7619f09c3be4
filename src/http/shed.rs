//! Load shedding: the routes whose work or memory grows with the request
//! run in a bounded number of slots. A request that finds none free within
//! [`WAIT`] is answered 503 with `Retry-After`, so a burst costs latency and
//! then refusals, never the pod's memory.

use std::{sync::Arc, time::Duration};

use axum::{
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use tokio::sync::Semaphore;

use super::error::ApiError;
use crate::config::Config;

/// How long a request may wait for a slot before it is shed.
const WAIT: Duration = Duration::from_secs(1);

pub struct Slots {
    /// Bulk ingest: holds a whole batch in memory while it validates.
    ingest: Arc<Semaphore>,
    /// Single-note writes, listing, search, uploads, job creation.
    heavy: Arc<Semaphore>,
}

impl Slots {
    pub fn new(config: &Config) -> Self {
        Self {
            ingest: Arc::new(Semaphore::new(config.max_ingests.max(1))),
            heavy: Arc::new(Semaphore::new(config.max_heavy_requests.max(1))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Ingest,
    Heavy,
    Light,
}

fn class(method: &Method, route: &str) -> Class {
    match (method.as_str(), route) {
        ("POST", "/api/v1/ingest") => Class::Ingest,
        ("GET" | "POST", "/api/v1/notes")
        | ("PATCH", "/api/v1/notes/{id}")
        | ("GET", "/api/v1/search")
        | ("POST", "/api/v1/notes/{id}/attachments")
        | ("POST", "/api/v1/jobs")
        // The admin UI's note forms and uploads: the same work as the API's.
        | ("POST", "/admin/notes/new")
        | ("POST", "/admin/notes/{id}/edit")
        | ("POST", "/admin/notes/{id}/attachments") => Class::Heavy,
        _ => Class::Light,
    }
}

impl Slots {
    /// Runs `work` in a slot of the pool its route belongs to, or sheds it.
    pub async fn run<F>(&self, method: &Method, route: &str, work: F) -> Response
    where
        F: Future<Output = Response>,
    {
        let pool = match class(method, route) {
            Class::Ingest => &self.ingest,
            Class::Heavy => &self.heavy,
            Class::Light => return work.await,
        };
        match tokio::time::timeout(WAIT, pool.clone().acquire_owned()).await {
            Ok(Ok(_slot)) => work.await,
            _ => {
                metrics::counter!("http_shed_total", "route" => route.to_owned()).increment(1);
                overloaded().into_response()
            }
        }
    }
}

fn overloaded() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "the server is busy with requests like this one; retry after the time in Retry-After",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_routes_that_grow_with_their_input_take_a_slot() {
        assert_eq!(class(&Method::POST, "/api/v1/ingest"), Class::Ingest);
        assert_eq!(class(&Method::GET, "/api/v1/search"), Class::Heavy);
        assert_eq!(class(&Method::PATCH, "/api/v1/notes/{id}"), Class::Heavy);
        assert_eq!(class(&Method::GET, "/api/v1/notes/{id}"), Class::Light);
        assert_eq!(class(&Method::GET, "/readyz"), Class::Light);
        let admin_upload = "/admin/notes/{id}/attachments";
        assert_eq!(class(&Method::POST, admin_upload), Class::Heavy);
        assert_eq!(class(&Method::POST, "/admin/notes/{id}/edit"), Class::Heavy);
        assert_eq!(class(&Method::GET, "/admin/notes/{id}/edit"), Class::Light);
    }
}
