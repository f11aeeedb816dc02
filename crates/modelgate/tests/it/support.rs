//! Shared setup: configs, starting the binary next to mocks, small request helpers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use testkit::{Flavor, GatewayProcess, MockOptions, MockServer};

/// Generous bound for anything that should happen "soon".
pub const SOON: Duration = Duration::from_secs(10);

/// The binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_modelgate"))
}

/// One `[[upstreams]]` table.
pub fn upstream(name: &str, url: &str, flavor: &str, models: &[&str], extra: &str) -> String {
    let models: Vec<String> = models.iter().map(|m| format!("\"{m}\"")).collect();
    format!(
        "[[upstreams]]\nname = \"{name}\"\nurl = \"{url}\"\nflavor = \"{flavor}\"\nmodels = [{}]\n{extra}\n",
        models.join(", ")
    )
}

/// Lets every authenticated caller do every action: for tests about proxying, not policy.
pub const ALLOW_ALL: &str = "[[access]]\nid = \"test-allow-all\"\nactions = [\"*\", \"model\", \"adapter\", \"server\", \"data\", \"unknown\"]\n";

/// A config on ephemeral ports with extra `[server]` lines and upstream tables; every caller
/// may do everything unless the upstream text brings its own `[[access]]` rules.
pub fn config(server_extra: &str, upstreams: &str) -> String {
    let access = if upstreams.contains("[[access]]") { "" } else { ALLOW_ALL };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{server_extra}\n\n{upstreams}\n{access}"
    )
}

/// Starts a mock of `flavor` serving `mock-model`.
pub async fn mock(flavor: Flavor) -> MockServer {
    MockServer::start(MockOptions::new(flavor).with_models(&["mock-model", "mock-embed"])).await
}

/// Starts the gateway with one upstream (`up`, models `*`) in front of `mock`.
pub fn gateway_for(mock: &MockServer, server_extra: &str) -> GatewayProcess {
    let up = upstream("up", &mock.url(), mock.flavor().name(), &["*"], "");
    start(&config(server_extra, &up))
}

/// Keys of running test gateways, by data-path port: requests built here carry the key of the
/// gateway they are sent to unless they name their own credential.
fn keys() -> &'static Mutex<HashMap<u16, String>> {
    static KEYS: OnceLock<Mutex<HashMap<u16, String>>> = OnceLock::new();
    KEYS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Starts a gateway on `config` and issues it a test key (subject `tester`, group `users`).
pub fn start(config: &str) -> GatewayProcess {
    let gw = GatewayProcess::start(bin(), Some(config), &[]);
    let key = gw.create_key("tester", &[]);
    keys().lock().unwrap().insert(gw.data.port(), key["secret"].as_str().unwrap().to_string());
    gw
}

/// The test key of the gateway listening on `url`'s port.
pub fn key_for(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    keys().lock().unwrap().get(&uri.port_u16()?).cloned()
}

/// A request with a JSON body and optional extra headers.
pub fn json_req(method: &str, url: &str, body: &Value, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(url).header("content-type", "application/json");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        && let Some(key) = key_for(url)
    {
        b = b.header("authorization", format!("Bearer {key}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap()))).unwrap()
}

/// A bodiless request (with the gateway's test key, when it is a test gateway's data path).
pub fn get(url: &str) -> Request<Full<Bytes>> {
    let mut b = Request::builder().uri(url);
    if let Some(key) = key_for(url) {
        b = b.header("authorization", format!("Bearer {key}"));
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

/// Sends and collects: status, headers, body.
pub async fn call(req: Request<Full<Bytes>>) -> (u16, http::HeaderMap, Bytes) {
    let res = testkit::client::send(req).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    (status, headers, body)
}

/// Parses a SPEC section 8 error body and returns its code.
pub fn error_code(body: &[u8]) -> String {
    let v: Value =
        serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    assert!(v["error"]["message"].is_string(), "no message in {v}");
    assert!(v["error"]["type"].is_string(), "no type in {v}");
    assert!(v["error"]["request_id"].is_string(), "no request_id in {v}");
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

/// A chat request body for `model`.
pub fn chat(model: &str, stream: bool) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hello there gateway"}], "stream": stream})
}

/// Splits a relayed stream at its closing `event: error` frame: the text before it, and the
/// frame's error code and JSON.
pub fn stream_error(text: &str) -> (&str, String, &str) {
    let (before, event) =
        text.split_once("event: error\ndata: ").unwrap_or_else(|| panic!("no error event in {text:?}"));
    let event = event.trim_end();
    (before, error_code(event.as_bytes()), event)
}

/// Every audit event in a data dir, in chain order, as stored (the canonical JSON plus `hash`).
pub fn audit_events(data_dir: &Path) -> Vec<Value> {
    let db = data_dir.join("audit.db");
    let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    conn.busy_timeout(SOON).unwrap();
    let mut st = conn.prepare("SELECT canonical, hex(hash) FROM events ORDER BY seq").unwrap();
    st.query_map([], |r| {
        let bytes: Vec<u8> = r.get(0)?;
        let hash: String = r.get(1)?;
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v["hash"] = Value::String(hash.to_lowercase());
        Ok(v)
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The events of one exchange (by `request_id`).
pub fn exchange_events(data_dir: &Path, request_id: &str) -> Vec<Value> {
    audit_events(data_dir).into_iter().filter(|e| e["request_id"] == request_id).collect()
}

/// Polls until `f` returns `Some`, or panics after [`SOON`] with `what`.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + SOON;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
        poll_pause();
    }
}

/// A short pause between polls.
#[allow(clippy::disallowed_methods)]
fn poll_pause() {
    std::thread::sleep(Duration::from_millis(20));
}

/// The content stored under a `content:<id>` reference: the decompressed body and the timing.
pub fn stored_content(data_dir: &Path, reference: &str) -> (Vec<u8>, Option<String>) {
    let id: i64 = reference.strip_prefix("content:").unwrap().parse().unwrap();
    let conn =
        rusqlite::Connection::open_with_flags(data_dir.join("audit.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let (codec, data, timing): (String, Vec<u8>, Option<String>) = conn
        .query_row("SELECT codec, data, timing FROM content WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(codec, "lz4");
    let size = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
    let body = lz4_decompress(&data[4..], size);
    (body, timing)
}

/// A minimal LZ4 block decoder (the test reads the store without the audit crate's code).
fn lz4_decompress(input: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    let mut i = 0;
    while i < input.len() {
        let token = input[i];
        i += 1;
        let mut lit = (token >> 4) as usize;
        if lit == 15 {
            loop {
                let b = input[i];
                i += 1;
                lit += b as usize;
                if b != 255 {
                    break;
                }
            }
        }
        out.extend_from_slice(&input[i..i + lit]);
        i += lit;
        if i >= input.len() {
            break;
        }
        let offset = u16::from_le_bytes([input[i], input[i + 1]]) as usize;
        i += 2;
        let mut len = (token & 15) as usize;
        if len == 15 {
            loop {
                let b = input[i];
                i += 1;
                len += b as usize;
                if b != 255 {
                    break;
                }
            }
        }
        len += 4;
        let start = out.len() - offset;
        for k in 0..len {
            let b = out[start + k];
            out.push(b);
        }
    }
    assert_eq!(out.len(), size);
    out
}
