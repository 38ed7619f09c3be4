//! Webhooks' rules, independent of HTTP and the database: what a webhook
//! is and how a request to create or change one is checked, what a target
//! URL and an event filter may be, which addresses a delivery may reach,
//! how a delivery is signed (the Standard Webhooks specification), and how
//! a signing secret is kept at rest.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit,
    aead::{Aead, AeadCore, OsRng},
};
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;

use super::{change::ChangeKind, timestamp, validation::FieldError};

/// What a signing secret looks like to its owner: `whsec_` and base64 of
/// 24 random bytes, as the Standard Webhooks libraries take it.
pub const SECRET_PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 24;
pub const MAX_URL_CHARS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("must be an absolute http:// or https:// URL")]
    NotHttp,
    #[error("must be at most {MAX_URL_CHARS} characters")]
    TooLong,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("must name a host")]
    NoHost,
    #[error("must not carry a #fragment")]
    Fragment,
    #[error("{0}")]
    Refused(String),
    #[error(
        "unknown event `{0}` (one of note.created, note.updated, note.deleted, note.restored, attachment.created, attachment.deleted, or \"*\")"
    )]
    UnknownEvent(String),
    #[error("must name at least one event, or \"*\"")]
    NoEvents,
    #[error("this secret was sealed with another NOTES_SECRET_KEY, or is damaged")]
    Unsealable,
}

/// A webhook as it is listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// Event names, or `["*"]` for every event.
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub enabled: bool,
    /// Why it was disabled, when the service disabled it (its deliveries
    /// kept failing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed, if the last one did.
    #[serde(
        with = "timestamp::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failing_since: Option<DateTime<Utc>>,
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "timestamp")]
    pub updated_at: DateTime<Utc>,
}

/// A webhook as the store keeps it: with its sealed secret and the change
/// after which it listens.
#[derive(Debug, Clone)]
pub struct StoredWebhook {
    pub webhook: Webhook,
    /// Sealed by [`SecretBox`].
    pub secret: String,
    /// Changes numbered after this are delivered to it.
    pub from_seq: i64,
}

impl StoredWebhook {
    pub fn filter(&self) -> EventFilter {
        // Stored names were checked when written; an unknown one (from a
        // newer version) is ignored rather than refusing every event.
        let names = &self.webhook.events;
        if names.iter().any(|n| n == "*") {
            return EventFilter::All;
        }
        EventFilter::Only(names.iter().filter_map(|n| ChangeKind::parse(n)).collect())
    }
}

/// The answer to a creation or a secret rotation: the only time the
/// secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The signing secret (`whsec_…`): store it now, it cannot be shown
    /// again.
    pub secret: String,
}

/// Most webhooks one deployment may have: each is a delivery per event.
pub const MAX_WEBHOOKS: u64 = 100;
const MAX_DESCRIPTION_CHARS: usize = 500;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// An absolute `https://` URL (`http://` outside production, or inside
    /// NOTES_WEBHOOK_ALLOW_NETWORKS), without credentials or `#fragment`.
    #[schema(max_length = 2048)]
    pub url: String,
    /// Event names (`note.created`, `note.updated`, `note.deleted`,
    /// `note.restored`, `attachment.created`, `attachment.deleted`), or
    /// `["*"]`.
    #[schema(min_items = 1, max_items = 16)]
    pub events: Vec<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// A change to a webhook: what is given changes, the rest stays.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    #[schema(min_items = 1, max_items = 16)]
    pub events: Option<Vec<String>>,
    /// An empty string removes it.
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Enabling a webhook again delivers what happens from then on, not
    /// what happened while it was disabled.
    pub enabled: Option<bool>,
    /// `true`: a new signing secret, in this answer only; the old one stops
    /// verifying at once.
    pub rotate_secret: Option<bool>,
}

/// A checked webhook's fields, as the store writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookFields {
    pub url: Option<Target>,
    pub events: Option<EventFilter>,
    /// `Some(None)` removes the description.
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    /// A new sealed secret.
    pub secret: Option<String>,
}

