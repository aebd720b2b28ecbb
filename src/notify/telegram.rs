//! Telegram integration (Bot API `sendMessage`): one message per notification in a chat
//! (optionally a forum topic), edited in place with `editMessageText` when
//! `update_message: true`.
//!
//! The bot token is part of the request path, so the URL is a [`Secret`]: it never appears
//! in an error, a log line or the render output (`/bot<secret>/…`). Every interpolated
//! value is escaped for the configured `parse_mode` (HTML: `&`, `<`, `>`; MarkdownV2 and
//! Markdown: their special characters) and `@` is followed by a word joiner, so a label
//! such as `<b>`, `*bold*`, `[x](http://evil)` or `@username` cannot format, link or
//! mention. Texts are cut on a character boundary (never inside a tag or an entity) to
//! Telegram's 4096-character limit, counted before entity parsing and in UTF-16 units,
//! which is never less than what Telegram counts.
//!
//! Telegram answers errors as `{"ok":false,"error_code":N,"description":…,
//! "parameters":{…}}`: `retry_after` (429) is honoured, `migrate_to_chat_id` (the group
//! became a supergroup) is followed at once and kept for this instance, "message is not
//! modified" on an edit is a success and a message that cannot be edited any more is
//! replaced by a new one. A user `message` template that Telegram cannot parse
//! ("can't parse entities") is sent once more without `parse_mode` rather than lost.

use super::http::{parse_retry_after, transport_error, DEFAULT_TIMEOUT, MAX_RETRY_AFTER};
use super::http_config::{HttpClient, HttpConfig};
use super::{Delivered, FailureReason, Notifier, NotifyError, RenderedRequest};
use crate::alert::{Status, WebhookAlert, WebhookMessage};
use crate::config::{GlobalConfig, RateLimit};
use crate::duration::AmDuration;
use crate::secret::{redact, Secret, REDACTED};
use crate::store::Notification;
use crate::template::{
    alert_name, alert_summary, firing_then_resolved, key_labels, one_line, subject, text_len,
    truncate, Templates,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// Default when `rate_limit` is not set: Telegram's Bot FAQ allows at most 20 messages a
/// minute to one group (and about one a second per chat, with short bursts).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 20,
    per: AmDuration(Duration::from_secs(60)),
    burst: Some(3),
};

/// Telegram's limit on `text` (characters after entity parsing; counted here before
/// parsing, in UTF-16 units, which is an upper bound).
pub const MAX_TEXT: usize = 4096;
/// Budget for one alert's line in the default text.
const MAX_LINE: usize = 1200;
/// Room kept for the "…and N more alerts" line.
const MORE_RESERVE: usize = 40;
/// Telegram's default API root (`global.telegram_api_url` in Alertmanager).
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";
/// Placed after `@` in untrusted text so it cannot become a mention.
const WORD_JOINER: char = '\u{2060}';

fn yes() -> bool {
    true
}

fn default_parse_mode() -> String {
    "HTML".into()
}

/// `telegram_configs` entry: Alertmanager's keys and defaults, plus the router's own
/// `rate_limit`, `timeout` and `update_message`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    #[serde(default)]
    pub http_config: HttpConfig,
    /// API root; `https://api.telegram.org` when unset.
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub bot_token: Option<Secret>,
    #[serde(default)]
    pub bot_token_file: Option<PathBuf>,
    #[serde(default)]
    pub chat_id: Option<i64>,
    /// A file holding the chat id (read at load time).
    #[serde(default)]
    pub chat_id_file: Option<PathBuf>,
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    /// Template of the message text; the router's default rendering when unset.
    #[serde(default)]
    pub message: Option<String>,
    /// `HTML` (default), `MarkdownV2`, `Markdown` or "" (plain text).
    #[serde(default = "default_parse_mode")]
    pub parse_mode: String,
    #[serde(default)]
    pub disable_notifications: bool,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Storm digest threshold (see the README); default 10, 0 = never.
    #[serde(default)]
    pub digest_threshold: Option<usize>,
    #[serde(default)]
    pub timeout: Option<AmDuration>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Edit the group's message (`editMessageText`) instead of posting a new one.
    #[serde(default)]
    pub update_message: bool,
}

fn read_secret(base: &Path, p: &Path, what: &str) -> Result<String, String> {
    crate::secret::read_file(base, p, what).map(|s| s.expose().to_string())
}

