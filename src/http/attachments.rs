//! Attachments: bytes stream to object storage (sha256 computed on the way),
//! metadata goes to the store only once the object is complete.

use axum::{
    Json,
    body::Body,
    extract::{Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{Stream, TryStreamExt};
use serde::Deserialize;
use utoipa::{
    IntoParams, PartialSchema, ToSchema,
    openapi::{ObjectBuilder, RefOr, Schema, Type},
};
use uuid::Uuid;

use super::{
    etag,
    extract::{ApiQuery, Auth, Read, Write, media_type, parse_id},
    multipart::{self, Form},
    response::not_modified,
    state::AppState,
};
use crate::{
    domain::attachment::{
        self, Attachment, RangeRequest, StoredAttachment, content_disposition,
        normalize_content_type, parse_range, sanitize_filename, storage_key,
    },
    domain::{timestamp, validation::FieldError},
    http::error::{ApiError, ApiResult, Problem},
    queue::{JobKind, NewJob},
    store::StoreError,
};
use serde_json::json;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// File name of a raw-body upload (required for one; a multipart
    /// upload carries its own).
    #[param(required = true, min_length = 1)]
    pub filename: Option<String>,
}

/// A file's bytes, sent as they are.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
#[allow(dead_code)]
pub struct FileBytes(Vec<u8>);

/// The OpenAPI shape of a multipart upload (the handler reads the stream
/// itself).
pub struct UploadForm;

impl PartialSchema for UploadForm {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The file's name and type come from its part's `Content-Disposition` and \
                 `Content-Type`. Other fields are ignored.",
            ))
            .property("file", FileBytes::schema())
            .required("file")
            .into()
    }
}

impl ToSchema for UploadForm {}

/// Upload an attachment: `multipart/form-data` (field `file`) or a raw body.
#[utoipa::path(post, path = "/api/v1/notes/{id}/attachments", tag = "attachments",
    params(("id" = String, Path, description = "Note id"), UploadParams),
    // Optional: an empty body is an empty file, which is a file.
    request_body(content((FileBytes = "application/octet-stream"), (UploadForm = "multipart/form-data")),
        description = "The file as the raw body (with `?filename=`; none is an empty file), or multipart/form-data with a `file` field"),
    responses((status = 201, body = Attachment), (status = 404, body = Problem), (status = 413, body = Problem),
              (status = 422, body = Problem), (status = 503, body = Problem, description = "Object storage unavailable")),
    security(("bearer" = ["write"])))]
pub async fn upload(
    State(state): State<AppState>,
    _: Auth<Write>,
    Path(note_id): Path<String>,
    ApiQuery(params): ApiQuery<UploadParams>,
    request: Request,
) -> ApiResult<Response> {
    let note_id = parse_id(&note_id, "note")?;
    // Refuse before reading a byte when the note or the size is wrong.
    note_exists(&state, note_id).await?;
    let limit = state.config().max_upload_bytes;
    let headers = request.headers().clone();
    let is_multipart =
        media_type(headers.get(header::CONTENT_TYPE)).as_deref() == Some("multipart/form-data");
    declared_length_fits(&headers, limit, is_multipart)?;

    let attachment_id = attachment::new_id();
    let key = storage_key(note_id, attachment_id);
    let received = if is_multipart {
        let mut form = Form::new(&headers, request.into_body(), limit)?;
        loop {
            let field = form
                .next_field()
                .await?
                .ok_or_else(|| missing("file", "a multipart upload needs a `file` field"))?;
            if field.name() == Some("file") {
                break receive_field(&state, &form, field, &key).await?;
            }
            form.skip(field).await?;
        }
    } else {
        let filename = params
            .filename
            .as_deref()
            .filter(|f| !f.is_empty())
            .map(sanitize_filename)
            .ok_or_else(|| missing("filename", "a raw upload needs ?filename="))?;
        let content_type = normalize_content_type(
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        let body = request.into_body().into_data_stream();
        let (size, sha256) = store_bytes(&state, &key, body).await?;
        Received {
            filename,
            content_type,
            size,
            sha256,
        }
    };
    let attachment = record(&state, note_id, attachment_id, key, received).await?;
    let location =
        HeaderValue::from_str(&format!("/api/v1/attachments/{attachment_id}")).expect("uuid path");
    let mut res = (StatusCode::CREATED, Json(attachment)).into_response();
    res.headers_mut().insert(header::LOCATION, location);
    Ok(res)
}

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
async fn store_bytes<S, E>(state: &AppState, key: &str, body: S) -> ApiResult<(u64, String)>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let written = state
        .blobs()
        .put_stream(key, body, state.config().max_upload_bytes)
        .await?;
    Ok((written.size, written.sha256))
}

