//! Per-client rate limits (`429` with `Retry-After`, `docs/reliability.md`): a token
//! bucket per API key, else per client address. The address is the peer's,
//! or the one a trusted proxy names in `X-Forwarded-For`.
//!
//! Requests that carry a key are charged to that key once it has been
//! checked (the `Auth` extractor), so a client cannot spread its load over
//! made-up keys: a key that fails is charged to the address instead.

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    time::Duration,
};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use governor::{
    Quota, RateLimiter, clock::Clock, clock::DefaultClock, state::keyed::DefaultKeyedStateStore,
};
use ipnet::IpNet;
use uuid::Uuid;

use super::error::ApiError;
use crate::config::{Limits, Server};

/// Buckets kept at once. Past it, new clients share one bucket until idle
/// ones are dropped: the table cannot grow with the number of addresses
/// an attacker controls.
const MAX_CLIENTS: usize = 100_000;

/// Whom a request is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    Key(Uuid),
    Master,
    /// IPv6 clients by their /64: one host usually holds the whole prefix.
    Addr(IpAddr),
    /// Every new client while the table is full.
    Overflow,
}

type Limiter = RateLimiter<Client, DefaultKeyedStateStore<Client>, DefaultClock>;

pub struct RateLimits {
    limiter: Option<Limiter>,
    trusted: Vec<IpNet>,
}

/// The address a request is charged to when it has no checked key; put in
/// the request's extensions by `middleware::rate_limit`.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl RateLimits {
    pub fn new(limits: &Limits, server: &Server) -> Self {
        let limiter = NonZeroU32::new(limits.rate_limit).map(|rate| {
            let burst = NonZeroU32::new(limits.rate_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            trusted: server.trusted_proxies.clone(),
        }
    }

    /// Charges one request to `client`; `Err` is how long until it may retry.
    pub fn check(&self, client: Client) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let client = if limiter.len() >= MAX_CLIENTS {
            Client::Overflow
        } else {
            client
        };
        limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Drops the buckets of clients that have been quiet long enough to be
    /// full again; called periodically.
    pub fn upkeep(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// The client's address: the peer, unless the peer is a trusted proxy;
    /// then the right-most `X-Forwarded-For` entry that is not one.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.is_trusted(ip) => continue,
                Ok(ip) => return ip,
                // Garbage in the chain: stop trusting it there.
                Err(_) => return peer,
            }
        }
        peer
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }
}

/// An address as a bucket: IPv6 by its /64.
pub fn addr_client(ip: IpAddr) -> Client {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Client::Addr(IpAddr::V6(Ipv6Addr::new(
                s[0], s[1], s[2], s[3], 0, 0, 0, 0,
            )))
        }
        v4 => Client::Addr(v4),
    }
}

/// The 429 problem, with `Retry-After` in whole seconds (at least 1).
pub fn too_many(wait: Duration) -> ApiError {
    metrics::counter!("http_rate_limited_total").increment(1);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "too many requests from this client; retry after the time in Retry-After",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(secs.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32, trusted: &[&str]) -> RateLimits {
        let mut c = crate::config::Config::defaults();
        c.limits.rate_limit = Some(rate);
        c.limits.rate_burst = Some(burst);
        c.server.trusted_proxies = trusted.iter().map(|t| t.parse().unwrap()).collect();
        let s = c.resolve().expect("valid settings");
        RateLimits::new(&s.limits, &s.server)
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn a_bucket_allows_its_burst_then_says_when_to_retry() {
        let l = limits(1, 3, &[]);
        let a = addr_client("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
        }
        let wait = l.check(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        let b = addr_client("192.0.2.2".parse().unwrap());
        assert!(l.check(b).is_ok(), "another client has its own bucket");
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let l = limits(0, 0, &[]);
        let a = Client::Master;
        for _ in 0..10_000 {
            assert!(l.check(a).is_ok());
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let l = limits(1, 1, &["10.0.0.0/8"]);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let outsider: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            l.client_addr(outsider, &xff("203.0.113.9")),
            outsider,
            "an untrusted peer cannot name another client"
        );
        assert_eq!(
            l.client_addr(proxy, &xff("203.0.113.9, 10.9.9.9")),
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "the right-most untrusted hop is the client"
        );
        assert_eq!(
            l.client_addr(proxy, &xff("1.1.1.1, 203.0.113.9")),
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "what the client wrote to the left is not believed"
        );
        assert_eq!(l.client_addr(proxy, &xff("not-an-ip")), proxy);
        assert_eq!(l.client_addr(proxy, &HeaderMap::new()), proxy);
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let a = addr_client("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = addr_client("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = addr_client("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            addr_client("::ffff:192.0.2.1".parse().unwrap()),
            addr_client("192.0.2.1".parse().unwrap())
        );
    }
}
