//! Regression tests for reported bugs, black-box through HTTP:
//! 1. cancelled requests (reload, ingest, test-send) must not leave the router half done;
//! 2. `/api/v2/alerts` resolves with an `endsAt` in the past;
//! 3. reloads and restarts do not re-send resolves sent long ago;
//! 4. notifications created during a reload are delivered once;
//! 5. a webhook re-fire after a resolve starts a new episode (new `startsAt`, `group_wait`);
//! 6. concurrent updates of one alert: the store and the groups agree;
//! 7. concurrent admin retries send a notification once;
//! 9. a reload drops the queue-depth gauge of a removed integration and keeps rate limits.
mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// helpers

fn ts(t: time::OffsetDateTime) -> String {
    alert_router::alert::format_time(t)
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// The alert name a sink request is about (first alert of the payload).
fn alertname_of(r: &Received) -> String {
    r.json()["alerts"][0]["labels"]["alertname"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn count_named(sink: &MockServer, name: &str) -> usize {
    sink.requests()
        .iter()
        .filter(|r| alertname_of(r) == name)
        .count()
}

/// GET `{base}{path}` as JSON (works for in-process routers and subprocesses alike).
async fn get_json(base: &str, path: &str) -> Value {
    let r = reqwest::get(format!("{base}{path}"))
        .await
        .expect("request");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.expect("json")
}

async fn post_json(base: &str, path: &str, body: &Value) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// Every notification in the admin API, oldest (lowest id) first.
async fn all_notifications(base: &str) -> Vec<Value> {
    let mut v = get_json(base, "/admin/v1/notifications?limit=10000")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default();
    v.sort_by_key(|n| n["id"].as_u64().unwrap_or(0));
    v
}

/// Poll `f` until it returns `Ok`, or panic after `timeout` with the last `Err` it gave
/// (so a failure says what was still wrong).
async fn settle<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Check that `f` keeps returning `Ok` for `dur` (used after the expected messages
/// arrived, to give a would-be duplicate time to show up); panics at the first `Err`.
async fn stays<F, Fut>(dur: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + dur;
    loop {
        if let Err(e) = f().await {
            panic!("{what}: {e}");
        }
        if Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn group_last_flush(base: &str, alertname: &str) -> Option<String> {
    let groups = get_json(base, "/admin/v1/groups").await;
    groups
        .as_array()?
        .iter()
        .find(|g| g["labels"]["alertname"] == alertname)
        .and_then(|g| g["last_flush"].as_str().map(str::to_string))
}

/// Wait until the group of `alertname` has been flushed `ticks` more times, so that
/// "nothing more was sent" is checked after the dispatcher really looked again.
async fn wait_ticks(base: &str, alertname: &str, ticks: u32) {
    for _ in 0..ticks {
        let before = group_last_flush(base, alertname).await;
        wait_for(Duration::from_secs(15), "a group flush tick", || {
            let before = before.clone();
            async move {
                let now = group_last_flush(base, alertname).await;
                (now.is_some() && now != before).then_some(())
            }
        })
        .await;
    }
}

async fn metrics_text(app: &TestApp) -> String {
    reqwest::get(app.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// POST /-/reload and expect the documented success answer.
async fn reload_ok(app: &TestApp) {
    let r = app.client.post(app.url("/-/reload")).send().await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "reload answer: {body}");
    assert_eq!(body["status"], "success", "reload answer: {body}");
}

fn webhook_receiver_config(route_extra: &str, url: &str, integration_extra: &str) -> String {
    format!(
        "route:\n  receiver: team\n  group_by: [alertname]\n{route_extra}receivers:\n  - name: team\n    webhook_configs:\n      - url: '{url}'\n{integration_extra}"
    )
}

/// Big ingest batches posted back to back (labels `load="yes"`), to keep the store writer
/// busy; stopped with [`IngestLoad::stop`].
struct IngestLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl IngestLoad {
    fn start(app: &TestApp) -> IngestLoad {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let url = app.url("/webhook");
        let task = tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut k = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let alerts: Vec<Value> = (0..1000)
                    .map(|i| {
                        alert(
                            &[
                                ("alertname", "Load"),
                                ("load", "yes"),
                                ("k", k.to_string().as_str()),
                                ("i", i.to_string().as_str()),
                            ],
                            "firing",
                        )
                    })
                    .collect();
                let _ = c.post(&url).json(&webhook(alerts)).send().await;
                k += 1;
            }
        });
        IngestLoad { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.task.await;
    }
}

// ---------------------------------------------------------------------------------------
// 1. cancelled requests

/// A reload whose client gives up while the workers wait for a slow in-flight send must
/// still complete: integrations listed, ready, new alerts delivered, the in-flight one
/// delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_reload_keeps_delivery_workers() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    // the first notification is answered only after 8s
    sink.push(Reply::ok("ok").with_delay(Duration::from_secs(8)));
    let app = TestApp::start(&webhook_receiver_config(
        "  group_wait: 0s\n  group_interval: 1s\n",
        &sink.url("/hook"),
        "",
    ))
    .await;
    let a = alert(&[("alertname", "InFlight")], "firing");
    assert_eq!(
        app.post_json("/webhook", &webhook(vec![a])).await.status(),
        200
    );
    wait_for(
        Duration::from_secs(10),
        "the slow send in flight",
        || async { (sink.count() == 1).then_some(()) },
    )
    .await;

    // a client that gives up after 2s (the reload waits for the 8s send)
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let r = impatient.post(app.url("/-/reload")).send().await;
    if let Ok(r) = &r {
        // a fixed router may answer quickly; any answer must be a documented one
        assert!(
            [200, 202].contains(&r.status().as_u16()),
            "reload answered {}",
            r.status()
        );
    }

    let receivers = settle(
        Duration::from_secs(15),
        "the webhook integration listed again after the cancelled reload",
        || async {
            let rv = app.get_json("/admin/v1/receivers").await;
            let team = rv
                .as_array()
                .and_then(|v| v.iter().find(|r| r["name"] == "team").cloned())
                .unwrap_or(Value::Null);
            let n = team["integrations"].as_array().map_or(0, Vec::len);
            if n == 1 {
                Ok(rv)
            } else {
                Err(format!("receivers: {rv}"))
            }
        },
    )
    .await;
    assert_eq!(receivers.as_array().unwrap().len(), 1, "{receivers}");
    assert_eq!(app.status(reqwest::Method::GET, "/-/ready").await, 200);

    // a new alert (another group) is delivered
    let b = alert(&[("alertname", "AfterCancel")], "firing");
    assert_eq!(
        app.post_json("/webhook", &webhook(vec![b])).await.status(),
        200
    );
    wait_for(
        Duration::from_secs(20),
        "the new alert delivered after the cancelled reload",
        || async { (count_named(&sink, "AfterCancel") >= 1).then_some(()) },
    )
    .await;
    // the in-flight notification is finished, and was delivered exactly once
    settle(
        Duration::from_secs(15),
        "every notification delivered",
        || async {
            let ns = all_notifications(&app.base).await;
            if ns.len() == 2 && ns.iter().all(|n| n["state"] == "delivered") {
                Ok(())
            } else {
                Err(format!("{ns:#?}"))
            }
        },
    )
    .await;
    // short: a duplicate would be sent right away by a worker that still holds it
    stays(
        Duration::from_millis(1500),
        "each alert sent once",
        || async {
            let (a, b) = (
                count_named(&sink, "InFlight"),
                count_named(&sink, "AfterCancel"),
            );
            if a == 1 && b == 1 {
                Ok(())
            } else {
                Err(format!("InFlight sent {a} times, AfterCancel {b} times"))
            }
        },
    )
    .await;
    app.stop().await;
}

/// Ingest requests whose clients disconnect while the alerts are being stored: every alert
/// that was stored must still reach the aggregation groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_client_disconnect_still_groups_stored_alerts() {
    let app = TestApp::start(
        "route:\n  receiver: ops\n  group_by: [alertname]\n  group_wait: 1h\nreceivers:\n  - name: ops\n    log_configs: [{}]\n",
    )
    .await;
    const BATCH: usize = 1000;
    let stored = || async {
        app.get_json("/admin/v1/status").await["alerts_stored"]
            .as_u64()
            .unwrap_or(0) as usize
    };
    let mut acked = 0usize; // alerts of requests that got their 200
    let mut timed_out = 0usize;
    let started = Instant::now();
    // timeouts around the time a batch takes to store, so some requests are cut while
    // their alerts are being committed
    let timeouts_ms = [3u64, 6, 10, 15, 20, 30, 45, 60, 90, 130, 200, 300];
    for attempt in 0..48 {
        let ms = timeouts_ms[attempt % timeouts_ms.len()];
        let alerts: Vec<Value> = (0..BATCH)
            .map(|i| {
                alert(
                    &[
                        ("alertname", format!("Cut{attempt}").as_str()),
                        ("i", i.to_string().as_str()),
                    ],
                    "firing",
                )
            })
            .collect();
        let body = serde_json::to_vec(&webhook(alerts)).unwrap();
        let c = reqwest::Client::builder()
            .timeout(Duration::from_millis(ms))
            .build()
            .unwrap();
        match c
            .post(app.url("/webhook"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => acked += BATCH,
            Ok(r) => panic!("ingest answered {}", r.status()),
            Err(_) => timed_out += 1,
        }
        // stop once a request that was cut has stored its alerts anyway, or after ~15s
        if stored().await > acked || started.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    // let the writer finish whatever cut requests left queued
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n_stored = stored().await;
    eprintln!(
        "ingest_client_disconnect: {timed_out} requests cut, {acked} alerts acknowledged, {n_stored} stored"
    );
    assert!(
        n_stored > 0,
        "no alert stored at all: the test proves nothing"
    );
    settle(
        Duration::from_secs(15),
        "every stored alert in an aggregation group",
        || async {
            let alerts = app.get_json("/admin/v1/alerts").await;
            let stored: BTreeSet<String> = alerts
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["fingerprint"].as_str().unwrap().to_string())
                .collect();
            let groups = app.get_json("/admin/v1/groups").await;
            let grouped: BTreeSet<String> = groups
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["alerts"].as_array().cloned().unwrap_or_default())
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            let missing = stored.difference(&grouped).count();
            if missing == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{missing} of {} stored alerts are in no group",
                    stored.len()
                ))
            }
        },
    )
    .await;
    app.stop().await;
}

