//! Differential conformance against the real Alertmanager 0.25 (Debian's
//! `prometheus-alertmanager`): Alertmanager and the router get the same route configuration
//! and the same timed sequence of `POST /api/v2/alerts` calls (posted to both at the same
//! moment); each sends its webhook notifications to its own local sink. Per group the two
//! sequences of notifications must agree: receiver, status, the set of firing alerts, the set
//! of resolved alerts, and the time of arrival (within a tolerance; the machine is shared).
//! Group keys and alert fingerprints must be identical as well.
//!
//! Each scenario also checks that Alertmanager itself behaved as the scenario assumes (the
//! "reference" check), so that a scenario cannot pass vacuously and a noisy machine shows
//! up as such instead of as a router bug.
//!
//! Times in the scripts are seconds from the scenario start. Sleeps only pace the scripted
//! inputs; the notifications are then observed until the scenario's horizon (needed to see
//! notifications that must NOT happen) and compared.
mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Tolerance for the arrival time of corresponding notifications.
const TIME_TOLERANCE: f64 = 1.0;

/// The router's store directory: on tmpfs (`/dev/shm`) where there is one. These scenarios
/// compare the grouping timeline, and a flushed notification is sent only once its outbox
/// frame is `fsync`ed (`storage.sync: batch`, the default). On a disk still writing back
/// gigabytes of freshly built test binaries, as on a fresh CI machine, one such `fsync`
/// took over a second and a first notification came 1.2-1.7 s late (reproduced with a
/// `dd` writing beside the tests). tmpfs keeps the same code path, `fsync`s included,
/// without the disk's latency; durability itself is tested on disk elsewhere.
fn memory_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("conformance-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir")
}

// ---------------------------------------------------------------------------------------
// Alerts as Prometheus posts them
// ---------------------------------------------------------------------------------------

fn secs(s: f64) -> time::Duration {
    time::Duration::seconds_f64(s)
}

/// One postable alert (`POST /api/v2/alerts` element). Every scenario gives each alert a
/// unique `id` label, used to print alerts compactly.
fn alert(labels: &[(&str, &str)], starts: OffsetDateTime, ends: Option<OffsetDateTime>) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let mut a = json!({
        "labels": labels,
        "annotations": {"summary": "conformance"},
        "startsAt": ts(starts),
        "generatorURL": "http://prometheus.test/graph?g0.expr=up",
    });
    if let Some(e) = ends {
        a["endsAt"] = Value::String(ts(e));
    }
    a
}

// ---------------------------------------------------------------------------------------
// One Alertmanager + router pair running one scenario
// ---------------------------------------------------------------------------------------

/// Scenarios run one at a time: on two shared cores, another scenario's Alertmanager
/// start-up would distort the timing being compared.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Pair {
    /// Held for the scenario's lifetime (see [`SERIAL`]).
    _serial: tokio::sync::MutexGuard<'static, ()>,
    name: &'static str,
    config: String,
    am: Am,
    app: TestApp,
    am_sink: MockServer,
    rt_sink: MockServer,
    client: reqwest::Client,
    t0: Instant,
}

impl Pair {
    /// Start both sides with `config`, in which every `SINK` is replaced by the side's own
    /// sink (`http://127.0.0.1:port`). The scenario clock starts when both are ready.
    async fn start(name: &'static str, config: &str) -> Pair {
        let serial = SERIAL.lock().await;
        init();
        let am_sink = MockServer::start(Reply::ok("ok"), None).await;
        let rt_sink = MockServer::start(Reply::ok("ok"), None).await;
        let am_cfg = config.replace("SINK", &am_sink.url(""));
        let rt_cfg = config.replace("SINK", &rt_sink.url(""));
        let (am, app) = tokio::join!(Am::start(&am_cfg), TestApp::start_in(memory_dir(), &rt_cfg));
        Pair {
            _serial: serial,
            name,
            config: config.to_string(),
            am,
            app,
            am_sink,
            rt_sink,
            client: reqwest::Client::new(),
            t0: Instant::now(),
        }
    }

