use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::TestApp;

/// An NDJSON body that trickles in over `pauses × pause`.
fn slow_body(lines: usize, pauses: usize, pause: Duration) -> reqwest::Body {
    let per_chunk = lines / pauses;
    let stream = futures::stream::unfold(0usize, move |i| async move {
        if i >= pauses {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        let chunk: String = (0..per_chunk)
            .map(|j| format!("{{\"title\":\"slow {i}-{j}\"}}\n"))
            .collect();
        Some((Ok::<_, std::io::Error>(chunk), i + 1))
    });
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test]
async fn readiness_flips_as_soon_as_shutdown_begins() {
    let app = TestApp::spawn().await;
    app.state.begin_shutdown();
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["ready"], false);
    assert_eq!(body["reason"], "shutting down");
    // Liveness stays green: the process is healthy, just leaving.
    assert_eq!(
        app.get("/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn shutdown_refuses_new_connections_and_finishes_in_flight_requests() {
    let app = TestApp::spawn().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let client = app.client.clone();
    let url = format!("{}/api/v1/ingest", app.base);
    let slow = tokio::spawn(async move {
        client
            .post(url)
            .header("content-type", "application/x-ndjson")
            .body(slow_body(100, 5, Duration::from_millis(300)))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let state = app.state.clone();
    let stopping = tokio::spawn(app.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(state.is_shutting_down());
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "new connections must be refused"
    );

    let res = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(res.status(), StatusCode::OK);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["created"], 100);
    stopping.await.unwrap();
}

/// The real binary, a real SIGTERM, a request still uploading when it lands.
#[tokio::test]
async fn sigterm_during_a_slow_request_lets_it_complete() {
    let db = crate::common::TestDb::new().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_notes-api"))
        .arg("serve")
        .env_clear()
        .env("NOTES_LISTEN", format!("127.0.0.1:{port}"))
        .env("NOTES_DATABASE_URL", db.url())
        .env("NOTES_SHUTDOWN_TIMEOUT", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let started = Instant::now();
    loop {
        if let Ok(res) = client.get(format!("{base}/readyz")).send().await
            && res.status() == StatusCode::OK
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let slow = {
        let client = client.clone();
        let url = format!("{base}/api/v1/ingest");
        tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/x-ndjson")
                .body(slow_body(200, 8, Duration::from_millis(250)))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    let res = slow
        .await
        .unwrap()
        .expect("the in-flight request completes after SIGTERM");
    assert_eq!(res.status(), StatusCode::OK);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["created"], 200);

    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    // The data outlived the process.
    let store = notes_api::store::connect(db.url(), &Default::default())
        .await
        .unwrap();
    assert_eq!(store.count_notes().await.unwrap(), 200);
}
