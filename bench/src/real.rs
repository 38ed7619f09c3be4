//! The real-text corpus: documents Debian ships (`apt-get install linux-doc
//! python3-doc`, and the man pages already under /usr/share/man), split into
//! notes of about 2.5 KB at paragraph boundaries, with queries drawn from
//! the notes themselves (through the service's own tokenizer).
//!
//! Sources, in a fixed (sorted) order so the corpus is the same on every
//! machine with the same packages:
//! - kernel documentation, reStructuredText:
//!   /usr/share/doc/linux-doc-*/Documentation/**/*.rst(.gz);
//! - the Python documentation's reStructuredText sources:
//!   /usr/share/doc/python3*/html/_sources/**/*.txt (symlinked copies once);
//! - man pages, every language: /usr/share/man/**/*.gz, troff requests and
//!   escapes stripped.
//!
//! When the sources hold fewer notes than asked for, further passes split
//! the same documents again with the cut points shifted (by half a note, then
//! a quarter, ...): the extra notes are new windows over the same text, so
//! phrases from it match in about `passes` notes. `corpus.json` tells how
//! many notes each pass made.

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    io::{BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::corpus::{QUERY_KINDS, Rng, url_encode};

#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub generator: u32,
    pub seed: u64,
    pub notes: usize,
    pub batch: usize,
    pub note_bytes: usize,
    pub queries_per_kind: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            generator: 1,
            seed: 20_251_201,
            notes: 100_000,
            batch: 5_000,
            note_bytes: 2_500,
            queries_per_kind: 2_000,
        }
    }
}

struct Doc {
    source: &'static str,
    /// A tag for the document's area ("networking", "library", "man1", ...).
    area: String,
    title: String,
    paragraphs: Vec<String>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            walk(&p, out);
        } else if t.is_file() {
            out.push(p);
        }
    }
}

fn read_text(p: &Path) -> Option<String> {
    let raw = fs::read(p).ok()?;
    let bytes = if p.extension().is_some_and(|e| e == "gz") {
        let mut d = flate2::read::GzDecoder::new(&raw[..]);
        let mut v = Vec::new();
        d.read_to_end(&mut v).ok()?;
        v
    } else {
        raw
    };
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn tag(s: &str) -> String {
    let t: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if t.is_empty() { "misc".into() } else { t }
}

fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 3 && t.chars().all(|c| "=-~^*#+`'\".:_".contains(c))
}

fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.trim().is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
        } else {
            if !cur.is_empty() {
                cur.push('\n');
            }
            cur.push_str(line.trim_end());
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// reStructuredText: the title is the first line followed (or framed) by
/// an underline.
fn rst_doc(source: &'static str, area: String, text: &str, fallback: &str) -> Option<Doc> {
    let lines: Vec<&str> = text.lines().collect();
    let mut title = None;
    for w in lines.windows(2) {
        if !w[0].trim().is_empty() && !is_rule(w[0]) && is_rule(w[1]) && !w[0].starts_with("..") {
            title = Some(w[0].trim().to_owned());
            break;
        }
    }
    let paragraphs = paragraphs(text);
    if paragraphs.is_empty() {
        return None;
    }
    Some(Doc {
        source,
        area,
        title: title.unwrap_or_else(|| fallback.to_owned()),
        paragraphs,
    })
}

/// Strips troff escapes from one line of text.
fn unescape_troff(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let Some(&n) = b.get(i) else { break };
        i += 1;
        match n {
            'f' | 'F' => {
                // \fB, \f(CW, \f[CR]
                match b.get(i) {
                    Some('(') => i += 3,
                    Some('[') => {
                        while i < b.len() && b[i] != ']' {
                            i += 1;
                        }
                        i += 1;
                    }
                    Some(_) => i += 1,
                    None => {}
                }
            }
            '(' => {
                let code: String = b.iter().skip(i).take(2).collect();
                i += 2;
                out.push_str(match code.as_str() {
                    "em" | "en" => "-",
                    "aq" | "cq" | "oq" => "'",
                    "lq" | "rq" => "\"",
                    "bu" => "*",
                    _ => " ",
                });
            }
            '[' => {
                while i < b.len() && b[i] != ']' {
                    i += 1;
                }
                i += 1;
                out.push(' ');
            }
            '*' | 'n' => match b.get(i) {
                Some('(') => i += 3,
                Some('[') => {
                    while i < b.len() && b[i] != ']' {
                        i += 1;
                    }
                    i += 1;
                }
                Some(_) => i += 1,
                None => {}
            },
            's' => {
                if matches!(b.get(i), Some('+' | '-')) {
                    i += 1;
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            '-' => out.push('-'),
            'e' | '\\' => out.push('\\'),
            '&' | '|' | '^' | ':' | 'c' | '%' | '"' => {
                if n == '"' {
                    break; // a comment to the end of the line
                }
            }
            ' ' | '~' | '0' => out.push(' '),
            'u' | 'd' | 'k' | 'h' | 'v' | 'w' | 'o' | 'z' | 'l' | 'L' | 'x' | 'X' | 'Y' | 'g'
            | 'b' | 'D' | 'N' | 'R' | 'S' | 'V' | 'Z' | 'A' | 'B' | 'C' | 'H' | 'O' | 'm' | 'M' => {
                // Escapes with a quoted argument.
                if let Some(&q) = b.get(i)
                    && (q == '\'' || q == '[')
                {
                    let end = if q == '[' { ']' } else { '\'' };
                    i += 1;
                    while i < b.len() && b[i] != end {
                        i += 1;
                    }
                    i += 1;
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// A man page: requests dropped except the ones that carry text (section
/// headings, font macros), escapes stripped. The title is the NAME line.
fn man_doc(area: String, text: &str, fallback: &str) -> Option<Doc> {
    if text.trim_start().starts_with(".so ") {
        return None; // a redirect to another page
    }
    let mut out = String::new();
    let mut name_next = false;
    let mut title = None;
    for line in text.lines() {
        if let Some(req) = line.strip_prefix('.').or_else(|| line.strip_prefix('\'')) {
            let mut parts = req.trim_start().splitn(2, char::is_whitespace);
            let name = parts.next().unwrap_or_default();
            let args = parts.next().unwrap_or_default().replace('"', "");
            match name {
                "SH" | "SS" => {
                    out.push_str("\n\n");
                    out.push_str(&unescape_troff(&args));
                    out.push_str("\n\n");
                    name_next = args.trim().eq_ignore_ascii_case("name")
                        || args.trim().eq_ignore_ascii_case("nom")
                        || args.trim().eq_ignore_ascii_case("名前");
                }
                "PP" | "LP" | "P" | "TP" | "IP" | "HP" | "sp" | "br" => {
                    out.push_str("\n\n");
                    if name == "IP" && !args.trim().is_empty() {
                        out.push_str(&unescape_troff(&args));
                        out.push(' ');
                    }
                }
                "B" | "I" | "BI" | "IB" | "BR" | "RB" | "IR" | "RI" | "SM" | "SB" | "UR" | "MT"
                | "Nm" | "Nd" | "Xr" | "Ar" | "Fl" | "Op" | "Dl" | "It" | "Sh" => {
                    out.push_str(&unescape_troff(&args));
                    out.push(' ');
                }
                _ => {}
            }
            continue;
        }
        let t = unescape_troff(line);
        if name_next && title.is_none() && !t.trim().is_empty() {
            title = Some(t.trim().chars().take(200).collect::<String>());
        }
        out.push_str(&t);
        out.push('\n');
    }
    let paragraphs = paragraphs(&out);
    if paragraphs.is_empty() {
        return None;
    }
    Some(Doc {
        source: "man",
        area,
        title: title.unwrap_or_else(|| fallback.to_owned()),
        paragraphs,
    })
}

fn glob_dirs(parent: &str, prefix: &str, sub: &str) -> Vec<PathBuf> {
    let mut dirs = BTreeSet::new();
    if let Ok(rd) = fs::read_dir(parent) {
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) {
                let d = e.path().join(sub);
                if let Ok(c) = fs::canonicalize(&d)
                    && c.is_dir()
                {
                    dirs.insert(c);
                }
            }
        }
    }
    dirs.into_iter().collect()
}

/// Every source document, in a fixed order.
fn documents() -> Result<(Vec<Doc>, Value)> {
    let mut docs = Vec::new();
    let mut counts = serde_json::Map::new();
    // Kernel documentation.
    let kernel = glob_dirs("/usr/share/doc", "linux-doc-", "Documentation");
    let mut files = Vec::new();
    for d in &kernel {
        walk(d, &mut files);
    }
    files.retain(|p| {
        let n = p.to_string_lossy();
        n.ends_with(".rst")
            || n.ends_with(".rst.gz")
            || n.ends_with(".txt")
            || n.ends_with(".txt.gz")
    });
    files.sort();
    let n0 = docs.len();
    for p in &files {
        let Some(text) = read_text(p) else { continue };
        let rel = kernel
            .iter()
            .find_map(|k| p.strip_prefix(k).ok())
            .unwrap_or(p);
        let area = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .filter(|a| !a.contains('.'))
            .unwrap_or_else(|| "kernel".into());
        let stem = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .replace(".gz", "");
        if let Some(d) = rst_doc("kernel", tag(&area), &text, &stem) {
            docs.push(d);
        }
    }
    counts.insert(
        "kernel".into(),
        json!({"dirs": kernel, "files": files.len(), "docs": docs.len() - n0}),
    );
    // Python documentation sources.
    let python = glob_dirs("/usr/share/doc", "python3", "html/_sources");
    let mut files = Vec::new();
    for d in &python {
        walk(d, &mut files);
    }
    files.retain(|p| p.to_string_lossy().ends_with(".txt"));
    files.sort();
    let n0 = docs.len();
    for p in &files {
        let Some(text) = read_text(p) else { continue };
        let rel = python
            .iter()
            .find_map(|k| p.strip_prefix(k).ok())
            .unwrap_or(p);
        let area = if rel.components().count() > 1 {
            rel.components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .into_owned()
        } else {
            "python".into()
        };
        let stem = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .replace(".rst.txt", "");
        if let Some(d) = rst_doc("python", tag(&area), &text, &stem) {
            docs.push(d);
        }
    }
    counts.insert(
        "python".into(),
        json!({"dirs": python, "files": files.len(), "docs": docs.len() - n0}),
    );
    // Man pages.
    let mut files = Vec::new();
    walk(Path::new("/usr/share/man"), &mut files);
    files.retain(|p| p.extension().is_some_and(|e| e == "gz"));
    files.sort();
    let n0 = docs.len();
    for p in &files {
        let Some(text) = read_text(p) else { continue };
        let area = p
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "man".into());
        let stem = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .replace(".gz", "");
        if let Some(d) = man_doc(tag(&area), &text, &stem) {
            docs.push(d);
        }
    }
    counts.insert(
        "man".into(),
        json!({"dir": "/usr/share/man", "files": files.len(), "docs": docs.len() - n0}),
    );
    if docs.is_empty() {
        bail!("no source documents: install linux-doc and python3-doc (bench/run.sh does)");
    }
    Ok((docs, Value::Object(counts)))
}

#[derive(Serialize)]
struct Line<'a> {
    title: String,
    body: String,
    tags: Vec<String>,
    external_id: String,
    metadata: Value,
    #[serde(skip)]
    _p: std::marker::PhantomData<&'a ()>,
}

/// Splits a document's paragraphs into bodies of about `size` bytes,
/// skipping the first `skip` bytes (the shifted passes). A paragraph longer
/// than twice the size is cut at a space.
fn chunks(doc: &Doc, size: usize, skip: usize) -> Vec<String> {
    let mut pieces: Vec<&str> = Vec::new();
    for p in &doc.paragraphs {
        let mut rest = p.as_str();
        while rest.len() > 2 * size {
            let mut cut = size;
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            let cut = rest[..cut]
                .rfind(' ')
                .filter(|&c| c > size / 2)
                .unwrap_or(cut);
            pieces.push(&rest[..cut]);
            rest = rest[cut..].trim_start();
        }
        if !rest.trim().is_empty() {
            pieces.push(rest);
        }
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut skipped = 0;
    for piece in pieces {
        if skipped < skip {
            skipped += piece.len() + 2;
            continue;
        }
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        cur.push_str(piece);
        if cur.len() >= size {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        // A short tail joins the previous note rather than standing alone.
        match out.last_mut() {
            Some(last) if cur.len() < size / 4 => {
                last.push_str("\n\n");
                last.push_str(&cur);
            }
            _ => out.push(cur),
        }
    }
    out
}

/// Writes the real-text corpus under `dir` unless `dir/corpus.json` says it
/// is there with the same parameters and source counts.
pub fn generate(dir: &Path, p: &Params) -> Result<Value> {
    let stamp = dir.join("corpus.json");
    let (docs, sources) = documents()?;
    if let Ok(text) = fs::read_to_string(&stamp)
        && let Ok(old) = serde_json::from_str::<Value>(&text)
        && old.get("params") == Some(&serde_json::to_value(p)?)
        && old.get("sources") == Some(&sources)
    {
        eprintln!("corpus: reusing {}", dir.display());
        return Ok(old);
    }
    fs::create_dir_all(dir)?;
    // Notes, pass after pass, until there are enough.
    let mut notes: Vec<(usize, String)> = Vec::with_capacity(p.notes); // (doc, body)
    let mut per_pass = Vec::new();
    let mut pass = 0usize;
    'outer: while notes.len() < p.notes {
        let skip = if pass == 0 {
            0
        } else {
            p.note_bytes * ((2 * pass - 1) % 8 + 1) / 8
        };
        let before = notes.len();
        for (d, doc) in docs.iter().enumerate() {
            for body in chunks(doc, p.note_bytes, skip) {
                notes.push((d, body));
                if notes.len() == p.notes {
                    per_pass.push(notes.len() - before);
                    break 'outer;
                }
            }
        }
        per_pass.push(notes.len() - before);
        pass += 1;
        if pass > 16 {
            bail!("the sources are too small for {} notes", p.notes);
        }
    }
    // Interleave the documents so every batch mixes sources (a seeded
    // shuffle), as a real import of mixed notes would.
    let mut rng = Rng::new(p.seed);
    for i in (1..notes.len()).rev() {
        let j = rng.range(0, i + 1);
        notes.swap(i, j);
    }
    let mut part: HashMap<usize, usize> = HashMap::new();
    let mut sizes = Vec::with_capacity(notes.len());
    let mut batches = Vec::new();
    for (b, chunk) in notes.chunks(p.batch).enumerate() {
        let name = format!("batch-{b:03}.ndjson");
        let mut out = BufWriter::new(fs::File::create(dir.join(&name))?);
        for (k, (d, body)) in chunk.iter().enumerate() {
            let doc = &docs[*d];
            let n = part.entry(*d).or_insert(0);
            *n += 1;
            let title: String = if *n == 1 {
                doc.title.clone()
            } else {
                format!("{} ({})", doc.title, n)
            }
            .chars()
            .take(400)
            .collect();
            let line = Line {
                title,
                body: body.clone(),
                tags: vec![doc.source.to_owned(), doc.area.clone()],
                external_id: format!("real-{:07}", b * p.batch + k),
                metadata: json!({"source": doc.source}),
                _p: Default::default(),
            };
            let s = serde_json::to_string(&line)?;
            sizes.push(s.len() + 1);
            out.write_all(s.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        batches.push(name);
    }
    // Queries from the notes, through the service's tokenizer.
    let toks: Vec<Vec<String>> = notes
        .iter()
        .map(|(_, body)| {
            notes_api::text::query::tokens(body)
                .map(|(_, _, t)| t)
                .collect()
        })
        .collect();
    let mut df: HashMap<&str, u32> = HashMap::new();
    for t in &toks {
        let uniq: BTreeSet<&str> = t.iter().map(String::as_str).collect();
        for w in uniq {
            *df.entry(w).or_default() += 1;
        }
    }
    // Content words: letters only, 3+ characters, by document frequency.
    let mut ranked: Vec<(&str, u32)> = df
        .iter()
        .filter(|(w, _)| w.chars().count() >= 3 && w.chars().all(char::is_alphabetic))
        .map(|(w, c)| (*w, *c))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let rank: HashMap<&str, usize> = ranked
        .iter()
        .enumerate()
        .map(|(i, (w, _))| (*w, i))
        .collect();
    const RANKS: (usize, usize) = (100, 20_000);
    let hi = RANKS.1.min(ranked.len());
    let content = |w: &str| rank.get(w).is_some_and(|&r| (RANKS.0..hi).contains(&r));
    let mut query_files = serde_json::Map::new();
    for kind in QUERY_KINDS {
        let mut rng =
            Rng::new(p.seed ^ 0xC0FF_EE00 ^ kind.as_bytes()[0] as u64 ^ kind.len() as u64);
        let mut qs = Vec::with_capacity(p.queries_per_kind);
        let mut tries = 0;
        while qs.len() < p.queries_per_kind {
            tries += 1;
            if tries > p.queries_per_kind * 1000 {
                bail!("cannot draw {kind} queries from the real corpus");
            }
            let q = match kind {
                "1term" => ranked[rng.log_uniform(RANKS.0, hi)].0.to_owned(),
                "2term" => {
                    // Two content words of the same note: a query that has
                    // at least that note as a hit, as a user's would.
                    let t = &toks[rng.range(0, toks.len())];
                    let words: Vec<&String> = t.iter().filter(|w| content(w)).collect();
                    if words.len() < 2 {
                        continue;
                    }
                    let a = words[rng.range(0, words.len())];
                    let b = words[rng.range(0, words.len())];
                    if a == b {
                        continue;
                    }
                    format!("{a} {b}")
                }
                "phrase" => {
                    let t = &toks[rng.range(0, toks.len())];
                    let len = if rng.chance(0.7) { 2 } else { 3 };
                    if t.len() < len + 1 {
                        continue;
                    }
                    let s = rng.range(0, t.len() - len);
                    let phrase = &t[s..s + len];
                    // At least one word that is not among the 100 most
                    // frequent ("the", "of", ...).
                    if phrase
                        .iter()
                        .all(|w| rank.get(w.as_str()).is_none_or(|&r| r < 100))
                    {
                        continue;
                    }
                    if phrase
                        .iter()
                        .any(|w| w.chars().any(|c| !c.is_alphanumeric()))
                    {
                        continue;
                    }
                    format!("\"{}\"", phrase.join(" "))
                }
                "prefix" => {
                    let w = ranked[rng.log_uniform(RANKS.0, hi)].0;
                    let chars: Vec<char> = w.chars().collect();
                    if chars.len() < 5 {
                        continue;
                    }
                    let n = rng.range(3, 5);
                    format!("{}*", chars[..n].iter().collect::<String>())
                }
                _ => unreachable!(),
            };
            qs.push(q);
        }
        fs::write(
            dir.join(format!("queries-{kind}.txt")),
            qs.join("\n") + "\n",
        )?;
        let paths: Vec<String> = qs
            .iter()
            .map(|q| format!("/api/v1/search?q={}", url_encode(q)))
            .collect();
        fs::write(
            dir.join(format!("queries-{kind}.paths")),
            paths.join("\n") + "\n",
        )?;
        query_files.insert(kind.into(), json!({"count": qs.len(), "examples": qs[..5]}));
    }
    let total: usize = sizes.iter().sum();
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    let pct = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    let body_bytes: usize = notes.iter().map(|(_, b)| b.len()).sum();
    let desc = json!({
        "params": p,
        "sources": sources,
        "notes": notes.len(),
        "notes_per_pass": per_pass,
        "distinct_words": df.len(),
        "batches": batches.len(),
        "ndjson_bytes": total,
        "avg_note_bytes": total as f64 / notes.len() as f64,
        "avg_body_bytes": body_bytes as f64 / notes.len() as f64,
        "note_bytes_p10_p50_p90_max": [pct(0.1), pct(0.5), pct(0.9), sorted[sorted.len() - 1]],
        "queries": query_files,
        "query_term_ranks": [RANKS.0, hi],
        "words_by_document_frequency": {
            "1-5": ranked.iter().take(5).map(|w| w.0).collect::<Vec<_>>(),
            "100-104": ranked.iter().skip(100).take(5).map(|w| w.0).collect::<Vec<_>>(),
            "10000-10004": ranked.iter().skip(10_000).take(5).map(|w| w.0).collect::<Vec<_>>(),
        },
    });
    fs::write(&stamp, serde_json::to_string_pretty(&desc)? + "\n")
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(desc)
}