    fn elapsed(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// Pace the script: wait until `s` seconds after the scenario start.
    async fn at(&self, s: f64) {
        let target = self.t0 + Duration::from_secs_f64(s);
        tokio::time::sleep_until(target.into()).await;
        let late = self.elapsed() - s;
        if late > 0.3 {
            eprintln!(
                "[{}] warning: script step at +{s:.1}s ran {late:.2}s late (machine busy)",
                self.name
            );
        }
    }

    /// `POST /api/v2/alerts` to both at the same moment; both must accept.
    async fn post(&self, alerts: Vec<Value>) {
        let body = Value::Array(alerts);
        let send = |url: String| {
            let c = self.client.clone();
            let body = body.clone();
            async move {
                let r = c.post(&url).json(&body).send().await.expect("post alerts");
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default())
            }
        };
        let (a, r) = tokio::join!(
            send(format!("{}/api/v2/alerts", self.am.base)),
            send(self.app.url("/api/v2/alerts"))
        );
        assert_eq!(
            a.0, 200,
            "[{}] Alertmanager refused {body}: {}",
            self.name, a.1
        );
        assert_eq!(r.0, 200, "[{}] router refused {body}: {}", self.name, r.1);
    }

    /// Observe both sinks until `horizon` seconds after the start; return the normalised
    /// notifications (Alertmanager's, router's).
    async fn observe(&self, horizon: f64) -> (Vec<Note>, Vec<Note>) {
        self.at(horizon).await;
        let norm = |sink: &MockServer, side: &str| -> Vec<Note> {
            sink.requests()
                .iter()
                .map(|r| Note::from_request(r, self.t0, side))
                .collect()
        };
        (
            norm(&self.am_sink, "Alertmanager"),
            norm(&self.rt_sink, "router"),
        )
    }

    async fn stop(self) {
        drop(self.am);
        self.app.stop().await;
    }
}

// ---------------------------------------------------------------------------------------
// Normalised notifications
// ---------------------------------------------------------------------------------------

/// Canonical form of a label set: `{a="1",b="2"}` (names sorted).
fn labels_string(v: &Value) -> String {
    let m = label_map(v);
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// The `id` label of a canonical label-set string, for compact printing.
fn short(labels: &str) -> String {
    labels
        .split(',')
        .find_map(|p| {
            p.trim_start_matches('{')
                .strip_prefix("id=\"")
                .map(|r| r.trim_end_matches('}').trim_end_matches('"').to_string())
        })
        .unwrap_or_else(|| labels.to_string())
}

/// One webhook notification, reduced to what is compared.
#[derive(Debug, Clone)]
struct Note {
    /// Seconds from the scenario start to arrival at the sink.
    at: f64,
    /// Sink path = which integration (one path per webhook config).
    path: String,
    receiver: String,
    group_labels: String,
    group_key: String,
    status: String,
    firing: BTreeSet<String>,
    resolved: BTreeSet<String>,
    /// Alerts whose `status` is neither firing nor resolved, or malformed bodies.
    problems: Vec<String>,
    /// label set → fingerprint
    fingerprints: BTreeMap<String, String>,
}

impl Note {
    fn from_request(r: &Received, t0: Instant, side: &str) -> Note {
        let at =
            r.at.checked_duration_since(t0)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
            json!({"__invalid": format!("{side}: body is not JSON ({e}): {}", String::from_utf8_lossy(&r.body))})
        });
        let mut n = Note {
            at,
            path: r.path.clone(),
            receiver: body["receiver"].as_str().unwrap_or("<none>").to_string(),
            group_labels: labels_string(&body["groupLabels"]),
            group_key: body["groupKey"].as_str().unwrap_or("<none>").to_string(),
            status: body["status"].as_str().unwrap_or("<none>").to_string(),
            firing: BTreeSet::new(),
            resolved: BTreeSet::new(),
            problems: Vec::new(),
            fingerprints: BTreeMap::new(),
        };
        if let Some(p) = body.get("__invalid") {
            n.problems.push(p.to_string());
        }
        if body["version"] != "4" {
            n.problems
                .push(format!("version {} (want \"4\")", body["version"]));
        }
        for a in body["alerts"].as_array().cloned().unwrap_or_default() {
            let l = labels_string(&a["labels"]);
            n.fingerprints.insert(
                l.clone(),
                a["fingerprint"].as_str().unwrap_or("<none>").to_string(),
            );
            match a["status"].as_str() {
                Some("firing") => {
                    n.firing.insert(l);
                }
                Some("resolved") => {
                    n.resolved.insert(l);
                }
                other => n.problems.push(format!("alert {l} has status {other:?}")),
            }
        }
        n
    }

    /// Group identity: integration (sink path) + group labels.
    fn group(&self) -> String {
        format!("{} {}", self.path, self.group_labels)
    }

    /// What must agree between the two sides (besides timing).
    fn content(&self) -> String {
        let ids = |s: &BTreeSet<String>| s.iter().map(|l| short(l)).collect::<Vec<_>>().join(" ");
        let mut c = format!(
            "receiver={} status={} firing[{}] resolved[{}]",
            self.receiver,
            self.status,
            ids(&self.firing),
            ids(&self.resolved)
        );
        if !self.problems.is_empty() {
            let _ = write!(c, " PROBLEMS{:?}", self.problems);
        }
        c
    }

    /// Same as `content` but with full label sets (for difference messages).
    fn full(&self) -> String {
        format!(
            "{} | firing {:?} resolved {:?}",
            self.content(),
            self.firing,
            self.resolved
        )
    }

    /// Status and alert sets (the receiver name is compared per group, separately).
    fn same_content(&self, o: &Note) -> bool {
        self.status == o.status
            && self.firing == o.firing
            && self.resolved == o.resolved
            && self.problems.is_empty()
            && o.problems.is_empty()
    }
}

