//! Webhooks as the admin API manages them, the dispatcher that turns the
//! change feed into deliveries, and one attempt at a delivery (what the
//! `deliver_webhook` job runs).
//!
//! Once per event across replicas: every replica's dispatcher reads the
//! same page of the feed, and the store moves the dispatcher's cursor by a
//! compare-and-set in the transaction that stores the page's deliveries,
//! so one of them stores them. At least once: each delivery is a job, and
//! an attempt is recorded (also by a compare-and-set) after it was sent, so
//! a worker killed mid-send sends it again after its lease.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    PageRequest, ServiceError, ServiceResult,
    changes::{Cursor, check, view},
    cursor::{DEFAULT_PAGE, MAX_PAGE},
};
use crate::{
    domain::{
        delivery::{
            AttemptRecord, Delivery, DeliveryStatus, NewDelivery, Next, change_body, ping_body,
        },
        webhook::{
            MAX_WEBHOOKS, StoredWebhook, Webhook, WebhookFields, WebhookPatch, WebhookRequest,
            WebhookWithSecret, new_secret,
        },
    },
    queue::{Job, JobKind, NewJob, Queue},
    store::{DispatchCursor, DynStore, Webhooks},
    webhooks::{Message, Sender, TargetError, check_target, deliver},
};

/// Changes the dispatcher reads at a time.
const DISPATCH_PAGE: u32 = 200;

/// Checks where `fields.url` would deliver: a URL refused now is refused
/// at once; a name that does not resolve now may later, and is left to the
/// deliveries.
async fn check_url(sender: &Sender, fields: &WebhookFields) -> ServiceResult<()> {
    let Some(target) = &fields.url else {
        return Ok(());
    };
    match check_target(&sender.policy, &target.url).await {
        Ok(_) => Ok(()),
        Err(TargetError::Unresolved(why)) => {
            tracing::info!(host = %target.host, %why, "webhook target does not resolve yet");
            Ok(())
        }
        Err(e) => Err(ServiceError::invalid("url", e.to_string())),
    }
}

pub async fn create(
    store: &dyn Webhooks,
    sender: &Sender,
    req: WebhookRequest,
    now: DateTime<Utc>,
) -> ServiceResult<WebhookWithSecret> {
    let (url, events, description) = req.validate().map_err(ServiceError::Invalid)?;
    let secret = new_secret();
    let fields = WebhookFields {
        url: Some(url),
        events: Some(events),
        description: Some(description),
        enabled: Some(true),
        secret: Some(sender.secrets.seal(&secret)),
    };
    check_url(sender, &fields).await?;
    if store.count_webhooks().await? >= MAX_WEBHOOKS {
        return Err(ServiceError::Conflict(format!(
            "a deployment has at most {MAX_WEBHOOKS} webhooks; delete one first"
        )));
    }
    let stored = store.create_webhook(Uuid::now_v7(), fields, now).await?;
    tracing::info!(webhook_id = %stored.webhook.id, host = %host_of(&stored.webhook.url), "webhook created");
    Ok(WebhookWithSecret {
        webhook: stored.webhook,
        secret,
    })
}

pub async fn list(store: &dyn Webhooks) -> ServiceResult<Vec<Webhook>> {
    Ok(store
        .list_webhooks()
        .await?
        .into_iter()
        .map(|h| h.webhook)
        .collect())
}

async fn stored(store: &dyn Webhooks, id: Uuid) -> ServiceResult<StoredWebhook> {
    store.get_webhook(id).await?.ok_or(ServiceError::NotFound {
        what: "webhook",
        id,
    })
}

pub async fn get(store: &dyn Webhooks, id: Uuid) -> ServiceResult<Webhook> {
    Ok(stored(store, id).await?.webhook)
}

/// Changes a webhook; with `rotate_secret`, the answer carries the new
/// secret (the old one stops verifying at once).
pub async fn update(
    store: &dyn Webhooks,
    sender: &Sender,
    id: Uuid,
    patch: WebhookPatch,
    now: DateTime<Utc>,
) -> ServiceResult<(Webhook, Option<String>)> {
    let rotate = patch.rotate_secret == Some(true);
    let mut fields = patch.validate().map_err(ServiceError::Invalid)?;
    check_url(sender, &fields).await?;
    let secret = rotate.then(new_secret);
    fields.secret = secret.as_deref().map(|s| sender.secrets.seal(s));
    let hook = store
        .update_webhook(id, fields, now)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "webhook",
            id,
        })?;
    tracing::info!(webhook_id = %id, rotated = rotate, enabled = hook.webhook.enabled, "webhook changed");
    Ok((hook.webhook, secret))
}

