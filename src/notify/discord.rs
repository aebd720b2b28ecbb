//! Discord integration (channel webhooks): one embed per notification, coloured by status,
//! listing the alerts; posted with `?wait=true` so Discord answers with the message, whose
//! `id` lets later notifications of the same episode edit it in place
//! (`update_message: true`, `PATCH {webhook_url}/messages/{id}`).
//!
//! Every request carries `allowed_mentions: {"parse": []}`, so nothing in an alert can
//! ping anyone, and interpolated values are escaped for Discord markdown. Each field is cut
//! to Discord's limits (content 2000, embed title 256, description 4096, 6000 across the
//! embed, username 80) instead of being rejected with `50035 Invalid Form Body`.
//!
//! A 429 is waited out as Discord asks: the JSON `retry_after` (float seconds) or the
//! `Retry-After` header, whichever is longer; with `global: true` every Discord
//! integration sending to that host waits too.

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
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default when `rate_limit` is not set: Discord publishes no number for webhooks (its
/// headers drive clients); observed limits are 5 requests per 2 s per webhook and 30
/// messages per minute per channel, so 30/min with a burst of 5.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 30,
    per: AmDuration(Duration::from_secs(60)),
    burst: Some(5),
};

/// `content` limit.
pub const MAX_CONTENT: usize = 2000;
/// Embed title limit.
pub const MAX_TITLE: usize = 256;
/// Embed description limit.
pub const MAX_DESCRIPTION: usize = 4096;
/// Limit of all text across the embeds of a message.
pub const MAX_EMBED_TOTAL: usize = 6000;
/// Webhook username limit.
pub const MAX_USERNAME: usize = 80;
/// Footer budget (Discord allows 2048; ours is a short signature, and keeping it small
/// keeps title + description + footer under [`MAX_EMBED_TOTAL`]).
const MAX_FOOTER: usize = 100;

/// Embed colours (Alertmanager's): dark red while firing, green once resolved.
pub const COLOR_FIRING: u32 = 0x992D22;
pub const COLOR_RESOLVED: u32 = 0x2ECC71;

/// Discord JSON error code: the message to edit does not exist (deleted).
const UNKNOWN_MESSAGE: u64 = 10008;
/// Discord JSON error code: too many edits of a message older than an hour.
const EDIT_LIMIT_OLD_MESSAGE: u64 = 30046;

/// `discord_configs` entry: Alertmanager's keys plus the router's `update_message`,
/// `timeout` and `rate_limit`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    #[serde(default)]
    pub http_config: HttpConfig,
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// Embed title template (default: the subject line).
    #[serde(default)]
    pub title: Option<String>,
    /// Embed description template (default: one line per alert).
    #[serde(default)]
    pub message: Option<String>,
    /// Plain message text template above the embed (default: none).
    #[serde(default)]
    pub content: Option<String>,
    /// Overrides the webhook's name (not templated, as in Alertmanager).
    #[serde(default)]
    pub username: Option<String>,
    /// Overrides the webhook's avatar; used only if it is an http(s) URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Storm digest threshold (see the README); default 10, 0 = never.
    #[serde(default)]
    pub digest_threshold: Option<usize>,
    /// Edit the group's message instead of posting a new one, for as long as the episode
    /// lasts (a notification after a full resolve starts a new message).
    #[serde(default)]
    pub update_message: bool,
    #[serde(default)]
    pub timeout: Option<AmDuration>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

impl DiscordConfig {
    /// Read `webhook_url_file`, resolve `http_config` and check everything a send relies on.
    pub fn validate(&mut self, base: &Path, _g: &GlobalConfig) -> Result<(), String> {
        self.http_config.resolve(base)?;
        secret_or_file(
            &mut self.webhook_url,
            &mut self.webhook_url_file,
            base,
            "webhook_url",
        )?;
        match &self.webhook_url {
            Some(u) => check_url(u.expose()).map_err(|m| format!("webhook_url: {m}"))?,
            None => {
                return Err(
                    "webhook_url: one of webhook_url or webhook_url_file is required".into(),
                )
            }
        }
        for (key, t) in [
            ("title", &self.title),
            ("message", &self.message),
            ("content", &self.content),
        ] {
            if let Some(t) = t {
                check_template(t).map_err(|m| format!("{key}: {m}"))?;
            }
        }
        if let Some(rl) = &self.rate_limit {
            check_rate_limit(rl)?;
        }
        Ok(())
    }
}