fn by_group(notes: &[Note]) -> BTreeMap<String, Vec<Note>> {
    let mut m: BTreeMap<String, Vec<Note>> = BTreeMap::new();
    for n in notes {
        m.entry(n.group()).or_default().push(n.clone());
    }
    for v in m.values_mut() {
        v.sort_by(|a, b| a.at.total_cmp(&b.at));
    }
    m
}

fn timeline(notes: &[Note]) -> String {
    let mut s = String::new();
    if notes.is_empty() {
        s.push_str("    (no notifications)\n");
    }
    for (g, v) in by_group(notes) {
        let keys: BTreeSet<&str> = v.iter().map(|n| n.group_key.as_str()).collect();
        let _ = writeln!(s, "    group {g}  groupKey {keys:?}");
        for n in v {
            let _ = writeln!(s, "      +{:6.2}s  {}", n.at, n.content());
        }
    }
    s
}

fn report(pair: &Pair, am: &[Note], rt: &[Note]) -> String {
    format!(
        "configuration (SINK = each side's sink):\n{}\nAlertmanager 0.25 notifications:\n{}router notifications:\n{}",
        pair.config,
        timeline(am),
        timeline(rt)
    )
}

// ---------------------------------------------------------------------------------------
// Reference check: Alertmanager behaved as the scenario assumes
// ---------------------------------------------------------------------------------------

/// Expected Alertmanager behaviour: per group (`"<path> <group labels>"`), the contents
/// (`"firing[a b] resolved[c]"`, by `id` label) of its notifications, in order. With
/// `trailing_repeats_allowed`, more notifications with the last expected content may follow
/// (repeats).
struct Expect<'a> {
    group: &'a str,
    contents: &'a [&'a str],
    trailing_repeats_allowed: bool,
}

fn exact<'a>(group: &'a str, contents: &'a [&'a str]) -> Expect<'a> {
    Expect {
        group,
        contents,
        trailing_repeats_allowed: false,
    }
}

fn check_reference(pair: &Pair, am: &[Note], rt: &[Note], expect: &[Expect]) {
    let groups = by_group(am);
    let mut errs = Vec::new();
    let ids = |n: &Note| {
        let f = |s: &BTreeSet<String>| s.iter().map(|l| short(l)).collect::<Vec<_>>().join(" ");
        format!("firing[{}] resolved[{}]", f(&n.firing), f(&n.resolved))
    };
    for e in expect {
        let got: Vec<String> = groups
            .get(e.group)
            .map(|v| v.iter().map(ids).collect())
            .unwrap_or_default();
        let want: Vec<String> = e.contents.iter().map(|s| s.to_string()).collect();
        let ok = if e.trailing_repeats_allowed {
            got.len() >= want.len()
                && got[..want.len()] == want[..]
                && got[want.len()..].iter().all(|g| Some(g) == want.last())
        } else {
            got == want
        };
        if !ok {
            errs.push(format!("group {}: expected {want:?}, got {got:?}", e.group));
        }
    }
    for g in groups.keys() {
        if !expect.iter().any(|e| e.group == g) {
            errs.push(format!("unexpected group {g}"));
        }
    }
    assert!(
        errs.is_empty(),
        "[{}] the REFERENCE Alertmanager did not behave as the scenario assumes \
         (scenario design problem or an overloaded machine, not a router verdict):\n  {}\n{}",
        pair.name,
        errs.join("\n  "),
        report(pair, am, rt)
    );
}

