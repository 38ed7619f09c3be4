//! The webhook dispatcher: turns the change feed into deliveries and
//! queues their jobs. Every replica that runs jobs runs one; the store
//! makes sure each change's deliveries are stored once
//! (`service::webhooks::dispatch`).

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::service::webhooks;

/// How often the feed is looked at without a wake-up (writes made by
/// another process, or no index in this one to announce them).
const POLL: Duration = Duration::from_secs(1);
/// How often overdue deliveries are looked for, and how overdue they must
/// be: a job lost with a crash, or never queued.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const SWEEP_GRACE: Duration = Duration::from_secs(300);
/// After a failed round (the database is down): wait this long.
const AFTER_ERROR: Duration = Duration::from_secs(5);

/// Dispatches until `stop`; `wake` announces that the feed may have moved
/// (this process's search index having read new changes).
pub async fn run<T: Send + Sync>(
    ctx: Context,
    mut wake: Option<watch::Receiver<T>>,
    stop: CancellationToken,
) {
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        let mut pause = POLL;
        loop {
            match webhooks::dispatch(&ctx.store, ctx.queue.as_ref(), &ctx.sender).await {
                Ok(0) => break,
                // More may be waiting: a page was full, or another one came.
                Ok(_) if !stop.is_cancelled() => {}
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook dispatch failed; trying again");
                    pause = AFTER_ERROR;
                    break;
                }
            }
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = tokio::time::Instant::now();
            let sweep = webhooks::sweep(
                ctx.store.as_ref(),
                ctx.queue.as_ref(),
                &ctx.sender,
                SWEEP_GRACE,
            );
            if let Err(e) = sweep.await {
                tracing::warn!(error = %e, "looking for overdue webhook deliveries failed");
            }
        }
        let sleep = tokio::time::sleep(pause);
        match &mut wake {
            Some(rx) => tokio::select! {
                changed = rx.changed() => if changed.is_err() { wake = None },
                () = sleep => {}
                () = stop.cancelled() => return,
            },
            None => tokio::select! {
                () = sleep => {}
                () = stop.cancelled() => return,
            },
        }
    }
}
