//! The real app on a random port, one fresh database per test.

use std::{sync::Arc, time::Duration};

use crate::support::{self, PgDatabase, RedisPrefix};

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

/// A fresh, empty database for one test: a SQLite file in a temporary
/// directory, or, when `TEST_DATABASE_URL` names a PostgreSQL server, a new
/// database on it (dropped afterwards). The suite is the same for both.
#[derive(Clone)]
pub struct TestDb(Arc<DbInner>);

struct DbInner {
    url: String,
    dir: TempDir,
    /// A real S3 server when `TEST_STORAGE=s3`; local files otherwise.
    s3: Option<S3Server>,
    /// The database of its own on PostgreSQL, dropped with this.
    _postgres: Option<PgDatabase>,
    /// A key prefix of its own for the queue, when `TEST_QUEUE=redis`.
    redis: Option<RedisPrefix>,
}

/// Redis for the queue when `TEST_QUEUE=redis` (`TEST_REDIS_URL`, default the
/// local server): one key prefix per test, deleted afterwards.
fn test_redis() -> Option<RedisPrefix> {
    (std::env::var("TEST_QUEUE").as_deref() == Ok("redis"))
        .then(|| RedisPrefix::new(&support::redis_url(), "notes-test"))
}

impl TestDb {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let s3 = (std::env::var("TEST_STORAGE").as_deref() == Ok("s3")).then(S3Server::start);
        let server = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"));
        let Some(admin) = server else {
            let url = format!("sqlite://{}/notes.db", dir.path().display());
            return Self(Arc::new(DbInner {
                url,
                dir,
                s3,
                _postgres: None,
                redis: test_redis(),
            }));
        };
        let database = PgDatabase::create(&admin, "notes_test").await;
        Self(Arc::new(DbInner {
            url: database.url.clone(),
            dir,
            s3,
            _postgres: Some(database),
            redis: test_redis(),
        }))
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// Objects stored, whichever storage the test runs on (s3s-fs keeps
    /// metadata beside objects in hidden files, which do not count).
    pub fn stored_objects(&self) -> usize {
        match &self.0.s3 {
            Some(s3) => s3.object_count(),
            None => walk(&self.0.dir.path().join("blobs")),
        }
    }

    pub fn apply(&self, config: &mut Config) {
        config.server.data_dir = self.0.dir.path().to_path_buf();
        config.database.database_url = Some(Secret::new(self.0.url.clone()));
        config.database.db_max_connections = 4;
        if let Some(s3) = &self.0.s3 {
            s3.apply(config);
        }
        if let Some(redis) = &self.0.redis {
            config.jobs.queue_url = Some(Secret::new(redis.queue_url()));
        }
    }

    /// The environment a `notes-api` child process needs to use this database.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("NOTES_DATABASE_URL".to_owned(), self.0.url.clone()),
            (
                "NOTES_DATA_DIR".to_owned(),
                self.0.dir.path().display().to_string(),
            ),
        ];
        if let Some(redis) = &self.0.redis {
            env.push(("NOTES_QUEUE_URL".into(), redis.queue_url()));
        }
        if let Some(s3) = &self.0.s3 {
            env.extend([
                ("NOTES_STORAGE_URL".into(), format!("s3://{S3_BUCKET}")),
                (
                    "NOTES_S3_ENDPOINT".into(),
                    format!("http://127.0.0.1:{}", s3.port),
                ),
                ("NOTES_S3_ACCESS_KEY_ID".into(), "test-access".into()),
                ("NOTES_S3_SECRET_ACCESS_KEY".into(), "test-secret".into()),
            ]);
        }
        env
    }

    pub fn dir(&self) -> &std::path::Path {
        self.0.dir.path()
    }
}

/// A real S3 server (s3s-fs, over HTTP on loopback) with one bucket.
pub struct S3Server {
    pub port: u16,
    root: TempDir,
    child: Option<std::process::Child>,
}

pub const S3_BUCKET: &str = "notes";

