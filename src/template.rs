//! Message templates in two languages: Alertmanager's Go `text/template` (the default,
//! [`crate::gotemplate`], over Alertmanager's data model) or MiniJinja
//! (`template_language: jinja`, over the webhook message's field names plus `subject`,
//! `firing`, `resolved` and `alertsURL`). Also what every integration shares: the
//! default subject line, the default plain-text rendering, Slack mrkdwn escaping and
//! length limits measured the way chat platforms count (UTF-16 code units, an upper
//! bound on "characters").

use crate::alert::{LabelSet, Status, WebhookAlert, WebhookMessage};
use crate::gotemplate;
use minijinja::{context, Environment, Value};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::path::Path;

/// Template rendering failure (a bad user template), reported as a permanent error.
#[derive(Debug, thiserror::Error)]
#[error("template error: {0}")]
pub struct TemplateError(String);

/// The language of templated configuration fields and `templates:` files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateLanguage {
    /// Alertmanager's Go `text/template`.
    #[default]
    Go,
    /// MiniJinja.
    Jinja,
}

thread_local! {
    static CHECK_LANGUAGE: Cell<TemplateLanguage> = const { Cell::new(TemplateLanguage::Go) };
}

/// While alive, [`check`] on this thread validates in `lang` (configuration loading sets
/// it for the duration of its validation pass, which checks every templated field).
pub struct CheckLanguage(TemplateLanguage);

impl CheckLanguage {
    pub fn set(lang: TemplateLanguage) -> Self {
        CheckLanguage(CHECK_LANGUAGE.with(|c| c.replace(lang)))
    }
}

impl Drop for CheckLanguage {
    fn drop(&mut self) {
        CHECK_LANGUAGE.with(|c| c.set(self.0));
    }
}

/// The shared template environment.
pub struct Templates {
    engine: Engine,
}

