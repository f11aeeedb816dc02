//! The streaming relay: the upstream's response body, forwarded frame by frame as it arrives.
//!
//! Architecture invariant: nothing here waits for more than the frame in hand. A data frame is
//! handed to the caller as soon as the upstream's arrives; only the usage observer may hold back a
//! partial SSE event, and only when it must drop the usage chunk the gateway asked for. The one
//! other hold is `strict` durability's: the frame that ends the response (or the end of a chunked
//! body) waits until the completion record is durable.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use protocols::{Framing, ResponseObserver, Usage};
use tokio::time::{Sleep, sleep_until};

use audit::{Durability, Entry, Outcome as AuditOutcome, Recording, Ticket};

use crate::error::GatewayError;
use crate::metrics::{ExchangeLabels, Metrics};
use crate::record::{Exchange, Recorder, RouteAudit, completion_event};

/// How an exchange ended (SPEC section 4, `end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The whole response reached the caller.
    Completed,
    /// The caller went away first.
    ClientDisconnected,
    /// The upstream failed mid-response.
    UpstreamError,
    /// A timeout cut the response.
    Timeout,
}

impl End {
    /// The SPEC name.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::ClientDisconnected => "client_disconnected",
            End::UpstreamError => "upstream_error",
            End::Timeout => "timeout",
        }
    }
}

/// What the relay learned about an exchange by the time it ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How it ended.
    pub end: End,
    /// Response body bytes sent to the caller.
    pub bytes_out: u64,
    /// Usage figures, when the flavor reports them.
    pub usage: Usage,
    /// Time from the request's arrival to the first body byte to the caller.
    pub ttft: Option<Duration>,
    /// Whole exchange duration.
    pub duration: Duration,
}

/// Where an exchange's completion record goes, and the response recording on its way there.
pub(crate) struct CompletionSink {
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) route: RouteAudit,
    pub(crate) exchange: Exchange,
    pub(crate) status: u16,
    pub(crate) output: Option<Recording>,
    /// Masking counts per direction (`masking` of the completion), when masking applied.
    pub(crate) masking: Option<serde_json::Value>,
}

impl CompletionSink {
    /// Sends the completion record; under `strict` with the response intact, returns the ticket
    /// the final byte waits on.
    fn send(self, o: &Outcome, error: Option<&'static str>) -> Option<Ticket> {
        let outcome = match (o.end, self.status) {
            (End::Completed, s) if s < 400 => AuditOutcome::Success,
            _ => AuditOutcome::Failure,
        };
        let mut e = completion_event(self.exchange, outcome);
        e.status_code = Some(self.status);
        e.end = Some(o.end.as_str().to_string());
        e.reason = error.map(str::to_string);
        e.latency_ms = Some(o.duration.as_millis() as u64);
        e.ttft_ms = o.ttft.map(|d| d.as_millis() as u64);
        e.bytes_out = Some(o.bytes_out);
        let g = e.gen_ai.get_or_insert_with(Default::default);
        g.usage_input_tokens = o.usage.input_tokens;
        g.usage_output_tokens = o.usage.output_tokens;
        g.response_finish_reasons = o.usage.finish_reasons.clone();
        g.response_model = o.usage.response_model.clone();
        if self.masking.is_some() {
            e.masking = self.masking;
        }
        let entry = Entry { event: e, input: None, output: self.output };
        if self.route.durability == Durability::Strict && o.end == End::Completed {
            let audit = self.recorder.audit();
            return Some(audit.submit_waiting_or(entry, AuditOutcome::Error, "audit_unavailable"));
        }
        self.recorder.later(self.route, entry);
        None
    }
}

/// Runs once when an exchange's response is over, however it ended (side effects outlive the
/// client: a dropped body still reports `client_disconnected`).
pub(crate) struct Finisher {
    metrics: Arc<Metrics>,
    labels: ExchangeLabels,
    start: Instant,
    request_id: Arc<str>,
    sink: Option<CompletionSink>,
    done: bool,
}

