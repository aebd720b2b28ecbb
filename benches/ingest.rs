//! Ingest benchmark: the real release `alert-router` binary, side by side with Alertmanager.
//!
//! What it measures, for the two workloads of `shared/reference/performance.md`
//! (A: few groups, `group_by: [alertname]`, 20 alert names; B: one group per alert,
//! `group_by: [alertname, instance]`; every alert distinct, with a fresh `instance` label):
//!
//! * memory: VmRSS / VmHWM of the server after loading `BENCH_RSS_ALERTS` (100,000) distinct
//!   active alerts in 100-alert posts, and the router's store size on disk
//!   (`storage_bytes` of `GET /admin/v1/status`);
//! * closed-loop maximum throughput with 100-alert and with 1-alert posts over `BENCH_CONNS`
//!   (20) keep-alive HTTP/1.1 connections for `BENCH_SECONDS` (10 s): alerts/s acknowledged
//!   with 200, p50/p99/max client-side ack latency per request, errors (non-200 or transport);
//! * open-loop fixed rate: `BENCH_OPEN_RATE` (1,000) payloads/s of 1 alert for
//!   `BENCH_OPEN_SECONDS` (10 s). Sends are scheduled on a timer and latency is measured from
//!   the scheduled send time, so a slow server is not let off by coordinated omission.
//!
//! The router gets Alertmanager webhook v4 payloads on `POST /webhook` (its ack means "flushed
//! to sled"); Alertmanager (`/usr/bin/prometheus-alertmanager`, Debian package
//! `prometheus-alertmanager`, in memory only) gets the same alerts as postable alerts on
//! `POST /api/v2/alerts`. Each figure comes from a freshly started server with an empty store,
//! router and Alertmanager measured one after the other, test by test, in the same run.
//!
//! Notifications: both servers have one `webhook_configs` receiver pointing at a tiny sink in
//! this process that answers 200 to everything. Group timers follow performance.md: A has
//! `group_wait: 30s` (no group becomes due during a phase: pure ingest), B has
//! `group_wait: 1s, group_interval: 1s` (groups flush while alerts keep arriving, so B also
//! carries the dispatch load). `BENCH_GROUP_WAIT=1h` sets both timers of both workloads, for
//! pure ingest everywhere. The "sink" column counts the webhooks the sink received.
//!
//! The server's CPU use (from `/proc/<pid>/stat`) and this process's (the load generator and
//! the sink) are reported too: on a 2-core machine the client competes with the server, and
//! other work on the machine makes every figure noisy, so compare ratios within one run.
//!
//! Run (about 4–5 minutes with Alertmanager on 2 cores):
//!
//! ```text
//! cargo bench --bench ingest
//! BENCH_QUICK=1 cargo bench --bench ingest          # ~1 minute: 3 s phases, 20k alerts
//! BENCH_SECONDS=5 BENCH_WORKLOADS=B BENCH_ALERTMANAGER=off cargo bench --bench ingest
//! ```
//!
//! Environment: `BENCH_QUICK=1`, `BENCH_SECONDS`, `BENCH_WARMUP_SECONDS` (1), `BENCH_CONNS`,
//! `BENCH_OPEN_RATE`, `BENCH_OPEN_SECONDS`, `BENCH_RSS_ALERTS`, `BENCH_TESTS`
//! (`memory,closed100,closed1,open`), `BENCH_SETTLE_SECONDS` (2,
//! pause before reading memory), `BENCH_WORKLOADS` (`A,B`), `BENCH_GROUP_WAIT`,
//! `BENCH_ALERTMANAGER` (a path, or `off`), `BENCH_SERVER_LOGS=1` (let the servers log to this
//! terminal instead of /dev/null), `BENCH_WEBHOOK_RATE_LIMIT` (e.g. `1000/1s`: the router's
//! `rate_limit` on the sink receiver; its default for webhooks is 100/s, Alertmanager has none),
//! `BENCH_ROUTER_CONFIG` (YAML appended at the top level of the router's config, e.g.
//! `ingest: {max_pending_alerts: 1000000}`; not `listen`, `storage` or `route`, which it sets). Without `--bench` (as under `cargo test --benches`) it runs
//! a few-second smoke version against the router only.
//!
//! Both servers are killed when the benchmark ends, panics or gets Ctrl-C.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::time::sleep_until;

