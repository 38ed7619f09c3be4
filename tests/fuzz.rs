//! Time-bounded fuzzing of the two parsers that read untrusted text whole:
//! the query language (with the snippets cut from it) and the ingest
//! reader (NDJSON and JSON arrays). Each runs for `FUZZ_SECONDS` (default
//! 20) on random bytes, JSON-ish and query-ish noise, and mutations of
//! valid inputs; a panic anywhere fails it. `bench/fuzz.sh` runs each for
//! 10 minutes; the figures are in docs/reliability.md.

use std::time::{Duration, Instant};

use notes_api::{
    domain::ingest::{Format, read_batch},
    text::{query, snippet},
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};

fn budget() -> Duration {
    let secs = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

/// Runs `case` on generated inputs until the budget is spent; returns how
/// many ran. The seed is printed so that a failure can be replayed.
fn fuzz(name: &str, seeds: &[&[u8]], alphabet: &[u8], mut case: impl FnMut(&[u8])) -> u64 {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("{name}: seed {seed} (FUZZ_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + budget();
    let mut n = 0u64;
    let mut input = Vec::new();
    while Instant::now() < deadline {
        input.clear();
        let max = if rng.random_bool(0.05) { 20_000 } else { 300 };
        let len = rng.random_range(0..=max);
        match rng.random_range(0..3) {
            // Raw bytes: anything a socket can carry.
            0 => input.extend((0..len).map(|_| rng.random::<u8>())),
            // Noise from the characters the grammar cares about.
            1 => input.extend((0..len).map(|_| *alphabet.choose(&mut rng).unwrap())),
            // A valid input with bytes flipped, inserted or cut.
            _ => {
                input.extend_from_slice(seeds.choose(&mut rng).unwrap());
                for _ in 0..rng.random_range(1..8) {
                    if input.is_empty() {
                        break;
                    }
                    let at = rng.random_range(0..input.len());
                    match rng.random_range(0..3) {
                        0 => input[at] = rng.random(),
                        1 => input.insert(at, *alphabet.choose(&mut rng).unwrap()),
                        _ => {
                            input.truncate(at);
                        }
                    }
                }
            }
        }
        case(&input);
        n += 1;
    }
    eprintln!("{name}: {n} cases in {:?}, no panic", budget());
    n
}

#[test]
fn fuzz_the_query_parser_and_snippets() {
    let seeds: &[&[u8]] = &[
        b"platypus",
        b"\"exact phrase\" -excluded pre*",
        b"a b c \"d e\" -f* \xc3\xa9l\xc3\xa8ve",
        b"--\"\" * -* \"-\"",
    ];
    let text = "The platypus (Ornithorhynchus anatinus) lays eggs; \u{e9}l\u{e8}ve d\u{e9}j\u{e0} vu — <b>&amp;</b> 日本語のテキスト";
    let n = fuzz(
        "query",
        seeds,
        b"ab \"-*()\\:+~^'\t\n\xc3\xa9\xe6\x97\xa5\x00",
        |bytes| {
            let q = String::from_utf8_lossy(bytes);
            if let Ok(parsed) = query::parse(&q) {
                let _ = snippet::snippet(text, &parsed, 24);
                let _ = snippet::highlight(&q, &parsed);
                let _ = snippet::snippet(&q, &parsed, 3);
            }
            let _ = query::search_text(&q);
        },
    );
    assert!(n > 0);
}

#[test]
fn fuzz_the_ingest_reader() {
    let seeds: &[&[u8]] = &[
        b"{\"title\":\"a\",\"tags\":[\"x\"],\"external_id\":\"e1\",\"metadata\":{\"k\":[1,2]}}\n{\"title\":\"b\"}\n",
        b"[{\"title\":\"a\"},{\"title\":\"b\",\"body\":\"\\u00e9\"}]",
        b"{\"title\":\"a\"}\r\n\r\n{\"title\":\"c\",\"metadata\":null}",
    ];
    let n = fuzz(
        "ingest",
        seeds,
        b"{}[]\",:0123456789.eE+-truefalsnl\\u \n\r\ttitlebodytagsmetadataexternal_id",
        |bytes| {
            let _ = read_batch(bytes, Format::Ndjson);
            let _ = read_batch(bytes, Format::JsonArray);
        },
    );
    assert!(n > 0);
}