impl Finisher {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        labels: ExchangeLabels,
        start: Instant,
        request_id: Arc<str>,
        sink: Option<CompletionSink>,
    ) -> Self {
        metrics.open_streams(&labels.upstream, 1);
        Finisher { metrics, labels, start, request_id, sink, done: false }
    }

    /// Attaches the exchange's masking counts to its completion record.
    fn set_masking(&mut self, counts: &masking::Counts) {
        if let Some(s) = self.sink.as_mut() {
            s.masking = serde_json::to_value(counts).ok();
        }
    }

    /// Records a chunk as the recording stores it (the masked form when masking applies).
    fn record(&mut self, chunk: &Bytes) {
        if let Some(r) = self.sink.as_mut().and_then(|s| s.output.as_mut()) {
            r.push(chunk, Some(self.start.elapsed().as_millis() as u64));
        }
    }

    fn finish(
        &mut self,
        end: End,
        bytes_out: u64,
        usage: Usage,
        ttft: Option<Duration>,
        error: Option<&'static str>,
    ) -> Option<Ticket> {
        if std::mem::replace(&mut self.done, true) {
            return None;
        }
        let m = &self.metrics;
        m.open_streams(&self.labels.upstream, -1);
        let duration = self.start.elapsed();
        m.duration(&self.labels, duration);
        m.tokens(&self.labels, usage.input_tokens, usage.output_tokens);
        if let Some(code) = error {
            m.error(&self.labels.upstream, &self.labels.model, self.labels.action, code);
        }
        let outcome = Outcome { end, bytes_out, usage, ttft, duration };
        let ticket = self.sink.take().and_then(|s| s.send(&outcome, error));
        tracing::debug!(
            request_id = &*self.request_id,
            upstream = &*self.labels.upstream.0,
            action = self.labels.action,
            status = self.labels.status,
            end = outcome.end.as_str(),
            bytes_out = outcome.bytes_out,
            input_tokens = outcome.usage.input_tokens,
            output_tokens = outcome.usage.output_tokens,
            ttft_ms = outcome.ttft.map(|d| d.as_millis() as u64),
            duration_ms = outcome.duration.as_millis() as u64,
            "exchange finished"
        );
        ticket
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.finish(End::ClientDisconnected, 0, Usage::default(), None, Some("client_disconnected"));
        }
    }
}

/// How a response is relayed.
#[derive(Clone, Copy, Debug)]
pub struct RelayOptions {
    /// Longest silence between two frames.
    pub idle: Duration,
    /// End of the whole exchange.
    pub deadline: tokio::time::Instant,
    /// The response's framing (for the error frame of a failing stream).
    pub framing: Framing,
    /// Whether the observer may change the bytes (so the length is not known).
    pub rewrites: bool,
    /// `strict`: hold the frame that carries the stream's end marker (`data: [DONE]`, Ollama's
    /// `"done":true`, ...) until the completion record is durable, not just the body's end.
    pub hold_end_marker: bool,
}

pin_project! {
    /// The response body relayed to the caller.
    pub struct RelayBody {
        #[pin]
        inner: Incoming,
        first: Option<Frame<Bytes>>,
        observer: Option<ResponseObserver>,
        // Masking of the response: what the caller gets and what is recorded.
        masker: Option<masking::StreamMasker>,
        framing: Framing,
        rewrites: bool,
        hold_end_marker: bool,
        #[pin]
        idle: Sleep,
        #[pin]
        deadline: Sleep,
        idle_for: Duration,
        request_id: Arc<str>,
        upstream: Arc<str>,
        start: Instant,
        ttft: Option<Duration>,
        bytes_out: u64,
        abort: Option<GatewayError>,
        flushed: bool,
        done: bool,
        // `strict`: the last frame (or the end) held until the completion record is durable.
        hold: Option<(Ticket, Option<Frame<Bytes>>)>,
        finisher: Finisher,
    }
}

impl RelayBody {
    /// Wraps an upstream body whose first frame was already read.
    pub(crate) fn new(
        inner: Incoming,
        first: Option<Frame<Bytes>>,
        observer: Option<ResponseObserver>,
        masker: Option<masking::StreamMasker>,
        opts: RelayOptions,
        upstream: Arc<str>,
        finisher: Finisher,
    ) -> RelayBody {
        let now = tokio::time::Instant::now();
        let done = first.is_none() && inner.is_end_stream();
        let mut finisher = finisher;
        let mut hold = None;
        if done {
            // An empty body: the completion is written now; under `strict` the end waits for it.
            hold = finisher.finish(End::Completed, 0, Usage::default(), None, None).map(|t| (t, None));
        }
        RelayBody {
            inner,
            first,
            observer,
            rewrites: opts.rewrites || masker.is_some(),
            masker,
            hold_end_marker: opts.hold_end_marker,
            framing: opts.framing,
            idle: sleep_until(now + opts.idle),
            deadline: sleep_until(opts.deadline),
            idle_for: opts.idle,
            request_id: finisher.request_id.clone(),
            upstream,
            start: finisher.start,
            ttft: None,
            bytes_out: 0,
            abort: None,
            flushed: false,
            done,
            hold,
            finisher,
        }
    }
}

