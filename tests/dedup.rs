//! Dedup and grouping through HTTP: repeats, HA replicas, new alerts, resolves and the
//! repeat interval, following Alertmanager's notification-log rules.
mod common;
use common::*;

const CONFIG: &str = r#"
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 200ms
  group_interval: 400ms
  repeat_interval: 1h
receivers:
  - name: ops
    log_configs: [{send_resolved: true}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_payload_twice_and_replicas_give_one_notification() {
    let app = TestApp::start(CONFIG).await;
    let a1 = alert(&[("alertname", "Disk"), ("instance", "a")], "firing");
    let a2 = alert(&[("alertname", "Disk"), ("instance", "b")], "firing");
    let body = webhook(vec![a1.clone(), a2.clone()]);
    assert_eq!(app.post_json("/webhook", &body).await.status(), 200);
    assert_eq!(app.post_json("/webhook", &body).await.status(), 200);
    // a second Alertmanager replica sends the same group, with its own externalURL
    let mut replica = body.clone();
    replica["externalURL"] = "http://alertmanager-1.test:9093".into();
    assert_eq!(app.post_json("/webhook", &replica).await.status(), 200);
    let v = wait_count(&app, 1).await;
    // and again after the first flush, as a replica's repeat would arrive
    assert_eq!(app.post_json("/webhook", &replica).await.status(), 200);
    wait_ticks(&app, "Disk", 3).await;
    let v2 = sent(&app).await;
    assert_eq!(
        v2.len(),
        1,
        "duplicates produced extra notifications: {v2:#?}"
    );
    assert_eq!(v[0]["message"]["notification_reason"], "first notification");
    assert_eq!(v[0]["message"]["alerts"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_alert_then_resolve() {
    let app = TestApp::start(CONFIG).await;
    let a1 = alert(&[("alertname", "Cpu"), ("instance", "a")], "firing");
    let a2 = alert(&[("alertname", "Cpu"), ("instance", "b")], "firing");
    app.post_json("/webhook", &webhook(vec![a1.clone()])).await;
    wait_count(&app, 1).await;
    // a new alert in the group → exactly one more notification, with both alerts
    app.post_json("/webhook", &webhook(vec![a1.clone(), a2.clone()]))
        .await;
    let v = wait_count(&app, 2).await;
    assert_eq!(v[1]["message"]["notification_reason"], "new alerts added");
    assert_eq!(v[1]["message"]["alerts"].as_array().unwrap().len(), 2);
    wait_ticks(&app, "Cpu", 2).await;
    assert_eq!(
        sent(&app).await.len(),
        2,
        "nothing is re-sent before repeat_interval"
    );
    // resolve one: send_resolved is on → one "some alerts resolved"
    let mut r1 = alert(&[("alertname", "Cpu"), ("instance", "a")], "resolved");
    r1["startsAt"] = a1["startsAt"].clone();
    app.post_json("/webhook", &webhook(vec![r1.clone(), a2.clone()]))
        .await;
    let v = wait_count(&app, 3).await;
    assert_eq!(
        v[2]["message"]["notification_reason"],
        "some alerts resolved"
    );
    let statuses: Vec<&str> = v[2]["message"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "resolved").count(),
        1,
        "{statuses:?}"
    );
    // resolve the other → "all alerts resolved", group status resolved
    let mut r2 = alert(&[("alertname", "Cpu"), ("instance", "b")], "resolved");
    r2["startsAt"] = a2["startsAt"].clone();
    app.post_json("/webhook", &webhook(vec![r2])).await;
    let v = wait_count(&app, 4).await;
    assert_eq!(
        v[3]["message"]["notification_reason"],
        "all alerts resolved"
    );
    assert_eq!(v[3]["message"]["status"], "resolved");
    // the same resolved payload again (Alertmanager repeats it) changes nothing
    let mut r2b = alert(&[("alertname", "Cpu"), ("instance", "b")], "resolved");
    r2b["startsAt"] = a2["startsAt"].clone();
    app.post_json("/webhook", &webhook(vec![r2b])).await;
    wait_for(WAIT, "empty group removed", || async {
        group_last_flush(&app, "Cpu").await.is_none().then_some(())
    })
    .await;
    assert_eq!(sent(&app).await.len(), 4);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_interval_resends() {
    let app = TestApp::start(&CONFIG.replace("repeat_interval: 1h", "repeat_interval: 1s")).await;
    app.post_json(
        "/webhook",
        &webhook(vec![alert(&[("alertname", "Rep")], "firing")]),
    )
    .await;
    let v = wait_count(&app, 2).await;
    assert_eq!(
        v[1]["message"]["notification_reason"],
        "repeat interval elapsed"
    );
    let t0 = time::OffsetDateTime::parse(
        v[0]["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let t1 = time::OffsetDateTime::parse(
        v[1]["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        t1 - t0 >= time::Duration::seconds(1),
        "repeat came too early: {}",
        t1 - t0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_resolved_false_sends_no_resolve() {
    let app = TestApp::start(&CONFIG.replace("send_resolved: true", "send_resolved: false")).await;
    let a = alert(&[("alertname", "Quiet")], "firing");
    app.post_json("/webhook", &webhook(vec![a.clone()])).await;
    wait_count(&app, 1).await;
    let mut r = alert(&[("alertname", "Quiet")], "resolved");
    r["startsAt"] = a["startsAt"].clone();
    app.post_json("/webhook", &webhook(vec![r])).await;
    wait_for(WAIT, "group flushed and removed", || async {
        group_last_flush(&app, "Quiet")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(sent(&app).await.len(), 1);
    // a new firing starts a new episode: first notification again
    let a2 = alert(&[("alertname", "Quiet")], "firing");
    app.post_json("/webhook", &webhook(vec![a2])).await;
    let v = wait_count(&app, 2).await;
    assert_eq!(v[1]["message"]["notification_reason"], "first notification");
    app.stop().await;
}

/// `ingest.max_groups`: past the limit a new group is not created; its alerts join the
/// route's overflow group (group label `alert_router_overflow="true"`), are notified there,
/// and so is their resolve. Nothing is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_limit_overflows_into_one_group_and_drops_nothing() {
    let app = TestApp::start(&format!("ingest:\n  max_groups: 2\n{CONFIG}")).await;
    let fire = |name: &str| alert(&[("alertname", name), ("instance", "a")], "firing");
    let body = webhook(vec![fire("A"), fire("B"), fire("C"), fire("D")]);
    assert_eq!(app.post_json("/webhook", &body).await.status(), 200);
    let v = wait_count(&app, 3).await;
    let groups = app.get_json("/admin/v1/groups").await;
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 3, "{groups:#?}");
    let overflow = groups
        .iter()
        .find(|g| g["labels"]["alert_router_overflow"] == "true")
        .expect("an overflow group");
    assert_eq!(overflow["alerts"].as_array().unwrap().len(), 2);
    // every alert was notified once, the overflowed two together
    let mut names: Vec<String> = v
        .iter()
        .flat_map(|n| n["message"]["alerts"].as_array().unwrap().clone())
        .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["A", "B", "C", "D"]);
    assert_eq!(
        metric(
            &app.base,
            "alert_router_groups_limited_total{receiver=\"ops\"}"
        )
        .await,
        2.0
    );
    // a resolve of an overflowed alert is sent where its firing was
    let resolved = webhook(vec![alert(
        &[("alertname", "D"), ("instance", "a")],
        "resolved",
    )]);
    assert_eq!(app.post_json("/webhook", &resolved).await.status(), 200);
    let v = wait_count(&app, 4).await;
    let last = &v[3]["message"];
    assert_eq!(
        last["groupLabels"]["alert_router_overflow"], "true",
        "{last:#}"
    );
    let d = last["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "D")
        .expect("D in the overflow group's notification");
    assert_eq!(d["status"], "resolved");
    app.stop().await;
}

/// A resolve an Alertmanager hands over for a group this router never announced (after an
/// HA failover the firing went out through the peer's router) is announced, once even when
/// both replicas send it; Prometheus' resolves on `/api/v2/alerts` for alerts never
/// notified are not (Alertmanager's rule).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_over_resolves_are_announced_once() {
    let app = TestApp::start(CONFIG).await;
    let gone = alert(&[("alertname", "Failover"), ("instance", "a")], "resolved");
    assert_eq!(
        app.post_json("/webhook", &webhook(vec![gone.clone()]))
            .await
            .status(),
        200
    );
    let v = wait_count(&app, 1).await;
    assert_eq!(v[0]["message"]["status"], "resolved");
    assert_eq!(
        v[0]["message"]["notification_reason"],
        "all alerts resolved"
    );
    // the second replica's copy of the same webhook
    let mut replica = webhook(vec![gone]);
    replica["externalURL"] = "http://alertmanager-1.test:9093".into();
    assert_eq!(app.post_json("/webhook", &replica).await.status(), 200);
    // a Prometheus resolve of an alert never notified
    let prom = serde_json::json!([{
        "labels": {"alertname": "NeverFired"},
        "startsAt": ts(now() - time::Duration::minutes(5)),
        "endsAt": ts(now() - time::Duration::minutes(1)),
    }]);
    assert_eq!(app.post_json("/api/v2/alerts", &prom).await.status(), 200);
    // a firing alert in another group, posted last with the same group_wait: once it is
    // notified, the groups of both posts above have been flushed
    let later = alert(&[("alertname", "Later"), ("instance", "a")], "firing");
    app.post_json("/webhook", &webhook(vec![later])).await;
    let v = wait_count(&app, 2).await;
    let names: Vec<&str> = v
        .iter()
        .map(|n| {
            n["message"]["groupLabels"]["alertname"]
                .as_str()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(names, ["Failover", "Later"], "{v:#?}");
    app.stop().await;
}

/// Fingerprints in the group of `alertname` (empty when the group is gone).
async fn group_members(app: &TestApp, alertname: &str) -> Vec<String> {
    let groups = app.get_json("/admin/v1/groups").await;
    groups
        .as_array()
        .and_then(|g| g.iter().find(|g| g["labels"]["alertname"] == alertname))
        .and_then(|g| g["alerts"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `ingest.webhook_firing_ttl`: a firing webhook alert its Alertmanager stops sending (an
/// HA peer took over, or it lost the alert) leaves its group when the TTL passes without a
/// resolve notification; one that keeps being sent stays; a later real resolve is still
/// announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_alerts_not_sent_again_within_the_ttl_leave_quietly() {
    let app = TestApp::start(&format!("ingest: {{webhook_firing_ttl: 2s}}\n{CONFIG}")).await;
    let a = alert(&[("alertname", "Stale"), ("instance", "a")], "firing");
    let b = alert(&[("alertname", "Stale"), ("instance", "b")], "firing");
    assert_eq!(
        app.post_json("/webhook", &webhook(vec![a.clone(), b.clone()]))
            .await
            .status(),
        200
    );
    let v = wait_count(&app, 1).await;
    assert_eq!(v[0]["message"]["alerts"].as_array().map(Vec::len), Some(2));
    let members = group_members(&app, "Stale").await;
    assert_eq!(members.len(), 2);
    let b_fp = alert_router::alert::Fingerprint::of(&label_map(&b["labels"])).to_string();
    // Alertmanager keeps sending b (its repeats), not a: a expires, b stays
    let left = wait_for(WAIT, "a to expire", || {
        let (app, b) = (&app, b.clone());
        async move {
            let r = app.post_json("/webhook", &webhook(vec![b])).await;
            assert_eq!(r.status(), 200);
            let m = group_members(app, "Stale").await;
            (m.len() == 1).then_some(m)
        }
    })
    .await;
    assert_eq!(left, [b_fp]);
    assert_eq!(
        metric(&app.base, "alert_router_alerts_expired_total").await,
        1.0
    );
    // b's repeats were absorbed and a left without a resolve
    wait_ticks(&app, "Stale", 2).await;
    assert_eq!(sent(&app).await.len(), 1, "{:#?}", sent(&app).await);
    // no more repeats: b expires too and the group ends, still without a notification
    wait_for(WAIT, "the group to end", || async {
        group_members(&app, "Stale").await.is_empty().then_some(())
    })
    .await;
    assert_eq!(
        metric(&app.base, "alert_router_alerts_expired_total").await,
        2.0
    );
    assert_eq!(sent(&app).await.len(), 1, "{:#?}", sent(&app).await);
    // a real resolve of a, reported later, is still news
    let mut gone = a.clone();
    gone["status"] = "resolved".into();
    gone["endsAt"] = ts(now()).into();
    assert_eq!(
        app.post_json("/webhook", &webhook(vec![gone]))
            .await
            .status(),
        200
    );
    let v = wait_count(&app, 2).await;
    assert_eq!(v[1]["message"]["status"], "resolved", "{v:#?}");
    assert_eq!(v[1]["message"]["alerts"].as_array().map(Vec::len), Some(1));
    app.stop().await;
}

/// A restart within `group_wait`: the rebuilt group (no flush yet, so no stored timer)
/// waits from its earliest alert, when it was created, not from whichever of its alerts
/// the rebuild meets first (21 alerts: that one is the first only by a 1-in-21 chance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_rebuilt_within_group_wait_waits_from_its_first_alert() {
    let cfg = "route:\n  receiver: ops\n  group_by: [alertname]\n  group_wait: 1h\n  group_interval: 1h\n  repeat_interval: 1h\nreceivers:\n  - name: ops\n    log_configs: [{}]\n";
    let app = TestApp::start(cfg).await;
    for i in 0..21 {
        let a = alert(
            &[("alertname", "Waiting"), ("instance", &format!("i{i}"))],
            "firing",
        );
        assert_eq!(
            app.post_json("/webhook", &webhook(vec![a])).await.status(),
            200
        );
    }
    let alerts = app.get_json("/admin/v1/alerts").await;
    let received: Vec<time::OffsetDateTime> = alerts
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| parse_time(a["receivedAt"].as_str().expect("receivedAt")))
        .collect();
    assert_eq!(received.len(), 21);
    let first = received.iter().min().copied().expect("an alert");
    assert!(received.iter().max().is_some_and(|last| *last > first));
    let next_flush = |groups: serde_json::Value| {
        groups
            .as_array()
            .and_then(|g| g.iter().find(|g| g["labels"]["alertname"] == "Waiting"))
            .and_then(|g| g["next_flush"].as_str().map(parse_time))
            .expect("the group")
    };
    let want = first + time::Duration::hours(1);
    assert_eq!(next_flush(app.get_json("/admin/v1/groups").await), want);
    let dir = app.stop().await;
    let app = TestApp::start_in(dir, cfg).await;
    assert_eq!(next_flush(app.get_json("/admin/v1/groups").await), want);
    app.stop().await;
}
