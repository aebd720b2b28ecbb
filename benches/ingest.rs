//! Ingest benchmark: the real release `alert-router` binary, side by side with Alertmanager.
//!
//! One command prints every figure of issue 6, router and Alertmanager measured in the same
//! run, with the ratio and the issue's target for each. For the two workloads of
//! `shared/reference/performance.md` (A: few groups, `group_by: [alertname]`, 20 alert names;
//! B: one group per alert, `group_by: [alertname, instance]`; every alert distinct, with a fresh
//! `instance` label), test by test (`BENCH_TESTS`):
//!
//! * `memory`: for each size in `BENCH_RSS_ALERTS` (100,000 and 1,000,000), a fresh server is
//!   loaded with that many distinct active alerts in 100-alert posts over `BENCH_LOAD_CONNS`
//!   (32) connections, then settles; reported: VmRSS / VmHWM (MiB), RSS bytes per alert, the
//!   VmRSS right after start, the alerts the server says it holds, and the router's store size
//!   on disk (`storage_bytes` of `GET /admin/v1/status`). The loader never drops a post: a `503`
//!   is retried with the same payload after its `Retry-After` (1 s without one), a transport
//!   error after 100 ms; the retries are counted;
//! * `closed100`, `closed1`: closed-loop maximum throughput with 100-alert and with 1-alert
//!   posts over `BENCH_CONNS` (20) keep-alive HTTP/1.1 connections for `BENCH_SECONDS` (60 s,
//!   sustained: the store keeps growing, every alert is new) after `BENCH_WARMUP_SECONDS` (1):
//!   alerts/s acknowledged with 200, p50/p99/max client-side ack latency per request, errors
//!   (non-200 or transport), and the alerts the server holds at the end;
//! * `open`: open-loop fixed rate, `BENCH_OPEN_RATE` (1,000) payloads/s of 1 alert for
//!   `BENCH_OPEN_SECONDS` (10 s). Sends are scheduled on a timer and latency is measured from
//!   the scheduled send time, so a slow server is not let off by coordinated omission;
//! * `restart` (router only: Alertmanager keeps no alert state, its cells show "–"): load
//!   `BENCH_RESTART_ALERTS` (1,000,000) distinct alerts as above, settle, read RSS, stop the
//!   router gracefully (`kill -TERM`, wait for its exit), start the same command on the same
//!   data directory and time spawn → first `200` from `GET /-/ready` (polled every 10 ms); then
//!   settle, read RSS again and check with `GET /admin/v1/status` (`alerts_stored`) that every
//!   acknowledged alert is still there.
//!
//! The run ends with a summary table: one row per figure, alert-router, Alertmanager, the
//! ratio (router ÷ Alertmanager for alerts/s; Alertmanager ÷ router for latency and memory, so
//! above 1 always means the router is better) and the issue's target, marked MET, NOT MET or
//! NOT MEASURED: ingest ≥ 2× Alertmanager, p99 ≤ 20 ms at 1,000 payloads/s, RSS ≤ 1 GiB at 1M
//! alerts (A), ≤ 4 KiB per alert at 1M alerts (B), restart ≤ 2 s with 1M alerts.
//!
//! Guard: the machine is shared, and one group per alert costs kilobytes per alert, so a phase
//! stops early when the server's VmRSS passes `BENCH_RSS_LIMIT_MIB` (default: half the
//! MemAvailable at start), when the machine's MemAvailable drops below 1.5 GiB, when the server
//! exits, or when a memory/restart load takes longer than `BENCH_LOAD_LIMIT_SECONDS` (300;
//! Alertmanager with one group per alert ingests only a few thousand alerts/s). Such a figure
//! is marked `*` with the reason and measured over what was done (a memory target already
//! exceeded before the cut is NOT MET, otherwise NOT MEASURED).
//!
//! The router gets Alertmanager webhook v4 payloads on `POST /webhook` (its ack means "appended
//! to the alert log"); Alertmanager (`/usr/bin/prometheus-alertmanager`, Debian package
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
//! Run time with Alertmanager on the 2-core machine: about 25 minutes. Workload A alone took
//! 10 minutes (four 61 s closed-loop phases, three 1M-alert loads at 10–25k alerts/s, the
//! restart); B's loads are slower and end at the guard (memory or 300 s) instead:
//!
//! ```text
//! cargo bench --bench ingest
//! BENCH_QUICK=1 cargo bench --bench ingest          # ~2 minutes: 3 s phases, 20k alerts
//! BENCH_WORKLOADS=A BENCH_TESTS=memory,restart cargo bench --bench ingest
//! BENCH_SECONDS=5 BENCH_WORKLOADS=B BENCH_ALERTMANAGER=off cargo bench --bench ingest
//! ```
//!
//! Environment: `BENCH_QUICK=1` (3 s phases, 20,000 alerts for memory and restart),
//! `BENCH_SECONDS` (60), `BENCH_WARMUP_SECONDS` (1), `BENCH_CONNS` (20), `BENCH_LOAD_CONNS`
//! (32, connections of the memory/restart loader), `BENCH_OPEN_RATE` (1,000),
//! `BENCH_OPEN_SECONDS` (10), `BENCH_RSS_ALERTS` (comma list, `100000,1000000`),
//! `BENCH_RESTART_ALERTS` (1000000), `BENCH_RSS_LIMIT_MIB`, `BENCH_LOAD_LIMIT_SECONDS` (300),
//! `BENCH_TESTS` (`memory,closed100,closed1,open,restart`), `BENCH_SETTLE_SECONDS` (15: pause
//! before reading memory, after which it also waits, at most 10 s, until VmRSS moves less than
//! 1 % in 1 s; the router's allocator returns freed memory about 10 s after the free), `BENCH_WORKLOADS` (`A,B`), `BENCH_GROUP_WAIT`, `BENCH_ALERTMANAGER` (a path,
//! or `off`), `BENCH_SERVER_LOGS=1` (let the servers log to this terminal instead of
//! /dev/null), `BENCH_WEBHOOK_RATE_LIMIT` (e.g. `1000/1s`: the router's `rate_limit` on the
//! sink receiver; its default for webhooks is 100/s, Alertmanager has none),
//! `BENCH_ROUTER_CONFIG` (YAML appended at the top level of the router's config, e.g.
//! `ingest: {max_pending_alerts: 1000000}`; not `listen`, `storage` or `route`, which it sets),
//! `BENCH_ROUTER_API=v2` (the router gets the same `POST /api/v2/alerts` bodies as
//! Alertmanager instead of webhooks), `BENCH_SILENCES` (N active silences created on both
//! servers after start, through `POST /api/v2/silences`: one alert name and an `instance`
//! regex that matches none of the load's alerts, so every alert is checked against them and
//! still flows) and `BENCH_INHIBIT_RULES` (N `inhibit_rules` in both configurations: source
//! `alertname="Source<i>", severity="critical"`, target `severity="warning"`, `equal:
//! [namespace, cluster]`). Issue 7's benchmark is
//! `BENCH_ROUTER_API=v2 BENCH_SILENCES=1000 BENCH_INHIBIT_RULES=100 BENCH_WORKLOADS=A
//! BENCH_TESTS=closed100,closed1,open cargo bench --bench ingest`.
//! The router runs with its default `storage.sync` (`batch`) unless `BENCH_SYNC` is set.
//!
//! `BENCH_SYNC` (a comma list of `storage.sync` modes, e.g. `none,batch,always`) runs the
//! router alone, once per mode, instead of the comparison with Alertmanager: for each of
//! `BENCH_SYNC_ROUNDS` (3) rounds, each wanted test among `closed100`, `closed1` and `open`
//! (of the first workload) runs once per mode, modes interleaved so that the machine's noise
//! spreads over all of them; the run ends with a table of medians over the rounds per test
//! and mode (alerts/s, p50, p99). For example:
//!
//! ```text
//! BENCH_SYNC=none,batch,always BENCH_WORKLOADS=A BENCH_TESTS=closed100,closed1,open \
//!   BENCH_SECONDS=20 BENCH_ALERTMANAGER=off cargo bench --bench ingest
//! ```
//!
//! Without `--bench` (as under `cargo test --benches`) it runs a few-second smoke version of
//! every test against the router only (2,000 alerts).
//!
//! Both servers are killed when the benchmark ends, panics or gets Ctrl-C.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
/// `BENCH_ROUTER_API=v2`: the router is fed Alertmanager API v2 bodies too.
static ROUTER_API_V2: AtomicBool = AtomicBool::new(false);

