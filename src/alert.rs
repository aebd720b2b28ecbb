//! Alerts as Alertmanager models them: label sets, the FNV-1a fingerprint, the stored
//! alert record, and the webhook (payload version 4) message both parsed on ingest and
//! re-emitted by the webhook integration.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Label names to values, sorted by name (as Alertmanager sorts them for hashing).
pub type LabelSet = BTreeMap<String, String>;

/// Alertmanager's alert fingerprint: FNV-1a 64 over sorted `name 0xFF value 0xFF`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Fingerprint(pub u64);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Fingerprint {
    /// Fingerprint of a label set, identical to `model.LabelSet.Fingerprint()` in Go.
    pub fn of(labels: &LabelSet) -> Self {
        let mut h = FNV_OFFSET;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(FNV_PRIME);
            }
        };
        for (name, value) in labels {
            feed(name.as_bytes());
            feed(&[0xff]);
            feed(value.as_bytes());
            feed(&[0xff]);
        }
        Fingerprint(h)
    }

    /// Parse the 16-digit lowercase hex form Alertmanager sends.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Fingerprint)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl From<Fingerprint> for String {
    fn from(f: Fingerprint) -> String {
        f.to_string()
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Fingerprint::parse(&s).ok_or_else(|| format!("invalid fingerprint {s:?}"))
    }
}

/// Firing or resolved, as in every Alertmanager payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an alert is delivered: through the route tree, and/or straight to named receivers
/// (`POST /webhook/{receiver}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    #[serde(default)]
    pub routed: bool,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub receivers: BTreeSet<String>,
}

impl Targets {
    pub fn merge(&mut self, other: &Targets) {
        self.routed |= other.routed;
        self.receivers.extend(other.receivers.iter().cloned());
    }
}

/// One alert as stored by the router (the `alerts` tree, keyed by fingerprint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub fingerprint: Fingerprint,
    pub labels: LabelSet,
    #[serde(default)]
    pub annotations: LabelSet,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// `None` = firing until told otherwise (Alertmanager's zero time).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub ends_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub generator_url: String,
    /// Last time a sender told us about this alert.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// First time this router saw the alert (drives `group_wait` across restarts).
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(default)]
    pub targets: Targets,
    /// `ends_at` was not sent but derived from `resolve_timeout` (Alertmanager's `Timeout`
    /// flag): such an end gives way to a sender's explicit one when merging.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timeout: bool,
    /// `ends_at` is the webhook TTL (`ingest.webhook_firing_ttl`), not an end anyone
    /// reported: a firing webhook alert that its Alertmanager stopped repeating. Reaching
    /// it drops the alert from its groups without a resolve notification (nobody said it
    /// resolved). Always with `timeout`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expires: bool,
    /// This report came from an Alertmanager's webhook (not stored: only the dispatcher
    /// reads it, for the report at hand). Alertmanager sends a resolved alert only to a
    /// receiver it notified of the alert firing — through this router or, after an HA
    /// failover, through a peer's — so a resolve handed over this way is announced even
    /// when this router holds no group for it (see `Dispatcher::join_group`).
    #[serde(skip)]
    pub handoff: bool,
}

impl Alert {
    /// Resolved at `t` iff it has an end time and that end is not after `t`.
    pub fn resolved_at(&self, t: OffsetDateTime) -> bool {
        self.ends_at.is_some_and(|e| e <= t)
    }

    /// Ended at `t` by the webhook TTL (see [`Alert::expires`]), not resolved.
    pub fn expired_at(&self, t: OffsetDateTime) -> bool {
        self.expires && self.resolved_at(t)
    }

    pub fn status_at(&self, t: OffsetDateTime) -> Status {
        if self.resolved_at(t) {
            Status::Resolved
        } else {
            Status::Firing
        }
    }

