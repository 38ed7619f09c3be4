//! POST /api/v1/import: a zip (a Markdown folder, an Obsidian vault, a
//! notes-api export) streamed into object storage as it arrives, then
//! read by an `import` job (`jobs::import`), which reports its progress in
//! its `result`. The handler only stages and queues: everything a file
//! means is `crate::import`'s.

use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::json;
use utoipa::{
    IntoParams, PartialSchema, ToSchema,
    openapi::{ObjectBuilder, RefOr, Schema, Type},
};
use uuid::Uuid;

use super::{
    error::{ApiError, ApiResult, Problem},
    export::ZipBytes,
    extract::{Admin, ApiQuery, Auth, media_type},
    multipart::Form,
    state::AppState,
    transfer::declared_length_fits,
};
use crate::{
    domain::{note::normalize_tag_filter, validation::FieldError},
    import::Format,
    jobs::import::staged_key,
    queue::{Job, JobKind, NewJob},
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// `auto` (default: an NDJSON export when the zip has `notes.ndjson`,
    /// else Markdown), `markdown`, `obsidian` or `ndjson`.
    #[param(pattern = "^(auto|markdown|obsidian|ndjson)$")]
    pub format: Option<String>,
    /// A tag added to every imported note.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub tag: Option<String>,
    /// `true`: each note is also tagged with its folder (`Projects/2024`
    /// becomes `projects.2024`); it is kept in `metadata.path` either way.
    pub folder_tags: Option<bool>,
}

/// The OpenAPI shape of a multipart import.
pub struct ImportForm;

impl PartialSchema for ImportForm {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The zip as the `file` field; other fields are ignored.",
            ))
            .property("file", ZipBytes::schema())
            .required("file")
            .into()
    }
}

impl ToSchema for ImportForm {}

/// The zip's first bytes: a local file header, or the end record of an
/// empty zip.
const ZIP_MAGIC: [&[u8; 4]; 2] = [b"PK\x03\x04", b"PK\x05\x06"];

/// Import a zip: a Markdown folder, an Obsidian vault or a notes-api export
/// (`docs/export.md`). Streamed to storage, then read by an `import` job:
/// its `result` reports `done`, `total`, `created`, `updated`, `unchanged`,
/// `skipped` and `errors` while it runs. Importing the same zip again
/// changes nothing.
#[utoipa::path(post, path = "/api/v1/import", operation_id = "import_notes", tag = "export",
    params(ImportParams),
    request_body(content((ZipBytes = "application/zip"), (ImportForm = "multipart/form-data")),
        description = "The zip as the raw body, or multipart/form-data with a `file` field"),
    responses(
        (status = 202, body = Job, description = "Staged and queued; `Location` names the `import` job"),
        (status = 403, body = Problem, description = "The key lacks the admin scope"),
        (status = 413, body = Problem, description = "Over NOTES_IMPORT_MAX_BYTES"),
        (status = 415, body = Problem, description = "Neither application/zip nor multipart/form-data"),
        (status = 422, body = Problem, description = "Not a zip file, or a bad parameter"),
        (status = 503, body = Problem, description = "Object storage unavailable")),
    security(("bearer" = ["admin"])))]
pub async fn import(
    State(state): State<AppState>,
    _: Auth<Admin>,
    ApiQuery(params): ApiQuery<ImportParams>,
    request: Request,
) -> ApiResult<Response> {
    let format = params
        .format
        .as_deref()
        .map(str::parse::<Format>)
        .transpose()
        .map_err(|e| ApiError::validation(vec![FieldError::new("format", e)]))?;
    let tag = params
        .tag
        .as_deref()
        .map(normalize_tag_filter)
        .transpose()
        .map_err(|e| ApiError::validation(vec![e]))?;
    let limit = state.settings().limits.import_max_bytes;
    let headers = request.headers().clone();
    let media = media_type(headers.get(header::CONTENT_TYPE));
    let is_multipart = match media.as_deref() {
        Some("multipart/form-data") => true,
        Some("application/zip" | "application/x-zip-compressed") => false,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the zip as application/zip, or as the `file` field of multipart/form-data",
            ));
        }
    };
    declared_length_fits(&headers, limit, is_multipart)?;

    let upload = Uuid::now_v7();
    let key = staged_key(upload);
    let blobs = state.blobs();
    if is_multipart {
        let mut form = Form::new(&headers, request.into_body(), limit)?;
        loop {
            let field = form.next_field().await?.ok_or_else(|| {
                ApiError::validation(vec![FieldError::new(
                    "file",
                    "a multipart import needs a `file` field",
                )])
            })?;
            if field.name() == Some("file") {
                blobs.put_stream(&key, form.stream(field), limit).await?;
                break;
            }
            form.skip(field).await?;
        }
    } else {
        let body = request.into_body().into_data_stream();
        blobs.put_stream(&key, body, limit).await?;
    }
    // Checked once stored, from its first bytes: anything else would only
    // fail later, in a job.
    let head: Vec<u8> = match blobs.get(&key, Some(0..4)).await {
        Ok(s) => s
            .map_ok(|b| b.to_vec())
            .try_concat()
            .await
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    if !ZIP_MAGIC.iter().any(|m| head.as_slice() == m.as_slice()) {
        blobs.delete_all(std::slice::from_ref(&key)).await;
        return Err(ApiError::validation(vec![FieldError::new(
            "file",
            "not a zip file",
        )]));
    }
    let job = NewJob::new(
        JobKind::Import,
        json!({
            "upload": upload,
            "format": format.map(|f| serde_json::to_value(f).expect("a format serializes")),
            "tag": tag,
            "folder_tags": params.folder_tags.unwrap_or(false),
        }),
    );
    let job = match state.enqueue(job).await {
        Ok(job) => job,
        Err(e) => {
            blobs.delete_all(std::slice::from_ref(&key)).await;
            return Err(e.into());
        }
    };
    let location = HeaderValue::from_str(&format!("/api/v1/jobs/{}", job.id)).expect("uuid path");
    let mut res = (StatusCode::ACCEPTED, Json(job)).into_response();
    res.headers_mut().insert(header::LOCATION, location);
    Ok(res)
}
