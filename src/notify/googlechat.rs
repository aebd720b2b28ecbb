//! Google Chat integration (space incoming webhook; Alertmanager has none): a text
//! message per notification, threaded per group — the thread key is a stable hash of the
//! receiver and group key, sent with `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD`,
//! so every notification of a group (firing, more alerts, resolved) lands in one thread.
//! Webhook credentials cannot edit messages, so threading is how updates are grouped.
//!
//! Google Chat's text format has no escape character. Interpolated values get an
//! invisible zero-width space where a formatting character (`*`, `_`, `~`, backtick)
//! could open or close formatting, and after every `<`, so `<users/all>` (which would
//! notify the whole space) and `<url|label>` links in a label are plain text. The text is
//! cut to stay under the 32,000-byte message limit.

use super::http::{classify, rendered_post, send_json, DEFAULT_TIMEOUT};
use super::http_config::{HttpClient, HttpConfig};
use super::{Delivered, Notifier, NotifyError, RenderedRequest};
use crate::alert::WebhookMessage;
use crate::config::{
    check_rate_limit, check_template, check_url, secret_or_file, yes, GlobalConfig, RateLimit,
};
use crate::duration::AmDuration;
use crate::secret::Secret;
use crate::store::Notification;
use crate::template::{
    alert_list, alerts_url, markup_safe_url, one_line, subject, Markup, Templates,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default when `rate_limit` is not set: a space takes 60 message writes per minute,
/// shared by every app and webhook posting there; half of it leaves room for the others.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 30,
    per: AmDuration(Duration::from_secs(60)),
    burst: Some(5),
};

/// Google Chat's message limit is 32,000 bytes; the text keeps 1,000 bytes of it for the
/// rest of the message (thread key and JSON).
pub const MAX_TEXT_BYTES: usize = 31_000;
/// Budget of the default alert list, in bytes.
const MAX_DEFAULT_LIST: usize = 8_000;

/// Where a reply goes when the thread is gone or new: a new thread (never an error).
const REPLY_OPTION: &str = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD";

/// `googlechat_configs` entry (a router addition): `url` or `url_file`, `text`,
/// `send_resolved`, and the router's `http_config`, `timeout` and `rate_limit`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleChatConfig {
    #[serde(default)]
    pub http_config: HttpConfig,
    /// The space's webhook URL (`…/v1/spaces/S/messages?key=…&token=…`): a secret.
    #[serde(default)]
    pub url: Option<Secret>,
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Message text template (default: subject line, then one line per alert).
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

impl GoogleChatConfig {
    /// Read `url_file`, resolve `http_config`, check the URL and the template.
    pub fn validate(&mut self, base: &Path, _g: &GlobalConfig) -> Result<(), String> {
        self.http_config.resolve(base)?;
        secret_or_file(&mut self.url, &mut self.url_file, base, "url")?;
        match &self.url {
            Some(u) => check_url(u.expose()).map_err(|m| format!("url: {m}"))?,
            None => return Err("url: one of url or url_file is required".into()),
        }
        if let Some(t) = &self.text {
            check_template(t).map_err(|m| format!("text: {m}"))?;
        }
        if let Some(rl) = &self.rate_limit {
            check_rate_limit(rl)?;
        }
        Ok(())
    }
}

/// The message body.
#[derive(Debug, Serialize)]
pub struct GoogleChatPayload {
    pub text: String,
    pub thread: Thread,
}

#[derive(Debug, Serialize)]
pub struct Thread {
    #[serde(rename = "threadKey")]
    pub thread_key: String,
}

/// Neutralise Google Chat text formatting in untrusted text: a zero-width space before a
/// `*`, `_`, `~` or backtick that is not inside a word (inside a word, as in
/// `node_exporter`, it formats nothing and stays untouched), and after every `<`, which
/// would otherwise start a mention (`<users/all>`) or a link.
pub fn googlechat_escape(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '*' | '_' | '~' | '`' => {
                let word = |j: Option<usize>| {
                    j.and_then(|j| chars.get(j))
                        .is_some_and(|c| c.is_alphanumeric())
                };
                if !(word(i.checked_sub(1)) && word(Some(i + 1))) {
                    out.push('\u{200B}');
                }
                out.push(c);
            }
            '<' => out.push_str("<\u{200B}"),
            c => out.push(c),
        }
    }
    out
}

