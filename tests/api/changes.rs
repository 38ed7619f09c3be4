//! Issue 24, the change feed: what changed since a cursor, oldest first,
//! one entry per note at its latest change, and the events (deletions,
//! attachments) of the retention window.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use notes_api::config::{Environment, Secret};

use crate::common::{MASTER, TestApp, assert_problem};

/// Every change after `since`, read `limit` at a time until `has_more` is
/// false; the changes and the last `next_cursor`.
async fn drain(
    app: &TestApp,
    since: Option<&str>,
    limit: u32,
    extra: &str,
) -> (Vec<Value>, String) {
    let mut since = since.map(str::to_owned);
    let mut all = Vec::new();
    for _ in 0..1000 {
        let mut path = format!("/api/v1/changes?limit={limit}{extra}");
        if let Some(s) = &since {
            path.push_str(&format!("&since={s}"));
        }
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let changes = page["changes"].as_array().unwrap();
        assert!(changes.len() <= limit as usize, "{page}");
        all.extend(changes.iter().cloned());
        since = Some(page["next_cursor"].as_str().unwrap().to_owned());
        if !page["has_more"].as_bool().unwrap() {
            return (all, since.unwrap());
        }
    }
    panic!("the feed never ended");
}

/// A second replica on `a`'s database, in production with the same key.
async fn replica_of(a: &TestApp) -> TestApp {
    let mut b = TestApp::spawn_on(&a.db, |c| {
        c.server.env = Environment::Production;
        c.server.master_key = Some(Secret::new(MASTER));
    })
    .await;
    b.token = a.token.clone();
    b
}

/// The cursor of the feed's head: what a client holds after syncing.
async fn head(app: &TestApp) -> String {
    drain(app, None, 1000, "").await.1
}

