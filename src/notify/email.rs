//! Email integration (stub; being written).
use super::{FailureReason, Notifier, NotifyError};
use crate::config::{Config, EmailConfig, RateLimit};
use crate::duration::AmDuration;
use crate::store::Notification;
use crate::template::Templates;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 1,
    per: AmDuration(Duration::from_secs(1)),
    burst: Some(10),
};

pub struct EmailNotifier {
    send_resolved: bool,
}
impl EmailNotifier {
    pub fn new(c: &EmailConfig, _cfg: &Config, _t: Arc<Templates>) -> Result<Self, String> {
        Ok(Self {
            send_resolved: c.send_resolved,
        })
    }
}
impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        "email"
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
