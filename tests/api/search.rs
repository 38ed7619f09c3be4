use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, assert_problem};

async fn titles(app: &TestApp, query: &str) -> Vec<String> {
    let (status, res) = app.get_json(&format!("/api/v1/search?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    res["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    let notes = [
        json!({"title": "Gardening notes", "body": "Tomatoes need sun. The kubernetes cluster is unrelated.", "tags": ["home"]}),
        json!({"title": "Kubernetes upgrade", "body": "Drain nodes before upgrading the control plane.", "tags": ["work"]}),
        json!({"title": "Shopping", "body": "Buy milk, eggs and a new york cheesecake.", "tags": ["home"]}),
        json!({"title": "Travel", "body": "New flights to York are cheap; new york is far.", "tags": ["travel"]}),
        json!({"title": "Rust tips", "body": "Prefer iterators. Rustaceans love cargo.", "tags": ["work", "rust"]}),
    ];
    for n in notes {
        app.create_note(n).await;
    }
    app
}

#[tokio::test]
async fn title_hits_rank_above_body_hits() {
    let app = seeded().await;
    assert_eq!(
        titles(&app, "q=kubernetes").await,
        ["Kubernetes upgrade", "Gardening notes"]
    );
}

#[tokio::test]
async fn words_phrases_prefixes_and_exclusions() {
    let app = seeded().await;
    // All words must match.
    assert_eq!(titles(&app, "q=milk%20eggs").await, ["Shopping"]);
    assert!(titles(&app, "q=milk%20kubernetes").await.is_empty());
    // Phrase: "new york" adjacent in that order.
    let mut phrase = titles(&app, "q=%22new%20york%22").await;
    phrase.sort();
    assert_eq!(phrase, ["Shopping", "Travel"]);
    assert_eq!(
        titles(&app, "q=%22york%20new%22").await,
        Vec::<String>::new()
    );
    // Prefix.
    let mut prefix = titles(&app, "q=rust*").await;
    prefix.sort();
    assert_eq!(prefix, ["Rust tips"]);
    assert_eq!(titles(&app, "q=upgrad*").await, ["Kubernetes upgrade"]);
    // Exclusion.
    assert_eq!(
        titles(&app, "q=kubernetes%20-tomatoes").await,
        ["Kubernetes upgrade"]
    );
    assert_eq!(
        titles(&app, "q=new%20-%22new%20york%22").await,
        Vec::<String>::new()
    );
    // Case and diacritics fold.
    assert_eq!(
        titles(&app, "q=K%C3%9CBERNETES%20upgr%C3%A1de").await,
        ["Kubernetes upgrade"]
    );
}

#[tokio::test]
async fn tag_filter_limit_offset_total() {
    let app = seeded().await;
    assert_eq!(
        titles(&app, "q=kubernetes&tag=home").await,
        ["Gardening notes"]
    );
    assert_eq!(
        titles(&app, "q=kubernetes&tag=WORK").await,
        ["Kubernetes upgrade"]
    );
    let (_, res) = app.get_json("/api/v1/search?q=new&limit=1").await;
    assert_eq!(res["total"], 2);
    assert_eq!(res["hits"].as_array().unwrap().len(), 1);
    let (_, res2) = app.get_json("/api/v1/search?q=new&limit=1&offset=1").await;
    assert_ne!(res["hits"][0]["id"], res2["hits"][0]["id"]);
    let hit = &res["hits"][0];
    for key in ["id", "title", "snippet", "score", "tags"] {
        assert!(!hit[key].is_null(), "hit lacks {key}");
    }
    assert!(hit["score"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn snippets_mark_matches_and_escape_html() {
    let app = TestApp::spawn().await;
    app.create_note(
        json!({"title": "xss", "body": "<script>alert('pwned')</script> & the needle is here"}),
    )
    .await;
    let (_, res) = app.get_json("/api/v1/search?q=needle").await;
    let snippet = res["hits"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>needle</mark>"), "{snippet}");
    assert!(snippet.contains("&lt;script&gt;"), "{snippet}");
    assert!(!snippet.contains("<script>"), "{snippet}");
    assert!(snippet.contains("&amp;"), "{snippet}");
}

#[tokio::test]
async fn writes_are_searchable_at_once_and_deletes_vanish() {
    let app = TestApp::spawn().await;
    let note = app
        .create_note(json!({"title": "ephemeral", "body": "zebra"}))
        .await;
    let id = note["id"].as_str().unwrap();
    assert_eq!(titles(&app, "q=zebra").await, ["ephemeral"]);
    let res = app
        .request(reqwest::Method::PATCH, &format!("/api/v1/notes/{id}"))
        .json(&json!({"body": "giraffe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(titles(&app, "q=zebra").await.is_empty());
    assert_eq!(titles(&app, "q=giraffe").await, ["ephemeral"]);
    app.request(reqwest::Method::DELETE, &format!("/api/v1/notes/{id}"))
        .send()
        .await
        .unwrap();
    assert!(titles(&app, "q=giraffe").await.is_empty());
}

#[tokio::test]
async fn invalid_parameters_are_422() {
    let app = seeded().await;
    for q in [
        "",
        "q=",
        "q=%20%20",
        "q=-only%20-exclusions",
        "q=a&limit=0",
        "q=a&limit=101",
        "q=a&limit=x",
        "q=a&offset=-1",
        "q=a&offset=10001",
        "q=a&tag=bad%20tag",
    ] {
        let res = app
            .get(&format!("/api/v1/search?{q}"))
            .send()
            .await
            .unwrap();
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let long = "a".repeat(5000);
    let res = app
        .get(&format!("/api/v1/search?q={long}"))
        .send()
        .await
        .unwrap();
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
}

/// Strings aimed at the FTS5 grammar, SQL, the parser and the snippet code.
fn hostile_queries() -> Vec<String> {
    let mut qs: Vec<String> = [
        "\"",
        "\"\"",
        "\"\"\"",
        "*",
        "**",
        "-",
        "--",
        "-*",
        "*-",
        "\"*\"",
        "a\"b",
        "\"unterminated phrase",
        "AND",
        "OR",
        "NOT",
        "NEAR",
        "a AND",
        "OR b",
        "NOT NOT",
        "NEAR(a b)",
        "NEAR(a b, 5)",
        "a NEAR/2 b",
        "title:a",
        "body:x",
        "{title body}:a",
        "-title:a",
        "^a",
        "a^",
        "(a",
        "a)",
        "()",
        "(",
        ")",
        "a:b:c",
        "'",
        "''",
        "'; DROP TABLE notes; --",
        "1 OR 1=1",
        "\" OR \"\"=\"",
        "%",
        "_",
        "%%",
        "\\",
        "\\\"",
        "a\u{0}b",
        "\u{0}",
        "\u{1}\u{2}\u{3}",
        "\t\n\r",
        "😀",
        "😀*",
        "-😀",
        "\"😀 😀\"",
        "👨‍👩‍👧‍👦",
        "日本語",
        "日本*",
        "Ω≈ç√∫",
        "ﷺ",
        "\u{202e}abc",
        "\u{feff}",
        "\u{fffd}",
        "a\u{300}",
        "İ",
        "ß*",
        "<script>alert(1)</script>",
        "<mark>",
        "&amp;",
        "../../etc/passwd",
        "%00",
        "%27",
        "a*b*c",
        "a-b-c",
        "-a -b -c d",
        "a* b* c* d*",
        "\"a b\"* -\"c d\"*",
        "x*:",
        "rowid",
        "rank",
        "notes_fts",
        "MATCH",
        "a\"\"b",
        "\"\"a\"\"",
        "+a",
        "a+",
        "a|b",
        "a&b",
        "a;b",
        "a,b",
        "a.b",
        "a/b",
        "@",
        "#",
        "$",
        "~a",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    qs.push("a".repeat(2048));
    qs.push("a ".repeat(1024));
    qs.push("\"".repeat(2048));
    qs.push("x".repeat(10 * 1024));
    qs.push("😀".repeat(2500));
    qs.push(
        (0..40)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    qs.push(
        (0..31)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    // Combinations of the above.
    let base = qs.clone();
    for (i, a) in base.iter().take(60).enumerate() {
        let b = &base[(i * 7 + 3) % base.len().min(60)];
        qs.push(format!("{a} {b}"));
        qs.push(format!("-{a} kubernetes {b}*"));
        qs.push(format!("\"{a}\" {b}"));
    }
    qs
}

#[tokio::test]
async fn hostile_queries_never_cause_a_server_error() {
    let app = seeded().await;
    let queries = hostile_queries();
    assert!(queries.len() >= 250, "{}", queries.len());
    for q in &queries {
        let res = app
            .get("/api/v1/search")
            .query(&[("q", q.as_str())])
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::UNPROCESSABLE_ENTITY,
            "q={q:?} → {status}: {text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        if status == StatusCode::OK {
            assert!(v["hits"].is_array());
        }
    }
    // Raw bytes that are not UTF-8 in the query string.
    let res = app
        .get("/api/v1/search?q=%FF%FE%C3%28")
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_client_error() || res.status() == StatusCode::OK,
        "{}",
        res.status()
    );
    assert!(!res.status().is_server_error());
}
