//! Records the git commit in the binary (`/version`, `notes_build_info`).
//! Container builds have no .git, so they pass NOTES_GIT_SHA instead.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=NOTES_GIT_SHA");
    println!("cargo:rerun-if-changed=.git/HEAD");
    let sha = std::env::var("NOTES_GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=NOTES_GIT_SHA={sha}");
}