impl WebhookRequest {
    pub fn validate(self) -> Result<(Target, EventFilter, Option<String>), Vec<FieldError>> {
        let patch = WebhookPatch {
            url: Some(self.url),
            events: Some(self.events),
            description: self.description,
            ..WebhookPatch::default()
        };
        let fields = patch.validate()?;
        Ok((
            fields.url.expect("given"),
            fields.events.expect("given"),
            fields.description.flatten(),
        ))
    }
}

impl WebhookPatch {
    /// The fields checked (the secret is left to the caller).
    pub fn validate(self) -> Result<WebhookFields, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fields = WebhookFields {
            enabled: self.enabled,
            ..WebhookFields::default()
        };
        if let Some(url) = &self.url {
            match Target::parse(url) {
                Ok(t) => fields.url = Some(t),
                Err(e) => errors.push(FieldError::new("url", e.to_string())),
            }
        }
        if let Some(events) = &self.events {
            if events.len() > 16 {
                errors.push(FieldError::new("events", "at most 16 names"));
            } else {
                match EventFilter::parse(events) {
                    Ok(f) => fields.events = Some(f),
                    Err(e) => errors.push(FieldError::new("events", e.to_string())),
                }
            }
        }
        if let Some(d) = self.description {
            if d.chars().count() > MAX_DESCRIPTION_CHARS {
                errors.push(FieldError::new(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
                ));
            } else if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                errors.push(FieldError::new(
                    "description",
                    "must not contain control characters",
                ));
            } else {
                fields.description = Some((!d.trim().is_empty()).then_some(d));
            }
        }
        if errors.is_empty() {
            Ok(fields)
        } else {
            Err(errors)
        }
    }
}

/// A target as given: checked for its form. Where it may connect is
/// checked on its addresses ([`AddressPolicy`]), at creation and at every
/// delivery (a name may resolve elsewhere later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, WebhookError> {
        if url.chars().count() > MAX_URL_CHARS {
            return Err(WebhookError::TooLong);
        }
        let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (false, rest)
        } else {
            return Err(WebhookError::NotHttp);
        };
        if url.contains('#') {
            return Err(WebhookError::Fragment);
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(WebhookError::NotHttp);
        }
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(WebhookError::Credentials);
        }
        let (host, port) = split_port(authority)?;
        if host.is_empty() {
            return Err(WebhookError::NoHost);
        }
        Ok(Self {
            url: url.to_owned(),
            https,
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(if https { 443 } else { 80 }),
        })
    }

    /// The host as an address, when it is written as one.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // `get`, not indexing: the prefix's length may fall inside a character
    // of a hostile URL ("00\u{80}\u{10000}" once took a request down).
    s.get(..prefix.len())
        .filter(|head| head.eq_ignore_ascii_case(prefix))
        .and_then(|_| s.get(prefix.len()..))
}

fn split_port(authority: &str) -> Result<(&str, Option<u16>), WebhookError> {
    let (host, port) = if let Some(end) = authority
        .strip_prefix('[')
        .and_then(|_| authority.find(']'))
    {
        let host = &authority[..=end];
        match authority[end + 1..].strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if authority.len() == end + 1 => (host, None),
            None => return Err(WebhookError::NoHost),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or(WebhookError::NoHost)?,
        ),
        None => None,
    };
    Ok((host, port))
}

/// Which addresses a delivery may connect to: none in the ranges a
/// request from inside the cluster could abuse (loopback, private,
/// link-local and the cloud metadata address, unique-local, multicast,
/// unspecified, shared CGNAT), unless the operator allowed them
/// (`NOTES_WEBHOOK_ALLOW_NETWORKS`, e.g. the cluster's pod and service
/// ranges).
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    pub allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// Why `ip` may not be reached, if it may not.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allows(ip) {
            return None;
        }
        forbidden_range(ip)
    }

    /// Inside a network the operator allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed.iter().any(|net| net.contains(&ip))
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address (the cloud metadata service lives there)")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("a multicast or broadcast address")
            } else if v4.is_unspecified() || a == 0 {
                Some("an unspecified address")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (carrier-grade NAT) address")
            } else if a == 192 && b == 0 && v4.octets()[2] == 0 {
                Some("an IETF protocol address (a cloud metadata service lives there)")
            } else if a == 198 && (18..20).contains(&b) {
                Some("a benchmarking address")
            } else if a >= 240 {
                Some("a reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a unique-local address")
            } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
                Some("a link-local or site-local address")
            } else if let Some(v4) = nat64(v6) {
                // NAT64 reaches the IPv4 address inside: judge that one.
                forbidden_range(IpAddr::V4(v4))
            } else {
                None
            }
        }
    }
}