/// (alertname, job, severity, summary) of the 20 alert names.
const ALERT_NAMES: [(&str, &str, &str, &str); 20] = [
    (
        "KubePodCrashLooping",
        "kube-state-metrics",
        "warning",
        "Pod is crash looping.",
    ),
    (
        "KubePodNotReady",
        "kube-state-metrics",
        "warning",
        "Pod has been in a non-ready state for more than 15 minutes.",
    ),
    (
        "KubeDeploymentReplicasMismatch",
        "kube-state-metrics",
        "warning",
        "Deployment has not matched the expected number of replicas.",
    ),
    (
        "KubeContainerWaiting",
        "kube-state-metrics",
        "warning",
        "Pod container waiting longer than 1 hour.",
    ),
    (
        "KubeJobFailed",
        "kube-state-metrics",
        "warning",
        "Job failed to complete.",
    ),
    (
        "KubeHpaMaxedOut",
        "kube-state-metrics",
        "warning",
        "HPA is running at max replicas.",
    ),
    (
        "KubePersistentVolumeFillingUp",
        "kubelet",
        "critical",
        "PersistentVolume is filling up.",
    ),
    (
        "KubeletTooManyPods",
        "kubelet",
        "info",
        "Kubelet is running at capacity.",
    ),
    (
        "CPUThrottlingHigh",
        "kubelet",
        "info",
        "Processes experience elevated CPU throttling.",
    ),
    (
        "KubeMemoryOvercommit",
        "kube-state-metrics",
        "warning",
        "Cluster has overcommitted memory resource requests.",
    ),
    (
        "NodeFilesystemSpaceFillingUp",
        "node-exporter",
        "warning",
        "Filesystem is predicted to run out of space within the next 24 hours.",
    ),
    (
        "NodeFilesystemAlmostOutOfSpace",
        "node-exporter",
        "critical",
        "Filesystem has less than 5% space left.",
    ),
    (
        "NodeHighNumberConntrackEntriesUsed",
        "node-exporter",
        "warning",
        "Number of conntrack are getting close to the limit.",
    ),
    (
        "NodeNetworkReceiveErrs",
        "node-exporter",
        "warning",
        "Network interface is reporting many receive errors.",
    ),
    (
        "NodeClockNotSynchronising",
        "node-exporter",
        "warning",
        "Clock not synchronising.",
    ),
    (
        "NodeMemoryMajorPagesFaults",
        "node-exporter",
        "warning",
        "Memory major page faults are occurring at very high rate.",
    ),
    (
        "TargetDown",
        "prometheus",
        "warning",
        "One or more targets are unreachable.",
    ),
    (
        "PrometheusRuleFailures",
        "prometheus",
        "critical",
        "Prometheus is failing rule evaluations.",
    ),
    (
        "AlertmanagerFailedToSendAlerts",
        "alertmanager",
        "warning",
        "An Alertmanager instance failed to send notifications.",
    ),
    (
        "EtcdHighNumberOfFailedGRPCRequests",
        "etcd",
        "warning",
        "etcd cluster has a high number of failed gRPC requests.",
    ),
];

const NAMESPACES: [&str; 8] = [
    "payments",
    "checkout",
    "search",
    "monitoring",
    "ingress",
    "billing",
    "identity",
    "catalog",
];

/// Every alert of the run gets the next number: its `instance` and `pod` labels.
static ALERT_SEQ: AtomicU64 = AtomicU64::new(0);
/// Every post gets the next number: its alert name and namespace.
static POST_SEQ: AtomicU64 = AtomicU64::new(0);
/// Servers still running, for the Ctrl-C handler.
static CHILD_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const HZ: f64 = 100.0; // USER_HZ of /proc/<pid>/stat on Linux

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    A,
    B,
}

impl Workload {
    fn group_by(self) -> &'static str {
        match self {
            Workload::A => "[alertname]",
            Workload::B => "[alertname, instance]",
        }
    }

    /// (group_wait, group_interval) as in performance.md.
    fn timers(self) -> (&'static str, &'static str) {
        match self {
            Workload::A => ("30s", "5m"),
            Workload::B => ("1s", "1s"),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Workload::A => "A: few groups",
            Workload::B => "B: group per alert",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Router,
    Alertmanager,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Router => "alert-router",
            Kind::Alertmanager => "Alertmanager",
        }
    }

    fn ingest_path(self) -> &'static str {
        match self {
            Kind::Router => "/webhook",
            Kind::Alertmanager => "/api/v2/alerts",
        }
    }
}

struct Settings {
    bench_mode: bool,
    quick: bool,
    seconds: f64,
    warmup: f64,
    conns: usize,
    open_rate: f64,
    open_seconds: f64,
    rss_alerts: u64,
    settle: f64,
    workloads: Vec<Workload>,
    alertmanager: Option<PathBuf>,
    alertmanager_note: String,
    group_wait: Option<String>,
    server_logs: bool,
    router_extra: Option<String>,
    webhook_rate_limit: Option<String>,
    /// Which tests to run: memory, closed100, closed1, open.
    tests: Vec<String>,
}

