//! Prometheus metrics (`GET /metrics`), named `alert_router_*` and shaped after
//! Alertmanager's own where one exists.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

pub type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Every metric the router exports.
pub struct Metrics {
    registry: Registry,
    pub alerts_received: Family<Labels, Counter>,
    pub alerts_invalid: Counter,
    pub alerts_expired: Counter,
    pub ingest_rejected: Family<Labels, Counter>,
    pub alerts_active: Gauge,
    pub groups: Gauge,
    pub notifications_queued: Family<Labels, Counter>,
    pub notifications_sent: Family<Labels, Counter>,
    pub notifications_failed: Family<Labels, Counter>,
    pub notification_attempts_failed: Family<Labels, Counter>,
    pub notifications_merged: Family<Labels, Counter>,
    pub notifications_digested: Family<Labels, Counter>,
    pub digests: Family<Labels, Counter>,
    pub delivery_latency: HistogramFamily,
    pub queue_depth: Family<Labels, Gauge>,
    pub queue_head_created: Family<Labels, Gauge<f64, AtomicU64>>,
    pub rate_limited_waits: Family<Labels, Counter>,
    pub dedup_suppressed: Family<Labels, Counter>,
    pub config_reload_success: Gauge,
    pub config_reload_timestamp: Gauge<f64, AtomicU64>,
    pub ingest_ack_latency: Histogram,
    pub silences: Family<Labels, Gauge>,
    pub alerts_suppressed: Gauge,
    pub store_failed: Gauge,
    pub groups_limited: Family<Labels, Counter>,
    pub tls_reloads: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("alert_router");
        let m = Metrics {
            alerts_received: Family::default(),
            alerts_invalid: Counter::default(),
            alerts_expired: Counter::default(),
            ingest_rejected: Family::default(),
            alerts_active: Gauge::default(),
            groups: Gauge::default(),
            notifications_queued: Family::default(),
            notifications_sent: Family::default(),
            notifications_failed: Family::default(),
            notification_attempts_failed: Family::default(),
            notifications_merged: Family::default(),
            notifications_digested: Family::default(),
            digests: Family::default(),
            delivery_latency: HistogramFamily::new_with_constructor(latency_histogram),
            queue_depth: Family::default(),
            queue_head_created: Family::default(),
            rate_limited_waits: Family::default(),
            dedup_suppressed: Family::default(),
            config_reload_success: Gauge::default(),
            config_reload_timestamp: Gauge::default(),
            ingest_ack_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            silences: Family::default(),
            alerts_suppressed: Gauge::default(),
            store_failed: Gauge::default(),
            groups_limited: Family::default(),
            tls_reloads: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "alerts_received",
            "Alerts received, by status",
            m.alerts_received.clone(),
        );
        registry.register(
            "silences",
            "Silences (acknowledgements included), by state",
            m.silences.clone(),
        );
        registry.register(
            "alerts_suppressed",
            "Firing alerts held in aggregation groups that their last flush left out (silenced, inhibited or muted by time intervals)",
            m.alerts_suppressed.clone(),
        );
        registry.register(
            "store_failed",
            "1 while the store refuses writes after a failed write or fsync (full disk, I/O error), until it is reopened",
            m.store_failed.clone(),
        );
        registry.register(
            "groups_limited",
            "Alerts that joined their route's overflow group because ingest.max_groups aggregation groups existed, by receiver",
            m.groups_limited.clone(),
        );
        registry.register(
            "tls_certificate_reloads",
            "Changed TLS certificate/key or client CA files seen by the listener, by result (a failure keeps the previous one in use)",
            m.tls_reloads.clone(),
        );
        registry.register(
            "alerts_invalid",
            "Alerts rejected as invalid",
            m.alerts_invalid.clone(),
        );
        registry.register(
            "alerts_expired",
            "Firing webhook alerts dropped from their groups without a resolve notification because their Alertmanager did not send them again within ingest.webhook_firing_ttl (counted per group)",
            m.alerts_expired.clone(),
        );
        registry.register(
            "ingest_rejected",
            "Ingest requests rejected, by HTTP status",
            m.ingest_rejected.clone(),
        );
        registry.register(
            "alerts_active",
            "Firing alerts held in aggregation groups",
            m.alerts_active.clone(),
        );
        registry.register("aggregation_groups", "Aggregation groups", m.groups.clone());
        registry.register(
            "notifications_queued",
            "Notifications durably queued for delivery",
            m.notifications_queued.clone(),
        );
        registry.register(
            "notifications_sent",
            "Notifications delivered",
            m.notifications_sent.clone(),
        );
        registry.register(
            "notifications_failed",
            "Notifications given up (dead letters), by reason",
            m.notifications_failed.clone(),
        );
        registry.register(
            "notification_attempts_failed",
            "Failed delivery attempts, by reason",
            m.notification_attempts_failed.clone(),
        );
        registry.register(
            "notifications_merged",
            "Queued notifications merged into a newer one of the same group while rate limited",
            m.notifications_merged.clone(),
        );
        registry.register(
            "notifications_digested",
            "Queued notifications carried by a storm digest while rate limited",
            m.notifications_digested.clone(),
        );
        registry.register(
            "digests",
            "Storm digests made (one message for many groups waiting on the rate limiter)",
            m.digests.clone(),
        );
        registry.register(
            "notification_latency_seconds",
            "Duration of one delivery attempt",
            m.delivery_latency.clone(),
        );
        registry.register(
            "notification_queue_depth",
            "Notifications waiting per integration",
            m.queue_depth.clone(),
        );
        registry.register(
            "notification_queue_head_created_timestamp_seconds",
            "Creation time (Unix seconds) of the notification at the head of each integration's queue, the next one to be tried; 0 when nothing waits",
            m.queue_head_created.clone(),
        );
        registry.register(
            "rate_limited_waits",
            "Deliveries that waited for the rate limiter",
            m.rate_limited_waits.clone(),
        );
        registry.register(
            "notifications_dedup_suppressed",
            "Flushes where the notification log found nothing new to send",
            m.dedup_suppressed.clone(),
        );
        registry.register(
            "config_last_reload_successful",
            "Whether the last configuration reload succeeded",
            m.config_reload_success.clone(),
        );
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "Time of the last successful configuration reload",
            m.config_reload_timestamp.clone(),
        );
        registry.register(
            "ingest_ack_latency_seconds",
            "Time from request received to durable acknowledgement",
            m.ingest_ack_latency.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Metrics {
    /// Create an integration's counter series at 0 (`reasons`: every failure reason), so
    /// they exist from its worker's start: a rule or dashboard can tell "none yet" from "not
    /// exported", and `increase()` sees the first failure (a series born at 1 shows none).
    pub fn init_integration(&self, labels: &Labels, reasons: &[&'static str]) {
        for family in [
            &self.notifications_queued,
            &self.notifications_sent,
            &self.notifications_merged,
            &self.notifications_digested,
            &self.digests,
            &self.rate_limited_waits,
            &self.dedup_suppressed,
        ] {
            let _ = family.get_or_create(labels);
        }
        for reason in reasons {
            let mut with_reason = labels.clone();
            with_reason.push(("reason", reason.to_string()));
            let _ = self.notifications_failed.get_or_create(&with_reason);
            let _ = self
                .notification_attempts_failed
                .get_or_create(&with_reason);
        }
    }
}

/// Labels for one integration instance.
pub fn integration_labels(receiver: &str, integration: &str) -> Labels {
    vec![
        ("receiver", receiver.to_string()),
        ("integration", integration.to_string()),
    ]
}

pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}