/// Cut `s` to at most `max` bytes on a character boundary, ending with "…" when cut.
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ellipsis = "…";
    let mut end = max.saturating_sub(ellipsis.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s[..end].trim_end().to_string();
    if max >= ellipsis.len() {
        out.push_str(ellipsis);
    }
    out
}

const MARKUP: Markup = Markup {
    escape: googlechat_escape,
    bold: |s| format!("*{s}*"),
    link: |url, label| format!("<{}|{}>", markup_safe_url(url), googlechat_escape(label)),
    len: str::len,
    firing: "🔥",
    resolved: "✅",
};

/// The thread of a group: a stable hash of receiver and group key (the same after a
/// restart, different for every group).
pub fn thread_key(receiver: &str, group_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(receiver.as_bytes());
    h.update([0]);
    h.update(group_key.as_bytes());
    format!("alert-router-{}", &hex::encode(h.finalize())[..32])
}

/// The Google Chat space-webhook integration.
pub struct GoogleChatNotifier {
    url: Secret,
    client: HttpClient,
    templates: Arc<Templates>,
    text: Option<String>,
    send_resolved: bool,
}

impl GoogleChatNotifier {
    pub fn new(c: &GoogleChatConfig, templates: Arc<Templates>) -> Result<Self, String> {
        let url = c
            .url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or("url: required")?;
        Ok(Self {
            url,
            client: HttpClient::new(&c.http_config, c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0))?,
            templates,
            text: c.text.clone().filter(|t| !t.trim().is_empty()),
            send_resolved: c.send_resolved,
        })
    }

    /// The body sent for notification `n`.
    pub fn payload(&self, n: &Notification) -> Result<GoogleChatPayload, NotifyError> {
        let msg = &n.message;
        let text = match &self.text {
            Some(t) => super::render(&self.templates, "text", t, msg)?
                .trim()
                .to_string(),
            None => default_text(msg),
        };
        Ok(GoogleChatPayload {
            text: truncate_bytes(&text, MAX_TEXT_BYTES),
            thread: Thread {
                thread_key: thread_key(&n.receiver, &n.group_key),
            },
        })
    }

    /// `{url}&threadKey=…&messageReplyOption=…` (the webhook's `key` and `token` kept).
    fn post_url(&self, key: &str) -> Secret {
        let Ok(mut u) = reqwest::Url::parse(self.url.expose()) else {
            return self.url.clone();
        };
        let others: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| k != "threadKey" && k != "messageReplyOption")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        u.query_pairs_mut()
            .clear()
            .extend_pairs(others)
            .append_pair("threadKey", key)
            .append_pair("messageReplyOption", REPLY_OPTION);
        Secret::new(String::from(u))
    }
}

/// `*subject*` (linked to the router's view of the group), then one line per alert.
fn default_text(msg: &WebhookMessage) -> String {
    let title = format!(
        "*{}*",
        googlechat_escape(&truncate_bytes(&one_line(&subject(msg)), 500))
    );
    let link = (MARKUP.link)(&alerts_url(msg), "alerts");
    let list = alert_list(msg, MAX_DEFAULT_LIST, &MARKUP);
    format!("{title} · {link}\n{list}")
}

