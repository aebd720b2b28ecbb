//! Webhook integration (stub; being written).
use super::{FailureReason, Notifier, NotifyError};
use crate::config::{RateLimit, WebhookConfig};
use crate::duration::AmDuration;
use crate::store::Notification;
use futures::future::BoxFuture;
use std::time::Duration;

pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 10,
    per: AmDuration(Duration::from_secs(1)),
    burst: Some(20),
};

pub struct WebhookNotifier {
    send_resolved: bool,
}
impl WebhookNotifier {
    pub fn new(c: &WebhookConfig) -> Result<Self, String> {
        Ok(Self {
            send_resolved: c.send_resolved,
        })
    }
}
impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn send_resolved(&self) -> bool {
        self.send_resolved
    }
    fn send<'a>(&'a self, _n: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async {
            Err(NotifyError::permanent(
                FailureReason::Other,
                "not implemented",
            ))
        })
    }
}