enum Engine {
    Jinja(Box<Environment<'static>>),
    Go(gotemplate::Set),
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

/// Instructions one Jinja render may run (MiniJinja's fuel): nested loops over huge ranges
/// stop with an error instead of running for hours. Of the order of the Go engine's budget.
const JINJA_FUEL: u64 = 5_000_000;

/// A Jinja render's output, refused past the Go engine's cap ([`gotemplate::MAX_OUTPUT`]):
/// a loop printing a large value stops at once instead of when the fuel runs out (fuel
/// counts instructions, not the bytes a filter such as `join` produces).
#[derive(Default)]
struct Capped {
    out: Vec<u8>,
    refused: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > gotemplate::MAX_OUTPUT {
            self.refused = true;
            return Err(std::io::Error::other("template output too large"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env.set_fuel(Some(JINJA_FUEL));
    // Label values are untrusted: `{{ labels.x | slack_escape }}` keeps them from
    // triggering Slack mentions or links in user templates.
    env.add_filter("slack_escape", |s: String| slack_escape(&s));
    env
}

/// Check that a template compiles, in the language configuration loading selected
/// (see [`CheckLanguage`]; Go otherwise). Parse errors carry the line and column within
/// the field.
pub fn check(source: &str) -> Result<(), String> {
    match CHECK_LANGUAGE.with(Cell::get) {
        TemplateLanguage::Jinja => environment()
            .template_from_str(source)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        TemplateLanguage::Go => gotemplate::am::empty_set()
            .parse_inline(source)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

impl Templates {
    /// Go templates with the router's defaults and no `templates:` files.
    pub fn new() -> Self {
        match gotemplate::am::default_set() {
            Ok(set) => Templates {
                engine: Engine::Go(set),
            },
            // The defaults are part of the binary and tested; keep running without them.
            Err(_) => Templates {
                engine: Engine::Go(gotemplate::am::empty_set()),
            },
        }
    }

    /// MiniJinja templates (`template_language: jinja`).
    pub fn jinja() -> Self {
        Templates {
            engine: Engine::Jinja(Box::new(environment())),
        }
    }

    /// Go templates: the router's defaults, then the files matching each glob pattern in
    /// order (a pattern matching nothing is fine). Errors name file, line and column.
    pub fn go(patterns: &[String]) -> Result<Self, String> {
        let mut set = gotemplate::am::default_set().map_err(|e| e.to_string())?;
        for pattern in patterns {
            for file in glob(pattern).map_err(|e| format!("templates: {pattern:?}: {e}"))? {
                let name = file.display().to_string();
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("templates: cannot read {name}: {e}"))?;
                set.add_file(&name, &text)
                    .map_err(|e| format!("templates: {e}"))?;
            }
        }
        Ok(Templates {
            engine: Engine::Go(set),
        })
    }

    /// The template set a configuration asks for (`template_language`, `templates`),
    /// parsed once per load or reload.
    pub fn from_config(cfg: &crate::config::Config) -> Result<Self, String> {
        match cfg.template_language {
            TemplateLanguage::Jinja => {
                if cfg.templates.is_empty() {
                    Ok(Self::jinja())
                } else {
                    Err("templates: template files need template_language: go".into())
                }
            }
            TemplateLanguage::Go => Self::go(&cfg.templates),
        }
    }

    pub fn language(&self) -> TemplateLanguage {
        match self.engine {
            Engine::Jinja(_) => TemplateLanguage::Jinja,
            Engine::Go(_) => TemplateLanguage::Go,
        }
    }

    /// Template context for a notification: the message fields (Alertmanager's names)
    /// plus `subject`, `firing`, `resolved` and `alertsURL`.
    pub fn context(&self, msg: &WebhookMessage) -> Value {
        let firing: Vec<_> = msg.firing().collect();
        let resolved: Vec<_> = msg.resolved().collect();
        context! {
            subject => subject(msg),
            firing => Value::from(minijinja::value::Serde(&firing)),
            resolved => Value::from(minijinja::value::Serde(&resolved)),
            alertsURL => alerts_url(msg),
            ..Value::from(minijinja::value::Serde(msg))
        }
    }

    /// Render a user template over a notification (an empty template renders "").
    pub fn render(&self, source: &str, msg: &WebhookMessage) -> Result<String, TemplateError> {
        self.render_as(source, msg, false)
    }

    /// Render a template whose output is HTML (email `html`, Telegram with
    /// `parse_mode: HTML`): Go templates HTML-escape printed values, as Alertmanager's
    /// `html/template` does (see [`gotemplate::Set::render_html`]); MiniJinja renders as
    /// [`Templates::render`].
    pub fn render_html(&self, source: &str, msg: &WebhookMessage) -> Result<String, TemplateError> {
        self.render_as(source, msg, true)
    }

    fn render_as(
        &self,
        source: &str,
        msg: &WebhookMessage,
        html: bool,
    ) -> Result<String, TemplateError> {
        match &self.engine {
            Engine::Jinja(env) => {
                let mut out = Capped::default();
                env.template_from_str(source)
                    .and_then(|t| t.render_captured_to(self.context(msg), &mut out))
                    .map_err(|e| {
                        TemplateError(if out.refused {
                            format!("output larger than {} bytes ({e})", gotemplate::MAX_OUTPUT)
                        } else {
                            e.to_string()
                        })
                    })?;
                String::from_utf8(out.out).map_err(|e| TemplateError(e.to_string()))
            }
            Engine::Go(_) if source.is_empty() => Ok(String::new()),
            Engine::Go(set) => {
                let data = gotemplate::am::data(msg);
                if html {
                    set.render_html(source, &data)
                } else {
                    set.render(source, &data)
                }
                .map_err(|e| TemplateError(e.to_string()))
            }
        }
    }
}

/// Go's `filepath.Glob`: `*`, `?` and `[…]` within one path element; the matches in
/// lexical order. A pattern without metacharacters matches the file if it exists.
pub fn glob(pattern: &str) -> Result<Vec<std::path::PathBuf>, String> {
    use std::path::{Component, PathBuf};
    let mut paths: Vec<PathBuf> = vec![PathBuf::new()];
    for comp in Path::new(pattern).components() {
        let part = match comp {
            Component::Normal(p) => p.to_string_lossy().into_owned(),
            other => {
                for p in &mut paths {
                    p.push(other.as_os_str());
                }
                continue;
            }
        };
        let mut next = Vec::new();
        if !part.contains(['*', '?', '[', '\\']) {
            for p in paths {
                next.push(p.join(&part));
            }
        } else {
            glob_match(&part, "").map_err(|e| e.to_string())?;
            for p in paths {
                let dir = if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p.as_path()
                };
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| glob_match(&part, n).unwrap_or(false))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| p.join(n)));
            }
        }
        paths = next;
    }
    Ok(paths.into_iter().filter(|p| p.exists()).collect())
}

/// Go's `filepath.Match` for one path element.
fn glob_match(pattern: &str, name: &str) -> Result<bool, &'static str> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn class(p: &[char], c: char) -> Result<(bool, usize), &'static str> {
        // p starts after '['; returns (matched, length through ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        loop {
            let Some(&lo) = p.get(i) else {
                return Err("syntax error in pattern");
            };
            if lo == ']' && !first {
                return Ok((matched != negate, i + 1));
            }
            first = false;
            let (lo, mut j) = if lo == '\\' {
                (*p.get(i + 1).ok_or("syntax error in pattern")?, i + 2)
            } else {
                (lo, i + 1)
            };
            let mut hi = lo;
            if p.get(j) == Some(&'-') && p.get(j + 1).is_some_and(|c| *c != ']') {
                hi = *p.get(j + 1).ok_or("syntax error in pattern")?;
                j += 2;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
            i = j;
        }
    }
    fn go(p: &[char], n: &[char]) -> Result<bool, &'static str> {
        match p.first() {
            None => Ok(n.is_empty()),
            Some('*') => {
                for k in 0..=n.len() {
                    if n[..k].contains(&'/') {
                        break;
                    }
                    if go(&p[1..], &n[k..])? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Some('?') => Ok(!n.is_empty() && go(&p[1..], &n[1..])?),
            Some('[') => {
                let Some(&c) = n.first() else {
                    class(&p[1..], ' ')?;
                    return Ok(false);
                };
                let (ok, len) = class(&p[1..], c)?;
                Ok(ok && go(&p[1 + len..], &n[1..])?)
            }
            Some('\\') => {
                let lit = *p.get(1).ok_or("syntax error in pattern")?;
                Ok(n.first() == Some(&lit) && go(&p[2..], &n[1..])?)
            }
            Some(&c) => Ok(n.first() == Some(&c) && go(&p[1..], &n[1..])?),
        }
    }
    go(&p, &n)
}

/// Alertmanager's default subject: `[FIRING:2] <group label values> (<other common labels>)`.
pub fn subject(msg: &WebhookMessage) -> String {
    if let Some(d) = &msg.digest {
        return format!(
            "{} alert groups changed: {} firing, {} resolved",
            d.groups, d.firing_groups, d.resolved_groups
        );
    }
    let mut s = match msg.status {
        Status::Firing => format!("[FIRING:{}]", msg.firing().count()),
        Status::Resolved => "[RESOLVED]".to_string(),
    };
    let values: Vec<&str> = msg.group_labels.values().map(String::as_str).collect();
    if !values.is_empty() {
        s.push(' ');
        s.push_str(&values.join(" "));
    }
    let extra: Vec<&str> = msg
        .common_labels
        .iter()
        .filter(|(k, _)| !msg.group_labels.contains_key(*k))
        .map(|(_, v)| v.as_str())
        .collect();
    if !extra.is_empty() {
        s.push_str(&format!(" ({})", extra.join(" ")));
    }
    s
}

/// Link to this router's view of the group's alerts: the alerts routed to the receiver,
/// filtered by the group's labels.
pub fn alerts_url(msg: &WebhookMessage) -> String {
    let mut url = format!(
        "{}/admin/v1/alerts?receiver={}",
        msg.external_url,
        urlencode(&unquote_meta(&msg.receiver))
    );
    if !msg.group_labels.is_empty() {
        let matchers: Vec<String> = msg
            .group_labels
            .iter()
            .map(|(k, v)| {
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                if is_classic_name(k) {
                    format!("{k}=\"{v}\"")
                } else {
                    format!("{}=\"{v}\"", k.replace('\\', "\\\\").replace('"', "\\\""))
                }
            })
            .collect();
        url.push_str("&filter=");
        url.push_str(&urlencode(&format!("{{{}}}", matchers.join(","))));
    }
    url
}

fn is_classic_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Undo `regexp.QuoteMeta`, which Alertmanager (and so the message) applies to the
/// receiver name.
fn unquote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Percent-encode a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Labels worth showing next to an alert's name, in this order.
pub const KEY_LABELS: [&str; 10] = [
    "instance",
    "job",
    "severity",
    "namespace",
    "pod",
    "service",
    "container",
    "node",
    "cluster",
    "env",
];

/// An alert's name, or its fingerprint when it has none.
pub fn alert_name(a: &WebhookAlert) -> &str {
    a.labels
        .get("alertname")
        .map(String::as_str)
        .unwrap_or(a.fingerprint.as_str())
}

/// The alert's key labels (see [`KEY_LABELS`]) that it actually has.
pub fn key_labels(labels: &LabelSet) -> Vec<(&'static str, &str)> {
    KEY_LABELS
        .iter()
        .filter_map(|k| labels.get(*k).map(|v| (*k, v.as_str())))
        .collect()
}

/// The one-line description of an alert: the first non-blank of its `summary`,
/// `description` and `message` annotations.
pub fn alert_summary(a: &WebhookAlert) -> Option<&str> {
    ["summary", "description", "message"].iter().find_map(|k| {
        a.annotations
            .get(*k)
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
    })
}

/// Alerts in the order notifications list them: firing first, then resolved.
pub fn firing_then_resolved(msg: &WebhookMessage) -> impl Iterator<Item = &WebhookAlert> {
    msg.firing().chain(msg.resolved())
}

/// Length as chat platforms count it, conservatively: UTF-16 code units.
pub fn text_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Cut `s` to at most `max` UTF-16 code units on a character boundary, ending with "…"
/// when anything was cut.
pub fn truncate(s: &str, max: usize) -> String {
    truncate_at(s, max, |_| true)
}

/// [`truncate`] for Slack mrkdwn: never cuts inside an entity (`&amp;`) or a control
/// sequence (`<url|label>`), so the result is still well formed.
pub fn truncate_mrkdwn(s: &str, max: usize) -> String {
    // Characters since an unclosed `&` (an entity is at most a few characters; a bare
    // `&` from a user template must not forbid every later cut), and whether a `<` is open.
    let mut amp: Option<usize> = None;
    let mut in_link = false;
    truncate_at(s, max, move |c| {
        match c {
            '&' => amp = Some(0),
            ';' => amp = None,
            '<' => in_link = true,
            '>' => in_link = false,
            _ => {
                amp = amp.map(|n| n + 1).filter(|n| *n < 10 && !c.is_whitespace());
            }
        }
        amp.is_none() && !in_link
    })
}

/// Keep the longest prefix that fits `max` with "…" appended and ends where `cut_ok`
/// (called once per character, in order) said a cut is allowed.
fn truncate_at(s: &str, max: usize, mut cut_ok: impl FnMut(char) -> bool) -> String {
    if text_len(s) <= max {
        return s.to_string();
    }
    let ellipsis = '…';
    if max < ellipsis.len_utf16() {
        return String::new();
    }
    let budget = max - ellipsis.len_utf16();
    let mut units = 0;
    let mut cut = 0;
    for (i, c) in s.char_indices() {
        if units + c.len_utf16() > budget {
            break;
        }
        units += c.len_utf16();
        if cut_ok(c) {
            cut = i + c.len_utf8();
        }
    }
    let mut out = s[..cut].trim_end().to_string();
    out.push(ellipsis);
    out
}

/// Escape text for Slack mrkdwn (and any Slack text field): exactly `&`, `<`, `>`. This
/// also neutralises `<!channel>`, `<!here>` and `<@U…>` mentions in label values.
pub fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A Slack link `<url|label>`; plain escaped `label` when `url` is empty. `|` cannot be
/// escaped inside a link, so it is percent-encoded in the URL and replaced in the label.
pub fn slack_link(url: &str, label: &str) -> String {
    let label = slack_escape(&label.replace('|', "¦"));
    if url.trim().is_empty() {
        return label;
    }
    let url = slack_escape(&url.replace('|', "%7C"));
    format!("<{url}|{label}>")
}

/// How a chat platform's markup writes the parts of an alert line (see [`alert_list`]).
pub struct Markup {
    /// Escape untrusted text (label values, annotations) so it cannot format, link or ping.
    pub escape: fn(&str) -> String,
    /// Emphasise already escaped text.
    pub bold: fn(&str) -> String,
    /// A link to `url` labelled `label` (both raw; the function escapes what it needs).
    pub link: fn(&str, &str) -> String,
    /// Length as the platform limits it (UTF-16 units, or bytes).
    pub len: fn(&str) -> usize,
    pub firing: &'static str,
    pub resolved: &'static str,
}

/// One line per alert, firing first, cut with "…and N more alerts" to stay within `max`
/// (measured with `m.len`). Every part of a line is cut before it is escaped, so a line
/// stays short whatever the labels hold and is never cut inside an escape or a link.
pub fn alert_list(msg: &WebhookMessage, max: usize, m: &Markup) -> String {
    const MORE_RESERVE: usize = 40;
    let alerts: Vec<&WebhookAlert> = firing_then_resolved(msg).collect();
    // With several alerts the common labels are already in the title.
    let skip_common = alerts.len() > 1;
    let mut out = String::new();
    let mut len = 0;
    let mut hidden = msg.truncated_alerts;
    for (i, a) in alerts.iter().enumerate() {
        let line = alert_line(a, msg, skip_common, m);
        let sep = if out.is_empty() { "" } else { "\n" };
        let later = alerts.len() - i - 1 + msg.truncated_alerts as usize;
        let reserve = if later > 0 { MORE_RESERVE } else { 0 };
        let add = (m.len)(sep) + (m.len)(&line);
        if len + add + reserve > max {
            hidden += (alerts.len() - i) as u64;
            break;
        }
        len += add;
        out.push_str(sep);
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

/// `icon **Name** · instance=…, job=… — summary [source](url)` in the platform's markup.
fn alert_line(a: &WebhookAlert, msg: &WebhookMessage, skip_common: bool, m: &Markup) -> String {
    let esc = |s: &str, max: usize| (m.escape)(&truncate(&one_line(s), max));
    let icon = match a.status {
        Status::Firing => m.firing,
        Status::Resolved => m.resolved,
    };
    let mut line = format!("{icon} {}", (m.bold)(&esc(alert_name(a), 100)));
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
    let is_http = url.starts_with("http://") || url.starts_with("https://");
    if is_http && url.len() <= 1000 {
        line.push(' ');
        line.push_str(&(m.link)(url, "source"));
    }
    line
}

/// Percent-encode the characters that would end a URL early inside chat markup (spaces,
/// brackets, `<`, `>`, `|`, quotes); the URL keeps its meaning.
pub fn markup_safe_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            ' ' | '(' | ')' | '<' | '>' | '|' | '"' | '[' | ']' | '`' | '\\' => {
                let mut b = [0; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Replace control characters (newlines included) by spaces, so a value stays on its line.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The default plain-text rendering of a notification (the `log` integration): the
/// subject line, then one line per alert with its status, labels and summary.
pub fn plain_text(msg: &WebhookMessage) -> String {
    let mut out = one_line(&subject(msg));
    for a in firing_then_resolved(msg) {
        let labels: Vec<String> = a
            .labels
            .iter()
            .map(|(k, v)| format!("{}={:?}", one_line(k), v))
            .collect();
        out.push_str(&format!(
            "\n  {:<8} {{{}}}",
            a.status.as_str(),
            labels.join(", ")
        ));
        if let Some(s) = alert_summary(a) {
            out.push_str(" - ");
            out.push_str(&one_line(s));
        }
    }
    if msg.truncated_alerts > 0 {
        out.push_str(&format!("\n  …and {} more alerts", msg.truncated_alerts));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(alerts: Vec<WebhookAlert>) -> WebhookMessage {
        let mut gl = LabelSet::new();
        gl.insert("alertname".into(), "Disk".into());
        WebhookMessage::new(
            "team.ops",
            alerts,
            gl,
            "http://router.test/",
            "{}:{alertname=\"Disk\"}",
            "first notification",
        )
    }

    fn alert(name: &str, instance: &str, status: Status) -> WebhookAlert {
        let labels: LabelSet = [("alertname", name), ("instance", instance)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        WebhookAlert {
            status,
            fingerprint: crate::alert::Fingerprint::of(&labels).to_string(),
            labels,
            annotations: [("summary".to_string(), "disk\nfull".to_string())].into(),
            starts_at: "2024-05-01T10:00:00Z".into(),
            ends_at: crate::alert::ZERO_TIME.into(),
            generator_url: String::new(),
        }
    }

    /// A Jinja loop printing a large value stops at the output cap, long before its fuel
    /// runs out (found by `tests/properties.rs`: 600,000 joins ran for over 20 s).
    #[test]
    fn jinja_output_is_capped() {
        let t = Templates::jinja();
        let m = msg(vec![alert("Disk", "a", Status::Firing)]);
        let started = std::time::Instant::now();
        let e = t
            .render(
                "{% for x in range(100000) %}{% for x in status %}{{ alerts | join(',') }}{% endfor %}{% endfor %}",
                &m,
            )
            .unwrap_err();
        assert!(e.to_string().contains("output larger than"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // under the cap, output is whole
        let ok = t
            .render("{% for x in range(3) %}{{ status }}{% endfor %}", &m)
            .unwrap();
        assert_eq!(ok, "firingfiringfiring");
    }

    /// Each Jinja render has a fuel budget: 10^10 loop iterations stop with an error.
    #[test]
    fn jinja_runaway_loops_run_out_of_fuel() {
        let t = Templates::jinja();
        let m = msg(vec![alert("Disk", "a", Status::Firing)]);
        let started = std::time::Instant::now();
        let e = t
            .render(
                "{% for x in range(100000) %}{% for y in range(100000) %}{% endfor %}{% endfor %}",
                &m,
            )
            .unwrap_err();
        assert!(e.to_string().contains("fuel"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        // an ordinary template is far from the budget
        assert_eq!(
            t.render(
                "{% for a in alerts %}{{ a.labels.instance }}{% endfor %}",
                &m
            )
            .unwrap(),
            "a"
        );
    }

    #[test]
    fn escapes_slack_control_characters() {
        assert_eq!(
            slack_escape("<!channel> & a>b"),
            "&lt;!channel&gt; &amp; a&gt;b"
        );
        assert_eq!(
            slack_link("http://x/?a=1&b=|", "so|urce>"),
            "<http://x/?a=1&amp;b=%7C|so¦urce&gt;>"
        );
        assert_eq!(slack_link("", "<x>"), "&lt;x&gt;");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
        let t = truncate(&"😀".repeat(10), 7);
        assert_eq!(t, "😀😀😀…");
        assert!(text_len(&t) <= 7);
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn mrkdwn_truncation_keeps_entities_and_links_whole() {
        let s = "ab &amp; <http://x|source> tail";
        for max in 0..text_len(s) {
            let t = truncate_mrkdwn(s, max);
            assert!(text_len(&t) <= max, "{t:?} longer than {max}");
            let body = t.trim_end_matches('…');
            assert_eq!(
                body.matches('<').count(),
                body.matches('>').count(),
                "{t:?}"
            );
            if let Some(i) = body.rfind('&') {
                assert!(body[i..].contains(';'), "{t:?}");
            }
        }
    }

    #[test]
    fn plain_text_lists_firing_then_resolved_one_per_line() {
        let m = msg(vec![
            alert("Disk", "b", Status::Resolved),
            alert("Disk", "a", Status::Firing),
        ]);
        let text = plain_text(&m);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("[FIRING:1] Disk"), "{text}");
        assert!(
            lines[1].contains("firing") && lines[1].contains("\"a\""),
            "{text}"
        );
        assert!(
            lines[2].contains("resolved") && lines[2].ends_with("disk full"),
            "{text}"
        );
    }

    #[test]
    fn alerts_url_names_the_receiver_and_group() {
        let m = msg(vec![alert("Disk", "a", Status::Firing)]);
        assert_eq!(
            alerts_url(&m),
            "http://router.test/admin/v1/alerts?receiver=team.ops&filter=%7Balertname%3D%22Disk%22%7D"
        );
    }

    #[test]
    fn user_templates_can_escape_for_slack() {
        let m = msg(vec![alert("<!here>", "a", Status::Firing)]);
        let out = Templates::jinja()
            .render("{{ alerts[0].labels.alertname | slack_escape }}", &m)
            .unwrap();
        assert_eq!(out, "&lt;!here&gt;");
    }

    #[test]
    fn go_is_the_default_language_and_jinja_is_kept() {
        let m = msg(vec![alert("Disk", "a", Status::Firing)]);
        let go = Templates::new();
        assert_eq!(go.language(), TemplateLanguage::Go);
        assert_eq!(
            go.render(
                "{{ .Status }} {{ len .Alerts }} {{ template \"__subject\" . }}",
                &m
            )
            .unwrap(),
            "firing 1 [FIRING:1] Disk (a)"
        );
        assert_eq!(go.render("", &m).unwrap(), "");
        let jinja = Templates::jinja();
        assert_eq!(
            jinja.render("{{ status }} {{ subject }}", &m).unwrap(),
            "firing [FIRING:1] Disk (a)"
        );
        // Each language rejects the other's syntax.
        assert!(go.render("{{ alerts | length }}", &m).is_err());
        assert!(jinja.render("{{ len .Alerts }}", &m).is_err());
    }

    #[test]
    fn check_uses_the_language_being_loaded() {
        assert!(check("{{ .Status | toUpper }}").is_ok());
        let e = check("ok\n{{ nosuch }}").unwrap_err();
        assert!(e.contains(":2:4: function \"nosuch\" not defined"), "{e}");
        {
            let _j = CheckLanguage::set(TemplateLanguage::Jinja);
            assert!(check("{{ status | upper }}").is_ok());
            assert!(check("{{ .Status | toUpper }}").is_err());
        }
        assert!(check("{{ .Status | toUpper }}").is_ok());
    }

    #[test]
    fn templates_files_are_globbed_in_order_with_positions_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).display().to_string();
        std::fs::write(p("a.tmpl"), "{{ define \"t\" }}A{{ end }}").unwrap();
        std::fs::write(
            p("b.tmpl"),
            "{{ define \"t\" }}B{{ end }}{{ define \"u\" }}U{{ end }}",
        )
        .unwrap();
        std::fs::write(p("c.txt"), "{{ define \"t\" }}C{{ end }}").unwrap();
        let m = msg(vec![alert("Disk", "a", Status::Firing)]);
        let t = Templates::go(&[p("*.tmpl"), p("none/*.tmpl")]).unwrap();
        assert_eq!(
            t.render("{{ template \"t\" }}{{ template \"u\" }}", &m)
                .unwrap(),
            "BU"
        );
        let t = Templates::go(&[p("b.tmpl"), p("[a]*.tmpl")]).unwrap();
        assert_eq!(t.render("{{ template \"t\" }}", &m).unwrap(), "A");
        std::fs::write(
            p("bad.tmpl"),
            "{{ define \"x\" }}\n  {{ .X | nosuch }}{{ end }}",
        )
        .unwrap();
        let e = Templates::go(&[p("*.tmpl")]).err().unwrap();
        assert_eq!(
            e,
            format!(
                "templates: template: {}:2:11: function \"nosuch\" not defined",
                p("bad.tmpl")
            )
        );
        assert!(Templates::go(&[p("[")]).is_err());
    }

    #[test]
    fn glob_matches_like_go() {
        assert!(glob_match("*.tmpl", "a.tmpl").unwrap());
        assert!(!glob_match("*.tmpl", "a.tmpl.bak").unwrap());
        assert!(glob_match("a?c", "abc").unwrap());
        assert!(glob_match("[a-c]x", "bx").unwrap());
        assert!(!glob_match("[^a-c]x", "bx").unwrap());
        assert!(glob_match("\\*", "*").unwrap());
        assert!(glob_match("[", "x").is_err());
    }
}
