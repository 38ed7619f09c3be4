//! Servers under test as child processes: started with an exact, recorded
//! command line, optionally pinned to CPUs with `taskset`, polled for
//! readiness, measured through /proc, stopped with SIGTERM.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::client;

#[derive(Clone)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `taskset -c CPUS` prefix.
    pub cpus: Option<String>,
    pub addr: String,
    pub log: PathBuf,
}

impl Spec {
    /// The command as a person would type it.
    pub fn command_line(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = &self.cpus {
            parts.push(format!("taskset -c {c}"));
        }
        if !self.env.is_empty() {
            parts.push("env".into());
            for (k, v) in &self.env {
                parts.push(format!("{k}={v}"));
            }
        }
        parts.push(self.program.display().to_string());
        parts.extend(self.args.iter().cloned());
        parts.join(" ")
    }

    fn command(&self) -> Command {
        let mut cmd = match &self.cpus {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(c).arg(&self.program);
                cmd
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn spawn(&self) -> Result<Server> {
        if let Ok(r) = client::get(&self.addr, "/healthz", Duration::from_millis(200)) {
            bail!(
                "{} already answers ({}); stop whatever listens there",
                self.addr,
                r.status
            );
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", self.command_line()))?;
        Ok(Server {
            child: Some(child),
            spawned: Instant::now(),
            addr: self.addr.clone(),
            log: self.log.clone(),
        })
    }
}

pub struct Server {
    child: Option<Child>,
    pub spawned: Instant,
    pub addr: String,
    log: PathBuf,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Polls `path` every `every` until it answers 200; returns the time
    /// from spawn to that answer.
    pub fn wait_ready(&mut self, path: &str, every: Duration, limit: Duration) -> Result<Duration> {
        loop {
            if let Ok(r) = client::get(&self.addr, path, Duration::from_secs(2))
                && r.status == 200
            {
                return Ok(self.spawned.elapsed());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "server exited with {status} before it was ready; log: {}",
                    self.log.display()
                );
            }
            if self.spawned.elapsed() > limit {
                bail!(
                    "server not ready after {limit:?}; log: {}",
                    self.log.display()
                );
            }
            std::thread::sleep(every);
        }
    }

    /// A `/proc/PID/status` field in kB (VmRSS, VmHWM, ...).
    pub fn status_kb(&self, field: &str) -> Result<u64> {
        status_kb(self.pid(), field)
    }

    /// SIGTERM, then wait (SIGKILL after 30 s).
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                bail!("server ignored SIGTERM for 30 s; killed");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

pub fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// CPU time of a process so far, all its threads' (those that ended
/// too): user + system, in clock ticks (see [`ticks_per_sec`]).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 0, utime 11, stime 12 (clock ticks).
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

/// Removes a data directory and everything in it, then recreates it empty.
pub fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir)?;
    Ok(())
}

/// Polls `VmRSS` of a process on a thread until stopped: the peak of a
/// window (an upload, a download) rather than since start (`VmHWM`).
pub struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, usize)>>,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        use std::sync::{Arc, atomic::AtomicBool, atomic::Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut peak, mut samples) = (0u64, 0usize);
            loop {
                if let Ok(kb) = status_kb(pid, "VmRSS") {
                    peak = peak.max(kb);
                    samples += 1;
                }
                if flag.load(Ordering::Relaxed) {
                    return (peak, samples);
                }
                std::thread::sleep(every);
            }
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// The peak VmRSS seen (kB) and the number of samples.
    pub fn stop(mut self) -> (u64, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or((0, 0))
    }
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_tcp(addr: &str, limit: Duration) -> Result<()> {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if start.elapsed() > limit {
            bail!("nothing listens on {addr} after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
