//! Slack integration (`slack_configs`): its configuration, payload, limits, answer
//! classification and edits, in one of two modes chosen by the URL.
//!
//! - **Incoming webhook** (`api_url` = `https://hooks.slack.com/services/…`): one message
//!   per notification; the answer is the text `ok`. Webhooks return no message id, so they
//!   cannot edit (`update_message` is refused when the configuration is loaded).
//! - **Web API** (`api_url` whose path ends in `/api/chat.postMessage`, or `app_token`):
//!   the bot token goes in `Authorization: Bearer …` (from `http_config.authorization`, as
//!   Alertmanager configures it, or `app_token`), `channel` is required, and the answer is
//!   JSON: `ok:false` is an error even with status 200 (`ratelimited` and Slack's
//!   transient errors are retried, honouring `Retry-After`; the rest are permanent). A
//!   posted message's id is its channel ID and `ts`, kept as `"C123:1700000000.000100"`.
//!   With `update_message`, later notifications of a group's episode edit that message
//!   (`chat.update`) so it always shows the group's current state, and add a short thread
//!   reply saying what changed; a message that is gone (deleted, edit window closed) is
//!   replaced by a new one.
//!
//! Both modes send a short top-level `text` (what phones and the sidebar show) plus one
//! coloured attachment listing the alerts, with Alertmanager's attachment keys (`pretext`,
//! `fields`, `actions`, `footer`, …) rendered from templates. Every value the router
//! interpolates is escaped for mrkdwn (`&`, `<`, `>`), so a label such as `<!channel>`
//! cannot ping anyone, and the message is cut to stay inside Slack's limits with "…and N
//! more alerts" instead of being truncated (or rejected) by Slack.

use super::http::{classify, post_json, post_json_raw, DEFAULT_TIMEOUT};
use super::http_config::{Authorization, HttpClient, HttpConfig};
use super::{lock, Delivered, FailureReason, Notifier, NotifyError, RenderedRequest};
use crate::alert::{Status, WebhookAlert, WebhookMessage};
use crate::config::{check_rate_limit, check_template, check_url, GlobalConfig, RateLimit};
use crate::duration::AmDuration;
use crate::secret::{redact, Secret};
use crate::store::Notification;
use crate::template::{
    alert_name, alert_summary, alerts_url, firing_then_resolved, key_labels, one_line,
    slack_escape, slack_link, subject, text_len, truncate, truncate_mrkdwn, Templates,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Default when `rate_limit` is not set (see the README for the platform limits behind it).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 3,
    per: AmDuration(Duration::from_secs(3)),
    burst: None,
};

/// Where a bot token (`app_token`) posts when neither `app_url` nor
/// `global.slack_app_url` says otherwise.
pub const DEFAULT_APP_URL: &str = "https://slack.com/api/chat.postMessage";

/// Attachment title limit (Slack cuts longer titles; Alertmanager truncates to 1024 too).
pub const MAX_TITLE: usize = 1024;
/// Budget for the attachment text. Slack accepts far more (40,000 for `text`), but longer
/// messages get split or collapsed; a list that long is better read in the router's UI.
pub const MAX_TEXT: usize = 3000;
/// Budget for the top-level `text`, the notification fallback.
pub const MAX_FALLBACK: usize = 500;
/// Budget for a templated top-level `text` (`message_text`): Slack recommends ≤ 4,000.
pub const MAX_MESSAGE_TEXT: usize = 4000;
/// Attachment footer (Slack shows at most 300 characters).
pub const MAX_FOOTER: usize = 300;
/// Attachment field title and value (Block Kit's field limit is 2,000).
pub const MAX_FIELD_TITLE: usize = 300;
pub const MAX_FIELD_VALUE: usize = 2000;
/// Button text and value (Block Kit: 75 and 2,000).
pub const MAX_BUTTON_TEXT: usize = 75;
pub const MAX_BUTTON_VALUE: usize = 2000;
/// Budget for one alert's line in the default text.
const MAX_LINE: usize = 700;
/// Room kept for the "…and N more alerts" line.
const MORE_RESERVE: usize = 40;

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// One entry of `slack_configs`, with Alertmanager's keys (every string but the URLs and
/// the token is a template) plus the router's `update_message` semantics and `rate_limit`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Storm digest threshold (see the README); default 10, 0 = never.
    #[serde(default)]
    pub digest_threshold: Option<usize>,
    #[serde(default)]
    pub http_config: HttpConfig,
    /// Incoming-webhook URL, or `https://slack.com/api/chat.postMessage` with a bot token
    /// in `http_config.authorization`.
    #[serde(default)]
    pub api_url: Option<Secret>,
    #[serde(default)]
    pub api_url_file: Option<PathBuf>,
    /// Bot token sent as `Authorization: Bearer` to `app_url` (instead of `api_url`).
    #[serde(default)]
    pub app_token: Option<Secret>,
    #[serde(default)]
    pub app_token_file: Option<PathBuf>,
    #[serde(default)]
    pub app_url: Option<String>,
    /// `#name`, channel ID or `@user`; required by the Web API, ignored by app webhooks.
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// `good`, `warning`, `danger` or `#rrggbb`; default by status and severity.
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub title_link: Option<String>,
    #[serde(default)]
    pub pretext: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    /// The top-level `text` (default: the escaped subject line).
    #[serde(default)]
    pub message_text: Option<String>,
    #[serde(default)]
    pub fallback: Option<String>,
    #[serde(default)]
    pub callback_id: Option<String>,
    #[serde(default)]
    pub footer: Option<String>,
    #[serde(default)]
    pub icon_emoji: Option<String>,
    #[serde(default)]
    pub icon_url: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub fields: Vec<SlackField>,
    /// Default of `fields[].short`.
    #[serde(default)]
    pub short_fields: bool,
    #[serde(default)]
    pub link_names: bool,
    /// Attachment fields Slack formats as mrkdwn (default `["text", "pretext"]`).
    #[serde(default)]
    pub mrkdwn_in: Vec<String>,
    #[serde(default)]
    pub actions: Vec<SlackAction>,
    /// Web API only: edit the message of a group's episode instead of posting anew.
    #[serde(default)]
    pub update_message: bool,
    /// Alertmanager's default (false), except with `update_message`, where the edited
    /// message should end up showing the resolution: true unless set.
    #[serde(default)]
    pub send_resolved: Option<bool>,
    /// Per-attempt deadline (unset or 0: 10s).
    #[serde(default)]
    pub timeout: Option<AmDuration>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// `fields[]`: `title` and `value` (templates) are required; `short` defaults to
