//! Microsoft Teams through a legacy Office 365 connector ("Incoming Webhook" URLs on
//! `*.webhook.office.com`): one `MessageCard` per notification — `themeColor` by status, a
//! title, a summary (what the activity feed shows) and a markdown list of the alerts.
//!
//! Microsoft is retiring these connectors (use `msteamsv2_configs`, Workflows webhooks),
//! but many configurations still carry them, so they load unchanged from an
//! alertmanager.yml. Every interpolated value is escaped for the card's markdown and its
//! limited HTML, so a label cannot format, link or inject markup; the whole request stays
//! under Teams' ~28 KB message limit ("…and N more alerts").
//!
//! The connector's quirk: it answers HTTP 200 with the body `1` on success, and reports
//! some failures (throttling above all) as HTTP 200 with an error text instead — such an
//! answer is a failure here, classified by the HTTP code named in the text.

use super::http::{post_json, DEFAULT_TIMEOUT};
use super::http_config::{HttpClient, HttpConfig};
use super::{Delivered, FailureReason, Notifier, NotifyError, RenderedRequest};
use crate::alert::{Status, WebhookAlert, WebhookMessage};
use crate::config::{GlobalConfig, RateLimit};
use crate::duration::AmDuration;
use crate::secret::{redact, Secret, REDACTED};
use crate::store::Notification;
use crate::template::{
    alert_name, alert_summary, alerts_url, firing_then_resolved, key_labels, one_line, subject,
    truncate, Templates,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default when `rate_limit` is not set. The connector's documented limits are 4 per
/// second, 60 per 30 s, 100 per hour, 150 per 2 hours and 1800 per day; 75 per hour with
/// bursts of 4 stays inside every one of them.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 75,
    per: AmDuration(Duration::from_secs(3600)),
    burst: Some(4),
};

/// Teams rejects messages over about 28 KB (request body, card JSON included); the whole
/// serialized body is kept at or under this many bytes.
pub const MAX_PAYLOAD: usize = 28_000;
/// Title budget (characters).
pub const MAX_TITLE: usize = 400;
/// Summary budget (characters): the activity feed shows only the start anyway.
pub const MAX_SUMMARY: usize = 400;
/// Budget for one alert's line (characters, before escaping).
pub(crate) const MAX_LINE: usize = 1000;

/// `msteams_configs` entry (Alertmanager's keys, plus the router's).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MsTeamsConfig {
    #[serde(default)]
    pub http_config: HttpConfig,
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
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

impl MsTeamsConfig {
    /// Read `webhook_url_file`, resolve `http_config`, check the URL, templates and rate
    /// limit.
    pub fn validate(&mut self, base: &Path, _g: &GlobalConfig) -> Result<(), String> {
        self.http_config.resolve(base)?;
        resolve_webhook_url(&mut self.webhook_url, self.webhook_url_file.take(), base)?;
        for t in [&self.title, &self.summary, &self.text]
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

/// `webhook_url` / `webhook_url_file`: exactly one, the file read (trimmed) relative to
/// `base`, the URL checked. Shared by both Teams integrations.
pub(crate) fn resolve_webhook_url(
    url: &mut Option<Secret>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<(), String> {
    match (&url, file) {
        (Some(_), Some(_)) => {
            return Err("set only one of webhook_url and webhook_url_file".into());
        }
        (None, Some(p)) => {
            *url = Some(crate::secret::read_file(base, &p, "webhook_url_file")?);
        }
        (None, None) => {
            return Err("webhook_url: one of webhook_url or webhook_url_file is required".into())
        }
        (Some(_), None) => {}
    }
    let u = url.as_ref().map(Secret::expose).unwrap_or_default();
    // The URL is a secret: the error names the problem, not the URL.
    crate::config::check_url(u).map_err(|m| format!("webhook_url: {m}"))
}

/// The legacy Office 365 connector integration.
pub struct MsTeamsNotifier {
    url: Secret,
    client: HttpClient,
    templates: Arc<Templates>,
    title: Option<String>,
    summary: Option<String>,
    text: Option<String>,
    send_resolved: bool,
}

/// A connector `MessageCard`.
#[derive(Debug, Clone, Serialize)]
pub struct MessageCard {
    #[serde(rename = "@type")]
    pub kind: &'static str,
    #[serde(rename = "@context")]
    pub context: &'static str,
    #[serde(rename = "themeColor")]
    pub theme_color: &'static str,
    pub title: String,
    pub summary: String,
    pub text: String,
    #[serde(rename = "potentialAction")]
    pub potential_action: Vec<OpenUri>,
}

/// The card's one button: open the router's view of the group's alerts.
#[derive(Debug, Clone, Serialize)]
pub struct OpenUri {
    #[serde(rename = "@type")]
    pub kind: &'static str,
    pub name: &'static str,
    pub targets: Vec<UriTarget>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UriTarget {
    pub os: &'static str,
    pub uri: String,
}

pub(crate) fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.trim().is_empty()).cloned()
}

impl MsTeamsNotifier {
    pub fn new(c: &MsTeamsConfig, t: Arc<Templates>) -> Result<Self, String> {
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
            summary: non_empty(&c.summary),
            text: non_empty(&c.text),
            send_resolved: c.send_resolved,
        })
    }