impl S3Server {
    pub fn start() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join(S3_BUCKET)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            port,
            root,
            child: None,
        };
        server.resume();
        server
    }

    /// Starts (again) on the same port and directory.
    pub fn resume(&mut self) {
        let child = std::process::Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", "test-access", "--secret-key", "test-secret"])
            .arg(self.root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("s3s-fs must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("s3s-fs did not start");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Files in the bucket, to prove nothing was left behind.
    pub fn object_count(&self) -> usize {
        walk(&self.root.path().join(S3_BUCKET))
    }

    pub fn apply(&self, config: &mut Config) {
        config.storage.storage_url = Some(format!("s3://{S3_BUCKET}"));
        config.storage.s3_endpoint = Some(format!("http://127.0.0.1:{}", self.port));
        config.storage.s3_access_key_id = Some(Secret::new("test-access"));
        config.storage.s3_secret_access_key = Some(Secret::new("test-secret"));
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Regular files under `dir`, recursively (0 when it does not exist).
pub fn walk(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { walk(&path) } else { 1 }
        })
        .sum()
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub state: AppState,
    /// Sent with every request unless a test overrides it.
    pub token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    pub db: TestDb,
    /// This app's own search index (replicas on one database each keep one).
    pub index_dir: std::sync::Arc<tempfile::TempDir>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Production mode with the master key as the default token.
    pub async fn production() -> Self {
        Self::production_with(|_| {}).await
    }

    pub async fn production_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut app = Self::spawn_with(|c| {
            c.server.env = Environment::Production;
            c.server.master_key = Some(Secret::new(MASTER));
            tweak(c);
        })
        .await;
        app.token = Some(MASTER.to_owned());
        app
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on(&TestDb::new().await, tweak).await
    }

    /// An app on an existing test database (e.g. a second replica, a restart).
    pub async fn spawn_on(db: &TestDb, tweak: impl FnOnce(&mut Config)) -> Self {
        let index_dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
        let app = Self::spawn_with_index(db, index_dir, tweak).await;
        app.wait_searchable().await;
        app
    }

    /// An app on an existing database and index directory (a restart); it
    /// may not serve search yet (see [`Self::wait_searchable`]).
    pub async fn spawn_with_index(
        db: &TestDb,
        index_dir: std::sync::Arc<tempfile::TempDir>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        init_test_logging();
        let mut config = Config::defaults();
        config.telemetry.log = "warn".into();
        db.apply(&mut config);
        config.index.index_dir = Some(index_dir.path().to_path_buf());
        tweak(&mut config);
        let config = config.resolve().expect("valid test config");
        let state = server::open_api(config).await.expect("state");
        Self::serve(state, db.clone(), index_dir).await
    }

    async fn serve(
        state: AppState,
        db: TestDb,
        index_dir: std::sync::Arc<tempfile::TempDir>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::serve_api_until(listener, state.clone(), async {
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
            db,
            index_dir,
        }
    }

    /// Polls `/readyz` until it answers `status`, for up to 5 s (the
    /// dependency checks are cached for a second), and returns its body:
    /// as a load balancer waits for readiness before it sends traffic.
    pub async fn wait_ready(&self, status: StatusCode) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (now, body) = self.get_json("/readyz").await;
            if now == status {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/readyz still answers {now} after 5 s, not {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_searchable(&self) {
        let Some(index) = self.state.index() else {
            return;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !index.status().serving {
            assert!(
                std::time::Instant::now() < deadline,
                "the search index never served: {:?}",
                index.status()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
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

    /// The `/metrics` text, as Prometheus scrapes it.
    pub async fn metrics(&self) -> String {
        let res = self.get("/metrics").send().await.expect("request");
        res.text().await.unwrap()
    }

    pub async fn count_notes(&self) -> u64 {
        self.state.store().count_notes().await.unwrap()
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

    /// Enqueues a job through the API and returns its record.
    pub async fn enqueue(&self, kind: &str, args: Value) -> Value {
        let res = self
            .post_json("/api/v1/jobs", &json!({"kind": kind, "args": args}))
            .await;
        assert_eq!(
            res.status(),
            StatusCode::ACCEPTED,
            "{}",
            res.text().await.unwrap()
        );
        res.json().await.unwrap()
    }

    /// Polls a job until `done` holds for its record (or panics after `within`).
    pub async fn wait_job(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (status, job) = self.get_json(&format!("/api/v1/jobs/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if done(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job never got there: {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a job to finish for good (succeeded or dead).
    pub async fn finished(&self, id: &str) -> Value {
        self.wait_job(id, Duration::from_secs(30), |j| {
            j["status"] == "succeeded" || j["status"] == "dead"
        })
        .await
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
/// Logs to the test's output, or, with `TEST_LOG_FILE`, every line of
/// every test to that file: scripts/test.sh runs the suite once so at
/// debug level and scans the file for secrets (scripts/scan-logs.sh).
fn init_test_logging() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match std::env::var_os("TEST_LOG_FILE") {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("TEST_LOG_FILE can be opened");
            builder
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .try_init()
        }
        None => builder.with_test_writer().try_init(),
    };
}

/// Asserts a problem+json answer with this status, returning its body.
/// One NDJSON ingest line: a note titled "Doc" with this external id and body.
pub fn doc_line(external_id: &str, body: &str) -> String {
    format!(
        "{}\n",
        json!({"title": "Doc", "body": body, "external_id": external_id})
    )
}

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