// ---------------------------------------------------------------------------------------
// Comparator: the router against Alertmanager
// ---------------------------------------------------------------------------------------

struct Compare {
    /// End of the observation window (s).
    horizon: f64,
    /// Notifications this close to the horizon may be missing on one side (s).
    tail: f64,
    /// (group_interval, repeat_interval) of the repeating route. When set, a repeat (same
    /// content as the previous notification of the group) is compared by its distance from
    /// the previous notification, with one group_interval tick of slack (Alertmanager itself
    /// sends a repeat one tick late when the timing is tight), and the router's repeat must
    /// not come earlier than repeat_interval after the previous notification.
    repeat: Option<(f64, f64)>,
}

impl Compare {
    fn window(horizon: f64) -> Compare {
        Compare {
            horizon,
            tail: 0.0,
            repeat: None,
        }
    }
}

fn compare(pair: &Pair, am: &[Note], rt: &[Note], c: &Compare) {
    let a_groups = by_group(am);
    let r_groups = by_group(rt);
    let mut diffs: Vec<String> = Vec::new();
    let names: BTreeSet<&String> = a_groups.keys().chain(r_groups.keys()).collect();
    let empty = Vec::new();
    for g in names {
        let a = a_groups.get(g).unwrap_or(&empty);
        let r = r_groups.get(g).unwrap_or(&empty);
        // group keys
        let ak: BTreeSet<&str> = a.iter().map(|n| n.group_key.as_str()).collect();
        let rk: BTreeSet<&str> = r.iter().map(|n| n.group_key.as_str()).collect();
        if !a.is_empty() && !r.is_empty() && ak != rk {
            diffs.push(format!(
                "group {g}: groupKey differs: Alertmanager {ak:?}, router {rk:?}"
            ));
        }
        // receiver names as sent in the payload
        let ar: BTreeSet<&str> = a.iter().map(|n| n.receiver.as_str()).collect();
        let rr: BTreeSet<&str> = r.iter().map(|n| n.receiver.as_str()).collect();
        if !a.is_empty() && !r.is_empty() && ar != rr {
            diffs.push(format!(
                "group {g}: payload `receiver` differs: Alertmanager {ar:?}, router {rr:?}"
            ));
        }
        for i in 0..a.len().max(r.len()) {
            match (a.get(i), r.get(i)) {
                (Some(x), Some(y)) => {
                    if !x.same_content(y) {
                        diffs.push(format!(
                            "group {g} notification #{}: content differs\n      Alertmanager +{:.2}s {}\n      router       +{:.2}s {}",
                            i + 1,
                            x.at,
                            x.full(),
                            y.at,
                            y.full()
                        ));
                        // Later notifications of this group are not comparable any more.
                        break;
                    }
                    let repeat = i > 0 && x.same_content(&a[i - 1]) && y.same_content(&r[i - 1]);
                    match (repeat, c.repeat) {
                        (true, Some((tick, repeat_interval))) => {
                            let ga = x.at - a[i - 1].at;
                            let gr = y.at - r[i - 1].at;
                            if gr < repeat_interval - 0.25 {
                                diffs.push(format!(
                                    "group {g} notification #{} (repeat): {gr:.2}s after the previous one at the router, earlier than repeat_interval {repeat_interval}s (Alertmanager: {ga:.2}s)",
                                    i + 1
                                ));
                            } else if (ga - gr).abs() > tick + 0.5 {
                                diffs.push(format!(
                                    "group {g} notification #{} (repeat): {gr:.2}s after the previous one at the router, {ga:.2}s at Alertmanager (tolerance: one group_interval tick {tick}s + 0.5s)",
                                    i + 1
                                ));
                            }
                        }
                        _ => {
                            if (x.at - y.at).abs() > TIME_TOLERANCE {
                                diffs.push(format!(
                                    "group {g} notification #{} ({}): at +{:.2}s at the router, +{:.2}s at Alertmanager (tolerance {TIME_TOLERANCE}s)",
                                    i + 1,
                                    x.content(),
                                    y.at,
                                    x.at
                                ));
                            }
                        }
                    }
                }
                (Some(x), None) if x.at < c.horizon - c.tail => diffs.push(format!(
                    "group {g} notification #{}: Alertmanager sent at +{:.2}s {}; the router sent nothing",
                    i + 1,
                    x.at,
                    x.full()
                )),
                (None, Some(y)) if y.at < c.horizon - c.tail => diffs.push(format!(
                    "group {g} notification #{}: the router sent at +{:.2}s {}; Alertmanager sent nothing",
                    i + 1,
                    y.at,
                    y.full()
                )),
                _ => {} // unmatched in the tail of the window: may just be late
            }
        }
    }
    // fingerprints of the same label set
    let fps = |v: &[Note]| -> BTreeMap<String, String> {
        v.iter().flat_map(|n| n.fingerprints.clone()).collect()
    };
    let (af, rf) = (fps(am), fps(rt));
    for (l, f) in &af {
        if let Some(g) = rf.get(l) {
            if g != f {
                diffs.push(format!("fingerprint of {l}: Alertmanager {f}, router {g}"));
            }
        }
    }
    if diffs.is_empty() {
        eprintln!("[{}] no difference:\n{}", pair.name, report(pair, am, rt));
    }
    assert!(
        diffs.is_empty(),
        "[{}] the router differs from Alertmanager 0.25:\n  - {}\n{}",
        pair.name,
        diffs.join("\n  - "),
        report(pair, am, rt)
    );
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// 1. Alerts joining a group: `a` fires (first notification after group_wait); `b` joins
///    after it and `c` later (each "new alerts added" at the next group_interval tick); a
///    Prometheus-style re-post of unchanged alerts notifies nothing. A second group created
///    meanwhile waits its own group_wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_alerts_joining_a_group() {
    let p = Pair::start(
        "joining",
        "global:\n  resolve_timeout: 1m\nroute:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: SINK/team\n",
    )
    .await;
    let start = now();
    let a = [("alertname", "Join"), ("id", "a")];
    let b = [("alertname", "Join"), ("id", "b")];
    let c = [("alertname", "Join"), ("id", "c")];
    let z = [("alertname", "Other"), ("id", "z")];
    p.post(vec![alert(&a, start, None)]).await; // flush at 1, ticks 3, 5, 7
    p.at(2.0).await;
    let t = now();
    p.post(vec![
        alert(&a, start, None),
        alert(&b, t, None),
        alert(&z, t, None),
    ])
    .await;
    p.at(4.0).await;
    let t = now();
    p.post(vec![alert(&c, t, None)]).await;
    p.at(5.5).await;
    p.post(vec![
        alert(&a, start, None),
        alert(&z, start + secs(2.0), None),
    ])
    .await;
    let (am, rt) = p.observe(8.5).await;
    check_reference(
        &p,
        &am,
        &rt,
        &[
            exact(
                r#"/team {alertname="Join"}"#,
                &[
                    "firing[a] resolved[]",
                    "firing[a b] resolved[]",
                    "firing[a b c] resolved[]",
                ],
            ),
            exact(r#"/team {alertname="Other"}"#, &["firing[z] resolved[]"]),
        ],
    );
    compare(&p, &am, &rt, &Compare::window(8.5));
    p.stop().await;
}

/// 2. Partial and full resolve by a post whose `endsAt` is in the past (how Prometheus
///    resolves): `a` resolved → "some alerts resolved" (firing b, resolved a); then `b` →
///    "all alerts resolved".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_resolve_by_past_ends_at() {
    let p = Pair::start(
        "resolve-past-endsAt",
        "global:\n  resolve_timeout: 1m\nroute:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: SINK/team\n        send_resolved: true\n",
    )
    .await;
    let start = now();
    let a = [("alertname", "Res"), ("id", "a")];
    let b = [("alertname", "Res"), ("id", "b")];
    let later = || Some(now() + secs(60.0));
    p.post(vec![alert(&a, start, later()), alert(&b, start, later())])
        .await; // flush at 1, ticks 3, 5, 7
    p.at(2.0).await;
    p.post(vec![
        alert(&a, start, Some(now() - secs(1.0))),
        alert(&b, start, later()),
    ])
    .await;
    p.at(4.0).await;
    p.post(vec![alert(&b, start, Some(now() - secs(1.0)))])
        .await;
    let (am, rt) = p.observe(7.5).await;
    check_reference(
        &p,
        &am,
        &rt,
        &[exact(
            r#"/team {alertname="Res"}"#,
            &[
                "firing[a b] resolved[]",
                "firing[b] resolved[a]",
                "firing[] resolved[b]",
            ],
        )],
    );
    compare(&p, &am, &rt, &Compare::window(7.5));
    p.stop().await;
}

