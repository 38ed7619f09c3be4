//! The command line's view of a [`Progress`]: a bar per stage with its
//! count, rate and time left (`indicatif`) when stderr is a terminal, else
//! log lines ([`LogLines`]). Never on stdout, which holds the command's
//! report.

use std::{io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::{sync::oneshot, task::JoinHandle};

use super::{LogLines, Progress, Snapshot, Unit};

/// How often the watcher looks: a bar redraws at most this often.
const LOOK_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bar,
    /// A line every so often.
    Log(Duration),
}

impl Mode {
    /// A bar for a person at a terminal; else lines for a log, `every` apart.
    pub fn detect(every: Duration) -> Self {
        if std::io::stderr().is_terminal() {
            Self::Bar
        } else {
            Self::Log(every)
        }
    }
}

/// A progress being shown, until [`Shown::finish`].
pub struct Shown {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Starts showing `progress` on a task of the current runtime.
pub fn show(progress: &Progress, mode: Mode) -> Shown {
    let (stop, mut stopped) = oneshot::channel();
    let progress = progress.clone();
    let task = tokio::spawn(async move {
        let mut view = View::new(mode);
        loop {
            view.look(&progress);
            tokio::select! {
                _ = &mut stopped => break,
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
        }
        view.finish(&progress);
    });
    Shown { stop, task }
}

impl Shown {
    /// Shows where the work ended, and stops.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

enum View {
    Bar {
        bar: Option<ProgressBar>,
        stage: u64,
        /// Whether the bar's style has a total: a total that appears
        /// after the stage began (an import counts its files first)
        /// turns the count into a bar.
        with_total: bool,
    },
    Log(LogLines),
}

impl View {
    fn new(mode: Mode) -> Self {
        match mode {
            Mode::Bar => Self::Bar {
                bar: None,
                stage: 0,
                with_total: false,
            },
            Mode::Log(every) => Self::Log(LogLines::new(every)),
        }
    }

    fn look(&mut self, progress: &Progress) {
        match self {
            Self::Log(lines) => lines.tick(progress),
            Self::Bar {
                bar,
                stage,
                with_total,
            } => {
                let s = progress.snapshot();
                if s.stage_number == 0 {
                    return;
                }
                if *stage != s.stage_number {
                    // A stage's bar stays on screen, finished, above the next.
                    if let Some(old) = bar.take() {
                        old.finish();
                    }
                    *stage = s.stage_number;
                    *with_total = s.total.is_some();
                    *bar = Some(new_bar(&s));
                }
                if let Some(bar) = bar {
                    if *with_total != s.total.is_some() {
                        *with_total = s.total.is_some();
                        bar.set_style(style(&s));
                    }
                    if bar.length() != s.total {
                        match s.total {
                            Some(total) => bar.set_length(total),
                            None => bar.unset_length(),
                        }
                    }
                    if bar.position() != s.done {
                        bar.set_position(s.done);
                    }
                }
            }
        }
    }

    fn finish(&mut self, progress: &Progress) {
        self.look(progress);
        match self {
            Self::Log(lines) => lines.finish(progress),
            Self::Bar { bar, .. } => {
                if let Some(bar) = bar.take() {
                    bar.finish();
                }
            }
        }
    }
}

fn new_bar(s: &Snapshot) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(s.total, ProgressDrawTarget::stderr())
        .with_style(style(s))
        .with_prefix(s.task)
        .with_message(s.stage);
    bar.set_position(s.done);
    bar
}

/// A bar with the count, the rate and the time left; without a total, a
/// count and a rate.
fn style(s: &Snapshot) -> ProgressStyle {
    let (count, total, rate) = match s.unit {
        Unit::Items(name) => (
            format!("{{human_pos}} {name}"),
            format!("{{human_pos}}/{{human_len}} {name}"),
            "{per_sec}",
        ),
        Unit::Bytes => (
            "{binary_bytes}".to_owned(),
            "{binary_bytes}/{binary_total_bytes}".to_owned(),
            "{binary_bytes_per_sec}",
        ),
    };
    let template = match s.total {
        Some(_) => {
            format!("{{prefix}}: {{msg}} [{{bar:30}}] {total} ({{percent}}%), {rate}, {{eta}} left")
        }
        None => format!("{{prefix}}: {{msg}} {{spinner}} {count}, {rate}"),
    };
    ProgressStyle::with_template(&template)
        .expect("the templates are valid")
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_unit_and_total_makes_a_bar() {
        // The templates are parsed when a bar is made: each shape once.
        for (unit, total) in [
            (Unit::Items("notes"), Some(3)),
            (Unit::Items("records"), None),
            (Unit::Bytes, Some(1 << 20)),
            (Unit::Bytes, None),
        ] {
            let p = Progress::new("test");
            p.stage("stage", unit, total);
            p.add(1);
            let bar = new_bar(&p.snapshot());
            assert_eq!(bar.position(), 1);
            assert_eq!(bar.length(), total);
        }
    }

    #[tokio::test]
    async fn a_shown_progress_stops_when_finished() {
        let p = Progress::new("test");
        p.stage("notes", Unit::Items("notes"), Some(2));
        let shown = show(&p, Mode::Log(Duration::ZERO));
        p.add(2);
        tokio::time::timeout(Duration::from_secs(5), shown.finish())
            .await
            .expect("finish returns");
    }
}
