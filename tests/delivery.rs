//! Delivery worker behaviour through the real router: honouring `Retry-After`, retrying
//! server errors, dead-lettering client errors (and replaying them through the admin
//! API), and keeping a failing destination from delaying the others.
mod common;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// Fast timers and retries; `receivers` is the YAML list of receivers, the root route
/// sends to the first one.
fn config(receiver: &str, receivers: &str) -> String {
    format!(
        "delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: {receiver}\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 1s\n\
         receivers:\n{receivers}"
    )
}

fn webhook_receiver(name: &str, url: &str) -> String {
    format!("  - name: {name}\n    webhook_configs:\n      - url: '{url}'\n")
}

async fn fire(app: &TestApp, alertname: &str) {
    let body = webhook(vec![alert(&[("alertname", alertname)], "firing")]);
    assert_eq!(app.post_json("/webhook", &body).await.status(), 200);
}

/// Wait until exactly one notification is in `state` and return it.
async fn one_in_state(app: &TestApp, state: &str) -> Value {
    wait_for(WAIT, &format!("a {state} notification"), || async {
        let v = app.notifications(&format!("state={state}")).await;
        v.into_iter().next()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_429_waits_for_retry_after_then_delivers_once() {
    let hook = MockServer::start(Reply::ok(""), None).await;
    hook.push(Reply::status(429, "slow down").with_header("Retry-After", "1"));
    let app = TestApp::start(&config("hook", &webhook_receiver("hook", &hook.url("/h")))).await;
    fire(&app, "Throttled").await;

    let n = one_in_state(&app, "delivered").await;
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2, "one 429, then one delivery");
    let gap = reqs[1].at - reqs[0].at;
    // The configured backoff alone would retry after 50–150 ms.
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert_eq!(n["attempts"], 2);
    assert_eq!(
        app.notifications("").await.len(),
        1,
        "delivered exactly once"
    );
    assert_eq!(
        reqs[0].body, reqs[1].body,
        "the retry sends the same message"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_then_delivered() {
    let hook = MockServer::start(Reply::ok(""), None).await;
    hook.push(Reply::status(500, "oops"));
    hook.push(Reply::status(503, "unavailable"));
    let app = TestApp::start(&config("hook", &webhook_receiver("hook", &hook.url("/h")))).await;
    fire(&app, "Flaky").await;

    let n = one_in_state(&app, "delivered").await;
    assert_eq!(n["attempts"], 3);
    assert!(n["last_error"].is_null(), "{n}");
    assert_eq!(hook.count(), 3);
    assert!(app.notifications("state=dead").await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_error_dead_letters_then_admin_retry_delivers() {
    let hook = MockServer::start(Reply::status(400, "bad request"), None).await;
    let secret_path = "/hooks/t0ps3cr3t-token";
    let app = TestApp::start(&config(
        "hook",
        &webhook_receiver("hook", &hook.url(secret_path)),
    ))
    .await;
    fire(&app, "Rejected").await;

    let dead = one_in_state(&app, "dead").await;
    let err = dead["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("400"), "{err}");
    assert_eq!(dead["attempts"], 1, "a 400 is not retried");
    assert_eq!(hook.count(), 1);
    // The URL is a secret: not in the dead letter, the worker status or the status page.
    let receivers = app.get_json("/admin/v1/receivers").await.to_string();
    let status = app.get_json("/admin/v1/status").await.to_string();
    for text in [dead.to_string(), receivers, status] {
        assert!(!text.contains("t0ps3cr3t"), "secret leaked: {text}");
        assert!(!text.contains(&hook.addr.to_string()), "URL leaked: {text}");
    }

    *hook.default_reply.lock().unwrap() = Reply::ok("");
    let id = dead["id"].as_u64().unwrap();
    let r = app
        .client
        .post(app.url(&format!("/admin/v1/notifications/{id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let n = wait_for(WAIT, "replayed notification delivered", || async {
        let n = app.get_json(&format!("/admin/v1/notifications/{id}")).await;
        (n["state"] == "delivered").then_some(n)
    })
    .await;
    assert!(n["last_error"].is_null(), "{n}");
    assert_eq!(hook.count(), 2);
    assert_eq!(
        hook.requests()[1].json()["alerts"][0]["labels"]["alertname"],
        "Rejected"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destination_does_not_delay_another() {
    let broken = MockServer::start(Reply::status(500, "down"), None).await;
    let healthy = MockServer::start(Reply::ok(""), None).await;
    let receivers = format!(
        "{}{}",
        webhook_receiver("broken", &broken.url("/b")),
        webhook_receiver("healthy", &healthy.url("/h"))
    );
    // Every alert goes to both receivers.
    let yaml = config("broken", &receivers).replace(
        "group_interval: 1s\n",
        "group_interval: 1s\n  routes:\n    - receiver: broken\n      continue: true\n    - receiver: healthy\n",
    );
    let app = TestApp::start(&yaml).await;

    let started = Instant::now();
    for name in ["One", "Two", "Three"] {
        fire(&app, name).await;
    }
    wait_for(WAIT, "all three groups at the healthy receiver", || async {
        (healthy.count() >= 3).then_some(())
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "healthy receiver waited {elapsed:?}"
    );
    assert!(broken.count() >= 1, "the broken receiver was tried");
    let stuck = wait_for(WAIT, "3 notifications for the broken receiver", || async {
        let v = app.notifications("receiver=broken").await;
        (v.len() == 3).then_some(v)
    })
    .await;
    assert!(
        stuck.iter().all(|n| n["state"] != "delivered"),
        "{stuck:#?}"
    );
    // The mock answers before the worker records the delivery.
    wait_for(WAIT, "3 delivered to the healthy receiver", || async {
        let v = app.notifications("receiver=healthy&state=delivered").await;
        (v.len() == 3).then_some(())
    })
    .await;
    app.stop().await;
}