    pub fn alertname(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// What a later merge needs to know about this alert (the store writer keeps it in
    /// memory, so merging never has to read the stored alert back).
    pub fn merge_state(&self) -> MergeState {
        MergeState {
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            received_at: self.received_at,
            timeout: self.timeout,
            targets: self.targets.clone(),
        }
    }

    /// Merge this (newer) report onto the stored alert `old` with Alertmanager's rules
    /// (its memory store and `Alert.Merge`; an open end counts as +∞):
    /// - the two are merged only when their activity ranges overlap — the newer end or the
    ///   newer start lies strictly inside the older range; otherwise the newer report
    ///   simply replaces the older one;
    /// - merged: the earliest start is kept; the end is the newer report's (so a
    ///   Prometheus resolve, an end in the past, resolves at once), except that when both
    ///   are resolved the later end wins, and a firing newer report keeps an older explicit
    ///   (not timeout-derived) end that is later than its own.
    ///
    /// `received_at` (which drives `group_wait`) belongs to the episode: it is kept when the
    /// newer report started before the older one ended, and starts afresh otherwise (a
    /// re-fire after a resolve is a new episode and waits `group_wait` again).
    pub fn merge_onto(&mut self, old: &MergeState) {
        let same_episode = old.ends_at.is_none_or(|e| self.starts_at < e);
        let inside = |t: OffsetDateTime| t > old.starts_at && old.ends_at.is_none_or(|e| t < e);
        if self.ends_at.is_some_and(inside) || inside(self.starts_at) {
            self.starts_at = self.starts_at.min(old.starts_at);
            let at = self.updated_at;
            let resolved = |e: Option<OffsetDateTime>| e.is_some_and(|e| e <= at);
            if resolved(self.ends_at) {
                if resolved(old.ends_at) && old.ends_at > self.ends_at {
                    self.ends_at = old.ends_at;
                }
            } else if let (Some(o), Some(n)) = (old.ends_at, self.ends_at) {
                if o > n && !old.timeout {
                    self.ends_at = Some(o);
                    self.timeout = false;
                    self.expires = false;
                }
            }
        }
        if same_episode {
            self.received_at = old.received_at;
        }
        let mut targets = old.targets.clone();
        targets.merge(&self.targets);
        self.targets = targets;
    }

    /// Merge a newer report of the same alert into this stored one (see [`Alert::merge_onto`]).
    pub fn merge_newer(&mut self, newer: Alert) {
        let old = self.merge_state();
        *self = newer;
        self.merge_onto(&old);
    }
}

/// The fields of a stored alert that merging a newer report depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeState {
    pub starts_at: OffsetDateTime,
    pub ends_at: Option<OffsetDateTime>,
    pub received_at: OffsetDateTime,
    pub timeout: bool,
    pub targets: Targets,
}

/// Go's `regexp.QuoteMeta`, which Alertmanager applies to the receiver name of a webhook
/// payload: only `\.+*?()|[]{}^$` are escaped (`regex::escape` also escapes `-`, `#`, `&`
/// and `~`, which would make `team-a` read `team\-a`).
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Current time, UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Format like Go's RFC3339Nano (fraction trimmed, original offset, `Z` for UTC).
pub fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Go's zero time as Alertmanager prints it for firing alerts.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// An alert inside a webhook message (payload version 4), in Alertmanager's field order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookAlert {
    pub status: Status,
    pub labels: LabelSet,
    pub annotations: LabelSet,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

impl WebhookAlert {
    /// The alert as it appears in a notification flushed at `t` (firing alerts get the zero end time).
    pub fn from_alert(a: &Alert, t: OffsetDateTime) -> Self {
        let status = a.status_at(t);
        WebhookAlert {
            status,
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: format_time(a.starts_at),
            ends_at: match (status, a.ends_at) {
                (Status::Resolved, Some(e)) => format_time(e),
                _ => ZERO_TIME.to_string(),
            },
            generator_url: a.generator_url.clone(),
            fingerprint: a.fingerprint.to_string(),
        }
    }
}

/// The Alertmanager webhook message (version 4), the data every template sees, and the
/// snapshot stored with each queued notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookMessage {
    pub receiver: String,
    pub status: Status,
    pub alerts: Vec<WebhookAlert>,
    pub notification_reason: String,
    #[serde(rename = "groupLabels")]
    pub group_labels: LabelSet,
    #[serde(rename = "commonLabels")]
    pub common_labels: LabelSet,
    #[serde(rename = "commonAnnotations")]
    pub common_annotations: LabelSet,
    #[serde(rename = "routeLabels", default)]
    pub route_labels: LabelSet,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub version: String,
    #[serde(rename = "groupKey")]
    pub group_key: String,
    #[serde(rename = "truncatedAlerts")]
    pub truncated_alerts: u64,
    /// Set on a storm digest: several groups' notifications sent as one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

/// What a storm digest carries: the groups it summarises and the notifications it
/// stands for (their ids, so the admin API shows which digest carried which).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    pub groups: usize,
    pub firing_groups: usize,
    pub resolved_groups: usize,
    pub notifications: Vec<u64>,
    /// One line per group, most severe first.
    pub lines: Vec<String>,
}