/// The Discord webhook integration.
pub struct DiscordNotifier {
    url: Secret,
    client: HttpClient,
    templates: Arc<Templates>,
    title: Option<String>,
    message: Option<String>,
    content: Option<String>,
    username: Option<String>,
    avatar_url: Option<String>,
    send_resolved: bool,
    update_message: bool,
    /// `host:port` of the webhook URL: the scope of a global rate limit.
    authority: String,
}

/// The execute/edit webhook body.
#[derive(Debug, Serialize)]
pub struct DiscordPayload {
    pub content: String,
    pub embeds: Vec<Embed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    pub allowed_mentions: AllowedMentions,
}

#[derive(Debug, Serialize)]
pub struct Embed {
    pub title: String,
    pub description: String,
    pub color: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub footer: Footer,
}

#[derive(Debug, Serialize)]
pub struct Footer {
    pub text: String,
}

/// `{"parse": []}`: no `@everyone`, role or user mention in the message notifies anyone.
#[derive(Debug, Serialize)]
pub struct AllowedMentions {
    pub parse: [&'static str; 0],
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.trim().is_empty()).cloned()
}

/// Escape text for Discord markdown: a backslash before every character that formats,
/// quotes, links or starts a mention/timestamp (`<@…>`, `<t:…>`), and a zero-width space
/// after `@` so `@everyone` is not even shown as a mention.
pub fn discord_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '[' | ']' | '(' | ')' => {
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
    escape: discord_escape,
    bold: |s| format!("**{s}**"),
    link: |url, label| format!("[{}]({})", discord_escape(label), markup_safe_url(url)),
    len: text_len,
    firing: "🔥",
    resolved: "✅",
};

impl DiscordNotifier {
    pub fn new(c: &DiscordConfig, templates: Arc<Templates>) -> Result<Self, String> {
        let url = c
            .webhook_url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or("webhook_url: required")?;
        let parsed = reqwest::Url::parse(url.expose())
            .map_err(|_| "webhook_url: not a valid URL".to_string())?;
        let authority = format!(
            "{}:{}",
            parsed.host_str().unwrap_or(""),
            parsed.port_or_known_default().unwrap_or(0)
        );
        // Alertmanager sends the avatar only if it parses as a URL; Discord wants http(s).
        let avatar_url = non_empty(&c.avatar_url).filter(|u| check_url(u).is_ok());
        Ok(Self {
            url,
            client: HttpClient::new(&c.http_config, c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0))?,
            templates,
            title: non_empty(&c.title),
            message: non_empty(&c.message),
            content: non_empty(&c.content),
            username: non_empty(&c.username).map(|u| truncate(&one_line(u.trim()), MAX_USERNAME)),
            avatar_url,
            send_resolved: c.send_resolved,
            update_message: c.update_message,
            authority,
        })
    }

    fn render_field(
        &self,
        what: &str,
        source: &str,
        msg: &WebhookMessage,
    ) -> Result<String, NotifyError> {
        super::render(&self.templates, what, source, msg)
    }

    /// The body posted for notification `n`.
    pub fn payload(&self, n: &Notification) -> Result<DiscordPayload, NotifyError> {
        let msg = &n.message;
        let title = match &self.title {
            Some(t) => one_line(self.render_field("title", t, msg)?.trim()),
            None => discord_escape(&one_line(&subject(msg))),
        };
        let description = match &self.message {
            Some(t) => self.render_field("message", t, msg)?.trim().to_string(),
            None => alert_list(msg, MAX_DESCRIPTION, &MARKUP),
        };
        let content = match &self.content {
            Some(t) => self.render_field("content", t, msg)?.trim().to_string(),
            None => String::new(),
        };
        let link = alerts_url(msg);
        let footer = truncate(
            &format!("alert-router · {}", one_line(&n.receiver)),
            MAX_FOOTER,
        );
        Ok(DiscordPayload {
            content: truncate(&content, MAX_CONTENT),
            embeds: vec![Embed {
                title: truncate(&title, MAX_TITLE),
                description: truncate(&description, MAX_DESCRIPTION),
                color: match msg.status {
                    Status::Firing => COLOR_FIRING,
                    Status::Resolved => COLOR_RESOLVED,
                },
                url: check_url(&link).is_ok().then_some(link),
                footer: Footer { text: footer },
            }],
            username: self.username.clone(),
            avatar_url: self.avatar_url.clone(),
            allowed_mentions: AllowedMentions { parse: [] },
        })
    }

    /// `{webhook_url}?wait=true` (other query parameters, such as `thread_id`, kept).
    fn post_url(&self) -> Secret {
        let mut u = match reqwest::Url::parse(self.url.expose()) {
            Ok(u) => u,
            Err(_) => return self.url.clone(),
        };
        let others: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| k != "wait")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        u.query_pairs_mut()
            .clear()
            .extend_pairs(others)
            .append_pair("wait", "true");
        Secret::new(String::from(u))
    }

    /// `{webhook_url}/messages/{id}` (without `wait`, which edits do not take).
    fn edit_url(&self, id: &str) -> Result<Secret, NotifyError> {
        let bad = || NotifyError::permanent(FailureReason::Other, "webhook_url: not a valid URL");
        let mut u = reqwest::Url::parse(self.url.expose()).map_err(|_| bad())?;
        let others: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| k != "wait")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        u.path_segments_mut()
            .map_err(|_| bad())?
            .pop_if_empty()
            .push("messages")
            .push(id);
        if others.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(others);
        }
        Ok(Secret::new(String::from(u)))
    }

    /// A failed answer as an error: Discord's own 429 signals (JSON `retry_after`,
    /// `global`) on top of the shared classification.
    fn failure(&self, r: &RawReply, url: &Secret) -> NotifyError {
        let mut retry_after = r.retry_after;
        if r.status == 429 {
            let (body_wait, global) = rate_limit_body(&r.body);
            retry_after = retry_after.max(body_wait);
            if global {
                if let Some(w) = retry_after {
                    block_host(&self.authority, w);
                }
            }
        }
        match classify(r.status, retry_after, &r.body, url) {
            Err(e) => e,
            Ok(()) => NotifyError::permanent(FailureReason::Other, "unexpected success"),
        }
    }
}

