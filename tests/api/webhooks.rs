//! Issue 24, webhooks: one delivery, made by `notes_api::webhooks` to a
//! real receiver that verifies it with the `standardwebhooks` library, and
//! refused where the address policy says so. The API and the deliveries
//! that follow the feed are in `webhook_deliveries.rs`.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use notes_api::{
    domain::webhook::{AddressPolicy, new_secret},
    webhooks::{DeliveryPolicy, Message, deliver},
};
use serde_json::Value;

use crate::support;

/// The receiver (tests/webhooks/receiver.py), on 127.0.0.1.
pub struct Receiver {
    child: Child,
    pub port: u16,
    records: tempfile::NamedTempFile,
}

impl Receiver {
    pub fn start(secret: &str, old_secret: Option<&str>) -> Option<Self> {
        let python = support::setting_or_skip(
            "WEBHOOK_PYTHON",
            "a Python with the standardwebhooks library (scripts/provision.sh ensure_webhook_receiver)",
        )?;
        let records = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/webhooks/receiver.py"
        ))
        .arg(records.path())
        .env("WEBHOOK_SECRET", secret)
        .stdout(Stdio::piped());
        if let Some(old) = old_secret {
            cmd.env("WEBHOOK_OLD_SECRET", old);
        }
        let mut child = cmd.spawn().expect("the receiver starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the receiver prints its port");
        Some(Self {
            child,
            port,
            records,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(self.records.path())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deliveries may reach the receiver on loopback: the test's "cluster".
fn loopback_allowed() -> DeliveryPolicy {
    DeliveryPolicy::new(
        AddressPolicy {
            allowed: vec!["127.0.0.0/8".parse().unwrap()],
        },
        true,
    )
}

fn message(id: &str) -> Message {
    Message {
        id: id.to_owned(),
        timestamp: chrono::Utc::now().timestamp(),
        body:
            br#"{"type":"note.created","timestamp":"2026-12-06T00:00:00Z","data":{"note_id":"x"}}"#
                .to_vec(),
    }
}

#[tokio::test]
async fn a_delivery_is_signed_so_the_reference_library_verifies_it() {
    let secret = new_secret();
    let Some(receiver) = Receiver::start(&secret, None) else {
        return;
    };
    let attempt = deliver(
        &loopback_allowed(),
        &receiver.url("/ok"),
        &secret,
        &message("msg_1"),
    )
    .await;
    assert!(attempt.succeeded, "{attempt:?}");
    assert_eq!(attempt.status, Some(200));
    let got = receiver.records();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["verified"], true, "{got:?}");
    assert_eq!(got[0]["id"], "msg_1");
    assert!(got[0]["signature"].as_str().unwrap().starts_with("v1,"));

    // Signed with another secret (a rotated one): the receiver refuses it.
    let other = new_secret();
    let attempt = deliver(
        &loopback_allowed(),
        &receiver.url("/ok"),
        &other,
        &message("msg_2"),
    )
    .await;
    assert!(attempt.succeeded, "the receiver answers 200 and records");
    assert_eq!(receiver.records()[1]["verified"], false);
}

#[tokio::test]
async fn inside_addresses_are_refused_without_a_connection() {
    let secret = new_secret();
    let Some(receiver) = Receiver::start(&secret, None) else {
        return;
    };
    let closed = DeliveryPolicy::new(AddressPolicy::default(), false);
    for url in [
        receiver.url("/ok"),
        format!("http://localhost:{}/ok", receiver.port),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        format!("http://[::1]:{}/ok", receiver.port),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        // Hosts an HTTP client reads otherwise than as written (short and
        // hex IPv4, percent-encoding): refused, never connected past the pin.
        format!("http://127.1:{}/ok", receiver.port),
        format!("http://0x7f.0.0.1:{}/ok", receiver.port),
        format!("http://%31%32%37.0.0.1:{}/ok", receiver.port),
    ] {
        let attempt = deliver(&closed, &url, &secret, &message("m")).await;
        assert!(!attempt.succeeded && attempt.refused, "{url}: {attempt:?}");
        // Refused for its address, or for a host written otherwise than
        // HTTP clients read it (then checked as they read it, once it is).
        let why = attempt.error.as_deref().unwrap();
        assert!(
            why.contains("NOTES_WEBHOOK_ALLOW_NETWORKS") || why.contains("is read as"),
            "{url}: {attempt:?}"
        );
    }
    assert!(
        receiver.records().is_empty(),
        "nothing reached the receiver"
    );
    // The same receiver, once its network is allowed.
    let attempt = deliver(
        &loopback_allowed(),
        &receiver.url("/ok"),
        &secret,
        &message("m"),
    )
    .await;
    assert!(attempt.succeeded, "{attempt:?}");
}

#[tokio::test]
async fn redirects_are_not_followed_and_failures_say_why() {
    let secret = new_secret();
    let Some(receiver) = Receiver::start(&secret, None) else {
        return;
    };
    let policy = loopback_allowed();
    let to_inside = receiver.url("/redirect?to=http://10.0.0.1/steal");
    let attempt = deliver(&policy, &to_inside, &secret, &message("r")).await;
    assert!(!attempt.succeeded);
    assert_eq!(attempt.status, Some(302));
    assert!(
        attempt
            .error
            .as_deref()
            .unwrap()
            .contains("redirects are not followed"),
        "{attempt:?}"
    );
    assert_eq!(receiver.records().len(), 1, "one request, no second hop");

    let attempt = deliver(&policy, &receiver.url("/fail/1/k"), &secret, &message("f")).await;
    assert_eq!((attempt.succeeded, attempt.status), (false, Some(500)));
    assert!(!attempt.refused, "worth a retry");
    let attempt = deliver(&policy, &receiver.url("/fail/1/k"), &secret, &message("f")).await;
    assert!(attempt.succeeded, "{attempt:?}");

    // A slow receiver is cut at the total timeout; a huge answer is read
    // only as far as the record needs.
    let mut quick = policy.clone();
    quick.total_timeout = Duration::from_millis(500);
    let attempt = deliver(&quick, &receiver.url("/slow"), &secret, &message("s")).await;
    assert!(!attempt.succeeded);
    assert_eq!(attempt.error.as_deref(), Some("timed out"));
    assert!(attempt.duration < Duration::from_secs(2), "{attempt:?}");
    let attempt = deliver(&policy, &receiver.url("/big"), &secret, &message("b")).await;
    assert!(attempt.succeeded, "{attempt:?}");

    // Nothing listens: a connection error, worth a retry.
    let port = receiver.port;
    drop(receiver);
    let attempt = deliver(
        &policy,
        &format!("http://127.0.0.1:{port}/ok"),
        &secret,
        &message("c"),
    )
    .await;
    assert!(!attempt.succeeded && !attempt.refused, "{attempt:?}");
    assert!(
        attempt
            .error
            .as_deref()
            .unwrap()
            .starts_with("could not connect"),
        "{attempt:?}"
    );
}

#[tokio::test]
async fn production_refuses_plain_http_outside_allowed_networks() {
    let production = DeliveryPolicy::new(AddressPolicy::default(), true);
    // A public address over http: refused for its scheme, before any
    // connection (none could be made from here anyway).
    let attempt = deliver(
        &production,
        "http://93.184.216.34/hook",
        &new_secret(),
        &message("p"),
    )
    .await;
    assert!(attempt.refused, "{attempt:?}");
    assert!(
        attempt.error.as_deref().unwrap().contains("https://"),
        "{attempt:?}"
    );
    for bad in [
        "ftp://example.org/",
        "https://user:pw@example.org/",
        "not a url",
    ] {
        let attempt = deliver(&production, bad, &new_secret(), &message("p")).await;
        assert!(attempt.refused, "{bad}: {attempt:?}");
    }
    let attempt = deliver(
        &production,
        "https://no-such-host.invalid/",
        &new_secret(),
        &message("p"),
    )
    .await;
    // A name that does not resolve may resolve later: a failure worth a
    // retry, not a refusal.
    assert!(
        !attempt.refused && attempt.error.as_deref().unwrap().contains("resolve"),
        "{attempt:?}"
    );
}
