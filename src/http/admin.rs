//! Admin API (`/admin/v1/*`, JSON): alerts, groups, notifications (history, dead letters,
//! replay), receivers (queue depth, limiter, last success/error, test send), status and
//! config reload.

use super::ApiError;
use crate::alert::{format_time, now, Alert, Fingerprint, LabelSet, Status};
use crate::matcher::parse_matchers;
use crate::store::{Commit, DeliveryState, DispatchOp, Precondition, StoreError};
use crate::App;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn status(State(app): State<Arc<App>>) -> Response {
    let groups = app.dispatcher.groups().await;
    let cfg = app.config();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": format_time(app.started_at),
        "uptime_seconds": (now() - app.started_at).whole_seconds(),
        "config_hash": app.config_hash(),
        "config_source": app.config_source(),
        "alerts_stored": app.store.alert_count(),
        "groups": groups.len(),
        "receivers": cfg.receivers.len(),
        "storage_bytes": app.store.disk_size(),
        "alert_record_bytes": app.store.alert_bytes(),
        "checkpoints": app.store.checkpoint_stats(),
        "ready": app.is_ready(),
        "store_error": app.store.failure(),
    }))
    .into_response()
}

#[derive(Deserialize)]
pub struct AlertQuery {
    filter: Option<String>,
    status: Option<String>,
    receiver: Option<String>,
}

#[derive(Serialize)]
struct AlertView {
    fingerprint: String,
    status: Status,
    labels: LabelSet,
    annotations: LabelSet,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: String,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    #[serde(rename = "receivedAt")]
    received_at: String,
    receivers: Vec<String>,
    #[serde(rename = "silencedBy", skip_serializing_if = "Vec::is_empty")]
    silenced_by: Vec<String>,
    #[serde(rename = "inhibitedBy", skip_serializing_if = "Vec::is_empty")]
    inhibited_by: Vec<String>,
    #[serde(rename = "mutedBy", skip_serializing_if = "Vec::is_empty")]
    muted_by: Vec<String>,
}

