//! Mattermost integration (incoming webhook): Alertmanager's request shape — one
//! attachment built from the top-level keys (title, coloured bar, the alert list as its
//! text), or the configured `attachments` with the rendered `text` on top — plus `props`
//! and `priority`.
//!
//! Mattermost speaks real Markdown (not Slack's mrkdwn), and the server also translates
//! Slack's `<!channel>` / `<url|label>` in webhook posts. Interpolated values are
//! therefore backslash-escaped for Markdown (so `<!channel>` loses its `!`), and every
//! `@` gets a zero-width space after it so `@channel`, `@all`, `@here` or `@someone` in a
//! label notifies nobody. Text fields are cut to a post's 16,383 characters (Mattermost
//! would split a longer message into several posts). Incoming webhooks return no post id,
//! so there is no edit.

use super::http::{classify, rendered_post, send_json, RawReply, DEFAULT_TIMEOUT};
use super::http_config::{HttpClient, HttpConfig};
use super::{Delivered, FailureReason, Notifier, NotifyError, RenderedRequest};
use crate::alert::{Status, WebhookMessage};
use crate::config::{
    check_rate_limit, check_template, check_url, secret_or_file, yes, GlobalConfig, RateLimit,
};
use crate::duration::AmDuration;
use crate::secret::Secret;
use crate::store::Notification;
use crate::template::{
    alert_list, alerts_url, markup_safe_url, one_line, subject, text_len, truncate, Markup,
    Templates,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default when `rate_limit` is not set: Mattermost's server-side limiter is off by
/// default and allows 10 requests/s when enabled; staying at that rate (without its burst
/// of 100, which would flood a channel) never trips it.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 10,
    per: AmDuration(Duration::from_secs(1)),
    burst: None,
};

/// Longest post message Mattermost keeps in one post (server ≥ 5.0); applied to every
/// text field.
pub const MAX_TEXT: usize = 16_383;
/// Budget of the default alert list (a longer list is better read in the router's UI).
const MAX_DEFAULT_LIST: usize = 8_000;

/// A field of an attachment (`title` and `value` templated).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostField {
    pub title: String,
    pub value: String,
    #[serde(default)]
    pub short: Option<bool>,
}

/// One entry of `attachments` (the attachment keys of the top level, all templated).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostAttachmentConfig {
    #[serde(default)]
    pub fallback: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub pretext: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub title_link: Option<String>,
    #[serde(default)]
    pub author_name: Option<String>,
    #[serde(default)]
    pub author_link: Option<String>,
    #[serde(default)]
    pub author_icon: Option<String>,
    #[serde(default)]
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub footer: Option<String>,
    #[serde(default)]
    pub footer_icon: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub fields: Vec<MattermostField>,
}

/// `props`: `card` is Markdown shown in the post's info panel.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostProps {
    #[serde(default)]
    pub card: Option<String>,
}

/// `priority` (message priority, Mattermost ≥ 7.7).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostPriority {
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub requested_ack: bool,
    #[serde(default)]
    pub persistent_notifications: bool,
}

/// `mattermost_configs` entry: Alertmanager's keys plus the router's `timeout` and
/// `rate_limit`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostConfig {
    #[serde(default)]
    pub http_config: HttpConfig,
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub icon_url: Option<String>,
    #[serde(default)]
    pub icon_emoji: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub title_link: Option<String>,
    #[serde(default)]
    pub fallback: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub pretext: Option<String>,
    #[serde(default)]
    pub author_name: Option<String>,
    #[serde(default)]
    pub author_link: Option<String>,
    #[serde(default)]
    pub author_icon: Option<String>,
    #[serde(default)]
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub footer: Option<String>,
    #[serde(default)]
    pub footer_icon: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub fields: Vec<MattermostField>,
    /// Deprecated in Alertmanager, still accepted: explicit attachments replace the one
    /// built from the top-level keys.
    #[serde(default)]
    pub attachments: Vec<MattermostAttachmentConfig>,
    #[serde(default)]
    pub props: Option<MattermostProps>,
    #[serde(default)]
    pub priority: Option<MattermostPriority>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Storm digest threshold (see the README); default 10, 0 = never.
    #[serde(default)]
    pub digest_threshold: Option<usize>,
    #[serde(default)]
    pub timeout: Option<AmDuration>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

