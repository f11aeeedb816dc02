//! Running the real `modelgate` binary in a temporary working directory.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::mock::lock;

/// A unique temporary directory, removed (recursively) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Creates a fresh, unique directory under `std::env::temp_dir()` named after `tag`.
pub fn temp_dir(tag: &str) -> TempDir {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let tag: String = tag.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("modelgate-{tag}-{}-{n}-{nanos:x}", std::process::id()));
        match std::fs::create_dir(&path) {
            Ok(()) => return TempDir { path },
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create temp dir {}: {e}", path.display()),
        }
    }
}

/// Short pause between polls of a condition (never used to wait a fixed time for something).
#[allow(clippy::disallowed_methods)]
pub(crate) fn poll_pause() {
    std::thread::sleep(Duration::from_millis(10));
}

/// A running `modelgate serve` process with its listener addresses; killed on drop.
#[derive(Debug)]
pub struct GatewayProcess {
    /// Data-path listener address.
    pub data: SocketAddr,
    /// Admin listener address.
    pub admin: SocketAddr,
    /// Data-path base URL (`http://` or `https://`).
    pub data_url: String,
    /// Admin base URL.
    pub admin_url: String,
    /// Temporary working directory (the process's cwd).
    pub dir: PathBuf,
    bin: PathBuf,
    config_path: Option<PathBuf>,
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    _tmp: TempDir,
}

fn parse_listener(line: &str, prefix: &str) -> Option<(SocketAddr, String)> {
    let url = line.trim().strip_prefix(prefix)?.trim();
    let hostport = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    let hostport = hostport.trim_end_matches('/');
    Some((hostport.parse().ok()?, url.trim_end_matches('/').to_owned()))
}

impl GatewayProcess {
    /// Starts `bin serve [--config DIR/modelgate.toml] <extra_args>` in a fresh temp dir and waits
    /// up to 30 s for both listener lines; panics with the captured stderr on failure.
    pub fn start(bin: &Path, config: Option<&str>, extra_args: &[&str]) -> GatewayProcess {
        GatewayProcess::start_with_env(bin, config, extra_args, &[])
    }

    /// Like [`GatewayProcess::start`], with extra environment variables for the process.
    pub fn start_with_env(
        bin: &Path,
        config: Option<&str>,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> GatewayProcess {
        let tmp = temp_dir("gw");
        let dir = tmp.path().to_path_buf();
        let mut cmd = Command::new(bin);
        cmd.arg("serve");
        let mut config_path = None;
        if let Some(cfg) = config {
            let path = dir.join("modelgate.toml");
            std::fs::write(&path, cfg).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            cmd.arg("--config").arg(&path);
            config_path = Some(path);
        }
        cmd.args(extra_args)
            .current_dir(&dir)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));

        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let err_buf = stderr.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match err_pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => lock(&err_buf).push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        }));
        let out_pipe = child.stdout.take().expect("piped stdout");
        let out_buf = stdout.clone();
        let (tx, rx) = mpsc::channel::<String>();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                let mut b = lock(&out_buf);
                b.push_str(&line);
                b.push('\n');
                drop(b);
                let _ = tx.send(line);
            }
        }));

        let deadline = Instant::now() + Duration::from_secs(30);
        let mut data = None;
        let mut admin = None;
        let failure = loop {
            if let (Some(_), Some(_)) = (&data, &admin) {
                break None;
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    if let Some(d) = parse_listener(&line, "data listener:") {
                        data = Some(d);
                    } else if let Some(a) = parse_listener(&line, "admin listener:") {
                        admin = Some(a);
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Some("stdout closed before both listener lines were printed".to_owned());
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                break Some(format!("process exited with {status} before both listener lines were printed"));
            }
            if Instant::now() >= deadline {
                break Some("timed out after 30 s waiting for the listener lines".to_owned());
            }
        };
        if let Some(why) = failure {
            let _ = child.kill();
            let _ = child.wait();
            for r in readers {
                let _ = r.join();
            }
            panic!(
                "modelgate ({}) failed to start: {why}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                bin.display(),
                lock(&stdout),
                lock(&stderr)
            );
        }
        let (data, data_url) = data.expect("data listener");
        let (admin, admin_url) = admin.expect("admin listener");
        GatewayProcess {
            data,
            admin,
            data_url,
            admin_url,
            dir,
            bin: bin.to_path_buf(),
            config_path,
            child,
            stderr,
            stdout,
            readers,
            _tmp: tmp,
        }
    }

    /// Runs the same binary as a CLI against this gateway's data dir (cwd and `--config` as the
    /// server's), e.g. `["token", "list"]`.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).current_dir(&self.dir).stdin(Stdio::null());
        if let Some(p) = &self.config_path {
            cmd.arg("--config").arg(p);
        }
        cmd.output().unwrap_or_else(|e| panic!("running {} {args:?}: {e}", self.bin.display()))
    }

    /// Creates a key with `modelgate token create --json` on the data dir; returns its JSON
    /// (`id`, `secret`, ...).
    pub fn create_key(&self, subject: &str, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["token", "create", "--json", "--subject", subject];
        args.extend_from_slice(extra);
        let out = self.cli(&args);
        assert!(out.status.success(), "token create failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("token create printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// The one-time admin token written on first start.
    pub fn admin_token(&self) -> String {
        let path = self.dir.join("modelgate-data").join("admin-token");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())).trim().to_owned()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// Polls until stderr contains `needle`; panics with the stderr so far after `timeout`.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let err = self.stderr();
            if err.contains(needle) {
                return err;
            }
            if Instant::now() >= deadline {
                panic!("stderr did not contain {needle:?} within {timeout:?}:\n{err}");
            }
            poll_pause();
        }
    }

    /// Everything the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        lock(&self.stdout).clone()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (via `kill -TERM PID`).
    pub fn signal_term(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        if let Err(e) = status {
            panic!("kill -TERM {}: {e}", self.child.id());
        }
    }

    /// Sends SIGHUP (via `kill -HUP PID`): the gateway re-reads its config.
    pub fn signal_hup(&self) {
        let status = Command::new("kill").arg("-HUP").arg(self.child.id().to_string()).status();
        if let Err(e) = status {
            panic!("kill -HUP {}: {e}", self.child.id());
        }
    }

    /// Path of the config file the gateway was started with, when it was given one.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Polls until the process exits or `timeout` passes; returns its status if it exited.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            poll_pause();
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // Reader threads end on their own when the pipes close; never block drop on them.
        self.readers.clear();
    }
}
