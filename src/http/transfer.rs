//! An attachment's bytes in and out: the streaming upload and its record,
//! and the download with `ETag`, conditional and range requests. Shared
//! by the API's handlers (`attachments.rs`) and the admin UI's upload form
//! and download links, so both obey the same limits and rules.

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use futures::{Stream, TryStreamExt};
use serde_json::json;
use uuid::Uuid;

use super::{
    etag,
    extract::parse_id,
    multipart::{self, Form},
    response::not_modified,
    state::AppState,
};
use crate::{
    domain::attachment::{
        self, Attachment, RangeRequest, StoredAttachment, content_disposition,
        normalize_content_type, parse_range, sanitize_filename,
    },
    domain::timestamp,
    http::error::{ApiError, ApiResult},
    queue::{JobKind, NewJob},
    store::StoreError,
};

/// 404 unless note `note_id` exists: checked before an upload is read.
pub async fn note_exists(state: &AppState, note_id: Uuid) -> ApiResult<()> {
    match state.store().get_note(note_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!("no note with id {note_id}"))),
    }
}

/// 413 before a byte is read when the declared `Content-Length` is past
/// `limit` (plus what a multipart body may carry besides the file). A body
/// without one is measured as it streams.
pub fn declared_length_fits(headers: &HeaderMap, limit: u64, is_multipart: bool) -> ApiResult<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let slack = if is_multipart { multipart::OVERHEAD } else { 0 };
    if declared.is_some_and(|n| n > limit.saturating_add(slack)) {
        return Err(ApiError::payload_too_large(limit));
    }
    Ok(())
}

/// A file in storage whose record is not written yet.
pub struct Received {
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

/// Streams a multipart `file` field to `key`.
pub async fn receive_field(
    state: &AppState,
    form: &Form,
    field: multer::Field<'static>,
    key: &str,
) -> ApiResult<Received> {
    let filename = sanitize_filename(field.file_name().unwrap_or_default());
    let content_type = normalize_content_type(field.content_type().map(|m| m.as_ref()));
    let (size, sha256) = store_bytes(state, key, form.stream(field)).await?;
    Ok(Received {
        filename,
        content_type,
        size,
        sha256,
    })
}

/// Writes the record of a stored file, removing the object if that
/// fails, and queues its text extraction.
pub async fn record(
    state: &AppState,
    note_id: Uuid,
    attachment_id: Uuid,
    key: String,
    received: Received,
) -> ApiResult<Attachment> {
    let stored = StoredAttachment {
        attachment: Attachment {
            id: attachment_id,
            note_id,
            filename: received.filename,
            content_type: received.content_type,
            size: received.size,
            sha256: received.sha256,
            created_at: timestamp::now(),
        },
        storage_key: key.clone(),
        search_text: String::new(),
    };
    let attachment = stored.attachment.clone();
    let extract = attachment::is_text_like(&attachment.content_type) && attachment.size > 0;
    if let Err(e) = state.store().create_attachment(stored).await {
        // The row was not written: the object must not outlive the request.
        state.blobs().delete_all(std::slice::from_ref(&key)).await;
        return Err(match e {
            StoreError::NotFound => {
                ApiError::not_found(format!("note {note_id} was deleted during the upload"))
            }
            e => e.into(),
        });
    }
    if extract {
        let job = NewJob::new(
            JobKind::ExtractText,
            json!({ "attachment_id": attachment_id }),
        );
        if let Err(e) = state.enqueue(job).await {
            // The upload itself succeeded; its text becomes searchable when
            // the next `reindex` job queues the extraction again.
            tracing::error!(error = %e, attachment = %attachment_id, "could not queue text extraction");
        }
    }
    Ok(attachment)
}

/// Streams to storage; returns (size, sha256). Text extraction happens
/// later, in an `extract_text` job.
pub(super) async fn store_bytes<S, E>(
    state: &AppState,
    key: &str,
    body: S,
) -> ApiResult<(u64, String)>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let written = state
        .blobs()
        .put_stream(key, body, state.settings().storage.max_upload_bytes)
        .await?;
    Ok((written.size, written.sha256))
}

pub(super) async fn find(state: &AppState, id: &str) -> ApiResult<StoredAttachment> {
    let id = parse_id(id, "attachment")?;
    state
        .store()
        .get_attachment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no attachment with id {id}")))
}

/// An attachment's bytes, streamed, with `ETag`, conditional and range
/// requests: for the API and the admin UI's download links alike.
pub async fn serve_content(state: &AppState, id: &str, headers: &HeaderMap) -> ApiResult<Response> {
    let stored = find(state, id).await?;
    let a = &stored.attachment;
    // Stored data is never trusted to be a valid header: a bad value
    // (a restored snapshot from elsewhere) must not take the process down.
    let tag = HeaderValue::from_str(&format!("\"{}\"", a.sha256))
        .unwrap_or_else(|_| HeaderValue::from_static("\"invalid\""));
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| etag::if_none_match(v, &a.sha256))
    {
        return Ok(not_modified(tag));
    }
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        a.size,
    );
    let (status, bytes) = match range {
        RangeRequest::Unsatisfiable => {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                format!("the attachment has {} bytes", a.size),
            )
            .with_header(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{}", a.size)).expect("digits"),
            ));
        }
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial(start, end) => (StatusCode::PARTIAL_CONTENT, Some(start..end + 1)),
    };
    let stream = state
        .blobs()
        .get(&stored.storage_key, bytes.clone())
        .await?;
    let length = bytes.as_ref().map_or(a.size, |r| r.end - r.start);

    let mut res = Response::new(Body::from_stream(stream.map_err(std::io::Error::other)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&a.content_type)
            .unwrap_or(HeaderValue::from_static(attachment::OCTET_STREAM)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ETAG, tag);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&content_disposition(&a.filename))
            .unwrap_or(HeaderValue::from_static("attachment")),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if let Some(r) = bytes {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end - 1, a.size))
                .expect("digits"),
        );
    }
    Ok(res)
}
