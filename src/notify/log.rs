//! Log integration (stub; being written).
use super::{Notifier, NotifyError};
use crate::config::{LogConfig, RateLimit};
use crate::duration::AmDuration;
use crate::store::Notification;
use crate::template::Templates;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 100,
    per: AmDuration(Duration::from_secs(1)),
    burst: Some(100),
};

pub struct LogNotifier {
    send_resolved: bool,
    templates: Arc<Templates>,
}
impl LogNotifier {
    pub fn new(c: &LogConfig, templates: Arc<Templates>) -> Self {
        Self {
            send_resolved: c.send_resolved,
            templates,
        }
    }
}
impl Notifier for LogNotifier {
    fn kind(&self) -> &'static str {
        "log"
    }
    fn send_resolved(&self) -> bool {
        self.send_resolved
    }
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            println!("{}", crate::template::subject(&n.message));
            let _ = &self.templates;
            Ok(())
        })
    }
}
