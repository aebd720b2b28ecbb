//! Delivery: the [`Notifier`] trait every integration implements and the integrations
//! built from a configuration; [`Hub`] runs one delivery worker per integration instance
//! (`worker.rs`: rate limit, retry, merge, dead letters).

pub mod discord;
pub mod email;
#[cfg(test)]
mod fixtures;
pub mod googlechat;
pub mod http;
pub mod http_config;
mod hub;
pub mod limiter;
pub mod log;
pub mod mattermost;
pub mod msteams;
pub mod msteamsv2;
pub mod rocketchat;
pub mod slack;
pub mod telegram;
pub mod webex;
pub mod webhook;
mod worker;

pub use hub::Hub;
pub use worker::{backoff, RateLimitView, WorkerStatus};

use crate::config::{Config, RateLimit};
use crate::store::{worker_key, Notification};
use crate::template::Templates;
use futures::future::BoxFuture;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Why an attempt failed, for metrics (Alertmanager's reason labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    ClientError,
    ServerError,
    RateLimited,
    AuthError,
    Network,
    Timeout,
    Other,
}

impl FailureReason {
    pub const ALL: [FailureReason; 7] = [
        Self::ClientError,
        Self::ServerError,
        Self::RateLimited,
        Self::AuthError,
        Self::Network,
        Self::Timeout,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientError => "clientError",
            Self::ServerError => "serverError",
            Self::RateLimited => "rateLimited",
            Self::AuthError => "authError",
            Self::Network => "network",
            Self::Timeout => "contextDeadlineExceeded",
            Self::Other => "other",
        }
    }

    /// Classify an HTTP status code.
    pub fn from_status(code: u16) -> Self {
        match code {
            401 | 403 => Self::AuthError,
            429 => Self::RateLimited,
            400..=499 => Self::ClientError,
            500..=599 => Self::ServerError,
            _ => Self::Other,
        }
    }
}

/// A failed delivery attempt.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotifyError {
    /// Worth trying again (network errors, 5xx, 429), optionally not before `retry_after`.
    #[error("{message}")]
    Retryable {
        message: String,
        reason: FailureReason,
        retry_after: Option<Duration>,
    },
    /// Will never succeed as is (4xx, SMTP 5xx, rendering errors).
    #[error("{message}")]
    Permanent {
        message: String,
        reason: FailureReason,
    },
}

impl NotifyError {
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::Retryable { reason, .. } | Self::Permanent { reason, .. } => *reason,
        }
    }

    pub fn permanent(reason: FailureReason, message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
            reason,
        }
    }

    pub fn retryable(reason: FailureReason, message: impl Into<String>) -> Self {
        Self::Retryable {
            message: message.into(),
            reason,
            retry_after: None,
        }
    }
}

/// Render a user template of an integration; a failure is permanent (retrying cannot fix
/// a template) and names the field.
pub(crate) fn render(
    templates: &Templates,
    what: &str,
    source: &str,
    msg: &crate::alert::WebhookMessage,
) -> Result<String, NotifyError> {
    permanent_on_error(what, templates.render(source, msg))
}

/// [`render`] for a field whose output is HTML ([`Templates::render_html`]).
pub(crate) fn render_html(
    templates: &Templates,
    what: &str,
    source: &str,
    msg: &crate::alert::WebhookMessage,
) -> Result<String, NotifyError> {
    permanent_on_error(what, templates.render_html(source, msg))
}

fn permanent_on_error(
    what: &str,
    r: Result<String, crate::template::TemplateError>,
) -> Result<String, NotifyError> {
    r.map_err(|e| NotifyError::permanent(FailureReason::Other, format!("{what}: {e}")))
}

/// Default `digest_threshold` of the chat and email integrations.
pub const DEFAULT_DIGEST_THRESHOLD: usize = 10;

/// What a successful delivery leaves behind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivered {
    /// The platform's id of the message that now shows the group (posted or edited), for
    /// integrations that edit in place; `None` where the platform has no such id.
    pub message_id: Option<String>,
}

/// The HTTP request an integration would send, secrets redacted (the render endpoint).
#[derive(Debug, Clone, Serialize)]
pub struct RenderedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

