//! Helpers every subject uses: the binary, a free port, a server on it.

use std::process::Command;

/// Fails the test, with the command's stderr, unless it succeeded.
pub fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd` to its end; fails the test unless it succeeded.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert_ok(&out);
    out
}

pub fn notes_api() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notes-api"));
    cmd.env_clear();
    cmd
}

/// Writes `data` at `rel` under `root`, making the folders on the way.
pub fn write(root: &std::path::Path, rel: &str, data: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn serve(data: &std::path::Path, port: u16) -> std::process::Child {
    notes_api()
        .arg("serve")
        .env("NOTES_LISTEN", format!("127.0.0.1:{port}"))
        .env("NOTES_DATA_DIR", data)
        .env("NOTES_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

pub async fn get_json(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

pub async fn wait_up(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(res) = client.get(format!("{base}/readyz")).send().await
            && res.status() == 200
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server never became ready");
}

/// Runs the binary with `args` on a pseudo-terminal (`script`, from
/// util-linux): its stdout and stderr as the terminal showed them, and
/// whether it succeeded. `None` when there is no `script` to run.
pub fn on_a_terminal(args: &[&str], env: &[(&str, &str)]) -> Option<(bool, String)> {
    let probe = Command::new("script").arg("--version").output().ok()?;
    assert!(probe.status.success());
    let command = std::iter::once(env!("CARGO_BIN_EXE_notes-api"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        // As a terminal sets it: without TERM a bar is not drawn.
        .env("TERM", "xterm")
        .env("NOTES_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}
