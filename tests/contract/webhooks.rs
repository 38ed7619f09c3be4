//! The `Webhooks` part of the store contract: the dispatcher's
//! compare-and-set, attempts recorded once, failures that disable a
//! webhook, and webhooks carried by a backup.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use notes_api::{
    domain::{
        delivery::{AttemptRecord, DeliveryStatus, NewDelivery, Next},
        timestamp,
        webhook::{EventFilter, StoredWebhook, Target, WebhookFields},
    },
    store::{DispatchCursor, DynStore, Record},
};

use crate::store::{create, export, import, input};

contract_tests! {
    store;
    a_webhook_listens_from_the_feed_head_at_its_creation: sqlite, postgres;
    a_dispatch_is_stored_once_by_compare_and_set: sqlite, postgres;
    an_attempt_is_recorded_once_and_lasting_failures_disable_the_webhook: sqlite, postgres;
    disabled_and_deleted_webhooks_get_no_deliveries: sqlite, postgres;
    lost_deliveries_are_found_and_finished_ones_pruned: sqlite, postgres;
    deliveries_list_newest_first_with_their_attempts: sqlite, postgres;
    a_backup_carries_webhooks_sealed: sqlite, postgres;
}

async fn hook(s: &DynStore, url: &str) -> StoredWebhook {
    let fields = WebhookFields {
        url: Some(Target::parse(url).unwrap()),
        events: Some(EventFilter::All),
        description: Some(Some("test".into())),
        enabled: Some(true),
        secret: Some("v1.sealed".into()),
    };
    s.create_webhook(Uuid::now_v7(), fields, timestamp::now())
        .await
        .unwrap()
}

fn delivery(hook: &StoredWebhook, event: &str) -> NewDelivery {
    NewDelivery::new(
        hook.webhook.id,
        event,
        format!("{{\"type\":\"{event}\"}}"),
        timestamp::now(),
    )
}

fn failed_at(at: chrono::DateTime<Utc>) -> AttemptRecord {
    AttemptRecord {
        at,
        succeeded: false,
        status_code: Some(500),
        duration: Duration::from_millis(12),
        error: Some("answered 500".into()),
        sent: true,
    }
}

async fn a_webhook_listens_from_the_feed_head_at_its_creation(s: DynStore) {
    create(&s, input("before")).await;
    let head = s.feed_head().await.unwrap().seq;
    let h = hook(&s, "https://example.org/in").await;
    assert_eq!(h.from_seq, head);
    assert_eq!(h.webhook.events, ["*"]);
    assert_eq!(h.secret, "v1.sealed");
    assert!(h.webhook.enabled && h.webhook.failing_since.is_none());
    // Disabled, then enabled again: it listens from the head then.
    create(&s, input("while enabled")).await;
    let off = WebhookFields {
        enabled: Some(false),
        ..Default::default()
    };
    let h2 = s
        .update_webhook(h.webhook.id, off, timestamp::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h2.from_seq, head, "unchanged by a disable");
    create(&s, input("while disabled")).await;
    let on = WebhookFields {
        enabled: Some(true),
        ..Default::default()
    };
    let h3 = s
        .update_webhook(h.webhook.id, on, timestamp::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h3.from_seq, s.feed_head().await.unwrap().seq);
    assert_eq!(
        h3.webhook.description.as_deref(),
        Some("test"),
        "the rest kept"
    );
    assert_eq!(s.count_webhooks().await.unwrap(), 1);
}

