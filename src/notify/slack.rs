//! Slack integration (stub; being written).
use super::{FailureReason, Notifier, NotifyError};
use crate::config::{RateLimit, SlackConfig};
use crate::duration::AmDuration;
use crate::store::Notification;
use crate::template::Templates;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 1,
    per: AmDuration(Duration::from_secs(1)),
    burst: Some(3),
};

pub struct SlackNotifier {
    send_resolved: bool,
}
impl SlackNotifier {
    pub fn new(c: &SlackConfig, _t: Arc<Templates>) -> Result<Self, String> {
        Ok(Self {
            send_resolved: c.send_resolved,
        })
    }
}
impl Notifier for SlackNotifier {
    fn kind(&self) -> &'static str {
        "slack"
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
