//! The admin UI's handlers: thin, over the same functions the API's
//! handlers use, so a page shows exactly what the API would answer.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, de::DeserializeOwned};

use super::{
    auth::{AdminUser, COOKIE, check_form, master_hash, same_origin},
    session::Holder,
    views::{
        Chrome, ErrorPage, FacetLink, Figure, JobDetail, Jobs, Keys, Login, NoteDetail, Notes,
        Search, System, render, render_status,
    },
};
use crate::{
    domain::keys::{KeyRequest, Principal, Scope, hash_key},
    http::{extract::principal_of, ready, state::AppState, transfer},
    queue::{JobKind, JobStatus},
    search::{self, SearchParams},
    service::{self, PageRequest},
};

pub(super) type Page = Result<Response, ErrorPage>;

const NOTES_PER_PAGE: u32 = 50;
const HITS_PER_PAGE: u32 = 20;
/// The attachments a note's page lists; past it, the API lists them all.
const ATTACHMENTS_SHOWN: u32 = 50;

pub(super) fn chrome(state: &AppState, user: &AdminUser, active: &'static str) -> Chrome {
    Chrome {
        active,
        csrf: user.csrf.clone(),
        development: matches!(user.principal, Principal::Development),
        signed_in: user.session.is_some(),
        master: user.is_master(),
        read_only: state.settings().server.read_only,
    }
}

/// The query string as `T`; a malformed one is a 400 page.
pub(super) fn query<T: DeserializeOwned + Default>(raw: Option<String>) -> Result<T, ErrorPage> {
    match raw {
        None => Ok(T::default()),
        Some(q) => serde_urlencoded::from_str(&q)
            .map_err(|_| ErrorPage::new(StatusCode::BAD_REQUEST, "The query string is malformed.")),
    }
}

