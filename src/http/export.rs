//! GET /api/v1/export: every note (or a tag's) as a zip, streamed as it is
//! written (`export`). The first page of notes is read before the answer,
//! so a database that is down is a 503; after the headers, a failure cuts
//! the body off instead of ending it, so no client takes a broken export
//! for a complete one.

use axum::{
    Extension,
    body::Body,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use tracing::Instrument;
use utoipa::IntoParams;

use super::{
    error::{ApiError, ApiResult, Problem},
    extract::{ApiQuery, Auth, Read},
    shed::StreamSlot,
    state::AppState,
};
use crate::{
    domain::{note::normalize_tag_filter, timestamp},
    export::{self, Export, Format, Options, ZipSink},
    progress::display::{self, Mode},
};

/// Chunks of the zip in flight between the writer and the connection.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A zip's bytes, as the OpenAPI document describes the answer.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary, content_media_type = "application/zip")]
#[allow(dead_code)]
pub struct ZipBytes(Vec<u8>);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `markdown` (default): a vault of `.md` files with YAML front matter;
    /// `ndjson`: `notes.ndjson`, one note a line as ingest reads it.
    #[param(inline)]
    pub format: Option<Format>,
    /// Only notes with this tag.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub tag: Option<String>,
}

/// Export every note outside the trash (or those with `tag`) as a zip:
/// an Obsidian vault or NDJSON, with the attachments (`docs/export.md`).
#[utoipa::path(get, path = "/api/v1/export", operation_id = "export_notes", tag = "export",
    params(ExportParams),
    responses(
        (status = 200, description = "A zip, streamed (no Content-Length); \
            `notes-api-export.json` is its last entry. A failure after the headers cuts the body off.",
            content_type = "application/zip", body = ZipBytes),
        (status = 422, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn export(
    State(state): State<AppState>,
    _: Auth<Read>,
    ApiQuery(params): ApiQuery<ExportParams>,
    slot: Option<Extension<StreamSlot>>,
) -> ApiResult<Response> {
    let tag = params
        .tag
        .as_deref()
        .map(normalize_tag_filter)
        .transpose()
        .map_err(|e| ApiError::validation(vec![e]))?;
    let format = params.format.unwrap_or_default();
    let options = Options {
        format,
        tag: tag.clone(),
        spool_dir: state.settings().server.data_dir.join("spool"),
    };
    let export = Export::begin(state.store().clone(), state.blobs().clone(), options).await?;
    let spool = export::spool_file(&export.options().spool_dir)
        .await
        .map_err(|e| ApiError::from(export::ExportError::from(e)))?;

    let held = slot.and_then(|Extension(s)| s.take());
    let (writer, abort, body) = export::pipe(CHUNKS_IN_FLIGHT);
    // A long export says how far it got in the server's log.
    let shown = display::show(
        export.progress(),
        Mode::Log(state.settings().telemetry.progress_every),
    );
    let task = async move {
        let _held = held;
        let mut sink = ZipSink::new(writer, spool);
        let written = export.write(&mut sink).await;
        shown.finish().await;
        match written {
            Ok(summary) => tracing::info!(
                format = format.as_str(),
                notes = summary.notes,
                attachments = summary.attachments,
                bytes = summary.attachment_bytes,
                missing = summary.missing_attachments,
                "export sent"
            ),
            Err(e) if e.is_disconnect() => {
                tracing::info!("export stopped: the client went away");
            }
            Err(e) => {
                tracing::error!(error = %e, "export failed part-way; its body is cut off");
                abort.fail(std::io::Error::other(e.to_string())).await;
            }
        }
    };
    // The request's span (its id) goes with the body's writer.
    tokio::spawn(task.instrument(tracing::Span::current()));

    let name = format!(
        "notes-{}{}-{}.zip",
        format.as_str(),
        tag.map(|t| format!("-{t}")).unwrap_or_default(),
        timestamp::now().format("%Y%m%dT%H%M%SZ")
    );
    let mut res = Body::from_stream(body).into_response();
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    // The name is ASCII by construction (a tag is [a-z0-9._-]).
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
            .expect("an ASCII file name"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