impl MattermostConfig {
    /// The attachment the top-level keys describe.
    fn top_attachment(&self) -> MattermostAttachmentConfig {
        MattermostAttachmentConfig {
            fallback: self.fallback.clone(),
            color: self.color.clone(),
            pretext: self.pretext.clone(),
            text: self.text.clone(),
            title: self.title.clone(),
            title_link: self.title_link.clone(),
            author_name: self.author_name.clone(),
            author_link: self.author_link.clone(),
            author_icon: self.author_icon.clone(),
            thumb_url: self.thumb_url.clone(),
            footer: self.footer.clone(),
            footer_icon: self.footer_icon.clone(),
            image_url: self.image_url.clone(),
            fields: self.fields.clone(),
        }
    }

    /// Read `webhook_url_file` (or take `global.mattermost_webhook_url`), resolve
    /// `http_config` and check the URL and every template.
    pub fn validate(&mut self, base: &Path, g: &GlobalConfig) -> Result<(), String> {
        self.http_config.resolve(base)?;
        secret_or_file(
            &mut self.webhook_url,
            &mut self.webhook_url_file,
            base,
            "webhook_url",
        )?;
        if self.webhook_url.is_none() {
            self.webhook_url = g.mattermost_webhook_url.clone();
        }
        match &self.webhook_url {
            Some(u) => check_url(u.expose()).map_err(|m| format!("webhook_url: {m}"))?,
            None => {
                return Err("webhook_url: required (webhook_url, webhook_url_file or \
                     global.mattermost_webhook_url)"
                    .into())
            }
        }
        let mut templates: Vec<(String, &String)> = Vec::new();
        for (key, t) in [
            ("channel", &self.channel),
            ("username", &self.username),
            ("icon_url", &self.icon_url),
            ("icon_emoji", &self.icon_emoji),
            ("type", &self.kind),
        ] {
            templates.extend(t.iter().map(|t| (key.to_string(), t)));
        }
        if let Some(t) = self.props.as_ref().and_then(|p| p.card.as_ref()) {
            templates.push(("props.card".into(), t));
        }
        if let Some(t) = self.priority.as_ref().and_then(|p| p.priority.as_ref()) {
            templates.push(("priority.priority".into(), t));
        }
        for (key, t) in templates {
            check_template(t).map_err(|m| format!("{key}: {m}"))?;
        }
        check_attachment(&self.top_attachment(), "")?;
        for (i, a) in self.attachments.iter().enumerate() {
            check_attachment(a, &format!("attachments[{i}]."))?;
        }
        if let Some(rl) = &self.rate_limit {
            check_rate_limit(rl)?;
        }
        Ok(())
    }
}

fn check_attachment(a: &MattermostAttachmentConfig, prefix: &str) -> Result<(), String> {
    for (key, t) in attachment_templates(a) {
        if let Some(t) = t {
            check_template(t).map_err(|m| format!("{prefix}{key}: {m}"))?;
        }
    }
    for (i, f) in a.fields.iter().enumerate() {
        for (key, t) in [("title", &f.title), ("value", &f.value)] {
            if t.trim().is_empty() {
                return Err(format!("{prefix}fields[{i}].{key}: required"));
            }
            check_template(t).map_err(|m| format!("{prefix}fields[{i}].{key}: {m}"))?;
        }
    }
    Ok(())
}

fn attachment_templates(a: &MattermostAttachmentConfig) -> [(&'static str, &Option<String>); 13] {
    [
        ("fallback", &a.fallback),
        ("color", &a.color),
        ("pretext", &a.pretext),
        ("text", &a.text),
        ("title", &a.title),
        ("title_link", &a.title_link),
        ("author_name", &a.author_name),
        ("author_link", &a.author_link),
        ("author_icon", &a.author_icon),
        ("thumb_url", &a.thumb_url),
        ("footer", &a.footer),
        ("footer_icon", &a.footer_icon),
        ("image_url", &a.image_url),
    ]
}

/// The webhook body.
#[derive(Debug, Default, Serialize)]
pub struct MattermostPayload {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub props: Option<Props>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
}

/// A message attachment (Slack-compatible), empty keys left out.
#[derive(Debug, Default, Serialize)]
pub struct Attachment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author_icon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footer_icon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
}

#[derive(Debug, Serialize)]
pub struct Field {
    pub title: String,
    pub value: String,
    pub short: bool,
}

#[derive(Debug, Serialize)]
pub struct Props {
    pub card: String,
}

#[derive(Debug, Serialize)]
pub struct Priority {
    pub priority: String,
    pub requested_ack: bool,
    pub persistent_notifications: bool,
}

