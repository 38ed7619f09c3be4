//! Errors reported to a real Bugsink, without secrets.

use crate::{
    common::{free_port, notes_api},
    support,
};

/// Error tracking against a real Sentry-compatible server (Bugsink, which
/// scripts/test.sh starts): a 5xx is reported with release and environment,
/// and the report holds no secret and no request body. The DSN and the
/// master key come from files, as the kit mounts them: settings are
/// resolved before error tracking starts.
#[test]
fn a_5xx_is_reported_to_bugsink_without_secrets() {
    if support::setting_or_skip("BUGSINK_URL", "Bugsink").is_none() {
        return;
    }
    let env = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: run scripts/test.sh, which starts Bugsink and sets BUGSINK_*"
            )
        })
    };
    let (url, dsn, project, token) = (
        env("BUGSINK_URL"),
        env("BUGSINK_DSN"),
        env("BUGSINK_PROJECT"),
        env("BUGSINK_TOKEN"),
    );
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let master = format!("master-{marker}-0123456789abcdef");
    let s3_secret = format!("s3secret{marker}");
    let body_marker = format!("body-{marker}");
    let request_id = format!("bugsink-{marker}");

    let dir = tempfile::tempdir().unwrap();
    let (master_file, dsn_file) = (dir.path().join("master-key"), dir.path().join("dsn"));
    std::fs::write(&master_file, format!("{master}\n")).unwrap();
    std::fs::write(&dsn_file, format!("{dsn}\n")).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // Attachments on an S3 endpoint nothing answers: uploads are 503.
    let mut server = notes_api()
        .arg("serve")
        .env("NOTES_LISTEN", format!("127.0.0.1:{port}"))
        .env("NOTES_DATA_DIR", dir.path())
        .env("NOTES_ENV", "production")
        .env("NOTES_MASTER_KEY_FILE", &master_file)
        .env("NOTES_STORAGE_URL", "s3://nowhere")
        .env("NOTES_S3_ENDPOINT", "http://127.0.0.1:1")
        .env("NOTES_S3_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("NOTES_S3_SECRET_ACCESS_KEY", &s3_secret)
        .env("NOTES_SENTRY_DSN_FILE", &dsn_file)
        .env("NOTES_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    rt.block_on(async {
        for _ in 0..200 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let note: serde_json::Value = client
            .post(format!("{base}/api/v1/notes"))
            .bearer_auth(&master)
            .json(&serde_json::json!({"title": "n"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let res = client
            .post(format!(
                "{base}/api/v1/notes/{}/attachments?filename=a.txt",
                note["id"].as_str().unwrap()
            ))
            .bearer_auth(&master)
            .header("x-request-id", &request_id)
            .header("content-type", "text/plain")
            .body(body_marker.clone())
            .send()
            .await
            .unwrap();
        assert!(res.status().is_server_error(), "{}", res.status());
    });
    // SIGTERM: the process drains and flushes its reports before it exits.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();

    let api = format!("{url}/api/canonical/0");
    let get = |path: String| {
        let client = client.clone();
        let token = token.clone();
        async move {
            let res = client.get(path).bearer_auth(token).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    let event = rt.block_on(async {
        for _ in 0..50 {
            let issues = get(format!(
                "{api}/issues/?project={project}&q=request%20failed"
            ))
            .await;
            for issue in issues["results"].as_array().into_iter().flatten() {
                let events = get(format!(
                    "{api}/events/?issue={}",
                    issue["id"].as_str().unwrap()
                ))
                .await;
                for e in events["results"].as_array().into_iter().flatten().take(20) {
                    let full = get(format!("{api}/events/{}/", e["id"].as_str().unwrap())).await;
                    if full.to_string().contains(&request_id) {
                        return full;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!("no event with request id {request_id} reached Bugsink");
    });
    let data = &event["data"];
    assert_eq!(data["environment"], "production", "{data}");
    assert!(
        data["release"].as_str().unwrap().starts_with("notes-api@"),
        "{data}"
    );
    let text = event.to_string();
    for secret in [&master, &s3_secret, &body_marker] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret or the body reached Bugsink: {text}"
        );
    }
}