fn missing(field: &str, message: &str) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, message)])
}

pub const DEFAULT_ATTACHMENT_PAGE: u32 = 100;
pub const MAX_ATTACHMENT_PAGE: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttachmentListParams {
    /// 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `after` of the previous page's `Link: rel="next"`: the id of its last attachment.
    #[param(format = Uuid)]
    pub after: Option<String>,
}

/// A note's attachments, in upload order, a page at a time. The body stays
/// an array; when more follow, `Link: <…>; rel="next"` (RFC 8288) names
/// the next page.
#[utoipa::path(get, path = "/api/v1/notes/{id}/attachments", operation_id = "list_attachments", tag = "attachments",
    params(("id" = String, Path, description = "Note id"), AttachmentListParams),
    responses((status = 200, body = Vec<Attachment>, description = "`Link: <…>; rel=\"next\"` when more follow"),
              (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(note_id): Path<String>,
    ApiQuery(params): ApiQuery<AttachmentListParams>,
) -> ApiResult<Response> {
    let note_id = parse_id(&note_id, "note")?;
    let limit = params.limit.unwrap_or(DEFAULT_ATTACHMENT_PAGE);
    if !(1..=MAX_ATTACHMENT_PAGE).contains(&limit) {
        return Err(missing(
            "limit",
            &format!("must be 1 to {MAX_ATTACHMENT_PAGE}"),
        ));
    }
    let after = params
        .after
        .as_deref()
        .map(|a| Uuid::parse_str(a).map_err(|_| missing("after", "must be an attachment id")))
        .transpose()?;
    if state.store().get_note(note_id).await?.is_none() {
        return Err(ApiError::not_found(format!("no note with id {note_id}")));
    }
    let mut items = state
        .store()
        .list_attachments(note_id, after, limit + 1)
        .await?;
    let next = (items.len() > limit as usize).then(|| {
        items.truncate(limit as usize);
        items.last().map(|a| a.id)
    });
    let mut res = Json(items).into_response();
    if let Some(Some(last)) = next {
        let link = format!(
            "</api/v1/notes/{note_id}/attachments?limit={limit}&after={last}>; rel=\"next\""
        );
        res.headers_mut().insert(
            header::LINK,
            HeaderValue::from_str(&link).expect("ids and digits are a valid header"),
        );
    }
    Ok(res)
}

async fn find(state: &AppState, id: &str) -> ApiResult<StoredAttachment> {
    let id = parse_id(id, "attachment")?;
    state
        .store()
        .get_attachment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no attachment with id {id}")))
}

/// Attachment metadata.
#[utoipa::path(get, path = "/api/v1/attachments/{id}", operation_id = "get_attachment", tag = "attachments",
    params(("id" = String, Path, description = "Attachment id")),
    responses((status = 200, body = Attachment), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn get(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<Attachment>> {
    Ok(Json(find(&state, &id).await?.attachment))
}

/// The attachment's bytes, streamed; honours `Range` and `If-None-Match`.
#[utoipa::path(get, path = "/api/v1/attachments/{id}/content", tag = "attachments",
    params(("id" = String, Path, description = "Attachment id"),
           ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream"),
              (status = 206, description = "The requested range"), (status = 304),
              (status = 404, body = Problem), (status = 416, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn content(
    State(state): State<AppState>,
    _: Auth<Read>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve_content(&state, &id, &headers).await
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

/// Delete an attachment and its object.
#[utoipa::path(delete, path = "/api/v1/attachments/{id}", operation_id = "delete_attachment", tag = "attachments",
    params(("id" = String, Path, description = "Attachment id")),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = ["write"])))]
pub async fn delete(
    State(state): State<AppState>,
    _: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let uuid: Uuid = parse_id(&id, "attachment")?;
    let key = state
        .store()
        .delete_attachment(uuid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no attachment with id {uuid}")))?;
    state.searchable().await;
    state.blobs().delete_all(&[key]).await;
    Ok(StatusCode::NO_CONTENT)
}
