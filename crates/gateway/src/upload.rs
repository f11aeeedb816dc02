//! Request bodies: bounded buffering of small JSON bodies, and unbuffered, size-capped relaying
//! of uploads.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use crate::error::GatewayError;
use crate::upstream::BodyError;

/// Reads a whole request body of at most `limit` bytes (413 past it).
pub async fn read_bounded(body: Incoming, limit: u64) -> Result<Bytes, GatewayError> {
    match http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::too_large(limit)),
        Err(e) => Err(GatewayError::malformed(format!("could not read the request body: {e}"))),
    }
}

/// The error a capped upload ends with when it grows past its limit.
#[derive(Debug, thiserror::Error)]
#[error("upload exceeds the limit of {0} bytes")]
pub struct UploadTooLarge(pub u64);

pin_project! {
    /// An upload relayed upstream frame by frame, cut off with an error past `limit` bytes.
    pub struct CappedUpload {
        #[pin]
        inner: Incoming,
        seen: u64,
        limit: u64,
        exceeded: Arc<AtomicBool>,
    }
}

impl CappedUpload {
    /// Wraps `inner`; `exceeded` is set if the cap is hit, so the caller gets 413.
    pub fn new(inner: Incoming, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        CappedUpload { inner, seen: 0, limit, exceeded }
    }
}

impl Body for CappedUpload {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    *this.seen += d.len() as u64;
                    if *this.seen > *this.limit {
                        this.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(UploadTooLarge(*this.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
