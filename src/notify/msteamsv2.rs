//! Microsoft Teams through a Workflows (Power Automate) webhook, the replacement of the
//! retired Office 365 connectors: one Adaptive Card per notification, wrapped in the
//! `{"type":"message","attachments":[…]}` envelope the "Post to a channel when a webhook
//! request is received" template expects.
//!
//! The card: a title coloured by status (in a container styled the same way), a FactSet
//! of the group's key labels, one line per alert (firing first, "…and N more alerts" when
//! the ~28 KB message limit is reached) and an `Action.OpenUrl` to the router's view of
//! the alerts. Every interpolated value is escaped for the card's markdown. Workflows
//! answer 202 without a message id, so messages are never edited.

use super::http::DEFAULT_TIMEOUT;
use super::http_config::{HttpClient, HttpConfig};
use super::msteams::{
    alert_lines, bounded_alerts_url, escape_markdown, fit_lines, fit_text, json_len, non_empty,
    post_teams, resolve_webhook_url, status_level, Level,
};
use super::{Delivered, Notifier, NotifyError, RenderedRequest};
use crate::alert::WebhookMessage;
use crate::config::{GlobalConfig, RateLimit};
use crate::duration::AmDuration;
use crate::secret::{Secret, REDACTED};
use crate::store::Notification;
use crate::template::{key_labels, one_line, subject, truncate, Templates};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default when `rate_limit` is not set. Workflows publish no per-webhook limit; the flow
/// posts as a bot, and Teams allows a bot 7 operations per second, 60 per 30 s and 1800
/// per hour in one thread: 1800 per hour with bursts of 4 stays inside all three.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 1800,
    per: AmDuration(Duration::from_secs(3600)),
    burst: Some(4),
};

/// Title budget (characters).
pub const MAX_TITLE: usize = 400;
/// At most this many facts (group labels first, then the common key labels).
const MAX_FACTS: usize = 10;
/// Budget of a fact's value (characters).
const MAX_FACT: usize = 200;
/// Adaptive Card version: Workflows render at most 1.4.
pub const CARD_VERSION: &str = "1.4";

/// `msteamsv2_configs` entry (Alertmanager's keys, plus the router's).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MsTeamsV2Config {
    #[serde(default)]
    pub http_config: HttpConfig,
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
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

fn yes() -> bool {
    true
}

impl MsTeamsV2Config {
    /// Read `webhook_url_file`, resolve `http_config`, check the URL, templates and rate
    /// limit.
    pub fn validate(&mut self, base: &Path, _g: &GlobalConfig) -> Result<(), String> {
        self.http_config.resolve(base)?;
        resolve_webhook_url(&mut self.webhook_url, self.webhook_url_file.take(), base)?;
        for t in [&self.title, &self.text].into_iter().flatten() {
            crate::config::check_template(t)?;
        }
        if let Some(rl) = &self.rate_limit {
            crate::config::check_rate_limit(rl)?;
        }
        Ok(())
    }
}

/// The Teams Workflows integration.
pub struct MsTeamsV2Notifier {
    url: Secret,
    client: HttpClient,
    templates: Arc<Templates>,
    title: Option<String>,
    text: Option<String>,
    send_resolved: bool,
}

