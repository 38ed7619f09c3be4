//! The admin UI's writing forms: a new note, a note's edit, a file upload.
//! Thin over the use-cases the API calls too (`service::notes`) and the
//! API's upload path (`transfer::{receive_field, record}`), so a form
//! obeys every rule the API does. A success redirects (303) to the note's
//! page; refused input comes back in its form, as typed, with the reason
//! and the status the API would give (400, 409, 413, 422).

use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect},
};
use futures::StreamExt;
use uuid::Uuid;

use super::{
    auth::{AdminUser, check_form, same_origin},
    pages::{Page, chrome, field, human_bytes, note_page, parse_id, read_only_refusal},
    views::{ErrorPage, NoteForm, render_status},
};
use crate::{
    domain::{
        attachment::{self, Attachment, storage_key},
        note::{MAX_NOTE_JSON_BYTES, Note, NoteDraft, NotePatch},
        validation::FieldError,
    },
    http::{
        error::ApiError,
        multipart::Form,
        state::AppState,
        transfer::{declared_length_fits, note_exists, receive_field, record},
    },
};

/// A note form's body. A 1 MiB note body is at most 3 MiB urlencoded
/// (`%XX` per byte), so the API's limit for a note as JSON fits it too.
pub const MAX_NOTE_FORM_BYTES: usize = MAX_NOTE_JSON_BYTES;

/// The note form's fields as typed.
struct Typed {
    title: String,
    tags: String,
    body: String,
}

impl Typed {
    fn from_form(form: &[u8]) -> Self {
        Self {
            title: field(form, "title"),
            tags: field(form, "tags"),
            // Browsers send a textarea's line breaks as CRLF (HTML's form
            // submission rules): stored as typed, every save through the
            // form would turn a note's LF line ends into CRLF.
            body: field(form, "body").replace("\r\n", "\n"),
        }
    }

    fn of(note: &Note) -> Self {
        Self {
            title: note.title.clone(),
            tags: note.tags.join(" "),
            body: note.body.clone(),
        }
    }

    /// Tags as people type them: separated by commas or spaces.
    fn tag_list(&self) -> Vec<String> {
        self.tags
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A refused form, to show again.
struct Refused {
    status: StatusCode,
    problem: String,
    errors: Vec<(&'static str, String)>,
}

impl Refused {
    fn new(status: StatusCode, problem: impl Into<String>) -> Self {
        Self {
            status,
            problem: problem.into(),
            errors: Vec::new(),
        }
    }

    /// The API's refusal of `typed` as a form's: each field's reason next
    /// to its input. `None` for what is not the input's fault (a 5xx, a
    /// note gone), which is an error page.
    fn from_api(e: &ApiError, typed: &Typed) -> Option<Self> {
        let p = e.problem();
        let status = StatusCode::from_u16(p.status).ok()?;
        if !status.is_client_error() || status == StatusCode::NOT_FOUND {
            return None;
        }
        let tags = typed.tag_list();
        let errors: Vec<_> = p.errors.iter().map(|f| input_error(f, &tags)).collect();
        let problem = if errors.is_empty() {
            sentence(p.detail.as_deref().unwrap_or("The form was refused"))
        } else {
            "Nothing was saved: correct what is marked below.".to_owned()
        };
        Some(Self {
            status,
            problem,
            errors,
        })
    }
}

/// A validation error as the input it belongs to and a sentence; a tag's
/// error names the tag, since the form has one input for all of them.
fn input_error(e: &FieldError, tags: &[String]) -> (&'static str, String) {
    let (input, label) = match e.field.as_str() {
        "title" => ("title", "Title".to_owned()),
        "body" => ("body", "Body".to_owned()),
        f if f.starts_with("tags[") => {
            let i = f[5..].trim_end_matches(']').parse::<usize>().ok();
            match i.and_then(|i| tags.get(i)) {
                Some(tag) => ("tags", format!("Tag “{tag}”")),
                None => ("tags", "A tag".to_owned()),
            }
        }
        f if f.starts_with("tags") => ("tags", "Tags".to_owned()),
        _ => ("title", "The note".to_owned()),
    };
    (input, sentence(&format!("{label}: {}", e.message)))
}

/// `text` with a capital and a full stop, as the pages write.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Reads a note form's urlencoded body, up to [`MAX_NOTE_FORM_BYTES`].
async fn read_form(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Refused> {
    let too_large = || {
        Refused::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Nothing was saved: the form is larger than {}. A note's title may have 500 \
                 characters and its body 1 MiB.",
                human_bytes(MAX_NOTE_FORM_BYTES as u64)
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_NOTE_FORM_BYTES as u64) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut form = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            Refused::new(
                StatusCode::BAD_REQUEST,
                "The form did not arrive whole. Try again.",
            )
        })?;
        if form.len() + chunk.len() > MAX_NOTE_FORM_BYTES {
            return Err(too_large());
        }
        form.extend_from_slice(&chunk);
    }
    Ok(form)
}

/// What a note form shows besides the fields.
#[derive(Default)]
struct Shown<'a> {
    /// The note edited (none: a new note).
    editing: Option<&'a Note>,
    /// The version the typed text is based on.
    version: i64,
    refused: Option<Refused>,
    /// On a conflict: the note as the other change left it.
    current: Option<Note>,
}

