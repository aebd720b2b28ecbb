//! Rocket.Chat integration (REST `chat.postMessage` with a personal access token): one
//! message per notification, shaped like Alertmanager's (a coloured attachment with
//! title, link, text, fields and buttons), or — with `update_message: true` — a plain
//! markdown message that `chat.update` edits in place (Rocket.Chat can only edit a
//! message's `text`, not its attachments, so an editable message carries everything in
//! `text`).
//!
//! Credentials travel as `X-User-Id` / `X-Auth-Token` headers and never appear in an
//! error, a log line or the render output. Every interpolated value is escaped for
//! Rocket.Chat markdown (`*`, `_`, `~`, `` ` ``, `#` and `\` backslash-escaped; `@`, `<`
//! and `](` defused with a word joiner), so a label such as `@all`, `@here`, `*bold*` or
//! `[x](http://evil)` cannot ping, format or link. Texts are cut on a character boundary
//! to Rocket.Chat's default `Message_MaxAllowedSize` (5000 characters, which Rocket.Chat
//! counts in UTF-16 units) with "…and N more alerts".
//!
//! Answers: `success:false` is an error even with a 2xx; 401/403 are permanent
//! (authentication), 429 waits for `X-RateLimit-Reset` (absolute epoch milliseconds) or
//! the "wait N seconds" of the error text, 5xx and network errors are retried.

use super::http::{parse_retry_after, transport_error, DEFAULT_TIMEOUT, MAX_RETRY_AFTER};
use super::http_config::{HttpClient, HttpConfig};
use super::{Delivered, FailureReason, Notifier, NotifyError, RenderedRequest};
use crate::alert::{Status, WebhookAlert, WebhookMessage};
use crate::config::{GlobalConfig, RateLimit};
use crate::duration::AmDuration;
use crate::secret::{redact, Secret, REDACTED};
use crate::store::Notification;
use crate::template::{
    alert_name, alert_summary, alerts_url, firing_then_resolved, key_labels, one_line, subject,
    text_len, truncate, Templates,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Default when `rate_limit` is not set: Rocket.Chat's API rate limiter allows 10 calls
/// per 60 s per endpoint and client by default (`API_Enable_Rate_Limiter_Limit_Calls_Default`).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 10,
    per: AmDuration(Duration::from_secs(60)),
    burst: Some(3),
};

/// Rocket.Chat's default `Message_MaxAllowedSize`, applied to `text` and to each
/// attachment's `text` (JavaScript string length: UTF-16 units).
pub const MAX_TEXT: usize = 5000;
/// Attachment title limit (Alertmanager truncates to 1024 too).
pub const MAX_TITLE: usize = 1024;
/// Budget for one alert's line in the default text.
const MAX_LINE: usize = 1200;
/// Room kept for the "…and N more alerts" line.
const MORE_RESERVE: usize = 40;
/// Rocket.Chat's open server (`global.rocketchat_api_url` in Alertmanager).
pub const DEFAULT_API_URL: &str = "https://open.rocket.chat/";
const WORD_JOINER: char = '\u{2060}';

/// `fields` entry of `rocketchat_configs` (templated `title` and `value`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RocketchatField {
    #[serde(default)]
    pub short: Option<bool>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

/// `actions` entry of `rocketchat_configs`: like Alertmanager, a button whose `text`,
/// `url` and `msg` are templates; the other keys are accepted and not sent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RocketchatAction {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, alias = "imageurl")]
    pub image_url: Option<String>,
    #[serde(default, alias = "iswebview")]
    pub is_webview: bool,
    #[serde(default, alias = "webviewheightratio")]
    pub webview_height_ratio: Option<String>,
    #[serde(default)]
    pub msg: Option<String>,
    #[serde(default, alias = "msginchatwindow")]
    pub msg_in_chat_window: bool,
    #[serde(default, alias = "msgprocessingtype")]
    pub msg_processing_type: Option<String>,
}