impl TelegramConfig {
    /// Read `*_file` keys relative to `base`, apply defaults and check every key.
    pub fn validate(&mut self, base: &Path, g: &GlobalConfig) -> Result<(), String> {
        self.http_config.resolve(base)?;
        let api = self.api_url.get_or_insert_with(|| {
            g.telegram_api_url
                .clone()
                .unwrap_or_else(|| DEFAULT_API_URL.into())
        });
        crate::config::check_url(api).map_err(|m| format!("api_url: {m}"))?;
        match (&self.bot_token, self.bot_token_file.take()) {
            (Some(_), Some(_)) => {
                return Err("set only one of bot_token and bot_token_file".into());
            }
            (None, Some(p)) => {
                self.bot_token = Some(Secret::new(read_secret(base, &p, "bot_token_file")?))
            }
            (None, None) => {
                return Err("bot_token: one of bot_token or bot_token_file is required".into())
            }
            (Some(_), None) => {}
        }
        let token = self.bot_token.as_ref().map_or("", |t| t.expose());
        if token.is_empty()
            || !token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
        {
            // The token goes into the URL path: anything else could change the request.
            return Err("bot_token: must be a bot token (letters, digits, ':', '_', '-')".into());
        }
        match (self.chat_id, self.chat_id_file.take()) {
            (Some(_), Some(_)) => return Err("set only one of chat_id and chat_id_file".into()),
            (None, Some(p)) => {
                let s = read_secret(base, &p, "chat_id_file")?;
                self.chat_id = Some(
                    s.parse()
                        .map_err(|_| "chat_id_file: not an integer chat id".to_string())?,
                );
            }
            (None, None) => {
                return Err("chat_id: one of chat_id or chat_id_file is required".into())
            }
            (Some(_), None) => {}
        }
        if self.chat_id == Some(0) {
            return Err("chat_id: must not be 0".into());
        }
        if Mode::parse(&self.parse_mode).is_none() {
            return Err(format!(
                "parse_mode: {:?} is not one of HTML, MarkdownV2, Markdown or \"\"",
                self.parse_mode
            ));
        }
        if let Some(t) = &self.message {
            crate::config::check_template(t).map_err(|m| format!("message: {m}"))?;
        }
        if let Some(rl) = &self.rate_limit {
            crate::config::check_rate_limit(rl)?;
        }
        Ok(())
    }
}

/// How Telegram parses `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Html,
    MarkdownV2,
    Markdown,
    Plain,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "HTML" => Some(Mode::Html),
            "MarkdownV2" => Some(Mode::MarkdownV2),
            "Markdown" => Some(Mode::Markdown),
            "" => Some(Mode::Plain),
            _ => None,
        }
    }

    fn wire(self) -> Option<&'static str> {
        match self {
            Mode::Html => Some("HTML"),
            Mode::MarkdownV2 => Some("MarkdownV2"),
            Mode::Markdown => Some("Markdown"),
            Mode::Plain => None,
        }
    }

    /// One character of untrusted text, escaped (and `@` defused).
    fn esc_char(self, c: char, out: &mut String) {
        match (self, c) {
            (_, '@') => {
                out.push('@');
                out.push(WORD_JOINER);
            }
            (Mode::Html, '&') => out.push_str("&amp;"),
            (Mode::Html, '<') => out.push_str("&lt;"),
            (Mode::Html, '>') => out.push_str("&gt;"),
            (Mode::MarkdownV2, c) if "_*[]()~`>#+-=|{}.!\\".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            (Mode::Markdown, c) if "_*`[".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            (_, c) => out.push(c),
        }
    }

    /// Untrusted text on one line, escaped, at most `max` UTF-16 units once escaped
    /// (ending with "…" when cut).
    pub fn esc(self, raw: &str, max: usize) -> String {
        let raw = one_line(raw);
        let mut full = String::with_capacity(raw.len());
        for c in raw.chars() {
            self.esc_char(c, &mut full);
        }
        if text_len(&full) <= max || max == 0 {
            return if max == 0 { String::new() } else { full };
        }
        let budget = max - 1;
        let mut out = String::new();
        let mut units = 0;
        let mut piece = String::new();
        for c in raw.chars() {
            piece.clear();
            self.esc_char(c, &mut piece);
            if units + text_len(&piece) > budget {
                break;
            }
            units += text_len(&piece);
            out.push_str(&piece);
        }
        // A trailing space before "…" reads badly; an escaped space is never trimmed.
        while out.ends_with(' ') {
            out.pop();
        }
        out.push('…');
        out
    }

    fn bold(self, escaped: &str) -> String {
        match self {
            Mode::Html => format!("<b>{escaped}</b>"),
            Mode::MarkdownV2 | Mode::Markdown => format!("*{escaped}*"),
            Mode::Plain => escaped.to_string(),
        }
    }

    /// A link with an escaped label; just the label where the mode has no safe link.
    fn link(self, url: &str, escaped_label: &str) -> String {
        let url = url.trim();
        let ok = (url.starts_with("http://") || url.starts_with("https://"))
            && url.len() <= 1000
            && !url.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return escaped_label.to_string();
        }
        match self {
            Mode::Html => {
                let href = url
                    .replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                format!("<a href=\"{href}\">{escaped_label}</a>")
            }
            Mode::MarkdownV2 => {
                let href = url.replace('\\', "\\\\").replace(')', "\\)");
                format!("[{escaped_label}]({href})")
            }
            Mode::Markdown | Mode::Plain => escaped_label.to_string(),
        }
    }

    /// Cut a (user-template) text to `max` units without breaking the markup: HTML is cut
    /// outside tags and entities and the tags still open are closed; Markdown is never cut
    /// right after an escaping backslash.
    pub fn truncate(self, s: &str, max: usize) -> String {
        if text_len(s) <= max {
            return s.to_string();
        }
        match self {
            Mode::Html => truncate_html(s, max),
            Mode::MarkdownV2 | Mode::Markdown => {
                let mut out = truncate(s, max);
                // "…" after a lone backslash would be an escaped "…" (harmless), but a
                // trailing `\` before the ellipsis may pair with nothing: drop it.
                if let Some(stem) = out.strip_suffix('…') {
                    let trailing = stem.chars().rev().take_while(|c| *c == '\\').count();
                    if trailing % 2 == 1 {
                        out = format!("{}…", &stem[..stem.len() - 1]);
                    }
                }
                out
            }
            Mode::Plain => truncate(s, max),
        }
    }
}

