//! The pool against a scripted raw-TCP upstream: reuse, return after a streamed body,
//! cancellation, dead connections, retries and connect timeouts.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::*;

const SOON: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// How the test upstream answers one request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// `200` with a two-byte body; the connection stays open.
    Full,
    /// The same, then the upstream closes the connection (no `Connection: close`).
    FullThenClose,
    /// Head and a first chunk; the rest once the test notifies.
    Chunked,
    /// Head and a first chunk, then nothing until the client goes away.
    Stall,
    /// Reads the request and closes the connection without answering.
    Close,
    /// Reads the request and never answers.
    Silent,
}

#[derive(Default)]
struct Stats {
    accepted: AtomicUsize,
    requests: AtomicUsize,
    /// Connections the client closed (EOF seen by the upstream).
    client_closed: AtomicUsize,
    heads: Mutex<Vec<String>>,
}

struct TestUpstream {
    addr: SocketAddr,
    stats: Arc<Stats>,
    /// Lets `Answer::Chunked` finish its body.
    go_on: Arc<Notify>,
}

impl TestUpstream {
    /// Answers requests in the order of `script`, then with `Answer::Full`.
    async fn start(script: &[Answer]) -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let go_on = Arc::new(Notify::new());
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (s, g) = (stats.clone(), go_on.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                s.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, script.clone(), s.clone(), g.clone()));
            }
        });
        TestUpstream { addr, stats, go_on }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }

    fn client_closed(&self) -> usize {
        self.stats.client_closed.load(Ordering::SeqCst)
    }
}

async fn serve(mut s: TcpStream, script: Arc<Mutex<VecDeque<Answer>>>, stats: Arc<Stats>, go_on: Arc<Notify>) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_request(&mut s, &mut buf).await else {
            stats.client_closed.fetch_add(1, Ordering::SeqCst);
            return;
        };
        stats.heads.lock().unwrap().push(head);
        let answer = script.lock().unwrap().pop_front().unwrap_or(Answer::Full);
        stats.requests.fetch_add(1, Ordering::SeqCst);
        const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n";
        match answer {
            Answer::Full | Answer::FullThenClose => {
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
                if matches!(answer, Answer::FullThenClose) {
                    return;
                }
            }
            Answer::Chunked => {
                s.write_all(CHUNKED).await.unwrap();
                go_on.notified().await;
                s.write_all(b"2\r\ncd\r\n0\r\n\r\n").await.unwrap();
            }
            Answer::Stall | Answer::Silent => {
                if matches!(answer, Answer::Stall) {
                    s.write_all(CHUNKED).await.unwrap();
                }
                let mut rest = [0u8; 64];
                while s.read(&mut rest).await.is_ok_and(|n| n > 0) {}
                stats.client_closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Answer::Close => return,
        }
    }
}

/// One request's head (the body, by `content-length`, is read and dropped); `None` at EOF.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    while buf.len() < end + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..end + len);
    Some(head)
}

fn client() -> UpstreamClient {
    super::super::client(CONNECT_TIMEOUT).unwrap()
}

fn post(url: &str) -> Request<UpstreamBody> {
    let body = Full::new(Bytes::from_static(b"{\"model\":\"m\"}")).map_err(|never| match never {}).boxed_unsync();
    let mut req = Request::new(body);
    *req.method_mut() = Method::POST;
    *req.uri_mut() = url.parse().unwrap();
    req
}

fn idle(client: &UpstreamClient, url: &str) -> usize {
    client.host(&url.parse().unwrap()).unwrap().idle_len()
}

/// Polls `cond` until it holds, failing after `SOON`.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + SOON;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn body_of(res: Response<Incoming>) -> Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn keep_alive_reuses_one_connection_and_sends_origin_form_with_host() {
    let up = TestUpstream::start(&[]).await;
    let c = client();
    let url = up.url("/v1/chat/completions?x=1");
    for _ in 0..3 {
        let res = c.request(post(&url)).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(body_of(res).await, "ok");
        eventually("the connection is idle again", || idle(&c, &url) == 1).await;
    }
    assert_eq!((up.accepted(), up.requests()), (1, 3));
    let head = up.stats.heads.lock().unwrap()[0].clone();
    assert!(head.starts_with("POST /v1/chat/completions?x=1 HTTP/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("host: {}\r\n", up.addr)), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_then_reuse() {
    let up = TestUpstream::start(&[]).await;
    let c = client();
    let url = up.url("/v1/chat/completions");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (c, url) = (c.clone(), url.clone());
        tasks.spawn(async move { body_of(c.request(post(&url)).await.unwrap()).await });
    }
    while let Some(body) = tasks.join_next().await {
        assert_eq!(body.unwrap(), "ok");
    }
    let opened = up.accepted();
    assert!((1..=16).contains(&opened), "{opened}");
    eventually("all connections are idle again", || idle(&c, &url) == opened).await;
    for _ in 0..8 {
        assert_eq!(body_of(c.request(post(&url)).await.unwrap()).await, "ok");
    }
    assert_eq!((up.accepted(), up.requests()), (opened, 24));
}

#[tokio::test]
async fn a_streamed_response_returns_its_connection_when_the_body_ends() {
    let up = TestUpstream::start(&[Answer::Chunked]).await;
    let c = client();
    let url = up.url("/v1/chat/completions");
    let mut body = c.request(post(&url)).await.unwrap().into_body();
    assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "ab");
    assert_eq!(idle(&c, &url), 0, "a connection mid-body was pooled");
    up.go_on.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "cd");
    eventually("the connection task pools the connection", || idle(&c, &url) == 1).await;
    assert_eq!(body_of(c.request(post(&url)).await.unwrap()).await, "ok");
    assert_eq!((up.accepted(), up.requests()), (1, 2));
}