impl MsTeamsV2Notifier {
    pub fn new(c: &MsTeamsV2Config, t: Arc<Templates>) -> Result<Self, String> {
        let url = c
            .webhook_url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or("webhook_url: required")?;
        Ok(Self {
            url,
            client: HttpClient::new(&c.http_config, c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0))?,
            templates: t,
            title: non_empty(&c.title),
            text: non_empty(&c.text),
            send_resolved: c.send_resolved,
        })
    }

    /// The body sent for notification `n`: never over [`MAX_PAYLOAD`](super::msteams::MAX_PAYLOAD) bytes.
    pub fn payload(&self, n: &Notification) -> Result<Value, NotifyError> {
        let msg = &n.message;
        let render = |what: &str, source: &str| super::render(&self.templates, what, source, msg);
        let title = match &self.title {
            Some(t) => truncate(one_line(&render("title", t)?).trim(), MAX_TITLE),
            None => escape_markdown(&truncate(&one_line(&subject(msg)), MAX_TITLE), false),
        };
        let level = status_level(msg);
        let (color, style) = match level {
            Level::Firing => ("Attention", "attention"),
            Level::Warning => ("Warning", "warning"),
            Level::Resolved => ("Good", "good"),
        };
        let mut head = vec![json!({
            "type": "Container",
            "style": style,
            "bleed": true,
            "items": [{
                "type": "TextBlock",
                "text": title,
                "weight": "Bolder",
                "size": "Large",
                "color": color,
                "wrap": true,
            }],
        })];
        let facts = facts(msg);
        if !facts.is_empty() {
            head.push(json!({"type": "FactSet", "facts": facts}));
        }
        let card = |body: Vec<Value>| {
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": CARD_VERSION,
                        "msteams": {"width": "Full"},
                        "body": body,
                        "actions": [{
                            "type": "Action.OpenUrl",
                            "title": "View alerts",
                            "url": bounded_alerts_url(msg),
                        }],
                    },
                }],
            })
        };
        let text_block = |text: &str| json!({"type": "TextBlock", "text": text, "wrap": true});
        match &self.text {
            Some(t) => {
                let text = render("text", t)?;
                let with = |s: &str| {
                    let mut body = head.clone();
                    body.push(text_block(s));
                    card(body)
                };
                let text = fit_text(text.trim(), |s| json_len(&with(s)));
                Ok(with(&text))
            }
            None => {
                let lines = alert_lines(msg, false);
                let hidden = msg.truncated_alerts;
                let with = |k: usize| {
                    let mut body = head.clone();
                    body.extend(lines[..k].iter().map(|l| text_block(l)));
                    let more = (lines.len() - k) as u64 + hidden;
                    if more > 0 {
                        let noun = if more == 1 { "alert" } else { "alerts" };
                        body.push(json!({
                            "type": "TextBlock",
                            "text": format!("…and {more} more {noun}"),
                            "isSubtle": true,
                            "wrap": true,
                        }));
                    }
                    card(body)
                };
                let k = fit_lines(lines.len(), |k| json_len(&with(k)));
                Ok(with(k))
            }
        }
    }
}

/// The group's labels, then the common key labels (`instance`, `job`, `severity`, …),
/// escaped and bounded.
fn facts(msg: &WebhookMessage) -> Vec<Value> {
    let esc = |s: &str| escape_markdown(&truncate(one_line(s).trim(), MAX_FACT), false);
    let mut seen = Vec::new();
    let mut out = Vec::new();
    let common = key_labels(&msg.common_labels);
    let pairs = msg
        .group_labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(common);
    for (k, v) in pairs {
        if out.len() >= MAX_FACTS || seen.contains(&k) {
            continue;
        }
        seen.push(k);
        out.push(json!({"title": esc(k), "value": esc(v)}));
    }
    out
}