pub async fn delete(store: &dyn Webhooks, id: Uuid) -> ServiceResult<()> {
    if store.delete_webhook(id).await? {
        tracing::info!(webhook_id = %id, "webhook deleted");
        Ok(())
    } else {
        Err(ServiceError::NotFound {
            what: "webhook",
            id,
        })
    }
}

/// A page of a webhook's deliveries, newest first, and the cursor to the
/// next page.
pub async fn deliveries(
    store: &dyn Webhooks,
    id: Uuid,
    page: PageRequest<'_>,
) -> ServiceResult<DeliveryPage> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ServiceError::invalid(
            "limit",
            format!("must be 1 to {MAX_PAGE}"),
        ));
    }
    // The cursor is the last delivery's id: it names nothing secret.
    let before =
        match page.cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(Uuid::parse_str(c).map_err(|_| {
                ServiceError::invalid("cursor", "is not a cursor this API handed out")
            })?),
        };
    stored(store, id).await?;
    let found = store.list_deliveries(id, limit + 1, before).await?;
    let (deliveries, next) = more(found, limit as usize);
    Ok(DeliveryPage {
        deliveries,
        next_cursor: next.map(|id| id.to_string()),
    })
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

fn more(mut page: Vec<Delivery>, limit: usize) -> (Vec<Delivery>, Option<Uuid>) {
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|d| d.id)
    });
    (page, next.flatten())
}

/// Queues jobs for deliveries just stored. A job that cannot be queued is
/// left to the sweep, which queues it again once it is overdue.
async fn enqueue(store: &dyn Webhooks, queue: &dyn Queue, sender: &Sender, ids: &[Uuid]) {
    let now = Utc::now();
    let mut queued = Vec::with_capacity(ids.len());
    for id in ids {
        let job = Job::queued(
            NewJob::new(JobKind::DeliverWebhook, json!({ "delivery_id": id })),
            job_attempts(sender),
            now,
        );
        match queue.enqueue(job).await {
            Ok(_) => queued.push(*id),
            Err(e) => {
                tracing::warn!(delivery_id = %id, error = %e, "queueing a webhook delivery failed; the sweep queues it again")
            }
        }
    }
    if let Err(e) = store.mark_enqueued(&queued, now).await {
        tracing::warn!(error = %e, "recording queued webhook deliveries failed");
    }
}

/// A delivery's job outlives every attempt of the schedule, with room for
/// workers killed mid-attempt (each claim counts one).
fn job_attempts(sender: &Sender) -> u32 {
    sender.schedule.attempts() + 5
}

/// What sends a delivery on request (a ping, a redelivery): the API and
/// the admin UI take one from their state.
pub struct Outbox<'a> {
    pub store: &'a dyn Webhooks,
    pub queue: &'a dyn Queue,
    pub sender: &'a Sender,
}

impl Outbox<'_> {
    /// Sends a `ping` event to the webhook.
    pub async fn ping(&self, id: Uuid, now: DateTime<Utc>) -> ServiceResult<Delivery> {
        stored(self.store, id).await?;
        let delivery = NewDelivery::new(id, "ping", ping_body(id, now), now);
        self.send_one(delivery).await
    }

    /// Sends a delivery's message again, as a new delivery with the same
    /// message id and body (a receiver that deduplicates sees it once).
    pub async fn redeliver(
        &self,
        webhook_id: Uuid,
        delivery_id: Uuid,
        now: DateTime<Utc>,
    ) -> ServiceResult<Delivery> {
        let old = self
            .store
            .get_delivery(delivery_id)
            .await?
            .filter(|d| d.webhook_id == webhook_id)
            .ok_or(ServiceError::NotFound {
                what: "delivery",
                id: delivery_id,
            })?;
        let mut delivery = NewDelivery::new(webhook_id, &old.event, old.body, now);
        delivery.message_id = old.message_id;
        self.send_one(delivery).await
    }

    /// Stores and queues one delivery.
    async fn send_one(&self, delivery: NewDelivery) -> ServiceResult<Delivery> {
        let id = delivery.webhook_id;
        if !self.store.add_delivery(delivery.clone()).await? {
            return Err(ServiceError::Conflict(format!(
                "webhook {id} is disabled: enable it first (PATCH {{\"enabled\": true}})"
            )));
        }
        enqueue(self.store, self.queue, self.sender, &[delivery.id]).await;
        Ok(Delivery {
            id: delivery.id,
            webhook_id: id,
            message_id: delivery.message_id,
            event: delivery.event,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_at: Some(delivery.created_at),
            created_at: delivery.created_at,
            finished_at: None,
            attempt_log: Vec::new(),
        })
    }
}

