//! Webex (Messages API, as a bot): one markdown message per notification, posted to a
//! room with the bot's token from `http_config.authorization`.
//!
//! The message: the subject in bold, one line per alert (firing first, "…and N more
//! alerts" at Webex's 7,439-byte limit) and a link to the router's view of the alerts.
//! Every interpolated value is escaped (`&`, `<`, `>` as entities, markdown punctuation
//! with `\`), so a label can neither format, link, nor mention anyone (`<@all>`).
//!
//! With `update_message: true` a group's later notifications edit the message that shows
//! its current episode (`PUT /v1/messages/{id}`) instead of posting; an edit answered 404
//! (message deleted), or refused because the message reached Webex's edit limit, posts a
//! new message, which later edits then follow.

use super::http::{classify, parse_retry_after, transport_error, HttpReply, DEFAULT_TIMEOUT};
use super::http_config::{HttpClient, HttpConfig};
use super::msteams::{alert_lines, escape_markdown, markdown_link, non_empty};
use super::{Delivered, FailureReason, Notifier, NotifyError, RenderedRequest};
use crate::alert::Status;
use crate::config::{GlobalConfig, RateLimit};
use crate::duration::AmDuration;
use crate::secret::Secret;
use crate::store::Notification;
use crate::template::{alerts_url, one_line, subject, truncate, urlencode, Templates};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Default when `rate_limit` is not set. Webex publishes no number (limits vary per
/// endpoint, app and organisation; exceeding them answers 429 with `Retry-After`, which is
/// honoured): one message per second with bursts of 5 keeps a busy router clear of it.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 60,
    per: AmDuration(Duration::from_secs(60)),
    burst: Some(5),
};

/// Alertmanager's (and Webex's) default endpoint.
pub const DEFAULT_API_URL: &str = "https://webexapis.com/v1/messages";
/// Webex's limit for `markdown` (and `text`), in bytes.
pub const MAX_MARKDOWN: usize = 7439;
/// Subject budget (characters, before escaping).
const MAX_SUBJECT: usize = 300;
/// Room kept for the "…and N more alerts" line.
const MORE_RESERVE: usize = 40;
/// How much of any response body is read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// `webex_configs` entry (Alertmanager's keys, plus the router's).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebexConfig {
    /// Must hold `authorization` (the bot token).
    #[serde(default)]
    pub http_config: HttpConfig,
    /// Default `global.webex_api_url`, else [`DEFAULT_API_URL`].
    #[serde(default)]
    pub api_url: Option<String>,
    /// Template of the room id.
    #[serde(default)]
    pub room_id: String,
    /// Template of the markdown message.
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Storm digest threshold (see the README); default 10, 0 = never.
    #[serde(default)]
    pub digest_threshold: Option<usize>,
    #[serde(default)]
    pub timeout: Option<AmDuration>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Edit the group's message in place instead of posting a new one.
    #[serde(default)]
    pub update_message: bool,
}

fn yes() -> bool {
    true
}

impl WebexConfig {
    /// Resolve `http_config` (the bot token is required, as in Alertmanager), take
    /// `api_url` from `global`, check URL, templates and rate limit.
    pub fn validate(&mut self, base: &Path, g: &GlobalConfig) -> Result<(), String> {
        self.http_config.resolve(base)?;
        let has_token = self
            .http_config
            .authorization
            .as_ref()
            .and_then(|a| a.credentials.as_ref())
            .is_some_and(|c| !c.is_empty());
        if !has_token {
            return Err(
                "http_config.authorization.credentials: required (the Webex bot token, or credentials_file)"
                    .into(),
            );
        }
        let url = self
            .api_url
            .take()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| g.webex_api_url.clone())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        crate::config::check_url(&url).map_err(|m| format!("api_url: {m}"))?;
        self.api_url = Some(url);
        if self.room_id.trim().is_empty() {
            return Err("room_id: required".into());
        }
        for t in [Some(&self.room_id), self.message.as_ref()]
            .into_iter()
            .flatten()
        {
            crate::config::check_template(t)?;
        }
        if let Some(rl) = &self.rate_limit {
            crate::config::check_rate_limit(rl)?;
        }
        Ok(())
    }
}

