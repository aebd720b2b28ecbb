//! Slack integration (incoming webhook): one message per notification, a short top-level
//! `text` (what phones and the sidebar show) plus one coloured attachment listing the
//! alerts.
//!
//! Every interpolated value is escaped for mrkdwn (`&`, `<`, `>`), so a label such as
//! `<!channel>` cannot ping anyone, and the message is cut to stay inside Slack's limits
//! with "…and N more alerts" instead of being truncated (or rejected) by Slack.

use super::http::{post_json, rendered_post, DEFAULT_TIMEOUT};
use super::http_config::HttpClient;
use super::{Delivered, Notifier, NotifyError, RenderedRequest};
use crate::alert::{Status, WebhookAlert, WebhookMessage};
use crate::config::{RateLimit, SlackConfig};
use crate::duration::AmDuration;
use crate::secret::Secret;
use crate::store::Notification;
use crate::template::{
    alert_name, alert_summary, alerts_url, firing_then_resolved, key_labels, one_line,
    slack_escape, slack_link, subject, text_len, truncate, truncate_mrkdwn, Templates,
};
use futures::future::BoxFuture;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Default when `rate_limit` is not set (see the README for the platform limits behind it).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 3,
    per: AmDuration(Duration::from_secs(3)),
    burst: None,
};

/// Attachment title limit (Slack cuts longer titles; Alertmanager truncates to 1024 too).
pub const MAX_TITLE: usize = 1024;
/// Budget for the attachment text. Slack accepts far more (40,000 for `text`), but longer
/// messages get split or collapsed; a list that long is better read in the router's UI.
pub const MAX_TEXT: usize = 3000;
/// Budget for the top-level `text`, the notification fallback.
pub const MAX_FALLBACK: usize = 500;
/// Budget for one alert's line in the default text.
const MAX_LINE: usize = 700;
/// Room kept for the "…and N more alerts" line.
const MORE_RESERVE: usize = 40;

/// The Slack incoming-webhook integration.
pub struct SlackNotifier {
    url: Secret,
    client: HttpClient,
    templates: Arc<Templates>,
    channel: Option<String>,
    username: Option<String>,
    icon_emoji: Option<String>,
    icon_url: Option<String>,
    title: Option<String>,
    title_link: Option<String>,
    text: Option<String>,
    send_resolved: bool,
}

/// The webhook body (the documented subset of `chat.postMessage` fields).
#[derive(Debug, Serialize)]
pub struct SlackPayload {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    pub text: String,
    pub attachments: Vec<SlackAttachment>,
}

/// A legacy attachment: the only way to get a coloured bar without Block Kit.
#[derive(Debug, Serialize)]
pub struct SlackAttachment {
    pub color: &'static str,
    pub fallback: String,
    pub title: String,
    pub title_link: String,
    pub text: String,
    pub mrkdwn_in: [&'static str; 2],
    pub footer: String,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.trim().is_empty()).cloned()
}

