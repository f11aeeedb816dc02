//! Prometheus metrics of the data path, served by the admin listener.
//!
//! Labels are bounded: upstream names come from the config, actions from a closed set, and model
//! names are interned up to [`MAX_MODEL_LABELS`] distinct values, past which they read `other`, so
//! that callers cannot grow the series count by inventing model names.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Distinct model label values kept before new ones read `other`.
pub const MAX_MODEL_LABELS: usize = 256;

/// A cheap, shareable label value.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Label(pub Arc<str>);

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

/// Labels of one exchange.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExchangeLabels {
    /// Upstream name, or `-` when none was chosen.
    pub upstream: Label,
    /// Requested model (bounded), or `-`.
    pub model: Label,
    /// Classified action.
    pub action: &'static str,
    /// Status sent to the caller.
    pub status: u16,
}

/// Labels of a data-path error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Upstream name, or `-`.
    pub upstream: Label,
    /// Requested model (bounded), or `-`.
    pub model: Label,
    /// Classified action.
    pub action: &'static str,
    /// Error code (`upstream_timeout`, ...).
    pub code: &'static str,
}

/// Labels of token counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// Upstream name.
    pub upstream: Label,
    /// Requested model (bounded).
    pub model: Label,
    /// `input` or `output`.
    pub direction: &'static str,
}

/// Labels of authentication failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// Stable reason code (`expired`, `bad_signature`, ...).
    pub reason: &'static str,
}

