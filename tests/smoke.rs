//! Smoke test of the harness: one webhook in, one log notification out.
mod common;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_to_log_delivers_once() {
    let app = TestApp::start(
        "route:\n  receiver: default\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 1s\nreceivers:\n  - name: default\n    log_configs: [{}]\n",
    )
    .await;
    let body = webhook(vec![alert(
        &[("alertname", "Smoke"), ("instance", "a")],
        "firing",
    )]);
    assert_eq!(app.post_json("/webhook", &body).await.status(), 200);
    let n = wait_for(
        Duration::from_secs(10),
        "delivered notification",
        || async {
            let v = app.notifications("state=delivered").await;
            (!v.is_empty()).then_some(v)
        },
    )
    .await;
    assert_eq!(n.len(), 1);
    assert_eq!(n[0]["message"]["alerts"][0]["labels"]["alertname"], "Smoke");
    app.stop().await;
}