/// Escape text for Mattermost Markdown: a backslash before Markdown punctuation (which
/// also breaks the server's Slack translations `<!channel>` and `<url|label>`), and a
/// zero-width space after `@` so no mention notifies anyone.
pub fn mattermost_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '(' | ')' | '<' | '>' | '|' | '!' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200B}"),
            c => out.push(c),
        }
    }
    out
}

const MARKUP: Markup = Markup {
    escape: mattermost_escape,
    bold: |s| format!("**{s}**"),
    link: |url, label| format!("[{}]({})", mattermost_escape(label), markup_safe_url(url)),
    len: text_len,
    firing: ":fire:",
    resolved: ":white_check_mark:",
};

/// The Mattermost incoming-webhook integration.
pub struct MattermostNotifier {
    url: Secret,
    client: HttpClient,
    templates: Arc<Templates>,
    config: MattermostConfig,
}

impl MattermostNotifier {
    pub fn new(c: &MattermostConfig, templates: Arc<Templates>) -> Result<Self, String> {
        let url = c
            .webhook_url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or("webhook_url: required")?;
        Ok(Self {
            url,
            client: HttpClient::new(&c.http_config, c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0))?,
            templates,
            config: c.clone(),
        })
    }

    /// Render an optional template; blank results count as unset.
    fn field(
        &self,
        what: &str,
        t: &Option<String>,
        msg: &WebhookMessage,
    ) -> Result<Option<String>, NotifyError> {
        let Some(t) = t.as_ref().filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        let out = super::render(&self.templates, what, t, msg)?;
        let out = out.trim();
        Ok((!out.is_empty()).then(|| truncate(out, MAX_TEXT)))
    }

    fn attachment(
        &self,
        a: &MattermostAttachmentConfig,
        msg: &WebhookMessage,
    ) -> Result<Attachment, NotifyError> {
        let f = |key: &str, t: &Option<String>| self.field(key, t, msg);
        let mut fields = Vec::with_capacity(a.fields.len());
        for x in &a.fields {
            fields.push(Field {
                title: f("fields.title", &Some(x.title.clone()))?.unwrap_or_default(),
                value: f("fields.value", &Some(x.value.clone()))?.unwrap_or_default(),
                short: x.short.unwrap_or(false),
            });
        }
        Ok(Attachment {
            fallback: f("fallback", &a.fallback)?,
            color: f("color", &a.color)?,
            pretext: f("pretext", &a.pretext)?,
            text: f("text", &a.text)?,
            title: f("title", &a.title)?,
            title_link: f("title_link", &a.title_link)?,
            author_name: f("author_name", &a.author_name)?,
            author_link: f("author_link", &a.author_link)?,
            author_icon: f("author_icon", &a.author_icon)?,
            thumb_url: f("thumb_url", &a.thumb_url)?,
            footer: f("footer", &a.footer)?,
            footer_icon: f("footer_icon", &a.footer_icon)?,
            image_url: f("image_url", &a.image_url)?,
            fields,
        })
    }

    /// The body sent for notification `n`.
    pub fn payload(&self, n: &Notification) -> Result<MattermostPayload, NotifyError> {
        let c = &self.config;
        let msg = &n.message;
        let f = |key: &str, t: &Option<String>| self.field(key, t, msg);
        let default_text = || alert_list(msg, MAX_DEFAULT_LIST, &MARKUP);
        let mut p = MattermostPayload {
            channel: f("channel", &c.channel)?,
            username: f("username", &c.username)?,
            icon_url: f("icon_url", &c.icon_url)?,
            icon_emoji: f("icon_emoji", &c.icon_emoji)?,
            kind: f("type", &c.kind)?,
            ..Default::default()
        };
        if c.attachments.is_empty() {
            // One attachment from the top-level keys, Alertmanager's defaults filled in.
            let mut a = self.attachment(&c.top_attachment(), msg)?;
            let title = mattermost_escape(&one_line(&subject(msg)));
            let link = alerts_url(msg);
            a.fallback
                .get_or_insert_with(|| truncate(&format!("{title} | {link}"), MAX_TEXT));
            a.title.get_or_insert_with(|| truncate(&title, MAX_TEXT));
            a.title_link.get_or_insert(link);
            a.color.get_or_insert_with(|| {
                match msg.status {
                    Status::Firing => "danger",
                    Status::Resolved => "good",
                }
                .to_string()
            });
            a.text.get_or_insert_with(default_text);
            p.attachments.push(a);
        } else {
            p.text = Some(f("text", &c.text)?.unwrap_or_else(default_text));
            for a in &c.attachments {
                p.attachments.push(self.attachment(a, msg)?);
            }
        }
        if let Some(props) = &c.props {
            p.props = f("props.card", &props.card)?.map(|card| Props { card });
        }
        if let Some(pr) = &c.priority {
            p.priority = f("priority.priority", &pr.priority)?.map(|level| {
                let level = match level.to_lowercase().as_str() {
                    l @ ("urgent" | "important") => l.to_string(),
                    _ => "standard".to_string(),
                };
                Priority {
                    requested_ack: pr.requested_ack && level != "standard",
                    persistent_notifications: pr.persistent_notifications && level == "urgent",
                    priority: level,
                }
            });
        }
        Ok(p)
    }

    fn failure(&self, r: &RawReply) -> NotifyError {
        // Mattermost's limiter answers 429 with `X-Ratelimit-Reset` (seconds to wait).
        let reset = r
            .headers
            .get("x-ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(super::http::MAX_RETRY_AFTER));
        let retry_after = r.retry_after.or(if r.status == 429 { reset } else { None });
        match classify(r.status, retry_after, &r.body, &self.url) {
            Err(e) => e,
            Ok(()) => NotifyError::permanent(FailureReason::Other, "unexpected success"),
        }
    }
}

