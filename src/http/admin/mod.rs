//! `/admin`: a server-rendered admin UI (`docs/admin.md`). Every asset
//! is in the binary; it works without JavaScript (one small script shows
//! times in the browser's zone). Pages and sessions are in `pages.rs` and
//! `session.rs`, who may enter in `auth.rs`.

use axum::{
    Router,
    extract::{DefaultBodyLimit, Path, Request},
    http::{HeaderValue, StatusCode, header},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tower_http::timeout::TimeoutLayer;

use crate::http::{middleware, state::AppState};

pub mod auth;
mod forms;
mod history;
mod pages;
pub mod session;
mod trash;
mod views;
mod webhooks;

/// Forms carry a key, a name or a token: small.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Scripts and styles from this origin only, and never inline; no framing;
/// forms post here only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const CSS: &str = include_str!("../../../assets/admin/admin.css");
const JS: &str = include_str!("../../../assets/admin/admin.js");

/// The pages; their security headers come from [`security_headers`],
/// which the application applies to every path under `/admin`.
pub fn router(state: &AppState) -> Router<AppState> {
    let limits = &state.settings().limits;
    let timeout = |d| TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, d);
    let pages = Router::new()
        .route("/admin", get(pages::index))
        .route("/admin/", get(pages::index))
        .route("/admin/login", get(pages::login_page).post(pages::login))
        .route("/admin/logout", post(pages::logout))
        .route("/admin/notes", get(pages::notes))
        .route("/admin/notes/{id}", get(pages::note))
        .route("/admin/notes/{id}/history", get(history::history))
        .route("/admin/trash", get(trash::list))
        .route("/admin/trash/{id}/restore", post(trash::restore))
        .route("/admin/trash/{id}/delete", post(trash::purge))
        .route("/admin/notes/{id}/delete", post(trash::delete_note))
        .route(
            "/admin/notes/{id}/history/{version}",
            get(history::revision),
        )
        .route("/admin/search", get(pages::search))
        .route("/admin/attachments/{id}/content", get(pages::download))
        .route("/admin/webhooks", get(webhooks::list))
        .route(
            "/admin/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(webhooks::redeliver),
        )
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
        .route(
            "/admin/notes/{id}/history/{version}/restore",
            post(history::restore),
        )
        .route_layer(from_fn_with_state(state.clone(), middleware::shed))
        .layer(DefaultBodyLimit::max(forms::MAX_NOTE_FORM_BYTES))
        .layer(timeout(limits.request_timeout));
    // Uploads as the API's: streamed and counted against the upload limit
    // (never buffered), in the upload slots, within the ingest timeout.
    let uploads = Router::new()
        .route("/admin/notes/{id}/attachments", post(forms::upload))
        .route_layer(from_fn_with_state(state.clone(), middleware::shed))
        .layer(DefaultBodyLimit::disable())
        .layer(timeout(limits.ingest_timeout));
    pages.merge(notes).merge(uploads)
}

/// Every response under `/admin`, whoever wrote it (a page, a static file,
/// the router's 404 for an unknown page, a refusal by an outer layer),
/// carries the admin UI's headers. A layer on the admin routes alone left
/// the 404s without them.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let admin = path == "/admin" || path.starts_with("/admin/");
    let mut res = next.run(req).await;
    if admin {
        let h = res.headers_mut();
        let set = |value| HeaderValue::from_static(value);
        h.insert(header::CONTENT_SECURITY_POLICY, set(CSP));
        h.insert(header::X_FRAME_OPTIONS, set("DENY"));
        h.insert(header::REFERRER_POLICY, set("same-origin"));
        h.insert(header::X_CONTENT_TYPE_OPTIONS, set("nosniff"));
        // Pages show notes and carry the CSRF token (the keys page, a new
        // secret): no-store keeps them out of every cache, the browser's
        // disk and back/forward cache included; no-cache would still store
        // them. `private` for caches that predate no-store. A response that
        // chose its own policy keeps it: the static files (public) and
        // downloads (private, no-cache: revalidated by ETag).
        h.entry(header::CACHE_CONTROL)
            .or_insert(set("private, no-store"));
    }
    res
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