fn env_str(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_f64(name: &str, default: f64) -> f64 {
    match env_str(name) {
        Some(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        None => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let bench_mode = std::env::args().any(|a| a == "--bench");
        let quick = env_str("BENCH_QUICK").is_some_and(|v| v != "0");
        // (seconds, warmup, open seconds, open rate, rss alerts, settle)
        let d = if !bench_mode {
            (0.5, 0.2, 0.5, 200.0, 2_000.0, 0.2)
        } else if quick {
            (3.0, 0.5, 3.0, 1_000.0, 20_000.0, 1.0)
        } else {
            (10.0, 1.0, 10.0, 1_000.0, 100_000.0, 2.0)
        };
        let workloads = env_str("BENCH_WORKLOADS")
            .unwrap_or_else(|| if bench_mode { "A,B" } else { "A" }.into())
            .split(',')
            .map(|w| match w.trim() {
                "A" | "a" => Workload::A,
                "B" | "b" => Workload::B,
                other => panic!("BENCH_WORKLOADS: unknown workload {other:?} (use A, B or A,B)"),
            })
            .collect();
        let (alertmanager, alertmanager_note) = match env_str("BENCH_ALERTMANAGER") {
            Some(v) if v == "off" || v == "0" => (None, "skipped (BENCH_ALERTMANAGER=off)".into()),
            Some(p) => {
                let p = PathBuf::from(p);
                if p.exists() {
                    (Some(p), String::new())
                } else {
                    (None, format!("skipped: {} does not exist", p.display()))
                }
            }
            None if !bench_mode => (None, "skipped in smoke mode (no --bench)".into()),
            None => {
                let p = PathBuf::from("/usr/bin/prometheus-alertmanager");
                if p.exists() {
                    (Some(p), String::new())
                } else {
                    (
                        None,
                        "skipped: /usr/bin/prometheus-alertmanager not installed \
                         (Debian package prometheus-alertmanager)"
                            .into(),
                    )
                }
            }
        };
        Settings {
            bench_mode,
            quick,
            seconds: env_f64("BENCH_SECONDS", d.0),
            warmup: env_f64("BENCH_WARMUP_SECONDS", d.1),
            conns: env_f64("BENCH_CONNS", 20.0).max(1.0) as usize,
            open_seconds: env_f64("BENCH_OPEN_SECONDS", d.2),
            open_rate: env_f64("BENCH_OPEN_RATE", d.3).max(1.0),
            rss_alerts: env_f64("BENCH_RSS_ALERTS", d.4) as u64,
            settle: env_f64("BENCH_SETTLE_SECONDS", d.5),
            workloads,
            alertmanager,
            alertmanager_note,
            group_wait: env_str("BENCH_GROUP_WAIT"),
            server_logs: env_str("BENCH_SERVER_LOGS").is_some_and(|v| v != "0"),
            router_extra: env_str("BENCH_ROUTER_CONFIG"),
            tests: {
                let all = ["memory", "closed100", "closed1", "open"];
                let t: Vec<String> = env_str("BENCH_TESTS")
                    .unwrap_or_else(|| all.join(","))
                    .split(',')
                    .map(|t| t.trim().to_string())
                    .collect();
                if let Some(bad) = t.iter().find(|t| !all.contains(&t.as_str())) {
                    panic!("BENCH_TESTS: unknown test {bad:?} (use {})", all.join(","));
                }
                t
            },
            webhook_rate_limit: env_str("BENCH_WEBHOOK_RATE_LIMIT"),
        }
    }

    fn wants(&self, test: &str) -> bool {
        self.tests.iter().any(|t| t == test)
    }

    fn kinds(&self) -> Vec<Kind> {
        let mut k = vec![Kind::Router];
        if self.alertmanager.is_some() {
            k.push(Kind::Alertmanager);
        }
        k
    }

    fn timers(&self, wl: Workload) -> (String, String) {
        match &self.group_wait {
            Some(gw) => (gw.clone(), gw.clone()),
            None => {
                let (w, i) = wl.timers();
                (w.into(), i.into())
            }
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// `startsAt` of every alert: one minute before the bench started, like a rule that fired.
fn starts_at() -> Arc<str> {
    let t = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format time")
        .into()
}

/// One post of `n` distinct alerts, shaped like Alertmanager's own webhook (router) or like
/// Prometheus' postable alerts (Alertmanager API v2). All alerts of a post share the alert
/// name and namespace (as one upstream group would); `instance` and `pod` are fresh per alert.
fn payload(kind: Kind, n: usize, starts_at: &str) -> Bytes {
    let post = POST_SEQ.fetch_add(1, Ordering::Relaxed);
    let first = ALERT_SEQ.fetch_add(n as u64, Ordering::Relaxed);
    let (name, job, severity, summary) = ALERT_NAMES[(post % 20) as usize];
    let ns = NAMESPACES[((post / 20) % NAMESPACES.len() as u64) as usize];
    let slug = name.to_ascii_lowercase();
    let cluster = "prod-eu-1";
    let runbook = format!("https://runbooks.prometheus-operator.dev/runbooks/{slug}");
    let mut s = String::with_capacity(n * 760 + 700);
    match kind {
        Kind::Router => s.push_str(r#"{"receiver":"upstream","status":"firing","alerts":["#),
        Kind::Alertmanager => s.push('['),
    }
    for i in 0..n as u64 {
        let seq = first + i;
        if i > 0 {
            s.push(',');
        }
        let ip = format!(
            "10.{}.{}.{}:{}",
            (seq >> 16) & 255,
            (seq >> 8) & 255,
            seq & 255,
            9100 + (seq >> 24)
        );
        let pod = format!("{ns}-api-7d9f8b6c4-{seq:07x}");
        if kind == Kind::Router {
            s.push_str(r#"{"status":"firing","#);
        } else {
            s.push('{');
        }
        let _ = write!(
            s,
            concat!(
                r#""labels":{{"alertname":"{name}","cluster":"{cluster}","instance":"{ip}","job":"{job}","#,
                r#""namespace":"{ns}","pod":"{pod}","severity":"{severity}"}},"#,
                r#""annotations":{{"description":"{name} on {ns}/{pod} ({ip}): the condition has held for more than 5 minutes (reason: \"CrashLoopBackOff\").","#,
                r#""runbook_url":"{runbook}","summary":"{summary}"}},"#,
                r#""startsAt":"{starts}","#
            ),
            name = name,
            cluster = cluster,
            ip = ip,
            job = job,
            ns = ns,
            pod = pod,
            severity = severity,
            runbook = runbook,
            summary = summary,
            starts = starts_at,
        );
        if kind == Kind::Router {
            s.push_str(r#""endsAt":"0001-01-01T00:00:00Z","#);
        }
        let _ = write!(
            s,
            r#""generatorURL":"http://prometheus-k8s.monitoring.svc:9090/graph?g0.expr=ALERTS%7Balertname%3D%22{name}%22%7D&g0.tab=1"}}"#
        );
    }
    match kind {
        Kind::Router => {
            let _ = write!(
                s,
                concat!(
                    r#"],"groupLabels":{{"alertname":"{name}"}},"#,
                    r#""commonLabels":{{"alertname":"{name}","cluster":"{cluster}","job":"{job}","namespace":"{ns}","severity":"{severity}"}},"#,
                    r#""commonAnnotations":{{"runbook_url":"{runbook}","summary":"{summary}"}},"#,
                    r#""externalURL":"http://alertmanager.monitoring.svc:9093","version":"4","#,
                    r#""groupKey":"{{}}:{{alertname=\"{name}\"}}","truncatedAlerts":0}}"#
                ),
                name = name,
                cluster = cluster,
                job = job,
                ns = ns,
                severity = severity,
                runbook = runbook,
                summary = summary,
            );
        }
        Kind::Alertmanager => s.push(']'),
    }
    Bytes::from(s)
}

// ---------------------------------------------------------------------------------------------
// HTTP client: one hyper HTTP/1.1 keep-alive connection per load-generator task

struct Conn {
    port: u16,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    fn new(port: u16) -> Conn {
        Conn {
            port,
            host: HeaderValue::from_str(&format!("127.0.0.1:{port}")).expect("host header"),
            sender: None,
        }
    }

    async fn connect(&mut self) -> Result<(), String> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Send one request; answers (status, body). A failed connection is replaced next time.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone());
        if !body.is_empty() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let sender = self.sender.as_mut().expect("connected");
        let exchange = async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e.to_string())
            }
            Err(_) => {
                self.sender = None;
                Err(format!("no answer within {REQUEST_TIMEOUT:?}"))
            }
        }
    }
}

async fn get(port: u16, path: &str) -> Result<(u16, Bytes), String> {
    Conn::new(port).send(Method::GET, path, Bytes::new()).await
}

// ---------------------------------------------------------------------------------------------
// Webhook sink: answers 200 to everything, counts requests

struct Sink {
    port: u16,
    hits: Arc<AtomicU64>,
}

fn start_sink() -> Sink {
    let hits = Arc::new(AtomicU64::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let counter = hits.clone();
    std::thread::Builder::new()
        .name("webhook-sink".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("sink runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind sink");
                tx.send(listener.local_addr().expect("sink addr").port())
                    .expect("report sink port");
                let app = axum::Router::new()
                    .fallback(move |_body: Bytes| {
                        let counter = counter.clone();
                        async move {
                            counter.fetch_add(1, Ordering::Relaxed);
                            "ok"
                        }
                    })
                    .layer(axum::extract::DefaultBodyLimit::disable());
                let _ = axum::serve(listener, app).await;
            });
        })
        .expect("spawn sink thread");
    let port = rx.recv().expect("sink port");
    Sink { port, hits }
}

// ---------------------------------------------------------------------------------------------
// Servers under test

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A server subprocess; killed when dropped (also while unwinding from a panic).
struct Server {
    kind: Kind,
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(mut pids) = CHILD_PIDS.lock() {
            pids.retain(|p| *p != pid);
        }
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn start(kind: Kind, wl: Workload, s: &Settings, sink: &Sink) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let (group_wait, group_interval) = s.timers(wl);
        let route = format!(
            "route:\n  receiver: sink\n  group_by: {}\n  group_wait: {group_wait}\n  \
             group_interval: {group_interval}\n  repeat_interval: 4h\n\
             receivers:\n  - name: sink\n    webhook_configs:\n      - url: 'http://127.0.0.1:{}/hook'\n",
            wl.group_by(),
            sink.port
        );
        // The router's own knobs: a webhook rate limit (default 10/s) and extra top-level keys.
        let mut router_route = route.clone();
        if let Some(rl) = &s.webhook_rate_limit {
            let (messages, per) = rl.split_once('/').unwrap_or((rl.as_str(), "1s"));
            let _ = writeln!(
                router_route,
                "        rate_limit: {{messages: {messages}, per: {per}}}"
            );
        }
        if let Some(extra) = &s.router_extra {
            let _ = writeln!(router_route, "{extra}");
        }
        let config = dir.path().join("config.yml");
        let mut cmd = match kind {
            Kind::Router => {
                std::fs::write(
                    &config,
                    format!(
                        "listen: 127.0.0.1:{port}\nexternal_url: http://127.0.0.1:{port}\n\
                         storage:\n  path: {}\n{router_route}",
                        dir.path().join("data").display()
                    ),
                )
                .expect("write router config");
                let mut c = Command::new(env!("CARGO_BIN_EXE_alert-router"));
                c.arg("serve")
                    .arg("--config")
                    .arg(&config)
                    .arg("--log-level")
                    .arg("warn");
                c
            }
            Kind::Alertmanager => {
                std::fs::write(&config, &route).expect("write alertmanager config");
                let mut c = Command::new(s.alertmanager.as_ref().expect("alertmanager path"));
                c.arg(format!("--config.file={}", config.display()))
                    .arg(format!(
                        "--storage.path={}",
                        dir.path().join("am").display()
                    ))
                    .arg("--cluster.listen-address=")
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg("--log.level=warn");
                c
            }
        };
        cmd.stdin(Stdio::null());
        if !s.server_logs {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.name()));
        CHILD_PIDS.lock().expect("pids").push(child.id());
        let mut server = Server {
            kind,
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "{} exited during startup ({status}); rerun with BENCH_SERVER_LOGS=1",
                    kind.name()
                );
            }
            if let Ok((200, _)) = get(port, "/-/ready").await {
                break;
            }
            if Instant::now() > deadline {
                panic!("{} not ready after 30 s on port {port}", kind.name());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Active alerts and bytes on disk as the server reports them.
    async fn counts(&self) -> (Option<u64>, Option<u64>) {
        match self.kind {
            Kind::Router => {
                let Ok((200, body)) = get(self.port, "/admin/v1/status").await else {
                    return (None, None);
                };
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                (v["alerts_stored"].as_u64(), v["storage_bytes"].as_u64())
            }
            Kind::Alertmanager => {
                let Ok((200, body)) = get(self.port, "/metrics").await else {
                    return (None, None);
                };
                let text = String::from_utf8_lossy(&body);
                // Alerts not flushed yet are "unprocessed", not "active": count every state.
                let active = text
                    .lines()
                    .filter(|l| l.starts_with("alertmanager_alerts{"))
                    .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
                    .map(|v| v as u64)
                    .reduce(|a, b| a + b);
                (active, None)
            }
        }
    }
}

