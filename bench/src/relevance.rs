//! Known-item relevance (issue #22): does a search find the note a user
//! means when they type (part of) its title, as typed, with one typo, or
//! while still typing?
//!
//! Targets are drawn with a fixed seed from the notes of the real-text
//! corpus whose title is unique in the corpus, a document's numbered parts
//! ("Title (2)", "Title (3)", ...) counting as the same title: those parts
//! share every word of the title, so no engine could tell them apart by
//! it. From each target's title the two rarest words (document frequency
//! over the corpus' titles and bodies, through the service's tokenizer;
//! 4+ letters, no digits; in title order) make three queries:
//!
//! - `exact`: both words as in the title;
//! - `typo`: one letter of the longer word (the first on a tie) swapped
//!   with its neighbour, dropped, or changed, chosen by the seed; targets
//!   whose longer word has fewer than 5 letters are not drawn, so every
//!   typo query holds a typo;
//! - `typing` (as-you-type): the first word whole, the first 4 letters of
//!   the second, no `*` and no trailing space.
//!
//! A query succeeds when the target is among the first 10 hits
//! (success@10); MRR is the mean of 1/rank over the first 10 (0 beyond).
//! The engines: the service over HTTP (its defaults), raw tantivy with
//! plain BM25 over the exact words (the reference query builder: title^4,
//! body, extra^0.5), raw tantivy with tantivy's own fuzzy and prefix
//! queries (`build_tolerant_query`), and Meilisearch over HTTP when given.

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    io::{BufRead, BufReader},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tantivy::{DocAddress, Score, TantivyDocument, collector::TopDocs, schema::Value as _};

use crate::{
    client,
    corpus::{Rng, url_encode},
    tantivy_ref,
};

pub const KINDS: [&str; 3] = ["exact", "typo", "typing"];
/// Letters of the second word typed so far in a `typing` query.
pub const TYPED_LETTERS: usize = 4;
pub const TOP: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// The note's `external_id` (`real-0001234`).
    pub id: String,
    pub title: String,
    /// The two words, in title order, and their document frequencies.
    pub words: [String; 2],
    pub df: [u32; 2],
    pub exact: String,
    pub typo: String,
    /// swap, drop or change, and the word's letter it was applied at.
    pub typo_edit: String,
    pub typing: String,
    /// Other notes whose title holds both words: at 10 or more, a title
    /// match alone cannot put the target in the top 10 (an ambiguous item).
    /// Not counted (0) for the speed mixes.
    pub rivals: usize,
}

/// An item whose two words are in the titles of 10 or more other notes.
pub const AMBIGUOUS_RIVALS: usize = 10;

impl Item {
    pub fn query(&self, kind: &str) -> &str {
        match kind {
            "exact" => &self.exact,
            "typo" => &self.typo,
            _ => &self.typing,
        }
    }
}

#[derive(Deserialize)]
struct Line {
    title: String,
    #[serde(default)]
    body: String,
    external_id: String,
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    notes_api::text::query::tokens(text).map(|(_, _, t)| t)
}

/// A title without its part number: "Foo (3)" is "Foo".
fn base_title(t: &str) -> &str {
    if let Some(open) = t.rfind(" (")
        && let Some(inner) = t[open + 2..].strip_suffix(')')
        && !inner.is_empty()
        && inner.chars().all(|c| c.is_ascii_digit())
    {
        return &t[..open];
    }
    t
}

fn eligible(w: &str) -> bool {
    w.chars().count() >= 4 && w.chars().all(char::is_alphabetic)
}

/// One typo in `w` (5+ letters), chosen by `rng`.
fn typo(w: &str, rng: &mut Rng) -> (String, String) {
    let c: Vec<char> = w.chars().collect();
    loop {
        match rng.range(0, 3) {
            0 => {
                let i = rng.range(0, c.len() - 1);
                if c[i] == c[i + 1] {
                    continue;
                }
                let mut t = c.clone();
                t.swap(i, i + 1);
                return (t.into_iter().collect(), format!("swap {i}-{}", i + 1));
            }
            1 => {
                let i = rng.range(0, c.len());
                let mut t = c.clone();
                t.remove(i);
                return (t.into_iter().collect(), format!("drop {i}"));
            }
            _ => {
                let i = rng.range(0, c.len());
                let letter = (b'a' + rng.range(0, 26) as u8) as char;
                if letter == c[i] {
                    continue;
                }
                let mut t = c.clone();
                t[i] = letter;
                return (t.into_iter().collect(), format!("change {i} to {letter}"));
            }
        }
    }
}

