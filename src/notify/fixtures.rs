//! Test fixtures shared by the integrations' unit tests: an alert as a notification
//! carries it, and a pending notification of one group.

use crate::alert::{Fingerprint, LabelSet, Status, WebhookAlert, WebhookMessage, ZERO_TIME};
use crate::store::Notification;

/// An alert with `labels`, a summary, a start time and a generator URL.
pub(crate) fn alert(labels: &[(&str, &str)], status: Status) -> WebhookAlert {
    let labels: LabelSet = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    WebhookAlert {
        status,
        fingerprint: Fingerprint::of(&labels).to_string(),
        labels,
        annotations: [("summary".to_string(), "disk is full".to_string())].into(),
        starts_at: "2024-05-01T10:00:00Z".into(),
        ends_at: ZERO_TIME.into(),
        generator_url: "http://prom.test/graph?g0.expr=up&g0.tab=1".into(),
    }
}

/// A pending notification of receiver `ops` for `integration`, holding `alerts`.
pub(crate) fn notification(integration: &str, alerts: Vec<WebhookAlert>) -> Notification {
    let msg = WebhookMessage::new(
        "ops",
        alerts,
        LabelSet::new(),
        "http://router.test",
        "{}:{}",
        "first notification",
    );
    Notification::pending(
        1,
        ("ops", integration, 0),
        msg,
        "m".into(),
        crate::alert::now(),
    )
}
