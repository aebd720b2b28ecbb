//! Test harness: start the real router in-process on a random port with its own store,
//! talk to it over HTTP, and stand up local HTTP servers in place of chat APIs.
#![allow(dead_code)]

mod procs;
// not every test binary starts processes
#[allow(unused_imports)]
pub use procs::*;

use alert_router::{start, ConfigSource, Running};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use serde_json::{json, Value};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A router running in this process.
pub struct TestApp {
    pub running: Option<Running>,
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl TestApp {
    /// Start with `yaml` (which must not set `listen` or `storage`; the harness adds them).
    pub async fn start(yaml: &str) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        TestApp::start_in(dir, yaml).await
    }

    /// Start on an existing directory (to restart on the same store).
    pub async fn start_in(dir: tempfile::TempDir, yaml: &str) -> TestApp {
        init();
        let config_path = dir.path().join("alert-router.yml");
        std::fs::write(&config_path, full_config(dir.path(), yaml, "127.0.0.1:0"))
            .expect("write config");
        let running = start(ConfigSource::File(config_path.clone()))
            .await
            .unwrap_or_else(|e| panic!("router failed to start: {e}"));
        let base = format!("http://{}", running.addr);
        TestApp {
            running: Some(running),
            base,
            client: reqwest::Client::new(),
            dir,
            config_path,
        }
    }