/// Draws `n` known items from the corpus in `dir` with `seed`. `unique`:
/// only targets whose title is unique (the relevance set); without it any
/// note with two eligible title words qualifies (the speed mixes).
pub fn known_items(dir: &Path, n: usize, seed: u64, unique: bool) -> Result<(Vec<Item>, Value)> {
    let mut files: Vec<_> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("batch-") && n.ends_with(".ndjson"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no batch-*.ndjson in {}", dir.display());
    }
    let mut notes: Vec<(String, String)> = Vec::new(); // (external_id, title)
    let mut title_words: Vec<BTreeSet<String>> = Vec::new();
    let mut df: HashMap<String, u32> = HashMap::new();
    let mut bases: HashMap<String, u32> = HashMap::new();
    for f in &files {
        for line in BufReader::new(fs::File::open(f)?).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let l: Line = serde_json::from_str(&line)?;
            let uniq: BTreeSet<String> = words(&l.title).chain(words(&l.body)).collect();
            for w in uniq {
                *df.entry(w).or_default() += 1;
            }
            *bases.entry(base_title(&l.title).to_owned()).or_default() += 1;
            title_words.push(words(&l.title).collect());
            notes.push((l.external_id, l.title));
        }
    }
    notes.sort();
    let total = notes.len();
    let unique_titles = notes
        .iter()
        .filter(|(_, t)| bases[base_title(t)] == 1)
        .count();
    let mut pool: Vec<(String, String, [String; 2], [u32; 2])> = Vec::new();
    for (id, title) in notes {
        if unique && bases[base_title(&title)] != 1 {
            continue;
        }
        let mut seen = BTreeSet::new();
        let ws: Vec<(usize, String)> = words(&title)
            .filter(|w| eligible(w))
            .filter(|w| seen.insert(w.clone()))
            .enumerate()
            .collect();
        if ws.len() < 2 {
            continue;
        }
        let mut by_df = ws.clone();
        by_df.sort_by_key(|(pos, w)| (df.get(w).copied().unwrap_or(0), *pos));
        let mut two = [by_df[0].clone(), by_df[1].clone()];
        two.sort_by_key(|(pos, _)| *pos);
        let [(_, a), (_, b)] = two;
        if a.chars().count().max(b.chars().count()) < 5 {
            continue;
        }
        let dfs = [df[&a], df[&b]];
        pool.push((id, title, [a, b], dfs));
    }
    let eligible_targets = pool.len();
    let mut rng = Rng::new(seed);
    for i in (1..pool.len()).rev() {
        let j = rng.range(0, i + 1);
        pool.swap(i, j);
    }
    pool.truncate(n);
    let items: Vec<Item> = pool
        .into_iter()
        .map(|(id, title, [a, b], df)| {
            let second_longer = b.chars().count() > a.chars().count();
            let (typed, edit) = typo(if second_longer { &b } else { &a }, &mut rng);
            let typo = if second_longer {
                format!("{a} {typed}")
            } else {
                format!("{typed} {b}")
            };
            let typing = format!("{a} {}", b.chars().take(TYPED_LETTERS).collect::<String>());
            // Only the relevance set is scored by its rivals; counting them
            // is a pass over every title per item (minutes at 1M notes).
            let rivals = if unique {
                title_words
                    .iter()
                    .filter(|t| t.contains(&a) && t.contains(&b))
                    .count()
                    .saturating_sub(1)
            } else {
                0
            };
            Item {
                rivals,
                id,
                title,
                exact: format!("{a} {b}"),
                typo,
                typo_edit: format!("{edit} of {:?}", if second_longer { &b } else { &a }),
                typing,
                words: [a, b],
                df,
            }
        })
        .collect();
    if items.len() < n {
        bail!("only {} targets qualify, {n} asked for", items.len());
    }
    Ok((
        items,
        json!({"notes": total, "notes_with_a_unique_title": unique_titles,
               "qualifying_targets": eligible_targets, "unique_titles_only": unique, "seed": seed}),
    ))
}

/// Success@10 and MRR of the ranks found (1-based; `None`: not in the top 10).
fn score(ranks: &[Option<usize>]) -> Value {
    let n = ranks.len().max(1) as f64;
    let found = ranks.iter().filter(|r| r.is_some()).count() as f64;
    let mrr: f64 = ranks.iter().flatten().map(|&r| 1.0 / r as f64).sum::<f64>() / n;
    json!({"queries": ranks.len(), "success_at_10": found / n, "mrr": mrr})
}