/// CPU seconds (user + system) used so far by process `pid` ("self" for this one).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 3, utime 14, stime 15.
    (ticks(11) + ticks(12)) / HZ
}

// ---------------------------------------------------------------------------------------------
// Measurements

#[derive(Default)]
struct Stats {
    requests: u64,
    errors: u64,
    alerts: u64,
    /// Latency per request, in microseconds.
    lat: Vec<u64>,
    elapsed: Duration,
    server_cpu: f64,
    bench_cpu: f64,
    sink_hits: u64,
    first_error: Option<String>,
}

impl Stats {
    fn record(&mut self, r: Result<(u16, Bytes), String>, latency: Duration, alerts: usize) {
        self.requests += 1;
        self.lat.push(latency.as_micros() as u64);
        match r {
            Ok((200, _)) => self.alerts += alerts as u64,
            Ok((code, body)) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| {
                    format!(
                        "{code}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    )
                });
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn merge(&mut self, o: Stats) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.alerts += o.alerts;
        self.lat.extend(o.lat);
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    fn finish(&mut self) {
        self.lat.sort_unstable();
    }

    /// Quantile in milliseconds (`lat` must be sorted).
    fn q_ms(&self, q: f64) -> f64 {
        if self.lat.is_empty() {
            return f64::NAN;
        }
        let i = ((self.lat.len() as f64 * q).ceil() as usize).clamp(1, self.lat.len()) - 1;
        self.lat[i] as f64 / 1000.0
    }

    fn rate(&self) -> f64 {
        self.alerts as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// CPU use of the server and of this process over a window.
struct CpuWindow {
    pid: String,
    server: f64,
    bench: f64,
    hits: u64,
}

impl CpuWindow {
    fn start(server: &Server, sink: &Sink) -> CpuWindow {
        let pid = server.pid().to_string();
        CpuWindow {
            server: cpu_seconds(&pid),
            bench: cpu_seconds("self"),
            hits: sink.hits.load(Ordering::Relaxed),
            pid,
        }
    }

    fn finish(self, st: &mut Stats, sink: &Sink) {
        let secs = st.elapsed.as_secs_f64().max(1e-9);
        st.server_cpu = (cpu_seconds(&self.pid) - self.server) / secs;
        st.bench_cpu = (cpu_seconds("self") - self.bench) / secs;
        st.sink_hits = sink.hits.load(Ordering::Relaxed) - self.hits;
    }
}

/// Every connection posts `per_post` alerts, waits for the answer, and posts again, for
/// warm-up + `seconds`; only requests sent after the warm-up are counted.
async fn closed_loop(
    server: &Server,
    sink: &Sink,
    per_post: usize,
    s: &Settings,
    starts: &Arc<str>,
) -> Stats {
    let warm_end = Instant::now() + secs(s.warmup);
    let end = warm_end + secs(s.seconds);
    let mut tasks = Vec::new();
    for _ in 0..s.conns {
        let (port, kind, starts) = (server.port, server.kind, starts.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(port);
            let mut st = Stats::default();
            loop {
                if Instant::now() >= end {
                    break;
                }
                let body = payload(kind, per_post, &starts);
                let t0 = Instant::now();
                let r = c.send(Method::POST, kind.ingest_path(), body).await;
                let t1 = Instant::now();
                let failed = r.is_err();
                if t0 >= warm_end {
                    st.record(r, t1 - t0, per_post);
                }
                if failed {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            st
        }));
    }
    sleep_until(warm_end.into()).await;
    let cpu = CpuWindow::start(server, sink);
    let mut total = Stats::default();
    for t in tasks {
        total.merge(t.await.expect("load task"));
    }
    total.elapsed = warm_end.elapsed();
    cpu.finish(&mut total, sink);
    total.finish();
    total
}

/// Fixed-rate 1-alert posts spread over the connections; latency from the scheduled send time.
async fn open_loop(server: &Server, sink: &Sink, s: &Settings, starts: &Arc<str>) -> Stats {
    let total = (s.open_rate * s.open_seconds).round() as u64;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut tasks = Vec::new();
    for _ in 0..s.conns {
        let (port, kind, starts, rx) = (server.port, server.kind, starts.clone(), rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(port);
            let _ = c.connect().await;
            let mut st = Stats::default();
            loop {
                let Some(scheduled) = rx.lock().await.recv().await else {
                    break;
                };
                let body = payload(kind, 1, &starts);
                let r = c.send(Method::POST, kind.ingest_path(), body).await;
                st.record(r, scheduled.elapsed(), 1);
            }
            st
        }));
    }
    let start = Instant::now() + Duration::from_millis(200);
    let interval = 1.0 / s.open_rate;
    sleep_until(start.into()).await;
    let cpu = CpuWindow::start(server, sink);
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 * interval);
        sleep_until(at.into()).await;
        // A late tick still carries its scheduled time: the delay counts as latency.
        let _ = tx.send(at);
    }
    drop(tx);
    let mut st = Stats::default();
    for t in tasks {
        st.merge(t.await.expect("open-loop task"));
    }
    st.elapsed = start.elapsed();
    cpu.finish(&mut st, sink);
    st.finish();
    st
}