/// The Webex integration.
pub struct WebexNotifier {
    api_url: String,
    client: HttpClient,
    templates: Arc<Templates>,
    room_id: String,
    message: Option<String>,
    send_resolved: bool,
    update_message: bool,
}

/// A failed request: the error, and the status and body when there was an answer.
struct Failure {
    error: NotifyError,
    status: Option<u16>,
    body: String,
}

impl WebexNotifier {
    pub fn new(c: &WebexConfig, t: Arc<Templates>) -> Result<Self, String> {
        let api_url = c
            .api_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        Ok(Self {
            api_url: api_url.trim_end_matches('/').to_string(),
            client: HttpClient::new(&c.http_config, c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0))?,
            templates: t,
            room_id: c.room_id.clone(),
            message: non_empty(&c.message),
            send_resolved: c.send_resolved,
            update_message: c.update_message,
        })
    }

    /// The body of a post or an edit: `{roomId, markdown}`, markdown ≤ [`MAX_MARKDOWN`]
    /// bytes.
    pub fn payload(&self, n: &Notification) -> Result<Value, NotifyError> {
        let msg = &n.message;
        let room = super::render(&self.templates, "room_id", &self.room_id, msg)?;
        let room = room.trim();
        if room.is_empty() {
            return Err(NotifyError::permanent(
                FailureReason::Other,
                "room_id: the template rendered nothing",
            ));
        }
        let markdown = match &self.message {
            Some(t) => truncate_bytes(
                super::render(&self.templates, "message", t, msg)?.trim(),
                MAX_MARKDOWN,
            ),
            None => default_markdown(n),
        };
        Ok(json!({"roomId": room, "markdown": markdown}))
    }

    /// Send `body` with `method` to `url` and classify the answer (2xx ok; 429 with
    /// `Retry-After` and 5xx retryable; other answers permanent).
    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: &Value,
    ) -> Result<HttpReply, Failure> {
        let url = Secret::new(url);
        let fail = |error| Failure {
            error,
            status: None,
            body: String::new(),
        };
        let mut resp = self
            .client
            .request(method, &url)
            .await
            .map_err(fail)?
            .json(body)
            .send()
            .await
            .map_err(|e| fail(transport_error(e, &url)))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, OffsetDateTime::now_utc()));
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            bytes.extend_from_slice(&chunk);
            if bytes.len() >= MAX_RESPONSE_BYTES {
                break;
            }
        }
        let body = String::from_utf8_lossy(&bytes).into_owned();
        match classify(status, retry_after, &body, &url) {
            Ok(()) => Ok(HttpReply { status, body }),
            Err(error) => Err(Failure {
                error,
                status: Some(status),
                body,
            }),
        }
    }

    /// Post a new message; its id (for later edits) from the answer.
    async fn post(&self, body: &Value) -> Result<Delivered, NotifyError> {
        let reply = self
            .call(reqwest::Method::POST, &self.api_url, body)
            .await
            .map_err(|f| f.error)?;
        let id = message_id(&reply.body);
        if id.is_none() {
            tracing::warn!(
                status = reply.status,
                "webex accepted the message but its answer has no message id; it cannot be edited later"
            );
        }
        Ok(Delivered { message_id: id })
    }

    /// Edit message `id`; `Ok(None)` when it is gone (404) or cannot be edited any more
    /// (Webex's per-message edit limit), so a new message must be posted.
    async fn edit(&self, id: &str, body: &Value) -> Result<Option<Delivered>, NotifyError> {
        let url = format!("{}/{}", self.api_url, urlencode(id));
        match self.call(reqwest::Method::PUT, &url, body).await {
            // The message keeps its id.
            Ok(_) => Ok(Some(Delivered {
                message_id: Some(id.to_string()),
            })),
            Err(f) if f.status == Some(404) => Ok(None),
            Err(f) if f.status == Some(400) && f.body.to_ascii_lowercase().contains("limit") => {
                Ok(None)
            }
            Err(f) => Err(f.error),
        }
    }
}

