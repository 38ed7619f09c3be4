//! Sending one webhook delivery: where it may go (the address policy,
//! checked on the addresses the name resolves to when it is sent, and the
//! connection pinned to those addresses, so a name cannot resolve to a
//! checked address for the check and an inside one for the connection),
//! how it is signed (Standard Webhooks), how long it may take, and how the
//! signing secrets are sealed. What to send and when (the dispatcher, the
//! retries) is `service::webhooks`'.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use crate::domain::{
    delivery::{AttemptRecord, RetrySchedule},
    webhook::{AddressPolicy, SecretBox, Target, WebhookError, signature},
};

/// Everything a process needs to send deliveries, built once from the
/// settings.
pub struct Sender {
    pub policy: DeliveryPolicy,
    pub secrets: Secrets,
    pub schedule: RetrySchedule,
    /// A webhook whose every attempt failed this long is disabled.
    pub disable_after: Duration,
}

/// Seals signing secrets with the current key; opens them with it, or
/// with the previous one while a key change is under way.
pub struct Secrets {
    current: SecretBox,
    previous: Option<SecretBox>,
}

impl Secrets {
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> Self {
        Self {
            current: SecretBox::new(current),
            previous: previous.map(SecretBox::new),
        }
    }

    pub fn seal(&self, secret: &str) -> String {
        self.current.seal(secret)
    }

    /// The secret, and whether it was sealed with the previous key (and
    /// should be sealed again with the current one).
    pub fn open(&self, sealed: &str) -> Result<(String, bool), WebhookError> {
        match self.current.open(sealed) {
            Ok(secret) => Ok((secret, false)),
            Err(e) => match &self.previous {
                Some(previous) => previous.open(sealed).map(|s| (s, true)),
                None => Err(e),
            },
        }
    }
}

/// Why a target cannot be delivered to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Its form: not an http(s) URL, credentials in it, …
    #[error("the URL {0}")]
    Invalid(WebhookError),
    /// Its name does not resolve (now: it may later).
    #[error("{0}")]
    Unresolved(String),
    /// It is, or resolves to, an address deliveries may not reach.
    #[error("{0}")]
    Refused(String),
}

/// How a delivery is made.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub addresses: AddressPolicy,
    /// Production: `http://` targets only inside allowed networks.
    pub require_https: bool,
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    /// What is read of a response body, at most (for the delivery's record).
    pub max_response_bytes: usize,
}

impl DeliveryPolicy {
    pub fn new(addresses: AddressPolicy, require_https: bool) -> Self {
        Self {
            addresses,
            require_https,
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            max_response_bytes: 4096,
        }
    }
}

/// One message: the same id and body on every attempt, so receivers can
/// deduplicate.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub timestamp: i64,
    pub body: Vec<u8>,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub succeeded: bool,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    pub duration: Duration,
    /// Why it failed, in words for the deliveries' record.
    pub error: Option<String>,
    /// Refused before any connection (the target's form or address): a
    /// retry will not help until the target or its DNS changes.
    pub refused: bool,
}

impl Attempt {
    /// The attempt as the deliveries' record keeps it.
    pub fn record(&self, at: chrono::DateTime<chrono::Utc>) -> AttemptRecord {
        AttemptRecord {
            at,
            succeeded: self.succeeded,
            status_code: self.status,
            duration: self.duration,
            error: self.error.clone(),
            sent: true,
        }
    }

    fn refused(why: String, started: Instant) -> Self {
        Self {
            succeeded: false,
            status: None,
            duration: started.elapsed(),
            error: Some(format!("refused: {why}")),
            refused: true,
        }
    }
}

