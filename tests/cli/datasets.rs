//! Read-only datasets: packing, serving, swapping a new file in.

use std::process::Command;

use crate::common::{assert_ok, free_port, get_json, notes_api, wait_up};

async fn get_text(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// A server that is stopped however the test ends, so a failed assertion
/// never leaves it holding the test's output open.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `notes-api dataset pack --from FROM --to TO`.
fn pack_dataset(from: &std::path::Path, to: &std::path::Path) -> std::process::Output {
    notes_api()
        .args(["dataset", "pack", "--from"])
        .arg(from)
        .arg("--to")
        .arg(to)
        .output()
        .unwrap()
}

/// `serve` with NOTES_READ_ONLY=true on the dataset `db`, its index under
/// `data`.
fn serve_dataset(db: &std::path::Path, data: &std::path::Path, port: u16) -> Command {
    let mut cmd = notes_api();
    cmd.arg("serve")
        .env("NOTES_LISTEN", format!("127.0.0.1:{port}"))
        .env("NOTES_READ_ONLY", "true")
        .env("NOTES_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("NOTES_DATA_DIR", data)
        .env("NOTES_LOG", "error")
        .stdout(std::process::Stdio::null());
    cmd
}

/// `dataset pack` then `serve` with NOTES_READ_ONLY=true: the file is
/// compact and not in WAL mode, and serving it reads, searches and refuses
/// writes without creating or changing a single file beside it.
#[test]
fn a_packed_dataset_is_served_read_only_without_writing_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let shelf = dir.path().join("shelf");
    std::fs::create_dir(&shelf).unwrap();
    let ndjson = dir.path().join("notes.ndjson");
    let lines: String = (0..300)
        .map(|i| {
            let title = if i == 7 { "the quarterly marker".to_owned() } else { format!("note {i}") };
            format!("{}\n", serde_json::json!({"title": title, "body": "text ".repeat(50), "external_id": format!("e{i}")}))
        })
        .collect();
    std::fs::write(&ndjson, lines).unwrap();
    let db = shelf.join("notes.db");
    let out = pack_dataset(&ndjson, &db);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["notes"], 300);
    let packed = std::fs::read(&db).unwrap();
    assert_eq!(
        (packed[18], packed[19]),
        (1, 1),
        "rollback journal mode, not WAL"
    );
    let listing = |d: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(listing(&shelf), ["notes.db"]);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = KillOnDrop(
        serve_dataset(&db, &dir.path().join("data"), port)
            .spawn()
            .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    rt.block_on(async {
        wait_up(&client, &base).await;
        let mut listed = 0;
        let mut cursor = String::new();
        loop {
            let page: serde_json::Value = get_json(
                &client,
                format!("{base}/api/v1/notes?limit=100&cursor={cursor}"),
            )
            .await;
            listed += page["items"].as_array().expect("a page").len();
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(listed, 300);
        let found: serde_json::Value =
            get_json(&client, format!("{base}/api/v1/search?q=quarterly")).await;
        assert_eq!(found["total"], 1, "{found}");
        let write = client
            .post(format!("{base}/api/v1/notes"))
            .json(&serde_json::json!({"title": "no"}))
            .send()
            .await
            .unwrap();
        assert_eq!(write.status(), 405);
    });
    drop(server);
    assert_eq!(
        listing(&shelf),
        ["notes.db"],
        "no -wal, -shm or journal beside it"
    );
    assert!(
        std::fs::read(&db).unwrap() == packed,
        "the dataset is byte for byte unchanged"
    );
}

/// The `dataset_swaps_total` count with this outcome, from `/metrics`.
async fn swaps(client: &reqwest::Client, base: &str, outcome: &str) -> u64 {
    let text = get_text(client, format!("{base}/metrics")).await;
    let series = format!("dataset_swaps_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn search_total(client: &reqwest::Client, base: &str, q: &str) -> u64 {
    get_json(client, format!("{base}/api/v1/search?q={q}")).await["total"]
        .as_u64()
        .unwrap()
}

/// Waits until `done` holds, for at most `seconds`.
async fn eventually<F: std::future::Future<Output = bool>>(
    seconds: u64,
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// One request of the load: the dataset every item of the answer comes
/// from (they must agree), or what went wrong.
async fn dataset_of(client: &reqwest::Client, url: String) -> Result<u64, String> {
    let res = client.get(&url).send().await.map_err(|e| e.to_string())?;
    if res.status() != 200 {
        return Err(format!("{url}: {}", res.status()));
    }
    let body: serde_json::Value = res.json().await.map_err(|e| e.to_string())?;
    // A list page has `items`, a search `hits`.
    let items = body["items"]
        .as_array()
        .or(body["hits"].as_array())
        .ok_or("no items")?;
    let sets: std::collections::BTreeSet<u64> = items
        .iter()
        .map(|n| {
            let title = n["title"].as_str().unwrap_or_default();
            title
                .strip_prefix("set")
                .and_then(|t| t.split(' ').next())
                .and_then(|k| k.parse().ok())
                .unwrap_or(u64::MAX)
        })
        .collect();
    match sets.len() {
        1 => Ok(*sets.first().unwrap()),
        _ => Err(format!("{url}: one answer from several datasets: {sets:?}")),
    }
}

/// The hot swap (issue #12): 20 datasets renamed over the served file, one
/// after another, while searches and reads run. No request fails; every
/// answer comes from one dataset, whole; once dataset k answers, dataset k
/// finds its marker and k−1 is gone, and no later request of a client sees
/// an older dataset. Then a damaged file, a file of another schema and one
/// written by a newer binary are each rejected, counted, and the last good
/// dataset keeps serving; a good file after them is swapped in.
#[test]
fn datasets_renamed_over_the_served_one_are_swapped_in_without_a_failed_request() {
    use futures::FutureExt;
    const SETS: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let packs = dir.path().join("packs");
    let shelf = dir.path().join("shelf");
    std::fs::create_dir_all(&packs).unwrap();
    std::fs::create_dir_all(&shelf).unwrap();
    let pack = |k: u64| {
        let ndjson = packs.join(format!("set{k}.ndjson"));
        let lines: String = (0..30)
            .map(|i| {
                let title = format!("set{k} note {i}");
                format!(
                    "{}\n",
                    serde_json::json!({"title": title, "body": "shared words"})
                )
            })
            .collect();
        std::fs::write(&ndjson, lines).unwrap();
        let db = packs.join(format!("set{k}.db"));
        let out = pack_dataset(&ndjson, &db);
        assert_ok(&out);
        db
    };
    let sets: Vec<_> = (0..=SETS + 1).map(pack).collect();
    let db = shelf.join("notes.db");
    // The runbook: copy beside the served file, then rename over it.
    let publish = |file: &std::path::Path| {
        let next = shelf.join("notes.db.new");
        std::fs::copy(file, &next).unwrap();
        std::fs::rename(&next, &db).unwrap();
    };
    std::fs::copy(&sets[0], &db).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = KillOnDrop(
        serve_dataset(&db, &dir.path().join("data"), port)
            .env("NOTES_DB_MAX_CONNECTIONS", "4")
            .spawn()
            .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    rt.block_on(async {
        wait_up(&client, &base).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load: Vec<_> = (0..4)
            .map(|c| {
                let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
                tokio::spawn(async move {
                    let (mut answered, mut newest, mut errors) = (0u64, 0u64, Vec::new());
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let url = if (answered + c) % 2 == 0 {
                            format!("{base}/api/v1/notes?limit=100")
                        } else {
                            format!("{base}/api/v1/search?q=shared&limit=50")
                        };
                        match dataset_of(&client, url).await {
                            Ok(k) if k < newest => {
                                errors.push(format!("dataset {k} answered after {newest}"))
                            }
                            Ok(k) => newest = k,
                            Err(e) => errors.push(e),
                        }
                        answered += 1;
                    }
                    (answered, errors)
                })
            })
            .collect();
        for k in 1..=SETS {
            publish(&sets[k as usize]);
            let marker = format!("set{k}");
            eventually(30, &format!("dataset {k} serves"), || {
                search_total(&client, &base, &marker).map(|n| n == 30)
            })
            .await;
            let before = format!("set{}", k - 1);
            assert_eq!(search_total(&client, &base, &before).await, 0, "{before} is gone");
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut answered = 0;
        for task in load {
            let (n, errors) = task.await.unwrap();
            assert!(errors.is_empty(), "{errors:#?}");
            answered += n;
        }
        assert!(answered > 100, "the load ran ({answered} requests)");
        assert_eq!(swaps(&client, &base, "swapped").await, SETS);

        // Three files that must not be served.
        let damaged = packs.join("damaged.db");
        let mut bytes = std::fs::read(&sets[0]).unwrap();
        let page = 4096;
        bytes[page..2 * page].fill(0xff);
        std::fs::write(&damaged, bytes).unwrap();
        let other = packs.join("other.db");
        let newer = packs.join("newer.db");
        std::fs::copy(&sets[0], &newer).unwrap();
        for (file, sql) in [
            (&other, "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)"),
            (
                &newer,
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (99990101000000, 'from the future', 1, x'00', 0)",
            ),
        ] {
            use sqlx::ConnectOptions;
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(file)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Delete)
                .connect()
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
            sqlx::Connection::close(conn).await.unwrap();
        }
        for (n, file) in [damaged, other, newer].iter().enumerate() {
            publish(file);
            let want = n as u64 + 1;
            eventually(15, &format!("rejection {want} counted"), || {
                swaps(&client, &base, "rejected").map(move |r| r == want)
            })
            .await;
            assert_eq!(search_total(&client, &base, &format!("set{SETS}")).await, 30);
        }
        publish(&sets[SETS as usize + 1]);
        let last = format!("set{}", SETS + 1);
        eventually(30, "a good file after the rejected ones serves", || {
            search_total(&client, &base, &last).map(|n| n == 30)
        })
        .await;
        assert_eq!(swaps(&client, &base, "swapped").await, SETS + 1);
        // The admin UI reads the dataset too, and shows its state.
        let system = get_text(&client, format!("{base}/admin/system")).await;
        assert!(system.contains("<h2>Dataset</h2>"), "{system}");
        assert!(system.contains("the database schema is ahead of this binary"), "{system}");
        assert!(system.contains("<dt>Datasets rejected</dt><dd>3</dd>"), "{system}");
        let notes = client.get(format!("{base}/admin/notes")).send().await.unwrap();
        assert_eq!(notes.status(), 200);
        assert!(notes.text().await.unwrap().contains(&last));
    });
    drop(server);
}

/// Packing is all or nothing: an invalid line (reported with its number)
/// leaves no file, and an existing dataset is never overwritten.
#[test]
fn pack_refuses_bad_input_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let ndjson = dir.path().join("notes.ndjson");
    std::fs::write(
        &ndjson,
        "{\"title\":\"fine\",\"external_id\":\"a\"}\n{\"body\":\"no title\"}\n{\"title\":\"again\",\"external_id\":\"a\"}\n",
    )
    .unwrap();
    let db = dir.path().join("out.db");
    let pack = |to: &std::path::Path| pack_dataset(&ndjson, to);
    let out = pack(&db);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: title") && stderr.contains("line 3: external_id"),
        "{stderr}"
    );
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["notes.ndjson"], "no dataset and no partial file");

    std::fs::write(&db, b"an earlier dataset").unwrap();
    let out = pack(&db);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&db).unwrap(), b"an earlier dataset");
}

