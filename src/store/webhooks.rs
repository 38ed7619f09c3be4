//! Webhooks, their deliveries and the dispatcher's cursor ([`Webhooks`]),
//! for both SQL backends.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, types::Json};
use uuid::Uuid;

use super::{
    DispatchCursor, StoreError, Webhooks,
    rows::{Id, Time, WEBHOOK_COLUMNS, WebhookRow},
    sql::{Args, Backend, SqlStore, execute, fetch_all, fetch_one, fetch_optional, query},
};
use crate::domain::{
    delivery::{
        AttemptRecord, Delivery, DeliveryAttempt, DeliveryStatus, NewDelivery, Next, Outgoing,
    },
    webhook::{StoredWebhook, WebhookFields},
};

const DELIVERY_COLUMNS: &str = "id, webhook_id, message_id, event, body, status, attempts, \
     next_at, created_at, finished_at";

#[derive(FromRow)]
struct DeliveryRow {
    id: Id,
    webhook_id: Id,
    message_id: String,
    event: String,
    body: String,
    status: String,
    attempts: i32,
    next_at: Option<Time>,
    created_at: Time,
    finished_at: Option<Time>,
}

impl DeliveryRow {
    fn status(&self) -> DeliveryStatus {
        // Written by this module only; an unknown value (a newer version's)
        // is not retried.
        DeliveryStatus::parse(&self.status).unwrap_or(DeliveryStatus::Failed)
    }

    fn into_outgoing(self) -> Outgoing {
        Outgoing {
            status: self.status(),
            id: self.id.0,
            webhook_id: self.webhook_id.0,
            message_id: self.message_id,
            event: self.event,
            body: self.body,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            next_at: self.next_at.map(|t| t.0),
        }
    }

    fn into_delivery(self, attempt_log: Vec<DeliveryAttempt>) -> Delivery {
        Delivery {
            status: self.status(),
            id: self.id.0,
            webhook_id: self.webhook_id.0,
            message_id: self.message_id,
            event: self.event,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            next_at: self.next_at.map(|t| t.0),
            created_at: self.created_at.0,
            finished_at: self.finished_at.map(|t| t.0),
            attempt_log,
        }
    }
}

#[derive(FromRow)]
struct AttemptRow {
    delivery_id: Id,
    n: i32,
    at: Time,
    succeeded: bool,
    status_code: Option<i32>,
    duration_ms: i64,
    error: Option<String>,
}

impl AttemptRow {
    fn into_attempt(self) -> DeliveryAttempt {
        DeliveryAttempt {
            n: u32::try_from(self.n).unwrap_or(0),
            at: self.at.0,
            succeeded: self.succeeded,
            status_code: self.status_code.and_then(|c| u16::try_from(c).ok()),
            duration_ms: u64::try_from(self.duration_ms).unwrap_or(0),
            error: self.error,
        }
    }
}

fn insert_delivery<B: Backend>(d: &NewDelivery) -> sqlx::query::Query<'static, B, B::Arguments> {
    // Only for a webhook that exists and listens: one deleted or disabled
    // since the caller looked gets nothing.
    query::<B>(
        "INSERT INTO webhook_deliveries
             (id, webhook_id, message_id, event, body, status, attempts, next_at, created_at)
         SELECT $1, id, $2, $3, $4, 'pending', 0, $5, $5 FROM webhooks
         WHERE id = $6 AND enabled",
    )
    .arg(Id(d.id))
    .arg(d.message_id.clone())
    .arg(d.event.clone())
    .arg(d.body.clone())
    .arg(Time(d.created_at))
    .arg(Id(d.webhook_id))
}

/// Every webhook, oldest first.
async fn all<B: Backend>(c: &mut B::Connection) -> Result<Vec<StoredWebhook>, StoreError> {
    let rows: Vec<WebhookRow> = fetch_all(
        c,
        query::<B>(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id"
        )),
    )
    .await?;
    Ok(rows.into_iter().map(WebhookRow::into_stored).collect())
}

/// The webhook `id`; with `lock`, its row stays locked to the end of the
/// transaction (PostgreSQL; SQLite's writer is alone anyway), so a change
/// that reads it, then writes it, loses no concurrent change.
async fn get_hook<B: Backend>(
    c: &mut B::Connection,
    id: Uuid,
    lock: bool,
) -> Result<Option<StoredWebhook>, StoreError> {
    let lock = if lock { B::LOCK_ROWS } else { "" };
    let row: Option<WebhookRow> = fetch_optional(
        c,
        query::<B>(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 {lock}"
        ))
        .arg(Id(id)),
    )
    .await?;
    Ok(row.map(WebhookRow::into_stored))
}

