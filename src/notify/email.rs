//! Email integration: one pooled SMTP transport (lettre) per `email_configs` entry, and the
//! alert mail itself — threading headers so a resolved mail lands under its firing mail,
//! headers that keep auto-responders quiet, and a `multipart/alternative` body (plain text
//! first, HTML last) that needs no template to be useful to whoever is on call.
//!
//! SMTP replies are classified as Alertmanager does: 5xx is permanent (dead letter), 4xx,
//! timeouts and connection or TLS failures are retried. The password never appears in an
//! error message.

use super::{Delivered, FailureReason, Notifier, NotifyError, RenderedRequest};
use crate::alert::{Status, WebhookAlert, WebhookMessage};
use crate::config::{split_host_port, Config, EmailConfig, RateLimit};
use crate::duration::AmDuration;
use crate::secret::{redact, Secret};
use crate::store::Notification;
use crate::template::{self, Templates};
use futures::future::BoxFuture;
use lettre::message::header::{ContentType, HeaderName, HeaderValue, To};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Default when `rate_limit` is not set (see the README for the platform limits behind it).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    messages: 10,
    per: AmDuration(Duration::from_secs(10)),
    burst: None,
};

/// SMTP timeout when the config sets none (see [`EmailNotifier::send`] for what it bounds).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The default bodies list at most this many alerts; the rest are counted.
const MAX_ALERTS: usize = 50;

/// Headers the router owns: overriding them would break addressing, threading or MIME.
const RESERVED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Date",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub struct EmailNotifier {
    send_resolved: bool,
    templates: Arc<Templates>,
    /// `host:port`, for error messages.
    smarthost: String,
    from: Mailbox,
    to: Mailboxes,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    /// Extra headers: validated name, value template.
    headers: Vec<(HeaderName, String)>,
    password: Option<Secret>,
    /// Bound on one delivery attempt (and on the TCP connect).
    timeout: Duration,
    /// Everything needed to (re)build the transport: a notifier created outside a tokio
    /// runtime (`check-config`) builds its pool on first use, and a pool whose connection
    /// stalled is replaced.
    builder: lettre::transport::smtp::AsyncSmtpTransportBuilder,
    /// The pooled transport, built once and shared by all attempts.
    transport: Mutex<Option<Arc<Transport>>>,
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    /// TLS from the first byte (port 465, "submissions").
    Implicit,
    /// STARTTLS, and fail if the server does not offer it.
    Required,
    /// STARTTLS when offered.
    Opportunistic,
}

fn tls_mode(force_implicit_tls: Option<bool>, require_tls: Option<bool>, port: u16) -> TlsMode {
    match force_implicit_tls {
        Some(true) => TlsMode::Implicit,
        None if port == 465 => TlsMode::Implicit,
        _ if require_tls.unwrap_or(true) => TlsMode::Required,
        _ => TlsMode::Opportunistic,
    }
}

