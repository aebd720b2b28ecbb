//! Dispatch benchmark: 10,000 groups flushing at once into an instant local sink with no
//! rate limit, through the real release `alert-router` binary.
//!
//! The router gets `BENCH_GROUPS` (10,000) distinct alerts, one group each
//! (`group_by: [alertname, instance]`), posted as fast as it acks them; every group has the
//! same `group_wait` (2 s; 6 s with `BENCH_INGEST`), so all of them flush within the same
//! second. The webhook sink is an in-process HTTP server that answers 200 at once and
//! counts what it gets. Reported:
//!
//! * notifications delivered per second (first to last sink hit), and per second until the
//!   last one is *recorded* as delivered in the store (the admin API shows it);
//! * router CPU seconds per notification (from `/proc/<pid>/stat`, over the dispatch window);
//! * duplicates (sink hits beyond one per group) and failures (notifications not delivered).
//!
//! With `BENCH_INGEST=1` an ingest load runs throughout (issue 6: dispatch "without slowing
//! ingest by more than half"): `BENCH_INGEST_CONNECTIONS` (20) closed loops post 100-alert
//! webhooks of distinct alerts (20 alert names, workload A's shape) to a route that holds
//! them (`group_wait` 1h, a receiver without integrations). The load starts once the
//! benchmark's alerts are posted, whose `group_wait` is then 6 s. Reported besides: ingest
//! alerts/s from 1 s after the load starts until just before the flush, during the
//! dispatch window (first → last sink hit), and their ratio (CPU per notification is not
//! reported: the router's CPU is mostly the load's).
//!
//! ```text
//! cargo bench --bench dispatch
//! BENCH_GROUPS=2000 cargo bench --bench dispatch
//! BENCH_INGEST=1 cargo bench --bench dispatch
//! BENCH_INGEST=1 BENCH_SYNC=none cargo bench --bench dispatch   # storage.sync (batch)
//! ```
//! Without `--bench` (as under `cargo test --benches`) it runs a 500-group smoke version.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Hits and the time of the first and last one.
#[derive(Default)]
struct SinkState {
    hits: AtomicU64,
    /// Why the sink could not read a request (the benchmark stops).
    bad: Mutex<Option<String>>,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

/// The sink: a minimal HTTP/1.1 server (keep-alive, `Content-Length` bodies) answering
/// `200 ok` at once. It shares the 2 cores with the router, so it is kept as cheap as an
/// "instant" destination can be: no framework, no routing, one read buffer per connection
/// (a request it cannot frame, such as a chunked one, stops the benchmark).
fn start_sink() -> (u16, Arc<SinkState>) {
    let state = Arc::new(SinkState::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let st = state.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("sink runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind sink");
            tx.send(listener.local_addr().expect("addr").port())
                .expect("port");
            while let Ok((conn, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve_sink(conn, &st).await;
                });
            }
        });
    });
    (rx.recv().expect("sink port"), state)
}

/// The `Content-Length` of a request head; chunked or unframed requests are errors.
fn body_length(head: &[u8]) -> Result<usize, String> {
    let head = std::str::from_utf8(head).map_err(|_| "head not UTF-8".to_string())?;
    let mut len = None;
    for line in head.split("\r\n").skip(1) {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header {line:?}"))?;
        if k.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked request".into());
        }
        if k.eq_ignore_ascii_case("content-length") {
            len = Some(v.trim().parse::<usize>().map_err(|e| e.to_string())?);
        }
    }
    len.ok_or_else(|| "request without Content-Length".into())
}

/// Answer every request on `conn` with `200 ok`, counting each.
async fn serve_sink(mut conn: tokio::net::TcpStream, st: &SinkState) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        // a whole request: the head, then Content-Length bytes of body
        let need = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                match body_length(&buf[..end]) {
                    Ok(len) => break end + 4 + len,
                    Err(e) => {
                        *st.bad.lock().expect("lock") = Some(e);
                        return Ok(());
                    }
                }
            }
            if conn.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        while buf.len() < need {
            if conn.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        buf.drain(..need);
        let now = Instant::now();
        st.hits.fetch_add(1, Ordering::Relaxed);
        st.first.lock().expect("lock").get_or_insert(now);
        *st.last.lock().expect("lock") = Some(now);
        conn.write_all(OK).await?;
    }
}

