//! Start, configuration errors, health, metrics and graceful shutdown.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use testkit::{Flavor, GatewayProcess};

use crate::support::*;

#[tokio::test]
async fn health_readiness_and_metrics_on_the_admin_listener() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "");
    assert_eq!(call(get(&format!("{}/healthz", gw.admin_url))).await.0, 200);
    assert_eq!(call(get(&format!("{}/readyz", gw.admin_url))).await.0, 200);
    // The admin routes are not on the data path.
    assert_ne!(call(get(&format!("{}/metrics", gw.data_url))).await.0, 200);
    let url = format!("{}/v1/chat/completions", gw.data_url);
    assert_eq!(call(json_req("POST", &url, &chat("mock-model", false), &[])).await.0, 200);
    assert_eq!(call(json_req("POST", &url, &chat("mock-model", true), &[("x-mock-status", "500")])).await.0, 500);
    let (_, _, text) = call(get(&format!("{}/metrics", gw.admin_url))).await;
    let text = String::from_utf8(text.to_vec()).unwrap();
    for needle in [
        r#"modelgate_requests_total{upstream="up",model="mock-model",action="inference.chat",status="200"} 1"#,
        r#"modelgate_requests_total{upstream="up",model="mock-model",action="inference.chat",status="500"} 1"#,
        // Three went upstream: the two chats and the data path's 404 for /metrics.
        r#"modelgate_gateway_overhead_seconds_count{upstream="up"} 3"#,
        r#"modelgate_upstream_latency_seconds_count{upstream="up",model="mock-model",action="inference.chat",status="200"} 1"#,
        r#"modelgate_open_streams{upstream="up"} 0"#,
        r#"modelgate_requests_total{upstream="up",model="-",action="read.other",status="404"} 1"#,
        r#"modelgate_tokens_total{upstream="up",model="mock-model",direction="output"} 8"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains("client_disconnected"), "completed exchanges counted as disconnects:\n{text}");
}

#[tokio::test]
async fn sigterm_lets_a_running_stream_finish_then_exits() {
    let m = mock(Flavor::OpenAi).await;
    let mut gw = gateway_for(&m, "shutdown_grace = \"20s\"");
    let url = format!("{}/v1/chat/completions", gw.data_url);
    let res = testkit::client::send(json_req(
        "POST",
        &url,
        &chat("m", true),
        &[("x-mock-tokens", "10"), ("x-mock-delay-ms", "100")],
    ))
    .await;
    let mut body = res.into_body();
    let mut got = body.frame().await.unwrap().unwrap().into_data().unwrap().to_vec();
    gw.signal_term();
    // New connections are refused once the listener closes.
    let deadline = Instant::now() + SOON;
    while tokio::net::TcpStream::connect(gw.data).await.is_ok() {
        assert!(Instant::now() < deadline, "the data listener still accepts after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while let Some(f) = body.frame().await {
        got.extend_from_slice(&f.expect("the stream was cut during the grace period").into_data().unwrap_or_default());
    }
    assert!(got.ends_with(b"data: [DONE]\n\n"), "stream did not finish: {}", String::from_utf8_lossy(&got));
    let status = gw.wait_exit(SOON).expect("gateway did not exit after its streams finished");
    assert!(status.success(), "{status:?}\n{}", gw.stderr());
}

#[test]
fn config_errors_name_the_key_and_stop_the_start() {
    let dir = testkit::temp_dir("badcfg");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[[upstreams]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\nflavor = \"vlm\"\nmodels = [\"*\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin()).args(["serve", "--config"]).arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("upstreams[0].flavor") && err.contains("unknown flavor \"vlm\""), "{err}");
}

#[test]
fn init_writes_a_config_once() {
    let dir = testkit::temp_dir("init");
    let run = || std::process::Command::new(bin()).arg("init").current_dir(dir.path()).output().unwrap();
    let first = run();
    assert!(first.status.success(), "{first:?}");
    let text = std::fs::read_to_string(dir.path().join("modelgate.toml")).unwrap();
    assert!(text.contains("[[upstreams]]") && text.contains("# "));
    let second = run();
    assert!(!second.status.success(), "init overwrote an existing config");
}

#[tokio::test]
async fn starts_with_embedded_defaults_and_no_config() {
    // The only test on the default ports 8080/8081.
    let gw = GatewayProcess::start(bin(), None, &[]);
    assert_eq!(gw.data.to_string(), "127.0.0.1:8080");
    assert_eq!(gw.admin.to_string(), "127.0.0.1:8081");
    assert!(gw.dir.join("modelgate-data").is_dir(), "data dir not created");
    assert!(gw.stdout().contains("admin token written to"), "{}", gw.stdout());
    assert!(!gw.stdout().contains(&gw.admin_token()), "the admin token was printed");
    let url = format!("{}/api/chat", gw.data_url);
    let body = serde_json::json!({"model": "llama3", "stream": false});
    // Deny by default: no credential, no call.
    let (status, h, _) = call(json_req("POST", &url, &body, &[])).await;
    assert_eq!(status, 401);
    assert!(h.contains_key("www-authenticate"));
    // A key created on the data dir works at once. Nothing listens on Ollama's port here: the
    // default upstream is tried and reported down.
    let key = gw.create_key("newcomer", &[])["secret"].as_str().unwrap().to_string();
    let auth = format!("Bearer {key}");
    let (status, _, body) = call(json_req("POST", &url, &body, &[("authorization", &auth)])).await;
    assert!(status == 502, "{status} {}\n{}", String::from_utf8_lossy(&body), gw.stderr());
}

#[tokio::test]
async fn sigterm_right_after_start_is_a_clean_stop() {
    let m = mock(Flavor::OpenAi).await;
    let mut gw = gateway_for(&m, "");
    gw.signal_term();
    let status = gw.wait_exit(SOON).expect("gateway did not exit after SIGTERM");
    assert!(status.success(), "{status:?}: the signal was not handled\n{}", gw.stderr());
    gw.wait_stderr("modelgate stopped", SOON);
}
