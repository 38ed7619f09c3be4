//! Records the git commit in the binary (`/version`, `notes_build_info`).
//! Container builds have no .git, so they pass NOTES_GIT_SHA instead.

use std::{path::Path, process::Command};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=NOTES_GIT_SHA");
    // HEAD names a branch, and a commit moves the branch, not HEAD: watch
    // both, wherever git keeps them (`.git` is a file in a worktree). The
    // branch may live only in packed-refs until a commit writes it loose,
    // so also watch HEAD's reflog, which every commit, checkout and reset
    // appends to. A path that does not exist would rerun this every build.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = ["HEAD", "logs/HEAD", "packed-refs"];
    for name in watched.into_iter().chain(branch.as_deref()) {
        if let Some(path) = git(&["rev-parse", "--git-path", name])
            && Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let sha = std::env::var("NOTES_GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=NOTES_GIT_SHA={sha}");
}
