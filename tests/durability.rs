//! Crash safety with the real binary: `kill -9` before `group_wait` ends, or while a
//! notification is still failing, and a restart on the same store delivers exactly once.
mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Proc {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    base: String,
}

async fn spawn(config: &std::path::Path, port: u16) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alert-router"))
        .arg("--config")
        .arg(config)
        .arg("--log-level")
        .arg("warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn alert-router");
    let out = child.stdout.take().unwrap();
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let sink = stdout.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, "router ready").await;
    Proc {
        child,
        stdout,
        base,
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // never leave a router behind when a test fails
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// POST a webhook body to the router; returns the HTTP status.
    async fn post(&self, path: &str, body: &serde_json::Value) -> u16 {
        reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    fn kill9(self) -> Vec<String> {
        let mut p = self;
        p.child.kill().unwrap(); // SIGKILL
        p.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50)); // let the reader drain the pipe
        let v = p.stdout.lock().unwrap().clone();
        v
    }
    fn firing_lines(&self) -> usize {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("[FIRING"))
            .count()
    }
    async fn stored_alerts(&self) -> Vec<serde_json::Value> {
        reqwest::get(format!("{}/admin/v1/alerts", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    async fn notifications(&self) -> Vec<serde_json::Value> {
        reqwest::get(format!("{}/admin/v1/notifications", self.base))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
            .as_array()
            .cloned()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_before_group_wait_then_restart_delivers_once() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(dir.path(), "route:\n  receiver: ops\n  group_by: [alertname]\n  group_wait: 2s\n  group_interval: 300ms\nreceivers:\n  - name: ops\n    log_configs: [{}]\n", port);
    let p = spawn(&cfg, port).await;
    // fresh alerts (startsAt = now) so group_wait applies
    let mut a = alert(&[("alertname", "Crash"), ("instance", "a")], "firing");
    let mut b = alert(&[("alertname", "Crash"), ("instance", "b")], "firing");
    let now = alert_router::alert::format_time(time::OffsetDateTime::now_utc());
    a["startsAt"] = now.clone().into();
    b["startsAt"] = now.into();
    assert_eq!(p.post("/webhook", &webhook(vec![a, b])).await, 200);
    let out1 = p.kill9();
    assert_eq!(
        out1.iter().filter(|l| l.contains("[FIRING")).count(),
        0,
        "sent before group_wait: {out1:?}"
    );

    let p = spawn(&cfg, port).await;
    let n = wait_for(
        Duration::from_secs(20),
        "delivery after restart",
        || async {
            let v = p.notifications().await;
            v.iter().any(|n| n["state"] == "delivered").then_some(v)
        },
    )
    .await;
    assert_eq!(n.len(), 1, "{n:#?}");
    assert_eq!(n[0]["message"]["alerts"].as_array().unwrap().len(), 2);
    // wait several group_interval ticks: still exactly one, on the wire too
    let groups_url = format!("{}/admin/v1/groups", p.base);
    let first: serde_json::Value = reqwest::get(&groups_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t0 = first[0]["last_flush"].clone();
    wait_for(
        Duration::from_secs(10),
        "three more flush ticks",
        || async {
            let g: serde_json::Value = reqwest::get(&groups_url)
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let cur = g[0]["last_flush"].as_str().map(|s| s.to_string());
            let t0 = t0.as_str().map(|s| s.to_string());
            match (cur, t0) {
                (Some(c), Some(t)) => {
                    let c = time::OffsetDateTime::parse(
                        &c,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .unwrap();
                    let t = time::OffsetDateTime::parse(
                        &t,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .unwrap();
                    (c - t >= time::Duration::milliseconds(900)).then_some(())
                }
                _ => None,
            }
        },
    )
    .await;
    assert_eq!(p.notifications().await.len(), 1);
    assert_eq!(
        p.firing_lines(),
        1,
        "printed notifications: {:?}",
        p.stdout.lock().unwrap()
    );
    p.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_while_destination_fails_then_restart_delivers_once() {
    init();
    let mock = MockServer::start(Reply::status(503, "down"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(dir.path(), &format!(
                "delivery: {{backoff_initial: 100ms, backoff_max: 300ms}}\nroute:\n  receiver: ops\n  group_wait: 0s\nreceivers:\n  - name: ops\n    webhook_configs: [{{url: '{}'}}]\n",
                mock.url("/hook")
            ), port);
    let p = spawn(&cfg, port).await;
    assert_eq!(
        p.post(
            "/webhook",
            &webhook(vec![alert(&[("alertname", "Down")], "firing")])
        )
        .await,
        200
    );
    wait_for(Duration::from_secs(10), "failed attempts", || async {
        (mock.count() >= 2).then_some(())
    })
    .await;
    p.kill9();
    let failed_attempts = mock.count();
    *mock.default_reply.lock().unwrap() = Reply::ok("ok");
    let p = spawn(&cfg, port).await;
    let n = wait_for(
        Duration::from_secs(20),
        "delivery after restart",
        || async {
            let v = p.notifications().await;
            v.iter().any(|n| n["state"] == "delivered").then_some(v)
        },
    )
    .await;
    assert_eq!(n.len(), 1);
    assert!(
        n[0]["attempts"].as_u64().unwrap() >= 2,
        "attempts survive the restart: {}",
        n[0]
    );
    // exactly one successful request reached the destination
    assert_eq!(mock.count(), failed_attempts + 1);
    let body = mock.requests().last().unwrap().json();
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "Down");
    p.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_keeps_state() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(dir.path(), "route:\n  receiver: ops\n  group_wait: 1h\nreceivers:\n  - name: ops\n    log_configs: [{}]\n", port);
    let mut p = spawn(&cfg, port).await;
    assert_eq!(
        p.post(
            "/webhook",
            &webhook(vec![alert(&[("alertname", "Term")], "firing")])
        )
        .await,
        200
    );
    let pid = p.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = wait_for(Duration::from_secs(20), "exit after SIGTERM", || {
        let s = p.child.try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(status.success(), "exit status {status:?}");
    let p = spawn(&cfg, port).await;
    let alerts: serde_json::Value = reqwest::get(format!("{}/admin/v1/alerts", p.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts[0]["labels"]["alertname"], "Term");
    let groups: serde_json::Value = reqwest::get(format!("{}/admin/v1/groups", p.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        groups.as_array().unwrap().len(),
        1,
        "the pending group is rebuilt after restart"
    );
    p.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_keeps_running_on_a_bad_config() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("c.yml");
    let good = full_config(
        dir.path(),
        "route:\n  receiver: ops\nreceivers:\n  - name: ops\n    log_configs: [{}]\n",
        &format!("127.0.0.1:{port}"),
    );
    std::fs::write(&cfg, &good).unwrap();
    let p = spawn(&cfg, port).await;
    let hash = || async {
        let s: serde_json::Value = reqwest::get(format!("{}/admin/v1/status", p.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        s["config_hash"].as_str().unwrap().to_string()
    };
    let h0 = hash().await;
    let pid = p.child.id().to_string();
    // a broken config: SIGHUP is refused, the old config keeps serving
    std::fs::write(&cfg, good.replace("receiver: ops", "receiver: ghost")).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for(
        Duration::from_secs(10),
        "failed reload recorded",
        || async {
            (metric(&p.base, "alert_router_config_last_reload_successful").await == 0.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(hash().await, h0);
    // a good one with a second receiver: applied
    std::fs::write(
        &cfg,
        good.replace(
            "    log_configs: [{}]\n",
            "    log_configs: [{}]\n  - name: extra\n    log_configs: [{}]\n",
        ),
    )
    .unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for(Duration::from_secs(10), "reload applied", || async {
        let h = hash().await;
        (h != h0).then_some(())
    })
    .await;
    assert_eq!(
        metric(&p.base, "alert_router_config_last_reload_successful").await,
        1.0
    );
    assert_eq!(
        p.post(
            "/webhook/extra",
            &webhook(vec![alert(&[("alertname", "Hup")], "firing")])
        )
        .await,
        200,
        "the new receiver exists after SIGHUP"
    );
    p.kill9();
}

/// Kill -9 while the alert log is being checkpointed (a tiny `checkpoint_min_bytes` makes
/// checkpoints run back to back under ingest), three times over: after each restart every
/// alert that was acknowledged is there, with its latest state, and nothing unacked is
/// invented. Default `storage.sync` (`batch`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_checkpoints_keeps_every_acknowledged_alert() {
    kill_during_checkpoints(None).await;
}

/// The same with `storage.sync: always` (every group commit fsynced). A kill -9 cannot
/// show what the fsyncs add (that is power loss, which this test cannot simulate): it
/// checks that the synced write path loses nothing acknowledged to a crash either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_checkpoints_with_sync_always_keeps_every_acknowledged_alert() {
    kill_during_checkpoints(Some("always")).await;
}

/// The same with `storage.sync: none`: no fsync of ours, still nothing acknowledged lost
/// when only the process dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_checkpoints_with_sync_none_keeps_every_acknowledged_alert() {
    kill_during_checkpoints(Some("none")).await;
}

async fn kill_during_checkpoints(sync: Option<&str>) {
    init();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("c.yml");
    let sync = sync.map(|m| format!("  sync: {m}\n")).unwrap_or_default();
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:{port}\nstorage:\n  path: {}\n  checkpoint_min_bytes: 8192\n{sync}route:\n  receiver: ops\n  group_by: [alertname]\n  group_wait: 1h\nreceivers:\n  - name: ops\n    log_configs: [{{}}]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    // fingerprint → the annotation value of its last acknowledged report
    let mut acked: std::collections::HashMap<String, String> = Default::default();
    let client = reqwest::Client::new();
    for round in 0..3 {
        let p = spawn(&cfg, port).await;
        let status_url = format!("{}/admin/v1/status", p.base);
        // everything acknowledged before the last kill is there
        let alerts = p.stored_alerts().await;
        let stored: std::collections::HashMap<String, String> = alerts
            .iter()
            .map(|a| {
                (
                    a["labels"]["instance"].as_str().unwrap().to_string(),
                    a["annotations"]["rev"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (inst, rev) in &acked {
            let got = stored.get(inst);
            // an unacked later report may have made it to disk too: never older than acked
            assert!(
                got.is_some_and(|g| g.parse::<u32>().unwrap() >= rev.parse::<u32>().unwrap()),
                "round {round}: {inst} acked at rev {rev}, stored {got:?}"
            );
        }
        let checkpoints_before = reqwest::get(&status_url)
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()["checkpoints"]["completed"]
            .as_u64()
            .unwrap();
        assert_eq!(checkpoints_before, 0, "counted per process");
        // post batches (new alerts and new revisions of old ones) until checkpoints have
        // run, then keep posting from a task and kill mid-stream
        let base = p.base.clone();
        let posting = {
            let client = client.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for batch in 0..10_000u32 {
                    let rev = (round * 10_000 + batch).to_string();
                    let alerts: Vec<serde_json::Value> = (0..50)
                        .map(|i| {
                            let inst = format!("host-{}", (batch * 50 + i) % 3000);
                            let mut a =
                                alert(&[("alertname", "Ckpt"), ("instance", &inst)], "firing");
                            a["annotations"] =
                                serde_json::json!({ "rev": rev, "pad": "x".repeat(200) });
                            a
                        })
                        .collect();
                    let insts: Vec<String> = alerts
                        .iter()
                        .map(|a| a["labels"]["instance"].as_str().unwrap().to_string())
                        .collect();
                    match client
                        .post(format!("{base}/webhook"))
                        .json(&webhook(alerts))
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => acked.push((insts, rev)),
                        _ => break, // killed
                    }
                }
                acked
            })
        };
        wait_for(Duration::from_secs(30), "three checkpoints", || async {
            let s: serde_json::Value = reqwest::get(&status_url).await.ok()?.json().await.ok()?;
            (s["checkpoints"]["completed"].as_u64()? >= 3).then_some(())
        })
        .await;
        p.kill9();
        for (insts, rev) in posting.await.unwrap() {
            for i in insts {
                acked.insert(i, rev.clone());
            }
        }
        assert!(!acked.is_empty());
    }
    let p = spawn(&cfg, port).await;
    let alerts = p.stored_alerts().await;
    assert!(alerts.len() >= acked.len());
    assert!(alerts.len() <= 3000, "no invented alerts: {}", alerts.len());
    for a in &alerts {
        let inst = a["labels"]["instance"].as_str().unwrap();
        if let Some(rev) = acked.get(inst) {
            let got: u32 = a["annotations"]["rev"].as_str().unwrap().parse().unwrap();
            assert!(got >= rev.parse::<u32>().unwrap(), "{inst}: {got} < {rev}");
        }
    }
    p.kill9();
}

/// Every silence change acknowledged with 200 survives `kill -9`: created, updated in
/// place, replaced (new id, old expired) and expired ones come back in the same states.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_survive_kill_9() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let yaml = "route:\n  receiver: r\nreceivers:\n  - name: r\n    log_configs: [{}]\n";
    let cfg = write_config(dir.path(), yaml, port);
    let p = spawn(&cfg, port).await;
    let client = reqwest::Client::new();
    let now = time::OffsetDateTime::now_utc();
    let t = |d: i64| alert_router::alert::format_time(now + time::Duration::hours(d));
    let post = |body: serde_json::Value| {
        let client = client.clone();
        let url = format!("{}/api/v2/silences", p.base);
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: serde_json::Value = r.json().await.unwrap();
            v["silenceID"].as_str().unwrap().to_string()
        }
    };
    let m = |v: &str| serde_json::json!([{"name": "alertname", "value": v, "isRegex": false}]);
    let body = |id: Option<&str>, v: &str, end: i64| {
        let mut b = serde_json::json!({"matchers": m(v), "startsAt": t(0), "endsAt": t(end), "createdBy": "me", "comment": "c"});
        if let Some(id) = id {
            b["id"] = id.into();
        }
        b
    };
    let kept = post(body(None, "A", 1)).await;
    let extended = post(body(None, "B", 1)).await;
    // Extended in place as amtool does it: the silence as stored, with a later end. Its
    // stored startsAt is when it was created, not the earlier time posted, and an active
    // silence whose start changes is replaced, not updated (as in Alertmanager).
    let stored: serde_json::Value = client
        .get(format!("{}/api/v2/silence/{extended}", p.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut extension = body(Some(&extended), "B", 5);
    extension["startsAt"] = stored["startsAt"].clone();
    assert_eq!(post(extension).await, extended);
    let replaced = post(body(None, "C", 1)).await;
    let replacement = post(body(Some(&replaced), "D", 1)).await;
    let expired = post(body(None, "E", 1)).await;
    let r = client
        .delete(format!("{}/api/v2/silence/{expired}", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    p.kill9();
    let p = spawn(&cfg, port).await;
    let get = |id: String| {
        let url = format!("{}/api/v2/silence/{id}", p.base);
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(get(kept).await["status"]["state"], "active");
    let e = get(extended).await;
    assert_eq!(e["status"]["state"], "active");
    let end = time::OffsetDateTime::parse(
        e["endsAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(end > now + time::Duration::hours(4), "extension lost: {e}");
    assert_eq!(get(replaced).await["status"]["state"], "expired");
    let r = get(replacement).await;
    assert_eq!(r["status"]["state"], "active");
    assert_eq!(r["matchers"][0]["value"], "D");
    assert_eq!(get(expired).await["status"]["state"], "expired");
    p.kill9();
}
