//! High availability beside Alertmanager's own cluster (the sidecar shape of deploy/sidecar/):
//! two real Alertmanager 0.25 replicas clustered by gossip on loopback, each posting its
//! webhooks to its own router, both routers delivering to one sink. The replica that
//! delivers is killed (`kill -9`, Alertmanager and router together) while its router still
//! has notifications queued; alerts are then resolved on the survivor only. Every group's
//! firing and resolved states must reach the sink, with no more duplicates than Alertmanager's
//! HA design allows, and the figures are printed (`cargo test --test ha -- --nocapture`).
mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const GROUPS: usize = 6;
/// Alertmanager's repeat_interval: after the failover the survivor re-sends every firing
/// group to its own router within this time (see the README's High availability section).
const AM_REPEAT: &str = "4s";
/// The routers' `ingest.webhook_firing_ttl`: 3 × Alertmanager's repeat_interval, as the
/// sidecar manifests set it (12h for the default 4h).
const ROUTER_TTL: &str = "12s";

/// One alert as Prometheus posts it: `endsAt` some evaluation intervals ahead while firing,
/// `endsAt` now once resolved.
fn prom_alert(group: usize, instance: usize, resolved: bool) -> Value {
    let now = time::OffsetDateTime::now_utc();
    let ends = if resolved {
        now
    } else {
        now + time::Duration::minutes(10)
    };
    json!({
        "labels": {"alertname": format!("HaGroup{group}"), "instance": format!("i{instance}"), "severity": "critical"},
        "annotations": {"summary": "HA test"},
        "startsAt": alert_router::alert::format_time(now - time::Duration::seconds(30)),
        "endsAt": alert_router::alert::format_time(ends),
        "generatorURL": "http://prometheus.test/graph",
    })
}

/// A router process with its own directory, listening on a port chosen here.
struct Replica {
    am: Am,
    router: RouterProc,
    _dir: tempfile::TempDir,
}

async fn start_router(i: usize, sink: &MockServer) -> (RouterProc, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // Every router has the same configuration (one ConfigMap in Kubernetes) except its sink
    // path, which tells the test who delivered. The rate limit keeps notifications queued
    // long enough for the kill to land mid-flight.
    let yaml = format!(
        "ingest: {{webhook_firing_ttl: {ROUTER_TTL}}}\nroute:\n  receiver: sink\n  group_by: [alertname]\n  group_wait: 200ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: sink\n    webhook_configs:\n      - url: '{}'\n        send_resolved: true\n        rate_limit: {{messages: 1, per: 400ms, burst: 1}}\n",
        sink.url(&format!("/router{i}"))
    );
    let cfg = dir.path().join("alert-router.yml");
    std::fs::write(
        &cfg,
        full_config(dir.path(), &yaml, &format!("127.0.0.1:{port}")),
    )
    .expect("write router config");
    (RouterProc::spawn_logging(&cfg, port, "error").await, dir)
}

/// Alertmanager's configuration in the sidecar shape, shortened for a test: everything to
/// the router in the same "pod".
fn am_config(router: &RouterProc) -> String {
    format!(
        "route:\n  receiver: router\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: {AM_REPEAT}\nreceivers:\n  - name: router\n    webhook_configs:\n      - url: {}/webhook\n        send_resolved: true\n",
        router.base
    )
}

/// One notification at the sink: which router sent it, when, and its group's state
/// (instance → status).
#[derive(Debug, Clone)]
struct Seen {
    router: String,
    at: Instant,
    group: String,
    state: BTreeMap<String, String>,
}