/// Admin test-sends whose clients disconnect while the notification is being stored must
/// not leave that notification pending forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_send_client_disconnect_does_not_strand_notifications() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&format!(
        "route:\n  receiver: ops\n  group_wait: 1h\nreceivers:\n  - name: ops\n    log_configs: [{{}}]\n  - name: team\n    webhook_configs:\n      - url: '{}'\n        rate_limit: {{messages: 1000, per: 1s}}\n",
        sink.url("/hook")
    ))
    .await;
    // keep the store writer busy so that each test-send's commit takes long enough to be
    // cut by the client
    let load = IngestLoad::start(&app);
    let total = || async { all_notifications(&app.base).await.len() };
    let mut accepted = 0usize;
    let mut cut = 0usize;
    let started = Instant::now();
    let timeouts_ms = [1u64, 2, 3, 5, 8, 12, 18, 25, 35, 50];
    for attempt in 0..200 {
        let ms = timeouts_ms[attempt % timeouts_ms.len()];
        let c = reqwest::Client::builder()
            .timeout(Duration::from_millis(ms))
            .build()
            .unwrap();
        match c
            .post(app.url("/admin/v1/receivers/team/test"))
            .send()
            .await
        {
            Ok(r) if r.status() == 202 => accepted += 1,
            Ok(r) => panic!("test-send answered {}", r.status()),
            Err(_) => cut += 1,
        }
        // stop once a request that was cut has stored its notification anyway, or after ~12s
        if total().await > accepted || started.elapsed() > Duration::from_secs(12) {
            break;
        }
    }
    load.stop().await;
    let n = total().await;
    eprintln!("test_send_client_disconnect: {cut} requests cut, {accepted} accepted, {n} notifications stored");
    assert!(
        n > 0,
        "no test notification stored at all: the test proves nothing"
    );
    settle(
        Duration::from_secs(15),
        "every test notification delivered",
        || async {
            let ns = all_notifications(&app.base).await;
            let open: Vec<u64> = ns
                .iter()
                .filter(|n| n["state"] != "delivered")
                .map(|n| n["id"].as_u64().unwrap())
                .collect();
            if open.is_empty() && sink.count() == ns.len() {
                Ok(())
            } else {
                Err(format!(
                    "{} of {} notifications not delivered (ids {open:?}); the sink got {}",
                    open.len(),
                    ns.len(),
                    sink.count()
                ))
            }
        },
    )
    .await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// 2. /api/v2/alerts resolves

