//! The process's own running totals, for the admin system page: counted
//! where the Prometheus series they mirror are recorded, so the page reads
//! numbers from the process instead of parsing its own `/metrics` text.
//! Process-wide, like the Prometheus recorder.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug)]
pub struct Figures {
    requests: AtomicU64,
    server_errors: AtomicU64,
    refused: AtomicU64,
    jobs_run: AtomicU64,
    datasets_swapped: AtomicU64,
    datasets_rejected: AtomicU64,
}

/// One reading of every total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    /// Answers with a 5xx status.
    pub server_errors: u64,
    /// Requests refused for load (503) or for their rate (429).
    pub refused: u64,
    pub jobs_run: u64,
    pub datasets_swapped: u64,
    pub datasets_rejected: u64,
}

static FIGURES: Figures = Figures::new();

impl Default for Figures {
    fn default() -> Self {
        Self::new()
    }
}

/// This process's totals.
pub fn process() -> &'static Figures {
    &FIGURES
}

impl Figures {
    pub const fn new() -> Self {
        Self {
            requests: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            jobs_run: AtomicU64::new(0),
            datasets_swapped: AtomicU64::new(0),
            datasets_rejected: AtomicU64::new(0),
        }
    }

    /// A request answered with `status` (as `http_requests_total` counts it).
    pub fn answered(&self, status: u16) {
        self.requests.fetch_add(1, Relaxed);
        if status >= 500 {
            self.server_errors.fetch_add(1, Relaxed);
        }
        if matches!(status, 429 | 503) {
            self.refused.fetch_add(1, Relaxed);
        }
    }

    /// A job attempt finished, whatever its outcome (as `jobs_total`).
    pub fn job_run(&self) {
        self.jobs_run.fetch_add(1, Relaxed);
    }

    /// A dataset file was swapped in, or refused (as `dataset_swaps_total`).
    pub fn dataset_swap(&self, swapped: bool) {
        let total = if swapped {
            &self.datasets_swapped
        } else {
            &self.datasets_rejected
        };
        total.fetch_add(1, Relaxed);
    }

    pub fn totals(&self) -> Totals {
        Totals {
            requests: self.requests.load(Relaxed),
            server_errors: self.server_errors.load(Relaxed),
            refused: self.refused.load(Relaxed),
            jobs_run: self.jobs_run.load(Relaxed),
            datasets_swapped: self.datasets_swapped.load(Relaxed),
            datasets_rejected: self.datasets_rejected.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_count_by_class() {
        let f = Figures::new();
        for status in [200, 404, 429, 500, 503] {
            f.answered(status);
        }
        f.job_run();
        f.dataset_swap(true);
        f.dataset_swap(false);
        f.dataset_swap(false);
        assert_eq!(
            f.totals(),
            Totals {
                requests: 5,
                server_errors: 2,
                refused: 2,
                jobs_run: 1,
                datasets_swapped: 1,
                datasets_rejected: 2,
            }
        );
    }
}