fn note_form(
    state: &AppState,
    user: &AdminUser,
    typed: Typed,
    shown: Shown<'_>,
) -> axum::response::Response {
    let (status, problem, errors) = match shown.refused {
        Some(r) => (r.status, Some(r.problem), r.errors),
        None => (StatusCode::OK, None, Vec::new()),
    };
    render_status(
        status,
        &NoteForm {
            c: chrome(state, user, "notes"),
            editing: shown.editing.map(|n| (n.id, n.title.clone())),
            version: shown.version,
            title: typed.title,
            tags: typed.tags,
            body: typed.body,
            problem,
            errors,
            current: shown.current,
        },
    )
}

pub async fn new_note(State(state): State<AppState>, user: AdminUser) -> Page {
    read_only_refusal(&state)?;
    Ok(note_form(
        &state,
        &user,
        Typed::from_form(b""),
        Shown::default(),
    ))
}

pub async fn create_note(
    State(state): State<AppState>,
    user: AdminUser,
    headers: HeaderMap,
    body: Body,
) -> Page {
    read_only_refusal(&state)?;
    same_origin(&headers)?;
    let form = match read_form(&headers, body).await {
        Ok(form) => form,
        Err(refused) => {
            let shown = Shown {
                refused: Some(refused),
                ..Shown::default()
            };
            return Ok(note_form(&state, &user, Typed::from_form(b""), shown));
        }
    };
    check_form(&headers, &field(&form, "csrf"), &user.csrf)?;
    let typed = Typed::from_form(&form);
    let draft = NoteDraft {
        title: typed.title.clone(),
        body: typed.body.clone(),
        tags: typed.tag_list(),
        external_id: None,
        metadata: None,
    };
    match state
        .notes()
        .create(draft, &user.principal.actor())
        .await
        .map_err(ApiError::from)
    {
        Ok(note) => {
            tracing::info!(note_id = %note.id, "admin UI: note created");
            Ok(Redirect::to(&format!("/admin/notes/{}?created=1", note.id)).into_response())
        }
        Err(e) => match Refused::from_api(&e, &typed) {
            Some(refused) => {
                let shown = Shown {
                    refused: Some(refused),
                    ..Shown::default()
                };
                Ok(note_form(&state, &user, typed, shown))
            }
            None => Err(e.into()),
        },
    }
}

async fn stored_note(state: &AppState, id: Uuid) -> Result<Note, ErrorPage> {
    state
        .store()
        .get_note(id)
        .await
        .map_err(|e| ErrorPage::from_api(&e.into()))?
        .ok_or_else(|| ErrorPage::new(StatusCode::NOT_FOUND, "There is no such note."))
}