/// Every value of `name` in an urlencoded form body.
pub(super) fn fields<'a>(body: &'a [u8], name: &'a str) -> impl Iterator<Item = String> + 'a {
    form_urlencoded::parse(body)
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub(super) fn field(body: &[u8], name: &str) -> String {
    fields(body, name).next().unwrap_or_default()
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

pub(super) fn read_only_refusal(state: &AppState) -> Result<(), ErrorPage> {
    if state.settings().server.read_only {
        Err(ErrorPage::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "This instance serves a read-only dataset: nothing can be changed.",
        ))
    } else {
        Ok(())
    }
}

pub async fn index() -> Redirect {
    Redirect::to("/admin/notes")
}

pub async fn login_page(State(state): State<AppState>) -> Response {
    if state.settings().server.master_key.is_none() {
        return Redirect::to("/admin/notes").into_response();
    }
    render(&Login { error: None })
}

fn login_refused(status: StatusCode, why: &str) -> Response {
    render_status(
        status,
        &Login {
            error: Some(why.to_owned()),
        },
    )
}

pub async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Page {
    if state.settings().server.master_key.is_none() {
        return Ok(Redirect::to("/admin/notes").into_response());
    }
    same_origin(&headers)?;
    let key = field(&body, "key");
    let key = key.trim();
    if key.is_empty() {
        return Ok(login_refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter a key.",
        ));
    }
    let holder = match principal_of(&state, key).await {
        Ok(Principal::Master) => Holder::Master {
            hash: master_hash(&state).unwrap_or_default(),
        },
        Ok(p) if p.has(Scope::Admin) => Holder::Key {
            hash: hash_key(key),
        },
        Ok(_) => {
            return Ok(login_refused(
                StatusCode::FORBIDDEN,
                "This key lacks the admin scope.",
            ));
        }
        Err(e) if e.problem().status == StatusCode::UNAUTHORIZED.as_u16() => {
            return Ok(login_refused(
                StatusCode::UNAUTHORIZED,
                "This key is invalid or has been revoked.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let id = state.admin_sessions().open(holder);
    tracing::info!("admin UI: signed in");
    let mut res = Redirect::to("/admin/notes").into_response();
    set_cookie(&mut res, &state, &id, 8 * 3600);
    Ok(res)
}

fn set_cookie(res: &mut Response, state: &AppState, value: &str, max_age: u64) {
    let secure = if state.settings().admin.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
}

pub async fn logout(
    State(state): State<AppState>,
    user: AdminUser,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    check_form(&headers, &field(&body, "csrf"), &user.csrf)?;
    let Some(id) = user.session else {
        return Ok(Redirect::to("/admin/notes").into_response());
    };
    state.admin_sessions().close(&id);
    let mut res = Redirect::to("/admin/login").into_response();
    set_cookie(&mut res, &state, "", 0);
    Ok(res)
}

#[derive(Default, Deserialize)]
pub struct NotesQuery {
    tag: Option<String>,
    cursor: Option<String>,
}

pub async fn notes(State(state): State<AppState>, user: AdminUser, RawQuery(q): RawQuery) -> Page {
    let q: NotesQuery = query(q)?;
    let tag = non_empty(q.tag);
    let cursor = non_empty(q.cursor);
    let page = PageRequest {
        limit: Some(NOTES_PER_PAGE),
        cursor: cursor.as_deref(),
    };
    let page = service::notes::page(state.store().as_ref(), tag.as_deref(), page).await?;
    Ok(render(&Notes {
        c: chrome(&state, &user, "notes"),
        tag: tag.unwrap_or_default(),
        notes: page.items,
        next: page.next_cursor,
    }))
}

#[derive(Default, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    tag: Option<String>,
    sort: Option<String>,
    /// Dates (`YYYY-MM-DD`) from the form's date pickers, UTC days.
    created_after: Option<String>,
    created_before: Option<String>,
    /// `yes`, `no`, or anything else for either.
    attachments: Option<String>,
    offset: Option<u32>,
}

impl SearchQuery {
    /// This search as a link, with `tag` and `offset` as given (the facet
    /// links and the next page).
    fn href(&self, tag: Option<&str>, offset: Option<u32>) -> String {
        let mut link = form_urlencoded::Serializer::new(String::new());
        let fields = [
            ("q", self.q.as_deref()),
            ("sort", self.sort.as_deref()),
            ("created_after", self.created_after.as_deref()),
            ("created_before", self.created_before.as_deref()),
            ("attachments", self.attachments.as_deref()),
            ("tag", tag),
        ];
        for (name, value) in fields {
            if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
                link.append_pair(name, v);
            }
        }
        if let Some(o) = offset {
            link.append_pair("offset", &o.to_string());
        }
        format!("/admin/search?{}", link.finish())
    }
}

/// A day picked in the form as the RFC 3339 instant it starts at (UTC);
/// anything else is passed on for the API's validation to name.
fn day_start(day: Option<&str>) -> Option<String> {
    let day = day.filter(|d| !d.trim().is_empty())?;
    Some(match chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") {
        Ok(d) => format!("{d}T00:00:00Z"),
        Err(_) => day.to_owned(),
    })
}

pub async fn search(State(state): State<AppState>, user: AdminUser, RawQuery(q): RawQuery) -> Page {
    let q: SearchQuery = query(q)?;
    let text = non_empty(q.q.clone());
    let sort = non_empty(q.sort.clone()).filter(|s| s != "relevance");
    if text.is_none() && sort.is_none() {
        return Ok(Redirect::to("/admin/notes").into_response());
    }
    let index = state
        .index()
        .ok_or_else(|| ErrorPage::new(StatusCode::SERVICE_UNAVAILABLE, "No search index here."))?;
    let tag = non_empty(q.tag.clone());
    let offset = q.offset.unwrap_or(0);
    let found = search::search(
        index.as_ref(),
        SearchParams {
            q: text.clone(),
            tag: tag.iter().cloned().collect(),
            sort: sort.clone(),
            created_after: day_start(q.created_after.as_deref()),
            created_before: day_start(q.created_before.as_deref()),
            has_attachments: match q.attachments.as_deref() {
                Some("yes") => Some(true),
                Some("no") => Some(false),
                _ => None,
            },
            facets: Some("tags".into()),
            limit: Some(HITS_PER_PAGE),
            offset: Some(offset),
            ..SearchParams::default()
        },
    )
    .await
    .map_err(|e| ErrorPage::from_api(&e.into()))?;
    let shown = offset as u64 + found.hits.len() as u64;
    let next = (shown < found.total && shown < search::MAX_OFFSET as u64)
        .then(|| q.href(tag.as_deref(), Some(offset + HITS_PER_PAGE)));
    let facets = found
        .facets
        .map(|f| f.tags)
        .unwrap_or_default()
        .into_iter()
        .map(|f| FacetLink {
            current: tag.as_deref() == Some(f.value.as_str()),
            href: q.href(Some(&f.value), None),
            value: f.value,
            count: f.count,
        })
        .collect();
    Ok(render(&Search {
        c: chrome(&state, &user, "notes"),
        q: text.unwrap_or_default(),
        tag: tag.clone().unwrap_or_default(),
        sort: sort.unwrap_or_else(|| "relevance".into()),
        created_after: q.created_after.clone().unwrap_or_default(),
        created_before: q.created_before.clone().unwrap_or_default(),
        attachments: q.attachments.clone().unwrap_or_default(),
        all_tags_href: tag.is_some().then(|| q.href(None, None)),
        facets,
        hits: found.hits,
        total: found.total,
        took_ms: found.took_ms,
        offset,
        next,
    }))
}

pub(super) fn parse_id(raw: &str, what: &str) -> Result<uuid::Uuid, ErrorPage> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| ErrorPage::new(StatusCode::NOT_FOUND, format!("There is no such {what}.")))
}

