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

/// A config on ephemeral ports with extra `[server]` lines and upstream tables.
pub fn config(server_extra: &str, upstreams: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{server_extra}\n\n{upstreams}")
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
