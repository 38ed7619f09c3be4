use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, assert_problem};

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/health"] {
        let (status, body) = app.get_json(path).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    }
    for path in ["/readyz", "/ready"] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["ready"], true);
        assert_eq!(body["checks"]["database"], "ok");
    }
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone_but_liveness_does_not() {
    let app = TestApp::spawn().await;
    app.state.store().close().await;
    let body = app.wait_ready(StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["ready"], false);
    // The probe is public: the driver's words stay in the log.
    assert_eq!(body["checks"]["database"], "unavailable", "{body}");
    assert_eq!(
        app.get("/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
    // Requests needing the database say 503, without internals.
    let res = app.post_json("/api/v1/notes", &json!({"title": "t"})).await;
    let p = assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(!p["detail"].as_str().unwrap().contains("sqlx"));
}

#[tokio::test]
async fn metrics_use_route_templates() {
    let app = TestApp::spawn().await;
    let note = app.create_note(json!({"title": "m"})).await;
    let id = note["id"].as_str().unwrap();
    app.get(&format!("/api/v1/notes/{id}"))
        .send()
        .await
        .unwrap();
    app.get("/no/such/path").send().await.unwrap();
    let text = app.metrics().await;
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/api/v1/notes/{id}",status="200"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="POST",route="/api/v1/notes",status="201"}"#)
    );
    assert!(text.contains(r#"route="unmatched""#));
    assert!(!text.contains(id), "a raw path leaked into a label");
    assert!(text.contains("http_request_duration_seconds_bucket{"));
    assert!(text.contains("notes_build_info{"));
}

#[tokio::test]
async fn unknown_methods_do_not_mint_metric_labels() {
    let app = TestApp::spawn().await;
    for n in 0..20 {
        let method =
            Method::from_bytes(format!("XMINT{n:04}{}", "Q".repeat(2000)).as_bytes()).unwrap();
        let res = app.request(method, "/healthz").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = app.metrics().await;
    assert!(!text.contains("XMINT"), "a raw method became a label");
    // All twenty under one label value, whatever route the 405 is counted on.
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"http_requests_total{method="other","#)
                && l.contains(r#"status="405""#)
                && l.ends_with(" 20")),
        "{text}"
    );
}

#[tokio::test]
async fn version_openapi_and_docs() {
    let app = TestApp::spawn().await;
    let (_, v) = app.get_json("/version").await;
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["git_sha"].is_string());

    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/notes",
        "/api/v1/notes/{id}",
        "/api/v1/ingest",
        "/api/v1/search",
        "/api/v1/keys",
        "/readyz",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    let res = app.get("/docs/").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().to_lowercase().contains("swagger"));
    // The UI's assets are served by the binary, not a CDN.
    let res = app.get("/docs/swagger-ui-bundle.js").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated_and_sanitized() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/healthz")
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = app.get("/healthz").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"].len(), 36);
    let res = app
        .get("/healthz")
        .header("x-request-id", "bad id\twith\"stuff")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "bad id\twith\"stuff");
    let res = app
        .get("/healthz")
        .header("x-request-id", "a".repeat(500))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"].len(), 36);
}

#[tokio::test]
async fn read_only_mode_refuses_writes_and_serves_reads() {
    let app = TestApp::spawn().await;
    app.create_note(json!({"title": "kept", "body": "readable"}))
        .await;
    let db = app.db.clone();
    app.shutdown().await;
    let ro = TestApp::spawn_on(&db, |c| c.server.read_only = true).await;
    let res = ro.post_json("/api/v1/notes", &json!({"title": "t"})).await;
    let p = assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
    assert!(p["detail"].as_str().unwrap().contains("read-only"));
    let res = ro
        .request(Method::POST, "/api/v1/ingest")
        .body("")
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
    let (status, hits) = ro.get_json("/api/v1/search?q=readable").await;
    assert_eq!(status, StatusCode::OK, "{hits}");
    assert_eq!(hits["total"], 1);
    assert_eq!(ro.count_notes().await, 1);
}

#[tokio::test]
async fn cors_is_off_by_default_and_allow_listed_when_configured() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/api/v1/notes")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let app =
        TestApp::spawn_with(|c| c.server.cors_origins = vec!["https://app.example".into()]).await;
    let res = app
        .request(Method::OPTIONS, "/api/v1/notes")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let res = app
        .get("/api/v1/notes")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn every_error_is_problem_json() {
    let app = TestApp::spawn().await;
    let res = app
        .request(Method::DELETE, "/healthz")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("allow").is_some());
    assert_problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
    let res = app.get("/api/v2/notes").send().await.unwrap();
    assert_problem(res, StatusCode::NOT_FOUND).await;
    let v: Value = app.get_json("/api/v1/notes/zzz").await.1;
    assert_eq!(v["status"], 404);
}