pub async fn alerts(State(app): State<Arc<App>>, Query(q): Query<AlertQuery>) -> Response {
    let matchers = match q.filter.as_deref().map(parse_matchers).transpose() {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => {
            return ApiError::new(StatusCode::BAD_REQUEST, format!("filter: {e}")).into_response()
        }
    };
    let want = match q.status.as_deref() {
        None | Some("") => None,
        Some("firing") => Some(Status::Firing),
        Some("resolved") => Some(Status::Resolved),
        Some(s) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("status: {s:?} is not firing or resolved"),
            )
            .into_response()
        }
    };
    let routing = app.routing();
    let store = app.store.clone();
    // A whole-tree scan: off the async runtime.
    let scan = tokio::task::spawn_blocking(move || {
        let t = now();
        let mut out = Vec::new();
        for a in store.all_alerts()? {
            let st = a.status_at(t);
            if want.is_some_and(|w| w != st)
                || !matchers.iter().all(|m| m.matches_labels(&a.labels))
            {
                continue;
            }
            let routes = routing.routes_for(&a);
            let mut receivers: Vec<String> = routes.iter().map(|r| r.receiver.clone()).collect();
            receivers.dedup();
            let why = if st == Status::Firing {
                let mut s = super::apiv2::suppression(&app, &a, t);
                s.muted_by = routing.muted_by_all(&routes, t);
                s
            } else {
                Default::default()
            };
            if q.receiver
                .as_deref()
                .is_some_and(|r| !receivers.iter().any(|x| x == r))
            {
                continue;
            }
            out.push(AlertView {
                fingerprint: a.fingerprint.to_string(),
                status: st,
                starts_at: format_time(a.starts_at),
                ends_at: a.ends_at.map(format_time),
                generator_url: a.generator_url,
                updated_at: format_time(a.updated_at),
                received_at: format_time(a.received_at),
                labels: a.labels,
                annotations: a.annotations,
                receivers,
                silenced_by: why.silenced_by,
                inhibited_by: why.inhibited_by,
                muted_by: why.muted_by,
            });
        }
        Ok::<_, StoreError>(out)
    });
    match scan.await {
        Ok(Ok(out)) => Json(out).into_response(),
        Ok(Err(e)) => ApiError::unavailable(e.to_string(), 5).into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Groups with why they or their alerts are suppressed: `mutedBy` (time intervals of the
/// group's route) and, per suppressed firing alert, `silencedBy` / `inhibitedBy`.
pub async fn groups(State(app): State<Arc<App>>) -> Response {
    let views = app.dispatcher.groups().await;
    let scan = tokio::task::spawn_blocking(move || {
        let t = now();
        let routing = app.routing();
        let mut out = Vec::with_capacity(views.len());
        for g in views {
            let muted_by = routing.route_muted_by(&g.route, t);
            let mut suppressed = BTreeMap::new();
            for fp in g.alerts.iter().filter_map(|f| Fingerprint::parse(f)) {
                if let Some(a) = app.store.alert(fp)? {
                    if a.resolved_at(t) {
                        continue;
                    }
                    let s = super::apiv2::suppression(&app, &a, t);
                    if s.suppressed() {
                        suppressed.insert(
                            fp.to_string(),
                            json!({"silencedBy": s.silenced_by, "inhibitedBy": s.inhibited_by}),
                        );
                    }
                }
            }
            let mut v = serde_json::to_value(&g).unwrap_or_default();
            v["mutedBy"] = json!(muted_by);
            v["suppressed"] = json!(suppressed);
            out.push(v);
        }
        Ok::<_, StoreError>(out)
    });
    match scan.await {
        Ok(Ok(out)) => Json(out).into_response(),
        Ok(Err(e)) => ApiError::unavailable(e.to_string(), 5).into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
pub struct NotificationQuery {
    state: Option<String>,
    receiver: Option<String>,
    integration: Option<String>,
    limit: Option<usize>,
}

pub async fn notifications(
    State(app): State<Arc<App>>,
    Query(q): Query<NotificationQuery>,
) -> Response {
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => match DeliveryState::parse(s) {
            Some(st) => Some(st),
            None => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("state: {s:?} is not one of pending, failed, delivered, merged, dead"),
                )
                .into_response()
            }
        },
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let store = app.store.clone();
    // A filtered scan may read the whole history: off the async runtime.
    let res = tokio::task::spawn_blocking(move || {
        store.notifications_where(
            limit,
            // the state is in the index: only matching notifications are read
            |s, _| state.is_none_or(|x| s == x),
            |n| {
                state.is_none_or(|s| n.state == s)
                    && q.receiver.as_deref().is_none_or(|r| n.receiver == r)
                    && q.integration.as_deref().is_none_or(|i| n.integration == i)
            },
        )
    })
    .await;
    match res {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => ApiError::unavailable(e.to_string(), 5).into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub async fn notification(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Response {
    match app.store.notification(id) {
        Ok(Some(n)) => Json(n).into_response(),
        Ok(None) => {
            ApiError::new(StatusCode::NOT_FOUND, format!("no notification {id}")).into_response()
        }
        Err(e) => ApiError::unavailable(e.to_string(), 5).into_response(),
    }
}

/// Replay a dead (or delivered) notification: back to pending, attempts and age reset.
/// The state change is a compare-and-swap in the store writer, so of concurrent replays
/// exactly one wins (`202`) and the others get `409`; the writer hands the winner to its
/// worker once it is durable, even if this client has gone.
pub async fn retry(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Response {
    let mut n = match app.store.notification(id) {
        Ok(Some(n)) => n,
        Ok(None) => {
            return ApiError::new(StatusCode::NOT_FOUND, format!("no notification {id}"))
                .into_response()
        }
        Err(e) => return ApiError::unavailable(e.to_string(), 5).into_response(),
    };
    if n.state.is_open() {
        return ApiError::new(
            StatusCode::CONFLICT,
            format!("notification {id} is already queued ({:?})", n.state),
        )
        .into_response();
    }
    if !app.hub.has_worker(&n.worker_key()) {
        return ApiError::new(
            StatusCode::CONFLICT,
            format!("integration {} is no longer configured", n.worker_key()),
        )
        .into_response();
    }
    let t = now();
    n.state = DeliveryState::Pending;
    n.attempts = 0;
    n.created_at = t;
    n.updated_at = t;
    n.last_error = None;
    n.delivered_at = None;
    let (hub, queued) = (app.hub.clone(), n.clone());
    let commit = Commit {
        dispatch: vec![DispatchOp::PutNotification(std::sync::Arc::new(n.clone()))],
        require: vec![Precondition::NotificationClosed(id)],
        ..Default::default()
    }
    .then(move |_| {
        hub.enqueue(queued);
    });
    match app.store.commit(commit).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(n)).into_response(),
        Err(StoreError::Conflict(m)) => ApiError::new(StatusCode::CONFLICT, m).into_response(),
        Err(e) => ApiError::unavailable(e.to_string(), 5).into_response(),
    }
}

pub async fn receivers(State(app): State<Arc<App>>) -> Response {
    let mut by: BTreeMap<String, Vec<crate::notify::WorkerStatus>> = BTreeMap::new();
    for r in &app.config().receivers {
        by.entry(r.name.value.clone()).or_default();
    }
    for s in app.hub.statuses() {
        by.entry(s.receiver.clone()).or_default().push(s);
    }
    let v: Vec<_> = by
        .into_iter()
        .map(|(name, integrations)| json!({ "name": name, "integrations": integrations }))
        .collect();
    Json(v).into_response()
}

/// Send a synthetic notification through every integration of a receiver.
pub async fn test_receiver(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    let cfg = app.config();
    let Some(r) = cfg.receiver(&name) else {
        return ApiError::new(StatusCode::NOT_FOUND, format!("unknown receiver {name:?}"))
            .into_response();
    };
    let t = now();
    let mut labels = LabelSet::new();
    labels.insert("alertname".into(), "AlertRouterTest".into());
    labels.insert("severity".into(), "none".into());
    let mut annotations = LabelSet::new();
    annotations.insert(
        "summary".into(),
        format!("Test notification for receiver {name} from alert-router"),
    );
    let a = Alert {
        fingerprint: Fingerprint::of(&labels),
        labels: labels.clone(),
        annotations,
        starts_at: t,
        ends_at: None,
        generator_url: String::new(),
        updated_at: t,
        received_at: t,
        targets: Default::default(),
        timeout: false,
        handoff: false,
        expires: false,
    };
    let group_key = format!("{{}}/test:{}", crate::matcher::label_set_string(&labels));
    let kinds = r.integrations();
    let mut commit = Commit::default();
    let mut made = Vec::new();
    for (kind, index) in kinds {
        let id = match app.store.next_id() {
            Ok(id) => id,
            Err(e) => return ApiError::unavailable(e.to_string(), 5).into_response(),
        };
        let msg = crate::alert::WebhookMessage::new(
            &name,
            vec![crate::alert::WebhookAlert::from_alert(&a, t)],
            labels.clone(),
            &cfg.external_url(),
            &group_key,
            "test notification",
        );
        let mut n = crate::store::Notification::pending(
            id,
            (&name, kind, index),
            msg,
            format!("<test.{id}@alert-router>"),
            t,
        );
        n.test = true;
        commit
            .dispatch
            .push(DispatchOp::PutNotification(std::sync::Arc::new(n.clone())));
        made.push(n);
    }
    let ids: Vec<u64> = made.iter().map(|n| n.id).collect();
    let hub = app.hub.clone();
    let commit = commit.then(move |_| {
        for n in made {
            hub.enqueue(n);
        }
    });
    if let Err(e) = app.store.commit(commit).await {
        return ApiError::unavailable(e.to_string(), 5).into_response();
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "receiver": name, "notifications": ids })),
    )
        .into_response()
}

/// How long `POST /-/reload` waits for the reload before answering that it is still
/// running (below the 30 s request timeout).
const RELOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Reload the configuration. The reload runs in a task of its own; the answer says how it
/// ended, or `202` if it is still running (waiting for in-flight deliveries of removed
/// integrations) — it then finishes on its own.
/// What `POST /admin/v1/receivers/{name}/render` takes: sample alerts in Alertmanager's
/// API v2 shape, or a matcher over the live alerts; neither = built-in samples.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RenderQuery {
    #[serde(default)]
    alerts: Option<serde_json::Value>,
    #[serde(default)]
    filter: Option<String>,
}

