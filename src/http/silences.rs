//! Admin API for silences (`/admin/v1/silences`) and "acknowledge until resolved"
//! (`POST /admin/v1/alerts/{fingerprint}/ack`, `POST /admin/v1/groups/{group}/ack`): an
//! acknowledgement is a silence bound to the alerts firing when it was made, so it mutes
//! exactly those and expires by itself once all of them have resolved (a new alert in
//! the group still notifies).

use super::apiv2::{gettable_silence, sort_silences};
use super::ApiError;
use crate::alert::{now, Alert, Fingerprint, LabelSet};
use crate::silence::{PostableSilence, SilenceError, SilenceMatcher, SilenceState};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use time::OffsetDateTime;

/// How long an acknowledgement lasts at most when the request gives no `endsAt` (a
/// safety net: it normally ends when its alerts resolve).
const DEFAULT_ACK_DAYS: i64 = 7;

fn error(e: SilenceError) -> Response {
    match e {
        SilenceError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
        e @ SilenceError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        SilenceError::Store(e) => ApiError::unavailable(format!("silence not stored: {e}"), 5),
    }
    .into_response()
}

#[derive(Deserialize)]
pub struct ListQuery {
    state: Option<String>,
}

/// `GET /admin/v1/silences[?state=active|pending|expired]`: Alertmanager's silence shape
/// plus `fingerprints` for acknowledgements.
pub async fn list(State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Response {
    let want = match q.state.as_deref() {
        None | Some("") => None,
        Some("active") => Some(SilenceState::Active),
        Some("pending") => Some(SilenceState::Pending),
        Some("expired") => Some(SilenceState::Expired),
        Some(s) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("state: {s:?} is not one of active, pending, expired"),
            )
            .into_response()
        }
    };
    let t = now();
    let mut v: Vec<_> = app
        .silences
        .list()
        .into_iter()
        .filter(|s| want.is_none_or(|w| s.state_at(t) == w))
        .collect();
    sort_silences(&mut v, t);
    Json(
        v.iter()
            .map(|s| {
                let mut j = gettable_silence(s, t);
                if !s.fingerprints.is_empty() {
                    j["fingerprints"] = json!(s.fingerprints);
                }
                j
            })
            .collect::<Vec<Value>>(),
    )
    .into_response()
}

/// `POST /admin/v1/silences`: Alertmanager's `postableSilence` (create, or update with `id`).
pub async fn create(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let p: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return ApiError::new(StatusCode::BAD_REQUEST, format!("invalid silence: {e}"))
                .into_response()
        }
    };
    match app.silences.upsert(p, now()).await {
        Ok(id) => Json(json!({ "silenceID": id })).into_response(),
        Err(e) => error(e),
    }
}

/// `DELETE /admin/v1/silences/{id}`: expire it.
pub async fn expire(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match app.silences.expire(&id, now()).await {
        Ok(()) => Json(json!({ "silenceID": id, "state": "expired" })).into_response(),
        Err(e) => error(e),
    }
}

/// Body of an acknowledgement.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    #[serde(rename = "createdBy")]
    created_by: String,
    comment: String,
    /// Latest end (default: 7 days); it ends earlier when its alerts resolve.
    #[serde(rename = "endsAt", default, with = "time::serde::rfc3339::option")]
    ends_at: Option<OffsetDateTime>,
}

/// Errors are the message of a 400 answer.
fn parse_ack(body: &[u8]) -> Result<AckRequest, String> {
    let r: AckRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid acknowledgement: {e}"))?;
    for (field, v) in [("createdBy", &r.created_by), ("comment", &r.comment)] {
        if v.trim().is_empty() {
            return Err(format!("{field}: must not be empty"));
        }
    }
    Ok(r)
}

