//! Crash harness under load (issue 8 §1): the real binary is `kill -9`ed at random moments
//! while one loader per group posts alerts (new, repeated, resolved, re-fired) and a sink,
//! sometimes slow, receives the webhook notifications. After every restart on the same
//! store each acknowledged alert must be there in its last acknowledged state; at the end
//! every group's final state must reach the sink, nothing may stay queued, and a crash may
//! cost at most one duplicate notification per group.
//!
//! `CRASH_ROUNDS` (default 50) sets the number of kills, `CRASH_SEED` replays a run (the
//! seed is printed), `CRASH_LOG=<file>` appends the router's debug log to a file,
mod common;
use common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

const GROUPS: usize = 20;
const ALERTS: usize = 5;

/// An alert's state as posted: times in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Firing { starts: i64 },
    Resolved { starts: i64, ends: i64 },
}

fn ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn time_of(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).expect("time")
}

fn group_name(g: usize) -> String {
    format!("g{g:02}")
}

impl St {
    fn starts(self) -> i64 {
        match self {
            St::Firing { starts } | St::Resolved { starts, .. } => starts,
        }
    }

    /// The alert of group `g`, number `i`, in this state, as Alertmanager posts it.
    fn alert(self, g: usize, i: usize) -> Value {
        let status = match self {
            St::Firing { .. } => "firing",
            St::Resolved { .. } => "resolved",
        };
        let mut a = alert(
            &[
                ("alertname", "Crash"),
                ("group", &group_name(g)),
                ("alert", &format!("a{i}")),
            ],
            status,
        );
        a["startsAt"] = ts(time_of(self.starts())).into();
        a["endsAt"] = match self {
            St::Firing { .. } => alert_router::alert::ZERO_TIME.into(),
            St::Resolved { ends, .. } => ts(time_of(ends)).into(),
        };
        a
    }

    /// The state of a stored alert as `GET /admin/v1/alerts` shows it.
    fn of_stored(a: &Value) -> St {
        let starts = ms(parse_time(a["startsAt"].as_str().expect("startsAt")));
        match a["status"].as_str() {
            Some("firing") => St::Firing { starts },
            Some("resolved") => St::Resolved {
                starts,
                ends: ms(parse_time(a["endsAt"].as_str().expect("endsAt"))),
            },
            s => panic!("status {s:?} of {a}"),
        }
    }

    /// The next report of an alert last acknowledged as `cur`, at `now`.
    fn next(cur: Option<St>, now: i64, rng: &mut StdRng) -> St {
        match cur {
            None => St::Firing { starts: now },
            Some(St::Firing { starts }) if rng.random_bool(0.6) => St::Firing { starts },
            Some(St::Firing { starts }) => St::Resolved {
                starts,
                ends: (now - 1).max(starts + 1),
            },
            Some(r @ St::Resolved { .. }) if rng.random_bool(0.5) => r,
            Some(St::Resolved { .. }) => St::Firing { starts: now },
        }
    }
}

/// What the loaders know about one alert.
#[derive(Debug, Clone, Default)]
struct AlertModel {
    /// The state of its last acknowledged (2xx) post.
    acked: Option<St>,
    /// The state of a post that got no answer and was not acknowledged since: the store
    /// may hold either.
    uncertain: Option<St>,
    /// `startsAt` of every firing episode ever posted.
    episodes: BTreeSet<i64>,
}

/// One attempt to post an alert's state: when (since the start of the test) it was sent
/// and answered, and how.
#[derive(Debug, Clone)]
#[allow(dead_code)] // read through Debug in failure reports
struct Post {
    sent: Duration,
    done: Duration,
    st: St,
    outcome: &'static str,
}

#[derive(Default)]
struct Stats {
    posts_acked: AtomicU64,
    reports_acked: AtomicU64,
    posts_503: AtomicU64,
    posts_unanswered: AtomicU64,
    /// The slowest acknowledgement since the last kill, in ms.
    slowest_ack_ms: AtomicU64,
}

type Model = Arc<Mutex<Vec<Vec<AlertModel>>>>;

/// Every attempt to post each alert (per group, per alert), for the report of a failure;
/// kept apart from the model, which is copied at every check.
type Posts = Arc<Mutex<Vec<Vec<Vec<Post>>>>>;