/// 3. Resolve by expiry: alerts posted without `endsAt` get `now + resolve_timeout`; `a` is
///    never re-posted and resolves on its own, `b` is re-posted every second for a while,
///    then stops and resolves too. (Expiries fall between group_interval ticks.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_resolve_by_expiry() {
    let p = Pair::start(
        "resolve-expiry",
        "global:\n  resolve_timeout: 4s\nroute:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: SINK/team\n",
    )
    .await;
    let start = now();
    let a = [("alertname", "Exp"), ("id", "a")];
    let b = [("alertname", "Exp"), ("id", "b")];
    // ticks at 1, 3, 5, 7, 9, 11; a expires at 4, b (last post at 4) at 8
    p.post(vec![alert(&a, start, None), alert(&b, start, None)])
        .await;
    for s in 1..=4 {
        p.at(s as f64).await;
        p.post(vec![alert(&b, start, None)]).await;
    }
    let (am, rt) = p.observe(11.5).await;
    check_reference(
        &p,
        &am,
        &rt,
        &[exact(
            r#"/team {alertname="Exp"}"#,
            &[
                "firing[a b] resolved[]",
                "firing[b] resolved[a]",
                "firing[] resolved[b]",
            ],
        )],
    );
    compare(&p, &am, &rt, &Compare::window(11.5));
    p.stop().await;
}

