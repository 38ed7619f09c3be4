//! Percentiles and medians.

use std::time::Duration;

use serde_json::{Value, json};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn latency_summary(samples: &mut [Duration]) -> Value {
    samples.sort_unstable();
    let mean = if samples.is_empty() {
        0.0
    } else {
        samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64
    };
    json!({
        "p50_ms": ms(percentile(samples, 50.0)),
        "p90_ms": ms(percentile(samples, 90.0)),
        "p99_ms": ms(percentile(samples, 99.0)),
        "max_ms": samples.last().map(|d| ms(*d)).unwrap_or(0.0),
        "mean_ms": mean,
    })
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