/// Prometheus resolves by re-sending the alert with `endsAt` in the past: the alert is
/// resolved at once and the resolved notification follows at the next group_interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_v2_resolve_with_past_ends_at_resolves_at_once() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&webhook_receiver_config(
        "  group_wait: 0s\n  group_interval: 1s\n",
        &sink.url("/hook"),
        "",
    ))
    .await;
    let starts = ts(now() - time::Duration::minutes(1));
    let firing = json!([{
        "labels": {"alertname": "V2Resolve", "instance": "a"},
        "annotations": {"summary": "x"},
        "startsAt": starts,
        "generatorURL": "http://prometheus.test/graph",
    }]);
    assert_eq!(app.post_json("/api/v2/alerts", &firing).await.status(), 200);
    wait_for(
        Duration::from_secs(10),
        "the firing notification",
        || async { (sink.count() == 1).then_some(()) },
    )
    .await;
    assert_eq!(sink.requests()[0].json()["status"], "firing");

    let ends = ts(now() - time::Duration::seconds(1));
    let resolved = json!([{
        "labels": {"alertname": "V2Resolve", "instance": "a"},
        "annotations": {"summary": "x"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus.test/graph",
    }]);
    let posted = Instant::now();
    assert_eq!(
        app.post_json("/api/v2/alerts", &resolved).await.status(),
        200
    );
    let alerts = app.get_json("/admin/v1/alerts").await;
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{alerts}");
    assert_eq!(
        alerts[0]["status"], "resolved",
        "the newer report's endsAt (in the past) must win: {alerts}"
    );
    wait_for(
        Duration::from_secs(5),
        "the resolved notification at the next group_interval",
        || async { (sink.count() >= 2).then_some(()) },
    )
    .await;
    let r = &sink.requests()[1];
    let body = r.json();
    assert_eq!(body["status"], "resolved", "{body}");
    assert_eq!(body["alerts"][0]["status"], "resolved", "{body}");
    assert_eq!(body["alerts"][0]["endsAt"], ends.as_str(), "{body}");
    assert!(r.at.duration_since(posted) < Duration::from_secs(3));
    app.stop().await;
}