/// 4. Repeats under constant re-posting (every second, `endsAt = now + 4s`, as Prometheus
///    does). group_interval 2s, repeat_interval 3s (not a multiple): a repeat is due at the
///    first tick more than 3s after the last send, i.e. every 4s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_repeat_interval() {
    let p = Pair::start(
        "repeat",
        "global:\n  resolve_timeout: 1m\nroute:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 3s\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: SINK/team\n",
    )
    .await;
    let start = now();
    let a = [("alertname", "Rep"), ("id", "a")];
    for s in 0..=14 {
        p.at(s as f64).await;
        p.post(vec![alert(&a, start, Some(now() + secs(4.0)))])
            .await;
    }
    let horizon = 15.5;
    let (am, rt) = p.observe(horizon).await;
    // first at 1, repeats at 5, 9, 13 (one may land a tick late)
    check_reference(
        &p,
        &am,
        &rt,
        &[Expect {
            group: r#"/team {alertname="Rep"}"#,
            contents: &[
                "firing[a] resolved[]",
                "firing[a] resolved[]",
                "firing[a] resolved[]",
            ],
            trailing_repeats_allowed: true,
        }],
    );
    compare(
        &p,
        &am,
        &rt,
        &Compare {
            horizon,
            tail: 2.0 + TIME_TOLERANCE,
            repeat: Some((2.0, 3.0)),
        },
    );
    p.stop().await;
}

