//! The reference for `GET /healthz`: a bare axum server with the same tokio
//! runtime settings as notes-api (`#[tokio::main]`, the multi-threaded
//! runtime with one worker per available core) answering the same
//! `{"status":"ok"}` JSON body, with no middleware at all. The difference
//! between the two is what notes-api's layers (request id, span, metrics,
//! problem+json, read-only check, nosniff header, router size) cost.
//!
//! Usage: `hello [ADDR]` (default 127.0.0.1:8099).

use axum::{Json, Router, routing::get};
use serde::Serialize;

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz));
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    axum::serve(listener, app).await.expect("server failed");
}
