//! The admin UI's pages: one askama template each (`templates/admin/`),
//! rendered on the server. Everything interpolated is HTML-escaped by
//! askama; the one exception is a search snippet, which the snippet cutter
//! builds escaped, with `<mark>` as its only markup.

use askama::Template;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use crate::{
    domain::{
        attachment::Attachment,
        delivery::Delivery,
        keys::ApiKey,
        note::{Note, TrashedNote},
        revision::{Revision, RevisionDiff, RevisionSummary},
        webhook::Webhook,
    },
    http::error::ApiError,
    queue::Job,
    search::SearchHit,
    service::ServiceError,
};

/// What every page's frame shows: the navigation, the log-out form and
/// the development banner.
pub struct Chrome {
    pub active: &'static str,
    pub csrf: String,
    /// Development mode: no log-in, and a banner that says so.
    pub development: bool,
    /// Signed in (there is a session to end).
    pub signed_in: bool,
    /// Shows the keys page.
    pub master: bool,
    pub read_only: bool,
}

pub fn render(page: &impl Template) -> Response {
    render_status(StatusCode::OK, page)
}

pub fn render_status(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "admin page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>This page failed to render.</p>"),
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "admin/login.html")]
pub struct Login {
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/notes.html")]
pub struct Notes {
    pub c: Chrome,
    pub tag: String,
    pub notes: Vec<Note>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/search.html")]
pub struct Search {
    pub c: Chrome,
    pub q: String,
    pub tag: String,
    pub sort: String,
    pub created_after: String,
    pub created_before: String,
    pub attachments: String,
    /// The same search without its tag filter, when it has one.
    pub all_tags_href: Option<String>,
    pub facets: Vec<FacetLink>,
    pub hits: Vec<SearchHit>,
    pub total: u64,
    pub took_ms: u64,
    pub offset: u32,
    /// The next page, as a link.
    pub next: Option<String>,
}

/// A tag of the matches, with how many have it, linking to the same
/// search narrowed to it.
pub struct FacetLink {
    pub value: String,
    pub count: u64,
    pub href: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "admin/note.html")]
pub struct NoteDetail {
    pub c: Chrome,
    pub note: Note,
    pub metadata: String,
    pub attachments: Vec<Attachment>,
    pub more_attachments: bool,
    /// What the last form on it did (created, saved, uploaded).
    pub notice: Option<String>,
    /// Why an upload was refused, shown beside the upload form.
    pub upload_error: Option<String>,
    /// The largest file the upload form takes, for people.
    pub max_upload: String,
}

/// A webhook and its recent deliveries.
pub struct WebhookRow {
    pub webhook: Webhook,
    pub deliveries: Vec<Delivery>,
}

#[derive(Template)]
#[template(path = "admin/webhooks.html")]
pub struct WebhookList {
    pub c: Chrome,
    pub hooks: Vec<WebhookRow>,
    pub notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "admin/trash.html")]
pub struct TrashList {
    pub c: Chrome,
    pub notes: Vec<TrashedNote>,
    pub next: Option<String>,
    pub notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "admin/history.html")]
pub struct History {
    pub c: Chrome,
    pub note: Note,
    pub revisions: Vec<RevisionSummary>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/revision.html")]
pub struct RevisionDetail {
    pub c: Chrome,
    pub note: Note,
    pub revision: Revision,
    pub diff: RevisionDiff,
    pub metadata: String,
}

/// The form that creates a note (`editing: None`) or edits one.
#[derive(Template)]
#[template(path = "admin/note_form.html")]
pub struct NoteForm {
    pub c: Chrome,
    /// The note edited: its id and title as stored (the heading).
    pub editing: Option<(uuid::Uuid, String)>,
    /// The version the edit applies to.
    pub version: i64,
    /// The fields as typed (or as stored, on a fresh edit form).
    pub title: String,
    pub tags: String,
    pub body: String,
    /// Why the form was refused, in a sentence.
    pub problem: Option<String>,
    /// Each refused field: the id of its input and the reason.
    pub errors: Vec<(&'static str, String)>,
    /// On a conflict: the note as another change left it.
    pub current: Option<Note>,
}

impl NoteForm {
    /// The reasons given for one input, joined.
    pub fn error_for(&self, input: &str) -> Option<String> {
        let found: Vec<&str> = self
            .errors
            .iter()
            .filter(|(i, _)| *i == input)
            .map(|(_, m)| m.as_str())
            .collect();
        (!found.is_empty()).then(|| found.join(" "))
    }
}

#[derive(Template)]
#[template(path = "admin/jobs.html")]
pub struct Jobs {
    pub c: Chrome,
    pub status: String,
    pub kind: String,
    pub statuses: Vec<&'static str>,
    pub kinds: Vec<&'static str>,
    pub jobs: Vec<Job>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/job.html")]
pub struct JobDetail {
    pub c: Chrome,
    pub job: Job,
    pub args: String,
    pub result: String,
    pub notice: Option<String>,
    /// How far a job that reports its progress got (an import).
    pub progress: Option<Progress>,
}

/// `done` of `total`, and the counts beside them, from a job's result.
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub counts: Vec<(&'static str, u64)>,
}

impl Progress {
    /// From a result holding `done` and `total` (an import's report).
    pub fn of(result: &serde_json::Value) -> Option<Self> {
        let done = result.get("done")?.as_u64()?;
        let total = result.get("total")?.as_u64()?;
        let counts = [
            "created",
            "updated",
            "unchanged",
            "errors_total",
            "skipped_total",
        ]
        .into_iter()
        .filter_map(|k| Some((k.trim_end_matches("_total"), result.get(k)?.as_u64()?)))
        .collect();
        Some(Self {
            done,
            total,
            counts,
        })
    }
}

#[derive(Template)]
#[template(path = "admin/keys.html")]
pub struct Keys {
    pub c: Chrome,
    pub keys: Vec<ApiKey>,
    /// A key just created: its secret, shown this once.
    pub created: Option<(String, String)>,
    pub notice: Option<String>,
}

pub struct Figure {
    pub name: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "admin/system.html")]
pub struct System {
    pub c: Chrome,
    pub version: &'static str,
    pub git_sha: &'static str,
    pub environment: String,
    pub ready: bool,
    pub checks: Vec<(String, String)>,
    pub queue: Vec<(String, String)>,
    pub index: Vec<Figure>,
    /// A read-only process's dataset; empty otherwise.
    pub dataset: Vec<Figure>,
    pub figures: Vec<Figure>,
}

#[derive(Template)]
#[template(path = "admin/error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub title: String,
    pub detail: String,
}

impl ErrorPage {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            detail: detail.into(),
        }
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// The API's error as a page: a 5xx shows no internals, as in the API.
    pub fn from_api(e: &ApiError) -> Self {
        let p = e.problem();
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let detail = if status.is_server_error() {
            "The service could not answer. Try again in a moment.".to_owned()
        } else {
            p.detail.unwrap_or_default()
        };
        Self::new(status, detail)
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = render_status(status, &self);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

impl From<ApiError> for ErrorPage {
    fn from(e: ApiError) -> Self {
        Self::from_api(&e)
    }
}

impl From<ServiceError> for ErrorPage {
    fn from(e: ServiceError) -> Self {
        Self::from_api(&e.into())
    }
}
