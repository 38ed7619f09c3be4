//! The real app on a random port, one fresh database per test.

use std::time::Duration;

use notes_api::{
    config::{Config, Environment, Secret},
    http::AppState,
    server,
};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub const MASTER: &str = "test-master-key-0123456789-abcdefghijklmnop";

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub state: AppState,
    /// Sent with every request unless a test overrides it.
    pub token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    /// Keeps the test's data directory alive as long as the app.
    _dir: TempDir,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Production mode with the master key as the default token.
    pub async fn production() -> Self {
        let mut app = Self::spawn_with(|c| {
            c.env = Environment::Production;
            c.master_key = Some(Secret::new(MASTER));
        })
        .await;
        app.token = Some(MASTER.to_owned());
        app
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        init_test_logging();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::defaults();
        config.data_dir = dir.path().to_path_buf();
        config.log = "warn".into();
        tweak(&mut config);
        let config = config.resolve().expect("valid test config");
        let state = server::build_state(config).await.expect("state");
        Self::serve(state, dir).await
    }

    async fn serve(state: AppState, dir: TempDir) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run(listener, state.clone(), async {
            let _ = rx.await;
        }));
        let client = Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Self {
            base,
            client,
            state,
            token: None,
            stop: Some(tx),
            handle: Some(handle),
            _dir: dir,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn create_note(&self, body: Value) -> Value {
        let res = self.post_json("/api/v1/notes", &body).await;
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "{}",
            res.text().await.unwrap()
        );
        res.json().await.unwrap()
    }

    pub async fn ingest_ndjson(&self, body: impl Into<reqwest::Body>) -> Response {
        self.request(Method::POST, "/api/v1/ingest")
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let res = self.get(path).send().await.expect("request");
        let status = res.status();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(json!({ "raw": text })),
        )
    }

    pub async fn count_notes(&self) -> u64 {
        self.state.store.count_notes().await.unwrap()
    }

    /// Creates an API key with `scopes` using the master key.
    pub async fn key(&self, scopes: &[&str]) -> (String, String) {
        let res = self
            .client
            .post(format!("{}/api/v1/keys", self.base))
            .bearer_auth(MASTER)
            .json(&json!({"name": "test", "scopes": scopes}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let v: Value = res.json().await.unwrap();
        (
            v["id"].as_str().unwrap().to_owned(),
            v["key"].as_str().unwrap().to_owned(),
        )
    }

    /// Stops the server the way SIGTERM would and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Server logs go through the test harness's capture, shown for failing tests.
fn init_test_logging() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Asserts a problem+json answer with this status, returning its body.
pub async fn assert_problem(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    assert_eq!(
        ct.as_deref(),
        Some("application/problem+json"),
        "body: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], status.as_u16());
    assert!(
        v["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:notes-api:problem:")
    );
    assert!(v["title"].is_string());
    v
}