/// Asks `engine` each query of each kind; returns the scores per kind and
/// the misses (with the top hits) for the report.
fn evaluate(
    items: &[Item],
    mut engine: impl FnMut(&str) -> Result<Vec<(String, String)>>,
) -> Result<Value> {
    let mut out = serde_json::Map::new();
    let started = Instant::now();
    for kind in KINDS {
        let mut ranks = Vec::new();
        let mut misses = Vec::new();
        for it in items {
            let q = it.query(kind);
            let hits = engine(q)?;
            let rank = hits
                .iter()
                .position(|(id, title)| *id == it.id || *title == it.title)
                .map(|p| p + 1);
            if rank.is_none() && misses.len() < 40 {
                misses.push(json!({
                    "q": q, "target": it.title, "target_id": it.id, "df": it.df, "rivals": it.rivals,
                    "top3": hits.iter().take(3).map(|(_, t)| t).collect::<Vec<_>>(),
                    "hits": hits.len(),
                }));
            }
            ranks.push(rank);
        }
        let mut s = score(&ranks);
        let clear: Vec<Option<usize>> = items
            .iter()
            .zip(&ranks)
            .filter(|(it, _)| it.rivals < AMBIGUOUS_RIVALS)
            .map(|(_, r)| *r)
            .collect();
        s["unambiguous"] = score(&clear);
        s["misses"] = json!(misses);
        s["ranks"] = json!(ranks.iter().map(|r| r.unwrap_or(0)).collect::<Vec<_>>());
        out.insert(kind.into(), s);
    }
    out.insert("secs".into(), json!(started.elapsed().as_secs_f64()));
    Ok(Value::Object(out))
}

/// The service: GET /api/v1/search?q=…&limit=10 with its defaults.
fn service(addr: &str) -> impl FnMut(&str) -> Result<Vec<(String, String)>> + '_ {
    move |q| {
        let path = format!("/api/v1/search?q={}&limit={TOP}", url_encode(q));
        let r = client::get(addr, &path, Duration::from_secs(30))?;
        if r.status != 200 {
            bail!("{path}: HTTP {}", r.status);
        }
        Ok(hits(&r.json()?, None))
    }
}

/// A search answer's hits as (external id, title); the id is empty when
/// the engine does not return one.
fn hits(answer: &Value, id: Option<&str>) -> Vec<(String, String)> {
    let text = |h: &Value, field: &str| h[field].as_str().unwrap_or_default().to_owned();
    answer["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| (id.map(|f| text(h, f)).unwrap_or_default(), text(h, "title")))
        .collect()
}

/// Meilisearch: POST /indexes/INDEX/search {"q", "limit": 10} (its
/// defaults: typo tolerance on, last word as a prefix).
fn meili<'a>(
    addr: &'a str,
    index: &'a str,
) -> impl FnMut(&str) -> Result<Vec<(String, String)>> + 'a {
    move |q| {
        let path = format!("/indexes/{index}/search");
        let body = json!({"q": q, "limit": TOP, "attributesToRetrieve": ["external_id", "title"]});
        let r = client::request(
            addr,
            "POST",
            &path,
            Some("application/json"),
            body.to_string().as_bytes(),
            Duration::from_secs(30),
        )?;
        if r.status != 200 {
            bail!(
                "meilisearch {path}: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        Ok(hits(&r.json()?, Some("external_id")))
    }
}

/// Raw tantivy on the bench's index: `tolerant` = fuzzy and prefix
/// automata, else plain BM25 over the exact words.
fn raw(dir: &Path, tolerant: bool) -> Result<impl FnMut(&str) -> Result<Vec<(String, String)>>> {
    let (_index, reader, f) = tantivy_ref::open_reader(dir)?;
    let searcher = reader.searcher();
    Ok(move |q: &str| {
        use notes_api::text::query;
        let parsed = if tolerant {
            query::parse_with(q, tantivy_ref::SERVICE_TOLERANCE)
        } else {
            query::parse(q)
        }
        .map_err(|e| anyhow::anyhow!("{q:?}: {e}"))?;
        let tq = if tolerant {
            tantivy_ref::build_tolerant_query(&f, &parsed)
        } else {
            tantivy_ref::build_query(&f, &parsed)
        };
        let top = TopDocs::with_limit(TOP).order_by_score();
        let hits: Vec<(Score, DocAddress)> = searcher.search(&tq, &top)?;
        hits.into_iter()
            .map(|(_, a)| {
                let d: TantivyDocument = searcher.doc(a)?;
                Ok((
                    String::new(),
                    d.get_first(f.title)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                ))
            })
            .collect()
    })
}

pub struct Args<'a> {
    pub corpus: &'a Path,
    pub targets: usize,
    pub seed: u64,
    pub addr: Option<&'a str>,
    pub index: Option<&'a Path>,
    pub meili: Option<&'a str>,
    pub meili_index: &'a str,
    /// Write the items here (JSON), for the record.
    pub items_out: Option<&'a Path>,
}