#[derive(Default, Deserialize)]
pub struct NoteQuery {
    created: Option<String>,
    saved: Option<String>,
    uploaded: Option<String>,
    restored: Option<String>,
    restored_from_trash: Option<String>,
}

pub async fn note(
    State(state): State<AppState>,
    user: AdminUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Page {
    let q: NoteQuery = query(q)?;
    let notice = if q.created.is_some() {
        Some("The note is created.".to_owned())
    } else if q.saved.is_some() {
        Some("Your changes are saved.".to_owned())
    } else if q.uploaded.is_some() {
        Some("The file is uploaded.".to_owned())
    } else if q.restored_from_trash.is_some() {
        Some("The note is back from the trash.".to_owned())
    } else {
        q.restored
            .as_deref()
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| format!("Version {v} is restored, as a new version."))
    };
    let id = parse_id(&id, "note")?;
    note_page(&state, &user, id, notice, None, StatusCode::OK).await
}

/// A note's page; `upload_error` is a refused upload's reason, shown by
/// the upload form with `status`.
pub(super) async fn note_page(
    state: &AppState,
    user: &AdminUser,
    id: uuid::Uuid,
    notice: Option<String>,
    upload_error: Option<String>,
    status: StatusCode,
) -> Page {
    let store = state.store();
    let note = store
        .get_note(id)
        .await
        .map_err(|e| ErrorPage::from_api(&e.into()))?
        .ok_or_else(|| ErrorPage::new(StatusCode::NOT_FOUND, "There is no such note."))?;
    let mut attachments = store
        .list_attachments(id, None, ATTACHMENTS_SHOWN + 1)
        .await
        .map_err(|e| ErrorPage::from_api(&e.into()))?;
    let more_attachments = attachments.len() > ATTACHMENTS_SHOWN as usize;
    attachments.truncate(ATTACHMENTS_SHOWN as usize);
    Ok(render_status(
        status,
        &NoteDetail {
            c: chrome(state, user, "notes"),
            metadata: serde_json::to_string_pretty(&note.metadata).unwrap_or_default(),
            note,
            attachments,
            more_attachments,
            notice,
            upload_error,
            max_upload: human_bytes(state.settings().storage.max_upload_bytes),
        },
    ))
}

/// A size as people read it: "100 MiB", "1.5 KiB", "512 bytes".
pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