/// `short_fields`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackField {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub short: Option<bool>,
}

/// `actions[]`: a legacy attachment button. `type` and `text` are required, and `url` or
/// `name` (a message action, with `value` and `confirm`); `url` wins, as in Alertmanager.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAction {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub style: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub confirm: Option<SlackConfirm>,
}

/// `actions[].confirm`: `text` required.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfirm {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub ok_text: Option<String>,
    #[serde(default)]
    pub dismiss_text: Option<String>,
}

fn set(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.trim().is_empty())
}

fn has_auth(h: &HttpConfig) -> bool {
    h.authorization.is_some()
        || h.bearer_token.is_some()
        || h.basic_auth.is_some()
        || h.oauth2.is_some()
}

/// Whether `url` is Slack's Web API `chat.postMessage` (any host: tests and proxies).
pub fn is_post_message_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| {
        u.path()
            .trim_end_matches('/')
            .ends_with("/api/chat.postMessage")
    })
}

/// `…/api/chat.update` beside a `…/api/chat.postMessage` URL.
fn update_url(post: &str) -> Option<String> {
    let mut u = reqwest::Url::parse(post).ok()?;
    let path = u.path().trim_end_matches('/');
    let base = path.strip_suffix("chat.postMessage")?;
    if !base.ends_with("/api/") {
        return None;
    }
    let path = format!("{base}chat.update");
    u.set_path(&path);
    Some(u.to_string())
}

impl SlackConfig {
    /// Fill defaults from `global`, read the `*_file` secrets (relative to `base`) and
    /// check the combination, as Alertmanager does, plus what the Web API needs.
    pub fn validate(&mut self, base: &Path, g: &GlobalConfig) -> Result<(), String> {
        let read = |p: &Path, what: &str| crate::secret::read_file(base, p, what);
        self.http_config.resolve(base)?;
        if self.api_url.is_some() && self.api_url_file.is_some() {
            return Err("set only one of api_url and api_url_file".into());
        }
        if let Some(p) = self.api_url_file.take() {
            self.api_url = Some(read(&p, "api_url_file")?);
        }
        if self.app_token.is_some() && self.app_token_file.is_some() {
            return Err("set only one of app_token and app_token_file".into());
        }
        if let Some(p) = self.app_token_file.take() {
            self.app_token = Some(read(&p, "app_token_file")?);
        }
        if self.api_url.is_some() && self.app_token.is_some() {
            return Err(
                "set only one of api_url (api_url_file) and app_token (app_token_file)".into(),
            );
        }
        if self.api_url.is_none() && self.app_token.is_none() {
            // Alertmanager's precedence: the global token only for a receiver that brings
            // no credentials of its own, then the global URL.
            match (&g.slack_app_token, &g.slack_api_url) {
                (Some(t), _) if !has_auth(&self.http_config) => self.app_token = Some(t.clone()),
                (_, Some(u)) => self.api_url = Some(u.clone()),
                _ => {
                    return Err("api_url: required (api_url, api_url_file, app_token or global.slack_api_url / global.slack_app_token)".into())
                }
            }
        }
        if self.app_token.as_ref().is_some_and(Secret::is_empty) {
            return Err("app_token: empty".into());
        }
        if self.app_token.is_some() {
            if has_auth(&self.http_config) {
                return Err("app_token: becomes the Authorization header, so http_config must not set authorization, bearer_token, basic_auth or oauth2".into());
            }
            let url = self
                .app_url
                .clone()
                .or_else(|| g.slack_app_url.clone())
                .unwrap_or_else(|| DEFAULT_APP_URL.to_string());
            check_url(&url).map_err(|m| format!("app_url: {m}"))?;
            self.app_url = Some(url);
        } else if let Some(u) = &self.app_url {
            check_url(u).map_err(|m| format!("app_url: {m}"))?;
        }
        if let Some(u) = &self.api_url {
            check_url(u.expose()).map_err(|m| format!("api_url: {m}"))?;
        }
        if self.is_web_api() {
            if !set(&self.channel) {
                return Err("channel: required by the Slack Web API (chat.postMessage): a channel ID such as C0123456789, #name or @user".into());
            }
            if self.app_token.is_none() && !has_auth(&self.http_config) {
                return Err("api_url is Slack's Web API (chat.postMessage): set the bot token (xoxb-…) in http_config.authorization.credentials, or use app_token".into());
            }
        }
        if self.update_message {
            if !self.is_web_api() {
                return Err("update_message: incoming webhooks cannot edit messages (Slack returns no message id); use the Web API: api_url: https://slack.com/api/chat.postMessage with a bot token in http_config.authorization".into());
            }
            if self
                .post_url()
                .and_then(|u| update_url(u.expose()))
                .is_none()
            {
                return Err("update_message: the URL must end in /api/chat.postMessage (chat.update is called beside it)".into());
            }
        }
        for (i, f) in self.fields.iter().enumerate() {
            if f.title.is_empty() {
                return Err(format!("fields[{i}]: missing title"));
            }
            if f.value.is_empty() {
                return Err(format!("fields[{i}]: missing value"));
            }
        }
        for (i, a) in self.actions.iter_mut().enumerate() {
            if a.kind.is_empty() {
                return Err(format!("actions[{i}]: missing type"));
            }
            if a.text.is_empty() {
                return Err(format!("actions[{i}]: missing text"));
            }
            if set(&a.url) {
                // A link button: Alertmanager drops the message-action keys.
                a.name = None;
                a.value = None;
                a.confirm = None;
            } else if set(&a.name) {
                a.url = None;
            } else {
                return Err(format!("actions[{i}]: missing name or url"));
            }
            if a.confirm.as_ref().is_some_and(|c| c.text.is_empty()) {
                return Err(format!("actions[{i}].confirm: missing text"));
            }
        }
        for t in self.templates() {
            check_template(t)?;
        }
        if let Some(rl) = &self.rate_limit {
            check_rate_limit(rl)?;
        }
        self.send_resolved = Some(self.send_resolved.unwrap_or(self.update_message));
        Ok(())
    }