impl Notifier for MattermostNotifier {
    fn kind(&self) -> &'static str {
        "mattermost"
    }

    fn send_resolved(&self) -> bool {
        self.config.send_resolved
    }

    fn send<'a>(
        &'a self,
        n: &'a Notification,
        _edit: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Delivered, NotifyError>> {
        Box::pin(async move {
            let payload = self.payload(n)?;
            let r = send_json(&self.client, reqwest::Method::POST, &self.url, &payload).await?;
            if !(200..300).contains(&r.status) {
                return Err(self.failure(&r));
            }
            Ok(Delivered::default())
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        Ok(vec![rendered_post(&self.url, &self.payload(n)?)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Fingerprint, LabelSet, WebhookAlert, ZERO_TIME};
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
            generator_url: "http://prom.test/graph?g0.expr=up".into(),
        }
    }

    fn notification(alerts: Vec<WebhookAlert>) -> Notification {
        let t = crate::alert::now();
        let mut n = Notification::pending(
            1,
            ("ops", "mattermost", 0),
            WebhookMessage::new(
                "ops",
                alerts,
                LabelSet::new(),
                "http://router.test",
                "{}:{}",
                "first notification",
            ),
            "m".into(),
            t,
        );
        n.state = DeliveryState::Pending;
        n
    }

    fn notifier(extra: serde_json::Value) -> MattermostNotifier {
        let mut c = serde_json::json!({"webhook_url": "https://mm.test/hooks/SECRETKEY"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let c: MattermostConfig = serde_json::from_value(c).unwrap();
        MattermostNotifier::new(&c, Arc::new(Templates::new())).unwrap()
    }

    #[test]
    fn default_payload_is_one_attachment_with_escaped_values() {
        let n = notification(vec![alert(
            &[
                ("alertname", "<!channel> @all **x** [l](http://evil)"),
                ("instance", "@here ~town"),
            ],
            Status::Firing,
        )]);
        let p = notifier(serde_json::json!({})).payload(&n).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert!(
            v.get("text").is_none() && v.get("username").is_none(),
            "{v}"
        );
        assert_eq!(p.attachments.len(), 1);
        let a = &p.attachments[0];
        assert_eq!(a.color.as_deref(), Some("danger"));
        assert_eq!(
            a.title_link.as_deref(),
            Some("http://router.test/admin/v1/alerts?receiver=ops")
        );
        let text = a.text.as_deref().unwrap();
        assert!(
            text.starts_with(
                ":fire: **\\<\\!channel\\> @\u{200B}all \\*\\*x\\*\\* \\[l\\]\\(http://evil\\)**"
            ),
            "{text}"
        );
        assert!(text.contains("instance=@\u{200B}here \\~town"), "{text}");
        assert!(
            text.ends_with("[source](http://prom.test/graph?g0.expr=up)"),
            "{text}"
        );
        let raw = serde_json::to_string(&p).unwrap();
        for bad in ["<!channel>", "@all", "@here", "@channel"] {
            assert!(!raw.contains(bad), "{bad} in {raw}");
        }
        let resolved = notification(vec![alert(&[("alertname", "A")], Status::Resolved)]);
        let p = notifier(serde_json::json!({})).payload(&resolved).unwrap();
        assert_eq!(p.attachments[0].color.as_deref(), Some("good"));
    }

    #[test]
    fn texts_stay_within_a_post() {
        let huge = "y".repeat(20_000);
        let alerts = (0..400)
            .map(|i| {
                alert(
                    &[("alertname", &huge), ("instance", &format!("h{i}"))],
                    Status::Firing,
                )
            })
            .collect();
        let n = notification(alerts);
        let p = notifier(serde_json::json!({})).payload(&n).unwrap();
        let text = p.attachments[0].text.as_deref().unwrap();
        assert!(text_len(text) <= MAX_DEFAULT_LIST, "{}", text_len(text));
        assert!(
            text.ends_with("more alerts"),
            "{}",
            &text[text.len() - 50..]
        );
        let p = notifier(serde_json::json!({
            "text": "{{ range 20000 }}z{{ end }}",
            "attachments": [{"title": "{{ range 20000 }}t{{ end }}"}],
        }))
        .payload(&n)
        .unwrap();
        assert_eq!(text_len(p.text.as_deref().unwrap()), MAX_TEXT);
        assert_eq!(
            text_len(p.attachments[0].title.as_deref().unwrap()),
            MAX_TEXT
        );
    }

    #[test]
    fn alertmanager_keys_attachments_props_and_priority() {
        let n = notification(vec![alert(&[("alertname", "A")], Status::Firing)]);
        let p = notifier(serde_json::json!({
            "channel": "ops", "username": "bot", "icon_emoji": ":bell:", "type": "custom_alert",
            "text": "top {{ .Status }}",
            "attachments": [{"title": "T", "color": "#FF0000",
                             "fields": [{"title": "n", "value": "{{ len .Alerts }}", "short": true}]}],
            "props": {"card": "card {{ .Status }}"},
            "priority": {"priority": "URGENT", "requested_ack": true, "persistent_notifications": true},
        }))
        .payload(&n)
        .unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["text"], "top firing");
        assert_eq!(v["channel"], "ops");
        assert_eq!(v["type"], "custom_alert");
        assert_eq!(
            v["attachments"][0]["fields"][0],
            serde_json::json!({"title": "n", "value": "1", "short": true})
        );
        assert!(v["attachments"][0].get("title_link").is_none());
        assert_eq!(v["props"]["card"], "card firing");
        assert_eq!(
            v["priority"],
            serde_json::json!({"priority": "urgent", "requested_ack": true, "persistent_notifications": true})
        );
        let p = notifier(serde_json::json!({
            "priority": {"priority": "whatever", "requested_ack": true, "persistent_notifications": true},
            "props": {"card": ""},
        }))
        .payload(&n)
        .unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v["priority"],
            serde_json::json!({"priority": "standard", "requested_ack": false, "persistent_notifications": false})
        );
        assert!(v.get("props").is_none());
    }

    #[test]
    fn config_takes_the_global_url_and_checks_fields() {
        let mut g = GlobalConfig::default();
        let mut c: MattermostConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(c
            .validate(Path::new("."), &g)
            .unwrap_err()
            .contains("webhook_url: required"));
        g.mattermost_webhook_url = Some(Secret::new("https://mm.test/hooks/G"));
        c.validate(Path::new("."), &g).unwrap();
        assert_eq!(c.webhook_url.unwrap().expose(), "https://mm.test/hooks/G");
        let mut c: MattermostConfig = serde_json::from_value(
            serde_json::json!({"attachments": [{"fields": [{"title": "a", "value": ""}]}]}),
        )
        .unwrap();
        let e = c.validate(Path::new("."), &g).unwrap_err();
        assert_eq!(e, "attachments[0].fields[0].value: required");
        let c: MattermostConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(c.send_resolved);
    }

    #[test]
    fn rate_limit_reset_header_is_honoured() {
        let m = notifier(serde_json::json!({}));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-ratelimit-reset", "7".parse().unwrap());
        let e = m.failure(&RawReply {
            status: 429,
            retry_after: None,
            headers,
            body: "too many".into(),
        });
        assert!(matches!(
            e,
            NotifyError::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(7)
        ));
        let e = m.failure(&RawReply {
            status: 400,
            retry_after: None,
            headers: Default::default(),
            body: "Unable to parse incoming data https://mm.test/hooks/SECRETKEY".into(),
        });
        assert!(matches!(e, NotifyError::Permanent { .. }));
        assert!(!e.to_string().contains("SECRETKEY"), "{e}");
    }
}
