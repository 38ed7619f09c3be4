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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn percentile_of_nothing_is_zero() {
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }

    #[test]
    fn percentile_of_one_sample_is_that_sample() {
        let one = ms_list(&[7]);
        for p in [0.0, 1.0, 50.0, 99.0, 100.0] {
            assert_eq!(percentile(&one, p), Duration::from_millis(7), "p{p}");
        }
    }

    #[test]
    fn percentile_is_nearest_rank() {
        // 1..=10 ms: the p-th percentile is the ceil(p/100 * 10)-th sample.
        let s = ms_list(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let at = |p| percentile(&s, p).as_millis();
        assert_eq!(at(50.0), 5);
        assert_eq!(at(51.0), 6); // ceil(5.1) = 6
        assert_eq!(at(90.0), 9);
        assert_eq!(at(99.0), 10); // ceil(9.9) = 10
        assert_eq!(at(100.0), 10);
        // Rank 0 is clamped to the first sample.
        assert_eq!(at(0.0), 1);
        // Out of range is clamped to the last one.
        assert_eq!(at(150.0), 10);
    }

    #[test]
    fn percentile_with_ties() {
        let s = ms_list(&[1, 2, 2, 2, 3]);
        assert_eq!(percentile(&s, 20.0), Duration::from_millis(1)); // rank 1
        assert_eq!(percentile(&s, 21.0), Duration::from_millis(2)); // rank 2
        assert_eq!(percentile(&s, 50.0), Duration::from_millis(2)); // rank 3
        assert_eq!(percentile(&s, 80.0), Duration::from_millis(2)); // rank 4
        assert_eq!(percentile(&s, 81.0), Duration::from_millis(3)); // rank 5
        let same = ms_list(&[4, 4, 4, 4]);
        for p in [0.0, 25.0, 50.0, 99.0, 100.0] {
            assert_eq!(percentile(&same, p), Duration::from_millis(4));
        }
    }

    #[test]
    fn latency_summary_of_nothing_is_zeros() {
        let v = latency_summary(&mut []);
        for k in ["p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"] {
            assert_eq!(v[k].as_f64(), Some(0.0), "{k}");
        }
    }

    #[test]
    fn latency_summary_of_one_sample() {
        let v = latency_summary(&mut ms_list(&[12]));
        for k in ["p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"] {
            assert!(close(v[k].as_f64().unwrap(), 12.0), "{k}: {}", v[k]);
        }
    }

    #[test]
    fn latency_summary_sorts_and_averages() {
        // Unsorted on purpose: the summary sorts the samples in place.
        let mut s = ms_list(&[40, 10, 30, 20]);
        let v = latency_summary(&mut s);
        assert_eq!(s, ms_list(&[10, 20, 30, 40]));
        let g = |k: &str| v[k].as_f64().unwrap();
        assert!(close(g("p50_ms"), 20.0)); // rank ceil(2.0) = 2
        assert!(close(g("p90_ms"), 40.0)); // rank ceil(3.6) = 4
        assert!(close(g("p99_ms"), 40.0));
        assert!(close(g("max_ms"), 40.0));
        assert!(close(g("mean_ms"), 25.0)); // (10 + 20 + 30 + 40) / 4
    }

    #[test]
    fn latency_summary_sub_millisecond() {
        let mut s = vec![Duration::from_micros(500), Duration::from_micros(1500)];
        let v = latency_summary(&mut s);
        assert!(close(v["p50_ms"].as_f64().unwrap(), 0.5));
        assert!(close(v["max_ms"].as_f64().unwrap(), 1.5));
        assert!(close(v["mean_ms"].as_f64().unwrap(), 1.0));
    }

    #[test]
    fn median_of_nothing_is_nan() {
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn median_of_one_is_itself() {
        assert_eq!(median(&[3.5]), 3.5);
    }

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        // Even count: the mean of the two middle values.
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[10.0, 20.0]), 15.0);
        assert_eq!(median(&[-1.0, -3.0]), -2.0);
    }

    #[test]
    fn median_with_ties() {
        assert_eq!(median(&[5.0, 5.0, 1.0]), 5.0);
        assert_eq!(median(&[2.0, 2.0, 2.0, 2.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 2.0, 9.0]), 2.0);
    }

    #[test]
    fn median_does_not_reorder_its_input() {
        let v = [3.0, 1.0, 2.0];
        median(&v);
        assert_eq!(v, [3.0, 1.0, 2.0]);
    }
}