/// The `id` of the message object Webex answers with.
fn message_id(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Notifier for WebexNotifier {
    fn kind(&self) -> &'static str {
        "webex"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn updates_messages(&self) -> bool {
        self.update_message
    }

    fn send<'a>(
        &'a self,
        n: &'a Notification,
        edit: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Delivered, NotifyError>> {
        Box::pin(async move {
            let body = self.payload(n)?;
            if let (true, Some(id)) = (self.update_message, edit) {
                if let Some(d) = self.edit(id, &body).await? {
                    return Ok(d);
                }
                tracing::info!("webex message to edit is gone; posting a new one");
            }
            self.post(&body).await
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        Ok(vec![RenderedRequest {
            method: "POST".into(),
            url: self.api_url.clone(),
            headers: vec![
                ("Authorization".into(), "Bearer <secret>".into()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: self.payload(n)?,
        }])
    }
}

/// Subject in bold, one line per alert, a link to the alerts; at most [`MAX_MARKDOWN`]
/// bytes, whole lines only ("…and N more alerts" for the rest).
fn default_markdown(n: &Notification) -> String {
    let msg = &n.message;
    let emoji = match msg.status {
        Status::Firing => "🔥",
        Status::Resolved => "✅",
    };
    let subj = escape_markdown(&truncate(&one_line(&subject(msg)), MAX_SUBJECT), true);
    let head = format!("{emoji} **{subj}**");
    let mut url = alerts_url(msg);
    if url.len() > 2000 {
        url = url.split("&filter=").next().unwrap_or_default().to_string();
    }
    let link = markdown_link(&url, "View alerts");
    let lines = alert_lines(msg, true);
    let fixed = head.len() + 1 + if link.is_empty() { 0 } else { link.len() + 2 };
    let mut out = head;
    let mut len = fixed;
    let mut hidden = msg.truncated_alerts;
    for (i, line) in lines.iter().enumerate() {
        let later = (lines.len() - i - 1) as u64 + msg.truncated_alerts;
        let reserve = if later > 0 { MORE_RESERVE } else { 0 };
        if len + 1 + line.len() + reserve > MAX_MARKDOWN {
            hidden += (lines.len() - i) as u64;
            break;
        }
        out.push('\n');
        out.push_str(line);
        len += 1 + line.len();
    }
    if hidden > 0 {
        let noun = if hidden == 1 { "alert" } else { "alerts" };
        out.push_str(&format!("\n\n…and {hidden} more {noun}"));
    }
    if !link.is_empty() {
        out.push_str("\n\n");
        out.push_str(&link);
    }
    truncate_bytes(&out, MAX_MARKDOWN)
}

/// Cut `s` to at most `max` bytes on a character boundary, ending with "…" (3 bytes) when
/// anything was cut (Alertmanager's `TruncateInBytes`).
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = s[..cut].to_string();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::msteams::tests::{alert, hostile, notification};

    fn config(extra: Value) -> WebexConfig {
        let mut c = json!({
            "room_id": "Y2lzY29zcGFyazovL3VzL1JPT00v",
            "http_config": {"authorization": {"credentials": "BOTTOKEN"}},
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        serde_json::from_value(c).unwrap()
    }

    fn notifier(extra: Value) -> WebexNotifier {
        let mut c = config(extra);
        c.validate(Path::new("."), &GlobalConfig::default())
            .unwrap();
        WebexNotifier::new(&c, Arc::new(Templates::new())).unwrap()
    }

    #[test]
    fn default_message_shape() {
        let n = notification(vec![
            alert(
                &[("alertname", "Gone"), ("instance", "b")],
                Status::Resolved,
            ),
            alert(&[("alertname", "Disk"), ("instance", "a")], Status::Firing),
        ]);
        let v = notifier(json!({})).payload(&n).unwrap();
        assert_eq!(v["roomId"], "Y2lzY29zcGFyazovL3VzL1JPT00v");
        let md = v["markdown"].as_str().unwrap();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "🔥 **\\[FIRING:1\\]**", "{md}");
        assert!(
            lines[1].starts_with(
                "- 🔥 **Disk** · instance=a — disk is full [source](http://prom.test/"
            ),
            "{md}"
        );
        assert!(lines[2].starts_with("- ✅ **Gone**"), "{md}");
        assert_eq!(
            *lines.last().unwrap(),
            "[View alerts](http://router.test/admin/v1/alerts?receiver=ops)"
        );
        assert_eq!(v.as_object().unwrap().len(), 2);
    }

    #[test]
    fn hostile_labels_cannot_mention_format_or_link_and_fit() {
        let mut alerts = hostile(200);
        alerts[0]
            .labels
            .insert("alertname".into(), "<@all> <@personEmail:a@b.c|A>".into());
        let mut n = notification(alerts);
        n.message
            .group_labels
            .insert("instance".into(), "y".repeat(10_000));
        let md = notifier(json!({})).payload(&n).unwrap()["markdown"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(md.len() <= MAX_MARKDOWN, "{}", md.len());
        assert!(md.len() > MAX_MARKDOWN - 2000, "{}", md.len());
        assert!(!md.contains("<@"), "{md}");
        assert!(md.contains("&lt;@all&gt;"), "{md}");
        assert!(
            !md.contains("<b>") && !md.contains("[x]") && !md.contains(" *bold*"),
            "{md}"
        );
        let shown = md.lines().filter(|l| l.starts_with("- 🔥")).count();
        assert!(
            md.contains(&format!("…and {} more alerts", 200 - shown)),
            "{md}"
        );
    }

    #[test]
    fn message_template_is_cut_in_bytes() {
        let n = notification(vec![alert(&[("alertname", "X")], Status::Firing)]);
        let w = notifier(
            json!({"message": "{{ range 5000 }}é{{ end }}", "room_id": "{{ .CommonLabels.alertname }}-room"}),
        );
        let v = w.payload(&n).unwrap();
        assert_eq!(v["roomId"], "X-room");
        let md = v["markdown"].as_str().unwrap();
        assert!(
            md.len() <= MAX_MARKDOWN && md.ends_with('…'),
            "{}",
            md.len()
        );
        assert_eq!(truncate_bytes("aébc", 4), "a…");
        assert_eq!(truncate_bytes("ééé", 4), "…");
        assert_eq!(truncate_bytes("éébc", 5), "é…");
        assert_eq!(truncate_bytes("abcdéf", 6), "abc…");
        assert_eq!(truncate_bytes("abc", 3), "abc");
        let empty = notifier(json!({"room_id": "{{ .CommonLabels.nothing }}"}));
        assert!(matches!(
            empty.payload(&n),
            Err(NotifyError::Permanent { .. })
        ));
    }

    #[test]
    fn validation() {
        let g = GlobalConfig::default();
        let mut c = config(json!({}));
        c.validate(Path::new("."), &g).unwrap();
        assert_eq!(c.api_url.as_deref(), Some(DEFAULT_API_URL));
        assert!(c.send_resolved && !c.update_message);
        let g2 = GlobalConfig {
            webex_api_url: Some("https://webex.internal.test/v1/messages".into()),
            ..GlobalConfig::default()
        };
        let mut c = config(json!({}));
        c.validate(Path::new("."), &g2).unwrap();
        assert_eq!(
            c.api_url.as_deref(),
            Some("https://webex.internal.test/v1/messages")
        );
        let mut no_token: WebexConfig = serde_json::from_value(json!({"room_id": "r"})).unwrap();
        assert!(no_token
            .validate(Path::new("."), &g)
            .unwrap_err()
            .contains("http_config.authorization"));
        let mut no_room = config(json!({"room_id": ""}));
        assert!(no_room
            .validate(Path::new("."), &g)
            .unwrap_err()
            .contains("room_id"));
        let mut bad_url = config(json!({"api_url": "webexapis.com"}));
        assert!(bad_url
            .validate(Path::new("."), &g)
            .unwrap_err()
            .starts_with("api_url:"));
        let mut bad_tmpl = config(json!({"message": "{{ x"}));
        assert!(bad_tmpl.validate(Path::new("."), &g).is_err());
        assert!(
            serde_json::from_value::<WebexConfig>(json!({"room_id": "r", "token": "x"})).is_err()
        );
    }

    #[test]
    fn render_hides_the_token() {
        let n = notification(vec![alert(&[("alertname", "X")], Status::Firing)]);
        let r = Notifier::render(&notifier(json!({})), &n).unwrap();
        assert_eq!(r[0].url, DEFAULT_API_URL);
        assert!(!serde_json::to_string(&r).unwrap().contains("BOTTOKEN"));
    }
}