/// Most live alerts a render request renders.
const RENDER_MAX_ALERTS: usize = 1000;

/// Show, per integration of a receiver, exactly the request a notification would make
/// (method, URL with secrets redacted, headers, body) — without sending anything.
pub async fn render_receiver(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let cfg = app.config();
    let Some(r) = cfg.receiver(&name) else {
        return ApiError::new(StatusCode::NOT_FOUND, format!("unknown receiver {name:?}"))
            .into_response();
    };
    let q: RenderQuery = if body.iter().all(u8::is_ascii_whitespace) {
        RenderQuery::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(q) => q,
            Err(e) => {
                return ApiError::new(StatusCode::BAD_REQUEST, format!("body: {e}")).into_response()
            }
        }
    };
    let t = now();
    let alerts: Vec<Alert> = match (q.alerts, q.filter) {
        (Some(_), Some(_)) => {
            return ApiError::new(StatusCode::BAD_REQUEST, "set only one of alerts and filter")
                .into_response()
        }
        (Some(v), None) => {
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            match crate::alert::parse_postable_alerts(
                &bytes,
                t,
                &Default::default(),
                &cfg.ingest.limits(),
            ) {
                Ok(a) if a.is_empty() => {
                    return ApiError::new(StatusCode::BAD_REQUEST, "alerts: empty").into_response()
                }
                Ok(a) => a,
                Err(e) => {
                    return ApiError::new(StatusCode::BAD_REQUEST, format!("alerts: {}", e.0))
                        .into_response()
                }
            }
        }
        (None, Some(f)) => {
            let matchers = match parse_matchers(&f) {
                Ok(m) => m,
                Err(e) => {
                    return ApiError::new(StatusCode::BAD_REQUEST, format!("filter: {e}"))
                        .into_response()
                }
            };
            let store = app.store.clone();
            let scan = tokio::task::spawn_blocking(move || {
                store.all_alerts().map(|all| {
                    all.into_iter()
                        .filter(|a| matchers.iter().all(|m| m.matches_labels(&a.labels)))
                        .take(RENDER_MAX_ALERTS)
                        .collect::<Vec<_>>()
                })
            })
            .await;
            match scan {
                Ok(Ok(a)) if a.is_empty() => {
                    return ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("filter: no stored alert matches {f:?}"),
                    )
                    .into_response()
                }
                Ok(Ok(a)) => a,
                Ok(Err(e)) => return ApiError::unavailable(e.to_string(), 5).into_response(),
                Err(e) => {
                    return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                        .into_response()
                }
            }
        }
        (None, None) => crate::notify::sample_alerts(&name, t),
    };
    let mut out = Vec::new();
    for (kind, index) in r.integrations() {
        let key = crate::store::worker_key(&name, kind, index);
        let Some(notifier) = app.hub.notifier(&key) else {
            continue;
        };
        let n = crate::notify::preview((&name, kind, index), &alerts, &cfg.external_url(), t);
        out.push(match notifier.render(&n) {
            Ok(requests) => json!({"integration": kind, "index": index, "requests": requests}),
            Err(e) => json!({"integration": kind, "index": index, "error": e.to_string()}),
        });
    }
    Json(json!({ "receiver": name, "alerts": alerts.len(), "integrations": out })).into_response()
}

pub async fn reload(State(app): State<Arc<App>>) -> Response {
    match tokio::time::timeout(RELOAD_WAIT, app.spawn_reload()).await {
        Ok(Ok(Ok(()))) => {
            Json(json!({ "status": "success", "config_hash": app.config_hash() })).into_response()
        }
        Ok(Ok(Err(e))) => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("failed to reload config: {e}"),
        )
        .into_response(),
        Ok(Err(e)) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload task failed: {e}"),
        )
        .into_response(),
        Err(_) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "status": "running",
                "message": "reload still running; config_last_reload_successful and /admin/v1/status show when it is done",
            })),
        )
            .into_response(),
    }
}