/// Turns the next changes of the feed into deliveries, once across every
/// replica; answers how many it stored, at least 1 if it moved on (0:
/// caught up, or another replica took the page).
pub async fn dispatch(
    store: &DynStore,
    queue: &dyn Queue,
    sender: &Sender,
) -> ServiceResult<usize> {
    let from = store.dispatch_cursor().await?;
    // Where the feed stands, cheaply: with no webhook listening, that is
    // where the dispatcher goes.
    let probe = store.changes(from.seq, 1, None).await?;
    let at = Cursor {
        epoch: from.epoch.clone(),
        seq: from.seq,
    };
    if let Err(ServiceError::ChangesExpired(why)) = check(&at, &probe) {
        // Restored from a backup (new numbers), or behind what was pruned:
        // start again at the head. What happened in between is not sent.
        let to = DispatchCursor {
            epoch: probe.epoch,
            seq: probe.head,
        };
        if store.commit_dispatch(&from, &to, Vec::new()).await? {
            tracing::warn!(
                reason = why.detail(),
                "webhook dispatch starts again at the feed's head"
            );
        }
        return Ok(0);
    }
    if probe.head == from.seq {
        return Ok(0);
    }
    // Read after the probe: a webhook created since has a `from_seq` at or
    // past the probe's head.
    if enabled(store.as_ref()).await?.next().is_none() {
        let to = DispatchCursor {
            epoch: probe.epoch,
            seq: probe.head,
        };
        store.commit_dispatch(&from, &to, Vec::new()).await?;
        return Ok(0);
    }
    let page = store.changes(from.seq, DISPATCH_PAGE, None).await?;
    // Read after the page, for the same reason.
    let hooks: Vec<StoredWebhook> = enabled(store.as_ref()).await?.collect();
    let now = Utc::now();
    let mut deliveries = Vec::new();
    for entry in page.entries {
        let (seq, kind) = (entry.seq, entry.kind);
        let wanting: Vec<&StoredWebhook> = hooks
            .iter()
            .filter(|h| seq > h.from_seq && h.filter().wants(kind))
            .collect();
        if wanting.is_empty() {
            continue;
        }
        let body = change_body(&view(&page.epoch, entry));
        for h in wanting {
            deliveries.push(NewDelivery::new(
                h.webhook.id,
                kind.as_str(),
                body.clone(),
                now,
            ));
        }
    }
    let to = DispatchCursor {
        epoch: page.epoch,
        seq: page.through,
    };
    if !store
        .commit_dispatch(&from, &to, deliveries.clone())
        .await?
    {
        return Ok(0);
    }
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    enqueue(store.as_ref(), queue, sender, &ids).await;
    // A page with nothing for any webhook still moved the dispatcher: say
    // so, so that the caller reads on.
    Ok(ids.len().max(usize::from(page.through > from.seq)))
}

async fn enabled(store: &dyn Webhooks) -> ServiceResult<impl Iterator<Item = StoredWebhook>> {
    Ok(store
        .list_webhooks()
        .await?
        .into_iter()
        .filter(|h| h.webhook.enabled))
}

/// Queues again the pending deliveries overdue by `grace`: their job was
/// lost (queued before a crash that lost it, or never queued), or is that
/// late. One replica takes each; a copy of a job that is still there finds
/// the delivery claimed or done, and sends nothing.
pub async fn sweep(
    store: &dyn Webhooks,
    queue: &dyn Queue,
    sender: &Sender,
    grace: std::time::Duration,
) -> ServiceResult<usize> {
    let now = Utc::now();
    let before = now - chrono::Duration::from_std(grace).unwrap_or_default();
    let stale = store.claim_stale(before, now, 1000).await?;
    if !stale.is_empty() {
        tracing::warn!(
            deliveries = stale.len(),
            "queueing overdue webhook deliveries again"
        );
        enqueue(store, queue, sender, &stale).await;
    }
    Ok(stale.len())
}

/// How a delivery job's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Done, one way or the other (or it was already).
    Settled(DeliveryStatus),
    /// Not due yet, or failed with a retry due then: run again then.
    RetryAt { at: DateTime<Utc>, error: String },
    /// The delivery is gone (its webhook was deleted).
    Gone,
}

