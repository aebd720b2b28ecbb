//! Alertmanager's API v2 (the read side and silences) on the router's listener, in
//! Alertmanager's JSON shapes, so `amtool`, Grafana and other Alertmanager clients work
//! unchanged: `GET /api/v2/alerts`, `GET /api/v2/alerts/groups`, silences
//! (`GET|POST /api/v2/silences`, `GET|DELETE /api/v2/silence/{id}`), `GET /api/v2/status`
//! and `GET /api/v2/receivers`. (`POST /api/v2/alerts` is ingest, see [`super::ingest`].)
//!
//! Errors are JSON strings, as Alertmanager sends them (its clients decode them as such).

use crate::alert::{now, Alert, Fingerprint, LabelSet};
use crate::matcher::{parse_matcher, Matcher};
use crate::silence::{is_uuid, PostableSilence, Silence, SilenceError, SilenceState};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use time::OffsetDateTime;

/// An error in Alertmanager's API shape: a JSON string body.
pub fn am_error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = (status, Json(Value::String(message.into()))).into_response();
    no_store(&mut r);
    r
}

fn no_store(r: &mut Response) {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn ok_json(v: Value) -> Response {
    let mut r = Json(v).into_response();
    no_store(&mut r);
    r
}

/// Alertmanager's timestamp form: RFC 3339 with milliseconds, the original offset kept.
pub fn am_time(t: Option<OffsetDateTime>) -> String {
    let Some(t) = t else {
        return "0001-01-01T00:00:00.000Z".to_string();
    };
    let off = t.offset();
    let zone = if off.is_utc() {
        "Z".to_string()
    } else {
        let (h, m, _) = off.as_hms();
        let sign = if off.is_negative() { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{zone}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Query parameters in order, repeated keys kept (`filter=a&filter=b`).
fn params(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A boolean query parameter as go-openapi binds it: absent or empty is `default`, one of
/// its true spellings is true and anything else is false (never an error: Alertmanager
/// answers `active=maybe` like `active=false`).
fn flag(params: &[(String, String)], name: &str, default: bool) -> bool {
    match params.iter().rev().find(|(k, _)| k == name) {
        None => default,
        Some((_, v)) if v.is_empty() => default,
        Some((_, v)) => matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "y" | "on" | "t" | "ok" | "enabled" | "checked" | "selected"
        ),
    }
}

fn filters(params: &[(String, String)]) -> Result<Vec<Matcher>, String> {
    params
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| parse_matcher(v).map_err(|e| format!("bad matcher format: {v}: {e}")))
        .collect()
}

/// Why an alert is suppressed right now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Suppression {
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<String>,
    pub muted_by: Vec<String>,
}

impl Suppression {
    pub fn suppressed(&self) -> bool {
        !self.silenced_by.is_empty() || !self.inhibited_by.is_empty() || !self.muted_by.is_empty()
    }

    fn json(&self) -> Value {
        json!({
            "inhibitedBy": self.inhibited_by,
            "silencedBy": self.silenced_by,
            "mutedBy": self.muted_by,
            "state": if self.suppressed() { "suppressed" } else { "active" },
        })
    }
}

/// What suppresses `a` at `t`: active silences, firing inhibiting alerts, and the time
/// intervals muting every route the alert takes (`muted_by` of one route when `route`
/// is given).
pub fn suppression(app: &App, a: &Alert, t: OffsetDateTime) -> Suppression {
    Suppression {
        silenced_by: app.silences.silenced_by(a.fingerprint, &a.labels, t),
        inhibited_by: app
            .dispatcher
            .inhibited_by(a.fingerprint, &a.labels, t)
            .map(|f| vec![f.to_string()])
            .unwrap_or_default(),
        muted_by: Vec::new(),
    }
}

/// Alertmanager's `gettableAlert`.
fn gettable_alert(a: &Alert, receivers: &[String], s: &Suppression) -> Value {
    let mut v = json!({
        "annotations": a.annotations,
        "endsAt": am_time(a.ends_at),
        "fingerprint": a.fingerprint.to_string(),
        "receivers": receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "startsAt": am_time(Some(a.starts_at)),
        "status": s.json(),
        "updatedAt": am_time(Some(a.updated_at)),
        "labels": a.labels,
    });
    if !a.generator_url.is_empty() {
        v["generatorURL"] = Value::String(a.generator_url.clone());
    }
    v
}

/// The filters `GET /api/v2/alerts` and `…/alerts/groups` share.
struct AlertFilter {
    active: bool,
    silenced: bool,
    inhibited: bool,
    muted: bool,
    matchers: Vec<Matcher>,
    receiver: Option<regex::Regex>,
}

impl AlertFilter {
    fn parse(raw: Option<&str>) -> Result<Self, String> {
        let p = params(raw);
        let receiver = match p.iter().rev().find(|(k, _)| k == "receiver") {
            Some((_, r)) => Some(
                regex::Regex::new(&format!("^(?:{r})$"))
                    .map_err(|e| format!("failed to parse receiver param: {e}"))?,
            ),
            None => None,
        };
        Ok(AlertFilter {
            active: flag(&p, "active", true),
            silenced: flag(&p, "silenced", true),
            inhibited: flag(&p, "inhibited", true),
            muted: flag(&p, "muted", true),
            matchers: filters(&p)?,
            receiver,
        })
    }

    /// Whether an alert (not resolved at `t`) with these receivers and this state is shown.
    fn keep(&self, a: &Alert, receivers: &[String], s: &Suppression, t: OffsetDateTime) -> bool {
        if let Some(re) = &self.receiver {
            if !receivers.iter().any(|r| re.is_match(r)) {
                return false;
            }
        }
        self.keep_state(a, s, t)
    }

    /// [`AlertFilter::keep`] without the receiver (which filters groups, not alerts, in
    /// `/api/v2/alerts/groups`).
    fn keep_state(&self, a: &Alert, s: &Suppression, t: OffsetDateTime) -> bool {
        if a.resolved_at(t) || !self.matchers.iter().all(|m| m.matches_labels(&a.labels)) {
            return false;
        }
        if !self.active && !s.suppressed() {
            return false;
        }
        if !self.silenced && !s.silenced_by.is_empty() {
            return false;
        }
        if !self.inhibited && !s.inhibited_by.is_empty() {
            return false;
        }
        true
    }
}

/// `GET /api/v2/alerts`.
pub async fn get_alerts(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response {
    let f = match AlertFilter::parse(q.as_deref()) {
        Ok(f) => f,
        Err(m) => return am_error(StatusCode::BAD_REQUEST, m),
    };
    let app2 = app.clone();
    let scan = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, String> {
        let t = now();
        let routing = app2.routing();
        let mut out: Vec<(Fingerprint, Value)> = Vec::new();
        for a in app2.store.all_alerts().map_err(|e| e.to_string())? {
            if a.resolved_at(t) {
                continue;
            }
            let routes = routing.routes_for(&a);
            let receivers: Vec<String> = routes.iter().map(|r| r.receiver.clone()).collect();
            // As Alertmanager: time intervals mute groups, not alerts, so this list never
            // shows `mutedBy` (`/api/v2/alerts/groups` does).
            let s = suppression(&app2, &a, t);
            if !f.keep(&a, &receivers, &s, t) {
                continue;
            }
            out.push((a.fingerprint, gettable_alert(&a, &receivers, &s)));
        }
        out.sort_by_key(|(fp, _)| *fp);
        Ok(out.into_iter().map(|(_, v)| v).collect())
    })
    .await;
    match scan {
        Ok(Ok(v)) => ok_json(Value::Array(v)),
        Ok(Err(e)) => am_error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => am_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/v2/alerts/groups`.
pub async fn get_groups(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response {
    let f = match AlertFilter::parse(q.as_deref()) {
        Ok(f) => f,
        Err(m) => return am_error(StatusCode::BAD_REQUEST, m),
    };
    let views = app.dispatcher.groups().await;
    let app2 = app.clone();
    let scan = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, String> {
        let t = now();
        let routing = app2.routing();
        // As Alertmanager: `receiver` selects groups by their receiver, the alert filters
        // select alerts (on silences and inhibitions; time intervals mute groups), and an
        // alert's `receivers` are those of the selected groups it is shown in.
        let mut kept: Vec<(crate::dispatch::GroupView, Vec<(Alert, Suppression)>)> = Vec::new();
        let mut receivers: std::collections::HashMap<Fingerprint, Vec<String>> =
            std::collections::HashMap::new();
        for g in views {
            if f.receiver
                .as_ref()
                .is_some_and(|re| !re.is_match(&g.receiver))
            {
                continue;
            }
            let group_muted = routing.route_muted_by(&g.route, t);
            if !f.muted && !group_muted.is_empty() {
                continue;
            }
            let mut alerts: Vec<(Alert, Suppression)> = Vec::new();
            for fp in &g.alerts {
                let Some(fp) = Fingerprint::parse(fp) else {
                    continue;
                };
                let Some(a) = app2.store.alert(fp).map_err(|e| e.to_string())? else {
                    continue;
                };
                let mut s = suppression(&app2, &a, t);
                if f.keep_state(&a, &s, t) {
                    s.muted_by = group_muted.clone();
                    receivers.entry(fp).or_default().push(g.receiver.clone());
                    alerts.push((a, s));
                }
            }
            if !alerts.is_empty() {
                kept.push((g, alerts));
            }
        }
        for r in receivers.values_mut() {
            r.sort();
        }
        let mut out: Vec<(LabelSet, String, Value)> = Vec::new();
        for (g, mut alerts) in kept {
            alerts.sort_by(|a, b| crate::alert::notification_order(&a.0.labels, &b.0.labels));
            let shown: Vec<Value> = alerts
                .iter()
                .map(|(a, s)| {
                    let r = receivers.get(&a.fingerprint).cloned().unwrap_or_default();
                    gettable_alert(a, &r, s)
                })
                .collect();
            let v = json!({
                "alerts": shown,
                "labels": g.labels,
                "receiver": {"name": g.receiver},
            });
            out.push((g.labels, g.receiver, v));
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Ok(out.into_iter().map(|(_, _, v)| v).collect())
    })
    .await;
    match scan {
        Ok(Ok(v)) => ok_json(Value::Array(v)),
        Ok(Err(e)) => am_error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => am_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Alertmanager's `gettableSilence`.
pub fn gettable_silence(s: &Silence, t: OffsetDateTime) -> Value {
    let mut v = json!({
        "id": s.id,
        "status": {"state": s.state_at(t).as_str()},
        "updatedAt": am_time(Some(s.updated_at)),
        "comment": s.comment,
        "createdBy": s.created_by,
        "endsAt": am_time(Some(s.ends_at)),
        "matchers": s.matchers,
        "startsAt": am_time(Some(s.starts_at)),
    });
    if !s.annotations.is_empty() {
        v["annotations"] = json!(s.annotations);
    }
    v
}

/// Alertmanager's order: active (ending first), pending (starting first), expired
/// (ended last first).
pub fn sort_silences(v: &mut [Silence], t: OffsetDateTime) {
    let rank = |s: &Silence| match s.state_at(t) {
        SilenceState::Active => 0,
        SilenceState::Pending => 1,
        SilenceState::Expired => 2,
    };
    v.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| match a.state_at(t) {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
}

/// `GET /api/v2/silences`: `filter` keeps silences that have a matcher identical to each
/// filter matcher (not label matching); `active`/`pending`/`expired` select states.
pub async fn get_silences(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response {
    let p = params(q.as_deref());
    let (matchers, active, pending, expired) = match (|| {
        Ok::<_, String>((
            filters(&p)?,
            flag(&p, "active", true),
            flag(&p, "pending", true),
            flag(&p, "expired", true),
        ))
    })() {
        Ok(x) => x,
        Err(m) => return am_error(StatusCode::BAD_REQUEST, m),
    };
    let t = now();
    let mut list: Vec<Silence> = app
        .silences
        .list()
        .into_iter()
        .filter(|s| match s.state_at(t) {
            SilenceState::Active => active,
            SilenceState::Pending => pending,
            SilenceState::Expired => expired,
        })
        .filter(|s| {
            matchers.iter().all(|f| {
                s.matchers.iter().any(|m| {
                    m.compile()
                        .is_ok_and(|c| c.name == f.name && c.op == f.op && c.value == f.value)
                })
            })
        })
        .collect();
    sort_silences(&mut list, t);
    ok_json(Value::Array(
        list.iter().map(|s| gettable_silence(s, t)).collect(),
    ))
}

pub fn silence_error(e: SilenceError) -> Response {
    match e {
        SilenceError::Invalid(m) => am_error(StatusCode::BAD_REQUEST, m),
        e @ SilenceError::NotFound(_) => am_error(StatusCode::NOT_FOUND, e.to_string()),
        SilenceError::Store(e) => {
            let mut r = am_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("silence not stored: {e}"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}

/// The shape of a `postableSilence` as go-openapi checks it before Alertmanager sees it:
/// every field optional here so that a wrong type (400) is told from a missing field (422).
#[derive(serde::Deserialize)]
struct SilenceShape {
    matchers: Option<Vec<MatcherShape>>,
    #[serde(rename = "startsAt", default, with = "time::serde::rfc3339::option")]
    starts_at: Option<OffsetDateTime>,
    #[serde(rename = "endsAt", default, with = "time::serde::rfc3339::option")]
    ends_at: Option<OffsetDateTime>,
    #[serde(rename = "createdBy")]
    created_by: Option<String>,
    comment: Option<String>,
}

#[derive(serde::Deserialize)]
struct MatcherShape {
    name: Option<String>,
    value: Option<String>,
    #[serde(rename = "isRegex")]
    is_regex: Option<bool>,
}

/// Alertmanager's schema check of a silence body: malformed JSON or a wrong type is 400,
/// a missing required field (`matchers` with at least one item, `startsAt`, `endsAt`,
/// `createdBy`, `comment`; per matcher `name`, `value`, `isRegex`) is 422.
fn check_silence_shape(body: &[u8]) -> Result<(), (StatusCode, String)> {
    let shape: SilenceShape = serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("parsing silence body failed: {e}"),
        )
    })?;
    let missing = |field: &str| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field} in body is required"),
        )
    };
    let Some(matchers) = shape.matchers else {
        return Err(missing("matchers"));
    };
    if shape.starts_at.is_none() {
        return Err(missing("startsAt"));
    }
    if shape.ends_at.is_none() {
        return Err(missing("endsAt"));
    }
    if shape.created_by.is_none() {
        return Err(missing("createdBy"));
    }
    if shape.comment.is_none() {
        return Err(missing("comment"));
    }
    if matchers.is_empty() {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "matchers in body should have at least 1 items".into(),
        ));
    }
    for (i, m) in matchers.iter().enumerate() {
        for (field, present) in [
            ("name", m.name.is_some()),
            ("value", m.value.is_some()),
            ("isRegex", m.is_regex.is_some()),
        ] {
            if !present {
                return Err(missing(&format!("matchers.{i}.{field}")));
            }
        }
    }
    Ok(())
}

/// `POST /api/v2/silences`: create, or update when `id` is set.
pub async fn post_silences(State(app): State<Arc<App>>, body: Bytes) -> Response {
    if let Err((status, message)) = check_silence_shape(&body) {
        return am_error(status, message);
    }
    let p = match serde_json::from_slice::<PostableSilence>(&body) {
        Ok(p) => p,
        Err(e) => return am_error(StatusCode::BAD_REQUEST, format!("invalid silence: {e}")),
    };
    match app.silences.upsert(p, now()).await {
        Ok(id) => ok_json(json!({ "silenceID": id })),
        Err(e) => silence_error(e),
    }
}

/// `GET /api/v2/silence/{id}`.
pub async fn get_silence(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    if !is_uuid(&id) {
        return am_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("silenceID in path must be of type uuid: {id:?}"),
        );
    }
    match app.silences.get(&id) {
        Some(s) => ok_json(gettable_silence(&s, now())),
        None => am_error(StatusCode::NOT_FOUND, format!("silence {id} not found")),
    }
}

/// `DELETE /api/v2/silence/{id}`: expire it.
pub async fn delete_silence(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    if !is_uuid(&id) {
        return am_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("silenceID in path must be of type uuid: {id:?}"),
        );
    }
    match app.silences.expire(&id, now()).await {
        Ok(()) => {
            let mut r = StatusCode::OK.into_response();
            no_store(&mut r);
            r
        }
        Err(e) => silence_error(e),
    }
}

/// `GET /api/v2/receivers`.
pub async fn get_receivers(State(app): State<Arc<App>>) -> Response {
    let cfg = app.config();
    ok_json(Value::Array(
        cfg.receivers
            .iter()
            .map(|r| json!({ "name": r.name.value }))
            .collect(),
    ))
}

/// `GET /api/v2/status`: version, uptime, cluster (always disabled: one process, no
/// gossip) and the configuration as Alertmanager-compatible YAML (see
/// [`crate::config::Config::alertmanager_yaml`]), secrets redacted.
pub async fn get_status(State(app): State<Arc<App>>) -> Response {
    let cfg = app.config();
    let original = alertmanager_yaml(&cfg);
    ok_json(json!({
        "cluster": {"status": "disabled", "peers": []},
        "config": {"original": original},
        "uptime": am_time(Some(app.started_at)),
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": env!("CARGO_PKG_VERSION"),
        },
    }))
}

/// Top-level sections of the configuration that Alertmanager's own loader understands.
const AM_SECTIONS: &[&str] = &[
    "route",
    "inhibit_rules",
    "time_intervals",
    "mute_time_intervals",
    "templates",
];

/// The configuration as Alertmanager 0.25's loader accepts it (what `amtool config show`
/// prints and `amtool config routes` parses): the routing tree, inhibition rules, time
/// intervals and templates as configured, receivers by name only (integration settings,
/// secrets and the router's own sections are not shown here: `/admin/v1/status` and the
/// config file have them).
pub fn alertmanager_yaml(cfg: &crate::config::Config) -> String {
    let full = serde_json::to_value(cfg).unwrap_or(Value::Null);
    let mut out = serde_json::Map::new();
    for key in AM_SECTIONS {
        if let Some(v) = full.get(*key) {
            let v = prune(v.clone());
            if !v.is_null() {
                out.insert((*key).to_string(), v);
            }
        }
    }
    out.insert(
        "receivers".into(),
        Value::Array(
            cfg.receivers
                .iter()
                .map(|r| json!({ "name": r.name.value }))
                .collect(),
        ),
    );
    serde_saphyr::to_string(&Value::Object(out)).unwrap_or_default()
}

/// Drop nulls, empty maps and empty lists (unset optional keys), recursively.
fn prune(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .into_iter()
                .map(|(k, v)| (k, prune(v)))
                .filter(|(_, v)| !v.is_null())
                .collect();
            if m.is_empty() {
                Value::Null
            } else {
                Value::Object(m)
            }
        }
        Value::Array(a) => {
            let a: Vec<Value> = a.into_iter().map(prune).filter(|v| !v.is_null()).collect();
            if a.is_empty() {
                Value::Null
            } else {
                Value::Array(a)
            }
        }
        other => other,
    }
}

/// `/api/v1/*`: removed from Alertmanager long ago.
pub async fn api_v1() -> Response {
    (
        StatusCode::GONE,
        Json(json!({
            "status": "deprecated",
            "error": "The Alertmanager v1 API is not served; use the equivalent route of the v2 API",
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_have_milliseconds_and_keep_the_offset() {
        assert_eq!(
            am_time(Some(datetime!(2024-05-01 10:00:00.5 UTC))),
            "2024-05-01T10:00:00.500Z"
        );
        assert_eq!(
            am_time(Some(datetime!(2024-05-01 12:00:00 +02:00))),
            "2024-05-01T12:00:00.000+02:00"
        );
        assert_eq!(
            am_time(Some(datetime!(2024-05-01 12:00:00 -05:30))),
            "2024-05-01T12:00:00.000-05:30"
        );
        assert_eq!(am_time(None), "0001-01-01T00:00:00.000Z");
    }

    #[test]
    fn flags_and_filters() {
        let p = params(Some(
            "active=false&filter=a%3D%22b%22&filter=c%21~d&silenced=1",
        ));
        assert!(!flag(&p, "active", true));
        assert!(flag(&p, "silenced", false));
        assert!(flag(&p, "inhibited", true));
        let f = filters(&p).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].name, "c");
        // go-openapi: unknown spellings are false, an empty value is the default
        assert!(!flag(&params(Some("active=maybe")), "active", true));
        assert!(flag(&params(Some("active=")), "active", true));
        assert!(flag(&params(Some("active=ON")), "active", false));
        assert!(filters(&params(Some("filter=%7Ba%3Db%7D"))).is_err());
    }
}