    /// Every template of this configuration.
    fn templates(&self) -> Vec<&str> {
        let mut v: Vec<&str> = [
            &self.channel,
            &self.username,
            &self.color,
            &self.title,
            &self.title_link,
            &self.pretext,
            &self.text,
            &self.message_text,
            &self.fallback,
            &self.callback_id,
            &self.footer,
            &self.icon_emoji,
            &self.icon_url,
            &self.image_url,
            &self.thumb_url,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
        for f in &self.fields {
            v.extend([f.title.as_str(), f.value.as_str()]);
        }
        for a in &self.actions {
            v.extend([a.kind.as_str(), a.text.as_str()]);
            v.extend(
                [&a.url, &a.style, &a.name, &a.value]
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            );
            if let Some(c) = &a.confirm {
                v.push(c.text.as_str());
                v.extend(
                    [&c.title, &c.ok_text, &c.dismiss_text]
                        .into_iter()
                        .flatten()
                        .map(String::as_str),
                );
            }
        }
        v
    }

    /// The URL messages are posted to: `api_url`, or `app_url` with a token.
    pub fn post_url(&self) -> Option<Secret> {
        match (&self.api_url, &self.app_token, &self.app_url) {
            (Some(u), _, _) => Some(u.clone()),
            (None, Some(_), Some(u)) => Some(Secret::new(u.clone())),
            _ => None,
        }
    }

    /// Web API mode: a bot token, or a URL that is `chat.postMessage`.
    pub fn is_web_api(&self) -> bool {
        self.app_token.is_some()
            || self
                .api_url
                .as_ref()
                .is_some_and(|u| is_post_message_url(u.expose()))
    }
}

// ---------------------------------------------------------------------------------------
// Payload
// ---------------------------------------------------------------------------------------

/// The request body: webhook, `chat.postMessage` and `chat.update` (with `ts`) share it.
#[derive(Debug, Clone, Serialize)]
pub struct SlackPayload {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `chat.update` only: the message to edit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub link_names: bool,
    pub text: String,
    pub attachments: Vec<SlackAttachment>,
}

/// A legacy attachment: the only way to get a coloured bar without Block Kit.
#[derive(Debug, Clone, Serialize)]
pub struct SlackAttachment {
    pub color: String,
    pub fallback: String,
    pub title: String,
    pub title_link: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretext: Option<String>,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<AttachmentField>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<AttachmentAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
    pub mrkdwn_in: Vec<String>,
    pub footer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttachmentField {
    pub title: String,
    pub value: String,
    pub short: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttachmentAction {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<AttachmentConfirm>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttachmentConfirm {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dismiss_text: Option<String>,
}

/// The short reply posted in the edited message's thread.
#[derive(Debug, Serialize)]
struct ThreadReply<'a> {
    channel: &'a str,
    thread_ts: &'a str,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon_emoji: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon_url: Option<&'a str>,
}

// ---------------------------------------------------------------------------------------
// Notifier
// ---------------------------------------------------------------------------------------

enum Mode {
    Webhook {
        url: Secret,
    },
    WebApi {
        post: Secret,
        update: Option<Secret>,
    },
}

/// The Slack integration (incoming webhook or Web API).
pub struct SlackNotifier {
    mode: Mode,
    client: HttpClient,
    templates: Arc<Templates>,
    cfg: SlackConfig,
    authorized: bool,
}

/// What a message shows: each alert's status by fingerprint.
type Shown = BTreeMap<String, Status>;

/// What the messages this process posted or edited show, by (post URL, message id), so an
/// edit's thread reply can say what changed. Process-wide so a reload (which rebuilds the
/// notifiers) keeps it; after a restart the reply falls back to the current counts.
fn shown() -> &'static Mutex<HashMap<String, (Shown, Instant)>> {
    static SHOWN: OnceLock<Mutex<HashMap<String, (Shown, Instant)>>> = OnceLock::new();
    SHOWN.get_or_init(Mutex::default)
}

/// Entries kept in [`shown`]; the oldest go first.
const SHOWN_CAP: usize = 10_000;

fn shown_key(post: &Secret, id: &str) -> String {
    format!("{}\n{id}", post.expose())
}

fn remember(post: &Secret, id: &str, state: Shown) {
    let mut m = lock(shown());
    if m.len() >= SHOWN_CAP {
        let mut ages: Vec<(Instant, String)> =
            m.iter().map(|(k, (_, t))| (*t, k.clone())).collect();
        ages.sort();
        for (_, k) in ages.into_iter().take(SHOWN_CAP / 10) {
            m.remove(&k);
        }
    }
    m.insert(shown_key(post, id), (state, Instant::now()));
}

/// Record what message `id` shows now; a resolved group's message will not change again.
fn remember_or_forget(post: &Secret, id: &str, msg: &WebhookMessage) {
    if msg.status == Status::Resolved {
        lock(shown()).remove(&shown_key(post, id));
    } else {
        remember(post, id, shown_of(msg));
    }
}

fn recall(post: &Secret, id: &str) -> Option<Shown> {
    lock(shown())
        .get(&shown_key(post, id))
        .map(|(s, _)| s.clone())
}

fn shown_of(msg: &WebhookMessage) -> Shown {
    msg.alerts
        .iter()
        .map(|a| (a.fingerprint.clone(), a.status))
        .collect()
}

/// Split a message id `"<channel>:<ts>"`.
pub fn parse_message_id(id: &str) -> Option<(&str, &str)> {
    let (c, ts) = id.split_once(':')?;
    (!c.is_empty() && !ts.is_empty()).then_some((c, ts))
}

impl SlackNotifier {
    /// Build from a resolved configuration (see [`SlackConfig::validate`]).
    pub fn new(c: &SlackConfig, t: Arc<Templates>) -> Result<Self, String> {
        let url = c
            .post_url()
            .filter(|u| !u.is_empty())
            .ok_or("api_url: required")?;
        let mut http = c.http_config.clone();
        if let Some(token) = &c.app_token {
            http.authorization = Some(Authorization {
                kind: Some("Bearer".into()),
                credentials: Some(token.clone()),
                credentials_file: None,
            });
        }
        let mode = if c.is_web_api() {
            Mode::WebApi {
                update: update_url(url.expose()).map(Secret::new),
                post: url,
            }
        } else {
            Mode::Webhook { url }
        };
        // Alertmanager's `timeout: 0` means none; a request must end, so 0 is the default.
        let timeout = c
            .timeout
            .map(|t| t.0)
            .filter(|t| !t.is_zero())
            .unwrap_or(DEFAULT_TIMEOUT);
        Ok(Self {
            mode,
            client: HttpClient::new(&http, timeout)?,
            templates: t,
            authorized: has_auth(&http),
            cfg: c.clone(),
        })
    }

