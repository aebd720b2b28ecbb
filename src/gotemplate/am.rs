//! Alertmanager's template data model (`Data`, `Alert`, `Alerts`, `KV`, `Pairs`, `Pair`
//! with their Go names and methods) built from a [`WebhookMessage`], and the template
//! set Alertmanager users expect: its function map plus the router's default templates
//! under Alertmanager's names (`defaults.tmpl`).

use super::gotime::GoTime;
use super::value::{Value, STRING_LIST};
use super::{funcs, Error, Set};
use crate::alert::{LabelSet, WebhookAlert, WebhookMessage};
use std::collections::BTreeMap;

pub const DATA: &str = "template.Data";
pub const ALERT: &str = "template.Alert";
pub const ALERTS: &str = "template.Alerts";
pub const ALERT_SLICE: &str = "[]template.Alert";
pub const KV: &str = "template.KV";
pub const PAIRS: &str = "template.Pairs";
pub const PAIR: &str = "template.Pair";

/// The router's default templates, parsed before the user's files.
pub const DEFAULTS: &str = include_str!("defaults.tmpl");
/// The name errors in [`DEFAULTS`] would be reported under.
pub const DEFAULTS_NAME: &str = "<builtin defaults.tmpl>";

/// An empty set with Alertmanager's functions and methods.
pub fn empty_set() -> Set {
    Set::with(&funcs::ALERTMANAGER, Some(methods))
}

/// Alertmanager's functions and methods plus the default templates.
pub fn default_set() -> Result<Set, Error> {
    let mut s = empty_set();
    s.add_file(DEFAULTS_NAME, DEFAULTS)?;
    Ok(s)
}

/// A label set as a `KV` (a missing key reads as "").
pub fn kv(labels: &LabelSet) -> Value {
    let entries: BTreeMap<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    Value::map(KV, true, entries)
}

fn time_value(s: &str) -> Value {
    Value::Time(GoTime::parse_rfc3339(s).unwrap_or_else(GoTime::zero))
}

/// One alert as `template.Alert`.
pub fn alert(a: &WebhookAlert) -> Value {
    Value::structure(
        ALERT,
        vec![
            ("Status", Value::from(a.status.as_str())),
            ("Labels", kv(&a.labels)),
            ("Annotations", kv(&a.annotations)),
            ("StartsAt", time_value(&a.starts_at)),
            ("EndsAt", time_value(&a.ends_at)),
            ("GeneratorURL", Value::from(a.generator_url.as_str())),
            ("Fingerprint", Value::from(a.fingerprint.as_str())),
        ],
    )
}

/// A notification as Alertmanager's `*template.Data` (0.32+, with `.NotificationReason`).
/// `.Receiver` is the receiver name as the message carries it (already
/// `regexp.QuoteMeta`'d, like Alertmanager's).
pub fn data(msg: &WebhookMessage) -> Value {
    Value::structure(
        DATA,
        vec![
            ("Receiver", Value::from(msg.receiver.as_str())),
            ("Status", Value::from(msg.status.as_str())),
            (
                "Alerts",
                Value::list(ALERTS, msg.alerts.iter().map(alert).collect()),
            ),
            (
                "NotificationReason",
                Value::from(msg.notification_reason.as_str()),
            ),
            ("GroupLabels", kv(&msg.group_labels)),
            ("CommonLabels", kv(&msg.common_labels)),
            ("CommonAnnotations", kv(&msg.common_annotations)),
            ("ExternalURL", Value::from(msg.external_url.as_str())),
        ],
    )
}

/// `alertname` first, then the other names in byte order (Alertmanager's `SortedPairs`).
fn sorted_pairs(m: &BTreeMap<String, Value>) -> Vec<(&String, &Value)> {
    let mut out: Vec<(&String, &Value)> = Vec::with_capacity(m.len());
    if let Some((k, v)) = m.get_key_value("alertname") {
        out.push((k, v));
    }
    out.extend(m.iter().filter(|(k, _)| k.as_str() != "alertname"));
    out
}

fn no_args(args: &[Value], name: &str) -> Result<(), String> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want 0 got {}",
            args.len()
        ))
    }
}

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Struct(s) => s.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v),
        _ => None,
    }
}

/// Methods of the data model's types.
pub fn methods(recv: &Value, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    match (recv, name) {
        (Value::List(l), "Firing" | "Resolved") if l.ty == ALERTS => {
            Some(no_args(args, name).map(|_| {
                let want = if name == "Firing" {
                    "firing"
                } else {
                    "resolved"
                };
                let items = l
                    .items
                    .iter()
                    .filter(|a| field(a, "Status").and_then(Value::as_str) == Some(want))
                    .cloned()
                    .collect();
                Value::list(ALERT_SLICE, items)
            }))
        }
        (Value::Map(m), _) if m.ty == KV => {
            let pairs = || sorted_pairs(&m.entries);
            Some(match name {
                "SortedPairs" => no_args(args, name).map(|_| {
                    Value::list(
                        PAIRS,
                        pairs()
                            .into_iter()
                            .map(|(k, v)| {
                                Value::structure(
                                    PAIR,
                                    vec![("Name", Value::from(k.as_str())), ("Value", v.clone())],
                                )
                            })
                            .collect(),
                    )
                }),
                "Names" => no_args(args, name)
                    .map(|_| Value::strings(pairs().into_iter().map(|(k, _)| k.as_str()))),
                "Values" => no_args(args, name).map(|_| {
                    Value::list(
                        STRING_LIST,
                        pairs().into_iter().map(|(_, v)| v.clone()).collect(),
                    )
                }),
                "Remove" => match args {
                    [Value::List(keys)] => {
                        let drop: Vec<&str> = keys.items.iter().filter_map(Value::as_str).collect();
                        let entries = m
                            .entries
                            .iter()
                            .filter(|(k, _)| !drop.contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        Ok(Value::map(KV, true, entries))
                    }
                    [v] => Err(format!(
                        "wrong type for value; expected []string; got {}",
                        v.type_name()
                    )),
                    _ => Err(format!(
                        "wrong number of args for Remove: want 1 got {}",
                        args.len()
                    )),
                },
                _ => return None,
            })
        }
        (Value::List(l), "Names" | "Values") if l.ty == PAIRS => {
            Some(no_args(args, name).map(|_| {
                let f = if name == "Names" { "Name" } else { "Value" };
                Value::list(
                    STRING_LIST,
                    l.items
                        .iter()
                        .filter_map(|p| field(p, f).cloned())
                        .collect(),
                )
            }))
        }
        (Value::List(l), "Join") if l.ty == STRING_LIST => Some(match args {
            [Value::Str(sep)] => {
                if let Err(e) = funcs::check_join_len(recv, sep) {
                    return Some(Err(e));
                }
                let parts: Vec<String> = l.items.iter().map(Value::to_go_string).collect();
                Ok(Value::from(parts.join(sep)))
            }
            _ => Err("wrong number of args for Join: want 1 got 0".into()),
        }),
        _ => None,
    }
}