/// Load `alerts` distinct alerts in 100-alert posts (a failed post is retried).
async fn load(server: &Server, sink: &Sink, alerts: u64, s: &Settings, starts: &Arc<str>) -> Stats {
    let per_post = 100u64;
    let posts = Arc::new(AtomicI64::new(alerts.div_ceil(per_post) as i64));
    let t0 = Instant::now();
    let cpu = CpuWindow::start(server, sink);
    let mut tasks = Vec::new();
    for _ in 0..s.conns {
        let (port, kind, starts, posts) = (server.port, server.kind, starts.clone(), posts.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(port);
            let mut st = Stats::default();
            while posts.fetch_sub(1, Ordering::AcqRel) > 0 {
                for _attempt in 0..50 {
                    let body = payload(kind, per_post as usize, &starts);
                    let t = Instant::now();
                    let r = c.send(Method::POST, kind.ingest_path(), body).await;
                    let ok = matches!(r, Ok((200, _)));
                    st.record(r, t.elapsed(), per_post as usize);
                    if ok {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            st
        }));
    }
    let mut st = Stats::default();
    for t in tasks {
        st.merge(t.await.expect("load task"));
    }
    st.elapsed = t0.elapsed();
    cpu.finish(&mut st, sink);
    st.finish();
    st
}

// ---------------------------------------------------------------------------------------------
// Report

struct Row {
    wl: Workload,
    test: String,
    kind: Kind,
    st: Stats,
}

struct MemRow {
    wl: Workload,
    kind: Kind,
    load: Stats,
    active: Option<u64>,
    rss_kib: u64,
    hwm_kib: u64,
    disk: Option<u64>,
}

fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = format!("{:.0}", v);
    let (sign, digits) = s.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("", &s));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