/// Cut HTML to at most `max` UTF-16 units: only outside a tag or an entity, then close
/// the tags still open (their closing tags count towards `max`).
fn truncate_html(s: &str, max: usize) -> String {
    let mut stack: Vec<String> = Vec::new();
    let mut units = 0usize;
    let mut in_tag: Option<usize> = None; // byte index of the `<`
                                          // Characters since an unclosed `&` (an entity is short; a bare `&` must not forbid
                                          // every later cut).
    let mut amp: Option<usize> = None;
    let mut best: Option<(usize, Vec<String>)> = None;
    let closers = |st: &[String]| st.iter().map(|t| t.len() + 3).sum::<usize>();
    for (i, c) in s.char_indices() {
        // A cut before this character is possible when outside any markup.
        if in_tag.is_none() && amp.is_none() && units + 1 + closers(&stack) <= max {
            best = Some((i, stack.clone()));
        }
        units += c.len_utf16();
        if units + 1 > max {
            break;
        }
        match c {
            '<' if in_tag.is_none() => in_tag = Some(i),
            '>' => {
                if let Some(start) = in_tag.take() {
                    let inner = &s[start + 1..i];
                    let name: String = inner
                        .trim_start_matches('/')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect::<String>()
                        .to_ascii_lowercase();
                    if inner.starts_with('/') {
                        if let Some(pos) = stack.iter().rposition(|t| *t == name) {
                            stack.truncate(pos);
                        }
                    } else if !name.is_empty() && !inner.ends_with('/') {
                        stack.push(name);
                    }
                }
            }
            '&' if in_tag.is_none() => amp = Some(0),
            ';' => amp = None,
            c => amp = amp.map(|n| n + 1).filter(|n| *n < 10 && !c.is_whitespace()),
        }
    }
    let (cut, open) = best.unwrap_or((0, Vec::new()));
    let mut out = s[..cut].trim_end().to_string();
    out.push('…');
    for t in open.iter().rev() {
        out.push_str(&format!("</{t}>"));
    }
    out
}

/// A failed Bot API call, before classification.
#[derive(Debug)]
enum CallError {
    /// No (usable) answer: network, timeout.
    Transport(NotifyError),
    /// An answer with `ok:false` or a non-2xx status.
    Api {
        status: u16,
        error_code: i64,
        description: String,
        retry_after: Option<Duration>,
        migrate_to: Option<i64>,
    },
}

impl CallError {
    fn description(&self) -> &str {
        match self {
            CallError::Api { description, .. } => description,
            CallError::Transport(_) => "",
        }
    }

    fn is_bad_request(&self, needle: &str) -> bool {
        matches!(
            self,
            CallError::Api {
                error_code: 400,
                ..
            }
        ) && self.description().to_ascii_lowercase().contains(needle)
    }

    /// The message to edit is gone or can no longer be edited.
    fn edit_impossible(&self) -> bool {
        [
            "message to edit not found",
            "message can't be edited",
            "message_id_invalid",
            "message identifier is not specified",
            "chat not found",
        ]
        .iter()
        .any(|n| self.is_bad_request(n))
    }

