//! `modelgate-bare-proxy`: the floor of modelgate's HTTP stack, for benchmarks only.
//!
//! `modelgate-bare-proxy --listen ADDR --upstream HOST:PORT [--spin-us N] [--touch-kib K]
//! [--timers 1]` prints `listening http://ADDR` once bound and relays every HTTP/1.1 request to
//! the upstream unchanged, bodies streamed, on the same hyper 1 server and client and the same
//! single-threaded tokio runtime as `modelgate serve`, and nothing else: no routing, no
//! credential, no classification, no audit. Each client connection gets its own keep-alive
//! upstream connection, opened on its first request, so there is no pool either. What it costs
//! per request is what any gateway built on this stack pays before doing any work of its own
//! (BENCHMARKS.md section 1.1). `--spin-us N` burns N µs of CPU per request
//! before forwarding it, standing in for a gateway's own work: it shows what the rest of the
//! stack (the kernel's side of the relay) costs at that gateway's request rate. `--touch-kib K`
//! writes K KiB per request, round-robin through a 64 MiB buffer, standing in for a gateway's
//! memory traffic (recorded bodies, page cache copies): it shows what cache pressure costs the
//! kernel's side of the relay. `--timers 1` arms the timers the gateway arms per request (hyper's
//! header read timeout and a deadline around the upstream call).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;

use http::Request;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Body = UnsyncBoxBody<Bytes, hyper::Error>;

fn fail(msg: &str) -> ! {
    eprintln!(
        "modelgate-bare-proxy: {msg}\nusage: modelgate-bare-proxy --listen ADDR --upstream HOST:PORT \
         [--spin-us N] [--touch-kib K] [--timers 1]"
    );
    std::process::exit(2);
}

fn main() {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut upstream: Option<SocketAddr> = None;
    let mut spin = std::time::Duration::ZERO;
    let mut touch = 0usize;
    let mut timers = false;
    let mut args = std::env::args().skip(1);
    while let Some(key) = args.next() {
        let value = args.next().unwrap_or_else(|| fail(&format!("{key} needs a value")));
        match key.as_str() {
            "--listen" => listen = value.parse().unwrap_or_else(|e| fail(&format!("bad --listen: {e}"))),
            "--upstream" => {
                let v = value.trim_start_matches("http://");
                upstream = Some(v.parse().unwrap_or_else(|e| fail(&format!("bad --upstream: {e}"))))
            }
            "--spin-us" => {
                spin = std::time::Duration::from_micros(
                    value.parse().unwrap_or_else(|e| fail(&format!("bad --spin-us: {e}"))),
                )
            }
            "--timers" => timers = value == "1",
            "--touch-kib" => touch = value.parse().unwrap_or_else(|e| fail(&format!("bad --touch-kib: {e}"))),
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let upstream = upstream.unwrap_or_else(|| fail("--upstream is required"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(listen).await.unwrap();
        println!("listening http://{}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::task::spawn_local(connection(stream, upstream, spin, touch, timers));
        }
    });
}

async fn connection(stream: TcpStream, upstream: SocketAddr, spin: std::time::Duration, touch: usize, timers: bool) {
    let sender: Rc<RefCell<Option<SendRequest<Body>>>> = Rc::default();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let sender = sender.clone();
        if touch > 0 {
            thrash(touch * 1024);
        }
        if !spin.is_zero() {
            let start = std::time::Instant::now();
            while start.elapsed() < spin {
                std::hint::spin_loop();
            }
        }
        async move {
            if timers {
                let by = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
                match tokio::time::timeout_at(by, forward(req, &sender, upstream)).await {
                    Ok(r) => r,
                    Err(_) => Ok(bad_gateway()),
                }
            } else {
                forward(req, &sender, upstream).await
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    if timers {
        builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(std::time::Duration::from_secs(30));
    }
    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
}

async fn forward(
    req: Request<Incoming>,
    slot: &RefCell<Option<SendRequest<Body>>>,
    upstream: SocketAddr,
) -> Result<hyper::Response<Body>, hyper::Error> {
    let kept = slot.borrow_mut().take();
    let mut sender = match kept {
        Some(s) if s.is_ready() => s,
        _ => match open(upstream).await {
            Some(s) => s,
            None => return Ok(bad_gateway()),
        },
    };
    let (parts, body) = req.into_parts();
    let res = sender.send_request(Request::from_parts(parts, body.boxed_unsync())).await;
    *slot.borrow_mut() = Some(sender);
    match res {
        Ok(res) => Ok(res.map(|b| b.boxed_unsync())),
        Err(_) => Ok(bad_gateway()),
    }
}

async fn open(upstream: SocketAddr) -> Option<SendRequest<Body>> {
    let stream = TcpStream::connect(upstream).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::task::spawn_local(conn);
    Some(sender)
}

fn bad_gateway() -> hyper::Response<Body> {
    let mut res =
        hyper::Response::new(Full::new(Bytes::from_static(b"bad gateway\n")).map_err(|e| match e {}).boxed_unsync());
    *res.status_mut() = http::StatusCode::BAD_GATEWAY;
    res
}

const THRASH_BYTES: usize = 64 << 20;

thread_local! {
    static THRASH: RefCell<(Vec<u8>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

/// Writes `n` bytes of a 64 MiB buffer, continuing where the last call stopped.
fn thrash(n: usize) {
    THRASH.with(|t| {
        let (buf, at) = &mut *t.borrow_mut();
        if buf.is_empty() {
            buf.resize(THRASH_BYTES, 1);
        }
        for _ in 0..n / 64 {
            buf[*at] = buf[*at].wrapping_add(1);
            *at = (*at + 64) % THRASH_BYTES;
        }
    });
}