/// One attempt at delivery `id`, if it is pending and due, recorded.
pub async fn attempt(
    store: &dyn Webhooks,
    sender: &Sender,
    id: Uuid,
) -> ServiceResult<AttemptOutcome> {
    let Some(d) = store.get_delivery(id).await? else {
        return Ok(AttemptOutcome::Gone);
    };
    if d.status != DeliveryStatus::Pending {
        return Ok(AttemptOutcome::Settled(d.status));
    }
    let now = Utc::now();
    if let Some(at) = d.next_at
        && at > now + chrono::Duration::seconds(1)
    {
        // An early copy of its job (the sweep's, or one whose attempt was
        // recorded before its worker died): wait for the due time.
        return Ok(AttemptOutcome::RetryAt {
            at,
            error: "not due yet".into(),
        });
    }
    let Some(hook) = store.get_webhook(d.webhook_id).await? else {
        return Ok(AttemptOutcome::Gone);
    };
    let not_sent = |why: &str| AttemptRecord {
        at: now,
        succeeded: false,
        status_code: None,
        duration: std::time::Duration::ZERO,
        error: Some(format!("not sent: {why}")),
        sent: false,
    };
    let secret = if hook.webhook.enabled {
        match sender.secrets.open(&hook.secret) {
            Ok((secret, stale)) => {
                if stale {
                    reseal(store, sender, &hook, &secret).await;
                }
                Ok(secret)
            }
            Err(e) => {
                tracing::error!(webhook_id = %hook.webhook.id, error = %e, "a webhook's signing secret cannot be opened");
                Err((
                    not_sent(
                        "the signing secret cannot be opened (NOTES_SECRET_KEY changed without NOTES_SECRET_KEY_PREVIOUS?); rotate it",
                    ),
                    true,
                ))
            }
        }
    } else {
        Err((not_sent("the webhook is disabled"), false))
    };
    let (record, next) = match secret {
        Ok(secret) => {
            // One run sends an attempt at a time: a copy of this job (the
            // sweep's) waits until this one is done or has died.
            let hold = sender.policy.total_timeout + std::time::Duration::from_secs(5);
            let until = now + chrono::Duration::from_std(hold).unwrap_or_default();
            if !store.claim_delivery(id, d.attempts, now, until).await? {
                return Ok(AttemptOutcome::RetryAt {
                    at: until,
                    error: "another run is sending it".into(),
                });
            }
            let message = Message {
                id: d.message_id.clone(),
                timestamp: now.timestamp(),
                body: d.body.into_bytes(),
            };
            let sent = deliver(&sender.policy, &hook.webhook.url, &secret, &message).await;
            let at = Utc::now();
            let next = if sent.succeeded {
                Next::Done(DeliveryStatus::Succeeded)
            } else if sent.refused {
                Next::Done(DeliveryStatus::Failed)
            } else {
                sender.schedule.after_failure(d.attempts + 1, at)
            };
            metrics::histogram!("webhook_delivery_duration_seconds")
                .record(sent.duration.as_secs_f64());
            (sent.record(at), next)
        }
        // Not sent: a disabled webhook's delivery fails; one whose secret
        // cannot be opened (a key change rolling out) is tried again later.
        Err((record, retry)) => {
            let next = if retry {
                sender.schedule.after_failure(d.attempts + 1, now)
            } else {
                Next::Done(DeliveryStatus::Failed)
            };
            (record, next)
        }
    };
    let outcome = match next {
        Next::Done(DeliveryStatus::Succeeded) => "succeeded",
        Next::Done(_) => "failed",
        Next::RetryAt(_) => "retrying",
    };
    let Some(disabled) = store
        .record_attempt(id, d.attempts, &record, next, sender.disable_after)
        .await?
    else {
        // Another run of this delivery recorded this attempt first.
        return Ok(AttemptOutcome::Settled(DeliveryStatus::Pending));
    };
    metrics::counter!("webhook_deliveries_total", "outcome" => outcome).increment(1);
    if disabled {
        metrics::counter!("webhooks_disabled_total").increment(1);
        tracing::warn!(webhook_id = %hook.webhook.id, host = %host_of(&hook.webhook.url), "webhook disabled: its deliveries kept failing");
    }
    let error = record.error.unwrap_or_default();
    if !record.succeeded {
        tracing::info!(delivery_id = %id, webhook_id = %hook.webhook.id, attempt = d.attempts + 1, %error, "webhook delivery attempt failed");
    }
    Ok(match next {
        Next::Done(status) => AttemptOutcome::Settled(status),
        Next::RetryAt(_) if disabled => AttemptOutcome::Settled(DeliveryStatus::Failed),
        Next::RetryAt(at) => AttemptOutcome::RetryAt { at, error },
    })
}

/// Seals a secret opened with the previous key again with the current one,
/// unless it was rotated meanwhile.
async fn reseal(store: &dyn Webhooks, sender: &Sender, hook: &StoredWebhook, secret: &str) {
    let sealed = sender.secrets.seal(secret);
    if let Err(e) = store
        .reseal_secret(hook.webhook.id, &hook.secret, &sealed)
        .await
    {
        tracing::warn!(webhook_id = %hook.webhook.id, error = %e, "sealing a webhook secret with the new key failed");
    }
}

/// A URL's host, for logs: paths and queries may carry tokens (Slack's,
/// n8n's and Zapier's hooks do).
fn host_of(url: &str) -> String {
    crate::domain::webhook::Target::parse(url).map_or_else(|_| "?".into(), |t| t.host)
}