/// The ingest load of `BENCH_INGEST`: alerts acknowledged and refused so far, and the
/// acknowledged count sampled every 10 ms.
struct Load {
    acked: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Load {
    /// `connections` closed loops posting 100 distinct alerts each time, plus the sampler.
    fn start(port: u16, connections: usize) -> Load {
        let load = Load {
            acked: Arc::default(),
            refused: Arc::default(),
            samples: Arc::default(),
            stop: Arc::default(),
        };
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .expect("client");
        let starts = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("time");
        for c in 0..connections {
            let (client, acked, refused, stop) = (
                client.clone(),
                load.acked.clone(),
                load.refused.clone(),
                load.stop.clone(),
            );
            let starts = starts.clone();
            tokio::spawn(async move {
                let url = format!("http://127.0.0.1:{port}/webhook");
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let alerts: Vec<serde_json::Value> = (0..100)
                        .map(|i| {
                            seq += 1;
                            serde_json::json!({
                                "status": "firing",
                                "labels": {"alertname": format!("Load{}", (seq + i) % 20), "load": "true",
                                           "instance": format!("load-{c}-{seq}"), "job": "node-exporter",
                                           "namespace": "monitoring", "severity": "warning"},
                                "annotations": {"summary": "ingest load during the dispatch benchmark",
                                                "description": "a distinct alert of workload A's shape, held by a route with group_wait 1h so only the dispatch benchmark's groups reach the sink"},
                                "startsAt": starts,
                                "endsAt": "0001-01-01T00:00:00Z",
                            })
                        })
                        .collect();
                    let body =
                        serde_json::json!({"version": "4", "status": "firing", "alerts": alerts});
                    match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status() == 200 => {
                            acked.fetch_add(100, Ordering::Relaxed);
                        }
                        _ => {
                            refused.fetch_add(100, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            });
        }
        let (acked, samples, stop) = (load.acked.clone(), load.samples.clone(), load.stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = acked.load(Ordering::Relaxed);
                samples.lock().expect("lock").push((Instant::now(), n));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        load
    }

    /// Acknowledged alerts per second between `from` and `to` (the samples nearest inside).
    fn rate(&self, from: Instant, to: Instant) -> f64 {
        let s = self.samples.lock().expect("lock");
        let inside: Vec<&(Instant, u64)> =
            s.iter().filter(|(t, _)| *t >= from && *t <= to).collect();
        match (inside.first(), inside.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / (b.0 - a.0).as_secs_f64(),
            _ => 0.0,
        }
    }
}

struct Router {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

async fn start_router(sink_port: u16, group_wait: u64) -> Router {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("config.yml");
    let sync = std::env::var("BENCH_SYNC").unwrap_or_else(|_| "batch".into());
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\nstorage:\n  path: {}\n  sync: {sync}\n\
             ingest: {{max_pending_alerts: 1000000}}\n\
             route:\n  receiver: sink\n  group_by: [alertname, instance]\n  group_wait: {group_wait}s\n  group_interval: 1h\n  routes:\n\
             \x20   - matchers: ['load=\"true\"']\n      receiver: hold\n      group_by: [alertname]\n      group_wait: 1h\n\
             receivers:\n  - name: hold\n  - name: sink\n    webhook_configs:\n      - url: 'http://127.0.0.1:{sink_port}/hook'\n        rate_limit: {{messages: 1000000, per: 1s}}\n        digest_threshold: 0\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_alert-router"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--log-level")
        .arg("error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start router");
    let r = Router {
        child,
        port,
        _dir: dir,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("http://127.0.0.1:{port}/-/ready"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "router not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r
}

/// Delivered notifications as the store records them.
async fn recorded(client: &reqwest::Client, port: u16, limit: u64) -> (u64, u64) {
    let get = |state: &'static str| {
        let c = client.clone();
        async move {
            c.get(format!(
                "http://127.0.0.1:{port}/admin/v1/notifications?state={state}&limit={limit}"
            ))
            .send()
            .await
            .ok()?
            .json::<Vec<serde_json::Value>>()
            .await
            .ok()
            .map(|v| v.len() as u64)
        }
    };
    let delivered = get("delivered").await.unwrap_or(0);
    let mut open = 0;
    for s in ["pending", "failed", "dead"] {
        open += get(s).await.unwrap_or(0);
    }
    (delivered, open)
}

/// Whether the store still records a notification as not finished (pending or failed).
async fn open_left(client: &reqwest::Client, port: u16) -> bool {
    for state in ["pending", "failed"] {
        let found = client
            .get(format!(
                "http://127.0.0.1:{port}/admin/v1/notifications?state={state}&limit=1"
            ))
            .send()
            .await
            .ok();
        let n = match found {
            Some(r) => r
                .json::<Vec<serde_json::Value>>()
                .await
                .map_or(1, |v| v.len()),
            None => 1,
        };
        if n > 0 {
            return true;
        }
    }
    false
}

async fn run(groups: u64, ingest_connections: usize) {
    let (sink_port, sink) = start_sink();
    // With the ingest load, the groups wait long enough for the load to be measured alone
    // first (it starts once they are posted, so they still flush at once).
    let group_wait = if ingest_connections > 0 { 6 } else { 2 };
    let router = start_router(sink_port, group_wait).await;
    let client = reqwest::Client::new();
    let starts = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let posted = Instant::now();
    for chunk in 0..groups.div_ceil(100) {
        let alerts: Vec<serde_json::Value> = (chunk * 100..((chunk + 1) * 100).min(groups))
            .map(|i| {
                serde_json::json!({
                    "status": "firing",
                    "labels": {"alertname": "DispatchBench", "instance": format!("host-{i}"), "severity": "warning"},
                    "annotations": {"summary": "dispatch benchmark"},
                    "startsAt": starts,
                    "endsAt": "0001-01-01T00:00:00Z",
                })
            })
            .collect();
        let body = serde_json::json!({"version": "4", "status": "firing", "alerts": alerts});
        let r = client
            .post(format!("http://127.0.0.1:{}/webhook", router.port))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200, "ingest refused");
    }
    let ingest = posted.elapsed();
    let cpu0 = cpu_seconds(router.child.id());
    let load = (ingest_connections > 0).then(|| Load::start(router.port, ingest_connections));
    let mut baseline = 0.0;
    if let Some(l) = &load {
        // warm up, then the ingest rate alone until just before the first group flushes
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t0 = Instant::now();
        let until = posted + Duration::from_millis(group_wait * 1000 - 300);
        tokio::time::sleep_until(until.into()).await;
        baseline = l.rate(t0, Instant::now());
    }
    // Every group flushes 2 s after its alert arrived; wait for all deliveries.
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.hits.load(Ordering::Relaxed) < groups {
        if let Some(e) = sink.bad.lock().expect("lock").as_ref() {
            panic!("the sink could not read a request: {e}");
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {groups} delivered",
            sink.hits.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu1 = cpu_seconds(router.child.id());
    let first = sink.first.lock().expect("lock").expect("first hit");
    let last = sink.last.lock().expect("lock").expect("last hit");
    let delivered_s = (last - first).as_secs_f64().max(1e-6);
    let during = load.as_ref().map(|l| {
        // the last sample may be up to 10 ms behind the last hit
        let r = l.rate(first, last + Duration::from_millis(20));
        l.stop.store(true, Ordering::Relaxed);
        (r, l.refused.load(Ordering::Relaxed))
    });
    // Cheap polls (is any notification still open?) until none is, then one full count:
    // listing every notification on each poll would load the router being measured.
    while open_left(&client, router.port).await && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recorded_s = first.elapsed().as_secs_f64();
    let (rec, open) = recorded(&client, router.port, groups + 10).await;
    // Give late duplicates a moment to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits = sink.hits.load(Ordering::Relaxed);
    println!("\n## alert-router dispatch benchmark\n");
    println!("{} ({} cores)\n", machine(), num_cpus());
    println!("| figure | value |\n|---|---|");
    println!("| groups flushing at once | {groups} |");
    println!(
        "| ingest of the {groups} alerts | {:.2} s |",
        ingest.as_secs_f64()
    );
    println!(
        "| delivered (first → last sink hit) | **{:.0} notifications/s** ({delivered_s:.2} s) |",
        groups as f64 / delivered_s
    );
    println!(
        "| delivered and recorded in the store | {:.0} notifications/s ({recorded_s:.2} s) |",
        rec as f64 / recorded_s
    );
    if load.is_none() {
        println!(
            "| router CPU per notification | {:.0} µs |",
            (cpu1 - cpu0) * 1e6 / groups as f64
        );
    }
    if let Some((r, refused)) = during {
        println!(
            "| ingest alongside ({ingest_connections} connections, 100-alert posts), before the flush | {baseline:.0} alerts/s |"
        );
        println!(
            "| ingest alongside, during the dispatch window | {r:.0} alerts/s (**{:.2}×** the rate before; {refused} alerts refused) |",
            r / baseline.max(1e-6)
        );
    }
    println!("| duplicates | {} |", hits.saturating_sub(groups));
    println!("| failures (not delivered) | {open} |");
    assert_eq!(hits, groups, "duplicates at the sink");
    assert_eq!(open, 0, "notifications not delivered");
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn machine() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bench = std::env::args().any(|a| a == "--bench");
    let groups = std::env::var("BENCH_GROUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 10_000 } else { 500 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let ingest = std::env::var("BENCH_INGEST").is_ok_and(|v| v == "1");
    let connections = std::env::var("BENCH_INGEST_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    rt.block_on(run(groups, if ingest { connections } else { 0 }));
}