    fn tmpl(&self, what: &str, source: &str, msg: &WebhookMessage) -> Result<String, NotifyError> {
        super::render(&self.templates, what, source, msg)
    }

    /// A template key rendered and trimmed; `None` when unset or rendered empty.
    fn opt(
        &self,
        what: &str,
        source: &Option<String>,
        msg: &WebhookMessage,
    ) -> Result<Option<String>, NotifyError> {
        match source.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let v = self.tmpl(what, s, msg)?;
                let v = v.trim();
                Ok((!v.is_empty()).then(|| v.to_string()))
            }
            None => Ok(None),
        }
    }

    /// The body sent for notification `n` (without `ts`: that is added for an edit).
    pub fn payload(&self, n: &Notification) -> Result<SlackPayload, NotifyError> {
        let c = &self.cfg;
        let msg = &n.message;
        let escaped_subject = slack_escape(&one_line(&subject(msg)));
        let title = match self.opt("title", &c.title, msg)? {
            Some(t) => truncate(&one_line(&t), MAX_TITLE),
            None => truncate_mrkdwn(&escaped_subject, MAX_TITLE),
        };
        let title_link = self
            .opt("title_link", &c.title_link, msg)?
            .unwrap_or_else(|| alerts_url(msg));
        let pretext = self
            .opt("pretext", &c.pretext, msg)?
            .map(|t| truncate_mrkdwn(&t, MAX_TEXT));
        let text = match self.opt("text", &c.text, msg)? {
            Some(t) => truncate_mrkdwn(&t, MAX_TEXT),
            None => default_text(msg),
        };
        let fallback = match self.opt("fallback", &c.fallback, msg)? {
            Some(t) => truncate_mrkdwn(&t, MAX_TEXT),
            None => truncate_mrkdwn(&escaped_subject, MAX_FALLBACK),
        };
        let callback_id = self.opt("callback_id", &c.callback_id, msg)?;
        let image_url = self.opt("image_url", &c.image_url, msg)?;
        let thumb_url = self.opt("thumb_url", &c.thumb_url, msg)?;
        let footer = match self.opt("footer", &c.footer, msg)? {
            Some(t) => truncate_mrkdwn(&t, MAX_FOOTER),
            None => format!("alert-router · {}", slack_escape(&one_line(&n.receiver))),
        };
        let color = self
            .opt("color", &c.color, msg)?
            .unwrap_or_else(|| color(msg).to_string());
        let mut fields = Vec::with_capacity(c.fields.len());
        for (i, f) in c.fields.iter().enumerate() {
            let title = self.tmpl(&format!("fields[{i}].title"), &f.title, msg)?;
            let value = self.tmpl(&format!("fields[{i}].value"), &f.value, msg)?;
            let (title, value) = (title.trim(), value.trim());
            if title.is_empty() && value.is_empty() {
                continue;
            }
            fields.push(AttachmentField {
                title: truncate_mrkdwn(&one_line(title), MAX_FIELD_TITLE),
                value: truncate_mrkdwn(value, MAX_FIELD_VALUE),
                short: f.short.unwrap_or(c.short_fields),
            });
        }
        let mut actions = Vec::with_capacity(c.actions.len());
        for (i, a) in c.actions.iter().enumerate() {
            let what = |k: &str| format!("actions[{i}].{k}");
            let confirm = match &a.confirm {
                Some(cf) => Some(AttachmentConfirm {
                    text: self
                        .tmpl(&what("confirm.text"), &cf.text, msg)?
                        .trim()
                        .to_string(),
                    title: self.opt(&what("confirm.title"), &cf.title, msg)?,
                    ok_text: self.opt(&what("confirm.ok_text"), &cf.ok_text, msg)?,
                    dismiss_text: self.opt(&what("confirm.dismiss_text"), &cf.dismiss_text, msg)?,
                }),
                None => None,
            };
            actions.push(AttachmentAction {
                kind: self.tmpl(&what("type"), &a.kind, msg)?.trim().to_string(),
                text: truncate(
                    &one_line(self.tmpl(&what("text"), &a.text, msg)?.trim()),
                    MAX_BUTTON_TEXT,
                ),
                url: self.opt(&what("url"), &a.url, msg)?,
                style: self.opt(&what("style"), &a.style, msg)?,
                name: self.opt(&what("name"), &a.name, msg)?,
                value: self
                    .opt(&what("value"), &a.value, msg)?
                    .map(|v| truncate(&v, MAX_BUTTON_VALUE)),
                confirm,
            });
        }
        let mrkdwn_in = if c.mrkdwn_in.is_empty() {
            vec!["text".to_string(), "pretext".to_string()]
        } else {
            c.mrkdwn_in.clone()
        };
        let top = match self.opt("message_text", &c.message_text, msg)? {
            Some(t) => truncate_mrkdwn(&t, MAX_MESSAGE_TEXT),
            None => fallback.clone(),
        };
        Ok(SlackPayload {
            channel: self.opt("channel", &c.channel, msg)?,
            ts: None,
            username: self.opt("username", &c.username, msg)?,
            icon_emoji: self.opt("icon_emoji", &c.icon_emoji, msg)?,
            icon_url: self.opt("icon_url", &c.icon_url, msg)?,
            link_names: c.link_names,
            text: top,
            attachments: vec![SlackAttachment {
                color,
                fallback,
                title,
                title_link,
                pretext,
                text,
                fields,
                actions,
                image_url,
                thumb_url,
                callback_id,
                mrkdwn_in,
                footer,
            }],
        })
    }

    /// One Web API call, its JSON answer classified.
    async fn call<T: Serialize + ?Sized>(
        &self,
        url: &Secret,
        body: &T,
    ) -> Result<ApiReply, ApiFailure> {
        let raw = post_json_raw(&self.client, url, body, "application/json; charset=utf-8")
            .await
            .map_err(ApiFailure::other)?;
        web_api_answer(raw.status, raw.retry_after, &raw.body, url)
    }