/// `retry_after` (float seconds, capped like a header) and `global` of a 429 body.
fn rate_limit_body(body: &str) -> (Option<Duration>, bool) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let wait = v["retry_after"]
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(super::http::MAX_RETRY_AFTER.as_secs_f64())));
    (wait, v["global"].as_bool().unwrap_or(false))
}

/// Discord JSON error `code` of an error body.
fn error_code(body: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("code")?
        .as_u64()
}

/// Hosts under a global rate limit, and until when: every Discord integration sending
/// there waits (a global limit counts all requests of this client, not one webhook's).
static GLOBAL_LIMITS: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

fn block_host(authority: &str, wait: Duration) {
    let until = Instant::now() + wait;
    let mut g = super::lock(&GLOBAL_LIMITS);
    let m = g.get_or_insert_with(HashMap::new);
    let e = m.entry(authority.to_string()).or_insert(until);
    *e = (*e).max(until);
}

fn host_blocked(authority: &str) -> Option<Duration> {
    let mut g = super::lock(&GLOBAL_LIMITS);
    let m = g.as_mut()?;
    let now = Instant::now();
    m.retain(|_, until| *until > now);
    m.get(authority).map(|until| *until - now)
}

impl Notifier for DiscordNotifier {
    fn kind(&self) -> &'static str {
        "discord"
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
            if let Some(wait) = host_blocked(&self.authority) {
                return Err(NotifyError::Retryable {
                    message: "Discord global rate limit in effect".into(),
                    reason: FailureReason::RateLimited,
                    retry_after: Some(wait),
                });
            }
            let mut payload = self.payload(n)?;
            if let Some(id) = edit {
                let url = self.edit_url(id)?;
                // The author of a message cannot be changed by an edit.
                let (username, avatar) = (payload.username.take(), payload.avatar_url.take());
                let r = send_json(&self.client, reqwest::Method::PATCH, &url, &payload).await?;
                if (200..300).contains(&r.status) {
                    return Ok(Delivered {
                        message_id: Some(message_id(&r.body).unwrap_or_else(|| id.to_string())),
                    });
                }
                let code = error_code(&r.body);
                let gone = r.status == 404
                    || matches!(code, Some(UNKNOWN_MESSAGE | EDIT_LIMIT_OLD_MESSAGE));
                if !gone {
                    return Err(self.failure(&r, &url));
                }
                tracing::info!(
                    status = r.status,
                    ?code,
                    "discord message can no longer be edited; posting a new one"
                );
                payload.username = username;
                payload.avatar_url = avatar;
            }
            let url = self.post_url();
            let r = send_json(&self.client, reqwest::Method::POST, &url, &payload).await?;
            if !(200..300).contains(&r.status) {
                return Err(self.failure(&r, &url));
            }
            Ok(Delivered {
                message_id: message_id(&r.body),
            })
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        Ok(vec![rendered_post(&self.post_url(), &self.payload(n)?)])
    }
}