/// The IPv4 address inside a NAT64 address (64:ff9b::/96, and the local-
/// use 64:ff9b:1::/48 with the address in its last 32 bits).
fn nat64(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let seg = v6.segments();
    let well_known = seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    let local = seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1;
    (well_known || local).then(|| {
        let [.., a, b, c, d] = v6.octets();
        std::net::Ipv4Addr::new(a, b, c, d)
    })
}

/// The events a webhook asks for: named kinds, or every kind (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    All,
    Only(Vec<ChangeKind>),
}

impl EventFilter {
    pub fn parse(names: &[String]) -> Result<Self, WebhookError> {
        if names.iter().any(|n| n == "*") {
            return Ok(Self::All);
        }
        let mut kinds = Vec::new();
        for name in names {
            let kind =
                ChangeKind::parse(name).ok_or_else(|| WebhookError::UnknownEvent(name.clone()))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            return Err(WebhookError::NoEvents);
        }
        Ok(Self::Only(kinds))
    }

    pub fn wants(&self, kind: ChangeKind) -> bool {
        match self {
            Self::All => true,
            Self::Only(kinds) => kinds.contains(&kind),
        }
    }

    pub fn names(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".to_owned()],
            Self::Only(kinds) => kinds.iter().map(|k| k.as_str().to_owned()).collect(),
        }
    }
}