    fn into_notify(self) -> NotifyError {
        match self {
            CallError::Transport(e) => e,
            CallError::Api {
                status,
                error_code,
                description,
                retry_after,
                ..
            } => {
                let code = if (400..600).contains(&error_code) {
                    error_code as u16
                } else {
                    status
                };
                let mut message = format!("telegram: error {code}");
                let d = truncate(&one_line(description.trim()), 200);
                if !d.is_empty() {
                    message.push_str(": ");
                    message.push_str(&d);
                }
                let reason = FailureReason::from_status(code);
                match code {
                    429 | 500..=599 => NotifyError::Retryable {
                        message,
                        reason,
                        retry_after,
                    },
                    _ => NotifyError::permanent(reason, message),
                }
            }
        }
    }
}

/// The Telegram Bot API integration.
pub struct TelegramNotifier {
    api_url: String,
    token: Secret,
    client: HttpClient,
    templates: Arc<Templates>,
    /// The chat to post to: the configured one until Telegram reports a migration.
    chat_id: Mutex<i64>,
    message_thread_id: Option<i64>,
    message: Option<String>,
    mode: Mode,
    disable_notifications: bool,
    send_resolved: bool,
    update_message: bool,
}

impl TelegramNotifier {
    pub fn new(c: &TelegramConfig, t: Arc<Templates>) -> Result<Self, String> {
        let token = c
            .bot_token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or("bot_token: required")?;
        Ok(Self {
            api_url: c
                .api_url
                .as_deref()
                .unwrap_or(DEFAULT_API_URL)
                .trim_end_matches('/')
                .to_string(),
            token,
            client: HttpClient::new(&c.http_config, c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0))?,
            templates: t,
            chat_id: Mutex::new(c.chat_id.ok_or("chat_id: required")?),
            message_thread_id: c.message_thread_id.filter(|t| *t != 0),
            message: c.message.clone().filter(|m| !m.trim().is_empty()),
            mode: Mode::parse(&c.parse_mode).ok_or("parse_mode: invalid")?,
            disable_notifications: c.disable_notifications,
            send_resolved: c.send_resolved,
            update_message: c.update_message,
        })
    }

    fn chat(&self) -> i64 {
        *super::lock(&self.chat_id)
    }

    fn url(&self, method: &str) -> Secret {
        Secret::new(format!(
            "{}/bot{}/{method}",
            self.api_url,
            self.token.expose()
        ))
    }

    /// The message text for `n` in this instance's parse mode, within [`MAX_TEXT`].
    pub fn text(&self, n: &Notification) -> Result<String, NotifyError> {
        let msg = &n.message;
        if let Some(t) = &self.message {
            let s = if self.mode == Mode::Html {
                super::render_html(&self.templates, "message", t, msg)?
            } else {
                super::render(&self.templates, "message", t, msg)?
            };
            let s = s.trim();
            if !s.is_empty() {
                return Ok(self.mode.truncate(s, MAX_TEXT));
            }
        }
        Ok(default_text(msg, self.mode))
    }

    /// `sendMessage` body for chat `chat`.
    fn send_body(&self, chat: i64, text: &str, mode: Option<&str>) -> Value {
        let mut b = json!({
            "chat_id": chat,
            "text": text,
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(m) = mode {
            b["parse_mode"] = json!(m);
        }
        if self.disable_notifications {
            b["disable_notification"] = json!(true);
        }
        if let Some(t) = self.message_thread_id {
            b["message_thread_id"] = json!(t);
        }
        b
    }

    fn edit_body(&self, chat: i64, message_id: i64, text: &str, mode: Option<&str>) -> Value {
        let mut b = json!({
            "chat_id": chat,
            "message_id": message_id,
            "text": text,
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(m) = mode {
            b["parse_mode"] = json!(m);
        }
        b
    }

    /// One Bot API call: `result` on success.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, CallError> {
        let url = self.url(method);
        let secrets = [&url, &self.token];
        let rb = self
            .client
            .request(reqwest::Method::POST, &url)
            .await
            .map_err(CallError::Transport)?;
        let mut resp =
            rb.json(body).send().await.map_err(|e| {
                CallError::Transport(redact_error(transport_error(e, &url), &secrets))
            })?;
        let status = resp.status().as_u16();
        let header_retry = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, OffsetDateTime::now_utc()));
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            bytes.extend_from_slice(&chunk);
            if bytes.len() >= 64 * 1024 {
                break;
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let ok = v["ok"].as_bool();
        if (200..300).contains(&status) && ok != Some(false) {
            return Ok(v.get("result").cloned().unwrap_or(Value::Null));
        }
        let description = match v["description"].as_str() {
            Some(d) => d.to_string(),
            None => text.trim().to_string(),
        };
        let params = &v["parameters"];
        let retry_after = params["retry_after"]
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())))
            .or(header_retry);
        Err(CallError::Api {
            status,
            error_code: v["error_code"].as_i64().unwrap_or(status as i64),
            description: redact(&description, &secrets),
            retry_after,
            migrate_to: params["migrate_to_chat_id"].as_i64(),
        })
    }

    /// Follow a `migrate_to_chat_id`: use the new chat from now on. Returns whether it
    /// changed anything.
    fn migrate(&self, e: &CallError) -> Option<i64> {
        let CallError::Api {
            migrate_to: Some(to),
            ..
        } = e
        else {
            return None;
        };
        let mut chat = super::lock(&self.chat_id);
        if *chat == *to {
            return None;
        }
        tracing::warn!(
            from = *chat,
            to = *to,
            "telegram: the group became a supergroup; sending to the new chat id from now on (update chat_id in the configuration)"
        );
        *chat = *to;
        Some(*to)
    }

    /// `sendMessage`, following one chat migration and falling back once to plain text
    /// when a user template cannot be parsed. Returns the stored id `chat:message`.
    async fn post(&self, text: &str) -> Result<Option<String>, NotifyError> {
        let mut mode = self.mode.wire();
        let mut text = text.to_string();
        let mut migrated = false;
        let mut plain = false;
        loop {
            let chat = self.chat();
            match self
                .call("sendMessage", &self.send_body(chat, &text, mode))
                .await
            {
                Ok(result) => {
                    let id = result["message_id"].as_i64();
                    let chat = result["chat"]["id"].as_i64().unwrap_or(chat);
                    if id.is_none() {
                        tracing::debug!("telegram accepted the message without a message_id");
                    }
                    return Ok(id.map(|id| format!("{chat}:{id}")));
                }
                Err(e) => {
                    if !migrated && self.migrate(&e).is_some() {
                        migrated = true;
                        continue;
                    }
                    if !plain && mode.is_some() && e.is_bad_request("can't parse entities") {
                        tracing::warn!(error = %e.description(), "telegram could not parse the message; sending it as plain text");
                        plain = true;
                        mode = None;
                        text = truncate(&text, MAX_TEXT);
                        continue;
                    }
                    return Err(e.into_notify());
                }
            }
        }
    }

    /// `editMessageText` of `chat:message`. `Ok(false)`: the message cannot be edited (a
    /// new one should be posted).
    async fn edit(&self, chat: i64, message_id: i64, text: &str) -> Result<bool, NotifyError> {
        let mut mode = self.mode.wire();
        let mut text = text.to_string();
        let mut plain = false;
        loop {
            match self
                .call(
                    "editMessageText",
                    &self.edit_body(chat, message_id, &text, mode),
                )
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) if e.is_bad_request("message is not modified") => return Ok(true),
                Err(e) if e.edit_impossible() => {
                    tracing::info!(error = %e.description(), "telegram: cannot edit the group's message; posting a new one");
                    return Ok(false);
                }
                Err(e) => {
                    // The old group's messages stay there; the new chat gets a new one.
                    if self.migrate(&e).is_some() {
                        return Ok(false);
                    }
                    if !plain && mode.is_some() && e.is_bad_request("can't parse entities") {
                        plain = true;
                        mode = None;
                        text = truncate(&text, MAX_TEXT);
                        continue;
                    }
                    return Err(e.into_notify());
                }
            }
        }
    }
}