impl WebhookMessage {
    /// Build a message from alerts already in notification order; computes status and the
    /// common labels/annotations the way Alertmanager does (over the alerts actually sent).
    pub fn new(
        receiver: &str,
        alerts: Vec<WebhookAlert>,
        group_labels: LabelSet,
        external_url: &str,
        group_key: &str,
        reason: &str,
    ) -> Self {
        let mut m = WebhookMessage {
            receiver: quote_meta(receiver),
            status: Status::Resolved,
            common_labels: LabelSet::new(),
            common_annotations: LabelSet::new(),
            alerts,
            notification_reason: reason.to_string(),
            group_labels,
            route_labels: LabelSet::new(),
            external_url: external_url.trim_end_matches('/').to_string(),
            version: "4".to_string(),
            group_key: group_key.to_string(),
            truncated_alerts: 0,
            digest: None,
        };
        m.summarise();
        m
    }

    /// Recompute `status`, `commonLabels` and `commonAnnotations` from the alerts present.
    fn summarise(&mut self) {
        self.status = if self.alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        };
        let common = |pick: fn(&WebhookAlert) -> &LabelSet| -> LabelSet {
            let mut it = self.alerts.iter();
            let Some(first) = it.next() else {
                return LabelSet::new();
            };
            let mut common = pick(first).clone();
            for a in it {
                let other = pick(a);
                common.retain(|k, v| other.get(k) == Some(v));
            }
            common
        };
        let labels = common(|a| &a.labels);
        let annotations = common(|a| &a.annotations);
        self.common_labels = labels;
        self.common_annotations = annotations;
    }

    pub fn firing(&self) -> impl Iterator<Item = &WebhookAlert> {
        self.alerts.iter().filter(|a| a.status == Status::Firing)
    }

    pub fn resolved(&self) -> impl Iterator<Item = &WebhookAlert> {
        self.alerts.iter().filter(|a| a.status == Status::Resolved)
    }

    /// Keep the first `max` alerts (0 = all), recording how many were dropped.
    /// Like Alertmanager, `status` and the common labels then describe the alerts kept.
    pub fn truncate(&mut self, max: usize) {
        if max > 0 && self.alerts.len() > max {
            self.truncated_alerts += (self.alerts.len() - max) as u64;
            self.alerts.truncate(max);
            self.summarise();
        }
    }
}

/// Alertmanager's notification order: by `job`, then `instance` (alerts lacking the label
/// after those having it), then the full label set (fewer labels first, then lexicographic).
pub fn notification_order(a: &LabelSet, b: &LabelSet) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for key in ["job", "instance"] {
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            _ => {}
        }
    }
    a.len().cmp(&b.len()).then_with(|| a.iter().cmp(b.iter()))
}

/// A rejected ingest payload: the message names the field (and alert index).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PayloadError(pub String);

fn bad(msg: impl Into<String>) -> PayloadError {
    PayloadError(msg.into())
}

/// Check a label or annotation name: any non-empty UTF-8 without control characters
/// (Alertmanager's UTF-8 mode, the default since 0.28).
pub fn valid_label_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_control)
}

fn parse_time(v: &Value, field: &str) -> Result<Option<OffsetDateTime>, PayloadError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() || s == ZERO_TIME => Ok(None),
        Value::String(s) => match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(t) if t.year() <= 1 => Ok(None),
            Ok(t) => Ok(Some(t)),
            Err(e) => Err(bad(format!(
                "{field}: invalid RFC 3339 timestamp {s:?}: {e}"
            ))),
        },
        _ => Err(bad(format!(
            "{field}: must be an RFC 3339 timestamp string"
        ))),
    }
}