impl Notifier for GoogleChatNotifier {
    fn kind(&self) -> &'static str {
        "googlechat"
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
            let url = self.post_url(&payload.thread.thread_key);
            let r = send_json(&self.client, reqwest::Method::POST, &url, &payload).await?;
            classify(r.status, r.retry_after, &r.body, &url)?;
            // The answer is the message: `name` is `spaces/S/messages/M`.
            let name = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["name"].as_str().map(str::to_string));
            if name.is_none() {
                tracing::debug!(
                    status = r.status,
                    "google chat accepted the message without naming it"
                );
            }
            Ok(Delivered { message_id: name })
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        let payload = self.payload(n)?;
        Ok(vec![rendered_post(
            &self.post_url(&payload.thread.thread_key),
            &payload,
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Fingerprint, LabelSet, Status, WebhookAlert, ZERO_TIME};

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
            generator_url: "http://prom.test/graph?g0.expr=up|x".into(),
        }
    }

    fn notification(group_key: &str, alerts: Vec<WebhookAlert>) -> Notification {
        let mut n = Notification::pending(
            1,
            ("ops", "googlechat", 0),
            WebhookMessage::new(
                "ops",
                alerts,
                LabelSet::new(),
                "http://router.test",
                group_key,
                "first notification",
            ),
            "m".into(),
            crate::alert::now(),
        );
        n.group_key = group_key.into();
        n
    }

    fn notifier(extra: serde_json::Value) -> GoogleChatNotifier {
        let mut c = serde_json::json!({
            "url": "https://chat.googleapis.com/v1/spaces/S/messages?key=KEY&token=TOKEN"
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let c: GoogleChatConfig = serde_json::from_value(c).unwrap();
        GoogleChatNotifier::new(&c, Arc::new(Templates::new())).unwrap()
    }

    #[test]
    fn escaping_breaks_formatting_and_mentions_but_not_words() {
        assert_eq!(googlechat_escape("node_exporter"), "node_exporter");
        assert_eq!(
            googlechat_escape("*bold* _it_ ~s~ `c`"),
            "\u{200B}*bold\u{200B}* \u{200B}_it\u{200B}_ \u{200B}~s\u{200B}~ \u{200B}`c\u{200B}`"
        );
        assert_eq!(googlechat_escape("<users/all>"), "<\u{200B}users/all>");
        assert_eq!(
            googlechat_escape("<http://evil|click>"),
            "<\u{200B}http://evil|click>"
        );
    }

    #[test]
    fn default_text_threads_by_group_and_escapes() {
        let n = notification(
            "{}:{a=\"1\"}",
            vec![alert(
                &[("alertname", "<users/all> *x*"), ("instance", "i_1")],
                Status::Firing,
            )],
        );
        let gc = notifier(serde_json::json!({}));
        let p = gc.payload(&n).unwrap();
        assert!(!p.text.contains("<users/"), "{}", p.text);
        let lines: Vec<&str> = p.text.lines().collect();
        assert!(lines[0].starts_with("*[FIRING:1]"), "{}", lines[0]);
        assert!(
            lines[0].ends_with("<http://router.test/admin/v1/alerts?receiver=ops|alerts>"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("🔥 *<\u{200B}users/all> \u{200B}*x\u{200B}**"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("instance=i_1"), "{}", lines[1]);
        assert!(
            lines[1].ends_with("<http://prom.test/graph?g0.expr=up%7Cx|source>"),
            "{}",
            lines[1]
        );
        // the same group always gets the same thread, another group another one
        let again = gc.payload(&n).unwrap();
        assert_eq!(p.thread.thread_key, again.thread.thread_key);
        let other = notification("{}:{a=\"2\"}", vec![]);
        assert_ne!(
            gc.payload(&other).unwrap().thread.thread_key,
            p.thread.thread_key
        );
        let url = gc.post_url(&p.thread.thread_key);
        assert_eq!(
            url.expose(),
            format!(
                "https://chat.googleapis.com/v1/spaces/S/messages?key=KEY&token=TOKEN&threadKey={}&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD",
                p.thread.thread_key
            )
        );
        let r = gc.render(&n).unwrap();
        assert!(!r[0].url.contains("TOKEN"), "{}", r[0].url);
    }

    #[test]
    fn text_stays_under_the_byte_limit() {
        let huge = "é".repeat(40_000);
        let alerts = (0..300)
            .map(|i| {
                alert(
                    &[("alertname", &huge), ("instance", &format!("h{i}"))],
                    Status::Firing,
                )
            })
            .collect();
        let n = notification("{}:{}", alerts);
        let p = notifier(serde_json::json!({})).payload(&n).unwrap();
        assert!(p.text.len() <= MAX_DEFAULT_LIST + 1_000, "{}", p.text.len());
        assert!(p.text.ends_with("more alerts"));
        let p = notifier(serde_json::json!({"text": "{{ range 40000 }}€{{ end }}"}))
            .payload(&n)
            .unwrap();
        assert!(p.text.len() <= MAX_TEXT_BYTES);
        assert!(p.text.ends_with('…'));
        assert_eq!(truncate_bytes("ab€", 4), "a…");
    }

    #[test]
    fn config_needs_a_url() {
        let g = GlobalConfig::default();
        let mut c: GoogleChatConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(c.validate(Path::new("."), &g).unwrap_err().contains("url"));
        let c: GoogleChatConfig =
            serde_json::from_value(serde_json::json!({"url": "https://c.test/x"})).unwrap();
        assert!(c.send_resolved);
    }
}