impl EmailNotifier {
    pub fn new(c: &EmailConfig, _cfg: &Config, templates: Arc<Templates>) -> Result<Self, String> {
        let smarthost = c
            .smarthost
            .clone()
            .ok_or_else(|| "smarthost: required as host:port".to_string())?;
        let (host, port) = split_host_port(&smarthost)
            .ok_or_else(|| format!("smarthost: {smarthost:?} is not host:port"))?;
        let from_s = c
            .from
            .as_deref()
            .ok_or_else(|| "from: required".to_string())?;
        let from = parse_mailbox(from_s).map_err(|e| format!("from: {e}"))?;
        let to = parse_mailbox_list(&c.to).map_err(|e| format!("to: {e}"))?;

        let mut subject = c.subject.clone();
        let mut headers = Vec::new();
        for (name, value) in &c.headers {
            if let Some(r) = RESERVED_HEADERS
                .iter()
                .find(|r| r.eq_ignore_ascii_case(name))
            {
                return Err(format!(
                    "headers.{name}: the router sets {r} itself and it cannot be overridden{}",
                    match *r {
                        "From" => " (use `from`)",
                        "To" => " (use `to`)",
                        _ => "",
                    }
                ));
            }
            template::check(value).map_err(|e| format!("headers.{name}: template error: {e}"))?;
            if name.eq_ignore_ascii_case("Subject") {
                // Alertmanager configs set the subject through `headers`.
                if subject.is_some() {
                    return Err(
                        "headers.Subject: set the subject either in `subject` or in `headers`, not both"
                            .into(),
                    );
                }
                subject = Some(value.clone());
                continue;
            }
            if !valid_header_name(name) {
                return Err(format!(
                    "headers: {name:?} is not a valid header name (printable ASCII, no ':' or spaces)"
                ));
            }
            let hn = HeaderName::new_from_ascii(name.clone())
                .map_err(|_| format!("headers: {name:?} is not a valid header name"))?;
            headers.push((hn, value.clone()));
        }

        let mode = tls_mode(c.force_implicit_tls, c.require_tls, port);
        let tls_params = tls_parameters(c, &host)?;
        let tls = match mode {
            TlsMode::Implicit => Tls::Wrapper(tls_params),
            TlsMode::Required => Tls::Required(tls_params),
            TlsMode::Opportunistic => Tls::Opportunistic(tls_params),
        };
        let timeout = c.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
        let mut builder = Transport::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(timeout))
            .pool_config(
                PoolConfig::new()
                    .min_idle(0)
                    .max_size(4)
                    .idle_timeout(Duration::from_secs(60)),
            );
        if let Some(h) = c.hello.as_deref().filter(|h| !h.is_empty()) {
            builder = builder.hello_name(ClientId::Domain(h.to_string()));
        }
        let password = c.auth_password.clone();
        if let Some(user) = c.auth_username.as_deref().filter(|u| !u.is_empty()) {
            if mode == TlsMode::Opportunistic {
                tracing::warn!(
                    smarthost = %smarthost,
                    "email: require_tls is false; credentials may be sent unencrypted if the server does not offer STARTTLS"
                );
            }
            let pass = password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            builder = builder
                .credentials(Credentials::new(user.to_string(), pass))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }

        // The pool spawns its reaper on the current runtime; without one (check-config)
        // the transport is built on first send instead.
        let transport = tokio::runtime::Handle::try_current()
            .ok()
            .map(|_| Arc::new(builder.clone().build()));
        Ok(Self {
            send_resolved: c.send_resolved,
            templates,
            smarthost,
            from,
            to,
            subject,
            text: c.text.clone(),
            html: c.html.clone(),
            headers,
            password,
            timeout,
            builder,
            transport: Mutex::new(transport),
        })
    }

    fn transport(&self) -> Arc<Transport> {
        let mut t = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        t.get_or_insert_with(|| Arc::new(self.builder.clone().build()))
            .clone()
    }

    /// Drop a pool after an attempt timed out: the abandoned connection may sit in the
    /// middle of a command and must not be handed to the next attempt.
    fn discard_transport(&self, stale: &Arc<Transport>) {
        let mut t = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        if t.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, stale)) {
            *t = None;
        }
    }

    fn render(
        &self,
        what: &str,
        source: &str,
        msg: &WebhookMessage,
    ) -> Result<String, NotifyError> {
        super::render(&self.templates, &format!("email {what}"), source, msg)
    }

    /// The complete message for one notification.
    fn build_message(&self, n: &Notification) -> Result<Message, NotifyError> {
        let msg = &n.message;
        let subject = match &self.subject {
            Some(t) => self.render("subject", t, msg)?,
            None => template::subject(msg),
        };
        let mut b = Message::builder()
            .from(self.from.clone())
            .mailbox(To::from(self.to.clone()))
            .subject(one_line(&subject))
            .message_id(Some(n.message_id.clone()))
            .date_now()
            .user_agent(concat!("alert-router/", env!("CARGO_PKG_VERSION")).to_string());
        if let Some(parent) = &n.in_reply_to {
            b = b.in_reply_to(parent.clone());
            let refs = if n.references.is_empty() {
                parent.clone()
            } else {
                n.references.join(" ")
            };
            b = b.references(refs);
        }
        for (name, value) in [
            ("Auto-Submitted", "auto-generated"),
            ("X-Auto-Response-Suppress", "All"),
            ("X-Alert-Status", msg.status.as_str()),
        ] {
            b = b.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(name),
                value.to_string(),
            ));
        }
        b = b.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Alert-Group-Key"),
            one_line(&msg.group_key),
        ));
        for (name, source) in &self.headers {
            let value = self.render(&format!("header {name}"), source, msg)?;
            b = b.raw_header(HeaderValue::new(name.clone(), one_line(&value)));
        }

        let text = match &self.text {
            Some(t) => self.render("text", t, msg)?,
            None => default_text(msg),
        };
        let html = match &self.html {
            Some(t) => super::render_html(&self.templates, "email html", t, msg)?,
            None => default_html(msg),
        };
        let plain = || {
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text.clone())
        };
        let rich = || {
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html.clone())
        };
        // A template that renders to nothing drops its part (as `html: ''` does in
        // Alertmanager); plain text first, HTML last, so clients prefer the HTML.
        let built = match (text.trim().is_empty(), html.trim().is_empty()) {
            (false, false) => b.multipart(
                MultiPart::alternative()
                    .singlepart(plain())
                    .singlepart(rich()),
            ),
            (false, true) => b.singlepart(plain()),
            (true, false) => b.singlepart(rich()),
            (true, true) => {
                return Err(NotifyError::permanent(
                    FailureReason::Other,
                    "email: both the text and the html body rendered empty",
                ))
            }
        };
        built.map_err(|e| {
            NotifyError::permanent(
                FailureReason::Other,
                format!("email: cannot build message: {e}"),
            )
        })
    }

    /// Map an SMTP failure to retry or dead letter, without the password.
    fn classify(&self, e: &lettre::transport::smtp::Error) -> NotifyError {
        let mut text = e.to_string();
        // lettre's Display shows one level of cause; the TLS or io reason is often deeper.
        let mut source = std::error::Error::source(e).and_then(std::error::Error::source);
        while let Some(s) = source {
            let s_text = s.to_string();
            if !text.contains(&s_text) {
                let _ = write!(text, ": {s_text}");
            }
            source = s.source();
        }
        let secrets: Vec<&Secret> = self.password.iter().collect();
        let message = redact(&format!("smtp {}: {text}", self.smarthost), &secrets);
        if e.is_permanent() {
            NotifyError::permanent(FailureReason::ClientError, message)
        } else if e.is_transient() {
            NotifyError::retryable(FailureReason::ServerError, message)
        } else if e.is_timeout() {
            NotifyError::retryable(FailureReason::Timeout, message)
        } else if e.is_client() {
            // e.g. STARTTLS required but not offered, no common AUTH mechanism: a
            // configuration mismatch that an operator can fix while we retry.
            NotifyError::retryable(FailureReason::Other, message)
        } else {
            // Connection refused, reset, TLS handshake or certificate failures.
            NotifyError::retryable(FailureReason::Network, message)
        }
    }
}

impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    /// One attempt. lettre's async transport applies its timeout only to the TCP connect,
    /// not to each command, so the whole exchange (greeting, STARTTLS, AUTH, envelope,
    /// DATA) is bounded by the same `timeout` here: a server that accepts and then stalls
    /// must not hold the delivery worker forever.
    /// The message as it would go out (MIME, headers included); the SMTP password is not
    /// part of it.
    fn render(&self, n: &Notification) -> Result<Vec<RenderedRequest>, NotifyError> {
        let email = self.build_message(n)?;
        Ok(vec![RenderedRequest {
            method: "SMTP".into(),
            url: format!("smtp://{}", self.smarthost),
            headers: vec![],
            body: serde_json::Value::String(
                String::from_utf8_lossy(&email.formatted()).into_owned(),
            ),
        }])
    }

    fn send<'a>(
        &'a self,
        n: &'a Notification,
        _edit: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Delivered, NotifyError>> {
        Box::pin(async move {
            let email = self.build_message(n)?;
            let transport = self.transport();
            match tokio::time::timeout(self.timeout, transport.send(email)).await {
                Ok(Ok(_)) => Ok(Delivered::default()),
                Ok(Err(e)) => Err(self.classify(&e)),
                Err(_) => {
                    self.discard_transport(&transport);
                    Err(NotifyError::retryable(
                        FailureReason::Timeout,
                        format!(
                            "smtp {}: no complete answer within {} (timeout)",
                            self.smarthost,
                            AmDuration(self.timeout)
                        ),
                    ))
                }
            }
        })
    }
}