/// The spec says what the layers answer: problem+json errors, and 401,
/// 403, 429 and 503 on every API operation (schemathesis found them
/// undocumented); the readiness 503 stays plain JSON.
#[tokio::test]
async fn the_spec_documents_every_error_the_layers_send() {
    let app = TestApp::spawn().await;
    let (_, spec) = app.get_json("/openapi.json").await;
    for (path, method) in [
        ("/api/v1/notes", "post"),
        ("/api/v1/search", "get"),
        ("/api/v1/ingest", "post"),
        ("/api/v1/keys/{id}", "delete"),
    ] {
        let responses = &spec["paths"][path][method]["responses"];
        for status in ["400", "401", "403", "422", "429", "503"] {
            assert!(
                responses[status]["content"]["application/problem+json"].is_object(),
                "{method} {path} {status}: {}",
                responses[status]
            );
            assert!(responses[status]["content"]["application/json"].is_null());
        }
    }
    let ready = &spec["paths"]["/readyz"]["get"]["responses"]["503"]["content"];
    assert!(ready["application/json"].is_object(), "{ready}");
}

/// What client generators need from the document (scripts/clients.sh
/// generates and uses clients): a request shape per job kind, metadata that
/// is no recursive union (openapi-python-client drops one, and with it
/// every schema holding a note), ingest's JSON-array body beside NDJSON, and
/// uploads as binary bodies.
#[tokio::test]
async fn the_spec_gives_generators_typed_jobs_notes_ingest_and_uploads() {
    let app = TestApp::spawn().await;
    let (_, spec) = app.get_json("/openapi.json").await;
    let schemas = &spec["components"]["schemas"];
    let named = |r: &Value| {
        let name = r["$ref"].as_str().unwrap_or_default();
        schemas[name.trim_start_matches("#/components/schemas/")].clone()
    };

    let jobs = &spec["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["application/json"];
    let request = named(&jobs["schema"]);
    assert_eq!(request["discriminator"]["propertyName"], "kind");
    let kinds: Vec<&String> = request["discriminator"]["mapping"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        kinds,
        [
            "add",
            "backup",
            "deliver_webhook",
            "extract_text",
            "import",
            "ping",
            "purge",
            "reindex"
        ]
    );
    let add = &schemas["AddJobRequest"];
    assert_eq!(add["properties"]["kind"]["const"], "add");
    assert_eq!(add["required"], json!(["kind", "args"]));
    let add_args = named(&add["properties"]["args"]);
    assert_eq!(add_args["required"], json!(["x", "y"]));
    assert_eq!(add_args["additionalProperties"], false);

    let metadata = &schemas["Note"]["properties"]["metadata"];
    let metadata = named(metadata);
    assert_eq!(metadata["type"], "object");
    let description = metadata["description"].as_str().unwrap();
    assert!(description.contains("65536 bytes") && description.contains("32 levels"));
    let value = named(&metadata["additionalProperties"]);
    assert!(
        value.get("type").is_none() && value.get("oneOf").is_none(),
        "{value}"
    );
    // The NUL rule still holds at every depth for a validator.
    assert_eq!(value["pattern"], r"^[^\u0000]*$");
    assert_eq!(value["items"]["$ref"], "#/components/schemas/MetadataValue");
    assert_eq!(value["then"]["$ref"], "#/components/schemas/Metadata");

    let ingest = &spec["paths"]["/api/v1/ingest"]["post"]["requestBody"];
    for media in ["application/json", "application/x-ndjson"] {
        let schema = &ingest["content"][media]["schema"];
        assert_eq!(schema["type"], "array", "{media}");
        assert_eq!(schema["items"]["$ref"], "#/components/schemas/NoteDraft");
    }
    assert_eq!(ingest["required"], true);

    let upload = &spec["paths"]["/api/v1/notes/{id}/attachments"]["post"]["requestBody"];
    let raw = named(&upload["content"]["application/octet-stream"]["schema"]);
    assert_eq!(raw["type"], "string");
    assert_eq!(raw["contentMediaType"], "application/octet-stream");
    let form = named(&upload["content"]["multipart/form-data"]["schema"]);
    assert_eq!(form["required"], json!(["file"]));
    assert_eq!(form["properties"]["file"], raw);
    // No body is an empty file.
    assert!(upload.get("required").is_none(), "{upload}");

    // OpenAPI requires unique operation ids; generators key their
    // functions and types by them.
    let mut ids: Vec<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operation ids among {ids:?}");
}
