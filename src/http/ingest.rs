//! Ingest: `POST /webhook` (Alertmanager webhook v4, routed by our tree),
//! `POST /webhook/{receiver}` (straight to one receiver) and `POST /api/v2/alerts`
//! (Alertmanager's API, for Prometheus). Answers 2xx only after the alerts are flushed
//! to disk; 503 + `Retry-After` on overload or storage failure (never 429, which
//! Alertmanager does not retry).

use super::auth::{check_ingest, AuthResult};
use super::ApiError;
use crate::alert::{self, Alert, Status, Targets};
use crate::store::StoreError;
use crate::App;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

enum Kind {
    Webhook,
    ApiV2,
}

pub async fn webhook(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let targets = Targets {
        routed: true,
        receivers: Default::default(),
    };
    handle(app, headers, body, targets, Kind::Webhook).await
}

pub async fn webhook_receiver(
    State(app): State<Arc<App>>,
    Path(receiver): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !app.routing().has_receiver(&receiver) {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown receiver {receiver:?}"),
        )
        .into_response();
    }
    let targets = Targets {
        routed: false,
        receivers: [receiver].into(),
    };
    handle(app, headers, body, targets, Kind::Webhook).await
}

pub async fn api_v2_alerts(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let targets = Targets {
        routed: true,
        receivers: Default::default(),
    };
    handle(app, headers, body, targets, Kind::ApiV2).await
}

async fn handle(
    app: Arc<App>,
    headers: HeaderMap,
    body: Body,
    targets: Targets,
    kind: Kind,
) -> Response {
    let started = std::time::Instant::now();
    let cfg = app.config();
    let reject = |status: StatusCode, msg: String| {
        app.metrics
            .ingest_rejected
            .get_or_create(&crate::metrics::labels(&[("code", status.as_str())]))
            .inc();
        ApiError::new(status, msg).into_response()
    };
    match check_ingest(cfg.ingest.auth.as_ref(), &headers) {
        AuthResult::Ok => {}
        AuthResult::Unauthorized(m) | AuthResult::Forbidden(m) => {
            return reject(StatusCode::UNAUTHORIZED, m.to_string());
        }
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ctype.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return reject(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Type {ctype:?}: only application/json is accepted"),
        );
    }
    let limit = cfg.ingest.max_body_bytes;
    let too_large = || format!("request body larger than ingest.max_body_bytes ({limit} bytes)");
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return reject(StatusCode::PAYLOAD_TOO_LARGE, too_large());
        }
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            let too_big = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if too_big {
                reject(StatusCode::PAYLOAD_TOO_LARGE, too_large())
            } else {
                reject(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read request body: {e}"),
                )
            };
        }
    };
    let t = alert::now();
    // API v2 accepts partially (as Alertmanager does): valid alerts are stored, the answer
    // is still 400 naming the invalid ones.
    let mut invalid: Vec<String> = Vec::new();
    let parsed = match kind {
        Kind::Webhook => alert::parse_webhook(&bytes, t, &targets, &cfg.ingest.limits()),
        Kind::ApiV2 => {
            alert::parse_postable_alerts_partial(&bytes, t, &targets, &cfg.ingest.limits()).map(
                |(mut v, errors)| {
                    invalid = errors;
                    let timeout = time::Duration::try_from(cfg.global.resolve_timeout.0)
                        .unwrap_or(time::Duration::minutes(5));
                    for a in &mut v {
                        if a.ends_at.is_none() {
                            a.ends_at = Some(t + timeout);
                            a.timeout = true;
                        }
                    }
                    v
                },
            )
        }
    };
    let mut alerts: Vec<Alert> = match parsed {
        Ok(a) => a,
        Err(e) => {
            app.metrics.alerts_invalid.inc();
            return reject(StatusCode::BAD_REQUEST, e.0);
        }
    };
    if !invalid.is_empty() {
        app.metrics.alerts_invalid.inc_by(invalid.len() as u64);
    }
    if matches!(kind, Kind::Webhook) {
        let ttl = cfg
            .ingest
            .webhook_firing_ttl
            .and_then(|d| time::Duration::try_from(d.0).ok());
        for a in &mut alerts {
            a.handoff = true;
            if let (Some(ttl), None) = (ttl, a.ends_at) {
                a.ends_at = t.checked_add(ttl);
                a.timeout = a.ends_at.is_some();
                a.expires = a.ends_at.is_some();
            }
        }
    }
    let n = alerts.len();
    let (mut firing, mut resolved) = (0u64, 0u64);
    for a in &alerts {
        match a.status_at(t) {
            Status::Firing => firing += 1,
            Status::Resolved => resolved += 1,
        }
    }
    if n > 0 {
        // The writer hands the merged alerts to the dispatcher once they are durable, in
        // commit order, whether or not this client is still waiting for the answer.
        let dispatcher = app.dispatcher.clone();
        let backlog = dispatcher.backlog();
        let stored = if backlog > cfg.ingest.max_pending_alerts {
            Err(StoreError::Overloaded(backlog))
        } else {
            app.store
                .ingest(alerts, move |merged| dispatcher.alerts(merged))
                .await
        };
        match stored {
            Ok(()) => {}
            Err(StoreError::Overloaded(waiting)) => {
                app.metrics
                    .ingest_rejected
                    .get_or_create(&crate::metrics::labels(&[("code", "503")]))
                    .inc();
                return ApiError::unavailable(
                    format!("overloaded: {waiting} alerts waiting to be stored; retry later"),
                    5,
                )
                .into_response();
            }
            Err(e) => {
                // a failed store is reported once per interval where it is probed, not
                // once per refused request
                if !matches!(e, StoreError::Failed(_)) {
                    tracing::error!(error = %e, "ingest: storing alerts failed");
                }
                app.metrics
                    .ingest_rejected
                    .get_or_create(&crate::metrics::labels(&[("code", "503")]))
                    .inc();
                return ApiError::unavailable(format!("alerts not stored: {e}"), 10)
                    .into_response();
            }
        }
    }
    let m = &app.metrics;
    m.alerts_received
        .get_or_create(&crate::metrics::labels(&[("status", "firing")]))
        .inc_by(firing);
    m.alerts_received
        .get_or_create(&crate::metrics::labels(&[("status", "resolved")]))
        .inc_by(resolved);
    m.ingest_ack_latency
        .observe(started.elapsed().as_secs_f64());
    if !invalid.is_empty() {
        let total = n + invalid.len();
        return reject(
            StatusCode::BAD_REQUEST,
            format!(
                "{} of {total} alerts invalid (the {n} valid ones were stored): {}",
                invalid.len(),
                invalid.join("; ")
            ),
        );
    }
    (
        StatusCode::OK,
        Json(serde_json::json!({ "status": "success", "alerts": n })),
    )
        .into_response()
}
