//! Reload under load: configuration reloads (each one rebuilds every group from a store
//! snapshot) while alerts keep firing and resolving must not send any alert's state
//! backwards, announce a state twice, or lose a group's final state. (The narrower race of
//! a report still queued for the dispatcher when the snapshot is taken is reproduced by
//! `store::tests::a_snapshot_falls_between_the_reports_it_contains_and_the_later_ones`;
//! this end-to-end load rarely hits it.)
mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const NAMES: usize = 8;
const INSTANCES: usize = 4;
const ROUNDS: usize = 100;
const RELOADS: usize = 40;

fn yaml(sink: &str, group_interval_ms: u64) -> String {
    format!(
        "route:\n  receiver: sink\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: {group_interval_ms}ms\n  repeat_interval: 1h\nreceivers:\n  - name: sink\n    webhook_configs:\n      - url: '{sink}'\n        send_resolved: true\n"
    )
}

/// One alert of a webhook: firing since `starts`, or resolved at `ends`.
fn wire(
    name: usize,
    instance: usize,
    starts: time::OffsetDateTime,
    ends: Option<time::OffsetDateTime>,
) -> Value {
    json!({
        "status": if ends.is_some() { "resolved" } else { "firing" },
        "labels": {"alertname": format!("Reload{name}"), "instance": format!("i{instance}")},
        "annotations": {},
        "startsAt": alert_router::alert::format_time(starts),
        "endsAt": ends.map_or(alert_router::alert::ZERO_TIME.to_string(), alert_router::alert::format_time),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_never_send_a_state_backwards() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let hook = sink.url("/hook");
    let app = TestApp::start(&yaml(&hook, 200)).await;

    // The last state posted per alert: its episode's start, and its end once resolved.
    let mut last: BTreeMap<(usize, usize), (time::OffsetDateTime, Option<time::OffsetDateTime>)> =
        BTreeMap::new();
    let load = async {
        for round in 0..ROUNDS {
            // Two back-to-back posts per round, some alerts flipped in both (firing then
            // resolved, or resolved then a new episode), so that reports are still queued
            // for the dispatcher when a reload snapshots the store.
            for post in 0..2 {
                let t = now();
                let mut alerts = Vec::new();
                for name in 0..NAMES {
                    for instance in 0..INSTANCES {
                        // every alert fires in round 0, then flips on two rhythms: some
                        // twice in a row, most once, in a round
                        let flips = match post {
                            0 => round == 0 || (round + name * 3 + instance) % (2 + instance) == 0,
                            _ => round > 0 && (round + name + instance * 2) % 5 == 0,
                        };
                        if !flips {
                            continue;
                        }
                        let next = match last.get(&(name, instance)) {
                            Some((starts, None)) => (*starts, Some(t)),
                            _ => (t, None),
                        };
                        last.insert((name, instance), next);
                        alerts.push(wire(name, instance, next.0, next.1));
                    }
                }
                let r = app.post_json("/webhook", &webhook(alerts)).await;
                assert_eq!(r.status(), 200, "round {round}");
            }
            // pacing of the load, not a wait for an outcome
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let reloads = async {
        for i in 0..RELOADS {
            let text = full_config(
                app.dir.path(),
                &yaml(&hook, 200 + 100 * (i as u64 % 2)),
                "127.0.0.1:0",
            );
            std::fs::write(&app.config_path, text).expect("write config");
            let r = app
                .client
                .post(app.url("/-/reload"))
                .send()
                .await
                .expect("reload");
            assert_eq!(r.status(), 200, "reload {i}");
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    };
    tokio::join!(load, reloads);

    // Every group's last notification shows the final state of each of its alerts: firing
    // ones firing, resolved ones not firing.
    let wrong = |by_group: &BTreeMap<String, Vec<(Received, NotificationContent)>>| {
        let mut wrong = Vec::new();
        for name in 0..NAMES {
            let group = format!("Reload{name}");
            let n = by_group.get(&group).and_then(|v| v.last()).map(|x| &x.1);
            for instance in 0..INSTANCES {
                let labels: BTreeMap<String, String> = [
                    ("alertname".to_string(), group.clone()),
                    ("instance".to_string(), format!("i{instance}")),
                ]
                .into();
                let Some(&(starts, ends)) = last.get(&(name, instance)) else {
                    continue;
                };
                let seen = n.and_then(|n| n.alerts.get(&labels));
                let ok = match (seen, ends) {
                    // (a resolve and a new episode between two flushes leave the firing
                    // set as it was: as in Alertmanager, not announced)
                    (Some(a), None) => a.status == "firing" && a.starts_at <= starts,
                    (Some(a), Some(_)) => a.status == "resolved",
                    (None, ends) => ends.is_some(),
                };
                if !ok {
                    wrong.push(format!(
                        "{group}/i{instance}: posted last {starts} until {ends:?}, last notification {seen:?}"
                    ));
                }
            }
        }
        wrong
    };
    let deadline = std::time::Instant::now() + WAIT;
    let by_group = loop {
        let by_group = notifications_by_group(&sink.requests(), "alertname");
        let wrong = wrong(&by_group);
        if wrong.is_empty() {
            break by_group;
        }
        if std::time::Instant::now() > deadline {
            let groups = app.get_json("/admin/v1/groups").await;
            panic!(
                "timed out waiting for every group's final state at the sink:\n{}\ngroups: {groups:#}",
                wrong.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let mut total = 0;
    for (group, ns) in &by_group {
        total += ns.len();
        for pair in ns.windows(2) {
            let (prev, next) = (&pair[0].1, &pair[1].1);
            if let Some(why) = next.backwards_from(prev) {
                panic!("{group}: a notification went backwards: {why}");
            }
            assert_ne!(prev, next, "{group}: the same state announced twice");
        }
    }
    println!("{ROUNDS} rounds of changes, {RELOADS} reloads, {total} notifications, none backwards or repeated");
    assert!(sink.violations().is_empty());
    app.stop().await;
}