impl RelayBody {
    fn finish(self: Pin<&mut Self>, end: End, error: Option<&'static str>) -> Option<Ticket> {
        let this = self.project();
        if let Some(m) = this.masker.as_ref() {
            this.finisher.set_masking(&m.counts());
        }
        let usage = this.observer.as_ref().map(|o| o.usage().clone()).unwrap_or_default();
        this.finisher.finish(end, *this.bytes_out, usage, *this.ttft, error)
    }

    /// Ends the stream with an error: a last frame in the stream's framing, then a body error so
    /// the caller's connection shows the response as incomplete.
    fn fail(mut self: Pin<&mut Self>, err: GatewayError, end: End) -> Poll<Option<Result<Frame<Bytes>, GatewayError>>> {
        tracing::warn!(request_id = &*self.request_id, upstream = &*self.upstream, code = err.code, "{}", err.message);
        let _ = self.as_mut().finish(end, Some(err.code));
        let this = self.project();
        *this.done = true;
        match err.stream_frame(*this.framing, this.request_id) {
            Some(frame) => {
                *this.abort = Some(err);
                Poll::Ready(Some(Ok(Frame::data(frame))))
            }
            None => Poll::Ready(Some(Err(err))),
        }
    }
}

/// Masks one relayed chunk (and, at the end, flushes what the masker held back). A failure is
/// fail-closed: the stream ends with an error frame, never with unmasked text.
fn mask_chunk(m: &mut masking::StreamMasker, chunk: &[u8], end: bool) -> Result<masking::Masked, GatewayError> {
    let fail = |e: masking::MaskError| GatewayError::masking_failed(format!("masking the response failed: {e}"));
    let mut out = if chunk.is_empty() {
        masking::Masked { caller: Bytes::new(), record: Bytes::new() }
    } else {
        m.push(chunk).map_err(fail)?
    };
    if end {
        let tail = m.finish().map_err(fail)?;
        if !tail.caller.is_empty() {
            out.caller = Bytes::from([&out.caller[..], &tail.caller[..]].concat());
        }
        if !tail.record.is_empty() {
            out.record = Bytes::from([&out.record[..], &tail.record[..]].concat());
        }
    }
    Ok(out)
}

