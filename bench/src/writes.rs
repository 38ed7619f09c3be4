//! `write-load`: single-note writes (POST /api/v1/notes) from `concurrency`
//! closed-loop clients for `duration`. The service answers a write only once
//! the note is searchable, so the POST's latency is the write-to-searchable
//! latency. Every note carries a word no other note has; after its POST
//! returns, a verifier thread searches for that word and counts the note as
//! found only when the search returns it (total = 1). Verification runs
//! beside the writers, so it does not slow their loop.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::{client, stats};

pub fn write_load(addr: &str, concurrency: usize, duration: Duration, tag: &str) -> Result<Value> {
    let deadline = Instant::now() + duration;
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    let rx = Arc::new(Mutex::new(rx));
    let (found, missing, verify_errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let verify_lat = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let verifiers: Vec<_> = (0..2)
        .map(|_| {
            let (rx, found, missing, errs, vl) = (
                rx.clone(),
                found.clone(),
                missing.clone(),
                verify_errors.clone(),
                verify_lat.clone(),
            );
            let addr = addr.to_owned();
            std::thread::spawn(move || {
                loop {
                    let next = rx.lock().expect("rx").recv();
                    let Ok((word, returned)) = next else { break };
                    let path = format!("/api/v1/search?q={word}");
                    match client::get(&addr, &path, Duration::from_secs(10)) {
                        Ok(r) if r.status == 200 => {
                            let total = r.json().ok().and_then(|v| v["total"].as_u64());
                            if total == Some(1) {
                                found.fetch_add(1, Ordering::Relaxed);
                            } else {
                                missing.fetch_add(1, Ordering::Relaxed);
                            }
                            // Time from the POST's answer to the search's.
                            vl.lock().expect("vl").push(returned.elapsed());
                        }
                        _ => {
                            errs.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let writers: Vec<_> = (0..concurrency)
        .map(|c| {
            let tx = tx.clone();
            let addr = addr.to_owned();
            let tag = tag.to_owned();
            std::thread::spawn(move || -> Result<(Vec<Duration>, u64)> {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let word = format!("zqw{tag}c{c}n{n}x");
                    let body = json!({
                        "title": format!("Write probe {c}-{n}"),
                        "body": format!("A single note written while searches run; its own word is {word}. \
                                         The service answers once it is searchable."),
                        "tags": ["bench-write"],
                    });
                    let bytes = serde_json::to_vec(&body)?;
                    let t0 = Instant::now();
                    let r = client::request(
                        &addr,
                        "POST",
                        "/api/v1/notes",
                        Some("application/json"),
                        &bytes,
                        Duration::from_secs(60),
                    );
                    let d = t0.elapsed();
                    match r {
                        Ok(r) if r.status == 201 || r.status == 200 => {
                            lat.push(d);
                            let _ = tx.send((word, Instant::now()));
                        }
                        Ok(r) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!(
                                    "write-load: HTTP {}: {}",
                                    r.status,
                                    String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                                );
                            }
                        }
                        Err(e) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("write-load: {e}");
                            }
                        }
                    }
                }
                Ok((lat, errors))
            })
        })
        .collect();
    drop(tx);
    let mut all = Vec::new();
    let mut errors = 0;
    for w in writers {
        let (lat, e) = w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
        all.extend(lat);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    for v in verifiers {
        let _ = v.join();
    }
    let n = all.len();
    if n == 0 {
        bail!("no write succeeded ({errors} errors)");
    }
    let mut out = stats::latency_summary(&mut all);
    let mut vl = verify_lat.lock().expect("vl").clone();
    let o = out.as_object_mut().expect("object");
    o.insert("concurrency".into(), json!(concurrency));
    o.insert("secs".into(), json!(secs));
    o.insert("writes".into(), json!(n));
    o.insert("writes_per_s".into(), json!(n as f64 / secs));
    o.insert("errors".into(), json!(errors));
    o.insert(
        "verified_found".into(),
        json!(found.load(Ordering::Relaxed)),
    );
    o.insert(
        "verified_missing".into(),
        json!(missing.load(Ordering::Relaxed)),
    );
    o.insert(
        "verify_errors".into(),
        json!(verify_errors.load(Ordering::Relaxed)),
    );
    o.insert(
        "verify_search_after_return".into(),
        stats::latency_summary(&mut vl),
    );
    Ok(out)
}