    async fn send_web_api(
        &self,
        n: &Notification,
        payload: SlackPayload,
        post: &Secret,
        update: Option<&Secret>,
        edit: Option<&str>,
    ) -> Result<Delivered, NotifyError> {
        if payload.channel.is_none() {
            return Err(NotifyError::permanent(
                FailureReason::Other,
                "channel: rendered empty; the Slack Web API needs a channel",
            ));
        }
        let target = match (self.cfg.update_message, update, edit) {
            (true, Some(u), Some(id)) => match parse_message_id(id) {
                Some(ct) => Some((u, id, ct)),
                None => {
                    tracing::warn!(id, "slack: unusable message id; posting a new message");
                    None
                }
            },
            _ => None,
        };
        if let Some((update, old_id, (channel, ts))) = target {
            let body = SlackPayload {
                channel: Some(channel.to_string()),
                ts: Some(ts.to_string()),
                // chat.update keeps the poster's identity.
                username: None,
                icon_emoji: None,
                icon_url: None,
                ..payload.clone()
            };
            match self.call(update, &body).await {
                Ok(r) => {
                    let channel = r.channel.unwrap_or_else(|| channel.to_string());
                    let ts = r.ts.unwrap_or_else(|| ts.to_string());
                    let id = format!("{channel}:{ts}");
                    let before = recall(post, old_id);
                    let reply = ThreadReply {
                        channel: &channel,
                        thread_ts: &ts,
                        text: change_note(before.as_ref(), &n.message),
                        username: payload.username.as_deref(),
                        icon_emoji: payload.icon_emoji.as_deref(),
                        icon_url: payload.icon_url.as_deref(),
                    };
                    // The edit is what counts; a lost thread reply is only logged
                    // (retrying would edit again and could post the reply twice).
                    if let Err(f) = self.call(post, &reply).await {
                        tracing::warn!(receiver = %n.receiver, id = n.id, error = %f.error, "slack: the message was edited but its thread reply failed");
                    }
                    remember_or_forget(post, &id, &n.message);
                    return Ok(Delivered {
                        message_id: Some(id),
                    });
                }
                Err(f) if f.code.as_deref().is_some_and(message_gone) => {
                    tracing::info!(receiver = %n.receiver, id = n.id, code = ?f.code, "slack: the message to edit is gone; posting a new one");
                }
                Err(f) => return Err(f.error),
            }
        }
        let r = self.call(post, &payload).await.map_err(|f| f.error)?;
        let id = match (r.channel, r.ts) {
            (Some(c), Some(ts)) => Some(format!("{c}:{ts}")),
            _ => {
                if self.cfg.update_message {
                    tracing::warn!(receiver = %n.receiver, id = n.id, "slack: the answer has no channel and ts; later notifications cannot edit this message");
                }
                None
            }
        };
        if let Some(id) = &id {
            remember_or_forget(post, id, &n.message);
        }
        Ok(Delivered { message_id: id })
    }
}

impl Notifier for SlackNotifier {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved.unwrap_or(self.cfg.update_message)
    }

    fn updates_messages(&self) -> bool {
        self.cfg.update_message && matches!(self.mode, Mode::WebApi { .. })
    }

    fn send<'a>(
        &'a self,
        n: &'a Notification,
        edit: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Delivered, NotifyError>> {
        Box::pin(async move {
            let payload = self.payload(n)?;
            match &self.mode {
                Mode::Webhook { url } => {
                    let reply = post_json(&self.client, url, &payload).await?;
                    // Incoming webhooks answer `ok`; any other 2xx is accepted too, since
                    // the message was taken.
                    if reply.body.trim() != "ok" {
                        tracing::debug!(
                            status = reply.status,
                            "slack accepted the message with an unexpected body"
                        );
                    }
                    Ok(Delivered::default())
                }
                Mode::WebApi { post, update } => {
                    self.send_web_api(n, payload, post, update.as_ref(), edit)
                        .await
                }
            }
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        let payload = self.payload(n)?;
        let (url, content_type) = match &self.mode {
            Mode::Webhook { .. } => (crate::secret::REDACTED.to_string(), "application/json"),
            Mode::WebApi { post, .. } => {
                let u = post.expose();
                // The Web API URL holds no secret unless someone put one in it.
                let plain = !u.contains('?') && !u.contains('@');
                (
                    if plain {
                        u.to_string()
                    } else {
                        crate::secret::REDACTED.to_string()
                    },
                    "application/json; charset=utf-8",
                )
            }
        };
        let mut headers = vec![("Content-Type".to_string(), content_type.to_string())];
        if self.authorized {
            headers.push((
                "Authorization".to_string(),
                crate::secret::REDACTED.to_string(),
            ));
        }
        Ok(vec![RenderedRequest {
            method: "POST".into(),
            url,
            headers,
            body: serde_json::to_value(&payload).map_err(|e| {
                NotifyError::permanent(FailureReason::Other, format!("cannot encode: {e}"))
            })?,
        }])
    }
}

// ---------------------------------------------------------------------------------------
// Web API answers
// ---------------------------------------------------------------------------------------

/// A successful Web API answer: where the message is.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ApiReply {
    pub channel: Option<String>,
    pub ts: Option<String>,
}

/// A failed Web API call: Slack's error code when it gave one, and the classified error.
#[derive(Debug)]
pub(crate) struct ApiFailure {
    pub code: Option<String>,
    pub error: NotifyError,
}

impl ApiFailure {
    fn other(error: NotifyError) -> Self {
        ApiFailure { code: None, error }
    }
}

/// Errors Slack documents as temporary: tried again.
const TRANSIENT: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];

/// Errors about the token: permanent, reported as `authError`.
const AUTH: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "not_allowed_token_type",
    "access_denied",
    "ekm_access_denied",
    "org_login_required",
    "two_factor_setup_required",
];

/// `chat.update` errors after which the message is posted anew.
fn message_gone(code: &str) -> bool {
    matches!(
        code,
        "message_not_found" | "cant_update_message" | "edit_window_closed"
    )
}