impl SlackNotifier {
    pub fn new(c: &SlackConfig, t: Arc<Templates>) -> Result<Self, String> {
        let url = c
            .api_url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or("api_url: required")?;
        Ok(Self {
            url,
            client: HttpClient::new(&c.http_config, c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0))?,
            templates: t,
            channel: non_empty(&c.channel),
            username: non_empty(&c.username),
            icon_emoji: non_empty(&c.icon_emoji),
            icon_url: non_empty(&c.icon_url),
            title: non_empty(&c.title),
            title_link: non_empty(&c.title_link),
            text: non_empty(&c.text),
            send_resolved: c.send_resolved,
        })
    }

    fn render(
        &self,
        what: &str,
        source: &str,
        msg: &WebhookMessage,
    ) -> Result<String, NotifyError> {
        super::render(&self.templates, what, source, msg)
    }

    /// The body sent for notification `n`.
    pub fn payload(&self, n: &Notification) -> Result<SlackPayload, NotifyError> {
        let msg = &n.message;
        let escaped_subject = slack_escape(&one_line(&subject(msg)));
        let title = match &self.title {
            Some(t) => truncate(&one_line(self.render("title", t, msg)?.trim()), MAX_TITLE),
            None => truncate_mrkdwn(&escaped_subject, MAX_TITLE),
        };
        let title_link = match &self.title_link {
            Some(t) => self.render("title_link", t, msg)?.trim().to_string(),
            None => String::new(),
        };
        let title_link = if title_link.is_empty() {
            alerts_url(msg)
        } else {
            title_link
        };
        let text = match &self.text {
            Some(t) => truncate_mrkdwn(self.render("text", t, msg)?.trim(), MAX_TEXT),
            None => default_text(msg),
        };
        let fallback = truncate_mrkdwn(&escaped_subject, MAX_FALLBACK);
        Ok(SlackPayload {
            channel: self.channel.clone(),
            username: self.username.clone(),
            icon_emoji: self.icon_emoji.clone(),
            icon_url: self.icon_url.clone(),
            text: fallback.clone(),
            attachments: vec![SlackAttachment {
                color: color(msg),
                fallback,
                title,
                title_link,
                text,
                mrkdwn_in: ["text", "pretext"],
                footer: format!("alert-router · {}", slack_escape(&one_line(&n.receiver))),
            }],
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

    fn send<'a>(
        &'a self,
        n: &'a Notification,
        _edit: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Delivered, NotifyError>> {
        Box::pin(async move {
            let payload = self.payload(n)?;
            let reply = post_json(&self.client, &self.url, &payload).await?;
            // Incoming webhooks answer `ok`; any other 2xx is accepted too, since the
            // message was taken.
            if reply.body.trim() != "ok" {
                tracing::debug!(
                    status = reply.status,
                    "slack accepted the message with an unexpected body"
                );
            }
            Ok(Delivered::default())
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        Ok(vec![rendered_post(&self.url, &self.payload(n)?)])
    }
}

/// `danger` while firing (`warning` when every firing alert is a warning), `good` once
/// resolved.
fn color(msg: &WebhookMessage) -> &'static str {
    if msg.status == Status::Resolved {
        return "good";
    }
    let all_warnings = msg.firing().all(|a| {
        a.labels
            .get("severity")
            .is_some_and(|s| s.eq_ignore_ascii_case("warning"))
    });
    if all_warnings {
        "warning"
    } else {
        "danger"
    }
}

/// One line per alert, firing first, cut with "…and N more alerts" to fit [`MAX_TEXT`].
fn default_text(msg: &WebhookMessage) -> String {
    let alerts: Vec<&WebhookAlert> = firing_then_resolved(msg).collect();
    // With several alerts the common labels are already in the title.
    let skip_common = alerts.len() > 1;
    let mut out = String::new();
    let mut len = 0;
    let mut hidden = msg.truncated_alerts;
    for (i, a) in alerts.iter().enumerate() {
        let line = truncate_mrkdwn(&alert_line(a, msg, skip_common), MAX_LINE);
        let sep = usize::from(!out.is_empty());
        let later = alerts.len() - i - 1 + msg.truncated_alerts as usize;
        let reserve = if later > 0 { MORE_RESERVE } else { 0 };
        if len + sep + text_len(&line) + reserve > MAX_TEXT {
            hidden += (alerts.len() - i) as u64;
            break;
        }
        if sep == 1 {
            out.push('\n');
        }
        len += sep + text_len(&line);
        out.push_str(&line);
    }
    if hidden > 0 {
        if !out.is_empty() {
            out.push('\n');
        }
        let noun = if hidden == 1 { "alert" } else { "alerts" };
        out.push_str(&format!("…and {hidden} more {noun}"));
    }
    out
}

/// `:fire: *Name* · instance=…, job=… — summary <generatorURL|source>`.
fn alert_line(a: &WebhookAlert, msg: &WebhookMessage, skip_common: bool) -> String {
    let esc = |s: &str, max: usize| slack_escape(&truncate(&one_line(s), max));
    let emoji = match a.status {
        Status::Firing => ":fire:",
        Status::Resolved => ":white_check_mark:",
    };
    let mut line = format!("{emoji} *{}*", esc(alert_name(a), 100));
    let labels: Vec<String> = key_labels(&a.labels)
        .into_iter()
        .filter(|(k, v)| !(skip_common && msg.common_labels.get(*k).is_some_and(|c| c == v)))
        .take(6)
        .map(|(k, v)| format!("{k}={}", esc(v, 80)))
        .collect();
    if !labels.is_empty() {
        line.push_str(" · ");
        line.push_str(&labels.join(", "));
    }
    if let Some(s) = alert_summary(a) {
        line.push_str(" — ");
        line.push_str(&esc(s, 300));
    }
    let url = a.generator_url.trim();
    if !url.is_empty() && url.len() <= 1000 {
        line.push(' ');
        line.push_str(&slack_link(url, "source"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Fingerprint, LabelSet, ZERO_TIME};
    use crate::store::DeliveryState;

    fn alert(labels: &[(&str, &str)], status: Status) -> WebhookAlert {
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

    fn notification(alerts: Vec<WebhookAlert>) -> Notification {
        let t = crate::alert::now();
        Notification {
            id: 1,
            receiver: "ops".into(),
            integration: "slack".into(),
            index: 0,
            group_key: "{}:{}".into(),
            state: DeliveryState::Pending,
            created_at: t,
            updated_at: t,
            delivered_at: None,
            attempts: 0,
            last_error: None,
            message_id: "m".into(),
            in_reply_to: None,
            references: vec![],
            test: false,
            platform_message_id: None,
            message: WebhookMessage::new(
                "ops",
                alerts,
                LabelSet::new(),
                "http://router.test",
                "{}:{}",
                "first notification",
            ),
        }
    }

    fn notifier(yaml_extra: &[(&str, &str)]) -> SlackNotifier {
        let mut c = serde_json::json!({"api_url": "http://hooks.test/services/T/B/X"});
        for (k, v) in yaml_extra {
            c[*k] = serde_json::Value::String(v.to_string());
        }
        let c: SlackConfig = serde_json::from_value(c).unwrap();
        SlackNotifier::new(&c, Arc::new(Templates::new())).unwrap()
    }

    #[test]
    fn default_payload_lists_firing_then_resolved_escaped() {
        let n = notification(vec![
            alert(
                &[("alertname", "Gone"), ("instance", "b")],
                Status::Resolved,
            ),
            alert(
                &[
                    ("alertname", "<!channel> & co"),
                    ("instance", "a>b"),
                    ("severity", "warning"),
                ],
                Status::Firing,
            ),
        ]);
        let p = notifier(&[]).payload(&n).unwrap();
        let a = &p.attachments[0];
        assert_eq!(a.color, "warning");
        assert!(p.channel.is_none() && p.username.is_none());
        let lines: Vec<&str> = a.text.lines().collect();
        assert_eq!(lines.len(), 2, "{}", a.text);
        assert!(
            lines[0].starts_with(":fire: *&lt;!channel&gt; &amp; co*"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("instance=a&gt;b"), "{}", lines[0]);
        assert!(lines[0].ends_with("<http://prom.test/graph?g0.expr=up&amp;g0.tab=1|source>"));
        assert!(
            lines[1].starts_with(":white_check_mark: *Gone*"),
            "{}",
            lines[1]
        );
        assert!(!p.text.contains("<!"), "{}", p.text);
        assert_eq!(
            a.title_link,
            "http://router.test/admin/v1/alerts?receiver=ops"
        );
    }

    #[test]
    fn long_groups_are_cut_with_a_count() {
        let alerts = (0..300)
            .map(|i| {
                alert(
                    &[("alertname", "Many"), ("instance", &format!("host-{i}"))],
                    Status::Firing,
                )
            })
            .collect();
        let p = notifier(&[]).payload(&notification(alerts)).unwrap();
        let text = &p.attachments[0].text;
        assert!(text_len(text) <= MAX_TEXT, "{}", text_len(text));
        let shown = text.lines().filter(|l| l.starts_with(":fire:")).count();
        assert!(shown > 5, "{text}");
        assert!(
            text.ends_with(&format!("…and {} more alerts", 300 - shown)),
            "{text}"
        );
    }

    #[test]
    fn templates_override_title_and_text() {
        let n = notification(vec![alert(&[("alertname", "X")], Status::Firing)]);
        let s = notifier(&[
            ("title", "{{ status | upper }} {{ alerts | length }}"),
            (
                "text",
                "{% for a in alerts %}{{ a.labels.alertname }}{% endfor %}",
            ),
            (
                "title_link",
                "https://runbooks.test/{{ commonLabels.alertname }}",
            ),
            ("channel", "#ops"),
        ]);
        let p = s.payload(&n).unwrap();
        assert_eq!(p.attachments[0].title, "FIRING 1");
        assert_eq!(p.attachments[0].text, "X");
        assert_eq!(p.attachments[0].title_link, "https://runbooks.test/X");
        assert_eq!(p.channel.as_deref(), Some("#ops"));
        let bad = notifier(&[("text", "{{ nope(")]);
        assert!(matches!(
            bad.payload(&n),
            Err(NotifyError::Permanent { .. })
        ));
    }
}
