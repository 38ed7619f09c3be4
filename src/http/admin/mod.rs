//! `/admin`: a server-rendered admin UI (API.md, "Admin UI"). Every asset
//! is in the binary; it works without JavaScript (one small script shows
//! times in the browser's zone). Pages and sessions are in `pages.rs` and
//! `session.rs`, who may enter in `auth.rs`.

use axum::{
    Router,
    extract::{DefaultBodyLimit, Path},
    http::{HeaderValue, StatusCode, header},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tower_http::{set_header::SetResponseHeaderLayer, timeout::TimeoutLayer};

use crate::http::{middleware, state::AppState};

pub mod auth;
mod forms;
mod pages;
pub mod session;
mod views;

/// Forms carry a key, a name or a token: small.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Scripts and styles from this origin only, and never inline; no framing;
/// forms post here only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const CSS: &str = include_str!("../../../assets/admin/admin.css");
const JS: &str = include_str!("../../../assets/admin/admin.js");

pub fn router(state: &AppState) -> Router<AppState> {
    let config = state.config();
    let timeout = |d| TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, d);
    let header =
        |name, value| SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value));
    let pages = Router::new()
        .route("/admin", get(pages::index))
        .route("/admin/", get(pages::index))
        .route("/admin/login", get(pages::login_page).post(pages::login))
        .route("/admin/logout", post(pages::logout))
        .route("/admin/notes", get(pages::notes))
        .route("/admin/notes/{id}", get(pages::note))
        .route("/admin/search", get(pages::search))
        .route("/admin/attachments/{id}/content", get(pages::download))
        .route("/admin/jobs", get(pages::jobs))
        .route("/admin/jobs/{id}", get(pages::job))
        .route("/admin/jobs/{id}/retry", post(pages::retry))
        .route("/admin/keys", get(pages::keys).post(pages::create_key))
        .route("/admin/keys/{id}/revoke", post(pages::revoke_key))
        .route("/admin/system", get(pages::system))
        .route("/admin/static/{file}", get(asset))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES));
    // Note writes as the API's: in its heavy slots, within its request
    // timeout; the handlers read the form up to MAX_NOTE_FORM_BYTES.
    let notes = Router::new()
        .route(
            "/admin/notes/new",
            get(forms::new_note).post(forms::create_note),
        )
        .route(
            "/admin/notes/{id}/edit",
            get(forms::edit_note).post(forms::save_note),
        )
        .route_layer(from_fn_with_state(state.clone(), middleware::shed))
        .layer(DefaultBodyLimit::max(forms::MAX_NOTE_FORM_BYTES))
        .layer(timeout(config.request_timeout()));
    // Uploads as the API's: streamed and counted against the upload limit
    // (never buffered), in the upload slots, within the ingest timeout.
    let uploads = Router::new()
        .route("/admin/notes/{id}/attachments", post(forms::upload))
        .route_layer(from_fn_with_state(state.clone(), middleware::shed))
        .layer(DefaultBodyLimit::disable())
        .layer(timeout(config.ingest_timeout()));
    pages
        .merge(notes)
        .merge(uploads)
        .layer(header(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::REFERRER_POLICY, "same-origin"))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "admin.css" => (CSS, "text/css; charset=utf-8"),
        "admin.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return views::ErrorPage::new(StatusCode::NOT_FOUND, "No such file.").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
