//! `notes-bench jobs-enqueue`: posts `add` jobs over keep-alive HTTP/1.1
//! connections, as fast as they go or paced at a fixed rate, and reports
//! when the first request left and the last answer came (Unix µs, so the
//! caller can compare with the job records' timestamps on the same clock).

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::stats;

pub fn unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// One keep-alive connection; responses must carry Content-Length.
struct Conn {
    addr: String,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: &str) -> Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            addr: addr.to_owned(),
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    fn post_json(&mut self, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.stream.write_all(&req)?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let (end, len, status) = loop {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("connection closed before the response headers");
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end])?;
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .context("bad status line")?;
                let len: usize = head
                    .split("\r\n")
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .context("no Content-Length in the response")?;
                break (end + 4, len, status);
            }
        };
        while self.buf.len() < end + len {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("connection closed in the response body");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok((status, self.buf[end..end + len].to_vec()))
    }
}

/// Posts `jobs` add jobs from `concurrency` connections; `rate` > 0 paces
/// the starts at that many per second (job i is due at i / rate).
pub fn enqueue(addr: &str, jobs: u64, concurrency: usize, rate: f64) -> Result<Value> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let first_us = unix_us();
    let mut handles = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, addr) = (next.clone(), addr.to_owned());
        handles.push(std::thread::spawn(move || -> Result<Vec<Duration>> {
            let mut conn = Conn::open(&addr)?;
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    return Ok(lat);
                }
                if rate > 0.0 {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                let body = format!(r#"{{"kind":"add","args":{{"x":{i},"y":1}}}}"#);
                let t = Instant::now();
                let (status, resp) = conn.post_json("/api/v1/jobs", body.as_bytes())?;
                lat.push(t.elapsed());
                if status != 202 {
                    bail!(
                        "POST /api/v1/jobs: HTTP {status}: {}",
                        String::from_utf8_lossy(&resp[..resp.len().min(300)])
                    );
                }
            }
        }));
    }
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("an enqueue thread panicked"))??,
        );
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "jobs": lat.len(),
        "concurrency": concurrency,
        "rate": rate,
        "first_send_unix_us": first_us,
        "last_done_unix_us": unix_us(),
        "secs": secs,
        "enqueued_per_s": lat.len() as f64 / secs,
        "post_latency": stats::latency_summary(&mut lat),
    }))
}
