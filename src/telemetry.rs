//! Logs (tracing, JSON by default) and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
use tracing_subscriber::{EnvFilter, Layer, Registry, filter::LevelFilter, fmt, prelude::*};

use crate::config::{LogFormat, Settings, TelemetryArgs};

/// Latency buckets from 1 ms to 10 s: the API answers in milliseconds and the
/// alerting rules read p95 from these.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A webhook attempt: a receiver's answer, up to the 15 s timeout.
const DELIVERY_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0];

/// Jobs run from milliseconds (`add`) to many minutes (`backup`).
const JOB_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The Sentry client of this process, when NOTES_SENTRY_DSN is set: kept
/// for the process's life, flushed by [`flush_errors`] before exit.
static SENTRY: OnceLock<sentry::ClientInitGuard> = OnceLock::new();

/// Error-level log events become error reports (a 5xx answer, a dead or
/// panicked job, a failed start); warnings ride along as breadcrumbs.
/// Reports carry the release and environment, never a request body
/// (none is logged) and never a secret: every configured secret is
/// replaced before an event leaves.
fn init_sentry(settings: &Settings) -> Option<Box<dyn Layer<Registry> + Send + Sync>> {
    let dsn = settings.telemetry.sentry_dsn.as_ref()?;
    let dsn: sentry::types::Dsn = match dsn.expose().parse() {
        Ok(dsn) => dsn,
        Err(_) => {
            eprintln!("NOTES_SENTRY_DSN is not a valid DSN; error reports are off");
            return None;
        }
    };
    let secrets = settings.secrets();
    let options = sentry::ClientOptions::new()
        .release(format!("notes-api@{}", crate::VERSION))
        .environment(settings.telemetry.sentry_environment.clone())
        .send_default_pii(false)
        .before_send(move |event| scrub(event, &secrets))
        .before_breadcrumb({
            let secrets = settings.secrets();
            move |crumb| scrub_breadcrumb(crumb, &secrets)
        });
    let guard = sentry::init((dsn, options));
    let _ = SENTRY.set(guard);
    Some(
        ErrorLayer::new()
            .with_filter(LevelFilter::ERROR)
            .and_then(BreadcrumbLayer::new().with_filter(LevelFilter::WARN))
            .boxed(),
    )
}

/// Replaces every secret in every string of the event.
fn scrub(
    event: sentry::protocol::Event<'static>,
    secrets: &[String],
) -> Option<sentry::protocol::Event<'static>> {
    scrubbed(&event, secrets)
}

fn scrub_breadcrumb(
    crumb: sentry::protocol::Breadcrumb,
    secrets: &[String],
) -> Option<sentry::protocol::Breadcrumb> {
    scrubbed(&crumb, secrets)
}