fn kinds(changes: &[Value]) -> Vec<(String, String)> {
    changes
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_owned(),
                c["note_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn create(app: &TestApp, title: &str) -> String {
    let note = app
        .create_note(json!({"title": title, "body": format!("{title} body")}))
        .await;
    note["id"].as_str().unwrap().to_owned()
}

async fn patch(app: &TestApp, id: &str, body: &str) {
    let res = app
        .request(Method::PATCH, &format!("/api/v1/notes/{id}"))
        .json(&json!({ "body": body }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Deletes what `path` names, which must answer 204.
async fn delete(app: &TestApp, path: &str) {
    assert_eq!(
        send(app, Method::DELETE, path).await,
        StatusCode::NO_CONTENT,
        "DELETE {path}"
    );
}

async fn send(app: &TestApp, method: Method, path: &str) -> StatusCode {
    app.request(method, path).send().await.unwrap().status()
}

async fn upload(app: &TestApp, note: &str, filename: &str) -> String {
    let res = app
        .request(
            Method::POST,
            &format!("/api/v1/notes/{note}/attachments?filename={filename}"),
        )
        .header("content-type", "text/plain")
        .body("walrus tusks")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let a: Value = res.json().await.unwrap();
    a["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_feed_pages_through_every_change_oldest_first() {
    let app = TestApp::production().await;
    let ids: Vec<String> = futures_join(&app, 5).await;
    let (all, _) = drain(&app, None, 2, "").await;
    // From the start: every note once, created, in the order written.
    assert_eq!(
        kinds(&all),
        ids.iter()
            .map(|id| ("note.created".to_owned(), id.clone()))
            .collect::<Vec<_>>()
    );
    let cursors: Vec<&str> = all.iter().map(|c| c["cursor"].as_str().unwrap()).collect();
    let unique: std::collections::HashSet<_> = cursors.iter().collect();
    assert_eq!(
        unique.len(),
        cursors.len(),
        "every change has its own cursor"
    );
    for c in &all {
        assert_eq!(c["version"], 1);
        assert!(c["at"].as_str().unwrap().ends_with('Z'), "{c}");
        assert!(c.get("note").is_none(), "no note unless asked: {c}");
    }

    // From a cursor in the middle: what came after it, and nothing before.
    let (rest, _) = drain(&app, Some(cursors[2]), 100, "").await;
    assert_eq!(kinds(&rest), kinds(&all[3..]));

    // A client at the head sees an update, a deletion and an attachment,
    // each once, in the order they happened.
    let at = head(&app).await;
    patch(&app, &ids[0], "changed").await;
    delete(&app, &format!("/api/v1/notes/{}", ids[1])).await;
    let attachment = upload(&app, &ids[2], "tusks.txt").await;
    delete(&app, &format!("/api/v1/attachments/{attachment}")).await;
    let (after, end) = drain(&app, Some(&at), 100, "").await;
    assert_eq!(
        kinds(&after),
        [
            ("note.updated".to_owned(), ids[0].clone()),
            ("note.deleted".to_owned(), ids[1].clone()),
            ("attachment.created".to_owned(), ids[2].clone()),
            ("attachment.deleted".to_owned(), ids[2].clone()),
        ]
    );
    assert_eq!(after[0]["version"], 2);
    assert_eq!(after[2]["attachment_id"], attachment.as_str());
    assert_eq!(after[3]["attachment_id"], attachment.as_str());
    assert!(after[1].get("version").is_none());
    // An attachment does not make its note look changed to clients, yet the
    // search index re-read the note: it now has (then had) attachments.
    let (_, found) = app
        .get_json("/api/v1/search?sort=title&has_attachments=false")
        .await;
    assert_eq!(found["total"], 4, "{found}");

    // At the head, an empty page that still hands back where to go on.
    let (status, page) = app.get_json(&format!("/api/v1/changes?since={end}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["changes"], json!([]));
    assert_eq!(page["has_more"], false);
    assert_eq!(page["next_cursor"], end.as_str());
}

/// Creates `n` notes one after the other; their ids in order.
async fn futures_join(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(create(app, &format!("walrus {i}")).await);
    }
    ids
}

#[tokio::test]
async fn include_note_carries_each_notes_content_as_it_is_now() {
    let app = TestApp::production().await;
    let at = head(&app).await;
    let id = create(&app, "narwhal").await;
    patch(&app, &id, "the tusk is a tooth").await;
    let (changes, _) = drain(&app, Some(&at), 100, "&include=note").await;
    assert_eq!(
        changes.len(),
        1,
        "created then updated is one entry: {changes:?}"
    );
    let c = &changes[0];
    assert_eq!(c["type"], "note.created", "new to this reader");
    assert_eq!(c["version"], 2);
    assert_eq!(c["note"]["id"], id.as_str());
    assert_eq!(c["note"]["body"], "the tusk is a tooth");
    assert_eq!(c["note"]["version"], 2);
}

#[tokio::test]
async fn a_page_of_large_notes_ends_early_and_the_next_goes_on() {
    let app = TestApp::production().await;
    let body = "w".repeat(1024 * 1024 - 16);
    let mut ids = Vec::new();
    for i in 0..10 {
        let note = app
            .create_note(json!({"title": format!("big {i}"), "body": body}))
            .await;
        ids.push(note["id"].as_str().unwrap().to_owned());
    }
    let (status, page) = app.get_json("/api/v1/changes?include=note").await;
    assert_eq!(status, StatusCode::OK);
    let first = page["changes"].as_array().unwrap().len();
    assert!((1..10).contains(&first), "8 MiB of notes per page: {first}");
    assert_eq!(page["has_more"], true);
    let (all, _) = drain(&app, None, 100, "&include=note").await;
    let got: Vec<&str> = all
        .iter()
        .map(|c| c["note"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_delete_after_an_update_is_seen_as_a_delete_and_a_restore_as_a_restore() {
    let app = TestApp::production().await;
    let id = create(&app, "dugong").await;
    let at = head(&app).await;
    patch(&app, &id, "seagrass").await;
    delete(&app, &format!("/api/v1/notes/{id}")).await;
    let (changes, after_delete) = drain(&app, Some(&at), 100, "").await;
    assert_eq!(kinds(&changes), [("note.deleted".to_owned(), id.clone())]);

    assert_eq!(
        send(&app, Method::POST, &format!("/api/v1/trash/{id}/restore")).await,
        StatusCode::OK
    );
    let (changes, _) = drain(&app, Some(&after_delete), 100, "&include=note").await;
    assert_eq!(kinds(&changes), [("note.restored".to_owned(), id.clone())]);
    assert_eq!(changes[0]["note"]["body"], "seagrass");
    // A reader from before the deletion sees both, in order.
    let (changes, _) = drain(&app, Some(&at), 100, "").await;
    assert_eq!(
        kinds(&changes),
        [
            ("note.deleted".to_owned(), id.clone()),
            ("note.restored".to_owned(), id.clone())
        ]
    );
    // Deleted for good from the trash: the deletion it already had is all.
    delete(&app, &format!("/api/v1/notes/{id}?permanent=true")).await;
    let (changes, _) = drain(&app, Some(&at), 100, "").await;
    assert_eq!(
        kinds(&changes)[1..],
        [("note.deleted".to_owned(), id.clone())]
    );
}

#[tokio::test]
async fn a_cursor_older_than_the_kept_deletions_is_gone_and_says_resync() {
    let app = TestApp::production().await;
    let id = create(&app, "manatee").await;
    let old = head(&app).await;
    delete(&app, &format!("/api/v1/notes/{id}")).await;
    create(&app, "sirenian").await;
    let pruned = app
        .state
        .store()
        .prune_changes(chrono::Utc::now() + chrono::Duration::seconds(1), 1000)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let res = app
        .request(Method::GET, &format!("/api/v1/changes?since={old}"))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, StatusCode::GONE).await;
    assert_eq!(problem["type"], "urn:notes-api:problem:changes-expired");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("list every note"),
        "{problem}"
    );
    // Resync: from the start, every live note, and a cursor that works.
    let (all, at) = drain(&app, None, 100, "").await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["type"], "note.created");
    let (status, _) = app.get_json(&format!("/api/v1/changes?since={at}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_cursor_of_another_deployment_is_gone() {
    let a = TestApp::production().await;
    let b = TestApp::production().await;
    create(&a, "orca").await;
    create(&b, "beluga").await;
    let from_a = head(&a).await;
    let res = b
        .request(Method::GET, &format!("/api/v1/changes?since={from_a}"))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, StatusCode::GONE).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("another numbering"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_write_that_returned_is_in_the_feed_of_another_replica() {
    let a = TestApp::production().await;
    let b = replica_of(&a).await;
    let mut at = head(&b).await;
    for i in 0..20 {
        let id = create(&a, &format!("replica {i}")).await;
        let (changes, next) = drain(&b, Some(&at), 100, "").await;
        assert_eq!(
            kinds(&changes),
            [("note.created".to_owned(), id)],
            "write {i}"
        );
        at = next;
    }
}

#[tokio::test]
async fn bad_feed_requests_are_refused_by_name() {
    let app = TestApp::production().await;
    for (query, field) in [
        ("since=not-a-cursor", "since"),
        ("since=bjo", "since"),
        ("since=%00%27%20OR%201=1--", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("include=notes", "include"),
        ("include=note&include=body", "include"),
    ] {
        let res = app
            .request(Method::GET, &format!("/api/v1/changes?{query}"))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let problem = assert_problem(res, status).await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{query}: {status} {problem}"
        );
        assert!(problem.to_string().contains(field), "{query}: {problem}");
    }
    let res = app
        .request(Method::GET, "/api/v1/changes?limit=many")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    // A key, read scope; no write on the feed.
    let res = app
        .client
        .get(format!("{}/api/v1/changes", app.base))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNAUTHORIZED).await;
    let res = app
        .request(Method::POST, "/api/v1/changes")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// One Server-Sent Event as a client reads it.
#[derive(Debug, Clone)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

impl SseEvent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// A change stream read as an EventSource reads it: events split on blank
/// lines, comments (heartbeats) skipped.
struct EventStream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl EventStream {
    async fn open(app: &TestApp, query: &str, last_id: Option<&str>) -> Self {
        let res = stream_request(app, query, last_id).await;
        assert_eq!(res.status(), StatusCode::OK);
        let headers = res.headers();
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(headers["x-accel-buffering"], "no");
        Self {
            body: Box::pin(res.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event, or `None` when the stream ended; panics when none
    /// comes within `within`.
    async fn next(&mut self, within: std::time::Duration) -> Option<SseEvent> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim_start());
                    }
                }
                if event.event.is_some() || !event.data.is_empty() {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("no event in time")?;
            self.buf
                .push_str(std::str::from_utf8(&chunk.expect("stream read")).unwrap());
        }
    }

    /// The next event; the bound is generous for a loaded machine (the
    /// whole suite on two cores), not a latency target.
    async fn expect(&mut self) -> SseEvent {
        self.next(std::time::Duration::from_secs(30))
            .await
            .expect("the stream ended")
    }
}

async fn stream_request(app: &TestApp, query: &str, last_id: Option<&str>) -> reqwest::Response {
    let mut req = app.request(Method::GET, &format!("/api/v1/changes/stream?{query}"));
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_stream_delivers_creates_updates_and_deletes_as_they_happen() {
    let app = TestApp::production().await;
    let old = create(&app, "already there").await;
    let mut events = EventStream::open(&app, "", None).await;
    let first = events.expect().await;
    assert_eq!(first.event.as_deref(), Some("note.created"));
    assert_eq!(first.json()["note_id"], old.as_str());
    assert_eq!(first.id.as_deref(), first.json()["cursor"].as_str());

    // Each write waits for its event: the feed holds a live note once, at
    // its latest change, so writes made faster than the stream reads may
    // arrive as one event (a create then a patch is one `note.created`).
    let id = create(&app, "seal").await;
    let mut seen = vec![events.expect().await];
    patch(&app, &id, "whiskers").await;
    seen.push(events.expect().await);
    delete(&app, &format!("/api/v1/notes/{id}")).await;
    seen.push(events.expect().await);
    for e in &seen {
        assert_eq!(e.json()["note_id"], id.as_str());
    }
    let kinds: Vec<_> = seen.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(kinds, ["note.created", "note.updated", "note.deleted"]);
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_resumes_with_no_gap_and_no_duplicate() {
    let app = TestApp::production().await;
    let mut events = EventStream::open(&app, "include=note", None).await;
    let first = create(&app, "before the drop").await;
    let e = events.expect().await;
    assert_eq!(e.json()["note_id"], first.as_str());
    assert_eq!(e.json()["note"]["title"], "before the drop");
    let last_id = e.id.unwrap();
    drop(events);

    let mut written = Vec::new();
    for i in 0..50 {
        written.push(create(&app, &format!("while away {i}")).await);
    }
    // An EventSource sends the last id it saw; `since` in the URL loses to it.
    let mut events = EventStream::open(&app, "since=bogus-but-ignored", Some(&last_id)).await;
    let mut got = Vec::new();
    for _ in 0..50 {
        let e = events.expect().await;
        assert_eq!(e.event.as_deref(), Some("note.created"));
        got.push(e.json()["note_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, written);
    // Nothing more: no duplicate of what was delivered before the drop.
    let more = tokio::time::timeout(std::time::Duration::from_millis(500), events.expect()).await;
    assert!(more.is_err(), "an extra event: {more:?}");
}

#[tokio::test]
async fn a_stream_outlives_the_idle_timeout_and_ends_cleanly_on_shutdown() {
    let app = TestApp::production_with(|c| c.limits.idle_timeout = 1).await;
    let mut events = EventStream::open(&app, "", None).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let id = create(&app, "patient").await;
    let e = events.expect().await;
    assert_eq!(e.json()["note_id"], id.as_str());

    let started = std::time::Instant::now();
    app.shutdown().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the open stream held the shutdown: {:?}",
        started.elapsed()
    );
    let end = events.next(std::time::Duration::from_secs(5)).await;
    assert!(end.is_none(), "the stream ended: {end:?}");
}

#[tokio::test]
async fn a_stream_on_one_replica_sees_writes_on_another() {
    let a = TestApp::production().await;
    let b = replica_of(&a).await;
    let at = head(&b).await;
    let mut events = EventStream::open(&b, &format!("since={at}"), None).await;
    for i in 0..5 {
        let id = create(&a, &format!("far away {i}")).await;
        let e = events.expect().await;
        assert_eq!(e.json()["note_id"], id.as_str(), "write {i}");
    }
}

#[tokio::test]
async fn streams_are_bounded_per_key_and_refused_when_expired() {
    let app = TestApp::production_with(|c| c.limits.max_streams_per_key = 2).await;
    let _one = EventStream::open(&app, "", None).await;
    let _two = EventStream::open(&app, "", None).await;
    let res = stream_request(&app, "", None).await;
    assert_problem(res, StatusCode::TOO_MANY_REQUESTS).await;
    // Another key has its own share.
    let (_, key) = app.key(&["read"]).await;
    let res = app
        .client
        .get(format!("{}/api/v1/changes/stream", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);

    let other = TestApp::production().await;
    let foreign = head(&other).await;
    drop((_one, _two));
    let res = stream_request(&app, "", Some(&foreign)).await;
    assert_problem(res, StatusCode::GONE).await;
    let res = stream_request(&app, "", Some("garbage")).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
}