/// 5. `group_by: []` (explicit, on the root: one group for everything on the route, group
///    labels `{}`) and `group_by: ['...']` (a child: one group per distinct label set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_group_by_all_and_none() {
    let p = Pair::start(
        "group-by-all-none",
        "global:\n  resolve_timeout: 1m\nroute:\n  receiver: none\n  group_by: []\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n  routes:\n    - matchers: ['kind=\"all\"']\n      receiver: all\n      group_by: ['...']\nreceivers:\n  - name: none\n    webhook_configs:\n      - url: SINK/none\n  - name: all\n    webhook_configs:\n      - url: SINK/all\n",
    )
    .await;
    let start = now();
    let x1 = [("alertname", "X"), ("kind", "all"), ("id", "x1")];
    let x2 = [("alertname", "X"), ("kind", "all"), ("id", "x2")];
    let x3 = [("alertname", "X"), ("kind", "all"), ("id", "x3")];
    let y1 = [("alertname", "Y1"), ("id", "y1")];
    let y2 = [("alertname", "Y2"), ("id", "y2")];
    let y3 = [("alertname", "Y3"), ("id", "y3")];
    p.post(vec![
        alert(&x1, start, None),
        alert(&x2, start, None),
        alert(&y1, start, None),
        alert(&y2, start, None),
    ])
    .await;
    p.at(2.0).await;
    let t = now();
    p.post(vec![alert(&x3, t, None), alert(&y3, t, None)]).await;
    let (am, rt) = p.observe(5.5).await;
    check_reference(
        &p,
        &am,
        &rt,
        &[
            exact(
                "/none {}",
                &["firing[y1 y2] resolved[]", "firing[y1 y2 y3] resolved[]"],
            ),
            exact(
                r#"/all {alertname="X",id="x1",kind="all"}"#,
                &["firing[x1] resolved[]"],
            ),
            exact(
                r#"/all {alertname="X",id="x2",kind="all"}"#,
                &["firing[x2] resolved[]"],
            ),
            exact(
                r#"/all {alertname="X",id="x3",kind="all"}"#,
                &["firing[x3] resolved[]"],
            ),
        ],
    );
    compare(&p, &am, &rt, &Compare::window(5.5));
    p.stop().await;
}

/// 6. A route tree: `continue: true`, children overriding `receiver`, `group_by`,
///    `group_wait` and `group_interval`, a grandchild inheriting `group_wait`, regex and
///    deprecated `match` matchers, and the root as the fallback. Receiver names contain
///    `-`, which Alertmanager's `regexp.QuoteMeta` of the payload's `receiver` leaves as is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_route_tree_continue_and_overrides() {
    let config = r#"global:
  resolve_timeout: 1m
route:
  receiver: default
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: ['team="db"']
      receiver: db
      group_by: [alertname, instance]
      continue: true
    - matchers: ['severity=~"crit.*"']
      receiver: pager
      group_wait: 3s
      routes:
        - matchers: ['team="web"']
          receiver: web-pager
          group_by: [team]
    - match:
        team: db
      receiver: db-all
      group_by: [team]
      group_interval: 3s
receivers:
  - name: default
    webhook_configs: [{url: SINK/default}]
  - name: db
    webhook_configs: [{url: SINK/db}]
  - name: pager
    webhook_configs: [{url: SINK/pager}]
  - name: web-pager
    webhook_configs: [{url: SINK/web-pager}]
  - name: db-all
    webhook_configs: [{url: SINK/db-all}]
"#;
    let p = Pair::start("route-tree", config).await;
    let start = now();
    // A: db (continue) + db-all; B: db (continue) + pager (stops); C: web-pager; D: root
    let a = [
        ("alertname", "DiskFull"),
        ("team", "db"),
        ("instance", "db1"),
        ("severity", "warning"),
        ("id", "A"),
    ];
    let b = [
        ("alertname", "DiskFull"),
        ("team", "db"),
        ("instance", "db2"),
        ("severity", "critical"),
        ("id", "B"),
    ];
    let c = [
        ("alertname", "Latency"),
        ("team", "web"),
        ("instance", "w1"),
        ("severity", "critical"),
        ("id", "C"),
    ];
    let d = [("alertname", "Other"), ("team", "x"), ("id", "D")];
    let e = [
        ("alertname", "Latency"),
        ("team", "web"),
        ("instance", "w2"),
        ("severity", "critical"),
        ("id", "E"),
    ];
    let f = [
        ("alertname", "DiskFull"),
        ("team", "db"),
        ("instance", "db3"),
        ("severity", "warning"),
        ("id", "F"),
    ];
    p.post(vec![
        alert(&a, start, None),
        alert(&b, start, None),
        alert(&c, start, None),
        alert(&d, start, None),
    ])
    .await;
    // web-pager: flush at 3 (inherited group_wait 3s), ticks every 2s → E lands at 5
    p.at(4.0).await;
    p.post(vec![alert(&e, now(), None)]).await;
    // db-all: flush at 1, ticks every 3s (4, 7) → F lands at 7; db/{db3}: new group, 6
    p.at(5.0).await;
    p.post(vec![alert(&f, now(), None)]).await;
    let (am, rt) = p.observe(9.0).await;
    check_reference(
        &p,
        &am,
        &rt,
        &[
            exact(
                r#"/db {alertname="DiskFull",instance="db1"}"#,
                &["firing[A] resolved[]"],
            ),
            exact(
                r#"/db {alertname="DiskFull",instance="db2"}"#,
                &["firing[B] resolved[]"],
            ),
            exact(
                r#"/db {alertname="DiskFull",instance="db3"}"#,
                &["firing[F] resolved[]"],
            ),
            exact(
                r#"/db-all {team="db"}"#,
                &["firing[A] resolved[]", "firing[A F] resolved[]"],
            ),
            exact(
                r#"/pager {alertname="DiskFull"}"#,
                &["firing[B] resolved[]"],
            ),
            exact(
                r#"/web-pager {team="web"}"#,
                &["firing[C] resolved[]", "firing[C E] resolved[]"],
            ),
            exact(r#"/default {alertname="Other"}"#, &["firing[D] resolved[]"]),
        ],
    );
    compare(&p, &am, &rt, &Compare::window(9.0));
    p.stop().await;
}

