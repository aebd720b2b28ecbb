//! Message templates: a MiniJinja environment over the same data Alertmanager templates
//! see (status, alerts, groupLabels, commonLabels, commonAnnotations, externalURL, …),
//! plus the default subject line every integration shares.

use crate::alert::{Status, WebhookMessage};
use minijinja::{context, Environment, Value};

/// Template rendering failure (a bad user template), reported as a permanent error.
#[derive(Debug, thiserror::Error)]
#[error("template error: {0}")]
pub struct TemplateError(String);

/// The shared template environment.
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env
}

/// Check that a template compiles (used when the configuration is loaded).
pub fn check(source: &str) -> Result<(), String> {
    environment()
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl Templates {
    pub fn new() -> Self {
        Templates { env: environment() }
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

    /// Render a user template over a notification.
    pub fn render(&self, source: &str, msg: &WebhookMessage) -> Result<String, TemplateError> {
        self.env
            .render_str(source, self.context(msg))
            .map_err(|e| TemplateError(e.to_string()))
    }
}

/// Alertmanager's default subject: `[FIRING:2] <group label values> (<other common labels>)`.
pub fn subject(msg: &WebhookMessage) -> String {
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

/// Link to this router's view of the group's alerts.
pub fn alerts_url(msg: &WebhookMessage) -> String {
    format!(
        "{}/admin/v1/alerts?receiver={}",
        msg.external_url,
        urlencode(&msg.receiver)
    )
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