pub fn relevance(a: &Args) -> Result<Value> {
    let (items, drawn) = known_items(a.corpus, a.targets, a.seed, true)?;
    if let Some(p) = a.items_out {
        fs::write(p, serde_json::to_string_pretty(&items)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let mut engines = serde_json::Map::new();
    if let Some(addr) = a.addr {
        engines.insert("service".into(), evaluate(&items, service(addr))?);
    }
    if let Some(dir) = a.index {
        engines.insert("tantivy_bm25".into(), evaluate(&items, raw(dir, false)?)?);
        engines.insert("tantivy_fuzzy".into(), evaluate(&items, raw(dir, true)?)?);
    }
    if let Some(m) = a.meili {
        engines.insert(
            "meilisearch".into(),
            evaluate(&items, meili(m, a.meili_index))?,
        );
    }
    Ok(json!({
        "targets": drawn,
        "top": TOP,
        "examples": items.iter().take(5).collect::<Vec<_>>(),
        "ambiguous_items": items.iter().filter(|i| i.rivals >= AMBIGUOUS_RIVALS).count(),
        "ambiguous_rivals_at_least": AMBIGUOUS_RIVALS,
        "typo_edits": {
            "swap": items.iter().filter(|i| i.typo_edit.starts_with("swap")).count(),
            "drop": items.iter().filter(|i| i.typo_edit.starts_with("drop")).count(),
            "change": items.iter().filter(|i| i.typo_edit.starts_with("change")).count(),
        },
        "engines": engines,
    }))
}

/// The speed mixes: `n` items of any note with two eligible title words,
/// one query file per kind (`queries-KIND.txt`, and `.paths` for wrk
/// against the service), a `mixed` file interleaving the three kinds, and
/// `suggest.paths`: 2 to 4 letters of the mixes' words.
pub fn mixes(corpus: &Path, out: &Path, n: usize, seed: u64) -> Result<Value> {
    let (items, drawn) = known_items(corpus, n, seed, false)?;
    fs::create_dir_all(out)?;
    let write = |name: &str, qs: &[String], extra: &str| -> Result<()> {
        fs::write(
            out.join(format!("queries-{name}.txt")),
            qs.join("\n") + "\n",
        )?;
        let paths: Vec<String> = qs
            .iter()
            .map(|q| format!("/api/v1/search?q={}{extra}", url_encode(q)))
            .collect();
        fs::write(
            out.join(format!("queries-{name}.paths")),
            paths.join("\n") + "\n",
        )?;
        let meili: Vec<String> = qs
            .iter()
            .map(|q| {
                format!(
                    "/indexes/notes/search?q={}&attributesToRetrieve=external_id,title,body\
                     &attributesToCrop=body&cropLength=24&attributesToHighlight=title,body",
                    url_encode(q)
                )
            })
            .collect();
        fs::write(
            out.join(format!("meili-{name}.paths")),
            meili.join("\n") + "\n",
        )?;
        Ok(())
    };
    let mut mixed = Vec::new();
    for kind in KINDS {
        let qs: Vec<String> = items.iter().map(|i| i.query(kind).to_owned()).collect();
        write(kind, &qs, "")?;
        for (k, q) in qs.iter().enumerate() {
            mixed.push((k, q.clone()));
        }
    }
    // The exact words with no tolerance at all: what an exact-word search
    // of the same words costs.
    let qs: Vec<String> = items.iter().map(|i| i.exact.clone()).collect();
    write("exact-strict", &qs, "&typos=false&prefix_last=false")?;
    mixed.sort_by_key(|(k, _)| *k);
    let mixed: Vec<String> = mixed.into_iter().map(|(_, q)| q).collect();
    write("mixed", &mixed, "")?;
    let mut rng = Rng::new(seed ^ 0x5u64);
    let suggest: Vec<String> = items
        .iter()
        .map(|i| {
            let w = &i.words[rng.range(0, 2)];
            let k = rng.range(2, 5);
            let p: String = w.chars().take(k).collect();
            format!("/api/v1/search/suggest?q={}&limit=8", url_encode(&p))
        })
        .collect();
    fs::write(out.join("suggest.paths"), suggest.join("\n") + "\n")?;
    Ok(json!({"drawn": drawn, "items": items.len(), "dir": out,
              "examples": items.iter().take(3).collect::<Vec<_>>(),
              "suggest_examples": suggest[..3]}))
}
