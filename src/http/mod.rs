//! HTTP surface (axum): ingest, admin API, health, readiness, reload and metrics. The
//! handlers call into the core; the core never sees HTTP types.

pub mod admin;
pub mod apiv2;
pub mod auth;
pub mod ingest;
pub mod listener;
pub mod silences;

use crate::App;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;

/// A JSON error answer: `{"error": "..."}` with the given status.
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            retry_after: Some(retry_after),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Build the whole router.
pub fn router(app: Arc<App>) -> Router {
    let request_timeout = app.config().server.request_timeout.0;
    let admin = Router::new()
        .route("/admin/v1/status", get(admin::status))
        .route("/admin/v1/alerts", get(admin::alerts))
        .route("/admin/v1/groups", get(admin::groups))
        .route("/admin/v1/notifications", get(admin::notifications))
        .route("/admin/v1/notifications/{id}", get(admin::notification))
        .route("/admin/v1/notifications/{id}/retry", post(admin::retry))
        .route("/admin/v1/receivers", get(admin::receivers))
        .route(
            "/admin/v1/receivers/{name}/test",
            post(admin::test_receiver),
        )
        .route(
            "/admin/v1/receivers/{name}/render",
            post(admin::render_receiver),
        )
        .route("/-/reload", post(admin::reload))
        .route(
            "/admin/v1/silences",
            get(silences::list).post(silences::create),
        )
        .route(
            "/admin/v1/silences/{id}",
            axum::routing::delete(silences::expire),
        )
        .route(
            "/admin/v1/alerts/{fingerprint}/ack",
            post(silences::ack_alert),
        )
        .route("/admin/v1/groups/{group}/ack", post(silences::ack_group))
        .route("/api/v2/alerts", get(apiv2::get_alerts))
        .route("/api/v2/alerts/groups", get(apiv2::get_groups))
        .route(
            "/api/v2/silences",
            get(apiv2::get_silences).post(apiv2::post_silences),
        )
        .route(
            "/api/v2/silence/{id}",
            get(apiv2::get_silence).delete(apiv2::delete_silence),
        )
        .route("/api/v2/status", get(apiv2::get_status))
        .route("/api/v2/receivers", get(apiv2::get_receivers))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            admin_auth,
        ));
    Router::new()
        .route("/webhook", post(ingest::webhook))
        .route("/webhook/{receiver}", post(ingest::webhook_receiver))
        .route("/api/v2/alerts", post(ingest::api_v2_alerts))
        .route("/api/v1/{*rest}", axum::routing::any(apiv2::api_v1))
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/metrics", get(metrics))
        .merge(admin)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        // Bounds reading the body too: a client trickling it is cut off.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .with_state(app)
}

async fn admin_auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let cfg = app.config();
    match auth::check_admin(&cfg.admin, req.headers(), peer) {
        auth::AuthResult::Ok => next.run(req).await,
        auth::AuthResult::Unauthorized(m) => {
            ApiError::new(StatusCode::UNAUTHORIZED, m).into_response()
        }
        auth::AuthResult::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m).into_response(),
    }
}

/// Liveness: fails when a core task has died (e.g. a bug panicked the dispatcher), so an
/// orchestrator restarts the process and state is rebuilt from the store.
async fn healthy(State(app): State<Arc<App>>) -> Response {
    if app.dispatcher.running() {
        "OK".into_response()
    } else {
        ApiError::unavailable("dispatcher stopped; restart the process", 1).into_response()
    }
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.is_ready() {
        "OK".into_response()
    } else {
        ApiError::unavailable("not ready: store or workers not running", 5).into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    app.metrics
        .store_failed
        .set(i64::from(app.store.failure().is_some()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}
