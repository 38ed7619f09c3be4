//! The admin UI over HTTP: log-in and sessions, the cookie's flags, CSRF
//! and origin checks, the security headers, what each page shows, and
//! hostile input. The same pages in a real browser: `tests/admin/`.

use std::time::Duration;

use reqwest::{Method, StatusCode, header, redirect::Policy};
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

async fn post_form(
    app: &TestApp,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> reqwest::Response {
    let mut req = browser()
        .post(format!("{}{path}", app.base))
        .header(header::COOKIE, cookie)
        .form(form);
    if let Some(o) = origin {
        req = req.header(header::ORIGIN, o);
    }
    req.send().await.unwrap()
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
        "/admin/notes/0190a000-0000-7000-8000-000000000000",
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
    let app = TestApp::production_with(|c| c.admin_secure_cookie = Some(false)).await;
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
        c.job_max_attempts = 1;
        c.job_poll_ms = 50;
        c.backup_destinations = vec![std::env::temp_dir().display().to_string()];
    })
    .await;
    let blocker = app.db.dir().join("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let to = blocker.join("backups").display().to_string();
    let job = app.enqueue("backup", json!({"to": to})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let dead = app.finished(&id).await;
    assert_eq!(dead["status"], "dead", "{dead}");
    app.enqueue("ping", json!({})).await;

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
