//! `modelgate-mock`: a standalone mock model server for Python tests and benchmarks.
//!
//! `modelgate-mock --flavor openai --listen 127.0.0.1:0 [--models a,b] [--delay-ms N]
//! [--fixed-body-bytes N]` prints `listening http://ADDR` once bound and runs until killed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use modelgate_testkit as testkit;
use testkit::{Flavor, MockOptions, MockServer};

const USAGE: &str = "usage: modelgate-mock --flavor openai|vllm|ollama|llamacpp|tgi|triton \
--listen ADDR [--models a,b] [--delay-ms N] [--fixed-body-bytes N]";

fn fail(msg: &str) -> ! {
    eprintln!("modelgate-mock: {msg}\n{USAGE}");
    std::process::exit(2);
}

fn main() {
    let mut flavor = None;
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut models: Option<Vec<String>> = None;
    let mut delay_ms = 0u64;
    let mut fixed: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if key == "--help" || key == "-h" {
            println!("{USAGE}");
            return;
        }
        let value = inline.or_else(|| args.next()).unwrap_or_else(|| fail(&format!("{key} needs a value")));
        match key.as_str() {
            "--flavor" => {
                flavor = Some(Flavor::from_name(&value).unwrap_or_else(|| fail(&format!("unknown flavor {value}"))))
            }
            "--listen" => listen = value.parse().unwrap_or_else(|e| fail(&format!("bad --listen {value}: {e}"))),
            "--models" => {
                models = Some(value.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned).collect())
            }
            "--delay-ms" => delay_ms = value.parse().unwrap_or_else(|e| fail(&format!("bad --delay-ms: {e}"))),
            "--fixed-body-bytes" => {
                fixed = Some(value.parse().unwrap_or_else(|e| fail(&format!("bad --fixed-body-bytes: {e}"))))
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let flavor = flavor.unwrap_or_else(|| fail("--flavor is required"));
    let mut opts = MockOptions::new(flavor).with_delay(Duration::from_millis(delay_ms));
    if let Some(models) = models {
        opts.models = models;
    }
    if let Some(n) = fixed {
        opts.fixed_body = Some(testkit::mock::fixed_chat_body(n));
    }
    let rt = if fixed.is_some() {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
    }
    .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    rt.block_on(async move {
        let server = MockServer::start_on(opts, listen).await.unwrap_or_else(|e| fail(&format!("bind {listen}: {e}")));
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening {}", server.url());
        let _ = out.flush();
        drop(out);
        std::future::pending::<()>().await;
    });
}
