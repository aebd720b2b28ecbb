//! Log integration: prints each notification to stdout as plain text (the subject line,
//! then one line per alert). Useful as a first receiver, in tests and as an audit trail;
//! it never fails.

use super::{Delivered, Notifier, NotifyError, RenderedRequest};
use crate::config::{LogConfig, RateLimit};
use crate::duration::AmDuration;
use crate::store::Notification;
use crate::template::{plain_text, Templates};
use futures::future::BoxFuture;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Default when `rate_limit` is not set (see the README for the platform limits behind it).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 100,
    per: AmDuration(Duration::from_secs(1)),
    burst: None,
};

/// The stdout integration.
pub struct LogNotifier {
    send_resolved: bool,
}

impl LogNotifier {
    pub fn new(c: &LogConfig, _templates: Arc<Templates>) -> Self {
        Self {
            send_resolved: c.send_resolved,
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

    fn send<'a>(
        &'a self,
        n: &'a Notification,
        _edit: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Delivered, NotifyError>> {
        Box::pin(async move {
            let mut block = plain_text(&n.message);
            block.push('\n');
            // One write under the lock keeps a block together when several workers print;
            // a closed stdout is not a reason to retry forever.
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(block.as_bytes());
            let _ = out.flush();
            Ok(Delivered::default())
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        Ok(vec![RenderedRequest {
            method: "WRITE".into(),
            url: "stdout".into(),
            headers: vec![],
            body: serde_json::Value::String(plain_text(&n.message)),
        }])
    }
}