/// TLS parameters from `tls_config`: extra CA, server name override, skip verification.
fn tls_parameters(c: &EmailConfig, host: &str) -> Result<TlsParameters, String> {
    let t = &c.tls_config;
    let domain = t
        .server_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| host.to_string());
    let mut b = TlsParameters::builder(domain);
    if let Some(path) = &t.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("tls_config.ca_file: cannot read {}: {e}", path.display()))?;
        let cert = Certificate::from_pem(&pem).map_err(|e| {
            format!(
                "tls_config.ca_file: {} holds no valid PEM certificate ({e})",
                path.display()
            )
        })?;
        b = b.add_root_certificate(cert);
    }
    if t.insecure_skip_verify {
        b = b
            .dangerous_accept_invalid_certs(true)
            .dangerous_accept_invalid_hostnames(true);
    }
    b.build_rustls()
        .map_err(|e| format!("tls_config: cannot set up TLS: {e}"))
}

/// RFC 5322 field name: printable ASCII without ':' (and no space).
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// Header values are single lines: a template that emits newlines must not be able to
/// inject headers.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for part in s
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

/// One address: `user@example.com` or `Name <user@example.com>`. lettre's parser ignores
/// trailing input, so the entry must end with the address it found.
fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    let s = s.trim();
    let m: Mailbox = s
        .parse()
        .map_err(|_| format!("{s:?} is not a valid email address"))?;
    let addr = m.email.to_string();
    let ok = s.eq_ignore_ascii_case(&addr)
        || s.to_ascii_lowercase()
            .ends_with(&format!("<{}>", addr.to_ascii_lowercase()));
    if !ok {
        return Err(format!(
            "{s:?} is not a valid email address (expected user@example.com or Name <user@example.com>)"
        ));
    }
    Ok(m)
}

/// A comma-separated list of addresses (commas inside quotes or `<>` do not split).
fn parse_mailbox_list(s: &str) -> Result<Mailboxes, String> {
    let mut out = Mailboxes::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    let mut entries = Vec::new();
    for (i, ch) in s.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                entries.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&s[start..]);
    for e in entries {
        if e.trim().is_empty() {
            continue;
        }
        out.push(parse_mailbox(e)?);
    }
    if out.iter().next().is_none() {
        return Err("at least one address is required".into());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Default bodies.

/// What the default bodies show: the alerts listed (firing first, capped) and how many are
/// left out (including those the dispatcher already truncated).
struct Digest<'a> {
    firing: Vec<&'a WebhookAlert>,
    resolved: Vec<&'a WebhookAlert>,
    firing_total: usize,
    resolved_total: usize,
    hidden: u64,
    /// Labels every alert shares, shown once instead of per alert.
    common: BTreeMap<&'a str, &'a str>,
}

impl<'a> Digest<'a> {
    fn new(msg: &'a WebhookMessage) -> Self {
        let firing_all: Vec<&WebhookAlert> = msg.firing().collect();
        let resolved_all: Vec<&WebhookAlert> = msg.resolved().collect();
        let firing: Vec<&WebhookAlert> = firing_all.iter().copied().take(MAX_ALERTS).collect();
        let room = MAX_ALERTS - firing.len();
        let resolved: Vec<&WebhookAlert> = resolved_all.iter().copied().take(room).collect();
        let shown = firing.len() + resolved.len();
        let hidden = (msg.alerts.len() - shown) as u64 + msg.truncated_alerts;
        let common = msg
            .common_labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Digest {
            firing,
            resolved,
            firing_total: firing_all.len(),
            resolved_total: resolved_all.len(),
            hidden,
            common,
        }
    }