/// A read-only process refuses, at start and with the reason, a file it
/// cannot serve as it is: not SQLite, in WAL mode, or damaged.
#[test]
fn a_file_unfit_for_serving_read_only_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve_ro = |db: &std::path::Path| serve_dataset(db, &data, free_port()).output().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![7u8; 8192]).unwrap();
    let out = serve_ro(&garbage);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an SQLite database"));

    // A database in WAL mode with commits still in its -wal file (a
    // writer that is running or crashed): immutable would miss them. Once
    // cleanly closed (no -wal left), the same database is served.
    let live = dir.path().join("live");
    assert!(
        notes_api()
            .arg("migrate")
            .env("NOTES_DATA_DIR", &live)
            .status()
            .unwrap()
            .success()
    );
    let wal = live.join("notes.db-wal");
    std::fs::write(&wal, vec![1u8; 4096]).unwrap();
    let out = serve_ro(&live.join("notes.db"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-wal file"));
    std::fs::remove_file(&wal).unwrap();
    let mut served = KillOnDrop(
        serve_dataset(&live.join("notes.db"), &data, free_port())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        served.0.try_wait().unwrap().is_none(),
        "a checkpointed WAL database is served"
    );
    drop(served);

    // A packed dataset with a page overwritten.
    let ndjson = dir.path().join("notes.ndjson");
    let lines: String = (0..2000)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"title": format!("n{i}"), "body": "b".repeat(200)})
            )
        })
        .collect();
    std::fs::write(&ndjson, lines).unwrap();
    let db = dir.path().join("damaged.db");
    let pack = pack_dataset(&ndjson, &db);
    assert!(pack.status.success());
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    for b in &mut bytes[3 * page..3 * page + 64] {
        *b = 0xff;
    }
    std::fs::write(&db, bytes).unwrap();
    let out = serve_ro(&db);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("damaged") || stderr.contains("malformed"),
        "{stderr}"
    );
}

