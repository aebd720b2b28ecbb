//! Per-integration rate limiting: with `rate_limit: {messages: 2, per: 1s}` and 10 groups
//! flushing at once, no more than the quota reaches the destination in any window, and
//! all 10 arrive.
mod common;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_is_respected_and_nothing_is_dropped() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&format!(
        "route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 300ms\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: '{}'\n        rate_limit: {{messages: 2, per: 1s}}\n",
        sink.url("/hook")
    ))
    .await;
    // 10 groups in one request: they are created together and flush at the same tick
    let alerts = (0..10)
        .map(|i| alert(&[("alertname", &format!("Burst{i}"))], "firing"))
        .collect();
    assert_eq!(
        app.post_json("/webhook", &webhook(alerts)).await.status(),
        200
    );
    wait_for(Duration::from_secs(20), "all 10 notifications", || async {
        (sink.count() >= 10).then_some(())
    })
    .await;
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 10);
    let mut names: Vec<String> = reqs
        .iter()
        .map(|r| {
            r.json()["groupLabels"]["alertname"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 10, "every group delivered once: {names:?}");
    // any window of 1s holds at most 2 messages. Arrival times at the sink include loopback
    // and scheduling jitter (over 100 ms on a loaded machine), so windows of 600ms are
    // checked; GCRA alone (2 at once, a third 500ms later) would still fail this.
    for (i, r) in reqs.iter().enumerate() {
        let in_window = reqs[i..]
            .iter()
            .take_while(|x| x.at.duration_since(r.at) < Duration::from_millis(600))
            .count();
        assert!(
            in_window <= 2,
            "{in_window} messages within 1s starting at #{i}"
        );
    }
    let span = reqs.last().unwrap().at.duration_since(reqs[0].at);
    assert!(
        span >= Duration::from_millis(3500),
        "10 messages at 2/s must take ≥ 4s, took {span:?}"
    );
    let m = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(
            "alert_router_rate_limited_waits_total{receiver=\"team\",integration=\"webhook\"}"
        ),
        "{m}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_of_one_group_is_merged_not_dropped() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&format!(
        "route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 100ms\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: '{}'\n        rate_limit: {{messages: 1, per: 3s}}\n",
        sink.url("/hook")
    ))
    .await;
    // First notification goes out at once and uses the only token; then the group changes
    // on several ticks while the limiter is empty.
    app.post_json(
        "/webhook",
        &webhook(vec![alert(
            &[("alertname", "Flappy"), ("instance", "0")],
            "firing",
        )]),
    )
    .await;
    wait_for(Duration::from_secs(10), "first notification", || async {
        (sink.count() >= 1).then_some(())
    })
    .await;
    for i in 1..4 {
        let alerts = (0..=i)
            .map(|j| {
                alert(
                    &[("alertname", "Flappy"), ("instance", &j.to_string())],
                    "firing",
                )
            })
            .collect();
        app.post_json("/webhook", &webhook(alerts)).await;
        let want = i + 1;
        wait_for(Duration::from_secs(10), "queued notification", || async {
            (app.notifications("").await.len() >= want).then_some(())
        })
        .await;
    }
    wait_for(Duration::from_secs(15), "merged notification", || async {
        (sink.count() >= 2).then_some(())
    })
    .await;
    let last = sink.requests()[1].json();
    assert_eq!(
        last["alerts"].as_array().unwrap().len(),
        4,
        "the merged message carries the group's current state"
    );
    // Delivery bookkeeping is recorded after the send without waiting for it: wait for it.
    let count_merged = |all: &[serde_json::Value]| {
        all.iter()
            .filter(|n| {
                n["state"] == "merged"
                    && n["last_error"]
                        .as_str()
                        .is_some_and(|e| e.starts_with("merged into"))
            })
            .count()
    };
    let all = wait_for(
        Duration::from_secs(10),
        "merged states recorded",
        || async {
            let all = app.notifications("").await;
            (count_merged(&all) >= 2).then_some(all)
        },
    )
    .await;
    assert_eq!(
        count_merged(&all),
        2,
        "two queued notifications were merged into the newest: {all:#?}"
    );
    let via_filter = app.notifications("state=merged").await;
    assert_eq!(via_filter.len(), 2);
    // nothing else is pending
    wait_for(Duration::from_secs(10), "nothing left pending", || async {
        app.notifications("state=pending")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    app.stop().await;
}