    /// The labels that tell this alert apart from the others in the group.
    fn own_labels(&self, a: &'a WebhookAlert) -> Vec<(&'a str, &'a str)> {
        a.labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname" && !self.common.contains_key(k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn counts(&self) -> String {
        let mut s = format!(
            "{} firing, {} resolved",
            self.firing_total, self.resolved_total
        );
        if self.hidden > 0 {
            let _ = write!(s, " ({} not listed)", self.hidden);
        }
        s
    }
}

fn alertname(a: &WebhookAlert) -> &str {
    a.labels
        .get("alertname")
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("(no alertname)")
}

/// `2026-11-25 15:48:15 UTC` from an RFC 3339 timestamp (left as is if unparsable).
fn human_time(s: &str) -> String {
    match OffsetDateTime::parse(s, &Rfc3339) {
        Ok(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        }
        Err(_) => s.to_string(),
    }
}

fn pairs(labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plain-text body: the same facts as the HTML, one URL per line.
pub fn default_text(msg: &WebhookMessage) -> String {
    let d = Digest::new(msg);
    let mut s = String::new();
    let _ = writeln!(s, "{}", template::subject(msg));
    let _ = writeln!(s, "{}", d.counts());
    if !d.common.is_empty() {
        let common: Vec<(&str, &str)> = d.common.iter().map(|(k, v)| (*k, *v)).collect();
        let _ = writeln!(s, "Labels: {}", pairs(&common));
    }
    for (title, alerts) in [("FIRING", &d.firing), ("RESOLVED", &d.resolved)] {
        if alerts.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{title}\n{}", "=".repeat(title.len()));
        for a in alerts.iter() {
            let own = d.own_labels(a);
            if own.is_empty() {
                let _ = writeln!(s, "\n* {}", alertname(a));
            } else {
                let _ = writeln!(s, "\n* {} ({})", alertname(a), pairs(&own));
            }
            for (key, label) in [
                ("summary", "Summary"),
                ("description", "Description"),
                ("runbook_url", "Runbook"),
            ] {
                if let Some(v) = a.annotations.get(key).filter(|v| !v.is_empty()) {
                    let _ = writeln!(s, "  {label}: {}", v.trim());
                }
            }
            let _ = writeln!(s, "  Started: {}", human_time(&a.starts_at));
            if a.status == Status::Resolved {
                let _ = writeln!(s, "  Ended: {}", human_time(&a.ends_at));
            }
            if !a.generator_url.is_empty() {
                let _ = writeln!(s, "  Source: {}", a.generator_url);
            }
        }
    }
    if d.hidden > 0 {
        let _ = writeln!(s, "\n…and {} more", d.hidden);
    }
    let _ = writeln!(s, "\nAll alerts: {}", template::alerts_url(msg));
    let _ = writeln!(s, "Sent by alert-router: {}", msg.external_url);
    s
}

/// Escape text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A link for http(s) URLs; anything else (`javascript:` …) is shown as text only.
fn link(url: &str, label: &str) -> String {
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        format!(
            "<a href=\"{}\" style=\"color:#0969da;text-decoration:none;\">{}</a>",
            escape_html(url.trim()),
            escape_html(label)
        )
    } else {
        escape_html(url)
    }
}

