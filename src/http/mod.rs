//! The HTTP application: routes, and the layers every request goes through.

pub mod admin;
pub mod attachments;
pub mod changes;
pub mod connections;
pub mod error;
pub mod etag;
pub mod export;
pub mod extract;
pub mod host;
pub mod import;
pub mod ingest;
pub mod jobs;
pub mod keys;
pub mod middleware;
pub mod multipart;
pub mod notes;
pub mod openapi;
pub mod ops;
pub mod rate_limit;
pub mod readiness;
pub mod ready;
pub mod response;
pub mod revisions;
pub mod search;
pub mod served;
pub mod shed;
pub mod state;
pub mod streams;
pub mod transfer;
pub mod trash;
pub mod webhooks;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{from_fn, from_fn_with_state},
    routing::{get, post},
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use served::Routes;
pub use state::AppState;

/// JSON bodies of single notes: a 1 MiB body may grow when JSON-escaped.
pub const MAX_JSON_BYTES: usize = crate::domain::note::MAX_NOTE_JSON_BYTES;

pub fn router(state: AppState) -> Router {
    let settings = state.settings();
    let timeout = |d| TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, d);

    let api = Router::new()
        .route("/api/v1/notes", get(notes::list).post(notes::create))
        .route(
            "/api/v1/notes/{id}",
            get(notes::get).patch(notes::update).delete(notes::delete),
        )
        .route("/api/v1/notes/{id}/revisions", get(revisions::list))
        .route("/api/v1/trash", get(trash::list).delete(trash::empty))
        .route("/api/v1/trash/{id}/restore", post(trash::restore))
        .route("/api/v1/trash/{id}", axum::routing::delete(trash::delete))
        .route(
            "/api/v1/notes/{id}/revisions/{version}",
            get(revisions::get),
        )
        .route(
            "/api/v1/notes/{id}/revisions/{version}/diff",
            get(revisions::diff),
        )
        .route(
            "/api/v1/notes/{id}/revisions/{version}/restore",
            post(revisions::restore),
        )
        .route("/api/v1/changes", get(changes::list))
        .route("/api/v1/changes/stream", get(changes::stream))
        .route("/api/v1/search", get(search::search))
        .route("/api/v1/search/suggest", get(search::suggest))
        .route(
            "/api/v1/attachments/{id}",
            get(attachments::get).delete(attachments::delete),
        )
        .route(
            "/api/v1/attachments/{id}/content",
            get(attachments::content),
        )
        .route("/api/v1/jobs", get(jobs::list).post(jobs::create))
        .route("/api/v1/jobs/{id}", get(jobs::get))
        .route("/api/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route("/api/v1/keys/{id}", axum::routing::delete(keys::delete))
        .route(
            "/api/v1/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/api/v1/webhooks/{id}/ping", post(webhooks::ping))
        // Streams its zip after the answer; holds an export slot until done.
        .route("/api/v1/export", get(export::export))
        .route_layer(from_fn_with_state(state.clone(), middleware::shed))
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .layer(timeout(settings.limits.request_timeout));

    // Uploads stream and count their own bytes against their limits, and
    // may take long on slow links.
    let ingest = Router::new()
        .route("/api/v1/ingest", post(ingest::ingest))
        // Stages the zip as it arrives, counted against NOTES_IMPORT_MAX_BYTES.
        .route("/api/v1/import", post(import::import))
        .route(
            "/api/v1/notes/{id}/attachments",
            get(attachments::list).post(attachments::upload),
        )
        .route_layer(from_fn_with_state(state.clone(), middleware::shed))
        .layer(DefaultBodyLimit::disable())
        .layer(timeout(settings.limits.ingest_timeout));

    // Probes and the scrape are open without a key in every mode and come
    // from kubelets and load balancers by IP or by any name: they are
    // left out of the development-mode host check.
    let mut app = Router::new()
        .merge(api)
        .merge(ingest)
        .merge(admin::router(&state))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::ApiDoc::openapi()))
        .layer(from_fn_with_state(state.clone(), host::development_hosts))
        .merge(ops::router())
        .layer(from_fn(admin::security_headers))
        .layer(from_fn_with_state(state.clone(), middleware::read_only))
        .layer(from_fn_with_state(state.clone(), middleware::rate_limit));
    if let Some(cors) = cors(&settings.server.cors_origins) {
        app = app.layer(cors);
    }
    common_layers(app, state)
}

/// What `notes-api worker` serves: probes and metrics, no API.
pub fn ops_router(state: AppState) -> Router {
    let ops = ops::router().layer(from_fn_with_state(state.clone(), middleware::rate_limit));
    common_layers(ops, state)
}

fn common_layers(app: Router<AppState>, state: AppState) -> Router {
    app.layer(CatchPanicLayer::custom(panicked))
        .layer(from_fn(middleware::problem_json))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(from_fn(middleware::observe))
        .with_state(state)
}

/// A handler that panicked answers 500 as any failure does, and is logged
/// (and reported) with what it said, instead of dropping the connection.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let said = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!(panic = %said, "a request handler panicked");
    axum::response::IntoResponse::into_response(error::ApiError::internal())
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                HeaderName::from_static(middleware::REQUEST_ID),
            ])
            .expose_headers([
                header::ETAG,
                header::LINK,
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static(middleware::REQUEST_ID),
            ]),
    )
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_handler_that_panics_answers_500_problem_json() {
        let app: Router = Router::new()
            .route("/boom", get(boom))
            .layer(CatchPanicLayer::custom(panicked));
        let res = app
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()[header::CONTENT_TYPE], error::PROBLEM_JSON);
    }
}
