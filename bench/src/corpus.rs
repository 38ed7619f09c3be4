//! The benchmark corpus: deterministic (seeded), generated from a vocabulary
//! of pronounceable pseudo-words whose frequencies follow Zipf's law, as
//! natural-language words do. Notes have a mixed size (many short notes, some
//! medium, a few long ones; ~1 KB on average), titles, tags and external ids.
//!
//! Written as NDJSON batches of `batch` lines, one 64 MiB NDJSON body for the
//! memory benchmark, and query lists (1-term, 2-term, phrase, prefix) drawn
//! from the same vocabulary and the generated texts.

use std::{
    collections::{HashMap, HashSet},
    fs,
    io::{BufWriter, Write},
    path::Path,
};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};

/// SplitMix64: tiny, fast, and the same on every platform and crate version,
/// so a seed always yields the same corpus.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut r = Rng(seed);
        r.next_u64();
        r
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    /// Log-uniform integer in [lo, hi): every order of magnitude equally likely.
    pub fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        ((a + (b - a) * self.f64()).exp() as usize).clamp(lo, hi - 1)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Bumped whenever the generator's output changes, so a stale corpus
    /// on disk is regenerated rather than reused.
    pub generator: u32,
    pub seed: u64,
    pub notes: usize,
    pub batch: usize,
    pub vocabulary: usize,
    pub zipf_s: f64,
    pub big_bytes: usize,
    pub queries_per_kind: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            generator: 3,
            seed: 20_240_601,
            notes: 100_000,
            batch: 5_000,
            vocabulary: 50_000,
            zipf_s: 1.0,
            big_bytes: 64 * 1024 * 1024,
            queries_per_kind: 2_000,
        }
    }
}

const ONSETS: &[&str] = &[
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "b",
    "d", "k", "l", "m", "n", "p", "r", "s", "t", "br", "cr", "dr", "gr", "pl", "sh", "st", "th",
    "tr", "ch", "", "",
];
const VOWELS: &[&str] = &[
    "a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ea", "ou", "io", "ee", "y",
];
/// Ends a word (not every syllable), half of the time.
const CODAS: &[&str] = &[
    "", "", "", "", "", "", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck", "ng", "rt",
    "x", "sh", "d", "p", "k",
];

/// Tags are drawn (Zipf) from this many vocabulary words, starting at this rank.
const TAG_COUNT: usize = 300;
const TAG_FIRST_RANK: usize = 500;
/// Query terms are drawn log-uniformly from these ranks: real users search
/// for content words, not for the corpus' "the" and "of" (ranks below 100).
const QUERY_RANKS: (usize, usize) = (100, 20_000);

pub struct Vocab {
    pub words: Vec<String>,
    cdf: Vec<f64>,
    pub rank: HashMap<String, usize>,
}

