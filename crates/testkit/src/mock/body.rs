//! Response bodies of the mock: recording of chunk hand-over times, cancellation detection, and
//! paced / aborted / stalled streaming.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use super::flavors::Reply;
use super::{Controls, Record, Shared, lock};

/// Drop guard following one response from handler start to the end of its body.
#[derive(Debug)]
pub(crate) struct Track {
    shared: Arc<Shared>,
    rec: Option<Arc<Record>>,
    done: bool,
}

impl Track {
    pub(crate) fn new(shared: Arc<Shared>) -> Track {
        Track { shared, rec: None, done: false }
    }

    pub(crate) fn set_record(&mut self, rec: Arc<Record>) {
        self.rec = Some(rec);
    }

    fn chunk_sent(&self, b: &Bytes) {
        if let Some(rec) = &self.rec {
            lock(&rec.chunks).push(Instant::now());
            lock(&rec.sent).push(b.clone());
        }
    }

    fn complete(&mut self) {
        self.done = true;
        if let Some(rec) = &self.rec {
            rec.completed.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for Track {
    fn drop(&mut self) {
        if !self.done {
            self.shared.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

enum Source {
    Empty,
    Once(Option<Bytes>),
    Chan(mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

/// Response body of a mock (one buffer, or a paced stream fed by a task).
pub struct MockBody {
    src: Source,
    track: Track,
}

impl std::fmt::Debug for MockBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockBody").finish_non_exhaustive()
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        match &mut this.src {
            Source::Empty => {
                this.track.complete();
                Poll::Ready(None)
            }
            Source::Once(slot) => match slot.take() {
                Some(b) => {
                    this.track.chunk_sent(&b);
                    this.track.complete();
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                None => {
                    this.track.complete();
                    Poll::Ready(None)
                }
            },
            Source::Chan(rx) => match rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Ok(b))) => {
                    this.track.chunk_sent(&b);
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                Poll::Ready(Some(Err(e))) => {
                    // A deliberate abort, not a client cancellation.
                    this.track.done = true;
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(None) => {
                    this.track.complete();
                    Poll::Ready(None)
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.src, Source::Empty | Source::Once(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.src {
            Source::Empty | Source::Once(None) => SizeHint::with_exact(0),
            Source::Once(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Source::Chan(_) => SizeHint::default(),
        }
    }
}

/// One piece of a streamed body; `paced` pieces wait the per-token delay first.
#[derive(Clone, Debug)]
pub(crate) struct Chunk {
    pub(crate) bytes: Bytes,
    pub(crate) paced: bool,
}

fn split(b: Bytes, parts: usize) -> Vec<Chunk> {
    if b.is_empty() || parts <= 1 {
        return vec![Chunk { bytes: b, paced: false }];
    }
    let size = b.len().div_ceil(parts).max(1);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let end = (i + size).min(b.len());
        out.push(Chunk { bytes: b.slice(i..end), paced: false });
        i = end;
    }
    out
}

/// Turns a reply into a response, applying pacing, reset and stall controls.
pub(crate) fn respond(reply: Reply, mut track: Track, ctl: Controls) -> Response<MockBody> {
    let (status, content_type, extra, payload) = match reply {
        Reply::Json(status, v, extra) => {
            (status, Some("application/json".to_owned()), extra, Payload::Whole(Bytes::from(v.to_string())))
        }
        Reply::Text(status, t) => {
            (status, Some("text/plain; charset=utf-8".to_owned()), Vec::new(), Payload::Whole(Bytes::from(t)))
        }
        Reply::Empty(status) => (status, None, Vec::new(), Payload::Whole(Bytes::new())),
        Reply::Raw(status, ct, b) => (status, ct, Vec::new(), Payload::Whole(b)),
        Reply::Stream(ct, chunks) => (http::StatusCode::OK, Some(ct.to_owned()), Vec::new(), Payload::Stream(chunks)),
    };
    let controlled = ctl.reset_after.is_some() || ctl.stall_after.is_some();
    let src = match payload {
        Payload::Whole(b) if !controlled => {
            if b.is_empty() {
                track.complete();
                Source::Empty
            } else {
                Source::Once(Some(b))
            }
        }
        Payload::Whole(b) => {
            let n = ctl.reset_after.or(ctl.stall_after).unwrap_or(0);
            stream(split(b, n + 1), ctl)
        }
        Payload::Stream(chunks) => stream(chunks, ctl),
    };
    let mut resp = Response::new(MockBody { src, track });
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Some(ct) = content_type
        && let Ok(v) = HeaderValue::from_str(&ct)
    {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if matches!(resp.body().src, Source::Chan(_)) {
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

enum Payload {
    Whole(Bytes),
    Stream(Vec<Chunk>),
}

fn stream(chunks: Vec<Chunk>, ctl: Controls) -> Source {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let total = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            if ctl.reset_after == Some(i) {
                let _ = tx.send(Err(std::io::Error::other("x-mock-reset-after: aborting response body"))).await;
                return;
            }
            if ctl.stall_after == Some(i) {
                tx.closed().await;
                return;
            }
            // Wait until the previous chunk was taken by hyper, so pacing is measured from it.
            let Ok(permit) = tx.reserve().await else { return };
            if chunk.paced && !ctl.delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(ctl.delay) => {}
                    _ = tx.closed() => return,
                }
            }
            permit.send(Ok(chunk.bytes));
        }
        // Fewer chunks than asked for: still never end cleanly.
        if ctl.reset_after.is_some_and(|n| n >= total) {
            let _ = tx.send(Err(std::io::Error::other("x-mock-reset-after: aborting response body"))).await;
        } else if ctl.stall_after.is_some_and(|n| n >= total) {
            tx.closed().await;
        }
    });
    Source::Chan(rx)
}
