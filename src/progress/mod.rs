//! How far a long piece of work has got: export, import, backup, restore,
//! `dataset pack`, an index build.
//!
//! The work counts into a [`Progress`] (atomics, so counting costs nothing
//! when nobody watches) in stages, each with its unit and, when known, its
//! total. Whoever started it chooses how to show it: the command line draws
//! a bar on a terminal and logs a line every few seconds otherwise
//! ([`display`]); a server logs lines ([`LogLines`]).

pub mod display;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// What a stage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Things, named in the plural: `"notes"`, `"records"`, `"lines"`.
    Items(&'static str),
    Bytes,
}

/// A handle to one piece of work's progress; clones count into the same.
#[derive(Debug, Clone)]
pub struct Progress {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    task: &'static str,
    done: AtomicU64,
    /// `u64::MAX` while unknown.
    total: AtomicU64,
    stage: Mutex<Stage>,
}

#[derive(Debug, Clone)]
struct Stage {
    name: &'static str,
    unit: Unit,
    started: Instant,
    /// Counts stage changes, so a watcher sees one even between two looks.
    number: u64,
}

/// Progress as it stood at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub task: &'static str,
    pub stage: &'static str,
    pub stage_number: u64,
    pub unit: Unit,
    pub done: u64,
    pub total: Option<u64>,
    /// Since the stage began.
    pub elapsed: Duration,
}

impl Progress {
    /// `task` names the work in every line shown: `"export"`, `"backup"`.
    pub fn new(task: &'static str) -> Self {
        Self {
            shared: Arc::new(Shared {
                task,
                done: AtomicU64::new(0),
                total: AtomicU64::new(u64::MAX),
                stage: Mutex::new(Stage {
                    name: "starting",
                    unit: Unit::Items("items"),
                    started: Instant::now(),
                    number: 0,
                }),
            }),
        }
    }

    /// Starts counting `unit` from zero, towards `total` when it is known.
    pub fn stage(&self, name: &'static str, unit: Unit, total: Option<u64>) {
        let mut stage = self.shared.stage.lock().expect("not poisoned");
        self.shared.done.store(0, Ordering::Relaxed);
        self.shared
            .total
            .store(total.unwrap_or(u64::MAX), Ordering::Relaxed);
        *stage = Stage {
            name,
            unit,
            started: Instant::now(),
            number: stage.number + 1,
        };
    }

    pub fn add(&self, n: u64) {
        self.shared.done.fetch_add(n, Ordering::Relaxed);
    }

    /// For work that keeps its own count (an import's report).
    pub fn set(&self, done: u64, total: Option<u64>) {
        self.shared.done.store(done, Ordering::Relaxed);
        self.shared
            .total
            .store(total.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let stage = self.shared.stage.lock().expect("not poisoned").clone();
        let total = self.shared.total.load(Ordering::Relaxed);
        Snapshot {
            task: self.shared.task,
            stage: stage.name,
            stage_number: stage.number,
            unit: stage.unit,
            done: self.shared.done.load(Ordering::Relaxed),
            total: (total != u64::MAX).then_some(total),
            elapsed: stage.started.elapsed(),
        }
    }
}

impl Snapshot {
    /// Per second, over the stage so far.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(0.001)
    }

    /// At the stage's rate so far; none without a total or a rate.
    pub fn eta(&self) -> Option<Duration> {
        let left = self.total?.saturating_sub(self.done);
        let rate = self.rate();
        (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate))
    }

    /// One line for a log: `export: notes 1200/5000 (24%), 840 notes/s,
    /// about 5 s left`.
    pub fn line(&self) -> String {
        let count = |n: u64| match self.unit {
            Unit::Items(_) => n.to_string(),
            Unit::Bytes => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
        };
        let unit = match self.unit {
            Unit::Items(name) => name,
            Unit::Bytes => "bytes",
        };
        let mut line = format!("{}: {} {}", self.task, self.stage, count(self.done));
        if let Some(total) = self.total {
            let percent = if total == 0 {
                100.0
            } else {
                self.done as f64 * 100.0 / total as f64
            };
            line.push_str(&format!("/{} ({percent:.0}%)", count(total)));
        }
        match self.unit {
            Unit::Items(_) => line.push_str(&format!(", {:.0} {unit}/s", self.rate())),
            Unit::Bytes => {
                line.push_str(&format!(", {:.1} MiB/s", self.rate() / (1024.0 * 1024.0)))
            }
        }
        if let Some(eta) = self.eta() {
            line.push_str(&format!(", about {} s left", eta.as_secs()));
        }
        line
    }
}