/// One integration instance (an entry of a receiver's `*_configs`).
pub trait Notifier: Send + Sync {
    /// Integration type: `email`, `slack`, `webhook`, `log`, …
    fn kind(&self) -> &'static str;
    /// Whether resolved alerts are sent (the dispatcher filters on it).
    fn send_resolved(&self) -> bool;
    /// Whether this instance edits its group's message in place (`update_message: true`
    /// on a platform that can edit). The worker then passes the message to edit.
    fn updates_messages(&self) -> bool {
        false
    }
    /// Deliver one notification: post a message or, when `edit` holds the platform id of
    /// the message that shows this group's current episode, edit that message (posting a
    /// new one when it is gone: deleted, or the edit window closed).
    fn send<'a>(
        &'a self,
        n: &'a Notification,
        edit: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Delivered, NotifyError>>;
    /// The request(s) `send` would make for `n`, without sending.
    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        let _ = n;
        Err(NotifyError::permanent(
            FailureReason::Other,
            format!(
                "{}: rendering without sending is not available",
                self.kind()
            ),
        ))
    }
}

/// Sample alerts for test sends, the render endpoint and `check-config`: one firing and
/// one resolved, with the labels and annotations templates usually read.
pub fn sample_alerts(receiver: &str, t: time::OffsetDateTime) -> Vec<crate::alert::Alert> {
    use crate::alert::{Alert, Fingerprint, LabelSet};
    let alert = |instance: &str, ends_at: Option<time::OffsetDateTime>| {
        let labels: LabelSet = [
            ("alertname", "AlertRouterSample"),
            ("severity", "warning"),
            ("instance", instance),
            ("job", "sample"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let annotations: LabelSet = [
            ("summary", format!("Sample alert for receiver {receiver}")),
            (
                "description",
                "Rendered by alert-router; nothing is wrong.".into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Alert {
            fingerprint: Fingerprint::of(&labels),
            labels,
            annotations,
            starts_at: t - time::Duration::minutes(5),
            ends_at,
            generator_url: "http://prometheus.example/graph".into(),
            updated_at: t,
            received_at: t,
            targets: Default::default(),
            timeout: false,
            handoff: false,
            expires: false,
        }
    };
    vec![alert("host-1", None), alert("host-2", Some(t))]
}

/// The notification integration `(receiver, kind, index)` would get for `alerts` as one
/// group (grouped by the labels they share), without storing anything.
pub fn preview(
    integration: (&str, &str, usize),
    alerts: &[crate::alert::Alert],
    external_url: &str,
    t: time::OffsetDateTime,
) -> Notification {
    use crate::alert::{LabelSet, WebhookAlert, WebhookMessage};
    let mut group_labels: LabelSet = alerts.first().map(|a| a.labels.clone()).unwrap_or_default();
    group_labels.retain(|k, v| alerts.iter().all(|a| a.labels.get(k) == Some(v)));
    let group_key = format!(
        "{{}}/preview:{}",
        crate::matcher::label_set_string(&group_labels)
    );
    let wire = alerts
        .iter()
        .map(|a| WebhookAlert::from_alert(a, t))
        .collect();
    let msg = WebhookMessage::new(
        integration.0,
        wire,
        group_labels,
        external_url,
        &group_key,
        "preview",
    );
    Notification::pending(0, integration, msg, "<preview@alert-router>".into(), t)
}

/// One configured integration instance, ready for a delivery worker.
pub struct Integration {
    /// Worker key: `receiver/kind[index]`.
    pub key: String,
    pub notifier: Arc<dyn Notifier>,
    pub rate_limit: RateLimit,
    /// More than this many notifications of different groups waiting for the rate
    /// limiter go out as one storm digest (0 = never): `digest_threshold`, default 10;
    /// the webhook's consumers expect one group per payload, so there it is off by default.
    pub digest_threshold: usize,
}

/// Build every integration of `cfg`.
pub fn build_notifiers(
    cfg: &Config,
    templates: &Arc<Templates>,
) -> Result<Vec<Integration>, String> {
    let mut out: Vec<Integration> = Vec::new();
    let mut push = |key: String,
                    notifier: Arc<dyn Notifier>,
                    rate_limit: RateLimit,
                    digest_threshold: Option<usize>| {
        out.push(Integration {
            key,
            notifier,
            rate_limit,
            digest_threshold: digest_threshold.unwrap_or(DEFAULT_DIGEST_THRESHOLD),
        })
    };
    for r in &cfg.receivers {
        let name = &r.name.value;
        for (i, c) in r.email_configs.iter().enumerate() {
            let n = email::EmailNotifier::new(c, cfg, templates.clone())
                .map_err(|e| format!("receiver {name:?} email_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "email", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(email::DEFAULT_RATE_LIMIT),
                c.digest_threshold,
            );
        }
        for (i, c) in r.slack_configs.iter().enumerate() {
            let n = slack::SlackNotifier::new(c, templates.clone())
                .map_err(|e| format!("receiver {name:?} slack_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "slack", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(slack::DEFAULT_RATE_LIMIT),
                c.digest_threshold,
            );
        }
        for (i, c) in r.webhook_configs.iter().enumerate() {
            let n = webhook::WebhookNotifier::new(c)
                .map_err(|e| format!("receiver {name:?} webhook_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "webhook", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(webhook::DEFAULT_RATE_LIMIT),
                Some(c.digest_threshold.unwrap_or(0)),
            );
        }
        for (i, c) in r.log_configs.iter().enumerate() {
            let n = log::LogNotifier::new(c, templates.clone());
            push(
                worker_key(name, "log", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(log::DEFAULT_RATE_LIMIT),
                c.digest_threshold,
            );
        }
        for (i, c) in r.msteamsv2_configs.iter().enumerate() {
            let n = msteamsv2::MsTeamsV2Notifier::new(c, templates.clone())
                .map_err(|e| format!("receiver {name:?} msteamsv2_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "msteamsv2", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(msteamsv2::DEFAULT_RATE_LIMIT),
                c.digest_threshold,
            );
        }
        for (i, c) in r.msteams_configs.iter().enumerate() {
            let n = msteams::MsTeamsNotifier::new(c, templates.clone())
                .map_err(|e| format!("receiver {name:?} msteams_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "msteams", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(msteams::DEFAULT_RATE_LIMIT),
                c.digest_threshold,
            );
        }
        for (i, c) in r.webex_configs.iter().enumerate() {
            let n = webex::WebexNotifier::new(c, templates.clone())
                .map_err(|e| format!("receiver {name:?} webex_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "webex", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(webex::DEFAULT_RATE_LIMIT),
                c.digest_threshold,
            );
        }
        for (i, c) in r.telegram_configs.iter().enumerate() {
            let n = telegram::TelegramNotifier::new(c, templates.clone())
                .map_err(|e| format!("receiver {name:?} telegram_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "telegram", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(telegram::DEFAULT_RATE_LIMIT),
                c.digest_threshold,
            );
        }
        for (i, c) in r.rocketchat_configs.iter().enumerate() {
            let n = rocketchat::RocketchatNotifier::new(c, templates.clone())
                .map_err(|e| format!("receiver {name:?} rocketchat_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "rocketchat", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(rocketchat::DEFAULT_RATE_LIMIT),
                c.digest_threshold,
            );
        }
        for (i, c) in r.discord_configs.iter().enumerate() {
            let n = discord::DiscordNotifier::new(c, templates.clone())
                .map_err(|e| format!("receiver {name:?} discord_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "discord", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(discord::DEFAULT_RATE_LIMIT),
                c.digest_threshold,
            );
        }
        for (i, c) in r.mattermost_configs.iter().enumerate() {
            let n = mattermost::MattermostNotifier::new(c, templates.clone())
                .map_err(|e| format!("receiver {name:?} mattermost_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "mattermost", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(mattermost::DEFAULT_RATE_LIMIT),
                c.digest_threshold,
            );
        }
        for (i, c) in r.googlechat_configs.iter().enumerate() {
            let n = googlechat::GoogleChatNotifier::new(c, templates.clone())
                .map_err(|e| format!("receiver {name:?} googlechat_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "googlechat", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(googlechat::DEFAULT_RATE_LIMIT),
                c.digest_threshold,
            );
        }
    }
    Ok(out)
}

pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
