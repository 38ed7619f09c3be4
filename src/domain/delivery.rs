//! Webhook deliveries: one message to one webhook, its attempts, and when
//! the next attempt is due.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{change::ChangeView, timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not delivered yet: an attempt is due at `next_at`.
    Pending,
    Succeeded,
    /// Every attempt failed (or the target was refused, or the webhook
    /// disabled): no more attempts, unless it is redelivered.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One attempt as it is listed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeliveryAttempt {
    /// 1 for the first attempt.
    pub n: u32,
    #[serde(with = "timestamp")]
    pub at: DateTime<Utc>,
    pub succeeded: bool,
    /// The receiver's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A delivery as it is listed: newest attempts first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The `webhook-id` header: the same on every attempt and on a
    /// redelivery, so a receiver can tell it has seen the message.
    pub message_id: String,
    /// The event type (`note.created`, …, or `ping`).
    pub event: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    #[serde(with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub next_at: Option<DateTime<Utc>>,
    #[serde(with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub attempt_log: Vec<DeliveryAttempt>,
}

/// A delivery as the sender needs it: what to send, and where it stands.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub message_id: String,
    pub event: String,
    pub body: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_at: Option<DateTime<Utc>>,
}

/// A delivery to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub message_id: String,
    pub event: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl NewDelivery {
    /// A new message of `event` with `body` for `webhook_id`.
    pub fn new(webhook_id: Uuid, event: &str, body: String, now: DateTime<Utc>) -> Self {
        let id = Uuid::now_v7();
        Self {
            id,
            webhook_id,
            message_id: format!("msg_{}", id.simple()),
            event: event.to_owned(),
            body,
            created_at: now,
        }
    }
}

/// The body of a change's delivery (Standard Webhooks' `type`,
/// `timestamp`, `data`): the change as the feed lists it, without the note,
/// which a receiver reads at the version named (a note may be megabytes;
/// its version tells whether the receiver has it already).
pub fn change_body(change: &ChangeView) -> String {
    json!({
        "type": change.kind.as_str(),
        "timestamp": timestamp::format(&change.at),
        "data": change,
    })
    .to_string()
}

/// The body of a `ping`.
pub fn ping_body(webhook_id: Uuid, now: DateTime<Utc>) -> String {
    json!({
        "type": "ping",
        "timestamp": timestamp::format(&now),
        "data": { "webhook_id": webhook_id },
    })
    .to_string()
}

/// How an attempt went, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub at: DateTime<Utc>,
    pub succeeded: bool,
    pub status_code: Option<u16>,
    pub duration: Duration,
    pub error: Option<String>,
    /// Whether it was sent at all: one that was not (a disabled webhook, a
    /// secret that cannot be opened) says nothing of the receiver.
    pub sent: bool,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done(DeliveryStatus),
    RetryAt(DateTime<Utc>),
}

/// When the attempts after the first are due: each delay counts from the
/// attempt before it. The default (NOTES_WEBHOOK_RETRY_SCHEDULE) is 5 s,
/// 5 min, 30 min, 2 h, 5 h, 10 h and 10 h: eight attempts over about 28
/// hours, the schedule Svix (the Standard Webhooks authors) uses, so that a
/// receiver down for a day's maintenance still gets every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl RetrySchedule {
    /// What follows a failed attempt `n` (1-based) made at `at`.
    pub fn after_failure(&self, n: u32, at: DateTime<Utc>) -> Next {
        match self.0.get(n as usize - 1) {
            Some(delay) => {
                Next::RetryAt(at + chrono::Duration::from_std(*delay).unwrap_or_default())
            }
            None => Next::Done(DeliveryStatus::Failed),
        }
    }

    /// Attempts in all: the first and its retries.
    pub fn attempts(&self) -> u32 {
        self.0.len() as u32 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_retried_until_the_schedule_ends() {
        let s = RetrySchedule(vec![Duration::from_secs(1), Duration::from_secs(120)]);
        let at = timestamp::now();
        assert_eq!(
            s.after_failure(1, at),
            Next::RetryAt(at + chrono::Duration::seconds(1))
        );
        assert_eq!(
            s.after_failure(2, at),
            Next::RetryAt(at + chrono::Duration::minutes(2))
        );
        assert_eq!(s.after_failure(3, at), Next::Done(DeliveryStatus::Failed));
        assert_eq!(s.attempts(), 3);
        assert_eq!(RetrySchedule(Vec::new()).attempts(), 1);
    }
}