/// Where `url` may be delivered to: its addresses, all of them allowed.
pub async fn check_target(
    policy: &DeliveryPolicy,
    url: &str,
) -> Result<(Target, Vec<SocketAddr>), TargetError> {
    let target = Target::parse(url).map_err(TargetError::Invalid)?;
    // The HTTP client reads the URL by the WHATWG rules (IDNA, percent-
    // decoding, `\`, short IPv4 forms): a host it reads differently from
    // the one checked here would be connected to unchecked, past the pin.
    let read = reqwest::Url::parse(&target.url).ok();
    let as_read = read.as_ref().and_then(|u| u.host_str()).unwrap_or_default();
    if as_read != target.host {
        return Err(TargetError::Refused(format!(
            "the URL's host {:?} is read as {as_read:?} by HTTP clients; write it that way",
            target.host
        )));
    }
    let addrs: Vec<SocketAddr> = match target.literal_ip() {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => {
            let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
            let unresolved =
                |why: String| TargetError::Unresolved(format!("{} {why}", target.host));
            match tokio::time::timeout(policy.connect_timeout, lookup).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => return Err(unresolved(format!("does not resolve ({e})"))),
                Err(_) => return Err(unresolved("did not resolve in time".into())),
            }
        }
    };
    if addrs.is_empty() {
        return Err(TargetError::Unresolved(format!(
            "{} resolves to no address",
            target.host
        )));
    }
    for addr in &addrs {
        if let Some(why) = policy.addresses.refuses(addr.ip()) {
            return Err(TargetError::Refused(format!(
                "{} is {why} ({}); allow its network in NOTES_WEBHOOK_ALLOW_NETWORKS to deliver there",
                target.host,
                addr.ip()
            )));
        }
    }
    if policy.require_https && !target.https {
        let inside = addrs.iter().all(|a| policy.addresses.allows(a.ip()));
        if !inside {
            return Err(TargetError::Refused("http:// is refused in production outside NOTES_WEBHOOK_ALLOW_NETWORKS; use https://".into()));
        }
    }
    Ok((target, addrs))
}

/// Sends `message` to `url`, signed with `secret`, once, within the total
/// timeout (name resolution included). Never follows a redirect; reads at
/// most `max_response_bytes` of the answer.
pub async fn deliver(
    policy: &DeliveryPolicy,
    url: &str,
    secret: &str,
    message: &Message,
) -> Attempt {
    let started = Instant::now();
    match tokio::time::timeout(
        policy.total_timeout,
        send(policy, url, secret, message, started),
    )
    .await
    {
        Ok(attempt) => attempt,
        Err(_) => failed(None, "timed out".into(), started),
    }
}

async fn send(
    policy: &DeliveryPolicy,
    url: &str,
    secret: &str,
    message: &Message,
    started: Instant,
) -> Attempt {
    let (target, addrs) = match check_target(policy, url).await {
        Ok(checked) => checked,
        // A name may resolve again: retried like a receiver that is down.
        Err(TargetError::Unresolved(why)) => return failed(None, why, started),
        Err(why) => return Attempt::refused(why.to_string(), started),
    };
    let Some(signed) = signature(secret, &message.id, message.timestamp, &message.body) else {
        return Attempt::refused("the signing secret is not a whsec_ secret".into(), started);
    };
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(policy.connect_timeout)
        .timeout(policy.total_timeout)
        .user_agent(concat!("notes-api/", env!("CARGO_PKG_VERSION")));
    // The connection goes to the addresses just checked, not to whatever
    // the name resolves to a moment later.
    if target.literal_ip().is_none() {
        client = client.resolve_to_addrs(&target.host, &addrs);
    }
    let client = match client.build() {
        Ok(c) => c,
        Err(e) => return failed(None, format!("no HTTP client: {e}"), started),
    };
    let sent = client
        .post(&target.url)
        .header("content-type", "application/json")
        .header("webhook-id", &message.id)
        .header("webhook-timestamp", message.timestamp.to_string())
        .header("webhook-signature", signed)
        .body(message.body.clone())
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => return failed(None, describe(&e), started),
    };
    let status = response.status();
    // Read a little of the answer, no more, within the total timeout.
    let mut read = 0;
    while read < policy.max_response_bytes {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) => break,
            Err(e) => return failed(Some(status.as_u16()), describe(&e), started),
        }
    }
    if status.is_success() {
        return Attempt {
            succeeded: true,
            status: Some(status.as_u16()),
            duration: started.elapsed(),
            error: None,
            refused: false,
        };
    }
    let why = if status.is_redirection() {
        let to = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("?");
        format!("answered {status}, a redirect to {to}: redirects are not followed")
    } else {
        format!("answered {status}")
    };
    failed(Some(status.as_u16()), why, started)
}

fn failed(status: Option<u16>, why: String, started: Instant) -> Attempt {
    Attempt {
        succeeded: false,
        status,
        duration: started.elapsed(),
        error: Some(why),
        refused: false,
    }
}

/// A transport error in words: which stage failed, without the URL (which
/// the record has already).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("could not connect: {}", root_cause(e))
    } else {
        root_cause(e)
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