    /// The body sent for notification `n`: never over [`MAX_PAYLOAD`] bytes.
    pub fn payload(&self, n: &Notification) -> Result<MessageCard, NotifyError> {
        let msg = &n.message;
        let render = |what: &str, source: &str| super::render(&self.templates, what, source, msg);
        let subj = one_line(&subject(msg));
        let title = match &self.title {
            Some(t) => truncate(one_line(&render("title", t)?).trim(), MAX_TITLE),
            None => escape_markdown(&truncate(&subj, MAX_TITLE), true),
        };
        let summary = match &self.summary {
            Some(t) => truncate(one_line(&render("summary", t)?).trim(), MAX_SUMMARY),
            // The summary is plain text (notifications, the activity feed).
            None => truncate(&subj, MAX_SUMMARY),
        };
        let mut card = MessageCard {
            kind: "MessageCard",
            context: "https://schema.org/extensions",
            theme_color: theme_color(msg),
            title,
            summary,
            text: String::new(),
            potential_action: vec![OpenUri {
                kind: "OpenUri",
                name: "View alerts",
                targets: vec![UriTarget {
                    os: "default",
                    uri: bounded_alerts_url(msg),
                }],
            }],
        };
        match &self.text {
            Some(t) => {
                let text = render("text", t)?;
                let text = text.trim();
                card.text = fit_text(text, |s| {
                    card.text = s.to_string();
                    json_len(&card)
                });
            }
            None => {
                let lines = alert_lines(msg, true);
                let hidden = msg.truncated_alerts;
                let k = fit_lines(lines.len(), |k| {
                    card.text = join_lines(&lines, k, hidden);
                    json_len(&card)
                });
                card.text = join_lines(&lines, k, hidden);
            }
        }
        Ok(card)
    }
}

impl Notifier for MsTeamsNotifier {
    fn kind(&self) -> &'static str {
        "msteams"
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
            let reply = post_teams(&self.client, &self.url, &payload).await?;
            connector_answer(&reply.body, &self.url)?;
            Ok(Delivered::default())
        })
    }

    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        Ok(vec![RenderedRequest {
            method: "POST".into(),
            url: REDACTED.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_value(self.payload(n)?).unwrap_or_default(),
        }])
    }
}

/// POST to a Teams webhook: [`post_json`], plus Microsoft's advice to retry 412 (the
/// other codes it names, 429, 502 and 504, are retried anyway).
pub(crate) async fn post_teams<T: Serialize + ?Sized>(
    client: &HttpClient,
    url: &Secret,
    body: &T,
) -> Result<super::http::HttpReply, NotifyError> {
    post_json(client, url, body).await.map_err(|e| match e {
        NotifyError::Permanent { message, reason }
            if message.starts_with("unexpected status code 412") =>
        {
            NotifyError::Retryable {
                message,
                reason,
                retry_after: None,
            }
        }
        e => e,
    })
}