fn parse_string_map(
    v: Option<&Value>,
    field: &str,
    drop_empty: bool,
) -> Result<LabelSet, PayloadError> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(LabelSet::new()),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(bad(format!("{field}: must be an object of strings"))),
    };
    let mut out = LabelSet::new();
    for (k, v) in obj {
        let Value::String(s) = v else {
            return Err(bad(format!("{field}.{k}: value must be a string")));
        };
        if !valid_label_name(k) {
            return Err(bad(format!("{field}: invalid name {k:?}")));
        }
        if drop_empty && s.is_empty() {
            continue;
        }
        out.insert(k.clone(), s.clone());
    }
    Ok(out)
}

/// Size limits on what one request may carry (`ingest.max_*`): a request over them is
/// refused with `400` naming the alert and the limit, so no single sender can make the
/// store or the messages unboundedly large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertLimits {
    pub max_alerts_per_request: usize,
    pub max_labels_per_alert: usize,
    /// Name and value of one label together.
    pub max_label_bytes: usize,
    pub max_annotations_per_alert: usize,
    /// Name and value of one annotation together.
    pub max_annotation_bytes: usize,
}

impl Default for AlertLimits {
    fn default() -> Self {
        AlertLimits {
            max_alerts_per_request: 10_000,
            max_labels_per_alert: 256,
            max_label_bytes: 64 * 1024,
            max_annotations_per_alert: 256,
            max_annotation_bytes: 256 * 1024,
        }
    }
}

impl AlertLimits {
    fn check_count(&self, n: usize) -> Result<(), PayloadError> {
        if n > self.max_alerts_per_request {
            return Err(bad(format!(
                "alerts: {n} alerts in one request, more than ingest.max_alerts_per_request ({})",
                self.max_alerts_per_request
            )));
        }
        Ok(())
    }

    fn check(&self, a: &Alert, index: usize) -> Result<(), PayloadError> {
        for (what, set, max_n, max_bytes, key_n, key_b) in [
            (
                "labels",
                &a.labels,
                self.max_labels_per_alert,
                self.max_label_bytes,
                "max_labels_per_alert",
                "max_label_bytes",
            ),
            (
                "annotations",
                &a.annotations,
                self.max_annotations_per_alert,
                self.max_annotation_bytes,
                "max_annotations_per_alert",
                "max_annotation_bytes",
            ),
        ] {
            if set.len() > max_n {
                return Err(bad(format!(
                    "alerts[{index}].{what}: {} entries, more than ingest.{key_n} ({max_n})",
                    set.len()
                )));
            }
            if let Some((k, v)) = set.iter().find(|(k, v)| k.len() + v.len() > max_bytes) {
                let name: String = k.chars().take(64).collect();
                return Err(bad(format!(
                    "alerts[{index}].{what}.{name}: {} bytes, more than ingest.{key_b} ({max_bytes})",
                    k.len() + v.len()
                )));
            }
        }
        Ok(())
    }
}

