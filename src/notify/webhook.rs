//! Webhook integration: re-emits the notification as Alertmanager's webhook payload
//! (version 4), so the router can sit in front of any existing Alertmanager webhook
//! receiver.

use super::http::{post_json, rendered_post, DEFAULT_TIMEOUT};
use super::http_config::HttpClient;
use super::{Delivered, Notifier, NotifyError, RenderedRequest};
use crate::config::{RateLimit, WebhookConfig};
use crate::duration::AmDuration;
use crate::secret::Secret;
use crate::store::{Message, Notification};
use futures::future::BoxFuture;
use std::time::Duration;

/// Default when `rate_limit` is not set (see the README for the platform limits behind it).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 100,
    per: AmDuration(Duration::from_secs(1)),
    burst: None,
};

/// The Alertmanager-compatible webhook integration.
pub struct WebhookNotifier {
    url: Secret,
    client: HttpClient,
    max_alerts: usize,
    send_resolved: bool,
}

impl WebhookNotifier {
    pub fn new(c: &WebhookConfig) -> Result<Self, String> {
        let url = c
            .url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or("url: required")?;
        Ok(Self {
            url,
            client: HttpClient::new(&c.http_config, c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0))?,
            max_alerts: c.max_alerts,
            send_resolved: c.send_resolved,
        })
    }
}

impl WebhookNotifier {
    /// The body: the notification as computed by the dispatcher, `max_alerts` applied.
    /// Serialises as the message; untruncated, it reuses the JSON encoded at flush.
    fn payload<'n>(&self, n: &'n Notification) -> std::borrow::Cow<'n, Message> {
        if self.max_alerts > 0 && n.message.alerts.len() > self.max_alerts {
            let mut msg = n.message.clone();
            msg.truncate(self.max_alerts);
            std::borrow::Cow::Owned(msg)
        } else {
            std::borrow::Cow::Borrowed(&n.message)
        }
    }
}

impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
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
            post_json(&self.client, &self.url, &*self.payload(n))
                .await
                .map(|_| Delivered::default())
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        Ok(vec![rendered_post(&self.url, &*self.payload(n))])
    }
}