/// `rocketchat_configs` entry: Alertmanager's keys and defaults, plus the router's own
/// `rate_limit`, `timeout` and `update_message`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RocketchatConfig {
    #[serde(default)]
    pub http_config: HttpConfig,
    /// Server root; `https://open.rocket.chat/` when unset.
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub token_id: Option<Secret>,
    #[serde(default)]
    pub token_id_file: Option<PathBuf>,
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub emoji: Option<String>,
    #[serde(default)]
    pub icon_url: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub title_link: Option<String>,
    #[serde(default)]
    pub fields: Vec<RocketchatField>,
    #[serde(default)]
    pub short_fields: bool,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub thumb_url: Option<String>,
    /// Accepted for compatibility; Alertmanager never sends it either.
    #[serde(default)]
    pub link_names: bool,
    #[serde(default)]
    pub actions: Vec<RocketchatAction>,
    #[serde(default)]
    pub send_resolved: bool,
    /// Storm digest threshold (see the README); default 10, 0 = never.
    #[serde(default)]
    pub digest_threshold: Option<usize>,
    #[serde(default)]
    pub timeout: Option<AmDuration>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Edit the group's message (`chat.update`) instead of posting a new one.
    #[serde(default)]
    pub update_message: bool,
}

fn read_secret(base: &Path, p: &Path, what: &str) -> Result<Secret, String> {
    crate::secret::read_file(base, p, what)
}

fn secret_or_file(
    base: &Path,
    value: &mut Option<Secret>,
    file: &mut Option<PathBuf>,
    key: &str,
) -> Result<(), String> {
    match (&value, file.take()) {
        (Some(_), Some(_)) => return Err(format!("set only one of {key} and {key}_file")),
        (None, Some(p)) => *value = Some(read_secret(base, &p, &format!("{key}_file"))?),
        (None, None) => return Err(format!("{key}: one of {key} or {key}_file is required")),
        (Some(_), None) => {}
    }
    let v = value.as_ref().map_or("", |s| s.expose());
    if v.is_empty() || !v.chars().all(|c| c.is_ascii_graphic()) {
        // Sent as a header value: only visible ASCII is possible.
        return Err(format!(
            "{key}: must be a non-empty token of visible ASCII characters"
        ));
    }
    Ok(())
}

impl RocketchatConfig {
    /// Read `*_file` keys relative to `base`, apply defaults and check every key.
    pub fn validate(&mut self, base: &Path, g: &GlobalConfig) -> Result<(), String> {
        self.http_config.resolve(base)?;
        let api = self.api_url.get_or_insert_with(|| {
            g.rocketchat_api_url
                .clone()
                .unwrap_or_else(|| DEFAULT_API_URL.into())
        });
        crate::config::check_url(api).map_err(|m| format!("api_url: {m}"))?;
        // Credentials not set on the receiver come from `global.rocketchat_token(_id)(_file)`.
        if self.token_id.is_none() && self.token_id_file.is_none() {
            self.token_id = g.rocketchat_token_id.clone();
            self.token_id_file = g.rocketchat_token_id_file.clone();
        }
        if self.token.is_none() && self.token_file.is_none() {
            self.token = g.rocketchat_token.clone();
            self.token_file = g.rocketchat_token_file.clone();
        }
        secret_or_file(
            base,
            &mut self.token_id,
            &mut self.token_id_file,
            "token_id",
        )?;
        secret_or_file(base, &mut self.token, &mut self.token_file, "token")?;
        if self.channel.as_deref().is_none_or(|c| c.trim().is_empty()) {
            return Err("channel: required (a #channel, @user or room id)".into());
        }
        let mut templates: Vec<(&str, &String)> = [
            ("channel", &self.channel),
            ("color", &self.color),
            ("emoji", &self.emoji),
            ("icon_url", &self.icon_url),
            ("text", &self.text),
            ("title", &self.title),
            ("title_link", &self.title_link),
            ("image_url", &self.image_url),
            ("thumb_url", &self.thumb_url),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        for f in &self.fields {
            templates.extend(f.title.iter().map(|t| ("fields.title", t)));
            templates.extend(f.value.iter().map(|t| ("fields.value", t)));
        }
        for a in &self.actions {
            templates.extend(a.text.iter().map(|t| ("actions.text", t)));
            templates.extend(a.url.iter().map(|t| ("actions.url", t)));
            templates.extend(a.msg.iter().map(|t| ("actions.msg", t)));
        }
        for (k, t) in templates {
            crate::config::check_template(t).map_err(|m| format!("{k}: {m}"))?;
        }
        if let Some(rl) = &self.rate_limit {
            crate::config::check_rate_limit(rl)?;
        }
        Ok(())
    }
}

/// Escape untrusted text for Rocket.Chat markdown, on one line.
pub fn rc_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    esc_into(&one_line(s), &mut out);
    out
}