impl Body for RelayBody {
    type Data = Bytes;
    type Error = GatewayError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        loop {
            let mut this = self.as_mut().project();
            if this.abort.is_some() {
                // Yield once so the connection flushes the error frame before it is aborted.
                if !std::mem::replace(this.flushed, true) {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                return Poll::Ready(this.abort.take().map(Err));
            }
            if let Some((ticket, _)) = this.hold.as_mut() {
                let durable = ready!(Pin::new(ticket).poll(cx));
                let held = this.hold.take().and_then(|(_, frame)| frame);
                if durable.is_ok() {
                    return Poll::Ready(held.map(Ok));
                }
                // The record of this answer could be lost: the caller must not hold it whole.
                // The stream ends with an error frame and breaks off instead of ending.
                tracing::error!(request_id = &**this.request_id, "completion record not durable; response cut");
                *this.done = true;
                return match GatewayError::audit_unavailable().stream_frame(*this.framing, this.request_id) {
                    Some(frame) => {
                        *this.abort = Some(GatewayError::audit_unavailable());
                        Poll::Ready(Some(Ok(Frame::data(frame))))
                    }
                    None => Poll::Ready(Some(Err(GatewayError::audit_unavailable()))),
                };
            }
            if *this.done {
                return Poll::Ready(None);
            }
            let polled = match this.first.take() {
                Some(frame) => Poll::Ready(Some(Ok(frame))),
                None => this.inner.as_mut().poll_frame(cx),
            };
            match polled {
                Poll::Ready(Some(Ok(frame))) => {
                    let frame = match frame.into_data() {
                        Ok(data) => {
                            let mut out = match this.observer.as_mut() {
                                Some(o) => o.feed(data),
                                None => data,
                            };
                            // With a known length the connection stops polling once it has
                            // every byte, so the end is recognised here, not at `None`.
                            let ended = this.first.is_none() && this.inner.is_end_stream();
                            if ended {
                                if let Some(tail) = this.observer.as_mut().map(|o| o.finish()).filter(|t| !t.is_empty())
                                {
                                    out =
                                        if out.is_empty() { tail } else { Bytes::from([&out[..], &tail[..]].concat()) };
                                }
                                *this.done = true;
                            }
                            let (out, record) = match this.masker.as_mut().map(|m| mask_chunk(m, &out, ended)) {
                                None => (out, None),
                                Some(Ok(m)) => (m.caller, Some(m.record)),
                                Some(Err(e)) => return self.fail(e, End::UpstreamError),
                            };
                            let now = tokio::time::Instant::now();
                            this.idle.reset(now + *this.idle_for);
                            if !out.is_empty() {
                                if this.ttft.is_none() {
                                    *this.ttft = Some(this.start.elapsed());
                                }
                                *this.bytes_out += out.len() as u64;
                            }
                            match &record {
                                Some(r) if !r.is_empty() => this.finisher.record(r),
                                Some(_) => {}
                                None if !out.is_empty() => this.finisher.record(&out),
                                None => {}
                            }
                            // The answer is whole at the body's end or, for streams, at the API's end
                            // marker: under `strict` that frame waits for the completion record.
                            let whole = ended
                                || (*this.hold_end_marker
                                    && !out.is_empty()
                                    && protocols::ends_answer(*this.framing, &out));
                            if whole && let Some(ticket) = self.as_mut().finish(End::Completed, None) {
                                let frame = (!out.is_empty()).then(|| Frame::data(out));
                                *self.as_mut().project().hold = Some((ticket, frame));
                                continue;
                            }
                            if out.is_empty() {
                                continue;
                            }
                            Frame::data(out)
                        }
                        Err(trailers) => trailers,
                    };
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(e))) => {
                    let err = GatewayError::upstream_unavailable(format!(
                        "upstream \"{}\" broke off the response: {e}",
                        this.upstream
                    ));
                    return self.fail(err, End::UpstreamError);
                }
                Poll::Ready(None) => {
                    let tail = this.observer.as_mut().map(|o| o.finish()).unwrap_or_default();
                    let (tail, record) = match this.masker.as_mut().map(|m| mask_chunk(m, &tail, true)) {
                        None => (tail.clone(), tail),
                        Some(Ok(m)) => (m.caller, m.record),
                        Some(Err(e)) => return self.fail(e, End::UpstreamError),
                    };
                    *this.done = true;
                    *this.bytes_out += tail.len() as u64;
                    if this.ttft.is_none() && !tail.is_empty() {
                        *this.ttft = Some(this.start.elapsed());
                    }
                    if !record.is_empty() {
                        this.finisher.record(&record);
                    }
                    let frame = (!tail.is_empty()).then(|| Frame::data(tail));
                    if let Some(ticket) = self.as_mut().finish(End::Completed, None) {
                        *self.as_mut().project().hold = Some((ticket, frame));
                        continue;
                    }
                    return Poll::Ready(frame.map(Ok));
                }
                Poll::Pending => {
                    if this.deadline.poll(cx).is_ready() {
                        let err = GatewayError::upstream_timeout("the exchange exceeded request_timeout");
                        return self.fail(err, End::Timeout);
                    }
                    ready!(this.idle.poll(cx));
                    let err = GatewayError::upstream_timeout(format!(
                        "upstream \"{}\" sent nothing for {:?} (idle_timeout)",
                        this.upstream, this.idle_for
                    ));
                    return self.fail(err, End::Timeout);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.abort.is_none() && self.hold.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.rewrites {
            return SizeHint::default();
        }
        let first = self.first.as_ref().and_then(|f| f.data_ref()).map_or(0, |d| d.len() as u64);
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + first);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + first);
        }
        hint
    }
}