/// Errors from reqwest are already stripped of the URL; redact the token anyway.
fn redact_error(e: NotifyError, secrets: &[&Secret]) -> NotifyError {
    match e {
        NotifyError::Retryable {
            message,
            reason,
            retry_after,
        } => NotifyError::Retryable {
            message: redact(&message, secrets),
            reason,
            retry_after,
        },
        NotifyError::Permanent { message, reason } => NotifyError::Permanent {
            message: redact(&message, secrets),
            reason,
        },
    }
}

/// A stored message id: `chat:message` (or a bare message id, in the configured chat).
fn parse_message_ref(s: &str, default_chat: i64) -> Option<(i64, i64)> {
    match s.rsplit_once(':') {
        Some((chat, id)) => Some((chat.parse().ok()?, id.parse().ok()?)),
        None => Some((default_chat, s.parse().ok()?)),
    }
}

impl Notifier for TelegramNotifier {
    fn kind(&self) -> &'static str {
        "telegram"
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
            let text = self.text(n)?;
            if let (true, Some(id)) = (self.update_message, edit) {
                // A message of a chat we no longer post to (migrated) is left alone.
                let current = self.chat();
                if let Some((chat, mid)) =
                    parse_message_ref(id, current).filter(|(chat, _)| *chat == current)
                {
                    if self.edit(chat, mid, &text).await? {
                        return Ok(Delivered {
                            message_id: Some(format!("{chat}:{mid}")),
                        });
                    }
                }
            }
            Ok(Delivered {
                message_id: self.post(&text).await?,
            })
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        let text = self.text(n)?;
        Ok(vec![RenderedRequest {
            method: "POST".into(),
            url: format!("{}/bot{REDACTED}/sendMessage", self.api_url),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: self.send_body(self.chat(), &text, self.mode.wire()),
        }])
    }
}