fn esc_into(s: &str, out: &mut String) {
    let mut prev = '\0';
    for c in s.chars() {
        esc_char(prev, c, out);
        prev = c;
    }
}

/// One character `c` (after `prev`) escaped.
fn esc_char(prev: char, c: char, out: &mut String) {
    match c {
        '\\' | '*' | '_' | '~' | '`' | '#' => {
            out.push('\\');
            out.push(c);
        }
        // No mention (`@all`, `@here`, `@user`) and no `<http…|label>` link.
        '@' | '<' => {
            out.push(c);
            out.push(WORD_JOINER);
        }
        // `[label](url)` needs `](` together.
        '(' if prev == ']' => {
            out.push(WORD_JOINER);
            out.push(c);
        }
        c => out.push(c),
    }
}

/// Plain text (an attachment title): only `@` is defused, so no mention can form.
pub fn defuse_mentions(s: &str) -> String {
    s.replace('@', "@\u{2060}")
}

/// [`rc_escape`] of at most `max` UTF-16 units (escaped), ending with "…" when cut.
pub fn rc_escape_fit(s: &str, max: usize) -> String {
    let full = rc_escape(s);
    if text_len(&full) <= max {
        return full;
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut piece = String::new();
    let mut units = 0;
    let mut prev = '\0';
    for c in one_line(s).chars() {
        piece.clear();
        esc_char(prev, c, &mut piece);
        if units + text_len(&piece) > max - 1 {
            break;
        }
        units += text_len(&piece);
        out.push_str(&piece);
        prev = c;
    }
    while out.ends_with(' ') && !out.ends_with("\\ ") {
        out.pop();
    }
    out.push('…');
    out
}

/// A markdown link `[label](url)` with an escaped label; the label alone for a URL that
/// cannot be a safe link.
fn rc_link(url: &str, escaped_label: &str) -> String {
    let url = url.trim();
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 1000
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ')' || c == '(');
    if ok {
        format!("[{escaped_label}]({url})")
    } else {
        escaped_label.to_string()
    }
}

/// The Rocket.Chat integration.
pub struct RocketchatNotifier {
    api_url: String,
    token_id: Secret,
    token: Secret,
    client: HttpClient,
    templates: Arc<Templates>,
    c: RocketchatConfig,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.trim().is_empty())
}

/// What was wrong with an answer, before classification.
struct ApiFailure {
    status: u16,
    error: String,
    retry_after: Option<Duration>,
}