/// HTML body: inline CSS only, every interpolated value escaped.
pub fn default_html(msg: &WebhookMessage) -> String {
    let d = Digest::new(msg);
    let (color, status) = match msg.status {
        Status::Firing => ("#cf222e", "Firing"),
        Status::Resolved => ("#1a7f37", "Resolved"),
    };
    let subject = escape_html(&template::subject(msg));
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{subject}</title></head>\n\
<body style=\"margin:0;padding:0;background:#f6f8fa;\">\n\
<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"background:#f6f8fa;\"><tr><td align=\"center\" style=\"padding:16px;\">\n\
<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"max-width:680px;background:#ffffff;border:1px solid #d0d7de;border-radius:6px;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:14px;line-height:1.45;color:#1f2328;\">\n\
<tr><td style=\"background:{color};color:#ffffff;padding:12px 16px;font-size:18px;font-weight:bold;border-radius:6px 6px 0 0;\">{subject}</td></tr>\n\
<tr><td style=\"padding:12px 16px;\"><strong>{status}</strong> &middot; {counts}",
        counts = escape_html(&d.counts()),
    );
    if !d.common.is_empty() {
        let _ = write!(h, "<br><span style=\"color:#57606a;\">Labels:</span> ");
        for (k, v) in &d.common {
            let _ = write!(h, "{}", label_chip(k, v));
        }
    }
    h.push_str("</td></tr>\n");
    for (title, col, alerts) in [
        ("Firing", "#cf222e", &d.firing),
        ("Resolved", "#1a7f37", &d.resolved),
    ] {
        if alerts.is_empty() {
            continue;
        }
        let _ = writeln!(
            h,
            "<tr><td style=\"padding:8px 16px;background:#f6f8fa;border-top:1px solid #d0d7de;color:{col};font-weight:bold;text-transform:uppercase;font-size:12px;letter-spacing:0.05em;\">{title} ({})</td></tr>",
            alerts.len()
        );
        for a in alerts.iter() {
            h.push_str(&alert_html(&d, a, col));
        }
    }
    if d.hidden > 0 {
        let _ = writeln!(
            h,
            "<tr><td style=\"padding:8px 16px;border-top:1px solid #d0d7de;color:#57606a;\">…and {} more</td></tr>",
            d.hidden
        );
    }
    let _ = write!(
        h,
        "<tr><td style=\"padding:12px 16px;border-top:1px solid #d0d7de;font-size:12px;color:#57606a;\">{} &middot; sent by alert-router at {}</td></tr>\n\
</table>\n</td></tr></table>\n</body></html>\n",
        link(&template::alerts_url(msg), "View all alerts"),
        link(&msg.external_url, &msg.external_url),
    );
    h
}

fn label_chip(k: &str, v: &str) -> String {
    format!(
        "<span style=\"display:inline-block;margin:2px 4px 2px 0;padding:1px 6px;background:#eaeef2;border-radius:10px;font-size:12px;color:#1f2328;\">{}={}</span>",
        escape_html(k),
        escape_html(v)
    )
}

