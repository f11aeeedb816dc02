//! Tests of the process helpers: the `modelgate-mock` binary and `GatewayProcess` (against a
//! stand-in shell script that prints the listener lines like the real binary).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use modelgate_testkit as testkit;
use serde_json::json;
use testkit::client::{self, post_json, read_json, send};
use testkit::{GatewayProcess, temp_dir};

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_mock(args: &[&str]) -> (KillOnDrop, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelgate-mock"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("bad line {line:?}")).to_owned();
    (KillOnDrop(child), url)
}

#[tokio::test]
async fn mock_binary_serves_a_flavor() {
    let (_child, url) = spawn_mock(&["--flavor", "ollama", "--listen", "127.0.0.1:0", "--models", "a,b"]);
    assert!(url.starts_with("http://127.0.0.1:"));
    let (_, v) = read_json(send(client::get(&format!("{url}/api/tags"))).await).await;
    assert_eq!(v["models"][1]["name"], "b");
}

#[tokio::test]
async fn mock_binary_fixed_body() {
    let (_child, url) = spawn_mock(&["--flavor=openai", "--listen", "127.0.0.1:0", "--fixed-body-bytes", "4096"]);
    let resp = send(post_json(&format!("{url}/v1/chat/completions"), &json!({"model": "zz"}))).await;
    let body = client::read_body(resp.into_body()).await;
    assert!((4000..=4200).contains(&body.len()), "{}", body.len());
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
}

fn script(dir: &testkit::TempDir, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-modelgate");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn gateway_process_reads_listener_lines() {
    let bin_dir = temp_dir("fake-bin");
    let bin = script(
        &bin_dir,
        // The trap comes before the listener lines: SIGTERM may follow them at once.
        r#"trap 'echo got term >&2; exit 0' TERM
echo "args: $*" >&2
pwd >&2
test -f modelgate.toml && echo "config present" >&2
echo "data listener: http://127.0.0.1:4101"
echo "admin listener: http://127.0.0.1:4102"
while true; do sleep 0.05; done"#,
    );
    let mut gw = GatewayProcess::start(&bin, Some("[server]\n"), &["--x", "y"]);
    assert_eq!(gw.data.port(), 4101);
    assert_eq!(gw.admin_url, "http://127.0.0.1:4102");
    assert!(gw.dir.join("modelgate.toml").is_file());
    let dir = gw.dir.clone();
    gw.signal_term();
    let status = gw.wait_exit(Duration::from_secs(10)).expect("exited after SIGTERM");
    assert!(status.success());
    // stderr is drained by a thread: poll for it.
    let err = gw.wait_stderr("got term", Duration::from_secs(5));
    assert!(err.contains("args: serve --config"), "{err}");
    assert!(err.contains("--x y"), "{err}");
    assert!(err.contains("config present"), "{err}");
    drop(gw);
    assert!(!dir.exists(), "temp dir not removed");
}

#[test]
fn gateway_process_start_failure_reports_stderr() {
    let bin_dir = temp_dir("fake-bin");
    let bin = script(&bin_dir, "echo 'fatal: bad config at server.listen' >&2\nexit 3");
    let err = std::panic::catch_unwind(|| GatewayProcess::start(&bin, None, &[])).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("fatal: bad config at server.listen"), "{msg}");
}

#[test]
fn gateway_process_kill9() {
    let bin_dir = temp_dir("fake-bin");
    let bin = script(
        &bin_dir,
        "echo 'data listener: https://127.0.0.1:4201'\necho 'admin listener: http://127.0.0.1:4202'\nexec sleep 1000",
    );
    let mut gw = GatewayProcess::start(&bin, None, &[]);
    assert_eq!(gw.data_url, "https://127.0.0.1:4201");
    assert!(gw.wait_exit(Duration::from_millis(50)).is_none());
    gw.kill9();
    assert!(gw.wait_exit(Duration::from_secs(5)).is_some());
    let mut n = 0;
    testkit::wait_for("counter", Duration::from_secs(1), || {
        n += 1;
        n > 3
    });
}
