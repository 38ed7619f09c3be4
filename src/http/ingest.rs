//! POST /api/v1/ingest: the body is written to an unnamed file on disk as
//! it arrives, then, in an ingest slot, read back through a validating
//! reader on a blocking thread; nothing touches the database until every
//! line is valid. A client that sends slowly therefore holds no ingest slot
//! and no memory.

use std::{
    io::{BufReader, Seek},
    path::Path,
    time::Instant,
};

use axum::{
    Extension, Json,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{
    extract::{Auth, Write, media_type},
    shed::IngestTurn,
    state::AppState,
};
use crate::{
    domain::{
        ingest::{BatchError, Format, IngestReport, read_batch_of_at_most},
        timestamp,
    },
    http::error::{ApiError, ApiResult, Problem},
};

const READ_BUFFER: usize = 256 * 1024;
/// Batches this large free enough to be worth a `malloc_trim`.
const TRIM_AFTER_NOTES: u64 = 1000;

/// Ingest a batch of notes (NDJSON or a JSON array), all or nothing.
#[utoipa::path(post, path = "/api/v1/ingest", tag = "ingest",
    // JSON first: a generator that cannot write NDJSON (openapi-python-client)
    // still gets a typed body for the operation.
    request_body(content((Vec<crate::domain::note::NoteDraft> = "application/json"),
                         (Vec<crate::domain::note::NoteDraft> = "application/x-ndjson")),
        description = "A JSON array of notes, or NDJSON (one note per line; also `application/ndjson`, \
            `application/jsonl`). Notes with an `external_id` are upserted."),
    responses((status = 200, body = IngestReport),
              (status = 413, body = Problem), (status = 415, body = Problem),
              (status = 507, body = Problem, description = "The batch could not be staged on the server's disk; nothing was written"),
              (status = 400, body = Problem, description = "Some line (or the array) is not JSON: every bad line, as `errors[].line`; nothing was written"),
              (status = 422, body = Problem, description = "Every bad line, as `errors[].line`; nothing was written")),
    security(("bearer" = ["write"])))]
pub async fn ingest(
    State(state): State<AppState>,
    who: Auth<Write>,
    Extension(turn): Extension<IngestTurn>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<IngestReport>> {
    let started = Instant::now();
    let format = match media_type(headers.get(header::CONTENT_TYPE)).as_deref() {
        Some(
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines",
        ) => Format::Ndjson,
        Some("application/json") => Format::JsonArray,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send application/x-ndjson (one note per line) or application/json (an array of notes)",
            ));
        }
    };
    let limit = state.settings().limits.max_ingest_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::payload_too_large(limit));
    }

    let file = match spool(
        body,
        &state.settings().server.data_dir.join(SPOOL_DIR),
        limit,
    )
    .await
    {
        Ok(file) => file,
        Err(Spool::TooLarge) => return Err(ApiError::payload_too_large(limit)),
        Err(Spool::Body(e)) => {
            tracing::info!(error = %e, "ingest body could not be read");
            return Err(ApiError::bad_request(
                "the request body could not be read to its end",
            ));
        }
        Err(Spool::Disk(e)) => {
            tracing::error!(error = %e, "ingest batch could not be written to disk");
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient-storage",
                "the batch could not be staged on this server's disk; nothing was written",
            ));
        }
    };
    let _slot = turn.work().await?;
    let max_notes = usize::try_from(state.settings().limits.max_ingest_notes).unwrap_or(usize::MAX);
    let batch = tokio::task::spawn_blocking(move || {
        read_batch_of_at_most(
            BufReader::with_capacity(READ_BUFFER, file),
            format,
            max_notes,
        )
    })
    .await
    .map_err(|_| ApiError::internal())?;

    let batch = match batch {
        Ok(batch) => batch,
        Err(BatchError::TooMany { limit }) => {
            let _ = tokio::task::spawn_blocking(crate::alloc::release_freed).await;
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                format!(
                    "a batch may hold at most {limit} notes (NOTES_MAX_INGEST_NOTES); send it in parts"
                ),
            ));
        }
        Err(BatchError::Io(e)) => {
            tracing::error!(error = %e, "a staged ingest batch could not be read back");
            return Err(ApiError::internal());
        }
        Err(BatchError::Invalid {
            errors,
            total,
            malformed,
        }) => {
            let detail = format!(
                "{total} problem(s) in the batch{}{}; nothing was written",
                if malformed {
                    ", some of it not JSON"
                } else {
                    ""
                },
                if total > errors.len() {
                    format!(", the first {} listed", errors.len())
                } else {
                    String::new()
                }
            );
            // The contract: text that is not JSON is 400, JSON of the
            // wrong shape 422; both name every bad line.
            let (status, slug) = if malformed {
                (StatusCode::BAD_REQUEST, "malformed-request")
            } else {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation-error")
            };
            return Err(ApiError::new(status, slug, detail).with_errors(errors));
        }
    };
    let received = batch.notes.len() as u64;
    let actor = who.0.actor();
    let notes = batch.notes.into_iter().map(|n| n.by(&actor)).collect();
    let counts = state.store().ingest(notes).await;
    if received >= TRIM_AFTER_NOTES {
        // The batch is freed by now; give its memory back rather than
        // keep the peak for good.
        let _ = tokio::task::spawn_blocking(crate::alloc::release_freed).await;
    }
    let counts = counts?;
    state.searchable().await;
    metrics::counter!("notes_ingested_total").increment(received);
    Ok(Json(IngestReport {
        received,
        created: counts.created,
        updated: counts.updated,
        unchanged: counts.unchanged,
        took_ms: timestamp::elapsed_ms(started),
    }))
}

/// Where batches are staged, under the data directory: on disk, not in
/// `/tmp` (a memory-backed volume in the kit).
const SPOOL_DIR: &str = "spool";

enum Spool {
    /// More than the limit arrived, whatever Content-Length claimed
    /// (chunked bodies have none).
    TooLarge,
    Body(axum::Error),
    Disk(std::io::Error),
}

/// The body, written to an unnamed file in `dir` as it arrives and rewound.
/// The file has no name, so it goes with its last handle, even when the
/// process dies, and a refused batch leaves nothing behind.
async fn spool(body: Body, dir: &Path, limit: u64) -> Result<std::fs::File, Spool> {
    let dir = dir.to_owned();
    let file = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        tempfile::tempfile_in(&dir)
    })
    .await
    .map_err(|e| Spool::Disk(std::io::Error::other(e)))?
    .map_err(Spool::Disk)?;
    let mut file = tokio::fs::File::from_std(file);
    let mut data = body.into_data_stream();
    let mut seen: u64 = 0;
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(Spool::Body)?;
        seen += chunk.len() as u64;
        if seen > limit {
            return Err(Spool::TooLarge);
        }
        file.write_all(&chunk).await.map_err(Spool::Disk)?;
    }
    file.flush().await.map_err(Spool::Disk)?;
    let mut file = file.into_std().await;
    file.rewind().map_err(Spool::Disk)?;
    Ok(file)
}
