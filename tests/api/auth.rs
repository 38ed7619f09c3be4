use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use notes_api::config::Secret;

use crate::common::{MASTER, TestApp, assert_problem};

#[tokio::test]
async fn development_mode_needs_no_key() {
    let app = TestApp::spawn().await;
    app.create_note(json!({"title": "open"})).await;
    let res = app.get("/api/v1/keys").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// A set master key is enforced whatever NOTES_ENV says: before, a
/// development-mode process with a key served every route without one.
#[tokio::test]
async fn a_master_key_is_enforced_in_development_mode_too() {
    let mut app = TestApp::spawn_with(|c| c.server.master_key = Some(Secret::new(MASTER))).await;
    let res = app.get("/api/v1/notes").send().await.unwrap();
    assert_problem(res, StatusCode::UNAUTHORIZED).await;
    app.token = Some(MASTER.to_owned());
    let res = app.get("/api/v1/notes").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn production_requires_a_key_on_api_routes_only() {
    let mut app = TestApp::production().await;
    app.token = None;
    for (method, path) in [
        (Method::GET, "/api/v1/notes"),
        (Method::POST, "/api/v1/notes"),
        (Method::GET, "/api/v1/search?q=a"),
        (Method::POST, "/api/v1/ingest"),
        (Method::GET, "/api/v1/keys"),
        (
            Method::DELETE,
            "/api/v1/keys/0190a000-0000-7000-8000-000000000000",
        ),
    ] {
        let res = app.request(method.clone(), path).send().await.unwrap();
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer",
            "{method} {path}"
        );
        assert_problem(res, StatusCode::UNAUTHORIZED).await;
    }
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/version",
        "/openapi.json",
    ] {
        assert_eq!(
            app.get(path).send().await.unwrap().status(),
            StatusCode::OK,
            "{path}"
        );
    }
    // Garbage credentials.
    for header in [
        "Bearer",
        "Bearer ",
        "Basic abc",
        "Bearer nk_0000",
        "bearer wrong",
        &format!("Bearer {MASTER}x"),
    ] {
        let res = app
            .get("/api/v1/notes")
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_problem(res, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn scopes_are_enforced() {
    let app = TestApp::production().await;
    let (_, read) = app.key(&["read"]).await;
    let (_, write) = app.key(&["write"]).await;
    let (_, admin) = app.key(&["admin"]).await;
    let note = app.create_note(json!({"title": "seed"})).await;
    let note_path = format!("/api/v1/notes/{}", note["id"].as_str().unwrap());

    let call = |key: &str, method: Method, path: &str, body: Option<Value>| {
        let mut req = app
            .client
            .request(method, format!("{}{}", app.base, path))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    // read: may read and search, may not write.
    assert_eq!(
        call(&read, Method::GET, "/api/v1/notes", None)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&read, Method::GET, &note_path, None)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&read, Method::GET, "/api/v1/search?q=seed", None)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let res = call(
        &read,
        Method::POST,
        "/api/v1/notes",
        Some(json!({"title": "x"})),
    )
    .await
    .unwrap();
    assert_problem(res, StatusCode::FORBIDDEN).await;
    let res = call(&read, Method::DELETE, &note_path, None).await.unwrap();
    assert_problem(res, StatusCode::FORBIDDEN).await;
    // write: includes read.
    let res = call(
        &write,
        Method::POST,
        "/api/v1/notes",
        Some(json!({"title": "by write"})),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(
        call(&write, Method::GET, "/api/v1/notes", None)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // admin: includes write, but keys are the master key's alone.
    let res = call(
        &admin,
        Method::PATCH,
        &note_path,
        Some(json!({"body": "x"})),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for key in [&read, &write, &admin] {
        let res = call(key, Method::GET, "/api/v1/keys", None).await.unwrap();
        assert_problem(res, StatusCode::FORBIDDEN).await;
        let res = call(
            key,
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "x", "scopes": ["admin"]})),
        )
        .await
        .unwrap();
        assert_problem(res, StatusCode::FORBIDDEN).await;
    }
    // Nothing the read key tried was written.
    assert_eq!(app.count_notes().await, 2);
}

#[tokio::test]
async fn keys_are_listed_without_secrets_and_revoked_at_once() {
    let app = TestApp::production().await;
    let (id, secret) = app.key(&["read", "write"]).await;
    assert!(secret.starts_with("nk_"));
    let res = app.get("/api/v1/keys").send().await.unwrap();
    let text = res.text().await.unwrap();
    assert!(!text.contains(&secret), "a listed key leaked its secret");
    let keys: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(keys[0]["id"], id);
    assert_eq!(keys[0]["scopes"], json!(["read", "write"]));
    assert!(keys[0].get("key").is_none());

    let use_key = || {
        app.client
            .get(format!("{}/api/v1/notes", app.base))
            .bearer_auth(&secret)
            .send()
    };
    assert_eq!(use_key().await.unwrap().status(), StatusCode::OK);
    let res = app
        .request(Method::DELETE, &format!("/api/v1/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(use_key().await.unwrap(), StatusCode::UNAUTHORIZED).await;
    let res = app
        .request(Method::DELETE, &format!("/api/v1/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn key_requests_are_validated() {
    let app = TestApp::production().await;
    for body in [
        json!({"name": "", "scopes": ["read"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "x"}),
        json!({"name": "x\u{7}", "scopes": ["read"]}),
        json!({"name": "x".repeat(101), "scopes": ["read"]}),
    ] {
        let res = app.post_json("/api/v1/keys", &body).await;
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let res = app.get("/api/v1/keys").send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!([]));
}

/// Issue 21, defect 7 (DNS rebinding): a page on `attacker.example` that
/// points its name at 127.0.0.1 sends `Host: attacker.example`. Before, a
/// development server (no key checked) gave it the admin CSRF token, a new
/// key and the open API. Now every such request is a 421 that changes
/// nothing; loopback names, IP addresses and NOTES_PUBLIC_URL's host are
/// served, and so are the probes whatever the name.
#[tokio::test]
async fn development_mode_answers_only_the_names_it_is_reached_by() {
    let app = TestApp::spawn().await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let rebound = |method: Method, path: &str| {
        app.request(method, path)
            .header("host", "attacker.example")
            .header("origin", "http://attacker.example")
    };
    for (method, path) in [
        (Method::GET, "/admin/keys"),
        (Method::GET, "/admin/notes"),
        (Method::GET, "/api/v1/notes"),
        (Method::GET, "/api/v1/keys"),
        (Method::GET, "/openapi.json"),
    ] {
        let res = rebound(method.clone(), path).send().await.unwrap();
        let problem = assert_problem(res, StatusCode::MISDIRECTED_REQUEST).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("NOTES_PUBLIC_URL"),
            "{method} {path}: {problem}"
        );
    }
    let res = rebound(Method::POST, "/api/v1/keys")
        .json(&json!({"name": "stolen", "scopes": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::MISDIRECTED_REQUEST).await;
    let res = rebound(Method::POST, "/api/v1/notes")
        .json(&json!({"title": "planted"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::MISDIRECTED_REQUEST).await;
    // Even with the page's valid token (read here under a good name), the
    // form is refused: before, Origin and Host agreeing let it through.
    let html = app
        .get("/admin/keys")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let token = &html[at..at + 64];
    let res = rebound(Method::POST, "/admin/keys")
        .form(&[("csrf", token), ("name", "stolen"), ("scope", "admin")])
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::MISDIRECTED_REQUEST).await;
    let keys: Value = app
        .get("/api/v1/keys")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys, json!([]), "a rebound page created a key");
    assert_eq!(app.count_notes().await, 0, "a rebound page created a note");

    // The names a developer reaches the server by.
    for host in [
        format!("localhost:{port}"),
        format!("notes.localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "192.168.1.20".to_owned(),
    ] {
        let res = app
            .get("/api/v1/notes")
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{host}");
    }
    // Probes come from kubelets and load balancers under any name.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let res = rebound(Method::GET, path).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }

    // NOTES_PUBLIC_URL names one more host.
    let public =
        TestApp::spawn_with(|c| c.server.public_url = Some("https://Notes.Example.com".into()))
            .await;
    let res = public
        .get("/api/v1/notes")
        .header("host", "notes.example.com:443")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = public
        .get("/api/v1/notes")
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::MISDIRECTED_REQUEST).await;

    // Production: keys protect every route, whatever the name.
    let prod = TestApp::production().await;
    let res = prod
        .get("/api/v1/notes")
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Issue 21: the answer that holds a new key's secret said nothing about
/// caching; it is `Cache-Control: no-store` now.
#[tokio::test]
async fn a_new_keys_secret_is_never_cached() {
    let app = TestApp::production().await;
    let res = app
        .post_json("/api/v1/keys", &json!({"name": "ci", "scopes": ["read"]}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let created: Value = res.json().await.unwrap();
    assert!(created["key"].as_str().unwrap().starts_with("nk_"));
}