/// Classify a Web API answer. The JSON decides (Slack answers errors with 200 and
/// `{"ok":false,"error":…}`): `ratelimited` (HTTP 429) and the transient errors are
/// retryable, honouring `Retry-After`; everything else (`invalid_auth`, `not_authed`,
/// `channel_not_found`, `is_archived`, `msg_too_long`, …) is permanent. An answer that is
/// not JSON falls back to the status code (a 2xx without JSON is retried).
pub(crate) fn web_api_answer(
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
    url: &Secret,
) -> Result<ApiReply, ApiFailure> {
    #[derive(Deserialize)]
    struct Answer {
        ok: bool,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        channel: Option<String>,
        #[serde(default)]
        ts: Option<String>,
        #[serde(default)]
        warning: Option<String>,
    }
    let ok_status = (200..300).contains(&status);
    match serde_json::from_str::<Answer>(body) {
        Ok(a) if a.ok && ok_status => {
            if let Some(w) = a.warning {
                tracing::debug!(warning = %w, "slack accepted the message with a warning");
            }
            let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
            Ok(ApiReply {
                channel: non_empty(a.channel),
                ts: non_empty(a.ts),
            })
        }
        Ok(a) if a.ok => Err(ApiFailure::other(
            classify(status, retry_after, body, url)
                .err()
                .unwrap_or_else(|| NotifyError::retryable(FailureReason::Other, "unexpected")),
        )),
        Ok(a) => {
            let code = truncate(
                &one_line(a.error.as_deref().unwrap_or("unknown_error").trim()),
                100,
            );
            let code = redact(&code, &[url]);
            let mut message = format!("error response from Slack: {code}");
            if status != 200 {
                message.push_str(&format!(" (status code {status})"));
            }
            let error = if status == 429 || code == "ratelimited" || code == "rate_limited" {
                NotifyError::Retryable {
                    message,
                    reason: FailureReason::RateLimited,
                    retry_after,
                }
            } else if status >= 500 || TRANSIENT.contains(&code.as_str()) {
                NotifyError::Retryable {
                    message,
                    reason: FailureReason::ServerError,
                    retry_after,
                }
            } else if AUTH.contains(&code.as_str()) {
                NotifyError::permanent(FailureReason::AuthError, message)
            } else {
                NotifyError::permanent(FailureReason::ClientError, message)
            };
            Err(ApiFailure {
                code: Some(code),
                error,
            })
        }
        // Not the Web API's JSON: an incoming-webhook style `ok` is still a delivery.
        Err(_) if ok_status && body.trim() == "ok" => Ok(ApiReply::default()),
        Err(_) => Err(ApiFailure::other(
            match classify(status, retry_after, body, url) {
                Err(e) => e,
                Ok(()) => NotifyError::retryable(
                    FailureReason::Other,
                    format!(
                        "unexpected answer from Slack (status code {status}, not the Web API's JSON): {}",
                        truncate(&one_line(redact(body, &[url]).trim()), 200)
                    ),
                ),
            },
        )),
    }
}