/// The `id` of the message object Discord answers with (`?wait=true`, or an edit).
fn message_id(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    match &v["id"] {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Total embed text as Discord counts it against [`MAX_EMBED_TOTAL`].
pub fn embed_text_len(e: &Embed) -> usize {
    text_len(&e.title) + text_len(&e.description) + text_len(&e.footer.text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Fingerprint, LabelSet, WebhookAlert, ZERO_TIME};

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
            generator_url: "http://prom.test/graph?g0.expr=up(x)".into(),
        }
    }

    pub(crate) fn notification(alerts: Vec<WebhookAlert>) -> Notification {
        crate::notify::fixtures::notification("discord", alerts)
    }

    fn notifier(extra: serde_json::Value) -> DiscordNotifier {
        let mut c = serde_json::json!({"webhook_url": "https://discord.test/api/webhooks/1/TOKEN"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let c: DiscordConfig = serde_json::from_value(c).unwrap();
        DiscordNotifier::new(&c, Arc::new(Templates::new())).unwrap()
    }

    #[test]
    fn default_payload_escapes_and_never_pings() {
        let n = notification(vec![alert(
            &[
                ("alertname", "@everyone *bold* [x](http://evil)"),
                ("instance", "<@123> <t:1:R> `code`"),
            ],
            Status::Firing,
        )]);
        let p = notifier(serde_json::json!({})).payload(&n).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["allowed_mentions"], serde_json::json!({"parse": []}));
        assert_eq!(v["content"], "");
        assert!(v.get("username").is_none());
        let e = &p.embeds[0];
        assert_eq!(e.color, COLOR_FIRING);
        assert!(e.title.starts_with("\\[FIRING:1\\]"), "{}", e.title);
        let d = &e.description;
        assert!(
            d.starts_with("🔥 **@\u{200B}everyone \\*bold\\* \\[x\\]\\(http://evil\\)**"),
            "{d}"
        );
        assert!(
            d.contains("instance=\\<@\u{200B}123\\> \\<t:1:R\\> \\`code\\`"),
            "{d}"
        );
        assert!(
            d.ends_with("[source](http://prom.test/graph?g0.expr=up%28x%29)"),
            "{d}"
        );
        assert!(!d.contains("@everyone"));
        assert_eq!(
            e.url.as_deref(),
            Some("http://router.test/admin/v1/alerts?receiver=ops")
        );
        let resolved = notification(vec![alert(&[("alertname", "A")], Status::Resolved)]);
        let p = notifier(serde_json::json!({})).payload(&resolved).unwrap();
        assert_eq!(p.embeds[0].color, COLOR_RESOLVED);
    }

    #[test]
    fn every_field_stays_within_discord_limits() {
        let huge = "x".repeat(10_000);
        let alerts = (0..300)
            .map(|i| {
                alert(
                    &[("alertname", &huge), ("instance", &format!("host-{i}"))],
                    Status::Firing,
                )
            })
            .collect();
        let n = notification(alerts);
        let p = notifier(serde_json::json!({"username": "u".repeat(200)}))
            .payload(&n)
            .unwrap();
        let e = &p.embeds[0];
        assert!(text_len(&e.title) <= MAX_TITLE);
        assert!(text_len(&e.description) <= MAX_DESCRIPTION);
        assert!(embed_text_len(e) <= MAX_EMBED_TOTAL);
        assert!(text_len(p.username.as_deref().unwrap()) <= MAX_USERNAME);
        assert!(e.description.contains("more alerts"), "{}", e.description);
        // user templates are cut too
        let p = notifier(serde_json::json!({
            "content": "{{ range 3000 }}ab{{ end }}",
            "message": "{{ range 3000 }}ab{{ end }}",
            "title": "{{ range 300 }}ab{{ end }}",
        }))
        .payload(&n)
        .unwrap();
        assert_eq!(text_len(&p.content), MAX_CONTENT);
        assert!(p.content.ends_with('…'));
        assert_eq!(text_len(&p.embeds[0].description), MAX_DESCRIPTION);
        assert_eq!(text_len(&p.embeds[0].title), MAX_TITLE);
        assert!(embed_text_len(&p.embeds[0]) <= MAX_EMBED_TOTAL);
    }

    #[test]
    fn urls_for_post_and_edit_keep_the_thread() {
        let d = notifier(serde_json::json!({
            "webhook_url": "https://discord.test/api/webhooks/1/TOKEN?thread_id=9&wait=false"
        }));
        assert_eq!(
            d.post_url().expose(),
            "https://discord.test/api/webhooks/1/TOKEN?thread_id=9&wait=true"
        );
        assert_eq!(
            d.edit_url("77").unwrap().expose(),
            "https://discord.test/api/webhooks/1/TOKEN/messages/77?thread_id=9"
        );
        let d = notifier(serde_json::json!({}));
        assert_eq!(
            d.edit_url("77").unwrap().expose(),
            "https://discord.test/api/webhooks/1/TOKEN/messages/77"
        );
        let r = d.render(&notification(vec![])).unwrap();
        assert!(!r[0].url.contains("TOKEN"), "{}", r[0].url);
    }

    #[test]
    fn rate_limit_bodies_and_ids_are_read() {
        let (w, g) = rate_limit_body(
            r#"{"message":"You are being rate limited.","retry_after":1.5,"global":true}"#,
        );
        assert_eq!(w, Some(Duration::from_millis(1500)));
        assert!(g);
        assert_eq!(rate_limit_body("nope"), (None, false));
        assert_eq!(
            message_id(r#"{"id":"1234","channel_id":"5"}"#).as_deref(),
            Some("1234")
        );
        assert_eq!(message_id(""), None);
        assert_eq!(
            error_code(r#"{"code":10008,"message":"Unknown Message"}"#),
            Some(10008)
        );
        let d = notifier(serde_json::json!({}));
        let url = d.post_url();
        let e = d.failure(
            &RawReply {
                status: 429,
                retry_after: Some(Duration::from_secs(1)),
                headers: Default::default(),
                body: r#"{"retry_after":2.25,"global":false}"#.into(),
            },
            &url,
        );
        match e {
            NotifyError::Retryable {
                retry_after: Some(w),
                reason: FailureReason::RateLimited,
                ..
            } => assert_eq!(w, Duration::from_millis(2250)),
            other => panic!("{other:?}"),
        }
        let e = d.failure(
            &RawReply {
                status: 400,
                retry_after: None,
                headers: Default::default(),
                body: r#"{"code":50035,"message":"Invalid Form Body"}"#.into(),
            },
            &url,
        );
        assert!(matches!(e, NotifyError::Permanent { .. }), "{e:?}");
        assert!(!e.to_string().contains("TOKEN"));
    }

    #[test]
    fn config_requires_one_url_and_checks_templates() {
        let g = GlobalConfig::default();
        let mut c: DiscordConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(c
            .validate(Path::new("."), &g)
            .unwrap_err()
            .contains("webhook_url"));
        let mut c: DiscordConfig = serde_json::from_value(
            serde_json::json!({"webhook_url": "http://d/x", "title": "{{ x"}),
        )
        .unwrap();
        assert!(c
            .validate(Path::new("."), &g)
            .unwrap_err()
            .starts_with("title: template error"));
        let c: DiscordConfig =
            serde_json::from_value(serde_json::json!({"webhook_url": "http://d/x"})).unwrap();
        assert!(c.send_resolved && !c.update_message);
    }
}