pub async fn edit_note(
    State(state): State<AppState>,
    user: AdminUser,
    Path(id): Path<String>,
) -> Page {
    read_only_refusal(&state)?;
    let note = stored_note(&state, parse_id(&id, "note")?).await?;
    let shown = Shown {
        editing: Some(&note),
        version: note.version,
        ..Shown::default()
    };
    Ok(note_form(&state, &user, Typed::of(&note), shown))
}

pub async fn save_note(
    State(state): State<AppState>,
    user: AdminUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Page {
    read_only_refusal(&state)?;
    same_origin(&headers)?;
    let id = parse_id(&id, "note")?;
    let form = match read_form(&headers, body).await {
        Ok(form) => form,
        Err(refused) => {
            // What was typed is lost with the body; the form starts again
            // from the note as stored.
            let note = stored_note(&state, id).await?;
            let shown = Shown {
                editing: Some(&note),
                version: note.version,
                refused: Some(refused),
                current: None,
            };
            return Ok(note_form(&state, &user, Typed::of(&note), shown));
        }
    };
    check_form(&headers, &field(&form, "csrf"), &user.csrf)?;
    let typed = Typed::from_form(&form);
    let version = field(&form, "version").parse::<i64>().ok();
    let saved = match version {
        Some(version) => {
            let patch = NotePatch {
                title: Some(Some(typed.title.clone())),
                body: Some(Some(typed.body.clone())),
                tags: Some(Some(typed.tag_list())),
                ..NotePatch::default()
            };
            // The version the form was opened on: a change made since is
            // a conflict (412 from the API), never overwritten unseen.
            let opened_on = move |current: i64| current == version;
            state
                .notes()
                .patch(id, &patch, Some(&opened_on), &user.principal.actor())
                .await
                .map_err(ApiError::from)
        }
        None => Err(ApiError::bad_request(
            "the form did not say which version of the note it edits; your text is below: save it again",
        )),
    };
    let e = match saved {
        Ok(note) => {
            tracing::info!(note_id = %note.id, version = note.version, "admin UI: note saved");
            return Ok(Redirect::to(&format!("/admin/notes/{id}?saved=1")).into_response());
        }
        Err(e) => e,
    };
    let Some(mut refused) = Refused::from_api(&e, &typed) else {
        return Err(e.into());
    };
    let note = stored_note(&state, id).await?;
    let mut shown = Shown {
        editing: Some(&note),
        version: version.unwrap_or(note.version),
        refused: None,
        current: None,
    };
    if e.problem().status == StatusCode::PRECONDITION_FAILED.as_u16() {
        // Shown side by side with the typed text, which now applies to
        // the current version: saving again is a choice made knowingly.
        refused = Refused::new(
            StatusCode::CONFLICT,
            format!(
                "Nothing was saved: this note was changed by someone else while you edited it \
                 (you started from version {}, it is now at version {}). The note as it is now is \
                 shown below, and your text is kept in the form: save again to replace theirs \
                 with yours.",
                shown.version, note.version
            ),
        );
        shown.version = note.version;
        shown.current = Some(note.clone());
    }
    shown.refused = Some(refused);
    Ok(note_form(&state, &user, typed, shown))
}

/// Why an upload did not store a file.
enum UploadRefused {
    /// The form's token or origin: the error page, as for every form.
    Form(ErrorPage),
    Api(ApiError),
}

impl From<ApiError> for UploadRefused {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

/// `POST /admin/notes/{id}/attachments`: the upload form, streamed to
/// storage as the API's upload is, up to `NOTES_MAX_UPLOAD_BYTES`.
pub async fn upload(
    State(state): State<AppState>,
    user: AdminUser,
    Path(id): Path<String>,
    request: Request,
) -> Page {
    read_only_refusal(&state)?;
    let headers = request.headers().clone();
    same_origin(&headers)?;
    let note_id = parse_id(&id, "note")?;
    let e = match receive(&state, &user, note_id, &headers, request.into_body()).await {
        Ok(a) => {
            tracing::info!(note_id = %note_id, attachment_id = %a.id, size = a.size, "admin UI: file uploaded");
            return Ok(Redirect::to(&format!("/admin/notes/{note_id}?uploaded=1")).into_response());
        }
        Err(UploadRefused::Form(page)) => return Err(page),
        Err(UploadRefused::Api(e)) => e,
    };
    let p = e.problem();
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !matches!(p.status, 400 | 413 | 422) {
        return Err(ErrorPage::from_api(&e));
    }
    let why = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "The file is larger than the limit of {}: nothing was kept.",
            human_bytes(state.settings().storage.max_upload_bytes)
        )
    } else if !p.errors.is_empty() {
        let reasons: Vec<String> = p.errors.iter().map(|e| sentence(&e.message)).collect();
        reasons.join(" ")
    } else {
        sentence(&format!(
            "The upload was refused: {}",
            p.detail.unwrap_or_default()
        ))
    };
    note_page(&state, &user, note_id, None, Some(why), status).await
}