/// 7. Fire and resolve within group_wait: the group's first flush finds only a resolved
///    alert, and Alertmanager sends NOTHING for it (a group next to it fires normally).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_fire_and_resolve_within_group_wait() {
    let p = Pair::start(
        "flap-within-group-wait",
        "global:\n  resolve_timeout: 1m\nroute:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 3s\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: SINK/team\n        send_resolved: true\n",
    )
    .await;
    let start = now();
    let f = [("alertname", "Flap"), ("id", "f")];
    let s = [("alertname", "Stays"), ("id", "s")];
    p.post(vec![
        alert(&f, start, Some(start + secs(60.0))),
        alert(&s, start, Some(start + secs(60.0))),
    ])
    .await;
    p.at(1.5).await;
    p.post(vec![alert(&f, start, Some(now() - secs(0.2)))])
        .await;
    // first flush of both groups at 3, ticks at 5, 7
    let (am, rt) = p.observe(8.0).await;
    check_reference(
        &p,
        &am,
        &rt,
        &[exact(
            r#"/team {alertname="Stays"}"#,
            &["firing[s] resolved[]"],
        )],
    );
    compare(&p, &am, &rt, &Compare::window(8.0));
    p.stop().await;
}

/// 8. `send_resolved: false` next to `send_resolved: true` on the same receiver: a partial
///    resolve notifies only the latter; on the full resolve Alertmanager skips the send for
///    the former but logs it, so when the alert fires again both notify again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_send_resolved_false() {
    let p = Pair::start(
        "send-resolved-false",
        "global:\n  resolve_timeout: 4s\nroute:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: SINK/loud\n        send_resolved: true\n      - url: SINK/quiet\n        send_resolved: false\n",
    )
    .await;
    let start = now();
    let a = [("alertname", "Quiet"), ("id", "a")];
    let b = [("alertname", "Quiet"), ("id", "b")];
    // ticks at 1, 3, 5, 7, 9, 11; a expires at 4, b (last post at 4) at 8
    p.post(vec![alert(&a, start, None), alert(&b, start, None)])
        .await;
    for s in 1..=4 {
        p.at(s as f64).await;
        p.post(vec![alert(&b, start, None)]).await;
    }
    // b fires again at 10: a new episode (Alertmanager 0.25 may still hold the emptied
    // group until its maintenance; its next tick, 11, equals a new group's group_wait)
    p.at(10.0).await;
    p.post(vec![alert(&b, now(), None)]).await;
    let (am, rt) = p.observe(12.5).await;
    check_reference(
        &p,
        &am,
        &rt,
        &[
            exact(
                r#"/loud {alertname="Quiet"}"#,
                &[
                    "firing[a b] resolved[]",
                    "firing[b] resolved[a]",
                    "firing[] resolved[b]",
                    "firing[b] resolved[]",
                ],
            ),
            exact(
                r#"/quiet {alertname="Quiet"}"#,
                &["firing[a b] resolved[]", "firing[b] resolved[]"],
            ),
        ],
    );
    compare(&p, &am, &rt, &Compare::window(12.5));
    p.stop().await;
}