/// Store an acknowledgement of `alerts` (all firing) with `matchers`.
async fn acknowledge(
    app: &App,
    req: AckRequest,
    matchers: Vec<SilenceMatcher>,
    alerts: Vec<Fingerprint>,
) -> Response {
    let t = now();
    let p = PostableSilence {
        id: None,
        matchers,
        starts_at: Some(t),
        ends_at: req
            .ends_at
            .unwrap_or(t + time::Duration::days(DEFAULT_ACK_DAYS)),
        created_by: req.created_by,
        comment: req.comment,
        annotations: [("acknowledged".to_string(), "until resolved".to_string())].into(),
    };
    match app.silences.upsert_bound(p, alerts.clone(), t).await {
        Ok(id) => Json(json!({ "silenceID": id, "fingerprints": alerts })).into_response(),
        Err(e) => error(e),
    }
}

fn equal_matchers(labels: &LabelSet) -> Vec<SilenceMatcher> {
    labels
        .iter()
        .map(|(k, v)| SilenceMatcher {
            name: k.clone(),
            value: v.clone(),
            is_regex: false,
            is_equal: true,
        })
        .collect()
}

/// `POST /admin/v1/alerts/{fingerprint}/ack`.
pub async fn ack_alert(
    State(app): State<Arc<App>>,
    Path(fp): Path<String>,
    body: Bytes,
) -> Response {
    let req = match parse_ack(&body) {
        Ok(r) => r,
        Err(m) => return ApiError::new(StatusCode::BAD_REQUEST, m).into_response(),
    };
    let Some(fp) = Fingerprint::parse(&fp) else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("fingerprint: {fp:?} is not 16 hex digits"),
        )
        .into_response();
    };
    let a = match app.store.alert(fp) {
        Ok(Some(a)) => a,
        Ok(None) => {
            return ApiError::new(StatusCode::NOT_FOUND, format!("no alert {fp}")).into_response()
        }
        Err(e) => return ApiError::unavailable(e.to_string(), 5).into_response(),
    };
    if a.resolved_at(now()) {
        return ApiError::new(
            StatusCode::CONFLICT,
            format!("alert {fp} has resolved already"),
        )
        .into_response();
    }
    acknowledge(&app, req, equal_matchers(&a.labels), vec![fp]).await
}

/// `POST /admin/v1/groups/{group}/ack` (`group` is the `id` of `/admin/v1/groups`): binds
/// the alerts of the group firing now; matchers are the labels they share.
pub async fn ack_group(
    State(app): State<Arc<App>>,
    Path(group): Path<String>,
    body: Bytes,
) -> Response {
    let req = match parse_ack(&body) {
        Ok(r) => r,
        Err(m) => return ApiError::new(StatusCode::BAD_REQUEST, m).into_response(),
    };
    let Some(g) = app
        .dispatcher
        .groups()
        .await
        .into_iter()
        .find(|g| g.id == group)
    else {
        return ApiError::new(StatusCode::NOT_FOUND, format!("no group {group:?}")).into_response();
    };
    let t = now();
    let mut firing: Vec<Alert> = Vec::new();
    for fp in g.alerts.iter().filter_map(|f| Fingerprint::parse(f)) {
        match app.store.alert(fp) {
            Ok(Some(a)) if !a.resolved_at(t) => firing.push(a),
            Ok(_) => {}
            Err(e) => return ApiError::unavailable(e.to_string(), 5).into_response(),
        }
    }
    if firing.is_empty() {
        return ApiError::new(
            StatusCode::CONFLICT,
            format!("group {group:?} has no firing alert to acknowledge"),
        )
        .into_response();
    }
    let mut common: LabelSet = firing[0].labels.clone();
    for a in &firing[1..] {
        common.retain(|k, v| a.labels.get(k) == Some(v));
    }
    if common.is_empty() {
        return ApiError::new(
            StatusCode::CONFLICT,
            format!("the alerts of group {group:?} share no label; acknowledge them one by one"),
        )
        .into_response();
    }
    let fps = firing.iter().map(|a| a.fingerprint).collect();
    acknowledge(&app, req, equal_matchers(&common), fps).await
}