/// Reads the upload form: its token first, checked before a byte of the
/// file is stored, then its `file`, streamed to storage and recorded.
async fn receive(
    state: &AppState,
    user: &AdminUser,
    note_id: Uuid,
    headers: &HeaderMap,
    body: Body,
) -> Result<Attachment, UploadRefused> {
    note_exists(state, note_id).await?;
    let limit = state.settings().storage.max_upload_bytes;
    declared_length_fits(headers, limit, true)?;
    let mut form = Form::new(headers, body, limit)?;
    // The page puts the token before the file input, and browsers send
    // fields in page order: a form whose first field is not the token is
    // refused before its file is read.
    let token = match form.next_field().await? {
        Some(f) if f.name() == Some("csrf") => form.text(f).await?,
        _ => String::new(),
    };
    check_form(headers, &token, &user.csrf).map_err(UploadRefused::Form)?;
    loop {
        let field = form.next_field().await?.ok_or_else(no_file)?;
        if field.name() != Some("file") {
            form.skip(field).await?;
            continue;
        }
        // A file input left empty still sends its field, named "".
        if field.file_name().is_none_or(str::is_empty) {
            return Err(no_file().into());
        }
        let attachment_id = attachment::new_id();
        let key = storage_key(note_id, attachment_id);
        let received = receive_field(state, &form, field, &key).await?;
        return Ok(record(state, note_id, attachment_id, key, received).await?);
    }
}

fn no_file() -> ApiError {
    ApiError::validation(vec![FieldError::new("file", "choose a file to upload")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_on_commas_and_spaces() {
        let typed = Typed {
            title: String::new(),
            tags: " work, k8s,,ops\tnew\nline ".into(),
            body: String::new(),
        };
        assert_eq!(typed.tag_list(), ["work", "k8s", "ops", "new", "line"]);
    }

    #[test]
    fn textarea_line_breaks_are_stored_as_lf() {
        let typed = Typed::from_form(b"title=t&body=one%0D%0Atwo%0D%0A%0D%0Athree%0Afour");
        assert_eq!(typed.body, "one\ntwo\n\nthree\nfour");
    }

    #[test]
    fn a_field_error_names_its_input_and_the_tag() {
        let tags = vec!["ok".to_owned(), "<b>".to_owned()];
        let e = FieldError::new("tags[1]", "must be 1 to 64 of a-z");
        assert_eq!(
            input_error(&e, &tags),
            ("tags", "Tag “<b>”: must be 1 to 64 of a-z.".to_owned())
        );
        let e = FieldError::new("title", "must not be blank");
        assert_eq!(
            input_error(&e, &tags),
            ("title", "Title: must not be blank.".to_owned())
        );
        let e = FieldError::new("tags", "at most 64 tags (got 65)");
        assert_eq!(input_error(&e, &tags).0, "tags");
    }
}