/// The subject line, then one line per alert (firing first), cut with "…and N more
/// alerts" to fit [`MAX_TEXT`].
fn default_text(msg: &WebhookMessage, mode: Mode) -> String {
    let emoji = if msg.status == Status::Resolved {
        "✅"
    } else {
        "🔥"
    };
    let mut out = format!("{emoji} {}", mode.bold(&mode.esc(&subject(msg), 400)));
    let mut len = text_len(&out);
    let alerts: Vec<&WebhookAlert> = firing_then_resolved(msg).collect();
    let skip_common = alerts.len() > 1;
    let mut hidden = msg.truncated_alerts;
    for (i, a) in alerts.iter().enumerate() {
        let line = alert_line(a, msg, skip_common, mode);
        let later = alerts.len() - i - 1 + msg.truncated_alerts as usize;
        let reserve = if later > 0 { MORE_RESERVE } else { 0 };
        if len + 1 + text_len(&line) + reserve > MAX_TEXT {
            hidden += (alerts.len() - i) as u64;
            break;
        }
        out.push('\n');
        out.push_str(&line);
        len += 1 + text_len(&line);
    }
    if hidden > 0 {
        let noun = if hidden == 1 { "alert" } else { "alerts" };
        let more = format!("…and {hidden} more {noun}");
        out.push('\n');
        out.push_str(&mode.esc(&more, MORE_RESERVE));
    }
    out
}

