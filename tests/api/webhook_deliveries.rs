//! Issue 24, webhooks through the API: created, changed and deleted by an
//! admin; every change of the feed delivered to a real receiver that
//! verifies it with the `standardwebhooks` library; retried, redelivered,
//! rotated, disabled; once across replicas; completed after a worker is
//! killed mid-delivery.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    common::{TestApp, TestDb, assert_problem},
    webhooks::Receiver,
    workers::worker,
};

/// Production, with the receiver's loopback network allowed and quick
/// retries.
async fn app_with(retries: &str) -> TestApp {
    let retries = retries.to_owned();
    TestApp::production_with(move |c| {
        c.webhooks.webhook_allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
        c.webhooks.webhook_retry_schedule = retries;
    })
    .await
}

async fn create_hook(app: &TestApp, url: &str, events: Value) -> Value {
    let res = app
        .post_json("/api/v1/webhooks", &json!({"url": url, "events": events}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.unwrap()
}

async fn patch_hook(app: &TestApp, id: &str, body: Value) -> Value {
    let res = app
        .request(Method::PATCH, &format!("/api/v1/webhooks/{id}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// Waits until the receiver holds `n` records (panics after 60 s).
async fn wait_records(receiver: &Receiver, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = receiver.records();
        if got.len() >= n {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} deliveries arrived: {got:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the webhook's newest delivery is settled.
async fn wait_settled(app: &TestApp, hook: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, page) = app
            .get_json(&format!("/api/v1/webhooks/{hook}/deliveries"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        if let Some(d) = page["deliveries"].get(0)
            && d["status"] != "pending"
        {
            return d.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A webhook for `events`, delivering to a receiver started with its
/// secret (known only once the webhook exists) at `path`: its id, its
/// secret and the receiver; `None` without the receiver's Python.
async fn hooked(app: &TestApp, events: Value, path: &str) -> Option<(String, String, Receiver)> {
    let hook = create_hook(app, "https://receiver-starts-later.example.org/", events).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let receiver = Receiver::start(&secret, None)?;
    patch_hook(app, &id, json!({"url": receiver.url(path)})).await;
    Some((id, secret, receiver))
}

fn body(record: &Value) -> Value {
    serde_json::from_str(record["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_webhook_is_created_read_changed_and_deleted_by_an_admin() {
    let app = app_with("").await;
    let hook = create_hook(
        &app,
        "https://hooks.example.org/in",
        json!(["note.created"]),
    )
    .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{hook}");
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["events"], json!(["note.created"]));

    // Listed and read without the secret.
    let (_, list) = app.get_json("/api/v1/webhooks").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("secret").is_none(), "{list}");
    let (status, one) = app.get_json(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(one.get("secret").is_none() && one["url"] == "https://hooks.example.org/in");

    // Changed: events, description, disabled; no secret in the answer.
    let changed = patch_hook(
        &app,
        &id,
        json!({"events": ["*"], "description": "sync", "enabled": false}),
    )
    .await;
    assert_eq!(changed["events"], json!(["*"]));
    assert_eq!(changed["description"], "sync");
    assert_eq!(changed["enabled"], false);
    assert!(changed.get("secret").is_none());
    // A disabled webhook is not pinged.
    let res = app
        .request(Method::POST, &format!("/api/v1/webhooks/{id}/ping"))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::CONFLICT).await;
    // Rotated: a new secret, once.
    let rotated = patch_hook(&app, &id, json!({"rotate_secret": true})).await;
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    // The database holds it sealed, not in clear.
    let stored = app
        .state
        .store()
        .get_webhook(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored
            .secret
            .contains(new_secret.trim_start_matches("whsec_"))
    );

    let res = app
        .request(Method::DELETE, &format!("/api/v1/webhooks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (status, _) = app.get_json(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_and_inside_targets_are_refused_at_creation() {
    let app = TestApp::production().await;
    for (body, field) in [
        (json!({"url": "ftp://example.org/", "events": ["*"]}), "url"),
        (
            json!({"url": "https://u:p@example.org/", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://example.org/#x", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://example.org/", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.org/", "events": ["note.eaten"]}),
            "events",
        ),
        (
            json!({"url": "https://example.org/", "events": ["*"], "description": "a\u{0}b"}),
            "description",
        ),
        // Inside addresses, and a name that resolves to one.
        (
            json!({"url": "http://127.0.0.1:9/", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "http://localhost:9/", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "http://169.254.169.254/latest/", "events": ["*"]}),
            "url",
        ),
        (json!({"url": "http://10.0.0.1/", "events": ["*"]}), "url"),
        (json!({"url": "http://[::1]/", "events": ["*"]}), "url"),
        // Plain http to a public address, in production.
        (
            json!({"url": "http://93.184.216.34/", "events": ["*"]}),
            "url",
        ),
    ] {
        let res = app.post_json("/api/v1/webhooks", &body).await;
        let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    for body in [
        json!({"url": "https://example.org/", "events": ["*"], "secret": "mine"}),
        json!({"url": 7, "events": ["*"]}),
        json!({"events": ["*"]}),
        json!("https://example.org/"),
    ] {
        let res = app.post_json("/api/v1/webhooks", &body).await;
        assert!(res.status().is_client_error(), "{body}: {}", res.status());
    }
    let res = app
        .request(Method::POST, "/api/v1/webhooks")
        .header("content-type", "application/json")
        .body(vec![b'{', 0xff, b'}'])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    assert!(
        app.state.store().list_webhooks().await.unwrap().is_empty(),
        "nothing stored"
    );

    // Admin scope only; ids that are not ids are 404.
    let (_, write_key) = app.key(&["write"]).await;
    let res = app
        .client
        .get(format!("{}/api/v1/webhooks", app.base))
        .bearer_auth(&write_key)
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::FORBIDDEN).await;
    let res = app
        .client
        .get(format!("{}/api/v1/webhooks", app.base))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNAUTHORIZED).await;
    for path in [
        "/api/v1/webhooks/%2e%2e%2fkeys",
        "/api/v1/webhooks/not-an-id",
        "/api/v1/webhooks/0196f0a0-0000-7000-8000-000000000000",
    ] {
        let (status, _) = app.get_json(path).await;
        assert!(status == StatusCode::NOT_FOUND, "{path}: {status}");
    }
    let res = app
        .request(Method::PUT, "/api/v1/webhooks")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn every_change_arrives_signed_in_order_and_verified() {
    let app = app_with("").await;
    // The secret is known only once the webhook exists: create it, then
    // start the receiver with it and point the webhook there.
    let Some((id, _, receiver)) = hooked(&app, json!(["*"]), "/ok").await else {
        return;
    };

    let note = app
        .create_note(json!({"title": "hooked", "body": "b"}))
        .await;
    let note_id = note["id"].as_str().unwrap().to_owned();
    wait_records(&receiver, 1).await;
    let res = app
        .request(Method::PATCH, &format!("/api/v1/notes/{note_id}"))
        .json(&json!({"body": "changed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    wait_records(&receiver, 2).await;
    let res = app
        .request(Method::DELETE, &format!("/api/v1/notes/{note_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let got = wait_records(&receiver, 3).await;

    let types: Vec<_> = got.iter().map(|r| body(r)["type"].clone()).collect();
    assert_eq!(types, ["note.created", "note.updated", "note.deleted"]);
    for r in &got {
        assert_eq!(r["verified"], true, "{r}");
        let b = body(r);
        assert_eq!(b["data"]["note_id"], note_id.as_str(), "{b}");
        assert!(
            b["data"]["cursor"].is_string() && b["timestamp"].is_string(),
            "{b}"
        );
        assert!(r["id"].as_str().unwrap().starts_with("msg_"));
    }
    let ids: std::collections::HashSet<_> = got.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids.len(), 3, "one message per event");

    // The deliveries API shows each, succeeded at the first attempt.
    wait_settled(&app, &id).await;
    let (_, page) = app
        .get_json(&format!("/api/v1/webhooks/{id}/deliveries"))
        .await;
    let deliveries = page["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 3, "{page}");
    assert_eq!(deliveries[0]["event"], "note.deleted", "newest first");
    for d in deliveries {
        assert_eq!(d["status"], "succeeded", "{d}");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["attempt_log"][0]["status_code"], 200);
    }
    // (Counters are the test process's, shared by every test's app.)
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("webhook_deliveries_total{outcome=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("webhook_delivery_duration_seconds_bucket"));
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_once_it_answers() {
    let app = app_with("1s,1s,1s").await;
    let Some((id, _, receiver)) = hooked(&app, json!(["note.created"]), "/fail/2/k").await else {
        return;
    };
    let note = app
        .create_note(json!({"title": "persistent", "body": "b"}))
        .await;

    let got = wait_records(&receiver, 3).await;
    let done = wait_settled(&app, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 3);
    let codes: Vec<_> = done["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, [json!(200), json!(500), json!(500)], "newest first");
    // The same message every time, each signed afresh and verified.
    assert!(
        got.iter()
            .all(|r| r["id"] == got[0]["id"] && r["verified"] == true)
    );
    assert_eq!(body(&got[0])["data"]["note_id"], note["id"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.records().len(), 3, "no attempt after the success");
    let (_, hook) = app.get_json(&format!("/api/v1/webhooks/{id}")).await;
    assert!(
        hook.get("failing_since").is_none(),
        "a success clears it: {hook}"
    );
}

#[tokio::test]
async fn ping_redeliver_and_rotation_follow_the_secret() {
    let app = app_with("").await;
    let Some((id, old, receiver)) = hooked(&app, json!(["note.created"]), "/ok").await else {
        return;
    };

    let res = app
        .request(Method::POST, &format!("/api/v1/webhooks/{id}/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let ping: Value = res.json().await.unwrap();
    assert_eq!(
        (ping["event"].as_str(), ping["status"].as_str()),
        (Some("ping"), Some("pending"))
    );
    let got = wait_records(&receiver, 1).await;
    assert_eq!(body(&got[0])["type"], "ping");
    assert_eq!(got[0]["verified"], true);

    // A redelivery: a new delivery of the same message.
    wait_settled(&app, &id).await;
    let res = app
        .request(
            Method::POST,
            &format!(
                "/api/v1/webhooks/{id}/deliveries/{}/redeliver",
                ping["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let again: Value = res.json().await.unwrap();
    assert_ne!(again["id"], ping["id"]);
    assert_eq!(again["message_id"], ping["message_id"]);
    let got = wait_records(&receiver, 2).await;
    assert_eq!(got[1]["id"], got[0]["id"], "the same webhook-id");
    for bad in [
        format!(
            "/api/v1/webhooks/{id}/deliveries/{}/redeliver",
            uuid::Uuid::now_v7()
        ),
        format!(
            "/api/v1/webhooks/{}/deliveries/{}/redeliver",
            uuid::Uuid::now_v7(),
            ping["id"].as_str().unwrap()
        ),
    ] {
        let res = app.request(Method::POST, &bad).send().await.unwrap();
        assert_problem(res, StatusCode::NOT_FOUND).await;
    }

    // Rotated: the new secret verifies, the old one no longer does.
    let rotated = patch_hook(&app, &id, json!({"rotate_secret": true})).await;
    let new = rotated["secret"].as_str().unwrap();
    let Some(second) = Receiver::start(new, Some(&old)) else {
        return;
    };
    patch_hook(&app, &id, json!({"url": second.url("/ok")})).await;
    app.create_note(json!({"title": "after rotation", "body": "b"}))
        .await;
    let got = wait_records(&second, 1).await;
    assert_eq!(got[0]["verified"], true, "{:?}", got[0]);
    assert_eq!(got[0]["verified_old"], false, "{:?}", got[0]);

    // The deliveries page: newest first, in pages.
    let (_, page) = app
        .get_json(&format!("/api/v1/webhooks/{id}/deliveries?limit=1"))
        .await;
    assert_eq!(page["deliveries"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = app
        .get_json(&format!(
            "/api/v1/webhooks/{id}/deliveries?limit=5&cursor={cursor}"
        ))
        .await;
    assert_eq!(next["deliveries"].as_array().unwrap().len(), 2, "{next}");
    assert!(next["next_cursor"].is_null());
    for bad in ["limit=0", "limit=101", "cursor=nope", "limit=x"] {
        let res = app
            .get(&format!("/api/v1/webhooks/{id}/deliveries?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_a_webhook_that_keeps_failing_is_disabled() {
    let app = TestApp::production_with(|c| {
        c.webhooks.webhook_allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
        c.webhooks.webhook_retry_schedule = "1s,1s,1s".into();
        c.webhooks.webhook_disable_after = "2s".into();
    })
    .await;
    let Some((id, _, receiver)) = hooked(
        &app,
        json!(["note.created"]),
        "/redirect?to=http://10.0.0.1/steal",
    )
    .await
    else {
        return;
    };
    app.create_note(json!({"title": "lured", "body": "b"}))
        .await;

    let done = wait_settled(&app, &id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let last = &done["attempt_log"][0];
    assert_eq!(last["status_code"], 302);
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed")
    );
    assert!(
        receiver.records().iter().all(|r| r["path"] == "/redirect"),
        "no second hop"
    );
    // Failing for longer than NOTES_WEBHOOK_DISABLE_AFTER: disabled, said
    // why, counted.
    let (_, hook) = app.get_json(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(hook["enabled"], false, "{hook}");
    assert!(
        hook["disabled_reason"].as_str().unwrap().contains("failed"),
        "{hook}"
    );
    assert!(app.metrics().await.contains("webhooks_disabled_total "));
    // Enabled again: it listens from then on, its failures forgotten.
    let again = patch_hook(
        &app,
        &id,
        json!({"enabled": true, "url": receiver.url("/ok")}),
    )
    .await;
    assert!(again.get("disabled_reason").is_none() && again.get("failing_since").is_none());
    let before = receiver.records().len();
    app.create_note(json!({"title": "welcome back", "body": "b"}))
        .await;
    let got = wait_records(&receiver, before + 1).await;
    assert_eq!(body(&got[before])["type"], "note.created");
}

#[tokio::test]
async fn two_replicas_deliver_each_event_exactly_once() {
    let a = app_with("1s").await;
    let mut b = TestApp::spawn_on(&a.db, |c| {
        c.server.env = notes_api::config::Environment::Production;
        c.server.master_key = Some(notes_api::config::Secret::new(crate::common::MASTER));
        c.webhooks.webhook_allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
        c.webhooks.webhook_retry_schedule = "1s".into();
    })
    .await;
    b.token = a.token.clone();
    let Some((_, _, receiver)) = hooked(&a, json!(["note.created"]), "/ok").await else {
        return;
    };

    let mut notes = std::collections::HashSet::new();
    for i in 0..20 {
        let app = if i % 2 == 0 { &a } else { &b };
        let n = app
            .create_note(json!({"title": format!("n{i}"), "body": "b"}))
            .await;
        notes.insert(n["id"].as_str().unwrap().to_owned());
    }
    wait_records(&receiver, 20).await;
    // Both dispatchers and both replicas' workers had time to repeat one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = receiver.records();
    let delivered: std::collections::HashSet<_> = got
        .iter()
        .map(|r| body(r)["data"]["note_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got.len(), 20, "each event once: {got:?}");
    assert_eq!(delivered, notes);
    assert!(got.iter().all(|r| r["verified"] == true));
}

#[tokio::test]
async fn a_delivery_whose_worker_is_killed_completes_after_its_lease() {
    let db = TestDb::new().await;
    // Development mode on both sides: the worker seals and opens secrets
    // with the same key as the API.
    let api = TestApp::spawn_on(&db, |c| {
        c.jobs.workers = 0;
        c.webhooks.webhook_allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    // The receiver takes 3 s to answer: time to kill the worker mid-send.
    let Some((id, _, receiver)) = hooked(&api, json!(["note.created"]), "/slow").await else {
        return;
    };
    api.create_note(json!({"title": "interrupted", "body": "b"}))
        .await;

    let mut first = worker(&db, 1);
    wait_records(&receiver, 1).await;
    first.kill().unwrap(); // SIGKILL: the attempt is neither recorded nor released
    first.wait().unwrap();
    let mut second = worker(&db, 1);
    let done = wait_settled(&api, &id).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["attempts"], 1,
        "the killed attempt was never recorded: {done}"
    );
    let got = receiver.records();
    assert_eq!(got.len(), 2, "sent again after the lease: {got:?}");
    assert_eq!(got[0]["id"], got[1]["id"], "as the same message");
}