/// A new signing secret, as its owner sees it once.
pub fn new_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` header of a delivery: `v1,` and the base64 of
/// HMAC-SHA256 over `id.timestamp.body`, keyed by the secret's bytes.
pub fn signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .ok()?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Keeps signing secrets encrypted at rest, so that a database dump alone
/// does not hand them out: ChaCha20-Poly1305 under a key derived (HKDF-
/// SHA256) from `NOTES_SECRET_KEY`.
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

/// What a sealed value starts with: the scheme's version.
const SEALED_PREFIX: &str = "v1.";

impl SecretBox {
    pub fn new(secret_key: &[u8]) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"notes-api"), secret_key);
        let mut key = [0u8; 32];
        hk.expand(b"webhook signing secrets v1", &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        Self {
            cipher: ChaCha20Poly1305::new(&key.into()),
        }
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("sealing a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, WebhookError> {
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|raw| raw.len() > 12)
            .ok_or(WebhookError::Unsealable)?;
        let (nonce, text) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(nonce.into(), text)
            .map_err(|_| WebhookError::Unsealable)?;
        String::from_utf8(plain).map_err(|_| WebhookError::Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_absolute_http_urls_without_credentials() {
        let t = Target::parse("https://Hooks.Example.org/in?x=1").unwrap();
        assert_eq!(
            (t.https, t.host.as_str(), t.port),
            (true, "hooks.example.org", 443)
        );
        let t = Target::parse("http://10.0.0.7:8080/hook").unwrap();
        assert_eq!((t.https, t.port), (false, 8080));
        assert_eq!(t.literal_ip(), Some("10.0.0.7".parse().unwrap()));
        let t = Target::parse("http://[::1]:9000/").unwrap();
        assert_eq!(t.literal_ip(), Some("::1".parse().unwrap()));
        assert_eq!(t.port, 9000);
        for (bad, why) in [
            ("ftp://example.org/", WebhookError::NotHttp),
            ("example.org/hook", WebhookError::NotHttp),
            ("javascript:alert(1)", WebhookError::NotHttp),
            ("https://user:pw@example.org/", WebhookError::Credentials),
            ("https:///path", WebhookError::NoHost),
            ("https://example.org:0/", WebhookError::NoHost),
            ("https://example.org:99999/", WebhookError::NoHost),
            ("https://example.org/#frag", WebhookError::Fragment),
            ("https://exa mple.org/", WebhookError::NotHttp),
            (
                "https://example.org/\r\nX-Injected: 1",
                WebhookError::NotHttp,
            ),
            // A scheme's length falling inside a character.
            ("00\u{80}\u{10000}", WebhookError::NotHttp),
            ("htt\u{e9}://x", WebhookError::NotHttp),
            ("\u{10000}\u{10000}", WebhookError::NotHttp),
        ] {
            assert_eq!(Target::parse(bad), Err(why), "{bad}");
        }
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(Target::parse(&long), Err(WebhookError::TooLong));
    }

    #[test]
    fn inside_addresses_are_refused_unless_allowed() {
        let policy = AddressPolicy::default();
        for inside in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "192.0.0.192",
            "198.18.0.1",
            "240.0.0.1",
            "fec0::1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::7f00:1",
        ] {
            let ip: IpAddr = inside.parse().unwrap();
            assert!(policy.refuses(ip).is_some(), "{inside}");
        }
        for outside in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::5db8:d822",
        ] {
            assert_eq!(policy.refuses(outside.parse().unwrap()), None, "{outside}");
        }
        let cluster = AddressPolicy {
            allowed: vec!["10.42.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()],
        };
        assert_eq!(cluster.refuses("10.42.3.4".parse().unwrap()), None);
        assert_eq!(cluster.refuses("::ffff:10.42.3.4".parse().unwrap()), None);
        assert_eq!(cluster.refuses("fd00::5".parse().unwrap()), None);
        assert!(cluster.refuses("10.43.0.1".parse().unwrap()).is_some());
        assert!(
            cluster
                .refuses("169.254.169.254".parse().unwrap())
                .is_some()
        );
    }

    #[test]
    fn event_filters_name_known_kinds_or_everything() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(EventFilter::parse(&names(&["*"])), Ok(EventFilter::All));
        let f = EventFilter::parse(&names(&[
            "note.created",
            "note.created",
            "attachment.deleted",
        ]))
        .unwrap();
        assert!(f.wants(ChangeKind::NoteCreated) && f.wants(ChangeKind::AttachmentDeleted));
        assert!(!f.wants(ChangeKind::NoteUpdated));
        assert_eq!(f.names(), ["note.created", "attachment.deleted"]);
        assert_eq!(EventFilter::parse(&[]), Err(WebhookError::NoEvents));
        assert_eq!(
            EventFilter::parse(&names(&["note.exploded"])),
            Err(WebhookError::UnknownEvent("note.exploded".into()))
        );
    }

    /// The example of the Standard Webhooks specification (its reference
    /// libraries' test vector).
    #[test]
    fn signatures_match_the_specifications_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(signature("whsec_!!!", "id", 1, b"").as_deref(), None);
    }

    #[test]
    fn new_secrets_are_24_random_bytes_behind_the_prefix() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        let raw = STANDARD
            .decode(a.strip_prefix(SECRET_PREFIX).unwrap())
            .unwrap();
        assert_eq!(raw.len(), SECRET_BYTES);
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let sealed_box = SecretBox::new(b"the operator's key");
        let secret = new_secret();
        let sealed = sealed_box.seal(&secret);
        assert!(!sealed.contains(&secret[SECRET_PREFIX.len()..]));
        assert_ne!(sealed, sealed_box.seal(&secret), "a fresh nonce each time");
        assert_eq!(sealed_box.open(&sealed).unwrap(), secret);
        let other = SecretBox::new(b"another key");
        assert_eq!(other.open(&sealed), Err(WebhookError::Unsealable));
        let mut tampered = sealed.clone();
        tampered.push('A');
        assert_eq!(sealed_box.open(&tampered), Err(WebhookError::Unsealable));
        assert_eq!(sealed_box.open("plain"), Err(WebhookError::Unsealable));
    }
}