/// Whether `kind` is sent webhook bodies (else postable alerts on `/api/v2/alerts`).
fn webhook_wire(kind: Kind) -> bool {
    kind == Kind::Router && !ROUTER_API_V2.load(Ordering::Relaxed)
}
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
        if webhook_wire(self) {
            "/webhook"
        } else {
            "/api/v2/alerts"
        }
    }
}

struct Settings {
    bench_mode: bool,
    quick: bool,
    seconds: f64,
    warmup: f64,
    conns: usize,
    /// Connections of the memory/restart loader.
    load_conns: usize,
    open_rate: f64,
    open_seconds: f64,
    /// Sizes of the memory test, ascending.
    rss_alerts: Vec<u64>,
    restart_alerts: u64,
    /// The memory guard's limit on a server's VmRSS.
    rss_limit_kib: u64,
    /// Longest memory/restart load, in seconds.
    load_limit: f64,
    settle: f64,
    workloads: Vec<Workload>,
    alertmanager: Option<PathBuf>,
    alertmanager_note: String,
    group_wait: Option<String>,
    server_logs: bool,
    router_extra: Option<String>,
    webhook_rate_limit: Option<String>,
    /// Active silences created on each server after start.
    silences: usize,
    /// Inhibition rules in each server's configuration.
    inhibit_rules: usize,
    /// Which tests to run: memory, closed100, closed1, open, restart.
    tests: Vec<String>,
    /// `BENCH_SYNC`: `storage.sync` modes to compare (router only).
    sync_modes: Vec<String>,
    /// `BENCH_SYNC_ROUNDS`.
    sync_rounds: usize,
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

/// A comma list of alert counts (`100000,1000000`; `1e6` and `1_000_000` work too).
fn env_counts(name: &str, default: &[u64]) -> Vec<u64> {
    let Some(v) = env_str(name) else {
        return default.to_vec();
    };
    v.split(',')
        .map(|x| {
            let x = x.trim().replace('_', "");
            x.parse::<f64>()
                .ok()
                .filter(|n| *n >= 1.0 && n.fract() == 0.0)
                .map(|n| n as u64)
                .unwrap_or_else(|| panic!("{name}={v:?}: {x:?} is not a count of alerts"))
        })
        .collect()
}

impl Settings {
    fn from_env() -> Settings {
        let bench_mode = std::env::args().any(|a| a == "--bench");
        let quick = env_str("BENCH_QUICK").is_some_and(|v| v != "0");
        // (seconds, warmup, open seconds, open rate, memory sizes, restart alerts, settle)
        let d: (f64, f64, f64, f64, &[u64], f64, f64) = if !bench_mode {
            (0.5, 0.2, 0.5, 200.0, &[2_000], 2_000.0, 0.2)
        } else if quick {
            (3.0, 0.5, 3.0, 1_000.0, &[20_000], 20_000.0, 1.0)
        } else {
            (
                60.0,
                1.0,
                10.0,
                1_000.0,
                &[100_000, 1_000_000],
                1_000_000.0,
                // mimalloc returns freed memory to the OS about 10 s after it is freed
                // (purge delay 1 s × arena multiplier 10): read sooner, a restart's freed
                // rebuild buffers still count as resident
                15.0,
            )
        };
        let mut rss_alerts = env_counts("BENCH_RSS_ALERTS", d.4);
        rss_alerts.sort_unstable();
        rss_alerts.dedup();
        // Half of what the machine has free now: the other half stays for everyone else.
        let available_kib = kib_field(&read_proc("/proc/meminfo"), "MemAvailable:");
        let rss_limit_kib = match env_str("BENCH_RSS_LIMIT_MIB") {
            Some(_) => (env_f64("BENCH_RSS_LIMIT_MIB", 0.0) * 1024.0) as u64,
            None if available_kib > 0 => available_kib / 2,
            None => u64::MAX,
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
            load_conns: env_f64("BENCH_LOAD_CONNS", 32.0).max(1.0) as usize,
            open_seconds: env_f64("BENCH_OPEN_SECONDS", d.2),
            open_rate: env_f64("BENCH_OPEN_RATE", d.3).max(1.0),
            rss_alerts,
            restart_alerts: env_f64("BENCH_RESTART_ALERTS", d.5).max(1.0) as u64,
            rss_limit_kib,
            load_limit: env_f64("BENCH_LOAD_LIMIT_SECONDS", 300.0),
            settle: env_f64("BENCH_SETTLE_SECONDS", d.6),
            workloads,
            alertmanager,
            alertmanager_note,
            group_wait: env_str("BENCH_GROUP_WAIT"),
            server_logs: env_str("BENCH_SERVER_LOGS").is_some_and(|v| v != "0"),
            router_extra: env_str("BENCH_ROUTER_CONFIG"),
            tests: {
                let all = ["memory", "closed100", "closed1", "open", "restart"];
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
            silences: env_f64("BENCH_SILENCES", 0.0).max(0.0) as usize,
            inhibit_rules: env_f64("BENCH_INHIBIT_RULES", 0.0).max(0.0) as usize,
            sync_modes: env_str("BENCH_SYNC")
                .map(|v| {
                    v.split(',')
                        .map(|m| match m.trim() {
                            m @ ("none" | "batch" | "always") => m.to_string(),
                            other => panic!(
                                "BENCH_SYNC: unknown mode {other:?} (use none, batch, always)"
                            ),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            sync_rounds: env_f64("BENCH_SYNC_ROUNDS", 3.0).max(1.0) as usize,
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
    let webhook = webhook_wire(kind);
    if webhook {
        s.push_str(r#"{"receiver":"upstream","status":"firing","alerts":["#);
    } else {
        s.push('[');
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
        if webhook {
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
        if webhook {
            s.push_str(r#""endsAt":"0001-01-01T00:00:00Z","#);
        }
        let _ = write!(
            s,
            r#""generatorURL":"http://prometheus-k8s.monitoring.svc:9090/graph?g0.expr=ALERTS%7Balertname%3D%22{name}%22%7D&g0.tab=1"}}"#
        );
    }
    if webhook {
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
    } else {
        s.push(']');
    }
    Bytes::from(s)
}

// ---------------------------------------------------------------------------------------------
// HTTP client: one hyper HTTP/1.1 keep-alive connection per load-generator task

/// One HTTP answer.
struct Answer {
    status: u16,
    /// `Retry-After` in seconds.
    retry_after: Option<u64>,
    body: Bytes,
}

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
        self.exchange(method, path, body)
            .await
            .map(|a| (a.status, a.body))
    }

    /// Send one request; answers status, body and `Retry-After` (in seconds, when it is a
    /// number). A failed connection is replaced next time.
    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Answer, String> {
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
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>(Answer {
                status,
                retry_after,
                body,
            })
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

/// How long a server may take to answer `GET /-/ready` with 200 after it was spawned.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// The same after a restart on a loaded store (it rebuilds its state first).
const RESTART_DEADLINE: Duration = Duration::from_secs(300);
/// How long a graceful stop (SIGTERM) may take.
const STOP_DEADLINE: Duration = Duration::from_secs(120);
/// The memory guard stops a phase when the machine has less than this available (KiB).
const MEM_FLOOR_KIB: u64 = 1536 * 1024;

/// A server subprocess; killed when dropped (also while unwinding from a panic).
struct Server {
    kind: Kind,
    child: Child,
    port: u16,
    /// The command line that started it: a restart runs it again on the same directory.
    program: PathBuf,
    args: Vec<String>,
    logs: bool,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id();
        let _ = self.child.kill();
        let _ = self.child.wait();
        forget_pid(pid);
    }
}

fn forget_pid(pid: u32) {
    if let Ok(mut pids) = CHILD_PIDS.lock() {
        pids.retain(|p| *p != pid);
    }
}

/// What a graceful restart measured.
struct Restart {
    /// SIGTERM → process exit.
    stop: Duration,
    exit: String,
    /// Spawn → first 200 from `GET /-/ready`.
    ready: Duration,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn start(kind: Kind, wl: Workload, s: &Settings, sink: &Sink) -> Server {
        Server::start_with_sync(kind, wl, s, sink, None).await
    }

    /// [`Server::start`], the router with `storage.sync: <sync>` when given.
    async fn start_with_sync(
        kind: Kind,
        wl: Workload,
        s: &Settings,
        sink: &Sink,
        sync: Option<&str>,
    ) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let (group_wait, group_interval) = s.timers(wl);
        let mut route = String::new();
        if s.inhibit_rules > 0 {
            route.push_str("inhibit_rules:\n");
            for i in 0..s.inhibit_rules {
                let _ = writeln!(
                    route,
                    "  - source_matchers: ['alertname=\"Source{i}\"', 'severity=\"critical\"']\n    \
                     target_matchers: ['severity=\"warning\"']\n    equal: [namespace, cluster]"
                );
            }
        }
        let _ = write!(
            route,
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
        let (program, args) = match kind {
            Kind::Router => {
                std::fs::write(
                    &config,
                    format!(
                        "listen: 127.0.0.1:{port}\nexternal_url: http://127.0.0.1:{port}\n\
                         storage:\n  path: {}\n{}{router_route}",
                        dir.path().join("data").display(),
                        sync.map(|m| format!("  sync: {m}\n")).unwrap_or_default()
                    ),
                )
                .expect("write router config");
                (
                    PathBuf::from(env!("CARGO_BIN_EXE_alert-router")),
                    vec![
                        "serve".into(),
                        "--config".into(),
                        config.display().to_string(),
                        "--log-level".into(),
                        "warn".into(),
                    ],
                )
            }
            Kind::Alertmanager => {
                std::fs::write(&config, &route).expect("write alertmanager config");
                (
                    s.alertmanager.clone().expect("alertmanager path"),
                    vec![
                        format!("--config.file={}", config.display()),
                        format!("--storage.path={}", dir.path().join("am").display()),
                        "--cluster.listen-address=".into(),
                        format!("--web.listen-address=127.0.0.1:{port}"),
                        "--log.level=warn".into(),
                    ],
                )
            }
        };
        let spawned = Instant::now();
        let child = spawn(kind, &program, &args, s.server_logs);
        let mut server = Server {
            kind,
            child,
            port,
            program,
            args,
            logs: s.server_logs,
            _dir: dir,
        };
        server.wait_ready(spawned, START_DEADLINE).await;
        server.add_silences(s.silences).await;
        server
    }

    /// Create `n` active silences that match none of the load's alerts (each names one of
    /// the load's alert names, so the name matcher passes, and an `instance` regex no
    /// generated address matches).
    async fn add_silences(&self, n: usize) {
        if n == 0 {
            return;
        }
        let fmt = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .expect("format time")
        };
        let now = time::OffsetDateTime::now_utc();
        let (starts, ends) = (fmt(now), fmt(now + time::Duration::hours(6)));
        let mut c = Conn::new(self.port);
        for i in 0..n {
            let (name, ..) = ALERT_NAMES[i % ALERT_NAMES.len()];
            let body = format!(
                concat!(
                    r#"{{"matchers":[{{"name":"alertname","value":"{name}","isRegex":false}},"#,
                    r#"{{"name":"instance","value":"192\\.168\\.{i}\\..*","isRegex":true}}],"#,
                    r#""startsAt":"{starts}","endsAt":"{ends}","createdBy":"bench","comment":"silence {i}"}}"#
                ),
                name = name,
                i = i,
                starts = starts,
                ends = ends
            );
            match c
                .send(Method::POST, "/api/v2/silences", Bytes::from(body))
                .await
            {
                Ok((200, _)) => {}
                other => panic!(
                    "{}: creating silence {i} failed: {:?}",
                    self.kind.name(),
                    other.map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned()))
                ),
            }
        }
    }

    /// Poll `GET /-/ready` every 10 ms until it answers 200; answers the time since `since`.
    async fn wait_ready(&mut self, since: Instant, limit: Duration) -> Duration {
        let deadline = since + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited during startup ({status}); rerun with BENCH_SERVER_LOGS=1",
                    self.kind.name()
                );
            }
            if let Ok((200, _)) = get(self.port, "/-/ready").await {
                return since.elapsed();
            }
            if Instant::now() > deadline {
                panic!(
                    "{} not ready {limit:?} after it was started, on port {}",
                    self.kind.name(),
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Graceful stop (`kill -TERM`, wait for the exit), then the same command again on the
    /// same data directory, until `GET /-/ready` answers 200.
    async fn restart(&mut self) -> Restart {
        let (name, pid) = (self.kind.name(), self.pid());
        let t = Instant::now();
        match Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
        {
            Ok(st) if st.success() => {}
            other => panic!("kill -TERM {pid} ({name}) failed: {other:?}"),
        }
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => panic!("waiting for {name} (pid {pid}) to exit: {e}"),
            }
            if t.elapsed() > STOP_DEADLINE {
                panic!("{name} (pid {pid}) still running {STOP_DEADLINE:?} after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let stop = t.elapsed();
        forget_pid(pid);
        let spawned = Instant::now();
        self.child = spawn(self.kind, &self.program, &self.args, self.logs);
        let ready = self.wait_ready(spawned, RESTART_DEADLINE).await;
        Restart {
            stop,
            exit: status.to_string(),
            ready,
        }
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = read_proc(&format!("/proc/{}/status", self.pid()));
        (kib_field(&status, "VmRSS:"), kib_field(&status, "VmHWM:"))
    }

    /// The router's `GET /admin/v1/status` (loopback needs no token).
    async fn admin_status(&self) -> Result<serde_json::Value, String> {
        match get(self.port, "/admin/v1/status").await {
            Ok((200, body)) => serde_json::from_slice(&body)
                .map_err(|e| format!("GET /admin/v1/status: not JSON ({e})")),
            Ok((code, body)) => Err(format!(
                "GET /admin/v1/status answered {code}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
            Err(e) => Err(format!("GET /admin/v1/status: {e}")),
        }
    }

    /// The router's `alerts_stored`.
    async fn alerts_stored(&self) -> Result<u64, String> {
        let v = self.admin_status().await?;
        v["alerts_stored"]
            .as_u64()
            .ok_or_else(|| format!("GET /admin/v1/status has no alerts_stored: {v}"))
    }

    /// Active alerts and bytes on disk as the server reports them.
    async fn counts(&self) -> (Option<u64>, Option<u64>) {
        match self.kind {
            Kind::Router => {
                let Ok(v) = self.admin_status().await else {
                    return (None, None);
                };
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

fn spawn(kind: Kind, program: &std::path::Path, args: &[String], logs: bool) -> Child {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    if !logs {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} ({}): {e}", kind.name(), program.display()));
    CHILD_PIDS.lock().expect("pids").push(child.id());
    child
}

fn read_proc(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A `Name:   1234 kB` field of /proc/<pid>/status or /proc/meminfo, in KiB (0 when absent).
fn kib_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Stops a phase early, keeping the reason, when the server's VmRSS passes the limit, the
/// machine runs short of memory (it is shared), the server exits or a load runs out of time.
struct Guard {
    stop: Arc<AtomicBool>,
    reason: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Guard {
    /// Watch `server`; with `time_limit`, also stop the phase when it lasts longer than that.
    fn start(server: &Server, s: &Settings, time_limit: Option<f64>) -> Guard {
        let (pid, name, limit) = (server.pid(), server.kind.name(), s.rss_limit_kib);
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let reason = Arc::new(Mutex::new(None));
        let (flag, why) = (stop.clone(), reason.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let status = read_proc(&format!("/proc/{pid}/status"));
                let state = status
                    .lines()
                    .find(|l| l.starts_with("State:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("X");
                let rss = kib_field(&status, "VmRSS:");
                let available = kib_field(&read_proc("/proc/meminfo"), "MemAvailable:");
                let reason = if state == "Z" || state == "X" {
                    format!("{name} exited")
                } else if time_limit.is_some_and(|l| t0.elapsed().as_secs_f64() > l) {
                    format!(
                        "load not done after {} s (BENCH_LOAD_LIMIT_SECONDS)",
                        time_limit.unwrap_or_default()
                    )
                } else if rss > limit {
                    format!(
                        "{name} VmRSS {} MiB passed the {} MiB limit (BENCH_RSS_LIMIT_MIB)",
                        mib(rss),
                        mib(limit)
                    )
                } else if available > 0 && available < MEM_FLOOR_KIB {
                    format!(
                        "the machine had only {} MiB available ({name} VmRSS {} MiB)",
                        mib(available),
                        mib(rss)
                    )
                } else {
                    continue;
                };
                if let Ok(mut r) = why.lock() {
                    *r = Some(reason);
                }
                flag.store(true, Ordering::Release);
                return;
            }
        });
        Guard { stop, reason, task }
    }

    fn flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    fn tripped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Stop watching; answers why the phase was stopped, if it was.
    fn finish(self) -> Option<String> {
        self.task.abort();
        self.reason.lock().ok().and_then(|mut r| r.take())
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
    /// Posts sent again (same payload) after a 503 or a transport error.
    retries: u64,
    /// Why the memory guard cut the phase short.
    stopped: Option<String>,
    /// Alerts the server said it held after the phase.
    held: Option<u64>,
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
        self.retries += o.retries;
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
    let guard = Guard::start(server, s, None);
    let warm_end = Instant::now() + secs(s.warmup);
    let end = warm_end + secs(s.seconds);
    let mut tasks = Vec::new();
    for _ in 0..s.conns {
        let (port, kind, starts, stop) = (server.port, server.kind, starts.clone(), guard.flag());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(port);
            let mut st = Stats::default();
            loop {
                if Instant::now() >= end || stop.load(Ordering::Acquire) {
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
    total.stopped = guard.finish();
    total.finish();
    total.held = server.counts().await.0;
    total
}

/// Fixed-rate 1-alert posts spread over the connections; latency from the scheduled send time.
async fn open_loop(server: &Server, sink: &Sink, s: &Settings, starts: &Arc<str>) -> Stats {
    let guard = Guard::start(server, s, None);
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
        if guard.tripped() {
            break;
        }
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
    st.stopped = guard.finish();
    st.finish();
    st.held = server.counts().await.0;
    st
}

/// How long one post may stay unacknowledged (retried) before the benchmark gives up.
const POST_DEADLINE: Duration = Duration::from_secs(300);

/// Load `alerts` distinct alerts in 100-alert posts over `BENCH_LOAD_CONNS` connections.
/// Nothing is dropped: a post is sent until it is acknowledged with 200 — after a 503 the same
/// payload goes again once its `Retry-After` has passed (1 s without one), after another 5xx in
/// 1 s, after a transport error in 100 ms — and each re-send counts as a retry. Any other
/// answer is a harness bug and panics. Only the guard ends the load early (memory, or
/// `BENCH_LOAD_LIMIT_SECONDS`).
async fn load(server: &Server, sink: &Sink, alerts: u64, s: &Settings, starts: &Arc<str>) -> Stats {
    const PER_POST: u64 = 100;
    let guard = Guard::start(server, s, Some(s.load_limit));
    // The first alert (index within this load) of the next post.
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let cpu = CpuWindow::start(server, sink);
    let ticker = {
        let (acked, name, pid) = (acked.clone(), server.kind.name(), server.pid());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                (t0 + Duration::from_secs(10)).into(),
                Duration::from_secs(10),
            );
            loop {
                tick.tick().await;
                let done = acked.load(Ordering::Relaxed);
                let rss = kib_field(&read_proc(&format!("/proc/{pid}/status")), "VmRSS:");
                eprintln!(
                    "      {name} loading: {} / {} alerts, {} alerts/s, VmRSS {} MiB",
                    thousands(done as f64),
                    thousands(alerts as f64),
                    thousands(done as f64 / t0.elapsed().as_secs_f64()),
                    mib(rss)
                );
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..s.load_conns {
        let (port, kind, starts) = (server.port, server.kind, starts.clone());
        let (next, acked, stop) = (next.clone(), acked.clone(), guard.flag());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(port);
            let mut st = Stats::default();
            'posts: while !stop.load(Ordering::Acquire) {
                let first = next.fetch_add(PER_POST, Ordering::AcqRel);
                if first >= alerts {
                    break;
                }
                let n = PER_POST.min(alerts - first) as usize;
                let body = payload(kind, n, &starts);
                let deadline = Instant::now() + POST_DEADLINE;
                loop {
                    let t = Instant::now();
                    let r = c.exchange(Method::POST, kind.ingest_path(), body.clone()).await;
                    let latency = t.elapsed();
                    let wait = match &r {
                        Ok(a) if a.status == 200 => None,
                        Ok(a) if a.status == 503 => {
                            Some(Duration::from_secs(a.retry_after.unwrap_or(1)))
                        }
                        Ok(a) if a.status >= 500 => Some(Duration::from_secs(1)),
                        Ok(a) => panic!(
                            "{} refused a load post with {}: {}",
                            kind.name(),
                            a.status,
                            String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
                        ),
                        Err(_) => Some(Duration::from_millis(100)),
                    };
                    let last = match &r {
                        Ok(a) => format!(
                            "{}: {}",
                            a.status,
                            String::from_utf8_lossy(&a.body[..a.body.len().min(200)])
                        ),
                        Err(e) => e.clone(),
                    };
                    st.record(r.map(|a| (a.status, a.body)), latency, n);
                    let Some(wait) = wait else {
                        acked.fetch_add(n as u64, Ordering::Relaxed);
                        continue 'posts;
                    };
                    if Instant::now() + wait > deadline {
                        panic!(
                            "{}: a load post was not acknowledged within {POST_DEADLINE:?}; last answer {last}",
                            kind.name()
                        );
                    }
                    // Wait as asked, but give up the post as soon as the guard stops the load.
                    let until = Instant::now() + wait;
                    while Instant::now() < until {
                        if stop.load(Ordering::Acquire) {
                            break 'posts;
                        }
                        let step = until.saturating_duration_since(Instant::now());
                        tokio::time::sleep(step.min(Duration::from_millis(100))).await;
                    }
                    st.retries += 1;
                }
            }
            st
        }));
    }
    let mut st = Stats::default();
    for t in tasks {
        st.merge(t.await.expect("load task"));
    }
    ticker.abort();
    st.elapsed = t0.elapsed();
    cpu.finish(&mut st, sink);
    st.stopped = guard.finish();
    st.finish();
    st
}

/// Let the server settle after a load: `BENCH_SETTLE_SECONDS`, then until VmRSS has moved
/// less than 1 % over the last second (at most 10 s more). Answers (VmRSS, VmHWM, settled).
async fn settle(server: &Server, s: &Settings) -> (u64, u64, bool) {
    tokio::time::sleep(secs(s.settle)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut window = std::collections::VecDeque::new();
    loop {
        let (rss, hwm) = server.memory_kib();
        window.push_back(rss);
        if window.len() > 5 {
            window.pop_front();
        }
        let (lo, hi) = (
            window.iter().min().copied().unwrap_or(0),
            window.iter().max().copied().unwrap_or(0),
        );
        if window.len() == 5 && hi - lo <= hi / 100 {
            return (rss, hwm, true);
        }
        if Instant::now() >= deadline {
            return (rss, hwm, false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Report

struct Row {
    wl: Workload,
    /// `closed100`, `closed1` or `open`.
    id: &'static str,
    test: String,
    kind: Kind,
    st: Stats,
}

struct MemRow {
    wl: Workload,
    kind: Kind,
    /// Alerts asked for (`BENCH_RSS_ALERTS`); `load.alerts` were acknowledged.
    size: u64,
    load: Stats,
    /// VmRSS when the server had just become ready.
    start_kib: u64,
    active: Option<u64>,
    rss_kib: u64,
    hwm_kib: u64,
    settled: bool,
    disk: Option<u64>,
}

struct RestartRow {
    wl: Workload,
    load: Stats,
    stored_before: Result<u64, String>,
    rss_before_kib: u64,
    restart: Restart,
    rss_after_kib: u64,
    hwm_after_kib: u64,
    stored_after: Result<u64, String>,
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
    thousands(kib as f64 / 1024.0)
}

/// RSS bytes per alert held.
fn per_alert(rss_kib: u64, alerts: u64) -> f64 {
    if alerts == 0 {
        f64::NAN
    } else {
        rss_kib as f64 * 1024.0 / alerts as f64
    }
}

fn stored(r: &Result<u64, String>) -> String {
    match r {
        Ok(n) => thousands(*n as f64),
        Err(e) => format!("? ({e})"),
    }
}

fn progress(wl: Workload, test: &str, kind: Kind, st: &Stats) {
    eprintln!(
        "  {:?} {:<24} {:<13} {:>9} alerts/s  p50 {:>7} ms  p99 {:>7} ms  max {:>7} ms  errors {}/{}  server cpu {:.2}  bench cpu {:.2}  held {}{}{}",
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
        st.held.map(|h| thousands(h as f64)).unwrap_or_else(|| "?".into()),
        st.first_error
            .as_ref()
            .map(|e| format!("  first error: {e}"))
            .unwrap_or_default(),
        st.stopped
            .as_ref()
            .map(|r| format!("  STOPPED EARLY: {r}"))
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
    let meminfo = read_proc("/proc/meminfo");
    format!(
        "nproc {cpus}, {model}, load average at start {load}, memory {} MiB ({} MiB available)",
        mib(kib_field(&meminfo, "MemTotal:")),
        mib(kib_field(&meminfo, "MemAvailable:"))
    )
}

// ---------------------------------------------------------------------------------------------
// Summary: one row per figure, with the issue's targets

/// The issue's scale for the memory and restart targets.
const TARGET_ALERTS: u64 = 1_000_000;
const TARGET_INGEST_RATIO: f64 = 2.0;
const TARGET_P99_MS: f64 = 20.0;
const TARGET_RSS_A_KIB: u64 = 1024 * 1024;
const TARGET_BYTES_PER_ALERT_B: f64 = 4096.0;
const TARGET_RESTART_S: f64 = 2.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The figure has no target.
    None,
    Met,
    NotMet,
    NotMeasured,
}

impl Verdict {
    fn check(ok: bool) -> Verdict {
        if ok {
            Verdict::Met
        } else {
            Verdict::NotMet
        }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::None => "",
            Verdict::Met => "MET",
            Verdict::NotMet => "**NOT MET**",
            Verdict::NotMeasured => "NOT MEASURED",
        }
    }
}

struct Line {
    wl: Workload,
    figure: String,
    router: String,
    am: String,
    ratio: String,
    target: String,
    verdict: Verdict,
    note: String,
}

impl Line {
    fn new(wl: Workload, figure: String) -> Line {
        Line {
            wl,
            figure,
            router: "–".into(),
            am: "–".into(),
            ratio: "–".into(),
            target: "–".into(),
            verdict: Verdict::None,
            note: String::new(),
        }
    }
}

/// `value`, starred when the phase was cut short.
fn star(value: String, st: &Stats) -> String {
    if st.stopped.is_some() {
        format!("{value}*")
    } else {
        value
    }
}

fn ratio(better: f64, worse: f64, cut: bool) -> String {
    let r = better / worse;
    if !r.is_finite() {
        return "–".into();
    }
    format!("{r:.2}×{}", if cut { "*" } else { "" })
}

/// Notes for phases cut short by the guard.
fn cut_notes(parts: &[(Kind, &Stats)]) -> String {
    parts
        .iter()
        .filter_map(|(k, st)| {
            st.stopped.as_ref().map(|r| {
                format!(
                    "*{} stopped after {:.1} s, {} alerts: {r}",
                    k.name(),
                    st.elapsed.as_secs_f64(),
                    thousands(st.alerts as f64)
                )
            })
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn summary(s: &Settings, rows: &[Row], mem: &[MemRow], restarts: &[RestartRow]) -> Vec<Line> {
    let mut out = Vec::new();
    let am_missing = || format!("Alertmanager {}", s.alertmanager_note);
    for &wl in &s.workloads {
        let find = |id: &str, kind: Kind| {
            rows.iter()
                .find(|r| r.wl == wl && r.id == id && r.kind == kind)
        };
        for (id, posts) in [("closed100", 100), ("closed1", 1)] {
            let mut l = Line::new(
                wl,
                format!("alerts/s, {posts}-alert posts, closed loop {} s", s.seconds),
            );
            l.target = format!("≥ {TARGET_INGEST_RATIO}× Alertmanager");
            let (r, am) = (find(id, Kind::Router), find(id, Kind::Alertmanager));
            match (r, am) {
                (Some(r), Some(am)) => {
                    let x = r.st.rate() / am.st.rate();
                    let cut = r.st.stopped.is_some() || am.st.stopped.is_some();
                    l.ratio = ratio(r.st.rate(), am.st.rate(), cut);
                    // A phase cut short is not the sustained run the target is about.
                    l.verdict = if x.is_finite() && !cut {
                        Verdict::check(x >= TARGET_INGEST_RATIO)
                    } else {
                        Verdict::NotMeasured
                    };
                    l.note = cut_notes(&[(Kind::Router, &r.st), (Kind::Alertmanager, &am.st)]);
                }
                (Some(r), None) => {
                    l.verdict = Verdict::NotMeasured;
                    l.note = [cut_notes(&[(Kind::Router, &r.st)]), am_missing()]
                        .into_iter()
                        .filter(|n| !n.is_empty())
                        .collect::<Vec<_>>()
                        .join("; ");
                }
                _ => {
                    l.verdict = Verdict::NotMeasured;
                    l.note = format!("{id} not in BENCH_TESTS");
                }
            }
            if let Some(r) = r {
                l.router = star(thousands(r.st.rate()), &r.st);
            }
            if let Some(am) = am {
                l.am = star(thousands(am.st.rate()), &am.st);
            }
            out.push(l);
        }
        let (r, am) = (find("open", Kind::Router), find("open", Kind::Alertmanager));
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            let mut l = Line::new(
                wl,
                format!(
                    "{name} ack ms at {} payloads/s (1 alert, {} s)",
                    thousands(s.open_rate),
                    s.open_seconds
                ),
            );
            if let Some(r) = r {
                l.router = star(ms(r.st.q_ms(q)), &r.st);
            }
            if let Some(am) = am {
                l.am = star(ms(am.st.q_ms(q)), &am.st);
                if let Some(r) = r {
                    l.ratio = ratio(
                        am.st.q_ms(q),
                        r.st.q_ms(q),
                        r.st.stopped.is_some() || am.st.stopped.is_some(),
                    );
                }
            }
            let mut parts = Vec::new();
            parts.extend(r.map(|r| (Kind::Router, &r.st)));
            parts.extend(am.map(|a| (Kind::Alertmanager, &a.st)));
            l.note = cut_notes(&parts);
            if q == 0.99 {
                l.target = format!("≤ {TARGET_P99_MS} ms");
                l.verdict = match r {
                    Some(_) if (s.open_rate - 1_000.0).abs() > 0.5 => {
                        l.note = format!("BENCH_OPEN_RATE={}, not 1,000", s.open_rate);
                        Verdict::NotMeasured
                    }
                    Some(r) if r.st.q_ms(q).is_finite() && r.st.stopped.is_none() => {
                        Verdict::check(r.st.q_ms(q) <= TARGET_P99_MS)
                    }
                    Some(_) => Verdict::NotMeasured,
                    None => {
                        l.note = "open not in BENCH_TESTS".into();
                        Verdict::NotMeasured
                    }
                };
            } else if r.is_none() {
                continue;
            }
            out.push(l);
        }
        // Memory: RSS and RSS per alert at each size.
        let mem_of = |size: u64, kind: Kind| {
            mem.iter()
                .find(|m| m.wl == wl && m.size == size && m.kind == kind)
        };
        let mut sizes = s.rss_alerts.clone();
        if !sizes.contains(&TARGET_ALERTS) {
            sizes.push(TARGET_ALERTS); // the target's row, shown as not measured
        }
        for size in sizes {
            let (r, am) = (mem_of(size, Kind::Router), mem_of(size, Kind::Alertmanager));
            let cut = r.is_some_and(|m| m.load.stopped.is_some())
                || am.is_some_and(|m| m.load.stopped.is_some());
            let mut parts = Vec::new();
            parts.extend(r.map(|m| (Kind::Router, &m.load)));
            parts.extend(am.map(|m| (Kind::Alertmanager, &m.load)));
            let notes = cut_notes(&parts);
            let missing = if !s.wants("memory") {
                "memory not in BENCH_TESTS".to_string()
            } else {
                format!("{} not in BENCH_RSS_ALERTS", thousands(size as f64))
            };
            // RSS
            let mut l = Line::new(
                wl,
                format!("VmRSS MiB at {} alerts", thousands(size as f64)),
            );
            if let Some(m) = r {
                l.router = star(mib(m.rss_kib), &m.load);
            }
            if let Some(m) = am {
                l.am = star(mib(m.rss_kib), &m.load);
            }
            if let (Some(r), Some(am)) = (r, am) {
                l.ratio = ratio(am.rss_kib as f64, r.rss_kib as f64, cut);
            }
            l.note = notes.clone();
            if wl == Workload::A && size == TARGET_ALERTS {
                l.target = format!("≤ {} MiB", mib(TARGET_RSS_A_KIB));
                l.verdict = match r {
                    Some(m) if m.load.alerts >= size => {
                        Verdict::check(m.rss_kib <= TARGET_RSS_A_KIB)
                    }
                    // Cut short already above the target: it cannot be met at the full size.
                    Some(m) if m.rss_kib > TARGET_RSS_A_KIB => Verdict::NotMet,
                    Some(_) => Verdict::NotMeasured,
                    None => {
                        l.note = missing.clone();
                        Verdict::NotMeasured
                    }
                };
            }
            if r.is_some() || l.verdict != Verdict::None {
                out.push(l);
            }
            // RSS per alert
            let mut l = Line::new(
                wl,
                format!("RSS bytes per alert at {} alerts", thousands(size as f64)),
            );
            if let Some(m) = r {
                l.router = star(thousands(per_alert(m.rss_kib, m.load.alerts)), &m.load);
            }
            if let Some(m) = am {
                l.am = star(thousands(per_alert(m.rss_kib, m.load.alerts)), &m.load);
            }
            if let (Some(r), Some(am)) = (r, am) {
                l.ratio = ratio(
                    per_alert(am.rss_kib, am.load.alerts),
                    per_alert(r.rss_kib, r.load.alerts),
                    cut,
                );
            }
            l.note = notes;
            if wl == Workload::B && size == TARGET_ALERTS {
                l.target = format!("≤ {} B", thousands(TARGET_BYTES_PER_ALERT_B));
                l.verdict = match r {
                    Some(m) if m.load.alerts >= size => Verdict::check(
                        per_alert(m.rss_kib, m.load.alerts) <= TARGET_BYTES_PER_ALERT_B,
                    ),
                    // Cut short with more RSS than the target allows for the full size.
                    Some(m)
                        if m.rss_kib as f64 * 1024.0 > TARGET_BYTES_PER_ALERT_B * size as f64 =>
                    {
                        Verdict::NotMet
                    }
                    Some(_) => Verdict::NotMeasured,
                    None => {
                        l.note = missing;
                        Verdict::NotMeasured
                    }
                };
            }
            if r.is_some() || l.verdict != Verdict::None {
                out.push(l);
            }
        }
        // Restart (router only).
        let rr = restarts.iter().find(|r| r.wl == wl);
        let n = rr.map(|r| r.load.alerts).unwrap_or(s.restart_alerts);
        let mut l = Line::new(
            wl,
            format!(
                "restart s, spawn → /-/ready 200, {} alerts stored",
                thousands(n as f64)
            ),
        );
        l.target = format!(
            "≤ {TARGET_RESTART_S} s at {}",
            thousands(TARGET_ALERTS as f64)
        );
        match rr {
            Some(r) => {
                let t = r.restart.ready.as_secs_f64();
                l.router = star(format!("{t:.2}"), &r.load);
                l.note = cut_notes(&[(Kind::Router, &r.load)]);
                l.verdict = if r.load.alerts >= TARGET_ALERTS {
                    Verdict::check(t <= TARGET_RESTART_S)
                } else {
                    if l.note.is_empty() {
                        l.note = format!(
                            "BENCH_RESTART_ALERTS={}, not {}",
                            s.restart_alerts,
                            thousands(TARGET_ALERTS as f64)
                        );
                    }
                    Verdict::NotMeasured
                };
            }
            None => {
                l.verdict = Verdict::NotMeasured;
                l.note = "restart not in BENCH_TESTS".into();
            }
        }
        out.push(l);
        if let Some(r) = rr {
            for (figure, kib) in [
                ("VmRSS MiB before restart", r.rss_before_kib),
                ("VmRSS MiB after restart", r.rss_after_kib),
            ] {
                let mut l = Line::new(wl, figure.into());
                l.router = star(mib(kib), &r.load);
                out.push(l);
            }
            let mut l = Line::new(wl, "alerts stored after restart".into());
            l.router = stored(&r.stored_after);
            l.target = format!("= acknowledged ({})", thousands(r.load.alerts as f64));
            l.verdict = Verdict::check(r.stored_after.as_ref().is_ok_and(|n| *n == r.load.alerts));
            out.push(l);
        }
    }
    out
}

fn report(s: &Settings, machine: &str, rows: &[Row], mem: &[MemRow], restarts: &[RestartRow]) {
    let mut o = String::new();
    let _ = writeln!(o, "\n## alert-router ingest benchmark\n");
    let _ = writeln!(o, "- machine: {machine}");
    let _ = writeln!(
        o,
        "- load: {} keep-alive connections; closed loop {} s after {} s warm-up; open loop {} payloads/s × {} s; fresh server per figure{}",
        s.conns,
        s.seconds,
        s.warmup,
        s.open_rate,
        s.open_seconds,
        if s.quick { "; QUICK mode" } else if !s.bench_mode { "; SMOKE mode" } else { "" }
    );
    let _ = writeln!(
        o,
        "- memory after {} alerts, restart with {} alerts: 100-alert posts over {} connections (503 → retry after Retry-After), then {} s settle + until VmRSS is stable; guard: VmRSS ≤ {} MiB, machine MemAvailable ≥ {} MiB, a load ≤ {} s",
        s.rss_alerts
            .iter()
            .map(|n| thousands(*n as f64))
            .collect::<Vec<_>>()
            .join(" / "),
        thousands(s.restart_alerts as f64),
        s.load_conns,
        s.settle,
        mib(s.rss_limit_kib),
        mib(MEM_FLOOR_KIB),
        s.load_limit
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
        "- alert-router: {} (ack after the alert-log append); Alertmanager: POST /api/v2/alerts (in memory){}",
        if webhook_wire(Kind::Router) {
            "POST /webhook (webhook v4)"
        } else {
            "POST /api/v2/alerts (the same bodies as Alertmanager)"
        },
        if s.alertmanager_note.is_empty() {
            String::new()
        } else {
            format!(" — Alertmanager {}", s.alertmanager_note)
        }
    );
    if s.silences > 0 || s.inhibit_rules > 0 {
        let _ = writeln!(
            o,
            "- both servers: {} active silences (created after start), {} inhibit_rules",
            s.silences, s.inhibit_rules
        );
    }
    if s.webhook_rate_limit.is_some() || s.router_extra.is_some() {
        let _ = writeln!(
            o,
            "- router config overrides: webhook rate_limit {}; extra {:?}",
            s.webhook_rate_limit.as_deref().unwrap_or("default (100/s)"),
            s.router_extra.as_deref().unwrap_or("none")
        );
    }
    let _ = writeln!(
        o,
        "- CPU columns: cores used by the server / by the bench process (load generator + sink); `*`: cut short by the guard\n"
    );
    if !rows.is_empty() {
        let _ = writeln!(
            o,
            "| workload | test | server | alerts/s | p50 ms | p99 ms | max ms | errors / requests | server CPU | bench CPU | sink hits | alerts held at end |"
        );
        let _ = writeln!(
            o,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in rows {
            let _ = writeln!(
                o,
                "| {:?} | {} | {} | {} | {} | {} | {} | {} / {} | {:.2} | {:.2} | {} | {} |",
                r.wl,
                r.test,
                r.kind.name(),
                star(thousands(r.st.rate()), &r.st),
                ms(r.st.q_ms(0.5)),
                ms(r.st.q_ms(0.99)),
                ms(r.st.q_ms(1.0)),
                r.st.errors,
                r.st.requests,
                r.st.server_cpu,
                r.st.bench_cpu,
                thousands(r.st.sink_hits as f64),
                r.st.held
                    .map(|a| thousands(a as f64))
                    .unwrap_or_else(|| "?".into()),
            );
        }
    }
    if !mem.is_empty() {
        let _ = writeln!(
            o,
            "\n| workload | alerts | server | acknowledged | held (server says) | load alerts/s | retries | VmRSS at start MiB | VmRSS MiB | VmHWM MiB | RSS bytes/alert | store on disk MiB |"
        );
        let _ = writeln!(
            o,
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for m in mem {
            let _ = writeln!(
                o,
                "| {:?} | {} | {} | {} | {} | {} | {} | {} | {}{} | {} | {} | {} |",
                m.wl,
                thousands(m.size as f64),
                m.kind.name(),
                star(thousands(m.load.alerts as f64), &m.load),
                m.active
                    .map(|a| thousands(a as f64))
                    .unwrap_or_else(|| "?".into()),
                thousands(m.load.rate()),
                m.load.retries,
                mib(m.start_kib),
                mib(m.rss_kib),
                if m.settled { "" } else { " (still moving)" },
                mib(m.hwm_kib),
                thousands(per_alert(m.rss_kib, m.load.alerts)),
                m.disk
                    .map(|d| format!("{:.1}", d as f64 / 1048576.0))
                    .unwrap_or_else(|| "– (in memory)".into())
            );
        }
    }
    if !restarts.is_empty() {
        let _ = writeln!(
            o,
            "\n| workload | acknowledged | load alerts/s | retries | stored before | VmRSS before MiB | SIGTERM → exit s | exit | spawn → ready s | VmRSS after MiB | VmHWM after MiB | stored after | store on disk MiB |"
        );
        let _ = writeln!(
            o,
            "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
        );
        for r in restarts {
            let _ = writeln!(
                o,
                "| {:?} | {} | {} | {} | {} | {} | {:.2} | {} | {:.3} | {} | {} | {} | {} |",
                r.wl,
                star(thousands(r.load.alerts as f64), &r.load),
                thousands(r.load.rate()),
                r.load.retries,
                stored(&r.stored_before),
                mib(r.rss_before_kib),
                r.restart.stop.as_secs_f64(),
                r.restart.exit,
                r.restart.ready.as_secs_f64(),
                mib(r.rss_after_kib),
                mib(r.hwm_after_kib),
                stored(&r.stored_after),
                r.disk
                    .map(|d| format!("{:.1}", d as f64 / 1048576.0))
                    .unwrap_or_else(|| "?".into())
            );
        }
    }
    let _ = writeln!(
        o,
        "\n### Summary\n\nratio: router ÷ Alertmanager for alerts/s, Alertmanager ÷ router for latency and memory — above 1 the router is better.\n"
    );
    let _ = writeln!(
        o,
        "| workload | figure | alert-router | Alertmanager | ratio | target (issue 6) | verdict | note |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---|---|---|");
    let lines = summary(s, rows, mem, restarts);
    for l in &lines {
        let _ = writeln!(
            o,
            "| {:?} | {} | {} | {} | {} | {} | {} | {} |",
            l.wl,
            l.figure,
            l.router,
            l.am,
            l.ratio,
            l.target,
            l.verdict.label(),
            l.note
        );
    }
    let count = |v: Verdict| lines.iter().filter(|l| l.verdict == v).count();
    let _ = writeln!(
        o,
        "\ntargets: {} met, {} not met, {} not measured",
        count(Verdict::Met),
        count(Verdict::NotMet),
        count(Verdict::NotMeasured)
    );
    println!("{o}");
}

// ---------------------------------------------------------------------------------------------

/// Load the router, stop it gracefully, start it again on the same data directory.
async fn restart_test(wl: Workload, s: &Settings, sink: &Sink, starts: &Arc<str>) -> RestartRow {
    let mut server = Server::start(Kind::Router, wl, s, sink).await;
    let load = load(&server, sink, s.restart_alerts, s, starts).await;
    let (rss_before_kib, _, _) = settle(&server, s).await;
    let stored_before = server.alerts_stored().await;
    let restart = server.restart().await;
    let (rss_after_kib, hwm_after_kib, _) = settle(&server, s).await;
    let stored_after = server.alerts_stored().await;
    let disk = server.counts().await.1;
    drop(server);
    let kept = stored_after.as_ref().is_ok_and(|n| *n == load.alerts);
    eprintln!(
        "  {:?} restart                  {:<13} {} alerts acknowledged at {} alerts/s ({} retries{}), stored {}; VmRSS {} MiB; SIGTERM → exit {:.2} s ({}); spawn → ready {:.3} s; VmRSS {} MiB; stored after {}{}",
        wl,
        Kind::Router.name(),
        thousands(load.alerts as f64),
        thousands(load.rate()),
        load.retries,
        load.stopped
            .as_ref()
            .map(|r| format!(", STOPPED EARLY: {r}"))
            .unwrap_or_default(),
        stored(&stored_before),
        mib(rss_before_kib),
        restart.stop.as_secs_f64(),
        restart.exit,
        restart.ready.as_secs_f64(),
        mib(rss_after_kib),
        stored(&stored_after),
        if kept { "" } else { "  ALERTS MISSING AFTER RESTART" }
    );
    RestartRow {
        wl,
        load,
        stored_before,
        rss_before_kib,
        restart,
        rss_after_kib,
        hwm_after_kib,
        stored_after,
        disk,
    }
}

/// `BENCH_SYNC`: the router alone, per `storage.sync` mode, rounds × tests × modes
/// interleaved; prints medians over the rounds.
async fn run_sync(s: &Settings, machine: &str) {
    let sink = start_sink();
    let starts = starts_at();
    let wl = s.workloads[0];
    let open_test = format!("open {} × 1-alert/s", thousands(s.open_rate));
    let tests: Vec<(&str, String)> = [
        ("closed100", "closed, 100-alert posts".to_string()),
        ("closed1", "closed, 1-alert posts".to_string()),
        ("open", open_test),
    ]
    .into_iter()
    .filter(|(id, _)| s.wants(id))
    .collect();
    // (test, mode) → per round
    let mut results: Vec<((usize, usize), Stats)> = Vec::new();
    for round in 0..s.sync_rounds {
        eprintln!("round {}/{}", round + 1, s.sync_rounds);
        for (t, (id, name)) in tests.iter().enumerate() {
            for (m, mode) in s.sync_modes.iter().enumerate() {
                let server = Server::start_with_sync(Kind::Router, wl, s, &sink, Some(mode)).await;
                let st = match *id {
                    "closed100" => closed_loop(&server, &sink, 100, s, &starts).await,
                    "closed1" => closed_loop(&server, &sink, 1, s, &starts).await,
                    _ => open_loop(&server, &sink, s, &starts).await,
                };
                drop(server);
                progress(wl, name, Kind::Router, &st);
                eprintln!("      ^ storage.sync: {mode}");
                results.push(((t, m), st));
            }
        }
    }
    let median = |mut v: Vec<f64>| -> f64 {
        v.retain(|x| x.is_finite());
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    println!();
    println!("storage.sync comparison: {machine}");
    println!(
        "workload {:?}, {} round(s), medians over rounds; closed loops {} s over {} connections, open loop {} s",
        wl, s.sync_rounds, s.seconds, s.conns, s.open_seconds
    );
    println!(
        "{:<28} {:<7} {:>12} {:>10} {:>10} {:>8}  per round (alerts/s | p99 ms)",
        "test", "sync", "alerts/s", "p50 ms", "p99 ms", "errors"
    );
    for (t, (_, name)) in tests.iter().enumerate() {
        for (m, mode) in s.sync_modes.iter().enumerate() {
            let runs: Vec<&Stats> = results
                .iter()
                .filter(|(k, _)| *k == (t, m))
                .map(|(_, st)| st)
                .collect();
            let rate = median(runs.iter().map(|st| st.rate()).collect());
            let p50 = median(runs.iter().map(|st| st.q_ms(0.5)).collect());
            let p99 = median(runs.iter().map(|st| st.q_ms(0.99)).collect());
            let errors: u64 = runs.iter().map(|st| st.errors).sum();
            let each: Vec<String> = runs
                .iter()
                .map(|st| format!("{} | {}", thousands(st.rate()), ms(st.q_ms(0.99))))
                .collect();
            println!(
                "{:<28} {:<7} {:>12} {:>10} {:>10} {:>8}  {}",
                name,
                mode,
                thousands(rate),
                ms(p50),
                ms(p99),
                errors,
                each.join(", ")
            );
        }
    }
}

async fn run(s: Settings) {
    let machine = machine();
    eprintln!("ingest bench: {machine}");
    if !s.sync_modes.is_empty() {
        run_sync(&s, &machine).await;
        return;
    }
    if !s.alertmanager_note.is_empty() {
        eprintln!("Alertmanager {}", s.alertmanager_note);
    }
    let sink = start_sink();
    let starts = starts_at();
    let mut rows = Vec::new();
    let mut mem = Vec::new();
    let mut restarts = Vec::new();
    let open_test = format!("open loop {} × 1-alert/s", thousands(s.open_rate));
    for &wl in &s.workloads {
        eprintln!("workload {}", wl.describe());
        for &size in s.rss_alerts.iter().filter(|_| s.wants("memory")) {
            for kind in s.kinds() {
                let server = Server::start(kind, wl, &s, &sink).await;
                let (start_kib, _) = server.memory_kib();
                let st = load(&server, &sink, size, &s, &starts).await;
                let (rss_kib, hwm_kib, settled) = settle(&server, &s).await;
                let (active, disk) = server.counts().await;
                drop(server);
                eprintln!(
                    "  {:?} memory                   {:<13} {} of {} alerts acknowledged at {} alerts/s ({} errors, {} retries{}): VmRSS {} MiB{}, VmHWM {} MiB, {} B/alert, held {:?}, disk {:?}",
                    wl,
                    kind.name(),
                    thousands(st.alerts as f64),
                    thousands(size as f64),
                    thousands(st.rate()),
                    st.errors,
                    st.retries,
                    st.stopped
                        .as_ref()
                        .map(|r| format!(", STOPPED EARLY: {r}"))
                        .unwrap_or_default(),
                    mib(rss_kib),
                    if settled { "" } else { " (still moving)" },
                    mib(hwm_kib),
                    thousands(per_alert(rss_kib, st.alerts)),
                    active,
                    disk
                );
                mem.push(MemRow {
                    wl,
                    kind,
                    size,
                    load: st,
                    start_kib,
                    active,
                    rss_kib,
                    hwm_kib,
                    settled,
                    disk,
                });
            }
        }
        for per_post in [100usize, 1] {
            let id = if per_post == 100 {
                "closed100"
            } else {
                "closed1"
            };
            if !s.wants(id) {
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
                    id,
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
                id: "open",
                test: open_test.clone(),
                kind,
                st,
            });
        }
        if s.wants("restart") {
            restarts.push(restart_test(wl, &s, &sink, &starts).await);
        }
    }
    report(&s, &machine, &rows, &mem, &restarts);
}

fn main() {
    let settings = Settings::from_env();
    if env_str("BENCH_ROUTER_API").is_some_and(|v| v == "v2") {
        ROUTER_API_V2.store(true, Ordering::Relaxed);
    }
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