/// Issue 27: `dataset pack --key NAME` packs read-only keys into the
/// dataset and prints each secret once; a replica with a master key then
/// lets those keys read and search, refuses them any write, and refuses
/// anonymous requests and unknown keys. Bad key names refuse the pack.
#[test]
fn keys_packed_into_a_dataset_let_readers_in_without_the_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let ndjson = dir.path().join("notes.ndjson");
    std::fs::write(
        &ndjson,
        "{\"title\":\"a heron at dusk\",\"external_id\":\"h\"}\n",
    )
    .unwrap();
    let db = dir.path().join("notes.db");
    let out = notes_api()
        .args(["dataset", "pack", "--key", "site build", "--key", "reader"])
        .arg("--from")
        .arg(&ndjson)
        .arg("--to")
        .arg(&db)
        .output()
        .unwrap();
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = report["keys"].as_array().expect("keys in the report");
    assert_eq!(keys.len(), 2, "{report}");
    assert_eq!(keys[0]["name"], "site build");
    assert_eq!(keys[0]["scopes"], serde_json::json!(["read"]));
    let secret = keys[0]["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("nk_"), "{report}");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let master = "m".repeat(40);
    let server = KillOnDrop(
        serve_dataset(&db, &dir.path().join("data"), port)
            .env("NOTES_MASTER_KEY", &master)
            .spawn()
            .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    rt.block_on(async {
        wait_up(&client, &base).await;
        let search = format!("{base}/api/v1/search?q=heron");
        let found = client
            .get(&search)
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(found.status(), 200);
        let found: serde_json::Value = found.json().await.unwrap();
        assert_eq!(found["total"], 1, "{found}");
        for (token, status) in [(None, 401), (Some("nk_unknown"), 401)] {
            let mut req = client.get(&search);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            assert_eq!(req.send().await.unwrap().status(), status, "{token:?}");
        }
        let write = client
            .post(format!("{base}/api/v1/notes"))
            .bearer_auth(&secret)
            .json(&serde_json::json!({"title": "no"}))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(write.status().as_u16(), 403 | 405),
            "{}",
            write.status()
        );
    });
    drop(server);

    // A blank or repeated name: refused by name, no file made.
    for names in [&["  "][..], &["twice", "twice"]] {
        let to = dir.path().join("refused.db");
        let mut cmd = notes_api();
        cmd.args(["dataset", "pack", "--from"])
            .arg(&ndjson)
            .arg("--to")
            .arg(&to);
        for name in names {
            cmd.args(["--key", name]);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{names:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--key"),
            "{names:?}"
        );
        assert!(!to.exists(), "{names:?}");
    }
}
