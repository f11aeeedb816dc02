//! Prometheus metrics of the audit writer.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The writer's metrics; register them with [`AuditMetrics::register`].
#[derive(Debug, Clone)]
pub struct AuditMetrics {
    /// Records waiting for the writer.
    pub queue_depth: Gauge,
    /// Whole append transactions, inserts and commit.
    pub commit_seconds: Histogram,
    /// The COMMIT alone: the WAL write and its fsync.
    pub fsync_seconds: Histogram,
    /// Records per group commit.
    pub batch_events: Histogram,
    /// 1 while the store fails closed.
    pub fail_closed: Gauge,
    /// Records written.
    pub events: Counter,
    /// `async` records dropped (reported in `audit.gap`).
    pub gap: Counter,
    /// Calls refused because the store failed closed.
    pub refused: Counter,
    /// Signed checkpoints written.
    pub checkpoints: Counter,
}

impl Default for AuditMetrics {
    fn default() -> AuditMetrics {
        AuditMetrics {
            queue_depth: Gauge::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            fsync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            fail_closed: Gauge::default(),
            events: Counter::default(),
            gap: Counter::default(),
            refused: Counter::default(),
            checkpoints: Counter::default(),
        }
    }
}

impl AuditMetrics {
    /// Registers every metric under `audit_*`.
    pub fn register(&self, r: &mut Registry) {
        r.register("audit_queue_depth", "Audit records waiting for the writer", self.queue_depth.clone());
        r.register(
            "audit_commit_seconds",
            "Audit group-commit transactions, inserts and commit",
            self.commit_seconds.clone(),
        );
        r.register("audit_fsync_seconds", "Audit COMMIT alone: WAL write and fsync", self.fsync_seconds.clone());
        r.register("audit_batch_events", "Audit records per group commit", self.batch_events.clone());
        r.register("audit_fail_closed", "1 while the audit store fails closed", self.fail_closed.clone());
        r.register("audit_events", "Audit records written", self.events.clone());
        r.register("audit_gap_events", "Async audit records dropped (reported in audit.gap)", self.gap.clone());
        r.register("audit_refused", "Calls refused while the audit store failed closed", self.refused.clone());
        r.register("audit_checkpoints", "Signed audit checkpoints written", self.checkpoints.clone());
    }
}
