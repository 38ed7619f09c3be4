//! What the job runtime works with: the store, the blobs, the queue and the
//! settings. The HTTP layer wraps one of these; the runtime never sees HTTP.

use std::sync::Arc;

use uuid::Uuid;

use crate::{
    backup,
    blobs::Blobs,
    config::Settings,
    domain::{delivery::RetrySchedule, timestamp, webhook::AddressPolicy},
    queue::{DynQueue, Job, NewJob, QueueError, Quota},
    store::DynStore,
    webhooks::{DeliveryPolicy, Secrets, Sender},
};

#[derive(Clone)]
pub struct Context {
    pub store: DynStore,
    pub blobs: Blobs,
    pub queue: DynQueue,
    pub settings: Arc<Settings>,
    /// How webhook deliveries are sent and their secrets sealed.
    pub sender: Arc<Sender>,
}

impl Context {
    pub fn new(store: DynStore, blobs: Blobs, queue: DynQueue, settings: Settings) -> Self {
        Self {
            store,
            blobs,
            queue,
            sender: Arc::new(sender(&settings)),
            settings: Arc::new(settings),
        }
    }

    /// A validated job, due now, with the configured attempt budget: the one
    /// rule every producer (API, scheduler, job kinds) follows.
    pub fn job(&self, job: NewJob) -> Job {
        Job::queued(job, self.settings.jobs.max_attempts, timestamp::now())
    }

    pub async fn enqueue(&self, job: NewJob) -> Result<Job, QueueError> {
        self.queue.enqueue(self.job(job)).await
    }

    /// Enqueues `job` for `owner` within the per-key cap
    /// (`NOTES_MAX_QUEUED_JOBS_PER_KEY`); `None` when the owner is at it.
    pub async fn enqueue_for(&self, owner: Uuid, job: NewJob) -> Result<Option<Job>, QueueError> {
        let quota = Quota {
            owner,
            limit: self.settings.jobs.max_queued_per_key,
        };
        self.queue.enqueue_within(self.job(job), quota).await
    }

    /// Closes the queue, then the database (the queue may share its pools).
    pub async fn close(&self) {
        self.queue.close().await;
        self.store.close().await;
    }
}

/// The webhook sender the settings describe.
fn sender(settings: &Settings) -> Sender {
    let w = &settings.webhooks;
    let addresses = AddressPolicy {
        allowed: w.allow_networks.clone(),
    };
    Sender {
        policy: DeliveryPolicy::new(addresses, w.require_https),
        secrets: Secrets::new(
            w.secret_key.expose().as_bytes(),
            w.secret_key_previous
                .as_ref()
                .map(|k| k.expose().as_bytes()),
        ),
        schedule: RetrySchedule(w.retry_schedule.clone()),
        disable_after: w.disable_after,
    }
}

impl<'a> From<&'a Context> for backup::Target<'a> {
    fn from(ctx: &'a Context) -> Self {
        Self {
            store: &ctx.store,
            blobs: &ctx.blobs,
            storage: &ctx.settings.storage,
            progress: None,
        }
    }
}