fn ms(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

fn progress(wl: Workload, test: &str, kind: Kind, st: &Stats) {
    eprintln!(
        "  {:?} {:<24} {:<13} {:>9} alerts/s  p50 {:>7} ms  p99 {:>7} ms  max {:>7} ms  errors {}/{}  server cpu {:.2}  bench cpu {:.2}{}",
        wl,
        test,
        kind.name(),
        thousands(st.rate()),
        ms(st.q_ms(0.5)),
        ms(st.q_ms(0.99)),
        ms(st.q_ms(1.0)),
        st.errors,
        st.requests,
        st.server_cpu,
        st.bench_cpu,
        st.first_error
            .as_ref()
            .map(|e| format!("  first error: {e}"))
            .unwrap_or_default()
    );
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("nproc {cpus}, {model}, load average at start {load}")
}

fn report(s: &Settings, machine: &str, rows: &[Row], mem: &[MemRow]) {
    let mut o = String::new();
    let _ = writeln!(o, "\n## alert-router ingest benchmark\n");
    let _ = writeln!(o, "- machine: {machine}");
    let _ = writeln!(
        o,
        "- load: {} keep-alive connections; closed loop {} s after {} s warm-up; open loop {} payloads/s × {} s; memory after {} alerts (+{} s settle); fresh server per figure{}",
        s.conns,
        s.seconds,
        s.warmup,
        s.open_rate,
        s.open_seconds,
        thousands(s.rss_alerts as f64),
        s.settle,
        if s.quick { "; QUICK mode" } else if !s.bench_mode { "; SMOKE mode" } else { "" }
    );
    for wl in &s.workloads {
        let (w, i) = s.timers(*wl);
        let _ = writeln!(
            o,
            "- {}: group_by {}, group_wait {w}, group_interval {i}; one webhook receiver → in-bench sink (200)",
            wl.describe(),
            wl.group_by()
        );
    }
    let _ = writeln!(
        o,
        "- alert-router: POST /webhook (webhook v4, ack after sled flush); Alertmanager: POST /api/v2/alerts (in memory){}",
        if s.alertmanager_note.is_empty() {
            String::new()
        } else {
            format!(" — Alertmanager {}", s.alertmanager_note)
        }
    );
    if s.webhook_rate_limit.is_some() || s.router_extra.is_some() {
        let _ = writeln!(
            o,
            "- router config overrides: webhook rate_limit {}; extra {:?}",
            s.webhook_rate_limit.as_deref().unwrap_or("default (10/s)"),
            s.router_extra.as_deref().unwrap_or("none")
        );
    }
    let _ = writeln!(
        o,
        "- CPU columns: cores used by the server / by the bench process (load generator + sink)\n"
    );
    let _ = writeln!(
        o,
        "| workload | test | server | alerts/s | p50 ms | p99 ms | max ms | errors / requests | server CPU | bench CPU | sink hits |"
    );
    let _ = writeln!(o, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            o,
            "| {:?} | {} | {} | {} | {} | {} | {} | {} / {} | {:.2} | {:.2} | {} |",
            r.wl,
            r.test,
            r.kind.name(),
            thousands(r.st.rate()),
            ms(r.st.q_ms(0.5)),
            ms(r.st.q_ms(0.99)),
            ms(r.st.q_ms(1.0)),
            r.st.errors,
            r.st.requests,
            r.st.server_cpu,
            r.st.bench_cpu,
            thousands(r.st.sink_hits as f64)
        );
    }
    if !mem.is_empty() {
        let _ = writeln!(
        o,
        "\n| workload | server | alerts held (server says) | load alerts/s (100-alert posts) | VmRSS MiB | VmHWM MiB | RSS KiB/alert | store on disk MiB |"
    );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|");
        for m in mem {
            let per = format!("{:.2}", m.rss_kib as f64 / s.rss_alerts.max(1) as f64);
            let _ = writeln!(
                o,
                "| {:?} | {} | {} | {} | {} | {} | {} | {} |",
                m.wl,
                m.kind.name(),
                m.active
                    .map(|a| thousands(a as f64))
                    .unwrap_or_else(|| "?".into()),
                thousands(m.load.rate()),
                mib(m.rss_kib),
                mib(m.hwm_kib),
                per,
                m.disk
                    .map(|d| format!("{:.1}", d as f64 / 1048576.0))
                    .unwrap_or_else(|| "– (in memory)".into())
            );
        }
    }
    if s.alertmanager.is_some() {
        let _ = writeln!(
            o,
            "\n| workload | test | router ÷ Alertmanager alerts/s | Alertmanager p99 ÷ router p99 |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|");
        for r in rows.iter().filter(|r| r.kind == Kind::Router) {
            if let Some(am) = rows
                .iter()
                .find(|a| a.kind == Kind::Alertmanager && a.wl == r.wl && a.test == r.test)
            {
                let _ = writeln!(
                    o,
                    "| {:?} | {} | {:.2} | {:.2} |",
                    r.wl,
                    r.test,
                    r.st.rate() / am.st.rate().max(1e-9),
                    am.st.q_ms(0.99) / r.st.q_ms(0.99).max(1e-9)
                );
            }
        }
    }
    println!("{o}");
}