/// Labels carrying only the upstream.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// Upstream name, or `-`.
    pub upstream: Label,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds_hist() -> Histogram {
    // 1 ms .. ~9 min
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

fn overhead_hist() -> Histogram {
    // 10 µs .. ~0.3 s
    Histogram::new(exponential_buckets(0.000_01, 2.0, 16))
}

/// All data-path metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<ExchangeLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Hist<ExchangeLabels>,
    upstream_latency: Hist<ExchangeLabels>,
    overhead: Hist<UpstreamLabels>,
    open_streams: Family<UpstreamLabels, Gauge>,
    tokens: Family<TokenLabels, Counter>,
    auth_failures: Family<AuthLabels, Counter>,
    models: RwLock<HashMap<Box<str>, Label>>,
    none: Label,
    other: Label,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        Self::with_sources(None, None)
    }

    /// Creates and registers every metric, the audit writer's and the approval webhooks'
    /// included (those are shared: their owners count into them, so a scrape reads them exactly).
    pub fn with_sources(
        audit: Option<&audit::metrics::AuditMetrics>,
        webhooks: Option<&approvals::webhook::WebhookMetrics>,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("modelgate");
        if let Some(a) = audit {
            a.register(&mut registry);
        }
        if let Some(w) = webhooks {
            w.register(&mut registry);
        }
        let requests = Family::<ExchangeLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration: Hist<ExchangeLabels> = Family::new_with_constructor(seconds_hist);
        let upstream_latency: Hist<ExchangeLabels> = Family::new_with_constructor(seconds_hist);
        let overhead: Hist<UpstreamLabels> = Family::new_with_constructor(overhead_hist);
        let open_streams = Family::<UpstreamLabels, Gauge>::default();
        let tokens = Family::<TokenLabels, Counter>::default();
        let auth_failures = Family::<AuthLabels, Counter>::default();
        registry.register("requests", "Requests answered, by upstream, model, action and status", requests.clone());
        registry.register("errors", "Data-path errors, by upstream, model, action and error code", errors.clone());
        registry.register(
            "request_duration_seconds",
            "Whole exchange, first request byte to last response byte",
            duration.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "Upstream's own time from request sent to response head",
            upstream_latency.clone(),
        );
        registry.register(
            "gateway_overhead_seconds",
            "Latency the gateway adds to the response head, apart from the upstream's",
            overhead.clone(),
        );
        registry.register("open_streams", "Response bodies being relayed now", open_streams.clone());
        registry.register("tokens", "Tokens reported by upstreams, by direction", tokens.clone());
        registry.register("auth_failures", "Refused credentials, by reason", auth_failures.clone());
        Metrics {
            registry,
            requests,
            errors,
            duration,
            upstream_latency,
            overhead,
            open_streams,
            tokens,
            auth_failures,
            models: RwLock::new(HashMap::new()),
            none: Label(Arc::from("-")),
            other: Label(Arc::from("other")),
        }
    }

    /// The `-` label.
    pub fn none(&self) -> Label {
        self.none.clone()
    }

    /// A bounded model label: interned, `other` past the cap.
    pub fn model_label(&self, model: Option<&str>) -> Label {
        let Some(model) = model else { return self.none.clone() };
        if let Ok(map) = self.models.read() {
            if let Some(l) = map.get(model) {
                return l.clone();
            }
            if map.len() >= MAX_MODEL_LABELS {
                return self.other.clone();
            }
        }
        let Ok(mut map) = self.models.write() else { return self.other.clone() };
        if map.len() >= MAX_MODEL_LABELS {
            return self.other.clone();
        }
        map.entry(Box::from(model)).or_insert_with(|| Label(Arc::from(model))).clone()
    }

    /// Counts an answered request.
    pub fn request(&self, l: &ExchangeLabels) {
        self.requests.get_or_create(l).inc();
    }

    /// Counts an error.
    pub fn error(&self, upstream: &Label, model: &Label, action: &'static str, code: &'static str) {
        let l = ErrorLabels { upstream: upstream.clone(), model: model.clone(), action, code };
        self.errors.get_or_create(&l).inc();
    }

    /// Records the whole exchange's duration.
    pub fn duration(&self, l: &ExchangeLabels, d: Duration) {
        self.duration.get_or_create(l).observe(d.as_secs_f64());
    }

    /// Records the upstream's latency to its response head and the gateway's own overhead.
    pub fn head(&self, l: &ExchangeLabels, upstream: Duration, overhead: Duration) {
        self.upstream_latency.get_or_create(l).observe(upstream.as_secs_f64());
        let ul = UpstreamLabels { upstream: l.upstream.clone() };
        self.overhead.get_or_create(&ul).observe(overhead.as_secs_f64());
    }

    /// Adjusts the open-stream gauge.
    pub fn open_streams(&self, upstream: &Label, delta: i64) {
        self.open_streams.get_or_create(&UpstreamLabels { upstream: upstream.clone() }).inc_by(delta);
    }

    /// Counts tokens the upstream reported for an exchange.
    pub fn tokens(&self, l: &ExchangeLabels, input: Option<u64>, output: Option<u64>) {
        for (direction, n) in [("input", input), ("output", output)] {
            if let Some(n) = n {
                let tl = TokenLabels { upstream: l.upstream.clone(), model: l.model.clone(), direction };
                self.tokens.get_or_create(&tl).inc_by(n);
            }
        }
    }

    /// Counts a refused credential.
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.get_or_create(&AuthLabels { reason }).inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_MODEL_LABELS {
            assert_eq!(&*m.model_label(Some(&format!("m{i}"))).0, format!("m{i}"));
        }
        assert_eq!(&*m.model_label(Some("one-too-many")).0, "other");
        assert_eq!(&*m.model_label(Some("m3")).0, "m3");
        assert_eq!(&*m.model_label(None).0, "-");
    }

    #[test]
    fn exposition_names_the_series() {
        let m = Metrics::new();
        let l = ExchangeLabels {
            upstream: Label(Arc::from("u")),
            model: m.model_label(Some("x")),
            action: "inference.chat",
            status: 200,
        };
        m.request(&l);
        m.head(&l, Duration::from_millis(3), Duration::from_micros(40));
        m.open_streams(&l.upstream, 1);
        let text = m.encode();
        assert!(
            text.contains(r#"modelgate_requests_total{upstream="u",model="x",action="inference.chat",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains("modelgate_gateway_overhead_seconds_bucket"), "{text}");
        assert!(text.contains(r#"modelgate_open_streams{upstream="u"} 1"#), "{text}");
    }
}