/// An alert fired and resolved (through `/api/v2/alerts`) within group_wait produces no
/// notification at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_v2_fired_and_resolved_within_group_wait_sends_nothing() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&webhook_receiver_config(
        "  group_wait: 2s\n  group_interval: 500ms\n",
        &sink.url("/hook"),
        "",
    ))
    .await;
    let starts = ts(now() - time::Duration::milliseconds(100));
    let labels = json!({"alertname": "Blip", "instance": "a"});
    let firing = json!([{"labels": labels, "startsAt": starts}]);
    let posted = Instant::now();
    assert_eq!(app.post_json("/api/v2/alerts", &firing).await.status(), 200);
    let resolved = json!([{"labels": labels, "startsAt": starts, "endsAt": ts(now())}]);
    assert_eq!(
        app.post_json("/api/v2/alerts", &resolved).await.status(),
        200
    );
    let alerts = app.get_json("/admin/v1/alerts").await;
    assert_eq!(
        alerts[0]["status"], "resolved",
        "the newer report's endsAt must win: {alerts}"
    );
    // until the group is gone after its group_wait flush (or something was sent)
    wait_for(
        Duration::from_secs(10),
        "the group flushed and removed, or a notification",
        || async {
            if sink.count() > 0 {
                return Some(());
            }
            let gone = app
                .get_json("/admin/v1/groups")
                .await
                .as_array()
                .is_some_and(|g| g.is_empty());
            (gone && posted.elapsed() > Duration::from_millis(2600)).then_some(())
        },
    )
    .await;
    let ns = all_notifications(&app.base).await;
    assert!(
        sink.count() == 0 && ns.is_empty(),
        "an alert resolved within group_wait was notified: {ns:#?}"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// 3. no re-sent resolves after reload or restart

/// Labels of three alerts in one group, `b` with the highest fingerprint (the store is
/// read back in fingerprint order, so `b` comes after the group exists again).
fn three_alerts() -> [Vec<(String, String)>; 3] {
    let ls = |inst: &str| -> Vec<(String, String)> {
        vec![
            ("alertname".into(), "Old".into()),
            ("instance".into(), inst.into()),
        ]
    };
    let fp = |l: &Vec<(String, String)>| {
        let m: alert_router::alert::LabelSet = l.iter().cloned().collect();
        alert_router::alert::Fingerprint::of(&m).0
    };
    let a = ls("a");
    let c = ls("c");
    let b = (0..1000)
        .map(|i| ls(&format!("b{i}")))
        .find(|b| fp(b) > fp(&a) && fp(b) > fp(&c))
        .expect("a label set with a larger fingerprint");
    [a, b, c]
}

fn alert_of(l: &[(String, String)], status: &str, starts: &str) -> Value {
    let pairs: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut a = alert(&pairs, status);
    a["startsAt"] = starts.into();
    a
}

/// Fire a and b, resolve b, fire c: three notifications, the last one without b.
async fn fire_resolve_fire(base: &str, sink: &MockServer) {
    let [a, b, c] = three_alerts();
    let starts = ts(now() - time::Duration::minutes(1));
    let steps = [
        (
            vec![
                alert_of(&a, "firing", &starts),
                alert_of(&b, "firing", &starts),
            ],
            "first notification",
        ),
        (
            vec![
                alert_of(&a, "firing", &starts),
                alert_of(&b, "resolved", &starts),
            ],
            "some alerts resolved",
        ),
        (
            vec![
                alert_of(&a, "firing", &starts),
                alert_of(&c, "firing", &starts),
            ],
            "new alerts added",
        ),
    ];
    for (i, (alerts, reason)) in steps.into_iter().enumerate() {
        assert_eq!(post_json(base, "/webhook", &webhook(alerts)).await, 200);
        wait_for(Duration::from_secs(10), reason, || async {
            (sink.count() == i + 1).then_some(())
        })
        .await;
        let body = sink.requests()[i].json();
        assert_eq!(body["notification_reason"], reason, "{body}");
    }
}

async fn assert_nothing_more_sent(base: &str, sink: &MockServer, what: &str) {
    // several group_interval ticks after the reload/restart: nothing new
    wait_ticks(base, "Old", 4).await;
    let reqs = sink.requests();
    assert_eq!(
        reqs.len(),
        3,
        "{what} re-sent a notification: {:#?}",
        reqs[3..].iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    let ns = all_notifications(base).await;
    assert_eq!(ns.len(), 3, "{what} queued a new notification: {ns:#?}");
}

fn old_resolves_config(sink: &MockServer) -> String {
    webhook_receiver_config(
        "  group_wait: 100ms\n  group_interval: 400ms\n",
        &sink.url("/hook"),
        "        send_resolved: true\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_does_not_resend_old_resolves() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&old_resolves_config(&sink)).await;
    fire_resolve_fire(&app.base, &sink).await;
    wait_ticks(&app.base, "Old", 2).await;
    assert_eq!(sink.count(), 3);
    reload_ok(&app).await;
    assert_nothing_more_sent(&app.base, &sink, "a reload with an unchanged config").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_does_not_resend_old_resolves() {
    init();
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(dir.path(), &old_resolves_config(&sink), port);
    let p = RouterProc::spawn(&cfg, port).await;
    fire_resolve_fire(&p.base, &sink).await;
    wait_ticks(&p.base, "Old", 2).await;
    assert_eq!(sink.count(), 3);
    p.terminate().await;
    let p = RouterProc::spawn(&cfg, port).await;
    assert_nothing_more_sent(&p.base, &sink, "a restart").await;
    p.terminate().await;
}

// ---------------------------------------------------------------------------------------
// 4. notifications created during a reload

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_created_during_reload_are_delivered_once() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    sink.push(Reply::ok("ok").with_delay(Duration::from_secs(3)));
    // background ingest load goes to a receiver without integrations
    let app = TestApp::start(&format!(
        "route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  routes:\n    - receiver: blackhole\n      matchers: ['load=\"yes\"']\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: '{}'\n  - name: blackhole\n",
        sink.url("/hook")
    ))
    .await;
    let a = alert(&[("alertname", "SlowOne")], "firing");
    assert_eq!(
        app.post_json("/webhook", &webhook(vec![a])).await.status(),
        200
    );
    wait_for(
        Duration::from_secs(10),
        "the slow send in flight",
        || async { (sink.count() == 1).then_some(()) },
    )
    .await;
    let reload = {
        let c = app.client.clone();
        let url = app.url("/-/reload");
        tokio::spawn(async move {
            let r = c.post(url).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    // a busy store writer makes a second hand-over of the same notification visible (its
    // delivered state lands late); it changes nothing for a correct router
    let load = IngestLoad::start(&app);
    // pace: the new alert arrives while the reload waits for the slow send
    tokio::time::sleep(Duration::from_secs(1)).await;
    let b = alert(&[("alertname", "DuringReload")], "firing");
    assert_eq!(
        app.post_json("/webhook", &webhook(vec![b])).await.status(),
        200
    );
    let (status, body) = reload.await.unwrap();
    assert_eq!(status, 200, "reload: {body}");
    assert_eq!(body["status"], "success", "reload: {body}");
    let ns = settle(
        Duration::from_secs(15),
        "both notifications delivered",
        || async {
            let ns = all_notifications(&app.base).await;
            if ns.len() == 2
                && ns.iter().all(|n| n["state"] == "delivered")
                && count_named(&sink, "DuringReload") >= 1
            {
                Ok(ns)
            } else {
                Err(format!("{ns:#?}"))
            }
        },
    )
    .await;
    // short: a second hand-over of the same notification would be sent right away
    stays(
        Duration::from_millis(1500),
        "every notification delivered exactly once",
        || async {
            let reqs = sink.requests();
            let mut by_body: HashMap<&[u8], usize> = HashMap::new();
            for r in &reqs {
                *by_body.entry(r.body.as_ref()).or_default() += 1;
            }
            let names: Vec<String> = reqs.iter().map(alertname_of).collect();
            if reqs.len() == ns.len() && by_body.values().all(|c| *c == 1) {
                Ok(())
            } else {
                Err(format!(
                    "{} notifications, {} requests at the sink: {names:?}",
                    ns.len(),
                    reqs.len()
                ))
            }
        },
    )
    .await;
    load.stop().await;
    assert_eq!(count_named(&sink, "SlowOne"), 1);
    assert_eq!(count_named(&sink, "DuringReload"), 1);
    let sent = metric(
        &app.base,
        "alert_router_notifications_sent_total{receiver=\"team\",integration=\"webhook\"}",
    )
    .await;
    assert_eq!(sent, 2.0, "deliveries counted in the metrics");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// 5. webhook re-fire after a resolve

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_refire_after_resolve_starts_new_episode() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&webhook_receiver_config(
        "  group_wait: 2s\n  group_interval: 500ms\n",
        &sink.url("/hook"),
        "",
    ))
    .await;
    let labels = [("alertname", "Flap"), ("instance", "a")];
    // started a minute ago: the group flushes at once
    let first = alert(&labels, "firing");
    let old_starts = first["startsAt"].as_str().unwrap().to_string();
    app.post_json("/webhook", &webhook(vec![first])).await;
    wait_for(
        Duration::from_secs(10),
        "the firing notification",
        || async { (sink.count() == 1).then_some(()) },
    )
    .await;
    let mut r = alert(&labels, "resolved");
    r["startsAt"] = old_starts.clone().into();
    app.post_json("/webhook", &webhook(vec![r])).await;
    wait_for(
        Duration::from_secs(10),
        "the resolved notification",
        || async { (sink.count() == 2).then_some(()) },
    )
    .await;
    assert_eq!(sink.requests()[1].json()["status"], "resolved");
    wait_for(
        Duration::from_secs(10),
        "the resolved group removed",
        || async {
            group_last_flush(&app.base, "Flap")
                .await
                .is_none()
                .then_some(())
        },
    )
    .await;
    // pace: the new episode starts strictly after the old endsAt
    tokio::time::sleep(Duration::from_millis(20)).await;
    let new_starts = ts(now());
    let mut refire = alert(&labels, "firing");
    refire["startsAt"] = new_starts.clone().into();
    let posted = Instant::now();
    assert_eq!(
        app.post_json("/webhook", &webhook(vec![refire]))
            .await
            .status(),
        200
    );
    wait_for(
        Duration::from_secs(10),
        "the re-fire notification",
        || async { (sink.count() >= 3).then_some(()) },
    )
    .await;
    let req = &sink.requests()[2];
    let body = req.json();
    assert_eq!(body["status"], "firing", "{body}");
    assert_eq!(
        body["alerts"][0]["startsAt"],
        new_starts.as_str(),
        "the re-fire carries its own startsAt: {body}"
    );
    let after = req.at.duration_since(posted);
    assert!(
        after >= Duration::from_millis(1500),
        "the new episode must wait group_wait (2s); sent {after:?} after the post"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// 6. concurrent updates of one alert

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fire_and_resolve_agree_between_store_and_groups() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&format!(
        "route:\n  receiver: team\n  group_by: ['...']\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: '{}'\n        send_resolved: true\n        rate_limit: {{messages: 10000, per: 1s}}\n",
        sink.url("/hook")
    ))
    .await;
    const N: usize = 400;
    let starts = ts(now());
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in 0..N {
        let labels = [("alertname", "Race".to_string()), ("i", i.to_string())];
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut firing = alert(&pairs, "firing");
        firing["startsAt"] = starts.clone().into();
        let mut resolved = alert(&pairs, "resolved");
        resolved["startsAt"] = starts.clone().into();
        let (c, url, sem) = (app.client.clone(), app.url("/webhook"), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let post = |b: Value| {
                let c = c.clone();
                let url = url.clone();
                async move {
                    c.post(url)
                        .json(&webhook(vec![b]))
                        .send()
                        .await
                        .unwrap()
                        .status()
                }
            };
            let (s1, s2) = if i % 2 == 0 {
                tokio::join!(post(firing), post(resolved))
            } else {
                let (s2, s1) = tokio::join!(post(resolved), post(firing));
                (s1, s2)
            };
            assert_eq!((s1.as_u16(), s2.as_u16()), (200, 200));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    settle(
        Duration::from_secs(20),
        "the store, the groups and the notifications to agree on every alert",
        || async {
            let alerts = app.get_json("/admin/v1/alerts").await;
            let alerts = alerts.as_array().unwrap();
            if alerts.len() != N {
                return Err(format!("{} alerts stored", alerts.len()));
            }
            let groups = app.get_json("/admin/v1/groups").await;
            let grouped: BTreeSet<String> = groups
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["alerts"].as_array().cloned().unwrap_or_default())
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            let ns = all_notifications(&app.base).await;
            if let Some(n) = ns.iter().find(|n| n["state"] != "delivered") {
                return Err(format!("notification {} still {}", n["id"], n["state"]));
            }
            // fingerprint → status in the last notification that mentions it
            let mut last: BTreeMap<String, String> = BTreeMap::new();
            for n in &ns {
                for a in n["message"]["alerts"].as_array().unwrap() {
                    last.insert(
                        a["fingerprint"].as_str().unwrap().to_string(),
                        a["status"].as_str().unwrap().to_string(),
                    );
                }
            }
            let mut bad = Vec::new();
            for a in alerts {
                let fp = a["fingerprint"].as_str().unwrap();
                let status = a["status"].as_str().unwrap();
                let in_group = grouped.contains(fp);
                let sent = last.get(fp).map(String::as_str);
                let ok = match status {
                    "firing" => in_group && sent == Some("firing"),
                    _ => !in_group && sent != Some("firing"),
                };
                if !ok {
                    bad.push(format!(
                        "i={} store={status} in_group={in_group} last_sent={sent:?}",
                        a["labels"]["i"].as_str().unwrap_or("?")
                    ));
                }
            }
            if bad.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} alerts disagree: {:?}",
                    bad.len(),
                    &bad[..bad.len().min(10)]
                ))
            }
        },
    )
    .await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// 7. concurrent admin retries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_send_once() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    sink.push(Reply::status(400, "bad request"));
    let app = TestApp::start(&webhook_receiver_config(
        "  group_wait: 0s\n",
        &sink.url("/hook"),
        "",
    ))
    .await;
    let a = alert(&[("alertname", "Retried")], "firing");
    assert_eq!(
        app.post_json("/webhook", &webhook(vec![a])).await.status(),
        200
    );
    let id = wait_for(Duration::from_secs(10), "a dead letter", || async {
        let ns = app.notifications("state=dead").await;
        ns.first().and_then(|n| n["id"].as_u64())
    })
    .await;
    assert_eq!(sink.count(), 1);
    // Round 1 replays the dead letter; later rounds replay it again once delivered (also
    // allowed), so the race gets several chances to show. Each replay is answered after 1s,
    // so the notification is still queued while all 8 requests are handled (a replay that
    // arrived after the delivery could rightly be accepted again).
    let path = format!("/admin/v1/notifications/{id}/retry");
    for round in 1..=4usize {
        sink.push(Reply::ok("ok").with_delay(Duration::from_secs(1)));
        let statuses: Vec<u16> = futures::future::join_all((0..8).map(|_| {
            let c = reqwest::Client::new();
            let url = app.url(&path);
            async move { c.post(url).send().await.unwrap().status().as_u16() }
        }))
        .await;
        let accepted = statuses.iter().filter(|s| **s == 202).count();
        let conflicts = statuses.iter().filter(|s| **s == 409).count();
        assert_eq!(
            (accepted, conflicts),
            (1, 7),
            "round {round}: 8 concurrent retries must give exactly one 202 and seven 409; got {statuses:?}"
        );
        wait_for(
            Duration::from_secs(10),
            "the replayed notification",
            || async { (sink.count() > round).then_some(()) },
        )
        .await;
        wait_for(Duration::from_secs(10), "delivered state", || async {
            (app.get_json(&format!("/admin/v1/notifications/{id}")).await["state"] == "delivered")
                .then_some(())
        })
        .await;
        // short: further sends of the same replay would follow right away
        stays(
            Duration::from_millis(1000),
            "one replay, one request",
            || async {
                match sink.count() - 1 {
                    n if n == round => Ok(()),
                    n => Err(format!(
                        "round {round}: the sink received {n} replayed requests"
                    )),
                }
            },
        )
        .await;
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// 9. reload: gauges of removed integrations, rate limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_removing_integration_drops_its_queue_depth_gauge() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&format!(
        "route:\n  receiver: ops\nreceivers:\n  - name: ops\n    webhook_configs: [{{url: '{0}'}}]\n  - name: extra\n    webhook_configs: [{{url: '{0}'}}]\n",
        sink.url("/hook")
    ))
    .await;
    let ops = "alert_router_notification_queue_depth{receiver=\"ops\",integration=\"webhook\",index=\"0\"}";
    let extra =
        "alert_router_notification_queue_depth{receiver=\"extra\",integration=\"webhook\",index=\"0\"}";
    wait_for(
        Duration::from_secs(5),
        "both queue-depth gauges",
        || async {
            let m = metrics_text(&app).await;
            (m.contains(ops) && m.contains(extra)).then_some(())
        },
    )
    .await;
    let path = app.config_path.clone();
    let cfg = std::fs::read_to_string(&path).unwrap();
    let without = cfg.replace(
        &format!(
            "  - name: extra\n    webhook_configs: [{{url: '{}'}}]\n",
            sink.url("/hook")
        ),
        "",
    );
    assert_ne!(cfg, without);
    std::fs::write(&path, without).unwrap();
    reload_ok(&app).await;
    let names: Vec<String> = app
        .get_json("/admin/v1/receivers")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["ops"]);
    settle(
        Duration::from_secs(3),
        "the removed integration's queue-depth gauge gone",
        || async {
            let m = metrics_text(&app).await;
            let lines: Vec<&str> = m
                .lines()
                .filter(|l| l.starts_with("alert_router_notification_queue_depth"))
                .collect();
            if m.contains(extra) || !m.contains(ops) {
                Err(format!("{lines:?}"))
            } else {
                Ok(())
            }
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_does_not_refill_rate_limit() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&webhook_receiver_config(
        "  group_wait: 0s\n  group_interval: 1s\n",
        &sink.url("/hook"),
        "        rate_limit: {messages: 1, per: 4s}\n",
    ))
    .await;
    let a = alert(&[("alertname", "First")], "firing");
    assert_eq!(
        app.post_json("/webhook", &webhook(vec![a])).await.status(),
        200
    );
    wait_for(
        Duration::from_secs(10),
        "the first notification",
        || async { (sink.count() == 1).then_some(()) },
    )
    .await;
    let first = sink.requests()[0].at;
    reload_ok(&app).await;
    let b = alert(&[("alertname", "Second")], "firing");
    assert_eq!(
        app.post_json("/webhook", &webhook(vec![b])).await.status(),
        200
    );
    wait_for(
        Duration::from_secs(15),
        "the second notification",
        || async { (sink.count() >= 2).then_some(()) },
    )
    .await;
    let reqs = sink.requests();
    assert_eq!(alertname_of(&reqs[1]), "Second");
    let gap = reqs[1].at.duration_since(first);
    // 1 message per 4s; arrival jitter at the sink allowed for
    assert!(
        gap >= Duration::from_millis(3700),
        "a reload must not refill the limiter: second message {gap:?} after the first"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// 10. counter series exist at 0 from the start

/// Every counter of an integration (and its failure counters, per reason) is exported at 0
/// as soon as its worker runs, before any traffic: a rule's `increase()` then sees the first
/// dead letter, and a dashboard can tell "none yet" from "not exported".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_counters_are_exported_at_zero_before_traffic() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&webhook_receiver_config("", &sink.url("/hook"), "")).await;
    let text = metrics_text(&app).await;
    let series = |name: &str, extra: &str| {
        format!("alert_router_{name}{{receiver=\"team\",integration=\"webhook\"{extra}}} 0")
    };
    let mut expected = vec![
        series("notifications_sent_total", ""),
        series("notifications_queued_total", ""),
        series("notifications_merged_total", ""),
        series("digests_total", ""),
        series("rate_limited_waits_total", ""),
        series("notifications_dedup_suppressed_total", ""),
    ];
    for reason in [
        "clientError",
        "serverError",
        "rateLimited",
        "authError",
        "network",
    ] {
        expected.push(series(
            "notifications_failed_total",
            &format!(",reason=\"{reason}\""),
        ));
    }
    for line in &expected {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in /metrics:\n{text}"
        );
    }
    assert!(sink.requests().is_empty());
    app.stop().await;
}