// ---------------------------------------------------------------------------------------------

async fn run(s: Settings) {
    let machine = machine();
    eprintln!("ingest bench: {machine}");
    if !s.alertmanager_note.is_empty() {
        eprintln!("Alertmanager {}", s.alertmanager_note);
    }
    let sink = start_sink();
    let starts = starts_at();
    let mut rows = Vec::new();
    let mut mem = Vec::new();
    let open_test = format!("open loop {} × 1-alert/s", thousands(s.open_rate));
    for &wl in &s.workloads {
        eprintln!("workload {}", wl.describe());
        for kind in s.kinds().into_iter().filter(|_| s.wants("memory")) {
            let server = Server::start(kind, wl, &s, &sink).await;
            let st = load(&server, &sink, s.rss_alerts, &s, &starts).await;
            tokio::time::sleep(secs(s.settle)).await;
            let (rss_kib, hwm_kib) = server.memory_kib();
            let (active, disk) = server.counts().await;
            eprintln!(
                "  {:?} memory                   {:<13} {} alerts loaded at {} alerts/s ({} errors): VmRSS {} MiB, VmHWM {} MiB, active {:?}, disk {:?}",
                wl,
                kind.name(),
                thousands(s.rss_alerts as f64),
                thousands(st.rate()),
                st.errors,
                mib(rss_kib),
                mib(hwm_kib),
                active,
                disk
            );
            mem.push(MemRow {
                wl,
                kind,
                load: st,
                active,
                rss_kib,
                hwm_kib,
                disk,
            });
        }
        for per_post in [100usize, 1] {
            if !s.wants(&format!("closed{per_post}")) {
                continue;
            }
            let test = format!("closed loop, {per_post}-alert posts");
            for kind in s.kinds() {
                let server = Server::start(kind, wl, &s, &sink).await;
                let st = closed_loop(&server, &sink, per_post, &s, &starts).await;
                drop(server);
                progress(wl, &test, kind, &st);
                rows.push(Row {
                    wl,
                    test: test.clone(),
                    kind,
                    st,
                });
            }
        }
        for kind in s.kinds().into_iter().filter(|_| s.wants("open")) {
            let server = Server::start(kind, wl, &s, &sink).await;
            let st = open_loop(&server, &sink, &s, &starts).await;
            drop(server);
            progress(wl, &open_test, kind, &st);
            rows.push(Row {
                wl,
                test: open_test.clone(),
                kind,
                st,
            });
        }
    }
    report(&s, &machine, &rows, &mem);
}

fn main() {
    let settings = Settings::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        tokio::spawn(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                let pids = CHILD_PIDS.lock().map(|p| p.clone()).unwrap_or_default();
                for pid in pids {
                    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                }
                std::process::exit(130);
            }
        });
        run(settings).await;
    });
}