async fn a_dispatch_is_stored_once_by_compare_and_set(s: DynStore) {
    let h = hook(&s, "https://example.org/in").await;
    let from = s.dispatch_cursor().await.unwrap();
    let to = DispatchCursor {
        epoch: from.epoch.clone(),
        seq: from.seq + 1,
    };
    let first = delivery(&h, "note.created");
    assert!(
        s.commit_dispatch(&from, &to, vec![first.clone()])
            .await
            .unwrap()
    );
    // A second dispatcher that read the same page: nothing stored.
    let late = delivery(&h, "note.created");
    assert!(
        !s.commit_dispatch(&from, &to, vec![late.clone()])
            .await
            .unwrap()
    );
    assert_eq!(s.dispatch_cursor().await.unwrap(), to);
    let listed = s.list_deliveries(h.webhook.id, 10, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, first.id);
    assert!(s.get_delivery(late.id).await.unwrap().is_none());
    let out = s.get_delivery(first.id).await.unwrap().unwrap();
    assert_eq!((out.status, out.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(out.body, first.body);
    assert_eq!(out.message_id, first.message_id);
}

async fn an_attempt_is_recorded_once_and_lasting_failures_disable_the_webhook(s: DynStore) {
    let h = hook(&s, "https://example.org/in").await;
    let d = delivery(&h, "note.updated");
    assert!(s.add_delivery(d.clone()).await.unwrap());
    let t0 = timestamp::now();
    let retry = Next::RetryAt(t0 + chrono::Duration::seconds(5));
    let day = Duration::from_secs(86_400);
    // One run holds an attempt at a time, until its hold ends.
    let hold = t0 + chrono::Duration::seconds(20);
    assert!(s.claim_delivery(d.id, 0, t0, hold).await.unwrap());
    assert!(!s.claim_delivery(d.id, 0, t0, hold).await.unwrap());
    let after = hold + chrono::Duration::seconds(1);
    assert!(s.claim_delivery(d.id, 0, after, after).await.unwrap());
    assert!(
        !s.claim_delivery(d.id, 1, after, after).await.unwrap(),
        "not that attempt"
    );
    assert_eq!(
        s.record_attempt(d.id, 0, &failed_at(t0), retry, day)
            .await
            .unwrap(),
        Some(false)
    );
    // The same attempt again (a second copy of the job): not recorded.
    assert_eq!(
        s.record_attempt(d.id, 0, &failed_at(t0), retry, day)
            .await
            .unwrap(),
        None
    );
    let out = s.get_delivery(d.id).await.unwrap().unwrap();
    assert_eq!(out.attempts, 1);
    assert_eq!(out.next_at, Some(t0 + chrono::Duration::seconds(5)));
    let hooked = s.get_webhook(h.webhook.id).await.unwrap().unwrap();
    assert_eq!(hooked.webhook.failing_since, Some(t0));
    // A recorded attempt ends the hold: the next one may be claimed.
    let t_next = t0 + chrono::Duration::seconds(5);
    assert!(s.claim_delivery(d.id, 1, t_next, t_next).await.unwrap());
    // A re-seal loses to a rotation made in between.
    assert!(
        !s.reseal_secret(h.webhook.id, "v1.other", "v1.new")
            .await
            .unwrap()
    );
    assert!(
        s.reseal_secret(h.webhook.id, "v1.sealed", "v1.new")
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_webhook(h.webhook.id).await.unwrap().unwrap().secret,
        "v1.new"
    );
    // Failing for longer than the limit: the webhook is disabled.
    let t1 = t0 + chrono::Duration::seconds(90);
    let failed = Next::Done(DeliveryStatus::Failed);
    let short = Duration::from_secs(60);
    assert_eq!(
        s.record_attempt(d.id, 1, &failed_at(t1), failed, short)
            .await
            .unwrap(),
        Some(true)
    );
    let off = s.get_webhook(h.webhook.id).await.unwrap().unwrap();
    assert!(!off.webhook.enabled);
    assert!(off.webhook.disabled_reason.unwrap().contains("failed"));
    // A settled delivery takes no more attempts.
    assert_eq!(
        s.record_attempt(d.id, 2, &failed_at(t1), failed, short)
            .await
            .unwrap(),
        None
    );
    let out = s.get_delivery(d.id).await.unwrap().unwrap();
    assert_eq!(
        (out.status, out.attempts, out.next_at),
        (DeliveryStatus::Failed, 2, None)
    );

    // A success clears the failures of an enabled webhook.
    let on = WebhookFields {
        enabled: Some(true),
        ..Default::default()
    };
    s.update_webhook(h.webhook.id, on, t1).await.unwrap();
    let d2 = delivery(&h, "ping");
    s.add_delivery(d2.clone()).await.unwrap();
    s.record_attempt(d2.id, 0, &failed_at(t1), retry, day)
        .await
        .unwrap();
    let ok = AttemptRecord {
        succeeded: true,
        status_code: Some(204),
        error: None,
        ..failed_at(t1)
    };
    let done = Next::Done(DeliveryStatus::Succeeded);
    assert_eq!(
        s.record_attempt(d2.id, 1, &ok, done, day).await.unwrap(),
        Some(false)
    );
    let back = s.get_webhook(h.webhook.id).await.unwrap().unwrap();
    assert!(back.webhook.enabled && back.webhook.failing_since.is_none());
}

async fn disabled_and_deleted_webhooks_get_no_deliveries(s: DynStore) {
    let h = hook(&s, "https://example.org/in").await;
    let off = WebhookFields {
        enabled: Some(false),
        ..Default::default()
    };
    s.update_webhook(h.webhook.id, off, timestamp::now())
        .await
        .unwrap();
    assert!(!s.add_delivery(delivery(&h, "ping")).await.unwrap());
    // The dispatcher's page still moves on.
    let from = s.dispatch_cursor().await.unwrap();
    let to = DispatchCursor {
        epoch: from.epoch.clone(),
        seq: from.seq + 1,
    };
    assert!(
        s.commit_dispatch(&from, &to, vec![delivery(&h, "note.created")])
            .await
            .unwrap()
    );
    assert!(
        s.list_deliveries(h.webhook.id, 10, None)
            .await
            .unwrap()
            .is_empty()
    );

    let live = hook(&s, "https://example.org/other").await;
    let d = delivery(&live, "ping");
    assert!(s.add_delivery(d.clone()).await.unwrap());
    assert!(s.delete_webhook(live.webhook.id).await.unwrap());
    assert!(
        s.get_delivery(d.id).await.unwrap().is_none(),
        "deleted with it"
    );
    assert!(!s.delete_webhook(live.webhook.id).await.unwrap());
    assert!(s.get_webhook(live.webhook.id).await.unwrap().is_none());
}

async fn lost_deliveries_are_found_and_finished_ones_pruned(s: DynStore) {
    let h = hook(&s, "https://example.org/in").await;
    let d = delivery(&h, "note.created");
    s.add_delivery(d.clone()).await.unwrap();
    let later = timestamp::now() + chrono::Duration::seconds(10);
    // Never queued, due before `later`: lost, and taken by one caller only.
    assert_eq!(s.claim_stale(later, later, 10).await.unwrap(), [d.id]);
    assert!(s.claim_stale(later, later, 10).await.unwrap().is_empty());
    let much_later = later + chrono::Duration::seconds(10);
    s.mark_enqueued(&[d.id], much_later).await.unwrap();
    assert!(
        s.claim_stale(much_later, much_later, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let even_later = much_later + chrono::Duration::seconds(10);
    assert_eq!(
        s.claim_stale(even_later, even_later, 10).await.unwrap(),
        [d.id]
    );

    // Finished: pruned once older than the cutoff, pending ones never.
    let pending = delivery(&h, "note.updated");
    s.add_delivery(pending.clone()).await.unwrap();
    let at = timestamp::now();
    let ok = AttemptRecord {
        succeeded: true,
        status_code: Some(200),
        error: None,
        ..failed_at(at)
    };
    let done = Next::Done(DeliveryStatus::Succeeded);
    s.record_attempt(d.id, 0, &ok, done, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        s.prune_deliveries(at, 10).await.unwrap(),
        0,
        "not older yet"
    );
    assert_eq!(s.prune_deliveries(even_later, 10).await.unwrap(), 1);
    assert!(s.get_delivery(d.id).await.unwrap().is_none());
    assert!(s.get_delivery(pending.id).await.unwrap().is_some());
}

async fn deliveries_list_newest_first_with_their_attempts(s: DynStore) {
    let h = hook(&s, "https://example.org/in").await;
    let other = hook(&s, "https://example.org/other").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let d = delivery(&h, "note.created");
        s.add_delivery(d.clone()).await.unwrap();
        s.add_delivery(delivery(&other, "ping")).await.unwrap();
        for n in 0..i.min(2) {
            let t = timestamp::now();
            let next = Next::RetryAt(t);
            s.record_attempt(d.id, n, &failed_at(t), next, Duration::from_secs(3600))
                .await
                .unwrap();
        }
        ids.push(d.id);
    }
    ids.reverse();
    let first = s.list_deliveries(h.webhook.id, 3, None).await.unwrap();
    let rest = s
        .list_deliveries(h.webhook.id, 3, Some(first[2].id))
        .await
        .unwrap();
    let listed: Vec<Uuid> = first.iter().chain(&rest).map(|d| d.id).collect();
    assert_eq!(listed, ids, "newest first, paged, this webhook's only");
    let newest = &first[0];
    assert_eq!(newest.attempts, 2);
    let ns: Vec<u32> = newest.attempt_log.iter().map(|a| a.n).collect();
    assert_eq!(ns, [2, 1], "newest attempt first");
    assert_eq!(newest.attempt_log[0].status_code, Some(500));
    assert_eq!(newest.attempt_log[0].duration_ms, 12);
    assert!(rest.last().unwrap().attempt_log.is_empty());
}

async fn a_backup_carries_webhooks_sealed(s: DynStore) {
    let note = create(&s, input("kept")).await;
    let h = hook(&s, "https://example.org/in").await;
    let records = export(&s).await;
    let carried = records
        .iter()
        .find_map(|r| match r {
            Record::Webhook {
                webhook,
                sealed_secret,
            } => Some((webhook.clone(), sealed_secret.clone())),
            _ => None,
        })
        .expect("the webhook is in the backup");
    assert_eq!(carried.0, h.webhook);
    assert_eq!(carried.1, "v1.sealed");
    s.delete_webhook(h.webhook.id).await.unwrap();
    s.delete_note(note.id).await.unwrap();
    import(&s, records.into_iter().map(Ok).collect())
        .await
        .expect("import");
    let back = s.get_webhook(h.webhook.id).await.unwrap().unwrap();
    assert_eq!(back.webhook, h.webhook);
    assert_eq!(back.secret, "v1.sealed");
    assert_eq!(
        back.from_seq,
        s.feed_head().await.unwrap().seq,
        "restored notes are not news to it"
    );
}