/// `value` with every secret in every string replaced; `None` (so not
/// sent) if it cannot be checked.
fn scrubbed<T: serde::Serialize + serde::de::DeserializeOwned>(
    value: &T,
    secrets: &[String],
) -> Option<T> {
    fn walk(v: &mut serde_json::Value, secrets: &[String]) {
        match v {
            serde_json::Value::String(s) => {
                for secret in secrets {
                    if s.contains(secret.as_str()) {
                        *s = s.replace(secret.as_str(), "<redacted>");
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| walk(i, secrets)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|i| walk(i, secrets)),
            _ => {}
        }
    }
    let mut json = serde_json::to_value(value).ok()?;
    walk(&mut json, secrets);
    serde_json::from_value(json).ok()
}

/// Sends what is queued for the error tracker; call before the process exits.
pub fn flush_errors() {
    if let Some(guard) = SENTRY.get() {
        guard.flush(Some(std::time::Duration::from_secs(3)));
    }
}

/// Logs, and error reports when a DSN is set: from the resolved settings,
/// so that a DSN and secrets mounted as files are read first.
pub fn init_logging(settings: &Settings, to: LogTo) {
    let t = &settings.telemetry;
    init(&t.log, t.log_format, init_sentry(settings), to);
}

/// Where log lines go: a server's to stdout, its container's log; a
/// one-shot command's (`backup`, `export`, …) to stderr, beside its
/// progress, so that its stdout is its report alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    Stdout,
    Stderr,
}

/// Logs alone, for a process whose settings do not resolve: it can still
/// say why, in the format asked for.
pub fn init_logging_unresolved(given: &TelemetryArgs, to: LogTo) {
    init(&given.log, given.log_format, None, to);
}

fn init(
    log: &str,
    format: LogFormat,
    sentry: Option<Box<dyn Layer<Registry> + Send + Sync>>,
    to: LogTo,
) {
    let filter = EnvFilter::try_new(log).unwrap_or_else(|e| {
        eprintln!("invalid NOTES_LOG filter {log:?} ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let registry = tracing_subscriber::registry().with(sentry).with(filter);
    let writer = match to {
        LogTo::Stdout => fmt::writer::BoxMakeWriter::new(std::io::stdout),
        LogTo::Stderr => fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .with_writer(writer)
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Text => registry.with(fmt::layer().with_writer(writer)).try_init(),
    };
    // A second init (tests starting several apps) keeps the first subscriber.
    let _ = result;
}

/// The process-wide Prometheus recorder, installed on first use: the
/// `metrics` macros write to one global recorder.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .expect("buckets are non-empty")
                .set_buckets_for_metric(Matcher::Full("job_duration_seconds".into()), JOB_BUCKETS)
                .expect("buckets are non-empty")
                .set_buckets_for_metric(
                    Matcher::Full("webhook_delivery_duration_seconds".into()),
                    DELIVERY_BUCKETS,
                )
                .expect("buckets are non-empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            metrics::gauge!(
                "notes_build_info",
                "version" => crate::VERSION,
                "git_sha" => crate::GIT_SHA
            )
            .set(1.0);
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests by method, route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method and route template"
    );
    describe_counter!(
        "notes_ingested_total",
        "Notes received through /api/v1/ingest"
    );
    describe_counter!(
        "jobs_total",
        "Job attempts finished, by kind and status (succeeded, failed, dead)"
    );
    describe_histogram!(
        "job_duration_seconds",
        Unit::Seconds,
        "Time a job attempt ran, by kind"
    );
    describe_gauge!("jobs_queued", "Jobs waiting to run (queued or failed)");
    describe_gauge!(
        "notes_trashed",
        "Deleted notes waiting in the trash (until restored, emptied or purged)"
    );
    describe_gauge!(
        "notes_build_info",
        "Version and git commit of the running binary"
    );
    describe_counter!(
        "webhook_deliveries_total",
        "Webhook delivery attempts recorded, by outcome (succeeded, failed: no more attempts, retrying)"
    );
    describe_histogram!(
        "webhook_delivery_duration_seconds",
        Unit::Seconds,
        "Time a webhook delivery attempt took, to the receiver's answer or the error"
    );
    describe_counter!(
        "webhooks_disabled_total",
        "Webhooks disabled because their deliveries kept failing (NOTES_WEBHOOK_DISABLE_AFTER)"
    );
    describe_gauge!(
        "changes_streams",
        "Live change streams (/api/v1/changes/stream) this process serves"
    );
    describe_counter!(
        "dataset_swaps_total",
        "Read-only datasets renamed over the served file: swapped in, or rejected (the old one kept serving)"
    );
    describe_gauge!(
        "dataset_swapped_timestamp_seconds",
        "When the last read-only dataset was swapped in (Unix time)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_is_replaced_wherever_it_appears() {
        let mut event = sentry::protocol::Event {
            message: Some("connect to postgres://app:hunter22@db/x failed".into()),
            ..Default::default()
        };
        event.extra.insert(
            "key".into(),
            serde_json::json!(["a", {"b": "the master-key-123456 here"}]),
        );
        let secrets = vec!["hunter22".to_owned(), "master-key-123456".to_owned()];
        let out = scrub(event, &secrets).unwrap();
        let text = serde_json::to_string(&out).unwrap();
        assert!(
            !text.contains("hunter22") && !text.contains("master-key-123456"),
            "{text}"
        );
        assert!(text.contains("<redacted>"));
    }
}
