//! The admin UI over HTTP: log-in and sessions, the cookie's flags, CSRF
//! and origin checks, the security headers, what each page shows, and
//! hostile input. The same pages in a real browser: `tests/admin/`.

use std::time::Duration;

use reqwest::{Method, StatusCode, header, multipart, redirect::Policy};
use serde_json::{Value, json};

use crate::common::{MASTER, TestApp};

/// A browser-like client that does not follow redirects, so a test sees
/// each 303 and its cookie.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Logs in with `key`; returns the session cookie (`name=value`).
async fn log_in(app: &TestApp, key: &str) -> String {
    let res = browser()
        .post(format!("{}/admin/login", app.base))
        .form(&[("key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let res = browser()
        .get(format!("{}{path}", app.base))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

/// The hidden CSRF token of the first form on a page.
fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a token")
        + 19;
    html[at..at + 64].to_owned()
}

/// A POST as the browser sends it: the session cookie, and an `Origin`
/// when one is given.
fn browser_post(
    app: &TestApp,
    cookie: &str,
    path: &str,
    origin: Option<&str>,
) -> reqwest::RequestBuilder {
    let req = browser()
        .post(format!("{}{path}", app.base))
        .header(header::COOKIE, cookie);
    match origin {
        Some(o) => req.header(header::ORIGIN, o),
        None => req,
    }
}

async fn post_form(
    app: &TestApp,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> reqwest::Response {
    browser_post(app, cookie, path, origin)
        .form(form)
        .send()
        .await
        .unwrap()
}

fn location(res: &reqwest::Response) -> &str {
    res.headers()[header::LOCATION].to_str().unwrap()
}

#[tokio::test]
async fn without_a_session_every_page_sends_to_the_log_in_form() {
    let app = TestApp::production().await;
    for path in [
        "/admin/notes",
        "/admin/search?q=a",
        "/admin/jobs",
        "/admin/keys",
        "/admin/system",
        "/admin/trash",
        "/admin/notes/0190a000-0000-7000-8000-000000000000",
        "/admin/notes/0190a000-0000-7000-8000-000000000000/history",
    ] {
        let res = browser()
            .get(format!("{}{path}", app.base))
            .header(header::COOKIE, "notes_admin=made-up")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&res), "/admin/login");
    }
    let res = browser()
        .get(format!("{}/admin/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h[header::REFERRER_POLICY], "same-origin");
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
}

#[tokio::test]
async fn a_log_in_sets_a_strict_cookie_that_holds_no_key_and_log_out_ends_it() {
    let app = TestApp::production().await;
    let res = browser()
        .post(format!("{}/admin/login", app.base))
        .form(&[("key", MASTER)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Secure"] {
        assert!(set.contains(flag), "{flag} in {set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let value = cookie.strip_prefix("notes_admin=").unwrap();
    assert_eq!(value.len(), 64);
    assert!(!set.contains(MASTER) && !set.contains(&MASTER[..12]));

    let (status, html) = page(&app, &cookie, "/admin/notes").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("Development mode"));
    let token = csrf(&html);
    // Log-out needs the token, and only from this origin.
    let res = post_form(&app, &cookie, "/admin/logout", &[], None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post_form(
        &app,
        &cookie,
        "/admin/logout",
        &[("csrf", &token)],
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(page(&app, &cookie, "/admin/notes").await.0, StatusCode::OK);
    let res = post_form(&app, &cookie, "/admin/logout", &[("csrf", &token)], None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        page(&app, &cookie, "/admin/notes").await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_secure_flag_is_a_setting() {
    let app = TestApp::production_with(|c| c.admin.admin_secure_cookie = Some(false)).await;
    let res = browser()
        .post(format!("{}/admin/login", app.base))
        .form(&[("key", MASTER)])
        .send()
        .await
        .unwrap();
    let set = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(!set.contains("Secure"), "{set}");
    assert!(set.contains("HttpOnly"), "{set}");
}

#[tokio::test]
async fn only_admin_keys_log_in_and_a_revoked_keys_session_ends_at_once() {
    let app = TestApp::production().await;
    let (_, reader) = app.key(&["read"]).await;
    let res = browser()
        .post(format!("{}/admin/login", app.base))
        .form(&[("key", reader.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("lacks the admin scope"));
    let res = browser()
        .post(format!("{}/admin/login", app.base))
        .form(&[("key", "nk_not-a-key")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let (id, admin) = app.key(&["admin"]).await;
    let cookie = log_in(&app, &admin).await;
    assert_eq!(page(&app, &cookie, "/admin/jobs").await.0, StatusCode::OK);
    // An admin key is not the master key: no key management.
    let (status, html) = page(&app, &cookie, "/admin/keys").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("Only the master key"));
    let (_, notes) = page(&app, &cookie, "/admin/notes").await;
    assert!(
        !notes.contains("/admin/keys"),
        "no link to a page it cannot open"
    );

    let res = app
        .request(Method::DELETE, &format!("/api/v1/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (status, _) = page(&app, &cookie, "/admin/jobs").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the session ended with its key"
    );
}

#[tokio::test]
async fn pages_show_notes_search_hits_attachments_escaped() {
    let app = TestApp::production().await;
    let hostile = "<script>alert(1)</script> platypus";
    let note = app
        .create_note(
            json!({"title": hostile, "body": "the platypus & the <b>echidna</b>", "tags": ["zoo"]}),
        )
        .await;
    let id = note["id"].as_str().unwrap();
    for i in 0..55 {
        app.create_note(json!({"title": format!("filler {i}")}))
            .await;
    }
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let res = app
        .request(Method::POST, &format!("/api/v1/notes/{id}/attachments"))
        .query(&[("filename", "data.bin")])
        .header("content-type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let attachment: Value = res.json().await.unwrap();
    app.wait_searchable().await;

    let cookie = log_in(&app, MASTER).await;
    let (status, list) = page(&app, &cookie, "/admin/notes").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!list.contains("<script>alert"), "escaped");
    // 56 notes, 50 a page: a next page by cursor.
    let next = list
        .split("rel=\"next\" href=\"")
        .nth(1)
        .expect("a next page");
    let next = next.split('"').next().unwrap().replace("&amp;", "&");
    let (status, second) = page(&app, &cookie, &next).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second.matches("<tr>").count() - 1, 6, "the remaining six");
    assert!(!second.contains("<script>alert"), "escaped");
    assert!(second.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));

    let (_, tagged) = page(&app, &cookie, "/admin/notes?tag=zoo").await;
    assert_eq!(tagged.matches("<tr>").count() - 1, 1);

    let (status, hits) = page(&app, &cookie, "/admin/search?q=echidna").await;
    assert_eq!(status, StatusCode::OK);
    assert!(hits.contains("<mark>echidna</mark>"), "{hits}");
    assert!(hits.contains("&amp;"), "the snippet's text is escaped");
    assert!(!hits.contains("<b>echidna"));

    let (status, detail) = page(&app, &cookie, &format!("/admin/notes/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(detail.contains("data.bin"));
    let link = format!(
        "/admin/attachments/{}/content",
        attachment["id"].as_str().unwrap()
    );
    assert!(detail.contains(&link));
    let res = browser()
        .get(format!("{}{link}", app.base))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().to_vec(), bytes);
    // The download needs the session too.
    let res = browser()
        .get(format!("{}{link}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn keys_are_created_shown_once_and_revoked_from_the_ui() {
    let app = TestApp::production().await;
    let cookie = log_in(&app, MASTER).await;
    let (_, html) = page(&app, &cookie, "/admin/keys").await;
    let token = csrf(&html);
    let res = post_form(
        &app,
        &cookie,
        "/admin/keys",
        &[
            ("csrf", &token),
            ("name", "from the ui"),
            ("scope", "read"),
            ("scope", "write"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let html = res.text().await.unwrap();
    let at = html.find("id=\"new-key\" class=\"secret\">").unwrap() + 28;
    let secret = html[at..].split('<').next().unwrap().to_owned();
    assert!(secret.starts_with("nk_"), "{secret}");
    let ok = app
        .client
        .get(format!("{}/api/v1/notes", app.base))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let (_, listed) = page(&app, &cookie, "/admin/keys").await;
    assert!(listed.contains("from the ui"));
    assert!(!listed.contains(&secret), "shown once");

    // A forged form (no token, or from elsewhere) creates nothing.
    let before = app.state.store().list_keys().await.unwrap().len();
    let res = post_form(
        &app,
        &cookie,
        "/admin/keys",
        &[("name", "forged"), ("scope", "admin")],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post_form(
        &app,
        &cookie,
        "/admin/keys",
        &[("csrf", &token), ("name", "forged"), ("scope", "admin")],
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.state.store().list_keys().await.unwrap().len(), before);
    // Bad input is a clear page, and stores nothing.
    let res = post_form(
        &app,
        &cookie,
        "/admin/keys",
        &[("csrf", &token), ("name", " ")],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.state.store().list_keys().await.unwrap().len(), before);

    let id = app.state.store().list_keys().await.unwrap()[0].id;
    let res = post_form(
        &app,
        &cookie,
        &format!("/admin/keys/{id}/revoke"),
        &[("csrf", &token)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let refused = app
        .client
        .get(format!("{}/api/v1/notes", app.base))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_dead_job_is_shown_with_its_error_and_retried_from_the_ui() {
    let app = TestApp::production_with(|c| {
        c.jobs.job_max_attempts = 1;
        c.jobs.job_poll_ms = 50;
        c.storage.backup_destinations = vec![std::env::temp_dir().display().to_string()];
    })
    .await;
    let blocker = app.db.dir().join("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let to = blocker.join("backups").display().to_string();
    let job = app.enqueue("backup", json!({"to": to})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let dead = app.finished(&id).await;
    assert_eq!(dead["status"], "dead", "{dead}");
    let ping = app.enqueue("ping", json!({})).await;
    let ping = ping["id"].as_str().unwrap().to_owned();
    // The ping runs in a lane of its own; the counts below are read only
    // once it has finished, or the system page may still show it queued.
    assert_eq!(app.finished(&ping).await["status"], "succeeded");

    let cookie = log_in(&app, MASTER).await;
    let (_, list) = page(&app, &cookie, "/admin/jobs?status=dead").await;
    assert!(list.contains(&id));
    assert_eq!(list.matches("<tr>").count() - 1, 1, "only the dead one");
    let (_, pings) = page(&app, &cookie, "/admin/jobs?kind=ping").await;
    assert!(!pings.contains(&id));
    let (status, detail) = page(&app, &cookie, &format!("/admin/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        detail.contains("storage location is not usable"),
        "its error"
    );
    let token = csrf(&detail);
    std::fs::remove_file(&blocker).unwrap();
    let res = post_form(
        &app,
        &cookie,
        &format!("/admin/jobs/{id}/retry"),
        &[("csrf", &token)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("/admin/jobs/{id}?retried=1"));
    let done = app.finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, system) = page(&app, &cookie, "/admin/system").await;
    assert!(system.contains("Readiness checks"));
    assert!(
        system
            .contains("<td><a href=\"/admin/jobs?status=succeeded\">succeeded</a></td><td>2</td>"),
        "{system}"
    );
    // The figures are the process's own totals (shared by the tests that
    // run beside this one, so at least what this test did).
    let figure = |name: &str| -> u64 {
        let after = system
            .split(&format!("<dt>{name}</dt><dd>"))
            .nth(1)
            .unwrap_or_else(|| panic!("{name} in {system}"));
        after.split('<').next().unwrap().parse().unwrap()
    };
    assert!(figure("Jobs run") >= 2, "{system}");
    assert!(figure("Requests served") >= 5, "{system}");
    assert!(figure("Search index lag (changes)") < 100, "{system}");
}

/// Issue 22: the search page narrows by a tag of the matches (with their
/// counts), sorts, filters by dates and attachments, marks matches in
/// titles (typos included), and keeps all of it on the next page; it
/// needs no JavaScript, only links and a GET form.
#[tokio::test]
async fn the_search_page_has_facets_sorts_filters_and_marked_titles() {
    let app = TestApp::production().await;
    for i in 0..25 {
        let tags = if i % 5 == 0 {
            json!(["work", "urgent"])
        } else {
            json!(["work"])
        };
        app.create_note(json!({"title": format!("Quarterly <report> {i:02}"), "tags": tags}))
            .await;
    }
    app.create_note(json!({"title": "Holiday", "body": "not a report", "tags": ["home"]}))
        .await;
    let cookie = log_in(&app, MASTER).await;
    let (status, body) = page(&app, &cookie, "/admin/search?q=reprot").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("26 matches"), "a typo finds all 26");
    assert!(
        body.contains("Quarterly &lt;<mark>report</mark>&gt;"),
        "{body}"
    );
    assert!(
        body.contains("work <span class=\"count\">25</span>"),
        "{body}"
    );
    assert!(body.contains("urgent <span class=\"count\">5</span>"));
    let urgent = body
        .split("href=\"")
        .find(|h| h.contains("tag=urgent"))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&");
    let (_, narrowed) = page(&app, &cookie, &urgent).await;
    assert!(narrowed.contains("5 matches"), "{narrowed}");
    assert!(narrowed.contains("All tags"));

    let (_, sorted) = page(&app, &cookie, "/admin/search?sort=title&attachments=no").await;
    assert!(sorted.contains("26 matches"), "a listing without q");
    assert!(sorted.find("Holiday").unwrap() < sorted.find("Quarterly").unwrap());
    let next = sorted
        .split("rel=\"next\" href=\"")
        .nth(1)
        .expect("a next page")
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&");
    assert!(
        next.contains("sort=title") && next.contains("attachments=no"),
        "{next}"
    );
    let (_, second) = page(&app, &cookie, &next).await;
    assert!(second.contains("Quarterly &lt;report&gt; 24"), "{second}");
    let (_, none) = page(&app, &cookie, "/admin/search?sort=-created&attachments=yes").await;
    assert!(none.contains("0 matches"));
    let (_, future) = page(
        &app,
        &cookie,
        "/admin/search?q=report&created_after=2999-01-01",
    )
    .await;
    assert!(future.contains("0 matches"));
    let (_, past) = page(
        &app,
        &cookie,
        "/admin/search?q=report&created_before=2999-01-01",
    )
    .await;
    assert!(past.contains("26 matches"));
    let (status, _) = page(&app, &cookie, "/admin/search?q=report&created_after=soon").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Issue 21: unknown `/admin/*` paths were 404s without the CSP and frame
/// headers (those were set on the admin routes only), and note pages had
/// no Cache-Control. Every response under /admin now carries the headers,
/// and pages are `private, no-store`; a static file and a download keep
/// the policy they chose.
#[tokio::test]
async fn every_admin_response_carries_the_security_headers() {
    let check = |res: &reqwest::Response, what: &str, cache: &str| {
        let h = res.headers();
        let csp = h
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap_or_else(|| panic!("{what}: no CSP"))
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{what}");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin", "{what}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
        assert_eq!(h[header::CACHE_CONTROL], cache, "{what}");
    };
    let app = TestApp::production().await;
    for (path, status, cache) in [
        ("/admin/nowhere", StatusCode::NOT_FOUND, "private, no-store"),
        (
            "/admin/notes/a/b/c",
            StatusCode::NOT_FOUND,
            "private, no-store",
        ),
        ("/admin/login", StatusCode::OK, "private, no-store"),
        ("/admin/notes", StatusCode::SEE_OTHER, "private, no-store"),
        ("/admin", StatusCode::SEE_OTHER, "private, no-store"),
        (
            "/admin/static/nope.js",
            StatusCode::NOT_FOUND,
            "private, no-store",
        ),
        (
            "/admin/static/admin.css",
            StatusCode::OK,
            "public, max-age=3600",
        ),
    ] {
        let res = browser()
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
        check(&res, path, cache);
    }
    let res = browser()
        .delete(format!("{}/admin/notes", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    check(&res, "DELETE /admin/notes", "private, no-store");

    // A note's page, signed in; its attachment's download revalidates.
    let cookie = log_in(&app, MASTER).await;
    let note = app.create_note(json!({"title": "private"})).await;
    let id = note["id"].as_str().unwrap();
    let res = browser()
        .get(format!("{}/admin/notes/{id}", app.base))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    check(&res, "a note's page", "private, no-store");
    let res = app
        .request(Method::POST, &format!("/api/v1/notes/{id}/attachments"))
        .query(&[("filename", "a.txt")])
        .body("bytes")
        .send()
        .await
        .unwrap();
    let attachment: Value = res.json().await.unwrap();
    let res = browser()
        .get(format!(
            "{}/admin/attachments/{}/content",
            app.base,
            attachment["id"].as_str().unwrap()
        ))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    check(&res, "a download", "private, no-cache");
    // The API keeps its own headers: no admin CSP on /api.
    let res = app.get("/api/v1/notes").send().await.unwrap();
    assert!(res.headers().get(header::CONTENT_SECURITY_POLICY).is_none());
}

#[tokio::test]
async fn development_mode_needs_no_log_in_and_says_so() {
    let app = TestApp::spawn().await;
    let (status, html) = page(&app, "", "/admin/notes").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Development mode"));
    let res = browser()
        .get(format!("{}/admin/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // Forms still need their token: a cross-site page must not drive a
    // local instance either.
    let (_, keys) = page(&app, "", "/admin/keys").await;
    let res = post_form(
        &app,
        "",
        "/admin/keys",
        &[("name", "x"), ("scope", "read")],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post_form(
        &app,
        "",
        "/admin/keys",
        &[("csrf", &csrf(&keys)), ("name", "x"), ("scope", "read")],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn hostile_requests_get_clear_pages_and_change_nothing() {
    let app = TestApp::production().await;
    let cookie = log_in(&app, MASTER).await;
    for (path, want) in [
        ("/admin/notes/not-a-uuid", StatusCode::NOT_FOUND),
        (
            "/admin/notes/0190a000-0000-7000-8000-000000000000",
            StatusCode::NOT_FOUND,
        ),
        ("/admin/jobs/%00", StatusCode::NOT_FOUND),
        ("/admin/notes?cursor=%ZZ", StatusCode::UNPROCESSABLE_ENTITY),
        ("/admin/notes?limit=5&limit=6", StatusCode::OK),
        (
            "/admin/notes?tag=<script>",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/admin/jobs?status=nope", StatusCode::UNPROCESSABLE_ENTITY),
        ("/admin/static/../../Cargo.toml", StatusCode::NOT_FOUND),
        ("/admin/static/admin.css.bak", StatusCode::NOT_FOUND),
    ] {
        let (status, body) = page(&app, &cookie, path).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(!body.contains("<script>"), "{path}");
    }
    let res = browser()
        .put(format!("{}/admin/notes", app.base))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    // A form body past 16 KiB is refused before it is read.
    let big = "k".repeat(64 * 1024);
    let res = browser()
        .post(format!("{}/admin/login", app.base))
        .form(&[("key", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Bad UTF-8 in a form is a refusal, not a crash.
    let res = browser()
        .post(format!("{}/admin/login", app.base))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(vec![b'k', b'e', b'y', b'=', 0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(app.state.store().list_keys().await.unwrap().len(), 0);
}

/// The value of the input or hidden field `name` on a page (as escaped).
fn input_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no input {name}"))
        + name.len()
        + 15;
    html[at..].split('"').next().unwrap().to_owned()
}

/// The text of the `<textarea>` on a page (as escaped).
fn textarea(html: &str) -> String {
    let at = html.find("<textarea").expect("a textarea");
    let text = &html[at..];
    let text = &text[text.find('>').unwrap() + 1..];
    text[..text.find("</textarea>").unwrap()].to_owned()
}

/// The upload form's multipart body: the token, then the file.
fn upload_form(token: Option<&str>, name: &str, bytes: Vec<u8>) -> multipart::Form {
    let mut form = multipart::Form::new();
    if let Some(t) = token {
        form = form.text("csrf", t.to_owned());
    }
    form.part(
        "file",
        multipart::Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str("application/octet-stream")
            .unwrap(),
    )
}

async fn post_upload(
    app: &TestApp,
    cookie: &str,
    note: &str,
    form: multipart::Form,
    origin: Option<&str>,
) -> reqwest::Response {
    browser_post(
        app,
        cookie,
        &format!("/admin/notes/{note}/attachments"),
        origin,
    )
    .multipart(form)
    .send()
    .await
    .unwrap()
}

async fn attachments_of(app: &TestApp, note: &str) -> Vec<Value> {
    let (status, list) = app
        .get_json(&format!("/api/v1/notes/{note}/attachments"))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

#[tokio::test]
async fn notes_are_created_and_edited_through_the_forms() {
    let app = TestApp::production().await;
    let cookie = log_in(&app, MASTER).await;
    let (_, list) = page(&app, &cookie, "/admin/notes").await;
    assert!(
        list.contains("href=\"/admin/notes/new\""),
        "a link to the form"
    );
    let (status, form) = page(&app, &cookie, "/admin/notes/new").await;
    assert_eq!(status, StatusCode::OK);
    let token = csrf(&form);

    // Browsers send a textarea's line breaks as CRLF; they are stored as LF.
    let typed = [
        ("csrf", token.as_str()),
        ("title", "Kubernetes upgrade"),
        ("tags", "Work, k8s  ops"),
        ("body", "Drain nodes first.\r\nThen the control plane."),
    ];
    let origin = app.base.clone();
    let res = post_form(&app, &cookie, "/admin/notes/new", &typed, Some(&origin)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res).to_owned();
    let id = to
        .strip_prefix("/admin/notes/")
        .and_then(|r| r.strip_suffix("?created=1"))
        .unwrap_or_else(|| panic!("{to}"))
        .to_owned();
    let (status, note) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(note["title"], "Kubernetes upgrade");
    assert_eq!(note["tags"], json!(["work", "k8s", "ops"]));
    assert_eq!(note["body"], "Drain nodes first.\nThen the control plane.");
    assert_eq!(note["version"], 1);
    let (_, shown) = page(&app, &cookie, &to).await;
    assert!(shown.contains("The note is created."));
    assert!(shown.contains(&format!("href=\"/admin/notes/{id}/edit\"")));
    // Searchable as soon as the form answered, as after the API's create.
    let (_, hits) = app.get_json("/api/v1/search?q=drain").await;
    assert_eq!(hits["total"], 1, "{hits}");

    // The edit form holds the note as stored, and its version.
    let edit = format!("/admin/notes/{id}/edit");
    let (status, form) = page(&app, &cookie, &edit).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(input_value(&form, "title"), "Kubernetes upgrade");
    assert_eq!(input_value(&form, "tags"), "work k8s ops");
    assert_eq!(input_value(&form, "version"), "1");
    assert_eq!(
        textarea(&form),
        "\nDrain nodes first.\nThen the control plane."
    );
    let res = post_form(
        &app,
        &cookie,
        &edit,
        &[
            ("csrf", &token),
            ("version", "1"),
            ("title", "Kubernetes upgrade, done"),
            ("tags", "work"),
            ("body", "\r\nDone on Tuesday.\r\n"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("/admin/notes/{id}?saved=1"));
    let (_, note) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(note["title"], "Kubernetes upgrade, done");
    assert_eq!(note["tags"], json!(["work"]));
    assert_eq!(note["body"], "\nDone on Tuesday.\n");
    assert_eq!(note["version"], 2);
    // A leading line break survives the form (HTML drops the first one
    // after <textarea>, so the page writes one of its own).
    let (_, form) = page(&app, &cookie, &edit).await;
    assert_eq!(textarea(&form), "\n\nDone on Tuesday.\n");

    // Refused input comes back as typed, with the reason, and saves nothing.
    let long = "x".repeat(501);
    let res = post_form(
        &app,
        &cookie,
        &edit,
        &[
            ("csrf", &token),
            ("version", "2"),
            ("title", &long),
            ("tags", "fine"),
            ("body", "kept as typed"),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("at most 500 characters (got 501)"), "{html}");
    assert!(html.contains("aria-invalid=\"true\" aria-describedby=\"title-error\""));
    assert_eq!(input_value(&html, "title"), long);
    assert_eq!(input_value(&html, "tags"), "fine");
    assert_eq!(textarea(&html), "\nkept as typed");
    assert_eq!(input_value(&html, "version"), "2");
    let res = post_form(
        &app,
        &cookie,
        "/admin/notes/new",
        &[("csrf", &token), ("title", "  "), ("body", "no title")],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Title: must not be blank or invisible."),
        "{html}"
    );
    assert_eq!(textarea(&html), "\nno title");
    // A version that is no number is a 400, the text kept.
    let res = post_form(
        &app,
        &cookie,
        &edit,
        &[("csrf", &token), ("version", "two"), ("title", "kept")],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(input_value(&res.text().await.unwrap(), "title"), "kept");

    // Forged forms change nothing.
    let forged = [("title", "forged"), ("version", "2")];
    let res = post_form(&app, &cookie, "/admin/notes/new", &forged, None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post_form(&app, &cookie, &edit, &forged, None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let with_token = [
        ("csrf", token.as_str()),
        ("title", "forged"),
        ("version", "2"),
    ];
    let evil = Some("https://evil.example");
    let res = post_form(&app, &cookie, "/admin/notes/new", &with_token, evil).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post_form(&app, &cookie, &edit, &with_token, evil).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count_notes().await, 1);
    let (_, note) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(note["version"], 2, "{note}");
    // Without a session: to the log-in form, nothing created.
    let res = post_form(&app, "", "/admin/notes/new", &with_token, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/admin/login");
    assert_eq!(app.count_notes().await, 1);
}

#[tokio::test]
async fn an_edit_of_a_version_changed_since_is_a_conflict_not_an_overwrite() {
    let app = TestApp::production().await;
    let note = app
        .create_note(json!({"title": "shared", "body": "first", "tags": ["a"]}))
        .await;
    let id = note["id"].as_str().unwrap();
    let cookie = log_in(&app, MASTER).await;
    let edit = format!("/admin/notes/{id}/edit");
    let (_, form) = page(&app, &cookie, &edit).await;
    let token = csrf(&form);
    assert_eq!(input_value(&form, "version"), "1");
    // Someone else changes it through the API meanwhile.
    let res = app
        .request(Method::PATCH, &format!("/api/v1/notes/{id}"))
        .json(&json!({"body": "theirs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let mine = [
        ("csrf", token.as_str()),
        ("version", "1"),
        ("title", "shared"),
        ("tags", "a"),
        ("body", "mine"),
    ];
    let res = post_form(&app, &cookie, &edit, &mine, None).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("changed by someone else while you edited it"),
        "{html}"
    );
    assert!(html.contains("you started from version 1, it is now at version 2"));
    assert!(html.contains("The note as it is now (version 2)"));
    assert!(html.contains(">theirs</pre>"), "theirs is shown");
    assert_eq!(textarea(&html), "\nmine", "mine is kept in the form");
    let (_, now) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(now["body"], "theirs", "not overwritten");
    assert_eq!(now["version"], 2);

    // Saving again from that page (it now carries version 2) is a
    // deliberate choice, and applies.
    assert_eq!(input_value(&html, "version"), "2");
    let again = [
        ("csrf", token.as_str()),
        ("version", "2"),
        ("title", "shared"),
        ("tags", "a"),
        ("body", "mine"),
    ];
    let res = post_form(&app, &cookie, &edit, &again, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, now) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(now["body"], "mine");
    assert_eq!(now["version"], 3);
    // A note deleted meanwhile: a 404 page, nothing recreated.
    app.request(Method::DELETE, &format!("/api/v1/notes/{id}"))
        .send()
        .await
        .unwrap();
    let res = post_form(&app, &cookie, &edit, &again, None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.count_notes().await, 0);
}

#[tokio::test]
async fn files_upload_through_the_form_with_a_session_and_in_development_mode() {
    for production in [true, false] {
        let app = if production {
            TestApp::production().await
        } else {
            TestApp::spawn().await
        };
        let cookie = if production {
            log_in(&app, MASTER).await
        } else {
            String::new()
        };
        let note = app.create_note(json!({"title": "with files"})).await;
        let id = note["id"].as_str().unwrap();
        let (_, html) = page(&app, &cookie, &format!("/admin/notes/{id}")).await;
        assert!(html.contains("enctype=\"multipart/form-data\""));
        assert!(html.contains("File, at most 100 MiB"));
        let form_at = html.find("enctype=\"multipart/form-data\"").unwrap();
        let token_at = html[form_at..].find("name=\"csrf\"").unwrap();
        let file_at = html[form_at..].find("name=\"file\"").unwrap();
        assert!(token_at < file_at, "the token comes before the file");
        let token = csrf(&html);

        // 200 KiB: far past the 16 KiB of the other admin forms.
        let bytes: Vec<u8> = (0..200 * 1024u32).map(|i| (i % 253) as u8).collect();
        let origin = app.base.clone();
        let form = upload_form(Some(&token), "field notes.bin", bytes.clone());
        let res = post_upload(&app, &cookie, id, form, Some(&origin)).await;
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "production: {production}"
        );
        assert_eq!(location(&res), format!("/admin/notes/{id}?uploaded=1"));
        let list = attachments_of(&app, id).await;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["filename"], "field notes.bin");
        assert_eq!(list[0]["size"], bytes.len());
        assert_eq!(app.db.stored_objects(), 1);
        let (_, shown) = page(&app, &cookie, &format!("/admin/notes/{id}?uploaded=1")).await;
        assert!(shown.contains("The file is uploaded."));
        let link = format!(
            "/admin/attachments/{}/content",
            list[0]["id"].as_str().unwrap()
        );
        assert!(shown.contains(&link));
        let res = browser()
            .get(format!("{}{link}", app.base))
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.bytes().await.unwrap().to_vec(), bytes);

        // A text file becomes searchable, as through the API.
        let text = multipart::Part::bytes(b"The quokka lives on Rottnest Island.".to_vec())
            .file_name("zoo.txt")
            .mime_str("text/plain")
            .unwrap();
        let form = multipart::Form::new()
            .text("csrf", token.clone())
            .part("file", text)
            .text("after", "fields after the file are ignored");
        let res = post_upload(&app, &cookie, id, form, None).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, hits) = app.get_json("/api/v1/search?q=quokka").await;
            if hits["total"] == 1 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never searchable");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(app.db.stored_objects(), 2);
    }
}

#[tokio::test]
async fn an_upload_without_its_token_first_or_from_elsewhere_stores_nothing() {
    let app = TestApp::production().await;
    let cookie = log_in(&app, MASTER).await;
    let note = app.create_note(json!({"title": "guarded"})).await;
    let id = note["id"].as_str().unwrap();
    let (_, html) = page(&app, &cookie, &format!("/admin/notes/{id}")).await;
    let token = csrf(&html);
    let bytes = vec![7u8; 100 * 1024];
    let wrong = "0".repeat(64);
    for (case, form, origin) in [
        ("no token", upload_form(None, "a.bin", bytes.clone()), None),
        (
            "a wrong token",
            upload_form(Some(&wrong), "a.bin", bytes.clone()),
            None,
        ),
        (
            "the token after the file",
            multipart::Form::new()
                .part(
                    "file",
                    multipart::Part::bytes(bytes.clone()).file_name("a.bin"),
                )
                .text("csrf", token.clone()),
            None,
        ),
        (
            "another origin",
            upload_form(Some(&token), "a.bin", bytes.clone()),
            Some("https://evil.example"),
        ),
    ] {
        let res = post_upload(&app, &cookie, id, form, origin).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{case}");
        let html = res.text().await.unwrap();
        assert!(html.contains("<h1>403 Forbidden</h1>"), "{case}: {html}");
    }
    // Not multipart, and an empty file input: clear refusals on the note's page.
    let res = browser()
        .post(format!("{}/admin/notes/{id}/attachments", app.base))
        .header(header::COOKIE, &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("role=\"alert\""));
    let res = post_upload(
        &app,
        &cookie,
        id,
        upload_form(Some(&token), "", vec![]),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("Choose a file to upload."), "{html}");
    assert!(html.contains("aria-describedby=\"upload-error\""));
    // An unknown note: a 404 page.
    let res = post_upload(
        &app,
        &cookie,
        "0190a000-0000-7000-8000-000000000000",
        upload_form(Some(&token), "a.bin", bytes.clone()),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(attachments_of(&app, id).await.is_empty());
    assert_eq!(app.db.stored_objects(), 0, "a refused upload stored bytes");
}

#[tokio::test]
async fn an_oversized_upload_is_413_and_stores_nothing() {
    let app = TestApp::production_with(|c| c.storage.max_upload_bytes = 64 * 1024).await;
    let cookie = log_in(&app, MASTER).await;
    let note = app.create_note(json!({"title": "small files only"})).await;
    let id = note["id"].as_str().unwrap();
    let (_, html) = page(&app, &cookie, &format!("/admin/notes/{id}")).await;
    assert!(html.contains("File, at most 64 KiB"));
    let token = csrf(&html);
    let big: Vec<u8> = vec![1u8; 3 * 1024 * 1024];
    // Declared length: refused before the body is read.
    let form = upload_form(Some(&token), "big.bin", big.clone());
    let res = post_upload(&app, &cookie, id, form, None).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("The file is larger than the limit of 64 KiB: nothing was kept."),
        "{html}"
    );
    // Chunked: found out while the file streams to storage.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    let stream = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let form = multipart::Form::new()
        .text("csrf", token.clone())
        .part("file", multipart::Part::stream(stream).file_name("big.bin"));
    let res = post_upload(&app, &cookie, id, form, None).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(attachments_of(&app, id).await.is_empty());
    assert_eq!(
        app.db.stored_objects(),
        0,
        "an aborted upload left an object"
    );
    // At the limit exactly, it is kept.
    let form = upload_form(Some(&token), "fits.bin", vec![2u8; 64 * 1024]);
    let res = post_upload(&app, &cookie, id, form, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.db.stored_objects(), 1);
}

#[tokio::test]
async fn read_only_mode_hides_the_writing_forms_and_refuses_their_posts() {
    let app = TestApp::spawn().await;
    let note = app
        .create_note(json!({"title": "frozen", "body": "as it was"}))
        .await;
    let id = note["id"].as_str().unwrap().to_owned();
    let db = app.db.clone();
    app.shutdown().await;
    let ro = TestApp::spawn_on(&db, |c| c.server.read_only = true).await;

    let (_, list) = page(&ro, "", "/admin/notes").await;
    assert!(!list.contains("/admin/notes/new"), "no New note link");
    let (status, html) = page(&ro, "", &format!("/admin/notes/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<form method=\"post\""), "no writing form");
    assert!(!html.contains("/edit\""), "no edit link");
    for path in [
        "/admin/notes/new".to_owned(),
        format!("/admin/notes/{id}/edit"),
    ] {
        let (status, html) = page(&ro, "", &path).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert!(html.contains("read-only dataset"), "{path}");
    }
    // Development mode has one token for the process: take it from a page
    // that has a form (there is none here), so post a made-up one; the
    // refusal comes first either way.
    let token = "0".repeat(64);
    for path in [
        "/admin/notes/new".to_owned(),
        format!("/admin/notes/{id}/edit"),
    ] {
        let res = post_form(
            &ro,
            "",
            &path,
            &[("csrf", &token), ("title", "changed"), ("version", "1")],
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    let res = post_upload(
        &ro,
        "",
        &id,
        upload_form(Some(&token), "a.bin", vec![1; 1024]),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(res.text().await.unwrap().contains("read-only dataset"));
    assert_eq!(ro.count_notes().await, 1);
    let (_, now) = ro.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(now["title"], "frozen");
    assert_eq!(now["version"], 1);
    assert!(attachments_of(&ro, &id).await.is_empty());
    assert_eq!(ro.db.stored_objects(), 0);
}

#[tokio::test]
async fn hostile_input_in_the_forms_is_escaped_or_refused_cleanly() {
    let app = TestApp::production().await;
    let cookie = log_in(&app, MASTER).await;
    let (_, form) = page(&app, &cookie, "/admin/notes/new").await;
    let token = csrf(&form);
    let script = "<script>alert(1)</script>";
    let escaped = "&#60;script&#62;alert(1)&#60;/script&#62;";

    // A hostile title is a valid title, shown as text everywhere.
    let res = post_form(
        &app,
        &cookie,
        "/admin/notes/new",
        &[("csrf", &token), ("title", script), ("body", script)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res).to_owned();
    let id = to
        .trim_start_matches("/admin/notes/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    for path in [
        to.clone(),
        format!("/admin/notes/{id}/edit"),
        "/admin/notes".into(),
    ] {
        let (status, html) = page(&app, &cookie, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!html.contains(script), "{path}: {html}");
        assert!(html.contains(escaped), "{path}");
    }

    // A hostile tag is refused; the page names it, escaped, and keeps it.
    let res = post_form(
        &app,
        &cookie,
        "/admin/notes/new",
        &[("csrf", &token), ("title", "t"), ("tags", "ok <script>\"x")],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("Tag “&#60;script&#62;&#34;x”:"), "{html}");
    assert_eq!(input_value(&html, "tags"), "ok &#60;script&#62;&#34;x");
    assert_eq!(app.count_notes().await, 1);

    // A hostile file name: stored as given (without a path), shown as text.
    let name = "<img src=x onerror=alert(1)>.txt";
    let form = upload_form(Some(&token), name, b"hello".to_vec());
    let res = post_upload(&app, &cookie, &id, form, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&app, &cookie, &format!("/admin/notes/{id}")).await;
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&#60;img src=x onerror=alert(1)&#62;.txt"));

    // 6 MB of title: refused whole, before it is read, with a clear page.
    let huge = "t".repeat(6 * 1024 * 1024);
    for path in [
        "/admin/notes/new".to_owned(),
        format!("/admin/notes/{id}/edit"),
    ] {
        let res = post_form(
            &app,
            &cookie,
            &path,
            &[("csrf", &token), ("version", "1"), ("title", &huge)],
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let html = res.text().await.unwrap();
        assert!(html.contains("the form is larger than 4 MiB"), "{path}");
        assert!(html.len() < 64 * 1024, "{path}: the input is not echoed");
    }
    // The same sent without a length is cut off at the limit.
    let body = format!("csrf={token}&title={huge}");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .into_bytes()
        .chunks(256 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let res = browser()
        .post(format!("{}/admin/notes/new", app.base))
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.count_notes().await, 1);
    let (_, note) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(note["title"], script);
    assert_eq!(note["version"], 1);
}

/// A body that sends what `rx` gets, and stays open until `tx` is dropped.
fn held_open(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> reqwest::Body {
    reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// The admin upload is layered as the API's: in the heavy slots (shed with
/// 503 + Retry-After when they are taken, by either), and ended by the
/// upload timeout, leaving nothing behind.
#[tokio::test]
async fn an_admin_upload_is_shed_and_timed_out_like_the_apis() {
    let app = TestApp::production_with(|c| {
        c.limits.max_uploads = 1;
        c.limits.ingest_timeout = 6;
    })
    .await;
    let cookie = log_in(&app, MASTER).await;
    let note = app.create_note(json!({"title": "slow"})).await;
    let id = note["id"].as_str().unwrap().to_owned();
    let (_, html) = page(&app, &cookie, &format!("/admin/notes/{id}")).await;
    let token = csrf(&html);

    // A form upload whose file never ends holds the only upload slot.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(Ok(vec![0u8; 1024])).await.unwrap();
    let form = multipart::Form::new().text("csrf", token.clone()).part(
        "file",
        multipart::Part::stream(held_open(rx)).file_name("slow.bin"),
    );
    let started = std::time::Instant::now();
    let slow = browser()
        .post(format!("{}/admin/notes/{id}/attachments", app.base))
        .header(header::COOKIE, &cookie)
        .multipart(form)
        .send();
    let slow = tokio::spawn(slow);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let form = upload_form(Some(&token), "b.bin", vec![1; 10]);
    let res = post_upload(&app, &cookie, &id, form, None).await;
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a second form upload waits, then is shed"
    );
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    // An upload waiting on its client holds no slot that other work needs.
    let res = app.post_json("/api/v1/notes", &json!({"title": "t"})).await;
    assert_eq!(res.status(), StatusCode::CREATED, "the API's note write");
    let res = post_form(
        &app,
        &cookie,
        "/admin/notes/new",
        &[("csrf", &token), ("title", "t")],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "a note form");
    assert!(
        app.metrics()
            .await
            .contains("route=\"/admin/notes/{id}/attachments\"")
    );

    // The stalled upload ends at the upload timeout, and leaves nothing.
    let res = slow.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(15),
        "{took:?}"
    );
    drop(tx);
    assert!(attachments_of(&app, &id).await.is_empty());
    // The abandoned upload is aborted in the background.
    for _ in 0..50 {
        if app.db.stored_objects() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.db.stored_objects(), 0);
    assert_eq!(app.count_notes().await, 3);
}

/// Issue 25: a note's history in the admin UI: the revisions with who made
/// them, one beside what changed since (escaped), and a restore that needs
/// the form's token and the version the page showed.
#[tokio::test]
async fn a_notes_history_shows_revisions_and_restores_one() {
    let app = TestApp::production().await;
    let note = app
        .create_note(json!({"title": "Plan <b>", "body": "one\ntwo\n"}))
        .await;
    let id = note["id"].as_str().unwrap();
    let res = app
        .request(Method::PATCH, &format!("/api/v1/notes/{id}"))
        .json(&json!({"body": "one\n<i>2</i>\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = log_in(&app, MASTER).await;
    let (_, shown) = page(&app, &cookie, &format!("/admin/notes/{id}")).await;
    assert!(shown.contains(&format!("href=\"/admin/notes/{id}/history\"")));

    let (status, history) = page(&app, &cookie, &format!("/admin/notes/{id}/history")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(history.contains("The current version is 2"), "{history}");
    assert!(history.contains(&format!("href=\"/admin/notes/{id}/history/1\"")));
    assert!(history.contains("<code>master</code>"));
    assert!(
        history.contains("Plan &#60;b&#62;") || history.contains("Plan &lt;b&gt;"),
        "escaped: {history}"
    );

    let revision = format!("/admin/notes/{id}/history/1");
    let (status, html) = page(&app, &cookie, &revision).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("-two"), "{html}");
    assert!(!html.contains("<i>2</i>"), "the diff is escaped: {html}");
    let token = csrf(&html);
    let restore = format!("{revision}/restore");

    // Without the token: refused, nothing changes.
    let res = post_form(&app, &cookie, &restore, &[("current", "2")], None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // From a page that showed another current version: a conflict.
    let stale = [("csrf", token.as_str()), ("current", "1")];
    let res = post_form(&app, &cookie, &restore, &stale, None).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let (_, now) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(now["version"], 2);

    let ok = [("csrf", token.as_str()), ("current", "2")];
    let res = post_form(&app, &cookie, &restore, &ok, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("/admin/notes/{id}?restored=1"));
    let (_, now) = app.get_json(&format!("/api/v1/notes/{id}")).await;
    assert_eq!(
        (now["body"].as_str(), now["version"].as_i64()),
        (Some("one\ntwo\n"), Some(3))
    );
    let (_, shown) = page(&app, &cookie, &format!("/admin/notes/{id}?restored=1")).await;
    assert!(shown.contains("Version 1 is restored, as a new version."));

    // Unknown and malformed versions.
    let (status, _) = page(&app, &cookie, &format!("/admin/notes/{id}/history/9")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = page(&app, &cookie, &format!("/admin/notes/{id}/history/-1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Issue 25: the admin's delete moves a note to the trash; the trash page
/// lists it (escaped) and restores it or deletes it for good, each a form
/// that needs the session's token.
#[tokio::test]
async fn the_trash_page_restores_and_deletes_for_good() {
    let app = TestApp::production().await;
    let note = app
        .create_note(json!({"title": "<img src=x onerror=alert(1)> kept"}))
        .await;
    let id = note["id"].as_str().unwrap();
    let cookie = log_in(&app, MASTER).await;
    let (_, shown) = page(&app, &cookie, &format!("/admin/notes/{id}")).await;
    let token = csrf(&shown);
    let delete = format!("/admin/notes/{id}/delete");
    let res = post_form(&app, &cookie, &delete, &[], None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no token, no delete");
    let res = post_form(&app, &cookie, &delete, &[("csrf", &token)], None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/admin/trash?deleted=1");
    assert_eq!(app.count_notes().await, 0);

    let (status, trash) = page(&app, &cookie, "/admin/trash?deleted=1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(trash.contains("The note is in the trash."));
    assert!(!trash.contains("<img src=x"), "escaped: {trash}");
    assert!(trash.contains(&format!("action=\"/admin/trash/{id}/restore\"")));
    let res = post_form(
        &app,
        &cookie,
        &format!("/admin/trash/{id}/restore"),
        &[("csrf", &token)],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        format!("/admin/notes/{id}?restored_from_trash=1")
    );
    assert_eq!(app.count_notes().await, 1);
    let (_, back) = page(
        &app,
        &cookie,
        &format!("/admin/notes/{id}?restored_from_trash=1"),
    )
    .await;
    assert!(back.contains("The note is back from the trash."));

    post_form(&app, &cookie, &delete, &[("csrf", &token)], None).await;
    let purge = format!("/admin/trash/{id}/delete");
    let res = post_form(&app, &cookie, &purge, &[("csrf", "wrong")], None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post_form(&app, &cookie, &purge, &[("csrf", &token)], None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, empty) = page(&app, &cookie, "/admin/trash?purged=1").await;
    assert!(empty.contains("The trash is empty."));
    assert!(empty.contains("deleted for good"));
    let res = post_form(&app, &cookie, &purge, &[("csrf", &token)], None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "already gone");
}

#[tokio::test]
async fn the_webhooks_page_shows_deliveries_and_sends_one_again() {
    let app = TestApp::production().await;
    let res = app
        .post_json(
            "/api/v1/webhooks",
            &json!({"url": "https://hooks.example.org/<b>in</b>", "events": ["*"], "description": "<script>x</script>"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let hook: serde_json::Value = res.json().await.unwrap();
    let id = hook["id"].as_str().unwrap();
    let res = app
        .request(Method::POST, &format!("/api/v1/webhooks/{id}/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let ping: serde_json::Value = res.json().await.unwrap();
    let delivery = ping["id"].as_str().unwrap();

    let cookie = log_in(&app, MASTER).await;
    let (status, shown) = page(&app, &cookie, "/admin/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert!(shown.contains("hooks.example.org"), "{shown}");
    assert!(!shown.contains("<script>x"), "escaped: {shown}");
    assert!(shown.contains("<code>ping</code>"), "{shown}");
    assert!(
        !shown.contains(hook["secret"].as_str().unwrap()),
        "never the secret"
    );
    let token = csrf(&shown);
    let again = format!("/admin/webhooks/{id}/deliveries/{delivery}/redeliver");
    let res = post_form(&app, &cookie, &again, &[], None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no token, no send");
    let res = post_form(&app, &cookie, &again, &[("csrf", &token)], None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/admin/webhooks?redelivered=1");
    let (_, page2) = page(&app, &cookie, "/admin/webhooks?redelivered=1").await;
    assert!(page2.contains("queued to be sent again"));
    assert_eq!(page2.matches("<code>ping</code>").count(), 2, "{page2}");
    let bad = format!("/admin/webhooks/{id}/deliveries/nope/redeliver");
    let res = post_form(&app, &cookie, &bad, &[("csrf", &token)], None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