impl Vocab {
    pub fn new(p: &Params) -> Self {
        let mut rng = Rng::new(p.seed ^ 0x5EED_F07C_AB00);
        let mut seen = HashSet::new();
        let mut words = Vec::with_capacity(p.vocabulary);
        for r in 0..p.vocabulary {
            // Frequent words are short, rare ones long, as in real languages.
            let mut syllables = 1 + (((r + 1) as f64).ln() / 60f64.ln()) as usize;
            if r >= 60 && rng.chance(0.3) {
                syllables += 1;
            }
            let mut attempts = 0;
            let word = loop {
                let mut w = String::new();
                for _ in 0..syllables {
                    w.push_str(ONSETS[rng.range(0, ONSETS.len())]);
                    w.push_str(VOWELS[rng.range(0, VOWELS.len())]);
                }
                w.push_str(CODAS[rng.range(0, CODAS.len())]);
                // A few accented words, as in loan words ("café"): unicode61
                // folds them, and the snippet code takes its non-ASCII path.
                if syllables >= 2
                    && rng.chance(0.02)
                    && let Some(i) = w.find('e')
                {
                    w.replace_range(i..i + 1, "é");
                }
                if seen.insert(w.clone()) {
                    break w;
                }
                attempts += 1;
                if attempts % 20 == 0 {
                    syllables += 1;
                }
            };
            words.push(word);
        }
        let mut cdf = Vec::with_capacity(p.vocabulary);
        let mut total = 0.0;
        for r in 0..p.vocabulary {
            total += 1.0 / ((r + 1) as f64).powf(p.zipf_s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        let rank = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        Self { words, cdf, rank }
    }

    pub fn zipf(&self, rng: &mut Rng) -> usize {
        let u = rng.f64();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }

    fn word(&self, rng: &mut Rng) -> &str {
        &self.words[self.zipf(rng)]
    }

    fn tag(&self, rng: &mut Rng) -> String {
        // Zipf over the tag list, ASCII only ([a-z0-9._-]).
        loop {
            let i = self.zipf(rng) % TAG_COUNT;
            let w = &self.words[TAG_FIRST_RANK + i];
            if w.is_ascii() {
                return w.clone();
            }
        }
    }
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[derive(Serialize)]
struct Line {
    title: String,
    body: String,
    tags: Vec<String>,
    external_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Value>,
}

/// Note `i` of the corpus; any note can be regenerated on its own.
fn note(v: &Vocab, seed: u64, i: usize, prefix: &str) -> Line {
    let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let title_words = rng.range(2, 8);
    let title = (0..title_words)
        .map(|k| {
            let w = v.word(&mut rng);
            if k == 0 { capitalize(w) } else { w.to_owned() }
        })
        .collect::<Vec<_>>()
        .join(" ");
    // Mixed sizes: 55 % short, 35 % medium, 10 % long.
    let class = rng.f64();
    let words = if class < 0.55 {
        rng.range(10, 50)
    } else if class < 0.90 {
        rng.range(80, 200)
    } else {
        rng.range(350, 800)
    };
    let mut body = String::with_capacity(words * 7);
    let mut written = 0;
    let mut in_paragraph = 0;
    while written < words {
        let len = rng.range(5, 19).min(words - written).max(1);
        if !body.is_empty() {
            if in_paragraph >= rng.range(3, 7) {
                body.push_str("\n\n");
                in_paragraph = 0;
            } else {
                body.push(' ');
            }
        }
        for k in 0..len {
            let w = v.word(&mut rng);
            if k == 0 {
                body.push_str(&capitalize(w));
            } else {
                body.push(' ');
                body.push_str(w);
                if k + 1 < len && rng.chance(0.06) {
                    body.push(',');
                }
            }
        }
        body.push(if rng.chance(0.1) { '?' } else { '.' });
        written += len;
        in_paragraph += 1;
    }
    let tag_count = [0, 1, 1, 2, 2, 2, 3, 3, 4, 1][rng.range(0, 10)];
    let mut tags: Vec<String> = Vec::new();
    for _ in 0..tag_count {
        let t = v.tag(&mut rng);
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let metadata = rng
        .chance(0.5)
        .then(|| json!({"source": "importer", "page": rng.range(1, 500)}));
    Line {
        title,
        body,
        tags,
        external_id: format!("{prefix}{i:07}"),
        metadata,
    }
}

/// URL-encodes a query value (RFC 3986 unreserved characters stay).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub const QUERY_KINDS: [&str; 4] = ["1term", "2term", "phrase", "prefix"];

fn queries(v: &Vocab, p: &Params, kind: &str) -> Vec<String> {
    let mut rng = Rng::new(p.seed ^ 0xC0FF_EE00 ^ kind.len() as u64 ^ kind.as_bytes()[0] as u64);
    let term = |rng: &mut Rng| v.words[rng.log_uniform(QUERY_RANKS.0, QUERY_RANKS.1)].clone();
    let mut out = Vec::with_capacity(p.queries_per_kind);
    while out.len() < p.queries_per_kind {
        let q = match kind {
            "1term" => term(&mut rng),
            "2term" => format!("{} {}", term(&mut rng), term(&mut rng)),
            "prefix" => {
                let w = term(&mut rng);
                let chars: Vec<char> = w.chars().collect();
                if chars.len() < 5 {
                    continue;
                }
                let n = rng.range(3, 5);
                format!("{}*", chars[..n].iter().collect::<String>())
            }
            "phrase" => {
                // Adjacent words of a real note, so the phrase matches.
                let i = rng.range(0, p.notes);
                let text = note(v, p.seed, i, "n").body;
                let toks: Vec<String> = text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|t| !t.is_empty())
                    .map(str::to_lowercase)
                    .collect();
                let len = if rng.chance(0.7) { 2 } else { 3 };
                if toks.len() < len + 1 {
                    continue;
                }
                let s = rng.range(0, toks.len() - len);
                let phrase = &toks[s..s + len];
                // Skip phrases made only of the most common words.
                if phrase.iter().all(|t| v.rank.get(t).is_none_or(|&r| r < 50)) {
                    continue;
                }
                format!("\"{}\"", phrase.join(" "))
            }
            _ => unreachable!(),
        };
        out.push(q);
    }
    out
}

/// Writes the corpus under `dir` unless `dir/corpus.json` says it is already
/// there with the same parameters. Returns the corpus description.
pub fn generate(dir: &Path, p: &Params) -> Result<Value> {
    let stamp = dir.join("corpus.json");
    if let Ok(text) = fs::read_to_string(&stamp)
        && let Ok(old) = serde_json::from_str::<Value>(&text)
        && old.get("params") == Some(&serde_json::to_value(p)?)
    {
        eprintln!("corpus: reusing {}", dir.display());
        return Ok(old);
    }
    fs::create_dir_all(dir)?;
    let v = Vocab::new(p);
    let mut sizes = Vec::with_capacity(p.notes);
    let mut body_bytes = 0usize;
    let mut batches = Vec::new();
    for (b, start) in (0..p.notes).step_by(p.batch).enumerate() {
        let name = format!("batch-{b:03}.ndjson");
        let mut out = BufWriter::new(fs::File::create(dir.join(&name))?);
        for i in start..(start + p.batch).min(p.notes) {
            let n = note(&v, p.seed, i, "n");
            body_bytes += n.body.len();
            let line = serde_json::to_string(&n)?;
            sizes.push(line.len() + 1);
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        batches.push(name);
    }
    // One body of at most `big_bytes`, other external ids (a separate corpus).
    let mut big = BufWriter::new(fs::File::create(dir.join("big.ndjson"))?);
    let (mut big_len, mut big_notes) = (0usize, 0usize);
    loop {
        let line = serde_json::to_string(&note(&v, p.seed ^ 0xB16, big_notes, "big-"))?;
        if big_len + line.len() + 1 > p.big_bytes {
            break;
        }
        big.write_all(line.as_bytes())?;
        big.write_all(b"\n")?;
        big_len += line.len() + 1;
        big_notes += 1;
    }
    big.flush()?;
    let mut query_files = serde_json::Map::new();
    for kind in QUERY_KINDS {
        let qs = queries(&v, p, kind);
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
    let desc = json!({
        "params": p,
        "notes": p.notes,
        "batches": batches.len(),
        "ndjson_bytes": total,
        "avg_note_bytes": total as f64 / p.notes as f64,
        "avg_body_bytes": body_bytes as f64 / p.notes as f64,
        "note_bytes_p10_p50_p90_max": [pct(0.1), pct(0.5), pct(0.9), sorted[sorted.len() - 1]],
        "big_body": {"file": "big.ndjson", "bytes": big_len, "notes": big_notes},
        "queries": query_files,
        "vocabulary_examples_by_rank": {
            "1-5": &v.words[..5], "100-104": &v.words[100..105], "10000-10004": &v.words[10_000..10_005]
        },
        "query_term_ranks": [QUERY_RANKS.0, QUERY_RANKS.1],
    });
    fs::write(&stamp, serde_json::to_string_pretty(&desc)? + "\n")
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(desc)
}