/// A 2xx answer of the connector: `1` is success; anything else is an error text sent with
/// HTTP 200 (e.g. "Webhook message delivery failed with error: Microsoft Teams endpoint
/// returned HTTP error 429 with ContextId …"), classified by the code it names.
pub(crate) fn connector_answer(body: &str, url: &Secret) -> Result<(), NotifyError> {
    let body = body.trim();
    if body == "1" {
        return Ok(());
    }
    let snippet = truncate(&one_line(&redact(body, &[url])), 200);
    let message = if snippet.is_empty() {
        "the connector answered 200 without its success marker \"1\"".to_string()
    } else {
        format!("the connector answered 200 with an error: {snippet}")
    };
    // "HTTP error 429", "HTTP error 502", …
    let code = body.find("HTTP error ").and_then(|i| {
        let digits: String = body[i + 11..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u16>().ok()
    });
    match code {
        Some(c @ (429 | 412 | 500..=599)) => Err(NotifyError::Retryable {
            message,
            reason: FailureReason::from_status(c),
            retry_after: None,
        }),
        Some(c) => Err(NotifyError::permanent(
            FailureReason::from_status(c),
            message,
        )),
        None => Err(NotifyError::permanent(FailureReason::Other, message)),
    }
}

/// [`alerts_url`], without its label filter when the group's labels make it longer than
/// 2000 bytes (a huge label value must not push the message over its size limit).
pub(crate) fn bounded_alerts_url(msg: &WebhookMessage) -> String {
    let url = alerts_url(msg);
    if url.len() <= 2000 {
        return url;
    }
    url.split("&filter=").next().unwrap_or_default().to_string()
}

/// `8C1A1A` (dark red) while firing, `FFA500` when every firing alert is a warning,
/// `2DC72D` (green) once resolved.
fn theme_color(msg: &WebhookMessage) -> &'static str {
    match status_level(msg) {
        Level::Resolved => "2DC72D",
        Level::Warning => "FFA500",
        Level::Firing => "8C1A1A",
    }
}

/// What colour a notification shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Firing,
    Warning,
    Resolved,
}

pub(crate) fn status_level(msg: &WebhookMessage) -> Level {
    if msg.status == Status::Resolved {
        return Level::Resolved;
    }
    let all_warnings = msg.firing().all(|a| {
        a.labels
            .get("severity")
            .is_some_and(|s| s.eq_ignore_ascii_case("warning"))
    });
    if all_warnings {
        Level::Warning
    } else {
        Level::Firing
    }
}