/// `🔥 <b>Name</b> · instance=…, job=… — summary <a href="…">source</a>`, at most
/// [`MAX_LINE`] units.
fn alert_line(a: &WebhookAlert, msg: &WebhookMessage, skip_common: bool, mode: Mode) -> String {
    let emoji = match a.status {
        Status::Firing => "🔥",
        Status::Resolved => "✅",
    };
    let mut line = format!("{emoji} {}", mode.bold(&mode.esc(alert_name(a), 120)));
    let labels: Vec<String> = key_labels(&a.labels)
        .into_iter()
        .filter(|(k, v)| !(skip_common && msg.common_labels.get(*k).is_some_and(|c| c == v)))
        .take(6)
        .map(|(k, v)| format!("{}={}", mode.esc(k, 20), mode.esc(v, 80)))
        .collect();
    if !labels.is_empty() {
        line.push_str(&mode.esc(" · ", 10));
        line.push_str(&labels.join(&mode.esc(", ", 10)));
    }
    if let Some(s) = alert_summary(a) {
        line.push_str(&mode.esc(" — ", 10));
        line.push_str(&mode.esc(s, 300));
    }
    let source = mode.link(&a.generator_url, "source");
    let with_source = format!("{line} {source}");
    if source != "source" && text_len(&with_source) <= MAX_LINE {
        with_source
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(labels: &[(&str, &str)], status: Status) -> WebhookAlert {
        crate::notify::fixtures::alert(labels, status)
    }

    fn notification(alerts: Vec<WebhookAlert>) -> Notification {
        crate::notify::fixtures::notification("telegram", alerts)
    }

    fn config(extra: Value) -> TelegramConfig {
        let mut c = json!({"bot_token": "123456:SECRET-token_x", "chat_id": -1001});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let mut c: TelegramConfig = serde_json::from_value(c).unwrap();
        c.validate(Path::new("."), &GlobalConfig::default())
            .unwrap();
        c
    }

    fn notifier(extra: Value) -> TelegramNotifier {
        TelegramNotifier::new(&config(extra), Arc::new(Templates::new())).unwrap()
    }

    /// Telegram's HTML parser, enough to check the text: only allowed tags, balanced,
    /// only the four named entities; returns the length after parsing.
    fn parse_html(s: &str) -> Result<usize, String> {
        let allowed = [
            "b",
            "strong",
            "i",
            "em",
            "u",
            "ins",
            "s",
            "strike",
            "del",
            "a",
            "code",
            "pre",
            "blockquote",
            "tg-spoiler",
            "span",
        ];
        let mut stack = Vec::new();
        let mut n = 0;
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if c == '<' {
                let end = rest.find('>').ok_or("unclosed tag")?;
                let inner = &rest[1..end];
                let name: String = inner
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if !allowed.contains(&name.as_str()) {
                    return Err(format!("unsupported tag {name}"));
                }
                if inner.starts_with('/') {
                    if stack.pop() != Some(name.clone()) {
                        return Err(format!("unbalanced </{name}>"));
                    }
                } else {
                    stack.push(name);
                }
                rest = &rest[end + 1..];
            } else if c == '&' {
                let end = rest.find(';').ok_or("bare &")?;
                let ent = &rest[..=end];
                if !["&lt;", "&gt;", "&amp;", "&quot;"].contains(&ent) {
                    return Err(format!("unknown entity {ent}"));
                }
                n += 1;
                rest = &rest[end + 1..];
            } else if c == '>' {
                return Err("bare >".into());
            } else {
                n += c.len_utf16();
                rest = &rest[c.len_utf8()..];
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed {stack:?}"));
        }
        Ok(n)
    }

    #[test]
    fn html_payload_escapes_hostile_labels() {
        let n = notification(vec![
            alert(
                &[("alertname", "Gone"), ("instance", "b")],
                Status::Resolved,
            ),
            alert(
                &[
                    ("alertname", "<b>bold</b> & @everyone"),
                    ("instance", "[x](http://evil) *y*"),
                ],
                Status::Firing,
            ),
        ]);
        let s = notifier(json!({}));
        let text = s.text(&n).unwrap();
        parse_html(&text).unwrap();
        assert!(
            text.contains("&lt;b&gt;bold&lt;/b&gt; &amp; @\u{2060}everyone"),
            "{text}"
        );
        assert!(!text.contains("@everyone"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("🔥 <b>"), "{}", lines[1]);
        assert!(lines[1]
            .ends_with("<a href=\"http://prom.test/graph?g0.expr=up&amp;g0.tab=1\">source</a>"));
        assert!(lines[2].starts_with("✅ <b>Gone</b>"), "{}", lines[2]);
        let r = s.render(&n).unwrap();
        assert_eq!(r[0].url, "https://api.telegram.org/bot<secret>/sendMessage");
        assert_eq!(r[0].body["chat_id"], -1001);
        assert_eq!(r[0].body["parse_mode"], "HTML");
        assert!(r[0].body.get("disable_notification").is_none());
        assert!(!serde_json::to_string(&r).unwrap().contains("SECRET"));
    }

    #[test]
    fn markdown_modes_escape_their_specials() {
        let n = notification(vec![alert(
            &[("alertname", "a_b*c[d](e)`f`.!"), ("instance", "@all")],
            Status::Firing,
        )]);
        let v2 = notifier(
            json!({"parse_mode": "MarkdownV2", "message_thread_id": 7, "disable_notifications": true}),
        );
        let t = v2.text(&n).unwrap();
        assert!(t.contains("*a\\_b\\*c\\[d\\]\\(e\\)\\`f\\`\\.\\!*"), "{t}");
        assert!(t.contains("@\u{2060}all"), "{t}");
        let body = v2.render(&n).unwrap()[0].body.clone();
        assert_eq!(body["message_thread_id"], 7);
        assert_eq!(body["disable_notification"], true);
        let v1 = notifier(json!({"parse_mode": "Markdown"}));
        let t = v1.text(&n).unwrap();
        assert!(t.contains("a\\_b\\*c\\[d](e)\\`f\\`.!"), "{t}");
        let plain = notifier(json!({"parse_mode": ""}));
        assert!(plain.render(&n).unwrap()[0]
            .body
            .get("parse_mode")
            .is_none());
    }

    #[test]
    fn long_groups_and_values_fit_4096() {
        let huge = "<&>".repeat(4000);
        let mut alerts: Vec<WebhookAlert> = (0..300)
            .map(|i| {
                alert(
                    &[
                        ("alertname", "Many"),
                        ("instance", &format!("host-{i}-{huge}")),
                    ],
                    Status::Firing,
                )
            })
            .collect();
        alerts[0].annotations.insert("summary".into(), huge.clone());
        for mode in ["HTML", "MarkdownV2", "Markdown", ""] {
            let t = notifier(json!({"parse_mode": mode}))
                .text(&notification(alerts.clone()))
                .unwrap();
            assert!(text_len(&t) <= MAX_TEXT, "{mode}: {}", text_len(&t));
            assert!(t.contains("more alerts"), "{mode}");
            if mode == "HTML" {
                parse_html(&t).unwrap();
            }
        }
        // A user template rendering far too much is cut outside tags and closed.
        let s = notifier(json!({"message": "<b>{{ range 3000 }}x &amp; {{ end }}</b>"}));
        let t = s
            .text(&notification(vec![alert(
                &[("alertname", "X")],
                Status::Firing,
            )]))
            .unwrap();
        assert!(text_len(&t) <= MAX_TEXT);
        assert!(t.ends_with("…</b>"), "{}", &t[t.len() - 20..]);
        parse_html(&t).unwrap();
    }

    #[test]
    fn html_truncation_never_breaks_markup() {
        let s = "<b>ab &amp; <i>cd</i> ef</b> <a href=\"http://x\">link text</a>";
        for max in 5..text_len(s) {
            let t = truncate_html(s, max);
            assert!(text_len(&t) <= max, "{max}: {t}");
            parse_html(&t).unwrap_or_else(|e| panic!("{max}: {t}: {e}"));
        }
        assert_eq!(truncate_html(s, 20), "<b>ab &amp;…</b>");
    }

    #[test]
    fn config_follows_alertmanager_and_checks_keys() {
        let c: TelegramConfig =
            serde_json::from_value(json!({"bot_token": "1:a", "chat_id": 5})).unwrap();
        assert!(c.send_resolved);
        assert_eq!(c.parse_mode, "HTML");
        assert!(!c.update_message);
        let mut c = config(json!({}));
        assert_eq!(c.api_url.as_deref(), Some(DEFAULT_API_URL));
        let mut from_global: TelegramConfig =
            serde_json::from_value(json!({"bot_token": "1:a", "chat_id": 5})).unwrap();
        let g = GlobalConfig {
            telegram_api_url: Some("http://tg.test".into()),
            ..GlobalConfig::default()
        };
        from_global.validate(Path::new("."), &g).unwrap();
        assert_eq!(from_global.api_url.as_deref(), Some("http://tg.test"));
        for (extra, err) in [
            (json!({"parse_mode": "html"}), "parse_mode"),
            (json!({"bot_token": "12/../x"}), "bot_token"),
            (json!({"api_url": "ftp://x"}), "api_url"),
            (json!({"message": "{{ x"}), "message"),
        ] {
            let mut v = serde_json::to_value(&c).unwrap();
            v["bot_token"] = json!("1:a");
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            let mut d: TelegramConfig = serde_json::from_value(v).unwrap();
            let e = d
                .validate(Path::new("."), &GlobalConfig::default())
                .unwrap_err();
            assert!(e.contains(err), "{e}");
            assert!(!e.contains("12/../x"), "{e}");
        }
        c.chat_id = None;
        assert!(c
            .validate(Path::new("."), &GlobalConfig::default())
            .unwrap_err()
            .contains("chat_id"));
    }

    #[test]
    fn errors_are_classified() {
        let api = |code: i64, desc: &str, retry: Option<u64>| CallError::Api {
            status: code as u16,
            error_code: code,
            description: desc.into(),
            retry_after: retry.map(Duration::from_secs),
            migrate_to: None,
        };
        match api(429, "Too Many Requests: retry after 35", Some(35)).into_notify() {
            NotifyError::Retryable {
                reason: FailureReason::RateLimited,
                retry_after: Some(d),
                ..
            } => assert_eq!(d, Duration::from_secs(35)),
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            api(502, "Bad Gateway", None).into_notify(),
            NotifyError::Retryable { .. }
        ));
        assert!(matches!(
            api(403, "Forbidden: bot was kicked", None).into_notify(),
            NotifyError::Permanent {
                reason: FailureReason::AuthError,
                ..
            }
        ));
        let e = api(400, "Bad Request: chat not found", None).into_notify();
        assert!(matches!(
            e,
            NotifyError::Permanent {
                reason: FailureReason::ClientError,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "telegram: error 400: Bad Request: chat not found"
        );
        assert!(api(
            400,
            "Bad Request: message is not modified: specified new message content",
            None
        )
        .is_bad_request("message is not modified"));
        assert!(api(400, "Bad Request: message to edit not found", None).edit_impossible());
        assert!(api(400, "Bad Request: message can't be edited", None).edit_impossible());
        assert!(!api(400, "Bad Request: message is too long", None).edit_impossible());
        assert_eq!(parse_message_ref("-100:42", 1), Some((-100, 42)));
        assert_eq!(parse_message_ref("42", 1), Some((1, 42)));
        assert_eq!(parse_message_ref("x", 1), None);
    }
}