impl RocketchatNotifier {
    pub fn new(c: &RocketchatConfig, t: Arc<Templates>) -> Result<Self, String> {
        let token_id = c
            .token_id
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or("token_id: required")?;
        let token = c
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or("token: required")?;
        let mut api_url = c.api_url.clone().unwrap_or_else(|| DEFAULT_API_URL.into());
        if !api_url.ends_with('/') {
            api_url.push('/');
        }
        Ok(Self {
            api_url,
            token_id,
            token,
            client: HttpClient::new(&c.http_config, c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0))?,
            templates: t,
            c: c.clone(),
        })
    }

    fn tmpl(&self, what: &str, source: &str, msg: &WebhookMessage) -> Result<String, NotifyError> {
        Ok(super::render(&self.templates, what, source, msg)?
            .trim()
            .to_string())
    }

    fn opt(
        &self,
        what: &str,
        source: &Option<String>,
        msg: &WebhookMessage,
    ) -> Result<Option<String>, NotifyError> {
        match non_empty(source) {
            Some(s) => Ok(Some(self.tmpl(what, s, msg)?).filter(|s| !s.is_empty())),
            None => Ok(None),
        }
    }

    fn endpoint(&self, method: &str) -> String {
        format!("{}api/v1/{method}", self.api_url)
    }

    /// The `chat.postMessage` body for `n`.
    pub fn payload(&self, n: &Notification) -> Result<Value, NotifyError> {
        let msg = &n.message;
        let c = &self.c;
        let channel = self.opt("channel", &c.channel, msg)?.ok_or_else(|| {
            NotifyError::permanent(FailureReason::Other, "channel: renders empty")
        })?;
        let user_title = self.opt("title", &c.title, msg)?;
        // The attachment title is plain text (only mentions need defusing); in an
        // editable message the title is part of the markdown text.
        let title = match &user_title {
            Some(t) => truncate(&one_line(t), MAX_TITLE),
            None if c.update_message => rc_escape_fit(&subject(msg), MAX_TITLE),
            None => truncate(&defuse_mentions(&one_line(&subject(msg))), MAX_TITLE),
        };
        let title_link = self
            .opt("title_link", &c.title_link, msg)?
            .unwrap_or_else(|| alerts_url(msg));
        let mut body = json!({ "channel": channel });
        if let Some(e) = self.opt("emoji", &c.emoji, msg)? {
            body["emoji"] = json!(e);
        }
        if let Some(a) = self.opt("icon_url", &c.icon_url, msg)? {
            body["avatar"] = json!(a);
        }
        if c.update_message {
            // Everything in `text`, the only part `chat.update` can change.
            let icon = if msg.status == Status::Resolved {
                "✅"
            } else {
                "🔥"
            };
            let head = format!("{icon} *{title}* · {}", rc_link(&title_link, "alerts"));
            let budget = MAX_TEXT.saturating_sub(text_len(&head) + 1);
            let rest = match self.opt("text", &c.text, msg)? {
                Some(t) => truncate(&t, budget),
                None => default_text(msg, budget),
            };
            body["text"] = json!(format!("{head}\n{rest}"));
            return Ok(body);
        }
        let text = match self.opt("text", &c.text, msg)? {
            Some(t) => truncate(&t, MAX_TEXT),
            None => default_text(msg, MAX_TEXT),
        };
        let color = match self.opt("color", &c.color, msg)? {
            Some(col) => col,
            None if msg.status == Status::Firing => "red".into(),
            None => "green".into(),
        };
        let mut att = json!({
            "title": title,
            "title_link": title_link,
            "text": text,
            "color": color,
        });
        if let Some(u) = self.opt("image_url", &c.image_url, msg)? {
            att["image_url"] = json!(u);
        }
        if let Some(u) = self.opt("thumb_url", &c.thumb_url, msg)? {
            att["thumb_url"] = json!(u);
        }
        let mut fields = Vec::new();
        for f in &c.fields {
            let mut o = json!({ "short": f.short.unwrap_or(c.short_fields) });
            if let Some(t) = self.opt("fields.title", &f.title, msg)? {
                o["title"] = json!(truncate(&one_line(&t), MAX_TITLE));
            }
            if let Some(v) = self.opt("fields.value", &f.value, msg)? {
                o["value"] = json!(truncate(&v, MAX_TEXT));
            }
            fields.push(o);
        }
        if !fields.is_empty() {
            att["fields"] = Value::Array(fields);
        }
        let mut actions = Vec::new();
        for a in &c.actions {
            let mut o = json!({"type": "button", "is_webview": false, "msg_in_chat_window": false});
            for (k, v) in [("text", &a.text), ("url", &a.url), ("msg", &a.msg)] {
                if let Some(s) = self.opt(&format!("actions.{k}"), v, msg)? {
                    o[k] = json!(truncate(&s, MAX_TITLE));
                }
            }
            actions.push(o);
        }
        if !actions.is_empty() {
            att["actions"] = Value::Array(actions);
        }
        body["attachments"] = json!([att]);
        Ok(body)
    }

    /// POST `body` to `method`; the parsed answer on success.
    async fn call(
        &self,
        method: &str,
        body: &Value,
    ) -> Result<Value, Result<ApiFailure, NotifyError>> {
        let url = Secret::new(self.endpoint(method));
        let secrets = [&self.token, &self.token_id];
        let rb = self
            .client
            .request(reqwest::Method::POST, &url)
            .await
            .map_err(Err)?
            .header("X-User-Id", self.token_id.expose())
            .header("X-Auth-Token", self.token.expose());
        let mut resp = rb.json(body).send().await.map_err(|e| {
            let e = transport_error(e, &url);
            let message = redact(&e.to_string(), &secrets);
            Err(match e {
                NotifyError::Retryable { reason, .. } => NotifyError::retryable(reason, message),
                NotifyError::Permanent { reason, .. } => NotifyError::permanent(reason, message),
            })
        })?;
        let status = resp.status().as_u16();
        let now = OffsetDateTime::now_utc();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let reset = header("x-ratelimit-reset")
            .and_then(|v| v.trim().parse::<i128>().ok())
            .map(|ms| {
                let wait = ms - now.unix_timestamp_nanos() / 1_000_000;
                Duration::from_millis(wait.clamp(0, MAX_RETRY_AFTER.as_millis() as i128) as u64)
            });
        let retry_header = header("retry-after").and_then(|v| parse_retry_after(&v, now));
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            bytes.extend_from_slice(&chunk);
            if bytes.len() >= 64 * 1024 {
                break;
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let v: Option<Value> = serde_json::from_str(&text).ok();
        let success = v.as_ref().and_then(|v| v["success"].as_bool());
        if (200..300).contains(&status) && success != Some(false) {
            return match v {
                Some(v) => Ok(v),
                // Alertmanager retries an answer it cannot read.
                None => Err(Err(NotifyError::retryable(
                    FailureReason::Other,
                    format!(
                        "rocketchat: unreadable answer (status {status}): {}",
                        truncate(&one_line(&redact(text.trim(), &secrets)), 200)
                    ),
                ))),
            };
        }
        let mut error = match &v {
            Some(v) => {
                let e = v["error"].as_str().or(v["message"].as_str()).unwrap_or("");
                match v["errorType"].as_str() {
                    Some(t) if !e.contains(t) => format!("{e} [{t}]"),
                    _ => e.to_string(),
                }
            }
            None => text.trim().to_string(),
        };
        error = redact(&error, &secrets);
        let retry_after = reset
            .or(retry_header)
            .or_else(|| wait_seconds(&error).map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER)));
        Err(Ok(ApiFailure {
            status,
            error,
            retry_after,
        }))
    }

    async fn post(&self, body: &Value) -> Result<Option<String>, NotifyError> {
        let v = self
            .call("chat.postMessage", body)
            .await
            .map_err(|e| e.map_or_else(|e| e, classify))?;
        let id = v["message"]["_id"].as_str();
        let rid = v["message"]["rid"].as_str().or(v["channel"].as_str());
        match (rid, id) {
            (Some(rid), Some(id)) if !rid.contains(':') => Ok(Some(format!("{rid}:{id}"))),
            _ => {
                tracing::debug!("rocketchat accepted the message without a message id");
                Ok(None)
            }
        }
    }
}

