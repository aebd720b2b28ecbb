//! End to end with the real Alertmanager binary (Debian's `prometheus-alertmanager`):
//! two Alertmanager replicas (an HA pair without gossip, the worst case) send their
//! webhooks to the router; the router delivers each notification once.
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// An Alertmanager replica sending its webhooks to the router at `router`.
async fn start_am(router: &str) -> Am {
    Am::start(&format!(
        "route:\n  receiver: router\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 2s\nreceivers:\n  - name: router\n    webhook_configs:\n      - url: {router}/webhook\n        send_resolved: true\n"
    ))
    .await
}

async fn post_alerts(am: &Am, alerts: &Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", am.base))
        .json(alerts)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "alertmanager refused alerts: {}",
        r.text().await.unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_ha_pair_through_router_delivers_once() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&format!(
        "route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 500ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: team\n    webhook_configs: [{{url: '{}'}}]\n",
        sink.url("/team")
    ))
    .await;
    let am1 = start_am(&app.base).await;
    let am2 = start_am(&app.base).await;
    let starts = alert_router::alert::format_time(time::OffsetDateTime::now_utc());
    let firing = json!([
        {"labels": {"alertname": "E2EHighLatency", "instance": "web-1", "severity": "critical"},
         "annotations": {"summary": "p99 latency above 1s"}, "startsAt": starts, "generatorURL": "http://prometheus.test/graph"},
        {"labels": {"alertname": "E2EHighLatency", "instance": "web-2", "severity": "critical"},
         "annotations": {"summary": "p99 latency above 1s"}, "startsAt": starts, "generatorURL": "http://prometheus.test/graph"}
    ]);
    post_alerts(&am1, &firing).await;
    post_alerts(&am2, &firing).await;

    let first = wait_for(
        Duration::from_secs(30),
        "first notification at the sink",
        || async { sink.requests().first().cloned() },
    )
    .await;
    let body = first.json();
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(body["groupLabels"]["alertname"], "E2EHighLatency");

    // Both replicas keep re-sending (repeat_interval 2s): wait until the router has seen
    // several webhooks from them, then check the sink still got exactly one.
    wait_for(
        Duration::from_secs(30),
        "repeated webhooks from both replicas",
        || async {
            (metric(
                &app.base,
                "alert_router_alerts_received_total{status=\"firing\"}",
            )
            .await
                >= 8.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        sink.count(),
        1,
        "HA duplicates and repeats must be absorbed"
    );

    // resolve on both replicas → exactly one resolved notification
    let ends = alert_router::alert::format_time(time::OffsetDateTime::now_utc());
    let mut resolved = firing.clone();
    for a in resolved.as_array_mut().unwrap() {
        a["endsAt"] = ends.clone().into();
    }
    post_alerts(&am1, &resolved).await;
    post_alerts(&am2, &resolved).await;
    let second = wait_for(
        Duration::from_secs(30),
        "resolved notification at the sink",
        || async { sink.requests().get(1).cloned() },
    )
    .await;
    let body = second.json();
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["alerts"].as_array().unwrap().len(), 2);
    // and nothing after it, even though both replicas deliver their resolved webhooks
    wait_for(
        Duration::from_secs(30),
        "resolved webhooks from both replicas",
        || async {
            (metric(
                &app.base,
                "alert_router_alerts_received_total{status=\"resolved\"}",
            )
            .await
                >= 4.0)
                .then_some(())
        },
    )
    .await;
    wait_for(Duration::from_secs(10), "group closed", || async {
        let g = app.get_json("/admin/v1/groups").await;
        g.as_array().unwrap().is_empty().then_some(())
    })
    .await;
    assert_eq!(
        sink.count(),
        2,
        "exactly one firing and one resolved notification"
    );
    drop(am1);
    drop(am2);
    app.stop().await;
}