/// Escape untrusted text for Teams markdown: `\`, `*`, `_`, `` ` ``, `~`, `[`, `]` are
/// backslash-escaped everywhere (no emphasis, code or `[label](url)` link), and a leading
/// `-`, `+`, `#`, `>` or `1.` cannot start a list, heading or quote. With `html` (connector
/// cards render limited HTML) `&`, `<`, `>` become entities, so `<b>` or `<at>` are text;
/// Adaptive Cards render no HTML, so they stay as they are there.
pub(crate) fn escape_markdown(s: &str, html: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let trimmed = s.trim_start();
    let lead = s.len() - trimmed.len();
    out.push_str(&s[..lead]);
    // A leading ordered-list marker `12.` or `12)`.
    let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
    let ordered = digits > 0 && matches!(trimmed[digits..].chars().next(), Some('.' | ')'));
    for (i, c) in trimmed.char_indices() {
        let at_start = i == 0;
        match c {
            '&' if html => out.push_str("&amp;"),
            '<' if html => out.push_str("&lt;"),
            '>' if html => out.push_str("&gt;"),
            '\\' | '*' | '_' | '`' | '~' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '-' | '+' | '#' | '>' if at_start => {
                out.push('\\');
                out.push(c);
            }
            '.' | ')' if ordered && i == digits => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A markdown link `[label](url)` to an alert's source, or "" when the URL is not a plain
/// http(s) URL. Characters that would end the link early are percent-encoded.
pub(crate) fn markdown_link(url: &str, label: &str) -> String {
    let url = url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 1000 {
        return String::new();
    }
    let mut enc = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '(' => enc.push_str("%28"),
            ')' => enc.push_str("%29"),
            ' ' => enc.push_str("%20"),
            '<' => enc.push_str("%3C"),
            '>' => enc.push_str("%3E"),
            '[' => enc.push_str("%5B"),
            ']' => enc.push_str("%5D"),
            '"' => enc.push_str("%22"),
            c if c.is_control() => {}
            c => enc.push(c),
        }
    }
    format!("[{label}]({enc})")
}

/// One markdown list item per alert, firing first: `- 🔥 **Name** · instance=…, job=… —
/// summary [source](…)`, every value escaped (`html` as in [`escape_markdown`]).
pub(crate) fn alert_lines(msg: &WebhookMessage, html: bool) -> Vec<String> {
    let alerts: Vec<&WebhookAlert> = firing_then_resolved(msg).collect();
    let skip_common = alerts.len() > 1;
    alerts
        .iter()
        .map(|a| alert_line(a, msg, skip_common, html))
        .collect()
}

fn alert_line(a: &WebhookAlert, msg: &WebhookMessage, skip_common: bool, html: bool) -> String {
    let esc = |s: &str, max: usize| escape_markdown(&truncate(one_line(s).trim(), max), html);
    let emoji = match a.status {
        Status::Firing => "🔥",
        Status::Resolved => "✅",
    };
    let mut line = format!("- {emoji} **{}**", esc(alert_name(a), 100));
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
    let link = markdown_link(&a.generator_url, "source");
    if !link.is_empty() {
        line.push(' ');
        line.push_str(&link);
    }
    truncate_line(line)
}

/// Lines are built from bounded parts; this only guards the bound.
fn truncate_line(line: String) -> String {
    if line.chars().count() <= MAX_LINE * 6 {
        line
    } else {
        line.chars().take(MAX_LINE * 6).collect()
    }
}

/// The first `k` lines, then "…and N more alerts" for the rest (and `hidden` alerts the
/// message had already dropped).
pub(crate) fn join_lines(lines: &[String], k: usize, hidden: u64) -> String {
    let mut out = lines[..k].join("\n");
    let more = (lines.len() - k) as u64 + hidden;
    if more > 0 {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        let noun = if more == 1 { "alert" } else { "alerts" };
        out.push_str(&format!("…and {more} more {noun}"));
    }
    out
}

/// Size of `v` as sent (compact JSON).
pub(crate) fn json_len<T: Serialize>(v: &T) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// The largest `k` in `0..=total` for which `size(k)` (the serialized payload with `k`
/// alert lines) is at most [`MAX_PAYLOAD`]; 0 when none fits. Sizes grow with `k`.
pub(crate) fn fit_lines(total: usize, mut size: impl FnMut(usize) -> usize) -> usize {
    if size(total) <= MAX_PAYLOAD {
        return total;
    }
    let (mut lo, mut hi) = (0, total); // size(lo) fits (or lo = 0), size(hi) does not
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if size(mid) <= MAX_PAYLOAD {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// `text` cut (on a character boundary, ending with "…") so that `size(text)` is at most
/// [`MAX_PAYLOAD`]: the text of a user template, trusted as markdown.
pub(crate) fn fit_text(text: &str, mut size: impl FnMut(&str) -> usize) -> String {
    if size(text) <= MAX_PAYLOAD {
        return text.to_string();
    }
    // Characters kept: the largest count that fits.
    let total = text.chars().count();
    let cut = |k: usize| -> String {
        let mut s: String = text.chars().take(k).collect();
        s.truncate(s.trim_end().len());
        s.push('…');
        s
    };
    let k = fit_lines(total, |k| size(&cut(k)));
    let s = cut(k);
    if size(&s) <= MAX_PAYLOAD {
        s
    } else {
        String::new()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::alert::{Fingerprint, LabelSet, ZERO_TIME};
    use crate::store::DeliveryState;

    pub fn alert(labels: &[(&str, &str)], status: Status) -> WebhookAlert {
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
            generator_url: "http://prom.test/graph?g0.expr=up(x)&g0.tab=1".into(),
        }
    }

    pub fn notification(alerts: Vec<WebhookAlert>) -> Notification {
        let t = crate::alert::now();
        Notification {
            id: 1,
            receiver: "ops".into(),
            integration: "msteams".into(),
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
            )
            .into(),
        }
    }

    /// Alerts whose every label is hostile and huge.
    pub fn hostile(count: usize) -> Vec<WebhookAlert> {
        let long = "@everyone <b>*bold*</b> [x](http://evil) <!channel> \"q\" ".repeat(200);
        (0..count)
            .map(|i| {
                let mut a = alert(
                    &[
                        ("alertname", &format!("**Boom** [x](http://evil) {i}")),
                        ("instance", &long),
                        ("job", "<at>Everyone</at>"),
                        ("severity", "*critical*"),
                    ],
                    Status::Firing,
                );
                a.annotations.insert("summary".into(), long.clone());
                a
            })
            .collect()
    }

    fn notifier(extra: &[(&str, &str)]) -> MsTeamsNotifier {
        let mut c = serde_json::json!({"webhook_url": "https://example.webhook.office.com/webhookb2/SECRET"});
        for (k, v) in extra {
            c[*k] = serde_json::Value::String(v.to_string());
        }
        let c: MsTeamsConfig = serde_json::from_value(c).unwrap();
        MsTeamsNotifier::new(&c, Arc::new(Templates::new())).unwrap()
    }

    #[test]
    fn message_card_shape_and_colours() {
        let n = notification(vec![
            alert(
                &[("alertname", "Gone"), ("instance", "b")],
                Status::Resolved,
            ),
            alert(
                &[
                    ("alertname", "Disk"),
                    ("instance", "a"),
                    ("severity", "warning"),
                ],
                Status::Firing,
            ),
        ]);
        let v = serde_json::to_value(notifier(&[]).payload(&n).unwrap()).unwrap();
        assert_eq!(v["@type"], "MessageCard");
        assert_eq!(v["@context"], "https://schema.org/extensions");
        assert_eq!(v["themeColor"], "FFA500");
        assert!(
            v["title"].as_str().unwrap().starts_with("\\[FIRING:1\\]"),
            "{v}"
        );
        assert!(
            v["summary"].as_str().unwrap().starts_with("[FIRING:1]"),
            "{v}"
        );
        let text = v["text"].as_str().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("- 🔥 **Disk**"), "{text}");
        assert!(
            lines[0].ends_with("[source](http://prom.test/graph?g0.expr=up%28x%29&g0.tab=1)"),
            "{text}"
        );
        assert!(lines[1].starts_with("- ✅ **Gone**"), "{text}");
        assert_eq!(
            v["potentialAction"][0]["targets"][0]["uri"],
            "http://router.test/admin/v1/alerts?receiver=ops"
        );
        let resolved = notification(vec![alert(&[("alertname", "X")], Status::Resolved)]);
        let v = serde_json::to_value(notifier(&[]).payload(&resolved).unwrap()).unwrap();
        assert_eq!(v["themeColor"], "2DC72D");
        let firing = notification(vec![alert(&[("alertname", "X")], Status::Firing)]);
        let v = serde_json::to_value(notifier(&[]).payload(&firing).unwrap()).unwrap();
        assert_eq!(v["themeColor"], "8C1A1A");
    }

    #[test]
    fn escaping_neutralises_markup() {
        assert_eq!(
            escape_markdown("*bold* _i_ `c` ~s~", true),
            "\\*bold\\* \\_i\\_ \\`c\\` \\~s\\~"
        );
        assert_eq!(
            escape_markdown("[x](http://evil)", false),
            "\\[x\\](http://evil)"
        );
        assert_eq!(
            escape_markdown("<b>a&b</b>", true),
            "&lt;b&gt;a&amp;b&lt;/b&gt;"
        );
        assert_eq!(escape_markdown("<b>", false), "<b>");
        assert_eq!(escape_markdown("- item", false), "\\- item");
        assert_eq!(escape_markdown("# head", false), "\\# head");
        assert_eq!(escape_markdown("12. x", false), "12\\. x");
        assert_eq!(escape_markdown("host-1.example", false), "host-1.example");
        assert_eq!(escape_markdown("a\\b", false), "a\\\\b");
    }

    #[test]
    fn hostile_labels_are_escaped_and_payload_fits() {
        let mut n = notification(hostile(500));
        n.message
            .group_labels
            .insert("instance".into(), "x".repeat(10_000));
        let card = notifier(&[]).payload(&n).unwrap();
        let body = serde_json::to_vec(&card).unwrap();
        assert!(body.len() <= MAX_PAYLOAD, "{}", body.len());
        assert!(
            body.len() > MAX_PAYLOAD - 3000,
            "the budget is used: {}",
            body.len()
        );
        let text = &card.text;
        assert!(!text.contains("<b>") && !text.contains("<at>"), "{text}");
        assert!(!text.contains("[x]"), "{text}");
        assert!(!text.contains(" *bold*"), "{text}");
        let shown = text.lines().filter(|l| l.starts_with("- 🔥")).count();
        assert!(shown >= 1, "{text}");
        assert!(
            text.ends_with(&format!("…and {} more alerts", 500 - shown)),
            "{text}"
        );
        assert!(card.title.chars().count() <= MAX_TITLE * 2);
    }

    #[test]
    fn templates_are_used_and_cut_to_fit() {
        let n = notification(vec![alert(&[("alertname", "X")], Status::Firing)]);
        let card = notifier(&[
            ("title", "{{ .Status | toUpper }}"),
            ("summary", "sum {{ len .Alerts }}"),
            ("text", "{{ range 40000 }}é{{ end }}"),
        ])
        .payload(&n)
        .unwrap();
        assert_eq!(card.title, "FIRING");
        assert_eq!(card.summary, "sum 1");
        assert!(card.text.ends_with('…'));
        assert!(json_len(&card) <= MAX_PAYLOAD);
        assert!(json_len(&card) > MAX_PAYLOAD - 10);
        let bad = notifier(&[("text", "{{ nope(")]);
        assert!(matches!(
            bad.payload(&n),
            Err(NotifyError::Permanent { .. })
        ));
    }

    #[test]
    fn connector_answers_are_classified() {
        let url = Secret::new("https://example.webhook.office.com/webhookb2/SECRETTOKEN");
        assert!(connector_answer("1", &url).is_ok());
        assert!(connector_answer(" 1\n", &url).is_ok());
        let e = connector_answer(
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0",
            &url,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                NotifyError::Retryable {
                    reason: FailureReason::RateLimited,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(matches!(
            connector_answer("Microsoft Teams endpoint returned HTTP error 502", &url),
            Err(NotifyError::Retryable { .. })
        ));
        let e = connector_answer(
            "Summary or Text is required. https://example.webhook.office.com/webhookb2/SECRETTOKEN",
            &url,
        )
        .unwrap_err();
        assert!(matches!(e, NotifyError::Permanent { .. }));
        assert!(!e.to_string().contains("SECRETTOKEN"), "{e}");
        assert!(matches!(
            connector_answer("", &url),
            Err(NotifyError::Permanent { .. })
        ));
        assert!(matches!(
            connector_answer("... HTTP error 400 ...", &url),
            Err(NotifyError::Permanent {
                reason: FailureReason::ClientError,
                ..
            })
        ));
    }

    #[test]
    fn config_keys_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("url"),
            "https://example.webhook.office.com/x\n",
        )
        .unwrap();
        let g = GlobalConfig::default();
        let mut c: MsTeamsConfig = serde_json::from_value(serde_json::json!({
            "webhook_url_file": "url", "title": "t", "summary": "s", "text": "x", "send_resolved": false
        }))
        .unwrap();
        c.validate(dir.path(), &g).unwrap();
        assert_eq!(
            c.webhook_url.as_ref().unwrap().expose(),
            "https://example.webhook.office.com/x"
        );
        assert!(!c.send_resolved);
        let mut both: MsTeamsConfig = serde_json::from_value(serde_json::json!({
            "webhook_url": "https://h/x", "webhook_url_file": "url"
        }))
        .unwrap();
        assert!(both
            .validate(dir.path(), &g)
            .unwrap_err()
            .contains("only one"));
        let mut none: MsTeamsConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(none
            .validate(dir.path(), &g)
            .unwrap_err()
            .contains("webhook_url"));
        let mut bad: MsTeamsConfig =
            serde_json::from_value(serde_json::json!({"webhook_url": "ftp://SECRET/x"})).unwrap();
        let e = bad.validate(dir.path(), &g).unwrap_err();
        assert!(
            e.starts_with("webhook_url:") && !e.contains("SECRET"),
            "{e}"
        );
        assert!(serde_json::from_value::<MsTeamsConfig>(serde_json::json!({"nope": 1})).is_err());
        let d: MsTeamsConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(d.send_resolved, "Alertmanager's default");
    }
}