/// `… wait 52 seconds …` in a rate-limit error text.
fn wait_seconds(error: &str) -> Option<u64> {
    let lower = error.to_ascii_lowercase();
    let i = lower.find("wait ")?;
    let digits: String = lower[i + 5..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn is_rate_limited(f: &ApiFailure) -> bool {
    f.status == 429
        || f.error.contains("too-many-requests")
        || f.error.contains("too many requests")
}

/// 401/403 permanent (authentication), 429 or a rate-limit error retryable with its
/// wait, 5xx retryable, anything else permanent.
fn classify(f: ApiFailure) -> NotifyError {
    let mut message = format!("rocketchat: status {}", f.status);
    let e = truncate(&one_line(f.error.trim()), 200);
    if !e.is_empty() {
        message.push_str(": ");
        message.push_str(&e);
    }
    if is_rate_limited(&f) {
        return NotifyError::Retryable {
            message,
            reason: FailureReason::RateLimited,
            retry_after: f.retry_after,
        };
    }
    match f.status {
        500..=599 => NotifyError::Retryable {
            message,
            reason: FailureReason::ServerError,
            retry_after: f.retry_after,
        },
        401 | 403 => NotifyError::permanent(FailureReason::AuthError, message),
        200..=299 | 400..=499 => NotifyError::permanent(FailureReason::ClientError, message),
        s => NotifyError::permanent(FailureReason::from_status(s), message),
    }
}

impl Notifier for RocketchatNotifier {
    fn kind(&self) -> &'static str {
        "rocketchat"
    }

    fn send_resolved(&self) -> bool {
        self.c.send_resolved
    }

    fn updates_messages(&self) -> bool {
        self.c.update_message
    }

    fn send<'a>(
        &'a self,
        n: &'a Notification,
        edit: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Delivered, NotifyError>> {
        Box::pin(async move {
            let body = self.payload(n)?;
            if let (true, Some((rid, mid))) =
                (self.c.update_message, edit.and_then(|e| e.split_once(':')))
            {
                let update = json!({
                    "roomId": rid,
                    "msgId": mid,
                    "text": body["text"].as_str().unwrap_or(""),
                });
                match self.call("chat.update", &update).await {
                    Ok(_) => {
                        return Ok(Delivered {
                            message_id: Some(format!("{rid}:{mid}")),
                        })
                    }
                    Err(Err(e)) => return Err(e),
                    Err(Ok(f)) => {
                        let lower = f.error.to_ascii_lowercase();
                        if (200..300).contains(&f.status) && lower.contains("not modified") {
                            return Ok(Delivered {
                                message_id: Some(format!("{rid}:{mid}")),
                            });
                        }
                        // Deleted, not editable any more, or another room: post anew.
                        if matches!(f.status, 200..=299 | 400 | 404) && !is_rate_limited(&f) {
                            tracing::info!(error = %f.error, "rocketchat: cannot edit the group's message; posting a new one");
                        } else {
                            return Err(classify(f));
                        }
                    }
                }
            }
            Ok(Delivered {
                message_id: self.post(&body).await?,
            })
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        Ok(vec![RenderedRequest {
            method: "POST".into(),
            url: self.endpoint("chat.postMessage"),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-User-Id".into(), REDACTED.into()),
                ("X-Auth-Token".into(), REDACTED.into()),
            ],
            body: self.payload(n)?,
        }])
    }
}

/// One line per alert (firing first), cut with "…and N more alerts" to fit `budget`.
fn default_text(msg: &WebhookMessage, budget: usize) -> String {
    let alerts: Vec<&WebhookAlert> = firing_then_resolved(msg).collect();
    let skip_common = alerts.len() > 1;
    let mut out = String::new();
    let mut len = 0;
    let mut hidden = msg.truncated_alerts;
    for (i, a) in alerts.iter().enumerate() {
        let line = alert_line(a, msg, skip_common);
        let sep = usize::from(!out.is_empty());
        let later = alerts.len() - i - 1 + msg.truncated_alerts as usize;
        let reserve = if later > 0 { MORE_RESERVE } else { 0 };
        if len + sep + text_len(&line) + reserve > budget {
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

/// `🔥 *Name* · instance=…, job=… — summary [source](url)`, at most [`MAX_LINE`] units.
fn alert_line(a: &WebhookAlert, msg: &WebhookMessage, skip_common: bool) -> String {
    let emoji = match a.status {
        Status::Firing => "🔥",
        Status::Resolved => "✅",
    };
    let mut line = format!("{emoji} *{}*", rc_escape_fit(alert_name(a), 120));
    let labels: Vec<String> = key_labels(&a.labels)
        .into_iter()
        .filter(|(k, v)| !(skip_common && msg.common_labels.get(*k).is_some_and(|c| c == v)))
        .take(6)
        .map(|(k, v)| format!("{}={}", rc_escape(k), rc_escape_fit(v, 80)))
        .collect();
    if !labels.is_empty() {
        line.push_str(" · ");
        line.push_str(&labels.join(", "));
    }
    if let Some(s) = alert_summary(a) {
        line.push_str(" — ");
        line.push_str(&rc_escape_fit(s, 300));
    }
    let source = rc_link(&a.generator_url, "source");
    if source != "source" && text_len(&line) + 1 + text_len(&source) <= MAX_LINE {
        line.push(' ');
        line.push_str(&source);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Fingerprint, LabelSet, ZERO_TIME};

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
        crate::notify::fixtures::notification("rocketchat", alerts)
    }

    fn config(extra: Value) -> RocketchatConfig {
        let mut c = json!({"token_id": "USERID123", "token": "SECRETTOKEN", "channel": "#alerts"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let mut c: RocketchatConfig = serde_json::from_value(c).unwrap();
        c.validate(Path::new("."), &GlobalConfig::default())
            .unwrap();
        c
    }

    fn notifier(extra: Value) -> RocketchatNotifier {
        RocketchatNotifier::new(&config(extra), Arc::new(Templates::new())).unwrap()
    }

    #[test]
    fn default_payload_is_alertmanagers_shape_with_escaped_text() {
        let n = notification(vec![
            alert(&[("alertname", "Gone")], Status::Resolved),
            alert(
                &[
                    ("alertname", "@all *bold* _it_"),
                    ("instance", "[x](http://evil) <http://evil|y> #general"),
                ],
                Status::Firing,
            ),
        ]);
        let s = notifier(json!({}));
        let p = s.payload(&n).unwrap();
        assert_eq!(p["channel"], "#alerts");
        assert!(p.get("text").is_none());
        let a = &p["attachments"][0];
        assert_eq!(a["color"], "red");
        assert_eq!(
            a["title_link"],
            "http://router.test/admin/v1/alerts?receiver=ops"
        );
        let text = a["text"].as_str().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("🔥 *@\u{2060}all \\*bold\\* \\_it\\_*"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("[x]\u{2060}(http://evil) <\u{2060}http://evil|y> \\#general"),
            "{}",
            lines[0]
        );
        assert!(lines[0].ends_with("[source](http://prom.test/graph?g0.expr=up)"));
        assert!(!text.contains("@all") && !text.contains("](http://evil"));
        let r = s.render(&n).unwrap();
        assert_eq!(r[0].url, "https://open.rocket.chat/api/v1/chat.postMessage");
        let dump = serde_json::to_string(&r).unwrap();
        assert!(
            !dump.contains("SECRETTOKEN") && !dump.contains("USERID123"),
            "{dump}"
        );
    }

    #[test]
    fn config_keys_fields_and_actions() {
        let s = notifier(json!({
            "api_url": "http://chat.test",
            "color": "{{ if eq .Status \"firing\" }}#ff0000{{ else }}#00ff00{{ end }}",
            "emoji": ":fire:", "icon_url": "https://i.test/a.png",
            "title": "{{ .Status | toUpper }}", "text": "{{ len .Alerts }} alerts",
            "image_url": "https://i.test/img.png", "thumb_url": "https://i.test/t.png",
            "short_fields": true, "link_names": true,
            "fields": [{"title": "sev", "value": "{{ .CommonLabels.severity }}"}, {"title": "x", "value": "y", "short": false}],
            "actions": [{"type": "link", "text": "Runbook", "url": "https://rb.test", "msg": "hi", "is_webview": true}],
        }));
        let n = notification(vec![alert(
            &[("alertname", "A"), ("severity", "page")],
            Status::Firing,
        )]);
        let p = s.payload(&n).unwrap();
        assert_eq!(p["emoji"], ":fire:");
        assert_eq!(p["avatar"], "https://i.test/a.png");
        let a = &p["attachments"][0];
        assert_eq!(a["title"], "FIRING");
        assert_eq!(a["text"], "1 alerts");
        assert_eq!(a["color"], "#ff0000");
        assert_eq!(
            a["fields"],
            json!([{"short": true, "title": "sev", "value": "page"}, {"short": false, "title": "x", "value": "y"}])
        );
        assert_eq!(
            a["actions"],
            json!([{"type": "button", "text": "Runbook", "url": "https://rb.test", "msg": "hi", "is_webview": false, "msg_in_chat_window": false}])
        );
        assert_eq!(
            s.endpoint("chat.update"),
            "http://chat.test/api/v1/chat.update"
        );
    }

    #[test]
    fn long_groups_fit_message_max_allowed_size() {
        let huge = "*_@".repeat(5000);
        let alerts: Vec<WebhookAlert> = (0..400)
            .map(|i| {
                alert(
                    &[("alertname", &huge), ("instance", &format!("h{i}{huge}"))],
                    Status::Firing,
                )
            })
            .collect();
        for update in [false, true] {
            let p = notifier(json!({"update_message": update}))
                .payload(&notification(alerts.clone()))
                .unwrap();
            let text = if update {
                p["text"].as_str().unwrap()
            } else {
                p["attachments"][0]["text"].as_str().unwrap()
            };
            assert!(text_len(text) <= MAX_TEXT, "{}", text_len(text));
            assert!(
                text.ends_with("more alerts"),
                "{}",
                &text[text.len() - 40..]
            );
            if update {
                assert!(p.get("attachments").is_none());
                assert!(text.starts_with("🔥 *[FIRING:400]"), "{}", &text[..40]);
            } else {
                assert!(text_len(p["attachments"][0]["title"].as_str().unwrap()) <= MAX_TITLE);
            }
        }
        assert_eq!(rc_escape_fit("ab](cd", 100), "ab]\u{2060}(cd");
        let cut = rc_escape_fit(&"*".repeat(100), 11);
        assert_eq!(cut, format!("{}…", "\\*".repeat(5)));
    }

    #[test]
    fn answers_are_classified() {
        let f = |status: u16, error: &str, retry: Option<u64>| ApiFailure {
            status,
            error: error.into(),
            retry_after: retry.map(Duration::from_secs),
        };
        assert!(matches!(
            classify(f(401, "You must be logged in to do this.", None)),
            NotifyError::Permanent {
                reason: FailureReason::AuthError,
                ..
            }
        ));
        match classify(f(429, "Error, too many requests. Please slow down. You must wait 52 seconds before trying this endpoint again. [error-too-many-requests]", Some(52))) {
            NotifyError::Retryable { reason: FailureReason::RateLimited, retry_after: Some(d), .. } => assert_eq!(d, Duration::from_secs(52)),
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            classify(f(503, "", None)),
            NotifyError::Retryable { .. }
        ));
        let e = classify(f(200, "error-invalid-channel", None));
        assert!(matches!(
            e,
            NotifyError::Permanent {
                reason: FailureReason::ClientError,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "rocketchat: status 200: error-invalid-channel"
        );
        assert_eq!(wait_seconds("You must wait 52 seconds before"), Some(52));
        assert_eq!(wait_seconds("nothing"), None);
    }

    #[test]
    fn config_defaults_and_errors() {
        let c: RocketchatConfig = serde_json::from_value(json!({})).unwrap();
        assert!(!c.send_resolved && !c.update_message);
        for (v, err) in [
            (json!({"token": "t", "channel": "#a"}), "token_id"),
            (json!({"token_id": "u", "channel": "#a"}), "token:"),
            (json!({"token_id": "u", "token": "t"}), "channel"),
            (
                json!({"token_id": "u", "token": "bad token", "channel": "#a"}),
                "token:",
            ),
            (
                json!({"token_id": "u", "token": "t", "channel": "#a", "title": "{{ x"}),
                "title",
            ),
            (
                json!({"token_id": "u", "token": "t", "channel": "#a", "api_url": "nope"}),
                "api_url",
            ),
        ] {
            let mut c: RocketchatConfig = serde_json::from_value(v).unwrap();
            let e = c
                .validate(Path::new("."), &GlobalConfig::default())
                .unwrap_err();
            assert!(e.contains(err), "{e}");
            assert!(!e.contains("bad token"), "{e}");
        }
    }

    #[test]
    fn global_defaults_fill_api_url_and_credentials() {
        let g = GlobalConfig {
            rocketchat_api_url: Some("http://rc.test".into()),
            rocketchat_token: Some(Secret::new("GLOBALTOKEN")),
            rocketchat_token_id: Some(Secret::new("GLOBALID")),
            ..GlobalConfig::default()
        };
        let mut c: RocketchatConfig = serde_json::from_value(json!({"channel": "#a"})).unwrap();
        c.validate(Path::new("."), &g).unwrap();
        assert_eq!(c.api_url.as_deref(), Some("http://rc.test"));
        assert_eq!(c.token.as_ref().map(|s| s.expose()), Some("GLOBALTOKEN"));
        assert_eq!(c.token_id.as_ref().map(|s| s.expose()), Some("GLOBALID"));
        // The receiver's own values win.
        let mut c: RocketchatConfig = serde_json::from_value(
            json!({"channel": "#a", "api_url": "http://own.test", "token": "OWN", "token_id": "OWNID"}),
        )
        .unwrap();
        c.validate(Path::new("."), &g).unwrap();
        assert_eq!(c.api_url.as_deref(), Some("http://own.test"));
        assert_eq!(c.token.as_ref().map(|s| s.expose()), Some("OWN"));
        assert_eq!(c.token_id.as_ref().map(|s| s.expose()), Some("OWNID"));
    }
}