fn alert_html(d: &Digest<'_>, a: &WebhookAlert, color: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<tr><td style=\"padding:10px 16px;border-top:1px solid #eaeef2;border-left:4px solid {color};\">\
<div style=\"font-size:15px;font-weight:bold;\">{}</div>",
        escape_html(alertname(a))
    );
    let own = d.own_labels(a);
    if !own.is_empty() {
        h.push_str("<div>");
        for (k, v) in own {
            h.push_str(&label_chip(k, v));
        }
        h.push_str("</div>");
    }
    if let Some(v) = a.annotations.get("summary").filter(|v| !v.is_empty()) {
        let _ = write!(
            h,
            "<div style=\"margin-top:4px;\">{}</div>",
            escape_html(v.trim())
        );
    }
    if let Some(v) = a.annotations.get("description").filter(|v| !v.is_empty()) {
        let _ = write!(
            h,
            "<div style=\"margin-top:4px;color:#57606a;white-space:pre-wrap;\">{}</div>",
            escape_html(v.trim())
        );
    }
    let _ = write!(
        h,
        "<div style=\"margin-top:4px;font-size:12px;color:#57606a;\">Started {}",
        escape_html(&human_time(&a.starts_at))
    );
    if a.status == Status::Resolved {
        let _ = write!(
            h,
            " &middot; ended {}",
            escape_html(&human_time(&a.ends_at))
        );
    }
    if !a.generator_url.is_empty() {
        let _ = write!(h, " &middot; {}", link(&a.generator_url, "Source"));
    }
    if let Some(v) = a.annotations.get("runbook_url").filter(|v| !v.is_empty()) {
        let _ = write!(h, " &middot; {}", link(v, "Runbook"));
    }
    h.push_str("</div></td></tr>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::LabelSet;

    fn wa(status: Status, labels: &[(&str, &str)]) -> WebhookAlert {
        WebhookAlert {
            status,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: [("summary".to_string(), "disk <full> & \"hot\"".to_string())]
                .into_iter()
                .collect(),
            starts_at: "2026-01-02T03:04:05Z".into(),
            ends_at: if status == Status::Resolved {
                "2026-01-02T04:00:00Z".into()
            } else {
                crate::alert::ZERO_TIME.into()
            },
            generator_url: "javascript:alert(1)".into(),
            fingerprint: "0000000000000001".into(),
        }
    }

    fn msg(alerts: Vec<WebhookAlert>) -> WebhookMessage {
        WebhookMessage::new(
            "ops",
            alerts,
            LabelSet::new(),
            "http://router.test",
            "{}:{}",
            "test",
        )
    }

    #[test]
    fn tls_mode_follows_port_and_flags() {
        assert_eq!(tls_mode(None, Some(true), 465), TlsMode::Implicit);
        assert_eq!(tls_mode(Some(true), Some(true), 587), TlsMode::Implicit);
        assert_eq!(tls_mode(Some(false), Some(true), 465), TlsMode::Required);
        assert_eq!(tls_mode(None, Some(true), 587), TlsMode::Required);
        assert_eq!(tls_mode(None, None, 25), TlsMode::Required);
        assert_eq!(tls_mode(None, Some(false), 25), TlsMode::Opportunistic);
    }

    #[test]
    fn address_lists() {
        let m = parse_mailbox_list("a@example.com, \"Doe, John\" <j@example.com>,").unwrap();
        assert_eq!(m.iter().count(), 2);
        assert!(parse_mailbox_list("a@example.com, not an address").is_err());
        assert!(parse_mailbox_list("a@example.com junk").is_err());
        assert!(parse_mailbox_list(" , ").is_err());
        assert!(parse_mailbox("Ops <ops@example.com>").is_ok());
    }

    #[test]
    fn header_values_stay_on_one_line() {
        assert_eq!(one_line("a\r\nBcc: x@y\n b"), "a Bcc: x@y b");
        assert!(valid_header_name("X-Team"));
        assert!(!valid_header_name("X Team"));
        assert!(!valid_header_name("X:Team"));
    }

    #[test]
    fn html_escapes_everything_and_refuses_script_links() {
        let m = msg(vec![
            wa(Status::Firing, &[("alertname", "A<b>"), ("x", "<script>")]),
            wa(Status::Resolved, &[("alertname", "B'"), ("x", "y")]),
        ]);
        let h = default_html(&m);
        assert!(!h.contains("<script>"));
        assert!(!h.contains("<b>"));
        assert!(h.contains("x=&lt;script&gt;"));
        assert!(h.contains("A&lt;b&gt;"));
        assert!(h.contains("B&#39;"));
        assert!(h.contains("disk &lt;full&gt; &amp; &quot;hot&quot;"));
        assert!(!h.contains("href=\"javascript"));
        // Firing before resolved, resolved shows its end.
        let f = h.find("A&lt;b&gt;").unwrap();
        let r = h.find("B&#39;").unwrap();
        assert!(f < r);
        assert!(h.contains("ended 2026-01-02 04:00:00 UTC"));
        assert!(h.contains("href=\"http://router.test/admin/v1/alerts?receiver=ops"));
    }

    #[test]
    fn text_lists_firing_first_and_caps() {
        let mut alerts = vec![wa(Status::Resolved, &[("alertname", "Old")])];
        for i in 0..60 {
            alerts.push(wa(
                Status::Firing,
                &[("alertname", "Hot"), ("i", &format!("{i:02}"))],
            ));
        }
        let t = default_text(&msg(alerts));
        assert!(t.starts_with("[FIRING:60]"));
        assert!(t.contains("60 firing, 1 resolved (11 not listed)"));
        assert!(t.contains("i=49"));
        assert!(!t.contains("i=50"));
        assert!(
            !t.contains("Old"),
            "resolved alert beyond the cap is counted, not listed"
        );
        assert!(t.contains("…and 11 more"));
        assert!(t.contains("Started: 2026-01-02 03:04:05 UTC"));
        assert!(t.contains("All alerts: http://router.test/admin/v1/alerts?receiver=ops"));
    }
}
