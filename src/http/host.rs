//! DNS rebinding: a page on `attacker.example` can point its own name at
//! 127.0.0.1 and then read this server's answers as same-origin ones. In
//! production every request needs a key, which such a page does not have;
//! in development mode (no key checked) the `Host` a request was sent to is
//! what tells a rebound name from ours.
//!
//! Accepted, as Vite's and webpack-dev-server's dev servers do: `localhost`
//! and `*.localhost` (RFC 6761 keeps them on loopback), any IP address (a
//! page can only be same-origin with an IP literal by being served from
//! that address), and the host of NOTES_PUBLIC_URL. The port is not
//! compared: the name is what an attacker controls.

use std::net::{Ipv4Addr, Ipv6Addr};

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{error::ApiError, state::AppState};

/// Refuses, in development mode, a request sent to a host name that is not
/// ours. A request without any host (HTTP/1.0) cannot come from a browser
/// and passes.
pub async fn development_hosts(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let server = &state.settings().server;
    if server.requires_keys() {
        return next.run(req).await;
    }
    // HTTP/2 and absolute-form requests carry the host in the target, and
    // it takes precedence over `Host` (RFC 9112 §3.2.2).
    let host = match req.uri().authority() {
        Some(authority) => Some(Ok(authority.as_str())),
        None => req.headers().get(header::HOST).map(|h| h.to_str()),
    };
    let allowed = match host {
        None => true,
        Some(Ok(host)) => is_allowed(host, server.public_host.as_deref()),
        Some(Err(_)) => false,
    };
    if allowed {
        return next.run(req).await;
    }
    // 421, not 403: the request is fine, it was sent to a name this server
    // does not answer for (RFC 9110 §15.5.20), and no credential would help.
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "misdirected-request",
        "this development server answers only requests sent to localhost, an IP address or \
         NOTES_PUBLIC_URL's host; set NOTES_PUBLIC_URL to the URL you reach it by",
    )
    .into_response()
}

/// Whether `host` (a `Host` value: name or IP literal, optional port) is one
/// this development server answers for.
pub fn is_allowed(host: &str, public_host: Option<&str>) -> bool {
    match parse(host) {
        None => false,
        Some(Target::Address) => true,
        Some(Target::Name(name)) => {
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            name == "localhost"
                || name.ends_with(".localhost")
                || public_host.is_some_and(|p| name == p.strip_suffix('.').unwrap_or(p))
        }
    }
}

enum Target<'a> {
    Address,
    Name(&'a str),
}

/// What a `host[:port]` names; `None` when it is not of that shape
/// (userinfo, an empty name, a bad port, a bracketed non-address).
fn parse(host: &str) -> Option<Target<'_>> {
    let (target, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (addr, port) = rest.split_once(']')?;
            addr.parse::<Ipv6Addr>().ok()?;
            let port = match port {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (Target::Address, port)
        }
        None => {
            let (name, port) = match host.rsplit_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            };
            let target = if name.parse::<Ipv4Addr>().is_ok() {
                Target::Address
            } else if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            {
                Target::Name(name)
            } else {
                return None;
            };
            (target, port)
        }
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok.then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses_pass_with_any_port() {
        for host in [
            "localhost",
            "localhost:8000",
            "LocalHost.:8000",
            "notes.localhost:3000",
            "127.0.0.1",
            "127.0.0.1:8000",
            "[::1]",
            "[::1]:8000",
            // An IP literal can only be same-origin with a page served
            // from that address: no rebinding through it.
            "10.42.0.7:8000",
            "[fd00::7]:8000",
        ] {
            assert!(is_allowed(host, None), "{host}");
        }
    }

    #[test]
    fn other_names_are_refused_unless_they_are_the_public_one() {
        for host in [
            "attacker.example",
            "attacker.example:8000",
            "localhost.attacker.example",
            "localhostx",
            "127.0.0.1.nip.io",
            "x",
            "",
            ":8000",
            "localhost@attacker.example",
            "localhost:80:80",
            "localhost:abc",
            "[::1",
            "[::1]x",
            "[localhost]",
            "attacker.example\u{0}",
        ] {
            assert!(!is_allowed(host, None), "{host:?}");
        }
        let public = Some("notes.example.com");
        assert!(is_allowed("notes.example.com", public));
        assert!(is_allowed("NOTES.example.com.:443", public));
        assert!(!is_allowed("evil.notes.example.com", public));
        assert!(!is_allowed("attacker.example", public));
    }
}