/// Parse and validate one alert object (webhook `alerts[i]` or API v2 postable alert).
/// `now` fills a missing start; a `resolved` status without an end time ends at `now`.
pub fn parse_alert(
    v: &Value,
    index: usize,
    now: OffsetDateTime,
    targets: &Targets,
) -> Result<Alert, PayloadError> {
    let field = format!("alerts[{index}]");
    let Value::Object(obj) = v else {
        return Err(bad(format!("{field}: must be an object")));
    };
    let get = |k: &str| obj.get(k);
    let labels = match get("labels") {
        None | Some(Value::Null) => return Err(bad(format!("{field}.labels: required"))),
        l => parse_string_map(l, &format!("{field}.labels"), true)?,
    };
    if labels.is_empty() {
        return Err(bad(format!(
            "{field}.labels: at least one label pair with a non-empty value required"
        )));
    }
    let annotations = parse_string_map(get("annotations"), &format!("{field}.annotations"), false)?;
    let starts_at = parse_time(
        get("startsAt").unwrap_or(&Value::Null),
        &format!("{field}.startsAt"),
    )?;
    let mut ends_at = parse_time(
        get("endsAt").unwrap_or(&Value::Null),
        &format!("{field}.endsAt"),
    )?;
    let status = match get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "firing" => Some(Status::Firing),
        Some(Value::String(s)) if s == "resolved" => Some(Status::Resolved),
        Some(_) => {
            return Err(bad(format!(
                "{field}.status: must be \"firing\" or \"resolved\""
            )))
        }
    };
    match status {
        // Alertmanager zeroes endsAt of firing alerts in notifications; a firing alert stays
        // firing until a resolved notification arrives.
        Some(Status::Firing) => ends_at = ends_at.filter(|e| *e > now),
        Some(Status::Resolved) if ends_at.is_none_or(|e| e > now) => ends_at = Some(now),
        _ => {}
    }
    let starts_at = starts_at.or(ends_at.filter(|e| *e < now)).unwrap_or(now);
    if let Some(e) = ends_at {
        if e < starts_at {
            return Err(bad(format!("{field}: start time must be before end time")));
        }
    }
    let generator_url = match get("generatorURL") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad(format!("{field}.generatorURL: must be a string"))),
    };
    let fingerprint = match get("fingerprint") {
        Some(Value::String(s)) => Fingerprint::parse(s).unwrap_or_else(|| Fingerprint::of(&labels)),
        _ => Fingerprint::of(&labels),
    };
    Ok(Alert {
        fingerprint,
        labels,
        annotations,
        starts_at,
        ends_at,
        generator_url,
        updated_at: now,
        received_at: now,
        targets: targets.clone(),
        timeout: false,
        handoff: false,
        expires: false,
    })
}

/// Parse an Alertmanager webhook body (version 4, Alertmanager 0.25–0.34). Every alert
/// must be valid, or the whole request is rejected.
pub fn parse_webhook(
    body: &[u8],
    now: OffsetDateTime,
    targets: &Targets,
    limits: &AlertLimits,
) -> Result<Vec<Alert>, PayloadError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(bad(
            "body: must be a JSON object (Alertmanager webhook payload)",
        ));
    };
    check_optional_string(&obj, "version")?;
    if let Some(Value::String(ver)) = obj.get("version") {
        if ver != "4" {
            return Err(bad(format!(
                "version: unsupported payload version {ver:?}, expected \"4\""
            )));
        }
    }
    for key in [
        "receiver",
        "status",
        "groupKey",
        "externalURL",
        "notification_reason",
    ] {
        check_optional_string(&obj, key)?;
    }
    let alerts = match obj.get("alerts") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("alerts: must be an array")),
        None => return Err(bad("alerts: required")),
    };
    limits.check_count(alerts.len())?;
    alerts
        .iter()
        .enumerate()
        .map(|(i, a)| parse_checked(a, i, now, targets, limits))
        .collect()
}

/// Parse the Alertmanager API v2 `postableAlerts` body (a JSON array of alerts), all or
/// nothing: the first invalid alert, or one past `limits`, fails the whole body.
pub fn parse_postable_alerts(
    body: &[u8],
    now: OffsetDateTime,
    targets: &Targets,
    limits: &AlertLimits,
) -> Result<Vec<Alert>, PayloadError> {
    let (alerts, errors) = parse_postable_alerts_partial(body, now, targets, limits)?;
    match errors.into_iter().next() {
        Some(e) => Err(PayloadError(e)),
        None => Ok(alerts),
    }
}

/// One alert of a body (element `i`), parsed and checked against `limits`.
fn parse_checked(
    a: &Value,
    i: usize,
    now: OffsetDateTime,
    targets: &Targets,
    limits: &AlertLimits,
) -> Result<Alert, PayloadError> {
    let alert = parse_alert(a, i, now, targets)?;
    limits.check(&alert, i)?;
    Ok(alert)
}

