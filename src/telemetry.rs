//! Logs (tracing, JSON by default) and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{Config, LogFormat};

/// Latency buckets from 1 ms to 10 s: the API answers in milliseconds and the
/// alerting rules read p95 from these.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Jobs run from milliseconds (`add`) to many minutes (`backup`).
const JOB_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

pub fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|e| {
        eprintln!(
            "invalid NOTES_LOG filter {:?} ({e}); using \"info\"",
            config.log
        );
        EnvFilter::new("info")
    });
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Text => registry.with(fmt::layer()).try_init(),
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
        "notes_build_info",
        "Version and git commit of the running binary"
    );
}