#[tokio::test]
async fn a_body_dropped_half_read_closes_the_connection() {
    let up = TestUpstream::start(&[Answer::Stall]).await;
    let c = client();
    let url = up.url("/v1/chat/completions");
    let mut body = c.request(post(&url)).await.unwrap().into_body();
    assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "ab");
    drop(body);
    eventually("the upstream sees the connection closed", || up.client_closed() == 1).await;
    assert_eq!(idle(&c, &url), 0);
    assert_eq!(body_of(c.request(post(&url)).await.unwrap()).await, "ok");
    assert_eq!(up.accepted(), 2, "the half-read connection was reused");
}

#[tokio::test]
async fn a_request_dropped_before_its_head_closes_the_connection() {
    let up = TestUpstream::start(&[Answer::Silent]).await;
    let c = client();
    let url = up.url("/v1/chat/completions");
    assert!(tokio::time::timeout(Duration::from_millis(100), c.request(post(&url))).await.is_err());
    eventually("the upstream sees the connection closed", || up.client_closed() == 1).await;
    assert_eq!(idle(&c, &url), 0);
    assert_eq!(body_of(c.request(post(&url)).await.unwrap()).await, "ok");
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_not_reused() {
    let up = TestUpstream::start(&[Answer::FullThenClose]).await;
    let c = client();
    let url = up.url("/v1/chat/completions");
    assert_eq!(body_of(c.request(post(&url)).await.unwrap()).await, "ok");
    assert_eq!(body_of(c.request(post(&url)).await.unwrap()).await, "ok");
    assert_eq!((up.accepted(), up.requests()), (2, 2));
}

#[tokio::test]
async fn an_unsent_request_on_a_dead_pooled_connection_is_retried_on_a_fresh_one() {
    let up = TestUpstream::start(&[]).await;
    let c = client();
    let url = up.url("/v1/chat/completions");
    // A pooled connection whose dispatcher has stopped: it says it is ready, but whatever is
    // queued on it is handed back unsent when it goes away.
    let io = MaybeHttpsStream::Http(TokioIo::new(TcpStream::connect(up.addr).await.unwrap()));
    let (tx, mut conn) = http1::handshake::<_, UpstreamBody>(io).await.unwrap();
    std::future::poll_fn(|cx| {
        let _ = Pin::new(&mut conn).poll(cx);
        Poll::Ready(())
    })
    .await;
    assert!(tx.is_ready());
    let host = c.host(&url.parse().unwrap()).unwrap();
    host.push_idle(Pooled { tx, link: Arc::new(Link::default()) });
    let (res, ()) = tokio::join!(c.request(post(&url)), async {
        tokio::task::yield_now().await;
        drop(conn);
    });
    assert_eq!(body_of(res.unwrap()).await, "ok");
    assert_eq!((up.accepted(), up.requests()), (2, 1));
}

#[tokio::test]
async fn a_request_written_on_a_pooled_connection_is_not_retried() {
    let up = TestUpstream::start(&[Answer::Full, Answer::Close]).await;
    let c = client();
    let url = up.url("/v1/chat/completions");
    assert_eq!(body_of(c.request(post(&url)).await.unwrap()).await, "ok");
    eventually("the connection is idle again", || idle(&c, &url) == 1).await;
    let err = c.request(post(&url)).await.unwrap_err();
    assert!(matches!(err, RequestError::Http(_)), "{err:?}");
    assert_eq!((up.accepted(), up.requests()), (1, 2));
}

#[tokio::test]
async fn a_refused_connect_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = client().request(post(&format!("http://127.0.0.1:{port}/"))).await.unwrap_err();
    assert!(matches!(err, RequestError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn the_connect_timeout_covers_the_tls_handshake() {
    // Accepts and never answers the ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        loop {
            kept.push(listener.accept().await.unwrap().0);
        }
    });
    let started = tokio::time::Instant::now();
    let err = client().request(post(&format!("https://{addr}/"))).await.unwrap_err();
    assert!(matches!(err, RequestError::ConnectTimeout(d) if d == CONNECT_TIMEOUT), "{err:?}");
    let took = started.elapsed();
    assert!(took >= CONNECT_TIMEOUT && took < SOON, "{took:?}");
    held.abort();
}

#[test]
fn host_headers_and_request_targets() {
    let host = |s: &str, https| Host::new(https, &s.parse().unwrap()).unwrap();
    assert_eq!(host("example.com:443", true).host_header, "example.com");
    assert_eq!(host("example.com:443", false).host_header, "example.com:443");
    assert_eq!(host("example.com:80", false).host_header, "example.com");
    assert_eq!(host("[::1]:8080", false).host_header, "[::1]:8080");
    assert_eq!(host("models.internal", true).host_header, "models.internal");

    let h = host("up:8000", false);
    let target = |method: Method, uri: &str| {
        let mut req = post(uri);
        *req.method_mut() = method;
        h.prepare(&mut req);
        (req.uri().to_string(), req.headers()[header::HOST].clone(), req.version())
    };
    assert_eq!(
        target(Method::POST, "http://up:8000/base/v1/x?a=b"),
        ("/base/v1/x?a=b".into(), "up:8000".parse().unwrap(), Version::HTTP_11)
    );
    assert_eq!(target(Method::GET, "http://up:8000").0, "/");
    assert_eq!(target(Method::CONNECT, "http://up:8000/").0, "up:8000");
}