/// [`parse_postable_alerts`] with Alertmanager's partial accept: the valid alerts and
/// one error per invalid alert (naming its index and field). Only a body that is not a
/// JSON array of alerts fails as a whole.
pub fn parse_postable_alerts_partial(
    body: &[u8],
    now: OffsetDateTime,
    targets: &Targets,
    limits: &AlertLimits,
) -> Result<(Vec<Alert>, Vec<String>), PayloadError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let Value::Array(alerts) = v else {
        return Err(bad("body: must be a JSON array of alerts"));
    };
    limits.check_count(alerts.len())?;
    let mut ok = Vec::with_capacity(alerts.len());
    let mut errors = Vec::new();
    for (i, a) in alerts.iter().enumerate() {
        match parse_checked(a, i, now, targets, limits) {
            Ok(a) => ok.push(a),
            Err(e) => errors.push(e.0),
        }
    }
    Ok((ok, errors))
}

fn check_optional_string(obj: &Map<String, Value>, key: &str) -> Result<(), PayloadError> {
    match obj.get(key) {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(bad(format!("{key}: must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprint_vectors_match_alertmanager() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[], "cbf29ce484222325"),
            (
                &[("name", "garland, briggs"), ("fear", "love is not enough")],
                "507a62d79ee76c9a",
            ),
            (
                &[("severity", "warning"), ("job", "foo")],
                "9266ef3da838ad95",
            ),
            (
                &[("severity", "critical"), ("job", "foo")],
                "3b15fd163d36582e",
            ),
            (
                &[("severity", "critical"), ("alertname", "alert1")],
                "0223b772b51c29e1",
            ),
            (&[("foo", "bar")], "3fff2c2d7595e046"),
        ];
        for (labels, hex) in cases {
            assert_eq!(Fingerprint::of(&ls(labels)).to_string(), hex, "{labels:?}");
        }
        assert_eq!(
            Fingerprint::of(&ls(&[("a", "b")])).to_string(),
            "d2b371819297f98a"
        );
        assert_eq!(
            Fingerprint::of(&ls(&[
                ("name", "garland, briggs"),
                ("fear", "love is not enough")
            ]))
            .0,
            5799056148416392346
        );
    }

    #[test]
    fn fingerprint_parse_round_trip() {
        assert_eq!(
            Fingerprint::parse("c626d2275ab0f610")
                .map(|f| f.to_string())
                .as_deref(),
            Some("c626d2275ab0f610")
        );
        assert_eq!(Fingerprint::parse("xyz"), None);
        assert_eq!(Fingerprint::parse("c626d2275ab0f61"), None);
    }

    #[test]
    fn times_format_like_go() {
        let t = OffsetDateTime::parse("2024-05-01T10:00:00Z", &Rfc3339).unwrap();
        assert_eq!(format_time(t), "2024-05-01T10:00:00Z");
        let t = OffsetDateTime::parse("2024-05-01T10:00:00.123+02:00", &Rfc3339).unwrap();
        assert_eq!(format_time(t), "2024-05-01T10:00:00.123+02:00");
    }

    #[test]
    fn webhook_fixture_parses() {
        let body = include_bytes!("../tests/fixtures/alertmanager-0.25-partly-resolved.json");
        let alerts =
            parse_webhook(body, now(), &Targets::default(), &AlertLimits::default()).unwrap();
        assert_eq!(alerts.len(), 3);
        assert_eq!(alerts.iter().filter(|a| a.resolved_at(now())).count(), 1);
        for a in &alerts {
            assert_eq!(a.fingerprint, Fingerprint::of(&a.labels));
        }
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let t = now();
        let cases = [
            (
                r#"{"alerts":[{"labels":{"a":"b"}},{"annotations":{}}]}"#,
                "alerts[1].labels: required",
            ),
            (
                r#"{"alerts":[{"labels":{"a":1}}]}"#,
                "alerts[0].labels.a: value must be a string",
            ),
            (
                r#"{"alerts":[{"labels":{"":"x"}}]}"#,
                "alerts[0].labels: invalid name \"\"",
            ),
            (
                r#"{"alerts":[{"labels":{"a":""}}]}"#,
                "alerts[0].labels: at least one",
            ),
            (
                r#"{"alerts":[{"labels":{"a":"b"},"startsAt":"yesterday"}]}"#,
                "alerts[0].startsAt: invalid RFC 3339",
            ),
            (
                r#"{"alerts":[{"labels":{"a":"b"},"startsAt":"2024-01-02T00:00:00Z","endsAt":"2024-01-01T00:00:00Z"}]}"#,
                "alerts[0]: start time must be before end time",
            ),
            (r#"{"alerts":{}}"#, "alerts: must be an array"),
            (r#"{"receiver":"x"}"#, "alerts: required"),
            (r#"{"alerts":[],"version":"3"}"#, "version: unsupported"),
            (
                r#"{"alerts":[{"labels":{"a":"b"},"status":"pending"}]}"#,
                "alerts[0].status",
            ),
            (r#"[1]"#, "body: must be a JSON object"),
            (r#"{"alerts":["#, "invalid JSON"),
        ];
        for (body, want) in cases {
            let err = parse_webhook(
                body.as_bytes(),
                t,
                &Targets::default(),
                &AlertLimits::default(),
            )
            .unwrap_err();
            assert!(
                err.0.starts_with(want),
                "{body}: got {:?}, want prefix {want:?}",
                err.0
            );
        }
    }

    #[test]
    fn merge_keeps_first_start_and_newer_end() {
        let t0 = OffsetDateTime::parse("2024-05-01T10:00:00Z", &Rfc3339).unwrap();
        let base = Alert {
            fingerprint: Fingerprint(1),
            labels: ls(&[("a", "b")]),
            annotations: LabelSet::new(),
            starts_at: t0,
            ends_at: None,
            generator_url: String::new(),
            updated_at: t0,
            received_at: t0,
            targets: Targets {
                routed: true,
                receivers: Default::default(),
            },
            timeout: false,
            handoff: false,
            expires: false,
        };
        let mut stored = base.clone();
        let mut newer = base.clone();
        newer.starts_at = t0 + time::Duration::minutes(1);
        newer.ends_at = Some(t0 + time::Duration::minutes(5));
        newer.received_at = t0 + time::Duration::minutes(5);
        newer.targets = Targets {
            routed: false,
            receivers: ["ops".to_string()].into(),
        };
        stored.merge_newer(newer);
        assert_eq!(stored.starts_at, t0);
        assert_eq!(stored.ends_at, Some(t0 + time::Duration::minutes(5)));
        assert_eq!(stored.received_at, t0);
        assert!(stored.targets.routed && stored.targets.receivers.contains("ops"));
    }

    fn at(base: &Alert, start_min: i64, end_min: Option<i64>, now_min: i64) -> Alert {
        let t0 = base.starts_at;
        let mut a = base.clone();
        a.starts_at = t0 + time::Duration::minutes(start_min);
        a.ends_at = end_min.map(|m| t0 + time::Duration::minutes(m));
        a.updated_at = t0 + time::Duration::minutes(now_min);
        a.received_at = a.updated_at;
        a
    }

    fn base() -> Alert {
        let t0 = OffsetDateTime::parse("2024-05-01T10:00:00Z", &Rfc3339).unwrap();
        let labels = ls(&[("a", "b")]);
        Alert {
            fingerprint: Fingerprint::of(&labels),
            labels,
            annotations: LabelSet::new(),
            starts_at: t0,
            ends_at: None,
            generator_url: String::new(),
            updated_at: t0,
            received_at: t0,
            targets: Targets::default(),
            timeout: false,
            handoff: false,
            expires: false,
        }
    }

    /// Prometheus resolves by re-sending the alert with an end in the past: the newer end
    /// wins over the earlier announced (later) one.
    #[test]
    fn merge_takes_a_resolve_from_the_newer_report() {
        let b = base();
        // posted at 0 without an end: resolve_timeout gives it 5m, flagged as timeout
        let mut stored = at(&b, 0, Some(5), 0);
        stored.timeout = true;
        let resolve = at(&b, 0, Some(1), 1);
        stored.merge_newer(resolve);
        assert_eq!(
            stored.ends_at,
            Some(b.starts_at + time::Duration::minutes(1))
        );
        assert!(stored.resolved_at(b.starts_at + time::Duration::minutes(1)));
        assert_eq!(stored.received_at, b.starts_at, "same episode");
    }

    #[test]
    fn merge_keeps_explicit_later_end_but_not_a_timeout_end() {
        let b = base();
        // Prometheus announced 0..10m (explicit); a firing report with 0..4m keeps 10m.
        let mut explicit = at(&b, 0, Some(10), 0);
        explicit.merge_newer(at(&b, 1, Some(4), 1));
        assert_eq!(
            explicit.ends_at,
            Some(b.starts_at + time::Duration::minutes(10))
        );
        // The same with a timeout-derived older end: the newer end wins.
        let mut derived = at(&b, 0, Some(10), 0);
        derived.timeout = true;
        derived.merge_newer(at(&b, 1, Some(4), 1));
        assert_eq!(
            derived.ends_at,
            Some(b.starts_at + time::Duration::minutes(4))
        );
    }

    #[test]
    fn merge_of_two_resolves_keeps_the_later_end() {
        let b = base();
        let mut stored = at(&b, 0, Some(6), 7);
        stored.merge_newer(at(&b, 0, Some(3), 8));
        assert_eq!(
            stored.ends_at,
            Some(b.starts_at + time::Duration::minutes(6))
        );
    }

    /// A webhook re-fire after a resolve starts a new episode: new start, new
    /// `received_at` (so `group_wait` applies again).
    #[test]
    fn refire_after_resolve_is_a_new_episode() {
        let b = base();
        let mut stored = at(&b, 0, None, 0);
        stored.merge_newer(at(&b, 0, Some(2), 2));
        assert_eq!(
            stored.ends_at,
            Some(b.starts_at + time::Duration::minutes(2))
        );
        let refire = at(&b, 10, None, 10);
        stored.merge_newer(refire.clone());
        assert_eq!(stored.starts_at, refire.starts_at);
        assert_eq!(stored.ends_at, None);
        assert_eq!(stored.received_at, refire.received_at);
        // A repeat of the firing episode keeps its first sighting.
        stored.merge_newer(at(&b, 10, None, 11));
        assert_eq!(stored.received_at, refire.received_at);
    }

    #[test]
    fn truncation_recomputes_common_labels() {
        let wa = |inst: &str, zone: &str| WebhookAlert {
            status: Status::Firing,
            labels: ls(&[("alertname", "X"), ("instance", inst), ("zone", zone)]),
            annotations: LabelSet::new(),
            starts_at: ZERO_TIME.into(),
            ends_at: ZERO_TIME.into(),
            generator_url: String::new(),
            fingerprint: String::new(),
        };
        let mut m = WebhookMessage::new(
            "team.ops",
            vec![wa("a", "z1"), wa("b", "z1"), wa("c", "z2")],
            ls(&[("alertname", "X")]),
            "http://am/",
            "{}:{}",
            "first notification",
        );
        assert_eq!(
            m.receiver, "team\\.ops",
            "receiver is regex-quoted like Alertmanager's"
        );
        assert_eq!(quote_meta("web-pager #1 & co~"), "web-pager #1 & co~");
        assert_eq!(
            quote_meta(r"a.b+c*d?e(f)g|h[i]j{k}l^m$n\o"),
            r"a\.b\+c\*d\?e\(f\)g\|h\[i\]j\{k\}l\^m\$n\\o"
        );
        assert_eq!(m.external_url, "http://am");
        assert!(!m.common_labels.contains_key("zone"));
        m.truncate(2);
        assert_eq!(m.truncated_alerts, 1);
        assert_eq!(m.common_labels.get("zone").map(String::as_str), Some("z1"));
    }

    #[test]
    fn notification_order_sorts_job_then_instance() {
        let mut v = [
            ls(&[("alertname", "x")]),
            ls(&[("job", "b"), ("instance", "1")]),
            ls(&[("job", "a"), ("instance", "2")]),
            ls(&[("job", "a"), ("instance", "1")]),
        ];
        v.sort_by(notification_order);
        assert_eq!(v[0].get("instance").map(String::as_str), Some("1"));
        assert_eq!(v[0].get("job").map(String::as_str), Some("a"));
        assert_eq!(v[2].get("job").map(String::as_str), Some("b"));
        assert!(!v[3].contains_key("job"));
    }
}