#[async_trait]
impl<B: Backend> Webhooks for SqlStore<B> {
    async fn create_webhook(
        &self,
        id: Uuid,
        fields: WebhookFields,
        now: DateTime<Utc>,
    ) -> Result<StoredWebhook, StoreError> {
        let mut tx = B::begin_write(self).await?;
        let events = fields.events.map(|f| f.names()).unwrap_or_default();
        execute(
            &mut *tx,
            query::<B>(
                "INSERT INTO webhooks (id, url, events, description, secret, enabled, from_seq,
                                       created_at, updated_at)
                 SELECT $1, $2, $3, $4, $5, $6, head, $7, $7 FROM search_feed WHERE id = 1",
            )
            .arg(Id(id))
            .arg(fields.url.map(|t| t.url).unwrap_or_default())
            .arg(Json(events))
            .arg(fields.description.flatten())
            .arg(fields.secret.unwrap_or_default())
            .arg(fields.enabled.unwrap_or(true))
            .arg(Time(now)),
        )
        .await?;
        let hook = get_hook::<B>(&mut tx, id, false)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(hook)
    }

    async fn list_webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        all::<B>(&mut *self.read().await?).await
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>, StoreError> {
        get_hook::<B>(&mut *self.read().await?, id, false).await
    }

    async fn update_webhook(
        &self,
        id: Uuid,
        fields: WebhookFields,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredWebhook>, StoreError> {
        let mut tx = B::begin_write(self).await?;
        let Some(current) = get_hook::<B>(&mut tx, id, true).await? else {
            return Ok(None);
        };
        let was = current.webhook;
        let enabling = fields.enabled == Some(true) && !was.enabled;
        let events = fields.events.map_or(was.events, |f| f.names());
        execute(
            &mut *tx,
            query::<B>(
                "UPDATE webhooks SET url = $2, events = $3, description = $4, secret = $5,
                        enabled = $6, updated_at = $7,
                        disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END,
                        failing_since = CASE WHEN $8 THEN NULL ELSE failing_since END,
                        from_seq = CASE WHEN $8
                            THEN (SELECT head FROM search_feed WHERE id = 1) ELSE from_seq END
                 WHERE id = $1",
            )
            .arg(Id(id))
            .arg(fields.url.map_or(was.url, |t| t.url))
            .arg(Json(events))
            .arg(fields.description.unwrap_or(was.description))
            .arg(fields.secret.unwrap_or(current.secret))
            .arg(fields.enabled.unwrap_or(was.enabled))
            .arg(Time(now))
            .arg(enabling),
        )
        .await?;
        let hook = get_hook::<B>(&mut tx, id, false).await?;
        tx.commit().await.map_err(B::map_err)?;
        Ok(hook)
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<bool, StoreError> {
        let deleted = execute(
            &mut *self.write().await?,
            query::<B>("DELETE FROM webhooks WHERE id = $1").arg(Id(id)),
        )
        .await?;
        Ok(deleted > 0)
    }

    async fn count_webhooks(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM webhooks").await
    }

    async fn dispatch_cursor(&self) -> Result<DispatchCursor, StoreError> {
        let (epoch, seq): (String, i64) = fetch_one(
            &mut *self.read().await?,
            query::<B>("SELECT epoch, seq FROM webhook_dispatch WHERE id = 1"),
        )
        .await?;
        Ok(DispatchCursor { epoch, seq })
    }

    async fn commit_dispatch(
        &self,
        from: &DispatchCursor,
        to: &DispatchCursor,
        deliveries: Vec<NewDelivery>,
    ) -> Result<bool, StoreError> {
        let mut tx = B::begin_write(self).await?;
        // The compare-and-set that makes a change's deliveries be stored
        // once however many replicas race for it: the row stays locked
        // (PostgreSQL) or the database is (SQLite) until the commit.
        let moved = execute(
            &mut *tx,
            query::<B>(
                "UPDATE webhook_dispatch SET epoch = $3, seq = $4
                 WHERE id = 1 AND epoch = $1 AND seq = $2",
            )
            .arg(from.epoch.clone())
            .arg(from.seq)
            .arg(to.epoch.clone())
            .arg(to.seq),
        )
        .await?;
        if moved == 0 {
            return Ok(false);
        }
        for d in &deliveries {
            execute(&mut *tx, insert_delivery::<B>(d)).await?;
        }
        tx.commit().await.map_err(B::map_err)?;
        Ok(true)
    }

    async fn add_delivery(&self, delivery: NewDelivery) -> Result<bool, StoreError> {
        let added = execute(&mut *self.write().await?, insert_delivery::<B>(&delivery)).await?;
        Ok(added > 0)
    }

    async fn get_delivery(&self, id: Uuid) -> Result<Option<Outgoing>, StoreError> {
        let row: Option<DeliveryRow> = fetch_optional(
            &mut *self.read().await?,
            query::<B>(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
            ))
            .arg(Id(id)),
        )
        .await?;
        Ok(row.map(DeliveryRow::into_outgoing))
    }

    async fn list_deliveries(
        &self,
        webhook_id: Uuid,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut tx = B::begin_snapshot(self, false).await?;
        // Ids are time-ordered (v7): newest first is id order, on both
        // backends (SQLite's hyphenated text sorts as the uuid does).
        let rows: Vec<DeliveryRow> = fetch_all(
            &mut *tx,
            query::<B>(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
                 WHERE webhook_id = $1 AND ($2 IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3"
            ))
            .arg(Id(webhook_id))
            .arg(before.map(Id))
            .arg(i64::from(limit)),
        )
        .await?;
        let mut attempts: HashMap<Uuid, Vec<DeliveryAttempt>> = HashMap::new();
        if let (Some(newest), Some(oldest)) = (rows.first(), rows.last()) {
            let found: Vec<AttemptRow> = fetch_all(
                &mut *tx,
                query::<B>(
                    "SELECT a.delivery_id, a.n, a.at, a.succeeded, a.status_code, a.duration_ms,
                            a.error
                     FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
                     WHERE d.webhook_id = $1 AND d.id <= $2 AND d.id >= $3
                     ORDER BY a.delivery_id, a.n DESC",
                )
                .arg(Id(webhook_id))
                .arg(newest.id)
                .arg(oldest.id),
            )
            .await?;
            for a in found {
                attempts
                    .entry(a.delivery_id.0)
                    .or_default()
                    .push(a.into_attempt());
            }
        }
        tx.commit().await.map_err(B::map_err)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let log = attempts.remove(&r.id.0).unwrap_or_default();
                r.into_delivery(log)
            })
            .collect())
    }

    async fn record_attempt(
        &self,
        id: Uuid,
        attempts: u32,
        attempt: &AttemptRecord,
        next: Next,
        disable_after: Duration,
    ) -> Result<Option<bool>, StoreError> {
        let mut tx = B::begin_write(self).await?;
        let (status, next_at, finished_at) = match next {
            Next::RetryAt(at) => (DeliveryStatus::Pending, Some(Time(at)), None),
            Next::Done(status) => (status, None, Some(Time(attempt.at))),
        };
        let n = i32::try_from(attempts + 1).unwrap_or(i32::MAX);
        let updated = execute(
            &mut *tx,
            query::<B>(
                "UPDATE webhook_deliveries SET attempts = $3, status = $4, next_at = $5,
                        finished_at = $6, locked_until = NULL,
                        enqueued_at = CASE WHEN $5 IS NULL THEN enqueued_at ELSE $5 END
                 WHERE id = $1 AND attempts = $2 AND status = 'pending'",
            )
            .arg(Id(id))
            .arg(n - 1)
            .arg(n)
            .arg(status.as_str())
            .arg(next_at)
            .arg(finished_at),
        )
        .await?;
        if updated == 0 {
            return Ok(None);
        }
        execute(
            &mut *tx,
            query::<B>(
                "INSERT INTO webhook_attempts
                     (delivery_id, n, at, succeeded, status_code, duration_ms, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .arg(Id(id))
            .arg(n)
            .arg(Time(attempt.at))
            .arg(attempt.succeeded)
            .arg(attempt.status_code.map(i32::from))
            .arg(i64::try_from(attempt.duration.as_millis()).unwrap_or(i64::MAX))
            .arg(attempt.error.clone()),
        )
        .await?;
        let mut disabled = false;
        if attempt.sent {
            let (webhook_id,): (Id,) = fetch_one(
                &mut *tx,
                query::<B>("SELECT webhook_id FROM webhook_deliveries WHERE id = $1").arg(Id(id)),
            )
            .await?;
            if attempt.succeeded {
                execute(
                    &mut *tx,
                    query::<B>("UPDATE webhooks SET failing_since = NULL WHERE id = $1")
                        .arg(webhook_id),
                )
                .await?;
            } else {
                let (since, enabled): (Option<Time>, bool) = fetch_one(
                    &mut *tx,
                    query::<B>(
                        "UPDATE webhooks SET failing_since = COALESCE(failing_since, $2)
                         WHERE id = $1 RETURNING failing_since, enabled",
                    )
                    .arg(webhook_id)
                    .arg(Time(attempt.at)),
                )
                .await?;
                let limit = chrono::Duration::from_std(disable_after).unwrap_or_default();
                if let Some(since) = since
                    && enabled
                    && attempt.at - since.0 >= limit
                {
                    let reason = format!(
                        "every delivery failed from {} to {}",
                        crate::domain::timestamp::format(&since.0),
                        crate::domain::timestamp::format(&attempt.at)
                    );
                    execute(
                        &mut *tx,
                        query::<B>(
                            "UPDATE webhooks SET enabled = $2, disabled_reason = $3,
                                    updated_at = $4
                             WHERE id = $1",
                        )
                        .arg(webhook_id)
                        .arg(false)
                        .arg(reason)
                        .arg(Time(attempt.at)),
                    )
                    .await?;
                    // Nothing more is sent to it: what was waiting fails,
                    // and can be sent again once it is enabled.
                    execute(
                        &mut *tx,
                        query::<B>(
                            "UPDATE webhook_deliveries SET status = 'failed', next_at = NULL,
                                    finished_at = $2
                             WHERE webhook_id = $1 AND status = 'pending'",
                        )
                        .arg(webhook_id)
                        .arg(Time(attempt.at)),
                    )
                    .await?;
                    disabled = true;
                }
            }
        }
        tx.commit().await.map_err(B::map_err)?;
        Ok(Some(disabled))
    }

    async fn mark_enqueued(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = B::begin_write(self).await?;
        for id in ids {
            execute(
                &mut *tx,
                query::<B>("UPDATE webhook_deliveries SET enqueued_at = $2 WHERE id = $1")
                    .arg(Id(*id))
                    .arg(Time(at)),
            )
            .await?;
        }
        tx.commit().await.map_err(B::map_err)?;
        Ok(())
    }

    async fn claim_stale(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        // The condition is repeated outside the sub-select: a replica whose
        // UPDATE waited for another's (PostgreSQL) sees the row it changed,
        // and takes none of them.
        let rows: Vec<(Id,)> = fetch_all(
            &mut *self.write().await?,
            query::<B>(
                "UPDATE webhook_deliveries SET enqueued_at = $2
                 WHERE id IN (SELECT id FROM webhook_deliveries
                              WHERE status = 'pending' AND next_at < $1
                                AND (enqueued_at IS NULL OR enqueued_at < $1)
                              ORDER BY next_at LIMIT $3)
                   AND status = 'pending' AND (enqueued_at IS NULL OR enqueued_at < $1)
                 RETURNING id",
            )
            .arg(Time(before))
            .arg(Time(now))
            .arg(i64::from(limit)),
        )
        .await?;
        Ok(rows.into_iter().map(|(id,)| id.0).collect())
    }

    async fn claim_delivery(
        &self,
        id: Uuid,
        attempts: u32,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let claimed = execute(
            &mut *self.write().await?,
            query::<B>(
                "UPDATE webhook_deliveries SET locked_until = $4
                 WHERE id = $1 AND attempts = $2 AND status = 'pending'
                   AND (locked_until IS NULL OR locked_until < $3)",
            )
            .arg(Id(id))
            .arg(i32::try_from(attempts).unwrap_or(i32::MAX))
            .arg(Time(now))
            .arg(Time(until)),
        )
        .await?;
        Ok(claimed > 0)
    }

    async fn reseal_secret(&self, id: Uuid, old: &str, new: &str) -> Result<bool, StoreError> {
        let changed = execute(
            &mut *self.write().await?,
            query::<B>("UPDATE webhooks SET secret = $3 WHERE id = $1 AND secret = $2")
                .arg(Id(id))
                .arg(old.to_owned())
                .arg(new.to_owned()),
        )
        .await?;
        Ok(changed > 0)
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let mut tx = B::begin_write(self).await?;
        let old: Vec<(Id,)> = fetch_all(
            &mut *tx,
            query::<B>(
                "SELECT id FROM webhook_deliveries
                 WHERE status <> 'pending' AND finished_at < $1 LIMIT $2",
            )
            .arg(Time(before))
            .arg(i64::from(limit)),
        )
        .await?;
        for (id,) in &old {
            execute(
                &mut *tx,
                query::<B>("DELETE FROM webhook_deliveries WHERE id = $1").arg(*id),
            )
            .await?;
        }
        tx.commit().await.map_err(B::map_err)?;
        Ok(old.len() as u64)
    }
}