pub async fn download(
    State(state): State<AppState>,
    _: AdminUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Page {
    Ok(transfer::serve_content(&state, &id, &headers).await?)
}

#[derive(Default, Deserialize)]
pub struct JobsQuery {
    status: Option<String>,
    kind: Option<String>,
    cursor: Option<String>,
}

pub async fn jobs(State(state): State<AppState>, user: AdminUser, RawQuery(q): RawQuery) -> Page {
    let q: JobsQuery = query(q)?;
    let (status, kind) = (non_empty(q.status), non_empty(q.kind));
    let cursor = non_empty(q.cursor);
    let page = PageRequest {
        limit: Some(NOTES_PER_PAGE),
        cursor: cursor.as_deref(),
    };
    let queue = state.queue().as_ref();
    let page = service::jobs::page(queue, status.as_deref(), kind.as_deref(), page).await?;
    Ok(render(&Jobs {
        c: chrome(&state, &user, "jobs"),
        status: status.unwrap_or_default(),
        kind: kind.unwrap_or_default(),
        statuses: JobStatus::ALL.iter().map(|s| s.as_str()).collect(),
        kinds: JobKind::ALL.iter().map(|k| k.as_str()).collect(),
        jobs: page.items,
        next: page.next_cursor,
    }))
}

#[derive(Default, Deserialize)]
pub struct JobQuery {
    retried: Option<String>,
}

pub async fn job(
    State(state): State<AppState>,
    user: AdminUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Page {
    let q: JobQuery = query(q)?;
    let id = parse_id(&id, "job")?;
    let job = state
        .queue()
        .get(id)
        .await
        .map_err(|e| ErrorPage::from_api(&e.into()))?
        .ok_or_else(|| ErrorPage::new(StatusCode::NOT_FOUND, "There is no such job."))?;
    Ok(render(&JobDetail {
        c: chrome(&state, &user, "jobs"),
        args: serde_json::to_string_pretty(&job.args).unwrap_or_default(),
        result: job
            .result
            .as_ref()
            .map(|r| serde_json::to_string_pretty(r).unwrap_or_default())
            .unwrap_or_default(),
        notice: q
            .retried
            .map(|_| "The job is queued again, its attempts reset.".to_owned()),
        progress: job.result.as_ref().and_then(super::views::Progress::of),
        job,
    }))
}

/// What every admin form that writes passes first: its token and origin, a
/// writable process, and the id its path names.
pub(super) fn accept_write(
    state: &AppState,
    user: &AdminUser,
    headers: &HeaderMap,
    body: &[u8],
    id: &str,
    what: &str,
) -> Result<uuid::Uuid, ErrorPage> {
    check_form(headers, &field(body, "csrf"), &user.csrf)?;
    read_only_refusal(state)?;
    parse_id(id, what)
}

pub async fn retry(
    State(state): State<AppState>,
    user: AdminUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let id = accept_write(&state, &user, &headers, &body, &id, "job")?;
    let job = service::jobs::retry(state.queue().as_ref(), id).await?;
    tracing::info!(job_id = %job.id, "admin UI: dead job retried");
    Ok(Redirect::to(&format!("/admin/jobs/{}?retried=1", job.id)).into_response())
}

fn master_only(user: &AdminUser) -> Result<(), ErrorPage> {
    if user.is_master() {
        Ok(())
    } else {
        Err(ErrorPage::forbidden(
            "Only the master key manages API keys.",
        ))
    }
}

#[derive(Default, Deserialize)]
pub struct KeysQuery {
    revoked: Option<String>,
}

async fn keys_page(
    state: &AppState,
    user: &AdminUser,
    created: Option<(String, String)>,
    notice: Option<String>,
    status: StatusCode,
) -> Page {
    let keys = state
        .store()
        .list_keys()
        .await
        .map_err(|e| ErrorPage::from_api(&e.into()))?;
    let mut res = render_status(
        status,
        &Keys {
            c: chrome(state, user, "keys"),
            keys,
            created,
            notice,
        },
    );
    // A page with a secret on it is never cached.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

pub async fn keys(State(state): State<AppState>, user: AdminUser, RawQuery(q): RawQuery) -> Page {
    master_only(&user)?;
    let q: KeysQuery = query(q)?;
    let notice = q.revoked.map(|_| "The key is revoked.".to_owned());
    keys_page(&state, &user, None, notice, StatusCode::OK).await
}

pub async fn create_key(
    State(state): State<AppState>,
    user: AdminUser,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    check_form(&headers, &field(&body, "csrf"), &user.csrf)?;
    master_only(&user)?;
    read_only_refusal(&state)?;
    let mut scopes = Vec::new();
    for s in fields(&body, "scope") {
        let scope = s
            .parse::<Scope>()
            .map_err(|_| ErrorPage::new(StatusCode::UNPROCESSABLE_ENTITY, "Unknown scope."))?;
        scopes.push(scope);
    }
    let created = service::keys::create(
        state.store().as_ref(),
        KeyRequest {
            name: field(&body, "name"),
            scopes,
        },
    )
    .await?;
    let shown = Some((created.api_key.name.clone(), created.key));
    keys_page(&state, &user, shown, None, StatusCode::CREATED).await
}

pub async fn revoke_key(
    State(state): State<AppState>,
    user: AdminUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    check_form(&headers, &field(&body, "csrf"), &user.csrf)?;
    master_only(&user)?;
    read_only_refusal(&state)?;
    service::keys::revoke(state.store().as_ref(), parse_id(&id, "key")?).await?;
    Ok(Redirect::to("/admin/keys?revoked=1").into_response())
}

pub async fn system(State(state): State<AppState>, user: AdminUser) -> Page {
    let (ready, checks) = ready::readiness(&state).await;
    let depth = state
        .queue()
        .depth()
        .await
        .map_err(|e| ErrorPage::from_api(&e.into()))?;
    let index = match state.index().map(|i| i.status()) {
        None => vec![Figure {
            name: "Index",
            value: "none in this process".into(),
        }],
        Some(s) => vec![
            Figure {
                name: "State",
                value: s.check(),
            },
            Figure {
                name: "Documents",
                value: s.documents.to_string(),
            },
            Figure {
                name: "Segments",
                value: s.segments.to_string(),
            },
            Figure {
                name: "Last applied change",
                value: s.applied.to_string(),
            },
            Figure {
                name: "Rebuilding",
                value: s.rebuilding.map_or("no".into(), |(done, of)| {
                    format!("yes: {done} of {of} notes")
                }),
            },
        ],
    };
    let stamp = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let dataset = state.dataset().map_or_else(Vec::new, |d| {
        vec![
            Figure {
                name: "Generation",
                value: d.generation,
            },
            Figure {
                name: "Serving since",
                value: d.swapped_at.map_or("the process started".into(), stamp),
            },
            Figure {
                name: "Last file rejected",
                value: d
                    .rejected
                    .map_or("none".into(), |(at, why)| format!("{}: {why}", stamp(at))),
            },
        ]
    });
    let t = crate::figures::process().totals();
    let lag = match (state.index(), state.store().feed_head().await) {
        (Some(index), Ok(head)) => (head.seq - index.status().applied).max(0).to_string(),
        (None, _) => "no index in this process".into(),
        (Some(_), Err(_)) => "unknown (the database does not answer)".into(),
    };
    let revisions = state
        .store()
        .count_revisions()
        .await
        .map_or_else(|_| "unknown".into(), |n| n.to_string());
    let trashed = state
        .store()
        .count_trashed()
        .await
        .map_or_else(|_| "unknown".into(), |n| n.to_string());
    let figures = [
        ("Requests served", t.requests.to_string()),
        ("Server errors (5xx)", t.server_errors.to_string()),
        (
            "Requests refused for load (503) or rate (429)",
            t.refused.to_string(),
        ),
        ("Jobs run", t.jobs_run.to_string()),
        ("Search index lag (changes)", lag),
        ("Note revisions kept", revisions),
        ("Notes in the trash", trashed),
        ("Datasets swapped in", t.datasets_swapped.to_string()),
        ("Datasets rejected", t.datasets_rejected.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| Figure { name, value })
    .collect();
    Ok(render(&System {
        c: chrome(&state, &user, "system"),
        version: crate::VERSION,
        git_sha: crate::GIT_SHA,
        environment: format!(
            "{:?}{}",
            state.settings().server.env,
            if state.settings().server.read_only {
                ", read-only dataset"
            } else {
                ""
            }
        )
        .to_lowercase(),
        ready,
        checks: checks.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        queue: depth
            .into_iter()
            .map(|(s, n)| (s.as_str().to_owned(), n.to_string()))
            .collect(),
        index,
        dataset,
        figures,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100 * 1024 * 1024), "100 MiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5 GiB");
    }

    #[test]
    fn form_fields_repeat_and_decode() {
        let body = b"csrf=a%2Bb&scope=read&scope=admin&name=ops+team";
        assert_eq!(field(body, "csrf"), "a+b");
        assert_eq!(field(body, "name"), "ops team");
        assert_eq!(fields(body, "scope").collect::<Vec<_>>(), ["read", "admin"]);
        assert_eq!(field(body, "missing"), "");
    }
}
