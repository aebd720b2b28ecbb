//! A store that cannot be written (issue 8 §1): the real binary on a store directory that
//! is a small tmpfs, filled to the last byte while it runs. Ingest must answer `503` with
//! `Retry-After` (never `2xx`), `/-/ready` turns false, the failure is logged once per
//! probe interval (not once per request), and when space comes back the router reopens
//! its store by itself: every acknowledged alert is there and deliveries resume.
//!
//! Mounting a tmpfs needs root (CI runs as root); without it the test fails saying so.
mod common;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test; lazily unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size_mb: u32) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it, which needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fill the filesystem holding `path` with `file`: big writes, then small ones, until
/// nothing more fits.
fn fill(file: &Path) {
    let mut f = std::fs::File::create(file).unwrap();
    for size in [1 << 20, 4096, 1] {
        let chunk = vec![1u8; size];
        while f.write_all(&chunk).is_ok() {}
    }
    let _ = f.sync_all();
}

/// Lines of the router's log containing `needle`.
fn log_lines(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

async fn post(base: &str, names: &[String]) -> reqwest::Response {
    let alerts = names
        .iter()
        .map(|n| alert(&[("alertname", n), ("team", "db")], "firing"))
        .collect();
    reqwest::Client::new()
        .post(format!("{base}/webhook"))
        .json(&webhook(alerts))
        .send()
        .await
        .unwrap()
}

/// Status and JSON body of a GET (status 0 when the router does not answer: it closes
/// its listener for a moment while it restarts).
async fn get(base: &str, path: &str) -> (u16, Value) {
    let Ok(r) = reqwest::get(format!("{base}{path}")).await else {
        return (0, Value::Null);
    };
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Whether the sink got a notification naming `alertname`.
fn delivered(sink: &MockServer, alertname: &str) -> bool {
    sink.requests().iter().any(|r| {
        r.json()["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["labels"]["alertname"] == alertname))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_answers_503_then_recovers_by_itself() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _mount = Tmpfs::mount(&data, 48);
    let sink = MockServer::start(Reply::ok("{}"), None).await;
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            "route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 500ms\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: '{}'\n",
            sink.url("/hook")
        ),
        port,
    );
    let log = dir.path().join("router.log");
    let child = Command::new(env!("CARGO_BIN_EXE_alert-router"))
        .arg("--config")
        .arg(&cfg)
        .arg("--log-level")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn alert-router");
    let _router = RouterProc {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir: None,
    };
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, "router ready").await;

    // Before: acknowledged and delivered.
    let mut acked: Vec<String> = (0..5).map(|i| format!("Before{i}")).collect();
    assert_eq!(post(&base, &acked).await.status(), 200);
    wait_for(Duration::from_secs(10), "first delivery", || {
        let ok = delivered(&sink, "Before0");
        async move { ok.then_some(()) }
    })
    .await;

    // The disk fills up: posts keep coming; the first that cannot be stored gets a 503.
    let filler = data.join("filler");
    fill(&filler);
    // A post that fit in the last partly used page is acknowledged: it must survive too.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    let refused = loop {
        assert!(Instant::now() < deadline, "no 503 with a full disk");
        i += 1;
        let names = vec![format!("Full{i}")];
        let r = post(&base, &names).await;
        match r.status().as_u16() {
            200 => acked.extend(names),
            503 => break r,
            s => panic!(
                "unexpected status {s}: {}",
                r.text().await.unwrap_or_default()
            ),
        }
    };
    let failed_at = Instant::now();
    assert!(
        refused.headers().get("retry-after").is_some(),
        "503 without Retry-After"
    );
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("store cannot be written")),
        "{body}"
    );
    // Every later write is refused, readiness and status say why.
    for j in 0..20 {
        let r = post(&base, &[format!("Refused{j}")]).await;
        assert_eq!(
            r.status(),
            503,
            "a write acknowledged while the store is failed"
        );
    }
    let (ready, _) = get(&base, "/-/ready").await;
    assert_eq!(ready, 503, "/-/ready while the store refuses writes");
    let (_, status) = get(&base, "/admin/v1/status").await;
    assert!(status["store_error"].is_string(), "{status}");
    assert_eq!(metric(&base, "alert_router_store_failed").await, 1.0);
    // wait for at least one probe report, then give the space back
    wait_for(Duration::from_secs(15), "a probe report", || {
        let n = log_lines(&log, "store refuses writes");
        async move { (n >= 1).then_some(()) }
    })
    .await;
    std::fs::remove_file(&filler).unwrap();
    let recovered = wait_for(Duration::from_secs(30), "recovery", || {
        let base = base.clone();
        async move {
            let (ready, _) = get(&base, "/-/ready").await;
            (ready == 200).then(Instant::now)
        }
    })
    .await;
    let failed_for = recovered - failed_at;
    eprintln!("store failed for {failed_for:?} before it was reopened; the router said:");
    for l in std::fs::read_to_string(&log).unwrap_or_default().lines() {
        if l.contains("store") {
            eprintln!("  {l}");
        }
    }

    // One clear error per interval, not one per refused request.
    let probes = log_lines(&log, "store refuses writes");
    let allowed = failed_for.as_secs() as usize / 5 + 2;
    assert!(
        (1..=allowed).contains(&probes),
        "{probes} probe reports in {failed_for:?}"
    );
    assert_eq!(log_lines(&log, "store write failed"), 1);
    assert_eq!(log_lines(&log, "ingest: storing alerts failed"), 0);
    assert_eq!(log_lines(&log, "store reopened"), 1);

    // After: writes are acknowledged again, nothing acknowledged was lost, deliveries resume.
    let after = vec!["After0".to_string()];
    assert_eq!(post(&base, &after).await.status(), 200);
    acked.extend(after);
    let (_, stored) = get(&base, "/admin/v1/alerts").await;
    let names: std::collections::BTreeSet<String> = stored
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str().map(String::from))
        .collect();
    for a in &acked {
        assert!(names.contains(a), "acknowledged alert {a} lost: {names:?}");
    }
    assert_eq!(metric(&base, "alert_router_store_failed").await, 0.0);
    wait_for(Duration::from_secs(10), "delivery after recovery", || {
        let ok = delivered(&sink, "After0");
        async move { ok.then_some(()) }
    })
    .await;
}