fn seen(sink: &MockServer) -> Vec<Seen> {
    sink.requests()
        .iter()
        .map(|r| {
            let body = r.json();
            let state = body["alerts"]
                .as_array()
                .expect("alerts")
                .iter()
                .map(|a| {
                    (
                        a["labels"]["instance"].as_str().unwrap_or("?").to_string(),
                        a["status"].as_str().unwrap_or("?").to_string(),
                    )
                })
                .collect();
            Seen {
                router: r.path.trim_start_matches('/').to_string(),
                at: r.at,
                group: body["groupLabels"]["alertname"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
                state,
            }
        })
        .collect()
}

fn state(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// When the last of the `wanted` (group, state) pairs first reached the sink, once all have.
fn all_arrived(
    sink: &MockServer,
    wanted: &[(String, BTreeMap<String, String>)],
) -> Option<Instant> {
    let all = seen(sink);
    wanted
        .iter()
        .map(|(group, want)| {
            all.iter()
                .find(|s| &s.group == group && &s.state == want)
                .map(|s| s.at)
        })
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .max()
}

/// The groups a router holds (`/admin/v1/groups`; loopback clients need no token).
async fn router_groups(router: &RouterProc) -> BTreeSet<String> {
    let v: Value = reqwest::get(format!("{}/admin/v1/groups", router.base))
        .await
        .expect("groups")
        .json()
        .await
        .expect("json");
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["labels"]["alertname"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_beside_clustered_alertmanagers_survive_a_replica_kill() {
    replica_kill(false).await;
}

/// The same, resolving right after the kill: the survivor's router never saw the groups
/// the dead router had queued fire, and announces their resolutions all the same (its
/// Alertmanager hands them over because the firing went out through the peer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolutions_right_after_a_replica_kill_reach_the_sink() {
    replica_kill(true).await;
}

async fn replica_kill(resolve_at_once: bool) {
    init();
    let started = Instant::now();
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let (r0, d0) = start_router(0, &sink).await;
    let (r1, d1) = start_router(1, &sink).await;
    let (c0, c1) = (free_port(), free_port());
    let cluster = |port, peer| AmCluster {
        port,
        peers: vec![peer],
        peer_timeout: "1s",
    };
    let am0 = Am::start_clustered(&am_config(&r0), &cluster(c0, c1)).await;
    let am1 = Am::start_clustered(&am_config(&r1), &cluster(c1, c0)).await;
    am0.wait_cluster(2).await;
    am1.wait_cluster(2).await;
    let mut replicas = [
        Some(Replica {
            am: am0,
            router: r0,
            _dir: d0,
        }),
        Some(Replica {
            am: am1,
            router: r1,
            _dir: d1,
        }),
    ];

    // Like Prometheus: the same alerts to every Alertmanager.
    let firing: Vec<Value> = (0..GROUPS)
        .flat_map(|g| (0..2).map(move |i| prom_alert(g, i, false)))
        .collect();
    for r in replicas.iter().flatten() {
        r.am.post_alerts(&Value::Array(firing.clone())).await;
    }

    // Mid-flight: as soon as two groups have reached the sink, kill the replica that sent
    // them (the cluster's position 0, the one that notifies), Alertmanager and router both.
    // Its router still has the other groups queued behind its rate limit.
    let first = wait_for(
        Duration::from_secs(30),
        "two firing notifications",
        || async {
            let s = seen(&sink);
            (s.len() >= 2).then(|| s[0].router.clone())
        },
    )
    .await;
    let victim = if first == "router0" { 0 } else { 1 };
    let survivor = 1 - victim;
    let mut dead = replicas[victim].take().expect("victim");
    dead.router.child.kill().expect("kill -9 the router");
    dead.am.kill();
    let killed_at = Instant::now();
    let before_kill = seen(&sink);
    assert!(
        before_kill.len() < GROUPS,
        "the kill came too late to be mid-flight: {} of {GROUPS} groups were delivered",
        before_kill.len()
    );
    let survivor = replicas[survivor].take().expect("survivor");
    let all_firing = state(&[("i0", "firing"), ("i1", "firing")]);

    // The survivor's Alertmanager has every group in its notification log (gossiped from
    // the dead replica), so it sends nothing new until its repeat_interval: then its router
    // learns every firing group and delivers those it has not delivered itself.
    let firing_done = if resolve_at_once {
        None
    } else {
        let wanted: Vec<_> = (0..GROUPS)
            .map(|g| (format!("HaGroup{g}"), all_firing.clone()))
            .collect();
        let firing_done = wait_for(
            Duration::from_secs(30),
            "every group's firing state at the sink",
            || async { all_arrived(&sink, &wanted) },
        )
        .await;
        wait_for(
            Duration::from_secs(30),
            "the survivor's router to hold every group",
            || async { (router_groups(&survivor.router).await.len() == GROUPS).then_some(()) },
        )
        .await;
        Some(firing_done)
    };

    // Resolve on the survivor only: groups 0-2 entirely, group 3 in part, 4-5 keep firing.
    // Either once its router holds every group, or at once: then the survivor's router
    // never saw groups 0-2 fire (the dead router had them queued), and still announces the
    // resolutions its Alertmanager hands over (README "High availability").
    let resolved_at = Instant::now();
    let resolved: Vec<Value> = (0..3)
        .flat_map(|g| (0..2).map(move |i| prom_alert(g, i, true)))
        .chain([prom_alert(3, 0, true)])
        .collect();
    survivor.am.post_alerts(&Value::Array(resolved)).await;
    let all_resolved = state(&[("i0", "resolved"), ("i1", "resolved")]);
    let half_resolved = state(&[("i0", "resolved"), ("i1", "firing")]);
    let wanted: Vec<_> = (0..3)
        .map(|g| (format!("HaGroup{g}"), all_resolved.clone()))
        .chain([("HaGroup3".to_string(), half_resolved)])
        .collect();
    let resolved_done = wait_for(
        Duration::from_secs(30),
        "every resolution at the sink",
        || async { all_arrived(&sink, &wanted) },
    )
    .await;

    // Let the survivor's Alertmanager repeat everything once more (repeat_interval), so that
    // anything it would still send has reached its router, then count.
    let firing_received = || {
        metric(
            &survivor.router.base,
            "alert_router_alerts_received_total{status=\"firing\"}",
        )
    };
    let f0 = firing_received().await;
    wait_for(
        Duration::from_secs(20),
        "another repeat from the survivor",
        || async {
            // the 5 alerts still firing: group 3's i1, groups 4 and 5 (resolved alerts
            // leave Alertmanager's groups once their resolution was sent)
            (firing_received().await >= f0 + 5.0).then_some(())
        },
    )
    .await;
    // and until the survivor's router has nothing left to deliver
    wait_for(Duration::from_secs(10), "an empty queue", || async {
        (metric(
            &survivor.router.base,
            "alert_router_notification_queue_depth{receiver=\"sink\",integration=\"webhook\",index=\"0\"}",
        )
        .await
            == 0.0)
            .then_some(())
    })
    .await;

    let all = seen(&sink);
    assert!(sink.violations().is_empty());
    // Duplicates: a notification repeating a state its group already reached the sink with.
    //
    // The bound. Alertmanager's HA is at-least-once: replicas share the notification log
    // by gossip, the replica at position n waits n × peer_timeout before sending, and a
    // replica that sees a newer entry from a peer stays silent, but a replica that failed
    // (or gossip that lagged) means another one sends too. Each router deduplicates what its
    // own Alertmanager hands it (its notification log: a state is announced once; repeats
    // follow its own repeat_interval, 1h here), but routers share nothing. So a state reaches
    // the sink at most once per router: at most once more here, for the states the dead
    // replica's router delivered before the kill and the survivor's router announced again
    // when its Alertmanager re-sent them. States reached only after the kill (the
    // resolutions) come from the survivor alone: exactly once.
    let mut duplicates = BTreeMap::new();
    for g in 0..GROUPS {
        let group = format!("HaGroup{g}");
        let mine: Vec<&Seen> = all.iter().filter(|s| s.group == group).collect();
        let mut states: BTreeMap<&BTreeMap<String, String>, Vec<&str>> = BTreeMap::new();
        for s in &mine {
            states.entry(&s.state).or_default().push(&s.router);
        }
        let mut dup = 0;
        for (st, routers) in &states {
            let distinct: BTreeSet<&&str> = routers.iter().collect();
            assert_eq!(
                distinct.len(),
                routers.len(),
                "{group}: one router announced {st:?} twice: {routers:?}"
            );
            if st.values().any(|v| v == "resolved") {
                assert_eq!(
                    routers.len(),
                    1,
                    "{group}: resolution {st:?} after the kill came more than once"
                );
            }
            dup += routers.len() - 1;
        }
        assert!(dup <= 1, "{group}: {dup} duplicates (bound: 1 per group)");
        duplicates.insert(group, (mine.len(), dup));
    }
    for g in 4..GROUPS {
        assert!(
            !all.iter()
                .any(|s| s.group == format!("HaGroup{g}")
                    && s.state.values().any(|v| v == "resolved")),
            "HaGroup{g} never resolved"
        );
    }

    let total_dups: usize = duplicates.values().map(|(_, d)| d).sum();
    println!("HA figures: {GROUPS} groups × 2 alerts, 2 clustered Alertmanager 0.25 replicas, a router beside each");
    println!(
        "  killed router{victim} + its Alertmanager after {} of {GROUPS} groups had reached the sink",
        before_kill.len()
    );
    for (group, (n, d)) in &duplicates {
        println!("  {group}: {n} notifications, {d} duplicate(s)");
    }
    println!(
        "  total: {} notifications, {total_dups} duplicates (bound {GROUPS}: one per group)",
        all.len()
    );
    match firing_done {
        Some(t) => println!(
            "  every group's firing state at the sink {:.1} s after the kill (Alertmanager repeat_interval {AM_REPEAT})",
            t.duration_since(killed_at).as_secs_f64()
        ),
        None => println!("  resolved right after the kill"),
    }
    println!(
        "  every resolution at the sink {:.1} s after it was posted to the survivor",
        resolved_done.duration_since(resolved_at).as_secs_f64()
    );
    if !resolve_at_once {
        // The old sender's router, restarted on its volume as Kubernetes does, is sent
        // nothing any more (its replica's log says the peer notified): its firing groups
        // end by the webhook TTL, without a resolve, instead of repeating for ever. The
        // survivor's router keeps the groups its Alertmanager keeps repeating.
        let cfg = dead._dir.path().join("alert-router.yml");
        let port: u16 = dead
            .router
            .base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("router port");
        let restarted = Instant::now();
        let back = RouterProc::spawn_logging(&cfg, port, "error").await;
        let ended = wait_for(
            Duration::from_secs(30),
            "the old sender's router to let its stale groups go",
            || async { router_groups(&back).await.is_empty().then(Instant::now) },
        )
        .await;
        let expired = metric(&back.base, "alert_router_alerts_expired_total").await;
        assert!(
            expired >= 1.0,
            "no alert left by the TTL (alert_router_alerts_expired_total {expired})"
        );
        let live = router_groups(&survivor.router).await;
        let want: BTreeSet<String> = (3..GROUPS).map(|g| format!("HaGroup{g}")).collect();
        assert_eq!(live, want, "the survivor's router lost live groups");
        let late = seen(&sink)
            .iter()
            .filter(|s| s.at > restarted && s.router == format!("router{victim}"))
            .count();
        println!(
            "  router{victim} restarted on its store {:.1} s after the kill: no group left {:.1} s later ({expired} alerts expired quietly by webhook_firing_ttl {ROUTER_TTL}); {late} notification(s) it had queued went out late",
            restarted.duration_since(killed_at).as_secs_f64(),
            ended.duration_since(restarted).as_secs_f64()
        );
        drop(back);
    }
    println!("  test time {:.1} s", started.elapsed().as_secs_f64());
    drop(dead);
    drop(survivor);
}
