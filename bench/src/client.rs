//! A minimal blocking HTTP/1.1 client over loopback TCP: enough to post
//! ingest batches and poll readiness, with nothing between the clock and the
//! socket. One connection per request (`Connection: close`).

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use anyhow::{Context, Result, bail};

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "response is not JSON: {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }
}

pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    timeout: Duration,
) -> Result<Response> {
    let len = body.len() as u64;
    send(addr, method, path, content_type, len, timeout, |s| {
        Ok(s.write_all(body)?)
    })
}

/// [`request`] with a body of `len` bytes read from `body` while it is
/// sent (a file, or a file between a multipart head and tail), so that a
/// large upload is never whole in the client's memory.
pub fn request_from(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    len: u64,
    body: &mut dyn Read,
    timeout: Duration,
) -> Result<Response> {
    send(addr, method, path, content_type, len, timeout, |s| {
        // 1 MiB writes: io::copy's 8 KiB buffer would cost the client a
        // pair of syscalls per 8 KiB, on the cores the server is measured on.
        let mut buf = vec![0u8; 1 << 20];
        let mut sent = 0u64;
        loop {
            let n = body.read(&mut buf)?;
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n])?;
            sent += n as u64;
        }
        if sent != len {
            bail!("{path}: sent {sent} bytes of a body of {len}");
        }
        Ok(())
    })
}

fn send(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    len: u64,
    timeout: Duration,
    write_body: impl FnOnce(&mut TcpStream) -> Result<()>,
) -> Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {len}\r\n"
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    write_body(&mut stream)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

/// GET whose body is counted, not kept: the status and the body's length
/// (which must match `Content-Length`).
pub fn download(addr: &str, path: &str, timeout: Duration) -> Result<(u16, u64)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let (status, length, mut got) = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            bail!("connection closed in the response headers");
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = std::str::from_utf8(&head[..end])?.to_ascii_lowercase();
            let status: u16 = text
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("bad status line")?;
            let length: Option<u64> = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok());
            break (status, length, (head.len() - end - 4) as u64);
        }
    };
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    if length.is_some_and(|l| l != got) {
        bail!("{path}: Content-Length {length:?}, received {got} bytes");
    }
    Ok((status, got))
}

pub fn get(addr: &str, path: &str, timeout: Duration) -> Result<Response> {
    request(addr, "GET", path, None, &[], timeout)
}

fn parse(raw: &[u8]) -> Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers in the response")?;
    let head = std::str::from_utf8(&raw[..end])?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .context("bad status line")?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = raw[end + 4..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size_str = std::str::from_utf8(&data[..eol])?;
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