/// The thread reply of an edit: what changed since the message was last posted or edited
/// (`before`, when this process remembers it), then the current count.
pub fn change_note(before: Option<&Shown>, msg: &WebhookMessage) -> String {
    if msg.status == Status::Resolved {
        let n = msg.alerts.len() as u64 + msg.truncated_alerts;
        return if n > 1 {
            format!(":white_check_mark: resolved (all {n} alerts)")
        } else {
            ":white_check_mark: resolved".to_string()
        };
    }
    let firing = msg.firing().count();
    let mut parts = Vec::new();
    let mut more = 0;
    match before {
        Some(b) => {
            more = msg
                .firing()
                .filter(|a| b.get(&a.fingerprint) != Some(&Status::Firing))
                .count();
            let present: HashSet<&str> =
                msg.alerts.iter().map(|a| a.fingerprint.as_str()).collect();
            // Resolved now, or gone from the group while it was shown firing (resolved
            // alerts are not sent without send_resolved).
            let resolved = msg
                .resolved()
                .filter(|a| b.get(&a.fingerprint) != Some(&Status::Resolved))
                .count()
                + b.iter()
                    .filter(|(fp, s)| **s == Status::Firing && !present.contains(fp.as_str()))
                    .count();
            if more > 0 {
                parts.push(format!("{more} more firing"));
            }
            if resolved > 0 {
                parts.push(format!("{resolved} resolved"));
            }
        }
        None => {
            let resolved = msg.resolved().count();
            if resolved > 0 {
                parts.push(format!("{resolved} resolved"));
            }
        }
    }
    match (parts.is_empty(), before.is_some()) {
        (true, true) => format!(":repeat: still {firing} firing"),
        (true, false) => format!(":arrows_counterclockwise: updated · {firing} firing now"),
        (false, _) => {
            let emoji = if more > 0 {
                ":fire:"
            } else {
                ":white_check_mark:"
            };
            format!("{emoji} {} · {firing} firing now", parts.join(", "))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Default text
// ---------------------------------------------------------------------------------------

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

    fn alert(labels: &[(&str, &str)], status: Status) -> WebhookAlert {
        crate::notify::fixtures::alert(labels, status)
    }

    fn notification(alerts: Vec<WebhookAlert>) -> Notification {
        crate::notify::fixtures::notification("slack", alerts)
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
            ("title", "{{ .Status | toUpper }} {{ len .Alerts }}"),
            (
                "text",
                "{{ range .Alerts }}{{ .Labels.alertname }}{{ end }}",
            ),
            (
                "title_link",
                "https://runbooks.test/{{ .CommonLabels.alertname }}",
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

    fn load(yaml: &str) -> Result<crate::config::Config, String> {
        crate::config::Config::load_str(yaml, "t.yml", Path::new(".")).map_err(|e| e.to_string())
    }

    fn receiver(slack: &str) -> String {
        format!("route:\n  receiver: x\nreceivers:\n  - name: x\n    slack_configs:\n{slack}")
    }

    /// A Slack receiver as an alertmanager.yml has it (Go templates), every key
    /// of Alertmanager's `slack_configs` set.
    const AM_RECEIVER: &str = r##"      - send_resolved: true
        http_config:
          authorization:
            credentials: xoxb-123-456-SECRET
        api_url: https://slack.com/api/chat.postMessage
        channel: '#alerts'
        username: Alertmanager
        color: '{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}'
        title: '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}'
        title_link: 'https://am.example.com/#/alerts'
        pretext: 'Pretext {{ .Alerts | len }}'
        text: '{{ range .Alerts }}*{{ .Labels.alertname }}* {{ .Annotations.summary }}{{ end }}'
        message_text: 'Top-level {{ .Status }}'
        fallback: 'Fallback {{ .Status }}'
        callback_id: 'cb-{{ .CommonLabels.severity | len }}'
        footer: 'Footer'
        icon_emoji: ':fire:'
        icon_url: 'https://icons.example.com/am.png'
        image_url: 'https://img.example.com/graph.png'
        thumb_url: 'https://img.example.com/thumb.png'
        link_names: true
        short_fields: true
        mrkdwn_in: [fallback, pretext, text, fields]
        fields:
          - title: Severity
            value: '{{ .CommonLabels.severity }}'
          - title: Runbook
            value: 'https://runbooks.example.com'
            short: false
        actions:
          - type: button
            text: 'Runbook :green_book:'
            url: 'https://runbooks.example.com/{{ .CommonLabels.alertname }}'
            style: primary
            name: ignored-with-url
          - type: button
            text: Silence
            name: silence
            value: '{{ len .CommonLabels.severity }}'
            style: danger
            confirm:
              text: Really silence?
              title: Silence
              ok_text: 'Yes'
              dismiss_text: 'No'
        update_message: true
        timeout: 0s
"##;

    #[test]
    fn an_alertmanager_receiver_loads_and_every_key_is_rendered() {
        let c = load(&receiver(AM_RECEIVER)).unwrap();
        let sc = &c.receivers[0].slack_configs[0];
        assert!(sc.is_web_api() && sc.update_message);
        let dump = format!("{c:?} {}", serde_json::to_string(&c).unwrap());
        assert!(!dump.contains("SECRET"), "token leaked: {dump}");
        let s = SlackNotifier::new(sc, Arc::new(Templates::new())).unwrap();
        assert!(s.updates_messages() && s.send_resolved());
        let mut n = notification(vec![alert(
            &[("alertname", "DiskFull"), ("severity", "critical")],
            Status::Firing,
        )]);
        n.message.common_labels = [
            ("alertname".to_string(), "DiskFull".to_string()),
            ("severity".to_string(), "critical".to_string()),
        ]
        .into();
        let v = serde_json::to_value(s.payload(&n).unwrap()).unwrap();
        let want = serde_json::json!({
            "channel": "#alerts",
            "username": "Alertmanager",
            "icon_emoji": ":fire:",
            "icon_url": "https://icons.example.com/am.png",
            "link_names": true,
            "text": "Top-level firing",
            "attachments": [{
                "color": "danger",
                "fallback": "Fallback firing",
                "title": "[FIRING] DiskFull",
                "title_link": "https://am.example.com/#/alerts",
                "pretext": "Pretext 1",
                "text": "*DiskFull* disk is full",
                "fields": [
                    {"title": "Severity", "value": "critical", "short": true},
                    {"title": "Runbook", "value": "https://runbooks.example.com", "short": false}
                ],
                "actions": [
                    {"type": "button", "text": "Runbook :green_book:", "style": "primary",
                     "url": "https://runbooks.example.com/DiskFull"},
                    {"type": "button", "text": "Silence", "name": "silence", "value": "8",
                     "style": "danger",
                     "confirm": {"text": "Really silence?", "title": "Silence", "ok_text": "Yes", "dismiss_text": "No"}}
                ],
                "image_url": "https://img.example.com/graph.png",
                "thumb_url": "https://img.example.com/thumb.png",
                "callback_id": "cb-8",
                "mrkdwn_in": ["fallback", "pretext", "text", "fields"],
                "footer": "Footer"
            }]
        });
        assert_eq!(v, want);
        let r = Notifier::render(&s, &n).unwrap();
        assert_eq!(r[0].url, "https://slack.com/api/chat.postMessage");
        assert!(r[0]
            .headers
            .iter()
            .any(|(k, v)| k == "Authorization" && v == "<secret>"));
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let hook = "api_url: https://hooks.slack.com/services/T/B/X";
        let api = "api_url: https://slack.com/api/chat.postMessage";
        let auth = "http_config: {authorization: {credentials: xoxb-1}}";
        let cases = [
            (format!("      - {{{hook}, update_message: true}}\n"), "update_message: incoming webhooks cannot edit"),
            (format!("      - {{{api}, {auth}}}\n"), "channel: required by the Slack Web API"),
            (format!("      - {{{api}, channel: C1}}\n"), "set the bot token"),
            (format!("      - {{{hook}, api_url_file: x}}\n"), "set only one of api_url and api_url_file"),
            (format!("      - {{app_token: xoxb-1, {auth}, channel: C1}}\n"), "app_token: becomes the Authorization header"),
            (format!("      - {{{hook}, app_token: xoxb-1}}\n"), "set only one of api_url"),
            (format!("      - {{{hook}, fields: [{{title: t}}]}}\n"), "fields[0]: missing value"),
            (format!("      - {{{hook}, actions: [{{type: button, text: t}}]}}\n"), "actions[0]: missing name or url"),
            (format!("      - {{{hook}, actions: [{{type: button, text: t, name: n, confirm: {{title: x}}}}]}}\n"), "actions[0].confirm: missing text"),
            (format!("      - {{{hook}, footer: '{{{{ x'}}\n"), "template error"),
            (format!("      - {{{hook}, post_to_nowhere: true}}\n"), "unknown field `post_to_nowhere`"),
            (format!("      - {{api_url: 'https://proxy.test/chat.postMessage', {auth}, channel: C1, update_message: true}}\n"), "update_message: incoming webhooks"),
        ];
        for (yaml, want) in cases {
            let e = load(&receiver(&yaml)).map(|_| ()).unwrap_err();
            assert!(e.contains(want), "{yaml}=> {e}\nwant {want}");
        }
        // Incoming webhooks keep working as before, with any of the new keys.
        let c = load(&receiver(&format!(
            "      - {{{hook}, pretext: p, fields: [{{title: t, value: v}}]}}\n"
        )))
        .unwrap();
        let sc = &c.receivers[0].slack_configs[0];
        assert!(!sc.is_web_api());
        assert_eq!(sc.send_resolved, Some(false));
        let s = SlackNotifier::new(sc, Arc::new(Templates::new())).unwrap();
        assert!(!s.updates_messages());
    }

    #[test]
    fn tokens_and_global_defaults() {
        // A receiver's own app_token posts to the default app URL with the token.
        let c = load(&receiver("      - {app_token: xoxb-own, channel: C1}\n")).unwrap();
        let sc = &c.receivers[0].slack_configs[0];
        assert!(sc.is_web_api());
        assert_eq!(sc.post_url().unwrap().expose(), DEFAULT_APP_URL);
        // The global token serves receivers without credentials of their own; the
        // global URL the others.
        let yaml = "global:\n  slack_app_token: xoxb-global\n  slack_app_url: https://slack.test/api/chat.postMessage\n  slack_api_url: https://slack.test/api/chat.postMessage\nroute:\n  receiver: x\nreceivers:\n  - name: x\n    slack_configs:\n      - {channel: C1, update_message: true}\n      - {channel: C2, http_config: {authorization: {credentials: xoxb-own}}}\n";
        let c = load(yaml).unwrap();
        let [a, b] = &c.receivers[0].slack_configs[..] else {
            panic!()
        };
        assert_eq!(
            a.app_token.as_ref().map(Secret::expose),
            Some("xoxb-global")
        );
        assert!(b.app_token.is_none());
        assert_eq!(
            b.api_url.as_ref().map(Secret::expose),
            Some("https://slack.test/api/chat.postMessage")
        );
        let bad = "global:\n  slack_app_token: t\n  slack_api_url: https://hooks.slack.com/services/T/B/X\nroute:\n  receiver: x\nreceivers:\n  - name: x\n";
        assert!(load(bad)
            .unwrap_err()
            .contains("slack_app_token goes with slack_app_url"));
    }

    #[test]
    fn update_urls_and_message_ids() {
        assert_eq!(
            update_url("https://slack.com/api/chat.postMessage").as_deref(),
            Some("https://slack.com/api/chat.update")
        );
        assert_eq!(
            update_url("http://127.0.0.1:8080/api/chat.postMessage").as_deref(),
            Some("http://127.0.0.1:8080/api/chat.update")
        );
        assert_eq!(update_url("https://hooks.slack.com/services/T/B/X"), None);
        assert!(is_post_message_url(
            "http://127.0.0.1:1/api/chat.postMessage"
        ));
        assert!(!is_post_message_url(
            "https://hooks.slack.com/services/T/B/X"
        ));
        assert_eq!(
            parse_message_id("C123:1700000000.000100"),
            Some(("C123", "1700000000.000100"))
        );
        assert_eq!(parse_message_id("C123"), None);
        assert_eq!(parse_message_id(":1.2"), None);
    }

    #[test]
    fn web_api_answers_are_classified() {
        let url = Secret::new("https://slack.test/api/chat.postMessage");
        let ok = web_api_answer(
            200,
            None,
            r#"{"ok":true,"channel":"C123","ts":"1700000000.000100","message":{}}"#,
            &url,
        )
        .unwrap();
        assert_eq!(ok.channel.as_deref(), Some("C123"));
        assert_eq!(ok.ts.as_deref(), Some("1700000000.000100"));
        let fail = |status, ra, body: &str| web_api_answer(status, ra, body, &url).unwrap_err();
        let r = fail(
            429,
            Some(Duration::from_secs(7)),
            r#"{"ok":false,"error":"ratelimited"}"#,
        );
        match r.error {
            NotifyError::Retryable {
                reason: FailureReason::RateLimited,
                retry_after: Some(d),
                ..
            } => assert_eq!(d, Duration::from_secs(7)),
            e => panic!("{e:?}"),
        }
        // ratelimited in a 200 still honours Retry-After.
        let r = fail(
            200,
            Some(Duration::from_secs(3)),
            r#"{"ok":false,"error":"ratelimited"}"#,
        );
        assert!(matches!(
            r.error,
            NotifyError::Retryable {
                retry_after: Some(_),
                ..
            }
        ));
        for code in ["internal_error", "fatal_error", "service_unavailable"] {
            let r = fail(200, None, &format!(r#"{{"ok":false,"error":"{code}"}}"#));
            assert!(matches!(r.error, NotifyError::Retryable { .. }), "{code}");
        }
        for (code, reason) in [
            ("invalid_auth", FailureReason::AuthError),
            ("not_authed", FailureReason::AuthError),
            ("channel_not_found", FailureReason::ClientError),
            ("is_archived", FailureReason::ClientError),
            ("msg_too_long", FailureReason::ClientError),
            ("message_not_found", FailureReason::ClientError),
        ] {
            let r = fail(200, None, &format!(r#"{{"ok":false,"error":"{code}"}}"#));
            assert_eq!(r.code.as_deref(), Some(code));
            match r.error {
                NotifyError::Permanent {
                    reason: got,
                    message,
                } => {
                    assert_eq!(got, reason, "{code}");
                    assert_eq!(message, format!("error response from Slack: {code}"));
                }
                e => panic!("{code}: {e:?}"),
            }
        }
        // Not JSON: the status decides; a 2xx that is not JSON is tried again.
        assert!(matches!(
            fail(503, None, "<html>").error,
            NotifyError::Retryable { .. }
        ));
        assert!(matches!(
            fail(404, None, "not found").error,
            NotifyError::Permanent { .. }
        ));
        assert!(matches!(
            fail(200, None, "<html>").error,
            NotifyError::Retryable { .. }
        ));
        assert_eq!(
            web_api_answer(200, None, "ok", &url).unwrap(),
            ApiReply::default()
        );
    }

    #[test]
    fn thread_replies_say_what_changed() {
        let a = alert(&[("alertname", "A"), ("instance", "1")], Status::Firing);
        let b = alert(&[("alertname", "A"), ("instance", "2")], Status::Firing);
        let c = alert(&[("alertname", "A"), ("instance", "3")], Status::Firing);
        let first = notification(vec![a.clone(), b.clone()]).message;
        let before = shown_of(&first);
        let grown = notification(vec![a.clone(), b.clone(), c.clone()]).message;
        assert_eq!(
            change_note(Some(&before), &grown),
            ":fire: 1 more firing · 3 firing now"
        );
        let mut b_res = b.clone();
        b_res.status = Status::Resolved;
        let mixed = notification(vec![a.clone(), b_res.clone(), c.clone()]).message;
        assert_eq!(
            change_note(Some(&before), &mixed),
            ":fire: 1 more firing, 1 resolved · 2 firing now"
        );
        assert_eq!(
            change_note(None, &mixed),
            ":white_check_mark: 1 resolved · 2 firing now"
        );
        assert_eq!(
            change_note(Some(&before), &first),
            ":repeat: still 2 firing"
        );
        // Without send_resolved a resolved alert just disappears.
        let shrunk = notification(vec![a.clone()]).message;
        assert_eq!(
            change_note(Some(&before), &shrunk),
            ":white_check_mark: 1 resolved · 1 firing now"
        );
        let mut a_res = a.clone();
        a_res.status = Status::Resolved;
        let done = notification(vec![a_res, b_res]).message;
        assert_eq!(done.status, Status::Resolved);
        assert_eq!(
            change_note(Some(&before), &done),
            ":white_check_mark: resolved (all 2 alerts)"
        );
    }
}