impl Notifier for MsTeamsV2Notifier {
    fn kind(&self) -> &'static str {
        "msteamsv2"
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
            // Workflows answer 202 Accepted (some flows 200) with no id: any 2xx is taken.
            post_teams(&self.client, &self.url, &payload).await?;
            Ok(Delivered::default())
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        Ok(vec![RenderedRequest {
            method: "POST".into(),
            url: REDACTED.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: self.payload(n)?,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Status;
    use crate::notify::msteams::tests::{alert, hostile, notification};
    use crate::notify::msteams::MAX_PAYLOAD;

    fn notifier(extra: &[(&str, &str)]) -> MsTeamsV2Notifier {
        let mut c = serde_json::json!({"webhook_url": "https://prod-1.westeurope.logic.azure.com/workflows/x/invoke?sig=SECRET"});
        for (k, v) in extra {
            c[*k] = serde_json::Value::String(v.to_string());
        }
        let c: MsTeamsV2Config = serde_json::from_value(c).unwrap();
        MsTeamsV2Notifier::new(&c, Arc::new(Templates::new())).unwrap()
    }

    #[test]
    fn adaptive_card_shape() {
        let mut n = notification(vec![
            alert(
                &[("alertname", "Disk"), ("instance", "a"), ("job", "node")],
                Status::Firing,
            ),
            alert(
                &[("alertname", "Disk"), ("instance", "b"), ("job", "node")],
                Status::Resolved,
            ),
        ]);
        n.message
            .group_labels
            .insert("alertname".into(), "Disk".into());
        let v = notifier(&[]).payload(&n).unwrap();
        assert_eq!(v["type"], "message");
        let att = &v["attachments"][0];
        assert_eq!(
            att["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert!(att["contentUrl"].is_null());
        let c = &att["content"];
        assert_eq!(c["type"], "AdaptiveCard");
        assert_eq!(c["version"], "1.4");
        assert_eq!(
            c["$schema"],
            "http://adaptivecards.io/schemas/adaptive-card.json"
        );
        let body = c["body"].as_array().unwrap();
        assert_eq!(body[0]["style"], "attention");
        assert_eq!(body[0]["items"][0]["color"], "Attention");
        assert_eq!(body[0]["items"][0]["text"], "\\[FIRING:1\\] Disk (node)");
        assert_eq!(body[1]["type"], "FactSet");
        assert_eq!(
            body[1]["facts"],
            json!([{"title": "alertname", "value": "Disk"}, {"title": "job", "value": "node"}])
        );
        assert!(
            body[2]["text"]
                .as_str()
                .unwrap()
                .starts_with("- 🔥 **Disk** · instance=a"),
            "{v}"
        );
        assert!(
            body[3]["text"]
                .as_str()
                .unwrap()
                .starts_with("- ✅ **Disk** · instance=b"),
            "{v}"
        );
        assert_eq!(body.len(), 4);
        assert_eq!(c["actions"][0]["type"], "Action.OpenUrl");
        assert!(c["actions"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://router.test/admin/v1/alerts?receiver=ops&filter="));
        let resolved = notification(vec![alert(&[("alertname", "X")], Status::Resolved)]);
        let v = notifier(&[]).payload(&resolved).unwrap();
        assert_eq!(v["attachments"][0]["content"]["body"][0]["style"], "good");
        assert_eq!(
            v["attachments"][0]["content"]["body"][0]["items"][0]["color"],
            "Good"
        );
    }

    #[test]
    fn hostile_labels_are_escaped_and_payload_fits() {
        let mut n = notification(hostile(300));
        n.message
            .group_labels
            .insert("instance".into(), "<b>".repeat(5_000));
        let v = notifier(&[]).payload(&n).unwrap();
        let len = serde_json::to_vec(&v).unwrap().len();
        assert!(len <= MAX_PAYLOAD && len > MAX_PAYLOAD - 3000, "{len}");
        let body = v["attachments"][0]["content"]["body"].as_array().unwrap();
        let lines: Vec<&str> = body.iter().filter_map(|b| b["text"].as_str()).collect();
        let shown = lines.iter().filter(|l| l.starts_with("- 🔥")).count();
        assert!(shown >= 1);
        assert_eq!(
            *lines.last().unwrap(),
            format!("…and {} more alerts", 300 - shown)
        );
        for l in &lines {
            assert!(
                !l.contains("[x]") && !l.contains(" *bold*") && !l.contains(" **Boom**"),
                "{l}"
            );
        }
        // The facts are escaped too.
        let facts = body[1]["facts"].to_string();
        assert!(facts.contains("\\\\*critical\\\\*"), "{facts}");
    }

    #[test]
    fn templates_replace_title_and_list() {
        let n = notification(vec![alert(&[("alertname", "X")], Status::Firing)]);
        let v = notifier(&[
            ("title", "T {{ .Status }}"),
            ("text", "**{{ len .Alerts }}** alerts"),
        ])
        .payload(&n)
        .unwrap();
        let body = v["attachments"][0]["content"]["body"].as_array().unwrap();
        assert_eq!(body[0]["items"][0]["text"], "T firing");
        assert_eq!(body.last().unwrap()["text"], "**1** alerts");
        let huge = notifier(&[("text", "{{ range 50000 }}\"{{ end }}")])
            .payload(&n)
            .unwrap();
        assert!(json_len(&huge) <= MAX_PAYLOAD);
    }

    #[test]
    fn render_redacts_the_url() {
        let n = notification(vec![alert(&[("alertname", "X")], Status::Firing)]);
        let r = Notifier::render(&notifier(&[]), &n).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].url, "<secret>");
        assert!(!serde_json::to_string(&r).unwrap().contains("SECRET"));
    }
}