/// Post random changes to the alerts of group `g`, one request at a time, until `stop`;
/// a request that fails is sent again (as Alertmanager does) until it is acknowledged.
/// Each request is made while holding `gate` for reading, so that the controller, holding
/// it for writing, sees a model no request is changing.
#[allow(clippy::too_many_arguments)]
async fn loader(
    g: usize,
    seed: u64,
    base: String,
    model: Model,
    gate: Arc<RwLock<()>>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    posts: Posts,
    started: Instant,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(seed ^ (g as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    while !stop.load(Relaxed) {
        let mut which: Vec<usize> = (0..ALERTS).collect();
        which.shuffle(&mut rng);
        which.truncate(rng.random_range(1..=ALERTS));
        let now = ms(now());
        let changes: Vec<(usize, St)> = {
            let mut m = model.lock().unwrap();
            which
                .iter()
                .map(|&i| {
                    let st = St::next(m[g][i].acked, now, &mut rng);
                    m[g][i].episodes.insert(st.starts());
                    (i, st)
                })
                .collect()
        };
        let body = webhook(changes.iter().map(|(i, st)| st.alert(g, *i)).collect());
        loop {
            let gate = gate.read().await;
            let sent = Instant::now();
            let res = client
                .post(format!("{base}/webhook"))
                .json(&body)
                .send()
                .await;
            let outcome = match &res {
                Ok(r) if r.status().is_success() => "acked",
                Ok(r) if r.status() == 503 => "503",
                Ok(_) => "other",
                Err(e) if e.is_connect() => "refused",
                Err(_) => "unanswered",
            };
            {
                let mut p = posts.lock().unwrap();
                for (i, st) in &changes {
                    p[g][*i].push(Post {
                        sent: sent.duration_since(started),
                        done: started.elapsed(),
                        st: *st,
                        outcome,
                    });
                }
            }
            let pause = match res {
                Ok(r) if r.status().is_success() => {
                    let mut m = model.lock().unwrap();
                    for (i, st) in &changes {
                        m[g][*i].acked = Some(*st);
                        m[g][*i].uncertain = None;
                    }
                    stats.posts_acked.fetch_add(1, Relaxed);
                    stats
                        .slowest_ack_ms
                        .fetch_max(sent.elapsed().as_millis() as u64, Relaxed);
                    stats.reports_acked.fetch_add(changes.len() as u64, Relaxed);
                    break;
                }
                Ok(r) if r.status() == 503 => {
                    stats.posts_503.fetch_add(1, Relaxed);
                    let after = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .unwrap_or(1);
                    // loosely: a tenth of what it asks
                    Duration::from_millis(after * 100)
                }
                Ok(r) => panic!(
                    "group {g}: unexpected {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ),
                // never sent: the router is down
                Err(e) if e.is_connect() => Duration::from_millis(20),
                Err(_) => {
                    stats.posts_unanswered.fetch_add(1, Relaxed);
                    let mut m = model.lock().unwrap();
                    for (i, st) in &changes {
                        m[g][*i].uncertain = Some(*st);
                    }
                    Duration::from_millis(20)
                }
            };
            drop(gate);
            tokio::time::sleep(pause).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
    }
}

/// Counts of the checks after each restart.
#[derive(Default)]
struct Checked {
    uncertain_new: usize,
    uncertain_old: usize,
}

/// Every acknowledged alert is stored in its last acknowledged state (or the state of a
/// post that got no answer), and nothing else is stored.
async fn check_store(
    client: &reqwest::Client,
    base: &str,
    model: &Model,
    round: usize,
    seed: u64,
    checked: &mut Checked,
) {
    let stored = get_json_at(client, base, "/admin/v1/alerts").await;
    let mut by_key: BTreeMap<(String, String), St> = BTreeMap::new();
    for a in stored.as_array().expect("alerts") {
        let key = (
            a["labels"]["group"].as_str().unwrap_or("?").to_string(),
            a["labels"]["alert"].as_str().unwrap_or("?").to_string(),
        );
        assert!(
            by_key.insert(key.clone(), St::of_stored(a)).is_none(),
            "seed {seed} round {round}: {key:?} stored twice"
        );
    }
    let m = model.lock().unwrap().clone();
    let mut known = 0;
    for (g, alerts) in m.iter().enumerate() {
        for (i, am) in alerts.iter().enumerate() {
            let key = (group_name(g), format!("a{i}"));
            let got = by_key.get(&key).copied();
            known += got.is_some() as usize;
            let ok = got == am.acked || (got.is_some() && got == am.uncertain);
            assert!(
                ok,
                "seed {seed} round {round}: LOST or wrong: {key:?} acknowledged as {:?} \
                 (unanswered post: {:?}), stored after the restart: {got:?}",
                am.acked, am.uncertain
            );
            if am.uncertain.is_some() && am.uncertain != am.acked {
                if got == am.uncertain {
                    checked.uncertain_new += 1;
                } else {
                    checked.uncertain_old += 1;
                }
            }
        }
    }
    assert_eq!(
        known,
        by_key.len(),
        "seed {seed} round {round}: invented alerts: {by_key:?}"
    );
}

/// Why the sink's last notification of some group does not show the model's final state,
/// if it does not. Firing alerts must be announced with their current `startsAt`, except
/// that a resolve and re-fire within one `group_interval` is invisible to the
/// notification log (Alertmanager's: it compares fingerprints), so an earlier episode of
/// the same alert may still be the last one announced.
fn final_state_mismatch(
    model: &[Vec<AlertModel>],
    by_group: &BTreeMap<String, Vec<(Received, NotificationContent)>>,
    stale_episodes: &mut usize,
) -> Option<String> {
    *stale_episodes = 0;
    for (g, alerts) in model.iter().enumerate() {
        let name = group_name(g);
        let firing: BTreeMap<String, i64> = alerts
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match a.acked {
                Some(St::Firing { starts }) => Some((format!("a{i}"), starts)),
                _ => None,
            })
            .collect();
        let Some((_, last)) = by_group.get(&name).and_then(|v| v.last()) else {
            if firing.is_empty() {
                continue; // fired and resolved before any flush: nothing to announce
            }
            return Some(format!(
                "{name}: nothing received, firing in the model: {firing:?}"
            ));
        };
        let want_status = if firing.is_empty() {
            "resolved"
        } else {
            "firing"
        };
        if last.status != want_status {
            return Some(format!(
                "{name}: last notification {last:?}, model firing {firing:?}"
            ));
        }
        let mut shown_firing = BTreeSet::new();
        for (labels, a) in &last.alerts {
            let id = labels.get("alert").cloned().unwrap_or_default();
            let i: usize = id.trim_start_matches('a').parse().unwrap_or(usize::MAX);
            let Some(m) = alerts.get(i) else {
                return Some(format!("{name}: unknown alert {labels:?}"));
            };
            match (m.acked, a.status.as_str()) {
                (Some(St::Firing { starts }), "firing") => {
                    let got = ms(a.starts_at);
                    if got != starts {
                        if got < starts && m.episodes.contains(&got) {
                            *stale_episodes += 1;
                        } else {
                            return Some(format!(
                                "{name}/{id}: announced firing since {got}, model {starts}"
                            ));
                        }
                    }
                    shown_firing.insert(id);
                }
                (Some(St::Resolved { .. }), "resolved") => {}
                (st, _) => {
                    return Some(format!("{name}/{id}: announced {a:?}, model {st:?}"));
                }
            }
        }
        let want: BTreeSet<String> = firing.keys().cloned().collect();
        if shown_firing != want {
            return Some(format!(
                "{name}: last notification fires {shown_firing:?}, model {want:?}"
            ));
        }
    }
    None
}

/// What a failure of the backwards check at notification `at` needs to be understood, for
/// the 20 s before it: the kills, the group's notifications (arrival, crash epoch,
/// re-delivery or not, content) and every post of its alerts, in milliseconds since the
/// start of the test.
fn backwards_report(
    g: &str,
    seq: &[(Received, NotificationContent)],
    at: usize,
    posts: &Posts,
    kills: &[Instant],
    started: Instant,
    rounds_seen: &[(u64, u64)],
) -> String {
    use std::fmt::Write;
    let since = |t: Instant| t.saturating_duration_since(started).as_millis();
    let end = seq.get(at).map_or(started, |(r, _)| r.at) + Duration::from_secs(1);
    let from = end
        .checked_sub(Duration::from_secs(21))
        .unwrap_or(started)
        .max(started);
    let window = |t: Instant| t >= from && t <= end;
    let mut out = format!(
        "=== backwards report for group {g}, {} to {} ms ===\nkills (ms):",
        since(from),
        since(end)
    );
    for (k, (delay, _)) in kills.iter().zip(rounds_seen) {
        if window(*k) {
            let _ = write!(out, " {}(sink delay {delay})", since(*k));
        }
    }
    out.push('\n');
    for (i, (r, c)) in seq.iter().enumerate().filter(|(_, (r, _))| window(r.at)) {
        let first = seq.iter().position(|(_, s)| s == c).unwrap_or(i);
        let _ = writeln!(
            out,
            "#{i} at {} epoch {} {}{}:",
            since(r.at),
            kills.partition_point(|k| *k < r.at),
            c.status,
            if first < i {
                format!(" (same as #{first})")
            } else {
                String::new()
            }
        );
        for (labels, a) in &c.alerts {
            let _ = writeln!(
                out,
                "    {} {} starts {} ends {:?}",
                labels.get("alert").map_or("?", String::as_str),
                a.status,
                ms(a.starts_at),
                a.ends_at.map(ms)
            );
        }
    }
    let gi: usize = g.trim_start_matches('g').parse().unwrap_or(usize::MAX);
    if let Some(alerts) = posts.lock().unwrap().get(gi) {
        for (i, a) in alerts.iter().enumerate() {
            let _ = writeln!(out, "posts of a{i}:");
            let (from, end) = (from - started, end - started);
            for p in a.iter().filter(|p| p.sent >= from && p.sent <= end) {
                let _ = writeln!(out, "    {p:?}");
            }
        }
    }
    out
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_and_duplicates_at_most_once_per_crash() {
    init();
    let started = Instant::now();
    let seed = env_u64("CRASH_SEED").unwrap_or_else(rand::random);
    let rounds = env_u64("CRASH_ROUNDS").unwrap_or(50) as usize;
    let log = std::env::var("CRASH_LOG")
        .ok()
        .map(std::path::PathBuf::from);
    println!("crash: seed {seed} (CRASH_SEED={seed} replays it), {rounds} rounds");
    let mut rng = StdRng::seed_from_u64(seed);
    let group_wait = [0, 100, 200][rng.random_range(0..3)];
    let group_interval = [500, 750, 1000][rng.random_range(0..3)];
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The first line continues the `storage:` map that `full_config` starts.
    let yaml = format!(
        "  checkpoint_min_bytes: 8192\n\
         delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: sink\n  group_by: [group]\n  group_wait: {group_wait}ms\n  \
         group_interval: {group_interval}ms\n  repeat_interval: 1h\n\
         receivers:\n  - name: sink\n    webhook_configs:\n      \
         - {{url: '{}', send_resolved: true}}\n",
        sink.url("/hook")
    );
    let cfg = write_config(dir.path(), &yaml, port);
    let spawn = || {
        let (cfg, log) = (cfg.clone(), log.clone());
        async move {
            let t = Instant::now();
            let p = match &log {
                Some(f) => RouterProc::spawn_log_file(&cfg, port, "alert_router=debug", f).await,
                None => RouterProc::spawn_logging(&cfg, port, "warn").await,
            };
            (p, t.elapsed())
        }
    };
    let client = reqwest::Client::new();
    let (mut p, _) = spawn().await;
    let base = p.base.clone();

    let model: Model = Arc::new(Mutex::new(vec![
        vec![AlertModel::default(); ALERTS];
        GROUPS
    ]));
    let gate = Arc::new(RwLock::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let posts: Posts = Arc::new(Mutex::new(vec![vec![Vec::new(); ALERTS]; GROUPS]));
    let loaders: Vec<_> = (0..GROUPS)
        .map(|g| {
            tokio::spawn(loader(
                g,
                seed,
                base.clone(),
                model.clone(),
                gate.clone(),
                stop.clone(),
                stats.clone(),
                posts.clone(),
                started,
            ))
        })
        .collect();

    let mut recoveries = Vec::new();
    let mut kills: Vec<Instant> = Vec::new();
    // per round: the sink's reply delay, the slowest acknowledgement before the kill (ms)
    let mut rounds_seen: Vec<(u64, u64)> = Vec::new();
    let mut checkpoints = 0;
    let mut checked = Checked::default();
    for round in 0..rounds {
        // a slow destination in some rounds, so that deliveries are in flight at the kill
        let delay = [0, 0, 20, 150, 400][rng.random_range(0..5)];
        *sink.default_reply.lock().unwrap() =
            Reply::ok("ok").with_delay(Duration::from_millis(delay));
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..1000))).await;
        let status = get_json_at(&client, &base, "/admin/v1/status").await;
        checkpoints += status["checkpoints"]["completed"]
            .as_u64()
            .expect("checkpoints");
        p.kill9();
        kills.push(Instant::now());
        rounds_seen.push((delay, stats.slowest_ack_ms.swap(0, Relaxed)));
        // the requests in flight fail and are recorded before the model is read
        let quiet = gate.write().await;
        let (q, recovery) = spawn().await;
        p = q;
        recoveries.push(recovery);
        check_store(&client, &base, &model, round, seed, &mut checked).await;
        drop(quiet);
    }

    // Stop the load (each loader finishes its request, until acknowledged), then wait for
    // every group's final state at the sink and for the queue to drain.
    stop.store(true, Relaxed);
    for l in loaders {
        l.await.expect("loader");
    }
    let model_now = model.lock().unwrap().clone();
    assert!(
        model_now.iter().flatten().all(|a| a.uncertain.is_none()),
        "every loader ends acknowledged"
    );
    check_store(&client, &base, &model, rounds, seed, &mut checked).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let by_group = notifications_by_group(&sink.requests(), "group");
        let why = match final_state_mismatch(&model_now, &by_group, &mut 0) {
            Some(why) => why,
            None => match open_notifications(&client, &base).await {
                open if open.is_empty() => break,
                open => format!("open notifications: {open:#?}"),
            },
        };
        if Instant::now() > deadline {
            let groups = get_json_at(&client, &base, "/admin/v1/groups").await;
            let receivers = get_json_at(&client, &base, "/admin/v1/receivers").await;
            panic!(
                "seed {seed}: no convergence after 60s: {why}\ngroups: {groups:#}\n\
                 receivers: {receivers:#}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // settled: nothing more arrives on the next ticks, and no dead letters
    tokio::time::sleep(Duration::from_millis(2 * group_interval)).await;
    let reqs = sink.requests();
    let by_group = notifications_by_group(&reqs, "group");
    let mut stale = 0;
    if let Some(why) = final_state_mismatch(&model_now, &by_group, &mut stale) {
        panic!("seed {seed}: final state: {why}");
    }
    assert!(open_notifications(&client, &base).await.is_empty());
    let dead = get_json_at(&client, &base, "/admin/v1/notifications?state=dead").await;
    assert_eq!(
        dead.as_array().map(Vec::len),
        Some(0),
        "dead letters: {dead}"
    );

    // Duplicates: a notification identical to the previous one of its group (only a crash
    // can make one: repeat_interval is 1h). Re-deliveries: identical to any earlier one.
    // Re-deliveries: identical to an earlier one, attributed to the crash before them.
    let (mut duplicates, mut redelivered, mut worst) = (0, 0, 0);
    let mut answered_long_before = 0;
    let mut per_crash: BTreeMap<(String, usize), Vec<String>> = BTreeMap::new();
    for (g, seq) in &by_group {
        let mut seen: Vec<(Instant, &NotificationContent)> = Vec::new();
        let mut dup_g = 0;
        for (i, (r, c)) in seq.iter().enumerate() {
            if i > 0 && seq[i - 1].1 == *c {
                dup_g += 1;
            }
            if let Some((first, _)) = seen.iter().find(|(_, s)| *s == c) {
                redelivered += 1;
                let crash = kills.partition_point(|k| *k < r.at);
                let age = crash
                    .checked_sub(1)
                    .map(|c| kills[c].saturating_duration_since(*first));
                // answered (the round's reply delay) well before the kill: its delivery
                // was recorded too late, not cut short by the kill
                if let (Some(age), Some(c)) = (age, crash.checked_sub(1)) {
                    if age > Duration::from_millis(rounds_seen[c].0 + 100) {
                        answered_long_before += 1;
                    }
                }
                per_crash
                    .entry((g.clone(), crash))
                    .or_default()
                    .push(format!(
                        "#{i} ({:?} ago at the kill, {} alerts)",
                        age,
                        c.alerts.len()
                    ));
                continue;
            }
            if let Some((_, prev)) = seen.last() {
                if let Some(why) = c.backwards_from(prev) {
                    println!(
                        "{}",
                        backwards_report(g, seq, i, &posts, &kills, started, &rounds_seen)
                    );
                    panic!("seed {seed}: group {g} went backwards: {why}");
                }
            }
            seen.push((r.at, c));
        }
        assert!(
            dup_g <= rounds,
            "seed {seed}: group {g}: {dup_g} duplicates for {rounds} crashes"
        );
        duplicates += dup_g;
        worst = worst.max(dup_g);
    }
    let worst_crash = per_crash.values().map(Vec::len).max().unwrap_or(0);
    // The bound, counted exactly: at most one re-delivery per group per crash (a
    // worker sends a group's next notification only once the record of its previous
    // attempt is written, so a kill can undo at most the one in flight).
    for ((g, crash), v) in per_crash.iter().filter(|(_, v)| v.len() > 1) {
        let (delay, slowest) = rounds_seen[crash - 1];
        println!(
            "crash: group {g}, crash {crash} (sink delay {delay}ms, slowest ack before it \
             {slowest}ms): {} re-deliveries: {v:?}",
            v.len()
        );
        // the group's timeline: (crash epoch, index of the first identical notification)
        let seq = &by_group[g];
        let timeline: Vec<(usize, usize)> = seq
            .iter()
            .map(|(r, c)| {
                let first = seq.iter().position(|(_, s)| s == c).unwrap_or(0);
                (kills.partition_point(|k| *k < r.at), first)
            })
            .collect();
        println!("crash: group {g} timeline (epoch, content): {timeline:?}");
    }
    assert!(
        worst_crash <= 1,
        "seed {seed}: {worst_crash} re-deliveries of one group after one crash"
    );
    recoveries.sort();
    let median = recoveries
        .get(recoveries.len() / 2)
        .copied()
        .unwrap_or_default();
    let max = recoveries.last().copied().unwrap_or_default();
    let alerts_acked = model_now
        .iter()
        .flatten()
        .filter(|a| a.acked.is_some())
        .count();
    println!(
        "crash summary: seed {seed}; crashes {rounds}; posts acked {}; alert reports acked {}; \
         alerts acked {alerts_acked}; lost 0; posts unanswered {}; uncertain resolved {} \
         (stored new {}, old {}); 503s {}; notifications {}; duplicates {duplicates} \
         (max {worst} per group); re-deliveries {redelivered} \
         (max {worst_crash} per group and crash, {answered_long_before} answered \
         over 100ms before the kill); stale episodes in last \
         notifications {stale}; recovery median {median:?}, max {max:?}; checkpoints completed {checkpoints}; \
         group_wait {group_wait}ms group_interval {group_interval}ms; took {:?}",
        stats.posts_acked.load(Relaxed),
        stats.reports_acked.load(Relaxed),
        stats.posts_unanswered.load(Relaxed),
        checked.uncertain_new + checked.uncertain_old,
        checked.uncertain_new,
        checked.uncertain_old,
        stats.posts_503.load(Relaxed),
        reqs.len(),
        started.elapsed(),
    );
    p.kill9();
}

/// A resolve whose `endsAt` lies before the group's last flush — as an upstream
/// Alertmanager sends it, up to its own `group_interval` after the end — and that a restart
/// interrupts before the next flush is still announced after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_resolve_is_announced_after_a_restart() {
    init();
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let yaml = format!(
        "route:\n  receiver: sink\n  group_wait: 0s\n  group_interval: 3s\n  \
         repeat_interval: 1h\nreceivers:\n  - name: sink\n    webhook_configs:\n      \
         - {{url: '{}', send_resolved: true}}\n",
        sink.url("/hook")
    );
    let cfg = write_config(dir.path(), &yaml, port);
    let p = RouterProc::spawn(&cfg, port).await;
    let client = reqwest::Client::new();
    let post = |body: Value| {
        let client = client.clone();
        let url = format!("http://127.0.0.1:{port}/webhook");
        async move { client.post(url).json(&body).send().await.unwrap().status() }
    };
    let starts = ms(now()) - 600_000;
    let firing = St::Firing { starts };
    assert_eq!(post(webhook(vec![firing.alert(0, 0)])).await, 200);
    wait_for(
        Duration::from_secs(10),
        "the firing notification",
        || async { (sink.count() == 1).then_some(()) },
    )
    .await;
    // resolved five minutes ago, reported now; the next flush is due in 3s
    let resolved = St::Resolved {
        starts,
        ends: ms(now()) - 300_000,
    };
    assert_eq!(post(webhook(vec![resolved.alert(0, 0)])).await, 200);
    p.kill9();
    let p = RouterProc::spawn(&cfg, port).await;
    wait_for(
        Duration::from_secs(10),
        "the resolved notification after the restart",
        || async {
            let last = sink.requests().last().map(Received::json)?;
            (last["status"] == "resolved").then_some(())
        },
    )
    .await;
    p.kill9();
}