    /// Graceful stop; returns the directory so a test can restart on the same store.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        self.dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.expect("request")
    }

    /// Status of an empty-bodied request (`GET` or `POST`) to `path`.
    pub async fn status(&self, method: reqwest::Method, path: &str) -> u16 {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
    }

    /// Notifications in the admin API, newest first.
    pub async fn notifications(&self, query: &str) -> Vec<Value> {
        self.get_json(&format!("/admin/v1/notifications?limit=1000&{query}"))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// The YAML the harness actually runs: `listen` and `storage` prepended.
pub fn full_config(dir: &std::path::Path, yaml: &str, listen: &str) -> String {
    format!(
        "listen: {listen}\nexternal_url: http://alert-router.test\nstorage:\n  path: {}\n{yaml}",
        dir.join("data").display()
    )
}

/// Write [`full_config`] for `yaml` (listening on `port`, storing under `dir`) to
/// `dir/c.yml`; returns its path.
pub fn write_config(dir: &std::path::Path, yaml: &str, port: u16) -> std::path::PathBuf {
    let cfg = dir.join("c.yml");
    std::fs::write(&cfg, full_config(dir, yaml, &format!("127.0.0.1:{port}")))
        .expect("write config");
    cfg
}

/// A JSON label set as a sorted map (non-string values shown as `<non-string>`).
pub fn label_map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("<non-string>").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// RFC 3339 form of `t`, as clients post times.
pub fn ts(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

/// The current time (UTC).
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// Poll `f` until it returns `Some`, or panic with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One alert of a webhook payload.
pub fn alert(labels: &[(&str, &str)], status: &str) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let now = time::OffsetDateTime::now_utc();
    let ends = if status == "resolved" {
        alert_router::alert::format_time(now)
    } else {
        "0001-01-01T00:00:00Z".to_string()
    };
    json!({
        "status": status,
        "labels": labels,
        "annotations": {"summary": "something is wrong", "description": "a longer description"},
        "startsAt": alert_router::alert::format_time(now - time::Duration::minutes(1)),
        "endsAt": ends,
        "generatorURL": "http://prometheus.test/graph?g0.expr=up",
    })
}

/// An Alertmanager webhook (version 4) body holding `alerts`.
pub fn webhook(alerts: Vec<Value>) -> Value {
    let firing = alerts.iter().any(|a| a["status"] == "firing");
    json!({
        "receiver": "upstream",
        "status": if firing { "firing" } else { "resolved" },
        "alerts": alerts,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test:9093",
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0
    })
}

/// A request received by a [`MockServer`].
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: axum::http::Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status the server answered (or is answering, after its delay) with.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// A scripted response: status, extra headers, body, and how long to wait before
/// answering (the request is recorded in `received` when it arrives, before the delay).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: &str) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    /// Answer only after `d` (a slow destination).
    pub fn with_delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

type Check = Arc<dyn Fn(&Received) -> Result<(), String> + Send + Sync>;

/// The serving task of a [`MockServer`] and the switch that shuts it down.
type Serving = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

/// A local HTTP server standing in for a chat API: records every request (any method), answers from a
/// script (then with the default reply), and runs `check` on each body — a failed check
/// answers 400 and is recorded in `violations`. [`MockServer::stop`] and
/// [`MockServer::restart`] take it down (connections refused) and back up on the same port.
#[derive(Clone)]
pub struct MockServer {
    pub addr: std::net::SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub script: Arc<Mutex<std::collections::VecDeque<Reply>>>,
    pub default_reply: Arc<Mutex<Reply>>,
    pub violations: Arc<Mutex<Vec<String>>>,
    check: Option<Check>,
    serving: Arc<Mutex<Option<Serving>>>,
}

impl MockServer {
    pub async fn start(default_reply: Reply, check: Option<Check>) -> MockServer {
        let m = MockServer {
            addr: "127.0.0.1:0".parse().expect("addr"),
            received: Arc::default(),
            script: Arc::default(),
            default_reply: Arc::new(Mutex::new(default_reply)),
            violations: Arc::default(),
            check,
            serving: Arc::default(),
        };
        let addr = m.listen().await;
        MockServer { addr, ..m }
    }

    /// Serve on `self.addr`; returns the address bound.
    async fn listen(&self) -> std::net::SocketAddr {
        let state = self.clone();
        let app = axum::Router::new().fallback(any(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: Bytes| {
                let state = state.clone();
                async move {
                    let mut r = Received {
                        at: Instant::now(),
                        method,
                        path: uri.to_string(),
                        headers,
                        body,
                        status: 0,
                    };
                    let violation = state.check.as_ref().and_then(|c| c(&r).err());
                    if let Some(v) = violation {
                        r.status = 400;
                        state.received.lock().unwrap().push(r);
                        state.violations.lock().unwrap().push(v.clone());
                        return (StatusCode::BAD_REQUEST, HeaderMap::new(), v);
                    }
                    let reply = state
                        .script
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or_else(|| state.default_reply.lock().unwrap().clone());
                    r.status = reply.status;
                    state.received.lock().unwrap().push(r);
                    if !reply.delay.is_zero() {
                        tokio::time::sleep(reply.delay).await;
                    }
                    let mut h = HeaderMap::new();
                    for (k, v) in &reply.headers {
                        h.insert(
                            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                            v.parse().unwrap(),
                        );
                    }
                    (StatusCode::from_u16(reply.status).unwrap(), h, reply.body)
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        *self.serving.lock().unwrap() = Some((tx, task));
        addr
    }

    /// Stop serving: finish the requests in flight, close every connection and the
    /// listener, so that clients get "connection refused" until [`MockServer::restart`].
    pub async fn stop(&self) {
        let serving = self.serving.lock().unwrap().take();
        if let Some((tx, task)) = serving {
            let _ = tx.send(());
            let _ = task.await;
        }
    }

    /// Serve again on the same port, keeping what was received.
    pub async fn restart(&self) {
        self.listen().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn push(&self, r: Reply) {
        self.script.lock().unwrap().push_back(r);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }
}

/// A free TCP port on loopback (for servers started as separate processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Wait until `GET {base}/-/ready` answers 200.
pub async fn wait_ready(base: &str, what: &str) {
    let client = reqwest::Client::new();
    wait_for(Duration::from_secs(30), what, || {
        let c = client.clone();
        let url = format!("{base}/-/ready");
        async move {
            c.get(url)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        }
    })
    .await;
}

/// Value of one sample line of the router's `/metrics` (0 when absent).
/// The router's `/metrics` text.
pub async fn metrics_at(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

pub async fn metric(base: &str, sample: &str) -> f64 {
    let text = metrics_at(base).await;
    text.lines()
        .find(|l| l.starts_with(sample) && l[sample.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

// --- Flush ticks and notifications (shared by the dedup and suppression tests) ---

pub const WAIT: Duration = Duration::from_secs(15);

/// Wait until the group of `alertname` has been flushed `ticks` more times, so that
/// "nothing more was sent" is checked after the dispatcher really looked again.
pub async fn wait_ticks(app: &TestApp, alertname: &str, ticks: u32) {
    for _ in 0..ticks {
        let before = group_last_flush(app, alertname).await;
        wait_for(WAIT, "a group flush tick", || {
            let before = before.clone();
            async move {
                let now = group_last_flush(app, alertname).await;
                (now != before).then_some(())
            }
        })
        .await;
    }
}

pub async fn group_last_flush(app: &TestApp, alertname: &str) -> Option<String> {
    let groups = app.get_json("/admin/v1/groups").await;
    groups
        .as_array()?
        .iter()
        .find(|g| g["labels"]["alertname"] == alertname)
        .and_then(|g| g["last_flush"].as_str().map(str::to_string))
}

pub async fn sent(app: &TestApp) -> Vec<Value> {
    let mut v = app.notifications("").await;
    v.reverse();
    v
}

pub async fn wait_count(app: &TestApp, n: usize) -> Vec<Value> {
    wait_for(WAIT, &format!("{n} notifications"), || async {
        let v = sent(app).await;
        (v.len() >= n).then_some(v)
    })
    .await
}

// --- Webhook notifications as a destination sees them (crash and outage tests) ---

/// One alert of a webhook notification, as far as "same message or not" goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertContent {
    pub status: String,
    pub starts_at: time::OffsetDateTime,
    /// `None` for Go's zero time (a firing alert).
    pub ends_at: Option<time::OffsetDateTime>,
}

/// A webhook notification's status and its alerts by label set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationContent {
    pub status: String,
    pub alerts:
        std::collections::BTreeMap<std::collections::BTreeMap<String, String>, AlertContent>,
}

/// Parse an RFC 3339 time as the router prints it.
pub fn parse_time(s: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("time {s:?}: {e}"))
}

impl NotificationContent {
    /// The content of an Alertmanager webhook (v4) body.
    pub fn of(body: &Value) -> NotificationContent {
        let alerts = body["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .map(|a| {
                let ends = a["endsAt"].as_str().expect("endsAt");
                (
                    label_map(&a["labels"]),
                    AlertContent {
                        status: a["status"].as_str().expect("status").to_string(),
                        starts_at: parse_time(a["startsAt"].as_str().expect("startsAt")),
                        ends_at: (ends != alert_router::alert::ZERO_TIME).then(|| parse_time(ends)),
                    },
                )
            })
            .collect();
        NotificationContent {
            status: body["status"].as_str().expect("status").to_string(),
            alerts,
        }
    }

    /// Why `self` (received after `prev`, same group) carries an older state of one of
    /// its alerts than `prev` did, if it does: an earlier `startsAt`, firing again with
    /// the same `startsAt` after a resolve, or an earlier end.
    pub fn backwards_from(&self, prev: &NotificationContent) -> Option<String> {
        for (labels, a) in &self.alerts {
            let Some(p) = prev.alerts.get(labels) else {
                continue;
            };
            let older = a.starts_at < p.starts_at
                || (a.starts_at == p.starts_at
                    && ((p.status == "resolved" && a.status == "firing")
                        || (a.status == "resolved"
                            && p.status == "resolved"
                            && a.ends_at < p.ends_at)));
            if older {
                return Some(format!("{labels:?}: {p:?} then {a:?}"));
            }
        }
        None
    }
}

/// The webhook notifications a sink received, per value of the group label `label`
/// (from `groupLabels`), in arrival order, with the status the sink answered.
pub fn notifications_by_group(
    reqs: &[Received],
    label: &str,
) -> std::collections::BTreeMap<String, Vec<(Received, NotificationContent)>> {
    let mut out: std::collections::BTreeMap<String, Vec<_>> = Default::default();
    for r in reqs {
        let body = r.json();
        let group = body["groupLabels"][label]
            .as_str()
            .unwrap_or_else(|| panic!("groupLabels.{label} missing: {body}"))
            .to_string();
        out.entry(group)
            .or_default()
            .push((r.clone(), NotificationContent::of(&body)));
    }
    out
}

/// GET `path` of the router at `base` as JSON (admin endpoints answer loopback clients).
pub async fn get_json_at(client: &reqwest::Client, base: &str, path: &str) -> Value {
    let r = client
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.expect("json")
}

/// Open notifications (`pending` or `failed`) of the router at `base`.
pub async fn open_notifications(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let mut open = Vec::new();
    for state in ["pending", "failed"] {
        let v = get_json_at(
            client,
            base,
            &format!("/admin/v1/notifications?limit=10000&state={state}"),
        )
        .await;
        open.extend(v.as_array().cloned().unwrap_or_default());
    }
    open
}