/// Logs a progress line every `every` while work goes on, and one where it
/// ended if it logged any (work quicker than that says nothing but its
/// result): for a process whose output is a log, not a terminal, or a
/// thread with no runtime to spawn a watcher on (the index writer).
#[derive(Debug)]
pub struct LogLines {
    every: Duration,
    last: Option<Instant>,
    logged: bool,
}

impl LogLines {
    /// `every` zero logs at every look, the first included.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            logged: false,
        }
    }

    /// Logs `progress` if `every` has passed since the last line (or the
    /// first look).
    pub fn tick(&mut self, progress: &Progress) {
        if self.due(Instant::now()) {
            self.logged = true;
            Self::log(&progress.snapshot());
        }
    }

    /// Logs where the work ended, if a line was logged before.
    pub fn finish(&mut self, progress: &Progress) {
        if self.logged {
            Self::log(&progress.snapshot());
        }
    }

    /// Whether a line is due at `now`; if so, the next is counted from it.
    fn due(&mut self, now: Instant) -> bool {
        let due = match self.last {
            Some(at) => now.duration_since(at) >= self.every,
            None => self.every.is_zero(),
        };
        if due || self.last.is_none() {
            self.last = Some(now);
        }
        due
    }

    fn log(s: &Snapshot) {
        tracing::info!(
            task = s.task,
            stage = s.stage,
            done = s.done,
            total = s.total,
            "{}",
            s.line()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_counts_from_zero_towards_its_total() {
        let p = Progress::new("export");
        p.stage("notes", Unit::Items("notes"), Some(10));
        p.add(3);
        p.clone().add(1);
        let s = p.snapshot();
        assert_eq!((s.stage, s.done, s.total), ("notes", 4, Some(10)));
        assert!(
            s.line().starts_with("export: notes 4/10 (40%), "),
            "{}",
            s.line()
        );
        p.stage("attachments", Unit::Bytes, None);
        let s = p.snapshot();
        assert_eq!((s.done, s.total, s.stage_number), (0, None, 2));
        assert_eq!(s.eta(), None);
    }

    #[test]
    fn a_log_line_comes_every_interval_from_the_first_look() {
        let mut lines = LogLines::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!lines.due(at(0)), "quick work logs nothing");
        assert!(!lines.due(at(4)));
        assert!(lines.due(at(5)), "5 s after the first look");
        assert!(!lines.due(at(6)));
        assert!(!lines.due(at(9)));
        assert!(lines.due(at(10)));
        let mut every_look = LogLines::new(Duration::ZERO);
        assert!(every_look.due(at(0)));
        assert!(every_look.due(at(0)));
    }

    #[test]
    fn the_time_left_follows_the_rate() {
        let s = Snapshot {
            task: "t",
            stage: "s",
            stage_number: 1,
            unit: Unit::Items("notes"),
            done: 100,
            total: Some(400),
            elapsed: Duration::from_secs(10),
        };
        assert_eq!(s.rate(), 10.0);
        assert_eq!(s.eta(), Some(Duration::from_secs(30)));
        assert!(
            s.line().ends_with("10 notes/s, about 30 s left"),
            "{}",
            s.line()
        );
        let bytes = Snapshot {
            unit: Unit::Bytes,
            done: 3 * 1024 * 1024,
            total: Some(6 * 1024 * 1024),
            ..s
        };
        assert!(
            bytes
                .line()
                .starts_with("t: s 3.0 MiB/6.0 MiB (50%), 0.3 MiB/s"),
            "{}",
            bytes.line()
        );
    }
}
