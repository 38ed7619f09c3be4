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
    refused_with_422(
        &app,
        "/api/v1/search",
        &[
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
        ],
    )
    .await;
}

/// Each query string is refused with 422 on `route`, and so is a `q` of
/// 5,000 bytes.
async fn refused_with_422(app: &TestApp, route: &str, queries: &[&str]) {
    let long = format!("q={}", "a".repeat(5000));
    for q in queries.iter().copied().chain([long.as_str()]) {
        let res = app.get(&format!("{route}?{q}")).send().await.unwrap();
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
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

async fn search(app: &TestApp, query: &str) -> Value {
    let (status, res) = app.get_json(&format!("/api/v1/search?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {res}");
    res
}

fn ids(res: &Value) -> Vec<String> {
    res["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Issue 22: one wrong letter used to lose the note. Words of 5 to 8
/// letters match with 1 edit, 9 or more with 2 (an adjacent swap is one);
/// shorter words and numbers stay exact; `typos=false` turns it off; a
/// typo match is marked in the title and the snippet.
#[tokio::test]
async fn a_word_with_a_typo_still_finds_the_note() {
    let app = seeded().await;
    for q in [
        "kubernetse",
        "kubrenetes",
        "kuberntes",
        "kubernetees",
        "Kubernetas",
    ] {
        assert_eq!(
            titles(&app, &format!("q={q}")).await,
            ["Kubernetes upgrade", "Gardening notes"],
            "{q}"
        );
    }
    assert!(titles(&app, "q=kbrnetes").await.is_empty(), "3 edits");
    assert_eq!(titles(&app, "q=upgarde").await, ["Kubernetes upgrade"]);
    assert!(titles(&app, "q=upgarde&typos=false").await.is_empty());
    assert!(
        titles(&app, "q=mikl").await.is_empty(),
        "4 letters stay exact"
    );
    assert_eq!(titles(&app, "q=tomatoes%20sun").await, ["Gardening notes"]);
    let res = search(&app, "q=upgarde%20nodse").await;
    let hit = &res["hits"][0];
    assert_eq!(hit["title_html"], "Kubernetes <mark>upgrade</mark>");
    let snippet = hit["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>nodes</mark>"), "{snippet}");
    // "upgrading" is 3 edits from "upgarde": no match, no mark.
    assert!(snippet.contains(" upgrading "), "{snippet}");

    app.create_note(json!({"title": "Release 2026", "body": "version 123456"}))
        .await;
    assert!(
        titles(&app, "q=123457").await.is_empty(),
        "numbers stay exact"
    );
    assert!(
        titles(&app, "q=%22drain%20nodse%22").await.is_empty(),
        "phrases too"
    );
    assert!(titles(&app, "q=upgarde*").await.is_empty(), "prefixes too");
}

/// A word allowed 2 edits (9 letters or more) matches the words 2 edits
/// away only when no word of the index is 1 away: the nearest words first,
/// as Typesense widens its typos.
#[tokio::test]
async fn a_long_word_matches_two_edits_away_only_when_nothing_is_one_away() {
    let app = TestApp::spawn().await;
    app.create_note(json!({"title": "Deployment guide", "body": "how to roll out a deployment"}))
        .await;
    app.create_note(json!({"title": "Deployments list", "body": "all of them"}))
        .await;
    // "deployments" is 1 edit away, "deployment" 2.
    assert_eq!(titles(&app, "q=deploymnts").await, ["Deployments list"]);
    // Both are 2 edits away, and nothing is nearer.
    let mut got = titles(&app, "q=deplymentt").await;
    got.sort();
    assert_eq!(got, ["Deployment guide", "Deployments list"]);
}

/// Typos are looked for when nothing matches as typed (Typesense's
/// `typo_tokens_threshold` at its default). Then a note with more words as
/// typed ranks above every note that needs more typos, however strongly
/// those match (titles, repeated words): a typo never pushes a closer
/// match off the first page.
#[tokio::test]
async fn exact_matches_rank_above_typo_matches() {
    let app = TestApp::spawn().await;
    for i in 0..12 {
        app.create_note(
            json!({"title": format!("Linex kernal {i}"), "body": "linex linex kernal kernal"}),
        )
        .await;
    }
    app.create_note(json!({"title": "Notes", "body": "a long body that mentions linux once and a kernal among many other words"}))
        .await;
    let res = search(&app, "q=linux%20kernel&limit=5").await;
    assert_eq!(res["total"], 13);
    assert_eq!(res["hits"][0]["title"], "Notes", "{res}");
    let res = search(&app, "q=linux%20kernel&typos=false").await;
    assert_eq!(res["total"], 0);
    // Something matches as typed: no typos are looked for.
    app.create_note(json!({"title": "Linux kernel"})).await;
    let res = search(&app, "q=linux%20kernel").await;
    assert_eq!(res["total"], 1, "{res}");
}

/// As-you-type: unless `q` ends in white space, its last word also
/// matches as the start of a longer word; the word as typed ranks first.
#[tokio::test]
async fn the_last_word_completes_as_it_is_typed() {
    let app = seeded().await;
    assert_eq!(
        titles(&app, "q=kube").await,
        ["Kubernetes upgrade", "Gardening notes"]
    );
    assert_eq!(titles(&app, "q=drain%20no").await, ["Kubernetes upgrade"]);
    assert!(
        titles(&app, "q=kube%20").await.is_empty(),
        "a finished word"
    );
    assert!(titles(&app, "q=kube&prefix_last=false").await.is_empty());
    assert!(
        titles(&app, "q=kube%20drain").await.is_empty(),
        "only the last word"
    );
    let res = search(&app, "q=drain%20contr").await;
    assert_eq!(res["hits"][0]["title_html"], "Kubernetes upgrade");
    let snippet = res["hits"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>control</mark>"), "{snippet}");

    app.create_note(json!({"title": "Kube", "body": "the short name"}))
        .await;
    let got = titles(&app, "q=kube").await;
    assert_eq!(got[0], "Kube", "the word as typed first: {got:?}");
    assert_eq!(got.len(), 3);
    // One letter: bounded, and still a completion.
    let got = titles(&app, "q=k").await;
    assert!(got.contains(&"Kube".to_owned()), "{got:?}");

    // A word as typed in 100 notes or more (1 % of a larger index) is
    // taken as finished while its notes fill the page: its completions are
    // not merged in.
    app.create_note(json!({"title": "Deployment guide"})).await;
    assert_eq!(search(&app, "q=deploy").await["total"], 1);
    let batch: String = (0..100)
        .map(|i| format!("{{\"title\":\"deploy {i}\"}}\n"))
        .collect();
    assert_eq!(app.ingest_ndjson(batch).await.status(), StatusCode::OK);
    assert_eq!(search(&app, "q=deploy").await["total"], 100);
}

/// Issue 22: a word being typed after other words also matches its
/// completions in the titles, each by its own weight. The word as typed
/// can be a common word ("conf" while typing "config") whose notes fill
/// the page, and the completion that names the note can be a rare word
/// that the few most frequent completions leave out; either way the note
/// whose title completes it is found, and ranks first here.
#[tokio::test]
async fn a_rare_completion_in_a_title_is_found_while_typing() {
    let app = TestApp::spawn().await;
    // 100 notes (1 % of a larger index) hold "conf" as typed, each with
    // "firewall": they alone would fill the page.
    let batch: String = (0..100)
        .map(|i| format!("{{\"title\":\"rsyncd conf {i}\",\"body\":\"firewall conf\"}}\n"))
        .collect();
    assert_eq!(app.ingest_ndjson(batch).await.status(), StatusCode::OK);
    app.create_note(json!({"title": "Firewall rules config", "body": "manage them"}))
        .await;
    let res = search(&app, "q=firewall%20conf&limit=10").await;
    assert_eq!(res["hits"][0]["title"], "Firewall rules config", "{res}");
    assert_eq!(res["total"], 101);
    assert_eq!(
        res["hits"][0]["title_html"],
        "<mark>Firewall</mark> rules <mark>config</mark>"
    );
    let res = search(&app, "q=firewall%20conf%20&limit=10").await;
    assert_eq!(res["total"], 100, "a finished word does not complete");

    // Twenty notes with "multicast" in their titles; nine completions of
    // "mult" more frequent than the one word that names the note.
    let common =
        "multiple multi multiplex multiply multiplier multitude multimedia multicore multiuser";
    for i in 0..20 {
        app.create_note(json!({"title": format!("Multicast routing {i}"), "body": "routes"}))
            .await;
        app.create_note(json!({"title": format!("Words {i}"), "body": common}))
            .await;
    }
    app.create_note(json!({"title": "Network services MulticastGroups", "body": "multicast"}))
        .await;
    let got = titles(&app, "q=multicast%20mult&limit=10").await;
    assert_eq!(got[0], "Network services MulticastGroups", "{got:?}");
    // Exact matches of the word being typed still rank above its
    // completions in the same field.
    app.create_note(json!({"title": "Multicast mult", "body": "x"}))
        .await;
    let got = titles(&app, "q=multicast%20mult&limit=10").await;
    assert_eq!(got[0], "Multicast mult", "{got:?}");
}

/// Issue 22: a dropped letter is the most common typo of a 5-letter
/// word, and leaves a 4-letter word, which the typo rule keeps exact.
/// When nothing matches otherwise, such a word may gain one letter.
#[tokio::test]
async fn a_word_with_a_letter_dropped_is_found_when_nothing_else_is() {
    let app = TestApp::spawn().await;
    app.create_note(json!({"title": "HFSC scheduler", "body": "each class has a service curve"}))
        .await;
    app.create_note(json!({"title": "Remedies", "body": "a cure for the cold"}))
        .await;
    let res = search(&app, "q=hfsc%20cure").await;
    assert_eq!(res["total"], 1, "{res}");
    assert_eq!(res["hits"][0]["title"], "HFSC scheduler");
    let snippet = res["hits"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>curve</mark>"), "{snippet}");
    assert_eq!(search(&app, "q=hfsc%20cure&typos=false").await["total"], 0);
    // Something matches as typed: no letter is added.
    assert_eq!(titles(&app, "q=cure").await, ["Remedies"]);
    // Any word one letter short, the letter anywhere.
    assert_eq!(titles(&app, "q=clss%20hfsc").await, ["HFSC scheduler"]);
    assert_eq!(titles(&app, "q=hfsc%20cuve").await, ["HFSC scheduler"]);
    // A letter inserted, nothing else: "crue" has two letters swapped.
    assert_eq!(search(&app, "q=hfsc%20crue").await["total"], 0);
    // Three letters stay exact.
    assert_eq!(search(&app, "q=hfsc%20eah%20").await["total"], 0);
}

/// Tag counts are over every match, not the page: at most 100, by count
/// then by value.
#[tokio::test]
async fn facets_count_tags_over_the_whole_match_set() {
    let app = seeded().await;
    let res = search(&app, "q=the&facets=tags&limit=1").await;
    assert_eq!(res["hits"].as_array().unwrap().len(), 1);
    assert_eq!(
        res["facets"]["tags"],
        json!([{"value": "home", "count": 1}, {"value": "work", "count": 1}]),
        "{res}"
    );
    let res = search(&app, "sort=title&facets=tags&limit=1").await;
    assert_eq!(
        res["facets"]["tags"],
        json!([
            {"value": "home", "count": 2},
            {"value": "work", "count": 2},
            {"value": "rust", "count": 1},
            {"value": "travel", "count": 1},
        ])
    );
    assert!(search(&app, "q=the").await.get("facets").is_none());
    for i in 0..120 {
        app.create_note(json!({"title": format!("many {i}"), "tags": [format!("t{i:03}")]}))
            .await;
    }
    let res = search(&app, "q=many&facets=tags").await;
    let tags = res["facets"]["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 100);
    assert_eq!(tags[0], json!({"value": "t000", "count": 1}));
}

/// Each filter alone and together, with and without `q`.
#[tokio::test]
async fn filters_narrow_by_tags_dates_and_attachments() {
    let app = seeded().await;
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(titles(&app, "sort=title&tag=home&tag=work").await),
        Vec::<String>::new()
    );
    assert_eq!(
        sorted(titles(&app, "sort=title&tag=work&tag=rust").await),
        ["Rust tips"]
    );
    assert_eq!(
        titles(&app, "sort=title&any_tag=travel&any_tag=rust").await,
        ["Rust tips", "Travel"]
    );
    assert_eq!(
        titles(&app, "sort=title&not_tag=home&not_tag=travel").await,
        ["Kubernetes upgrade", "Rust tips"]
    );
    assert_eq!(
        titles(&app, "q=new&any_tag=HOME&not_tag=work").await,
        ["Shopping"]
    );

    let before = search(&app, "sort=created").await;
    let last = before["hits"][4]["created_at"].as_str().unwrap().to_owned();
    let enc = |t: &str| t.replace('+', "%2B").replace(':', "%3A");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let late = app
        .create_note(json!({"title": "Late note", "tags": ["home"]}))
        .await;
    let at = late["created_at"].as_str().unwrap().to_owned();
    assert_eq!(
        titles(&app, &format!("sort=title&created_after={}", enc(&at))).await,
        ["Late note"],
        "after is inclusive"
    );
    assert_eq!(
        titles(&app, &format!("sort=created&created_before={}", enc(&at)))
            .await
            .len(),
        5,
        "before is exclusive"
    );
    assert_eq!(
        titles(
            &app,
            &format!(
                "sort=created&created_after={}&created_before={}",
                enc(&last),
                enc(&at)
            )
        )
        .await,
        ["Rust tips"]
    );

    let shopping = &search(&app, "q=shopping").await["hits"][0]["id"];
    let shopping = shopping.as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let res = app
        .request(reqwest::Method::PATCH, &format!("/api/v1/notes/{shopping}"))
        .json(&json!({"body": "Buy bread."}))
        .send()
        .await
        .unwrap();
    let updated: Value = res.json().await.unwrap();
    let at = updated["updated_at"].as_str().unwrap();
    assert_eq!(
        titles(&app, &format!("sort=-updated&updated_after={}", enc(at))).await,
        ["Shopping"]
    );
    assert!(
        !titles(&app, &format!("sort=-updated&updated_before={}", enc(at)))
            .await
            .contains(&"Shopping".to_owned())
    );

    assert!(
        titles(&app, "sort=title&has_attachments=true")
            .await
            .is_empty()
    );
    let res = app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/notes/{shopping}/attachments?filename=list.txt"),
        )
        .body("bread")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let attachment: Value = res.json().await.unwrap();
    assert_eq!(
        titles(&app, "sort=title&has_attachments=true").await,
        ["Shopping"]
    );
    assert_eq!(
        titles(&app, "sort=title&has_attachments=false").await.len(),
        5
    );
    assert_eq!(
        titles(&app, "q=buy&has_attachments=true&tag=home").await,
        ["Shopping"]
    );
    let id = attachment["id"].as_str().unwrap();
    app.request(
        reqwest::Method::DELETE,
        &format!("/api/v1/attachments/{id}"),
    )
    .send()
    .await
    .unwrap();
    assert!(
        titles(&app, "sort=title&has_attachments=true")
            .await
            .is_empty()
    );
}

/// Every sort, and paging through each one a page at a time meets every
/// match once, even when many notes share a timestamp (one ingest).
#[tokio::test]
async fn every_sort_pages_through_every_match_once() {
    let app = seeded().await;
    assert_eq!(
        titles(&app, "sort=title").await,
        [
            "Gardening notes",
            "Kubernetes upgrade",
            "Rust tips",
            "Shopping",
            "Travel"
        ]
    );
    let created = titles(&app, "sort=created").await;
    let mut newest = titles(&app, "sort=-created").await;
    newest.reverse();
    assert_eq!(created, newest);
    assert_eq!(created[0], "Gardening notes");
    let res = search(&app, "q=new&sort=-updated").await;
    assert_eq!(res["hits"][0]["score"], 0.0);
    assert_eq!(
        titles(&app, "q=kubernetes&sort=title").await,
        ["Gardening notes", "Kubernetes upgrade"]
    );

    let batch: String = (0..57)
        .map(|i| format!("{{\"title\":\"batch {}\",\"tags\":[\"b\"]}}\n", 56 - i))
        .collect();
    assert_eq!(app.ingest_ndjson(batch).await.status(), StatusCode::OK);
    // Relevance is left out: equal scores keep the index's order, which a
    // merge of segments between two pages may change.
    for sort in ["created", "-created", "updated", "-updated", "title"] {
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let res = search(
                &app,
                &format!("q=batch&tag=b&sort={sort}&limit=7&offset={offset}"),
            )
            .await;
            assert_eq!(res["total"], 57);
            let page = ids(&res);
            if page.is_empty() {
                break;
            }
            seen.extend(page);
            offset += 7;
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (57, 57), "{sort}");
    }
}

/// Suggestions complete the last word from the index's words, typo
/// tolerant, by the notes they are in.
#[tokio::test]
async fn suggestions_complete_the_last_word() {
    let app = seeded().await;
    app.create_note(json!({"title": "kubectl", "body": "kubectl get pods"}))
        .await;
    let (status, res) = app.get_json("/api/v1/search/suggest?q=drain%20KUB").await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(
        res,
        json!({"suggestions": [
            {"text": "kubernetes", "count": 2},
            {"text": "kubectl", "count": 1},
        ]})
    );
    let (_, res) = app
        .get_json("/api/v1/search/suggest?q=kubernets&limit=1")
        .await;
    assert_eq!(
        res,
        json!({"suggestions": [{"text": "kubernetes", "count": 2}]})
    );
    let (_, res) = app.get_json("/api/v1/search/suggest?q=%20%21%21").await;
    assert_eq!(res, json!({"suggestions": []}));
    let (_, res) = app.get_json("/api/v1/search/suggest?q=zzzz").await;
    assert_eq!(res, json!({"suggestions": []}));
    refused_with_422(
        &app,
        "/api/v1/search/suggest",
        &["q=a&limit=0", "q=a&limit=21", "q=a&limit=x"],
    )
    .await;
}

/// The new parameters' hostile values: unknown sorts and facets, bad
/// dates and booleans, huge lists; each names its field.
#[tokio::test]
async fn the_new_parameters_refuse_bad_values_by_name() {
    let app = seeded().await;
    let many: String = (0..33).map(|i| format!("&tag=t{i}")).collect();
    for (q, field) in [
        ("sort=created", ""),
        ("sort=created&created_after=9999-12-31T23%3A59%3A59Z", ""),
        (
            "sort=created&created_before=0001-01-01T00%3A00%3A00%2B14%3A00",
            "",
        ),
        (
            "sort=title&updated_after=1000-01-01T00%3A00%3A00Z&updated_before=3000-01-01T00%3A00%3A00Z",
            "",
        ),
        ("q=a&sort=newest", "sort"),
        ("q=a&sort=created%3B%20DROP%20TABLE%20notes", "sort"),
        ("q=a&facets=authors", "facets"),
        ("q=a&created_after=yesterday", "created_after"),
        (
            "q=a&updated_before=2026-13-01T00%3A00%3A00Z",
            "updated_before",
        ),
        ("q=a&has_attachments=maybe", "has_attachments"),
        ("q=a&typos=2", "typos"),
        ("q=a&any_tag=..%2F..%2Fetc", "any_tag"),
        ("q=a&not_tag=%3Cscript%3E", "not_tag"),
        ("sort=relevance", "q"),
        (&format!("q=a{many}"), "tag"),
    ] {
        let res = app
            .get(&format!("/api/v1/search?{q}"))
            .send()
            .await
            .unwrap();
        if field.is_empty() {
            assert_eq!(res.status(), StatusCode::OK, "{q}");
            continue;
        }
        let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(p.to_string().contains(field), "{q}: {p}");
    }
}

/// Chinese, Japanese and Korean have no spaces between words: a word typed
/// in them is found inside a sentence, and only where its characters
/// stand together.
#[tokio::test]
async fn chinese_japanese_and_korean_are_searchable_by_their_words() {
    let app = TestApp::spawn().await;
    app.create_note(json!({"title": "会议", "body": "我们明天在北京开会，讨论新的项目计划。"}))
        .await;
    app.create_note(json!({"title": "天気予報", "body": "東京の天気は明日から雨になるでしょう。傘を持って行ってください。"}))
        .await;
    app.create_note(
        json!({"title": "회의 안내", "body": "오늘 오후 세 시에 서울 사무실에서 회의가 있습니다."}),
    )
    .await;
    let enc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    for (word, title) in [
        ("北京", "会议"),
        ("项目计划", "会议"),
        ("東京", "天気予報"),
        ("天気", "天気予報"),
        ("傘", "天気予報"),
        ("서울", "회의 안내"),
        ("사무실", "회의 안내"),
        ("회의", "회의 안내"),
    ] {
        assert_eq!(
            titles(&app, &format!("q={}", enc(word))).await,
            [title],
            "{word}"
        );
    }
    assert!(titles(&app, &format!("q={}", enc("京北"))).await.is_empty());
    assert!(
        titles(&app, &format!("q={}", enc("计划项目")))
            .await
            .is_empty()
    );
    let res = search(&app, &format!("q={}", enc("天気"))).await;
    let snippet = res["hits"][0]["snippet"].as_str().unwrap();
    assert!(
        snippet.contains("<mark>天</mark><mark>気</mark>"),
        "{snippet}"
    );
}
