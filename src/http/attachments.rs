//! Attachments: bytes stream to object storage (sha256 computed on the way),
//! metadata goes to the store only once the object is complete.

use axum::{
    Json,
    extract::{Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::{
    IntoParams, PartialSchema, ToSchema,
    openapi::{ObjectBuilder, RefOr, Schema, Type},
};
use uuid::Uuid;

use super::{
    extract::{ApiQuery, Auth, Read, Write, media_type, parse_id},
    multipart::Form,
    state::AppState,
    transfer::{
        self, Received, declared_length_fits, find, note_exists, receive_field, record, store_bytes,
    },
};
use crate::{
    domain::attachment::{
        self, Attachment, normalize_content_type, sanitize_filename, storage_key,
    },
    domain::validation::FieldError,
    http::error::{ApiError, ApiResult, Problem},
};

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
    let limit = state.settings().storage.max_upload_bytes;
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
    transfer::serve_content(&state, &id, &headers).await
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
