//! Differential conformance of Alertmanager's API v2 and of `amtool` against the real
//! Alertmanager 0.25 (Debian's `prometheus-alertmanager` and `amtool`): Alertmanager and the
//! router binary get the same configuration (a route tree with `continue`, an inhibition rule
//! with `equal`, a child route muted always by a time interval, webhook receivers pointing at
//! a dead loopback port), the same calls are made to both, and the answers are compared
//! modulo ids and timestamps: status codes, the alerts' labels, states, silences (by the
//! order in which their ids appeared), inhibiting alerts (by labels) and receivers, the
//! silences' states and matchers, groups, receivers, the status document, and the exit code
//! and whitespace-normalised stdout of each `amtool` command (its stderr is ignored: it warns
//! that the router's version is not 0.25.0).
//!
//! Each test collects every difference and fails at its end listing all of them. Where
//! Alertmanager 0.25 is older than the behaviour the router implements (later Alertmanager
//! releases), the test says so and checks both sides' actual answers explicitly.
//!
//! Every test runs its own Alertmanager and router (own ports and directories), so the
//! tests can run in parallel.
mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const AMTOOL: &str = "/usr/bin/amtool";

/// The configuration both get; `DEAD` is a loopback URL where nothing listens.
const CONFIG: &str = r#"route:
  receiver: default
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['team="db"']
      receiver: db
      continue: true
    - matchers: ['severity="critical"']
      receiver: oncall
    - matchers: ['team="quiet"']
      receiver: quiet
      mute_time_intervals: [always]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [cluster]
time_intervals:
  - name: always
    time_intervals:
      - weekdays: ['sunday:saturday']
receivers:
  - name: default
    webhook_configs: [{url: 'DEAD/default'}]
  - name: db
    webhook_configs: [{url: 'DEAD/db'}]
  - name: oncall
    webhook_configs: [{url: 'DEAD/oncall'}]
  - name: quiet
    webhook_configs: [{url: 'DEAD/quiet'}]
"#;

const SIDES: [&str; 2] = ["Alertmanager", "router"];

// ---------------------------------------------------------------------------------------
// Both servers, the calls, and the differences found
// ---------------------------------------------------------------------------------------

/// Names for ids (silence UUIDs), in the order each side first showed them, so that the
/// same sequence of calls gives the same names on both sides.
#[derive(Default)]
struct Names {
    by_id: HashMap<String, String>,
}

impl Names {
    fn name(&mut self, id: &str) -> String {
        let next = self.by_id.len() + 1;
        self.by_id
            .entry(id.to_string())
            .or_insert_with(|| format!("id{next}"))
            .clone()
    }

    fn id_of(&self, name: &str) -> String {
        self.by_id
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no id named {name}"))
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

struct Pair {
    am: Am,
    rt: RouterProc,
    client: reqwest::Client,
    names: [Mutex<Names>; 2],
    diffs: Mutex<Vec<String>>,
    home: tempfile::TempDir,
}

impl Pair {
    async fn start() -> Pair {
        init();
        let dead = format!("http://127.0.0.1:{}", free_port());
        let config = CONFIG.replace("DEAD", &dead);
        let (am, rt) = tokio::join!(Am::start(&config), RouterProc::start(&config));
        Pair {
            am,
            rt,
            client: reqwest::Client::new(),
            names: Default::default(),
            diffs: Mutex::default(),
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn base(&self, side: usize) -> &str {
        if side == 0 {
            &self.am.base
        } else {
            &self.rt.base
        }
    }

    fn name(&self, side: usize, id: &str) -> String {
        self.names[side].lock().unwrap().name(id)
    }

    fn id(&self, side: usize, name: &str) -> String {
        self.names[side].lock().unwrap().id_of(name)
    }

    /// The same request to both, at the same time; `path` may contain `{ID:name}`, replaced
    /// by each side's id of that name.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> [Answer; 2] {
        let one = |side: usize| {
            let mut req = self.client.request(
                method.clone(),
                format!("{}{}", self.base(side), self.ids_in(side, path)),
            );
            if let Some(b) = body {
                req = req.json(&self.ids_in_json(side, b));
            }
            async move {
                let r = req.send().await.expect("request");
                let status = r.status().as_u16();
                Answer {
                    status,
                    text: r.text().await.unwrap_or_default(),
                }
            }
        };
        let (a, r) = tokio::join!(one(0), one(1));
        [a, r]
    }

    async fn get(&self, path: &str) -> [Answer; 2] {
        self.call(Method::GET, path, None).await
    }

    /// `text` with every `{ID:name}` replaced by this side's id of `name`.
    fn ids_in(&self, side: usize, text: &str) -> String {
        let mut out = text.to_string();
        while let Some(start) = out.find("{ID:") {
            let end = start + out[start..].find('}').expect("closing brace");
            let id = self.id(side, &out[start + 4..end]);
            out.replace_range(start..=end, &id);
        }
        out
    }

    fn ids_in_json(&self, side: usize, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.ids_in(side, s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.ids_in_json(side, x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (k.clone(), self.ids_in_json(side, x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Record a difference unless `am == rt`.
    fn same<T: PartialEq + std::fmt::Debug>(&self, what: &str, am: T, rt: T) -> bool {
        if am == rt {
            return true;
        }
        self.diffs.lock().unwrap().push(format!(
            "{what}:\n  Alertmanager: {am:#?}\n  router:       {rt:#?}"
        ));
        false
    }

    /// Record a failed check that is not a comparison.
    fn fail(&self, what: String) {
        self.diffs.lock().unwrap().push(what);
    }

    /// Same status code on both sides (and it is `want`); the bodies are only shown.
    fn status(&self, what: &str, a: &[Answer; 2], want: u16) {
        if a[0].status != a[1].status {
            self.fail(format!(
                "{what}: status Alertmanager {} {}, router {} {}",
                a[0].status, a[0].text, a[1].status, a[1].text
            ));
        } else if a[0].status != want {
            self.fail(format!(
                "{what}: Alertmanager answered {} (the test expects {want}): {}",
                a[0].status, a[0].text
            ));
        }
    }

    /// Fail the test listing every difference found.
    fn finish(self, test: &str) {
        let diffs = self.diffs.lock().unwrap().clone();
        if !diffs.is_empty() {
            let mut msg = format!(
                "{test}: {} difference(s) between Alertmanager 0.25 and the router:\n",
                diffs.len()
            );
            for d in &diffs {
                let _ = writeln!(msg, "- {d}");
            }
            let _ = writeln!(msg, "Alertmanager's log:\n{}", self.am.log());
            panic!("{msg}");
        }
    }
}

fn mins(m: i64) -> time::Duration {
    time::Duration::minutes(m)
}

// ---------------------------------------------------------------------------------------
// Normalised answers
// ---------------------------------------------------------------------------------------

/// `a=1,b=2` (names sorted) for a label set.
fn labels(v: &Value) -> String {
    let m = label_map(v);
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("<non-string>").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// One `gettableAlert` as compared.
#[derive(Debug, Clone, PartialEq)]
struct AlertView {
    labels: String,
    state: String,
    silenced_by: Vec<String>,
    inhibited_by: Vec<String>,
    muted_by: Vec<String>,
    receivers: Vec<String>,
}

impl AlertView {
    fn line(&self) -> String {
        let mut s = format!(
            "{{{}}} {} silencedBy={:?} inhibitedBy={:?} receivers={:?}",
            self.labels, self.state, self.silenced_by, self.inhibited_by, self.receivers
        );
        if !self.muted_by.is_empty() {
            let _ = write!(s, " mutedBy={:?}", self.muted_by);
        }
        s
    }
}

impl Pair {
    /// An alert of `side`: silences by name, inhibiting alerts by labels (`fps`:
    /// fingerprint → labels).
    fn alert_view(&self, side: usize, a: &Value, fps: &HashMap<String, String>) -> AlertView {
        let mut silenced_by: Vec<String> = strings(&a["status"]["silencedBy"])
            .iter()
            .map(|id| self.name(side, id))
            .collect();
        silenced_by.sort();
        let mut inhibited_by: Vec<String> = strings(&a["status"]["inhibitedBy"])
            .iter()
            .map(|fp| fps.get(fp).cloned().unwrap_or_else(|| format!("fp {fp}")))
            .collect();
        inhibited_by.sort();
        AlertView {
            labels: labels(&a["labels"]),
            state: a["status"]["state"]
                .as_str()
                .unwrap_or("<none>")
                .to_string(),
            silenced_by,
            inhibited_by,
            muted_by: strings(&a["status"]["mutedBy"]),
            receivers: a["receivers"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|x| x["name"].as_str().unwrap_or("<none>").to_string())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn alert_views(
        &self,
        side: usize,
        list: &Value,
        fps: &HashMap<String, String>,
    ) -> Vec<AlertView> {
        list.as_array()
            .map(|a| a.iter().map(|x| self.alert_view(side, x, fps)).collect())
            .unwrap_or_default()
    }

    /// `GET /api/v2/alerts` on both, compared as lines (in the answers' order: by fingerprint).
    async fn compare_alerts(&self, query: &str, fps: &HashMap<String, String>) -> [Vec<String>; 2] {
        let path = format!("/api/v2/alerts{query}");
        let a = self.get(&path).await;
        self.status(&format!("GET {path}"), &a, 200);
        let lines = |side: usize| -> Vec<String> {
            self.alert_views(side, &a[side].json(), fps)
                .iter()
                .map(AlertView::line)
                .collect()
        };
        let (am, rt) = (lines(0), lines(1));
        self.same(&format!("GET {path}"), &am, &rt);
        [am, rt]
    }

    /// fingerprint → labels of every alert `side` shows.
    async fn fingerprints(&self, side: usize) -> HashMap<String, String> {
        let r = self
            .client
            .get(format!("{}/api/v2/alerts", self.base(side)))
            .send()
            .await
            .expect("request");
        let v: Value = r.json().await.expect("json");
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x["fingerprint"].as_str().unwrap_or("").to_string(),
                            labels(&x["labels"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wait until `side`'s `GET /api/v2/alerts` shows exactly `want` (sorted lines):
    /// silences and inhibitions are computed when asked, but the alerts reach
    /// Alertmanager's inhibitor asynchronously. Returns whether it did in time (a failure is
    /// recorded).
    async fn settle(&self, side: usize, want: &[String]) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut want = want.to_vec();
        want.sort();
        loop {
            let fps = self.fingerprints(side).await;
            let r = self
                .client
                .get(format!("{}/api/v2/alerts", self.base(side)))
                .send()
                .await
                .expect("request");
            let v: Value = r.json().await.expect("json");
            let mut got: Vec<String> = self
                .alert_views(side, &v, &fps)
                .iter()
                .map(AlertView::line)
                .collect();
            got.sort();
            if got == want {
                return true;
            }
            if std::time::Instant::now() > deadline {
                self.fail(format!(
                    "{} never showed the expected alerts:\n  want: {want:#?}\n  got:  {got:#?}",
                    SIDES[side]
                ));
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A silence as compared: name, state, matchers, author, comment.
    fn silence_view(&self, side: usize, s: &Value) -> String {
        let matchers: Vec<String> = s["matchers"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| {
                        let op = match (m["isRegex"].as_bool(), m["isEqual"].as_bool()) {
                            (Some(false), Some(true) | None) => "=",
                            (Some(false), Some(false)) => "!=",
                            (Some(true), Some(true) | None) => "=~",
                            (Some(true), Some(false)) => "!~",
                            _ => "<bad>",
                        };
                        format!(
                            "{}{op}{:?}",
                            m["name"].as_str().unwrap_or("<none>"),
                            m["value"].as_str().unwrap_or("<none>")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        format!(
            "{} {} {:?} by={} comment={}",
            self.name(side, s["id"].as_str().unwrap_or("<none>")),
            s["status"]["state"].as_str().unwrap_or("<none>"),
            matchers,
            s["createdBy"].as_str().unwrap_or("<none>"),
            s["comment"].as_str().unwrap_or("<none>"),
        )
    }

    /// `GET /api/v2/silences{query}` on both, compared in order.
    async fn compare_silences(&self, query: &str) -> [Vec<String>; 2] {
        let path = format!("/api/v2/silences{query}");
        let a = self.get(&path).await;
        self.status(&format!("GET {path}"), &a, 200);
        let views = |side: usize| -> Vec<String> {
            a[side]
                .json()
                .as_array()
                .map(|l| l.iter().map(|s| self.silence_view(side, s)).collect())
                .unwrap_or_default()
        };
        let (am, rt) = (views(0), views(1));
        self.same(&format!("GET {path}"), &am, &rt);
        [am, rt]
    }

    /// `POST /api/v2/silences` on both; compares the status, names the new ids (in the
    /// order they appear) and returns the name each side answered with.
    async fn post_silence(&self, what: &str, body: &Value, want: u16) -> [Option<String>; 2] {
        let a = self
            .call(Method::POST, "/api/v2/silences", Some(body))
            .await;
        self.status(&format!("POST silence ({what})"), &a, want);
        let named = |side: usize| {
            a[side].json()["silenceID"]
                .as_str()
                .map(|id| self.name(side, id))
        };
        let (am, rt) = (named(0), named(1));
        self.same(&format!("POST silence ({what}): silenceID"), &am, &rt);
        [am, rt]
    }
}

/// A `postableSilence`.
fn silence(
    matchers: &[(&str, &str, bool, bool)],
    starts: OffsetDateTime,
    ends: OffsetDateTime,
) -> Value {
    json!({
        "matchers": matchers.iter().map(|(n, v, re, eq)| json!({"name": n, "value": v, "isRegex": re, "isEqual": eq})).collect::<Vec<_>>(),
        "startsAt": ts(starts),
        "endsAt": ts(ends),
        "createdBy": "conformance",
        "comment": "differential test",
    })
}

/// `v` without the key at `path` (object keys and array indices).
fn without(v: &Value, path: &[&str]) -> Value {
    let mut v = v.clone();
    let (last, parents) = path.split_last().expect("a path");
    let pointer: String = parents.iter().map(|p| format!("/{p}")).collect();
    if let Some(Value::Object(o)) = v.pointer_mut(&pointer) {
        o.remove(*last);
    }
    v
}

/// One `postableAlert` firing now.
fn alert(l: &[(&str, &str)]) -> Value {
    let l: serde_json::Map<String, Value> = l
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({"labels": l, "annotations": {"summary": "api conformance"}, "startsAt": ts(now() - mins(1))})
}

/// The alerts every test posts, as (labels, what both must show once settled without
/// silences: state, inhibiting alert, receivers).
fn alerts() -> Vec<Value> {
    vec![
        // the inhibition source of cluster c1
        alert(&[
            ("alertname", "CpuHigh"),
            ("severity", "critical"),
            ("cluster", "c1"),
        ]),
        // inhibited by CpuHigh (same cluster)
        alert(&[
            ("alertname", "CpuWarn"),
            ("severity", "warning"),
            ("cluster", "c1"),
        ]),
        // not inhibited: no critical alert in c2
        alert(&[
            ("alertname", "CpuWarn"),
            ("severity", "warning"),
            ("cluster", "c2"),
        ]),
        // `continue` on the db route: db and oncall
        alert(&[
            ("alertname", "DbDown"),
            ("severity", "critical"),
            ("team", "db"),
            ("cluster", "c3"),
        ]),
        // db only (continue, but no later sibling matches); inhibited by CpuHigh
        alert(&[
            ("alertname", "DiskFull"),
            ("severity", "warning"),
            ("team", "db"),
            ("cluster", "c1"),
        ]),
        // the route muted always
        alert(&[("alertname", "Quiet"), ("team", "quiet")]),
    ]
}

/// The unsuppressed state of [`alerts`], as [`AlertView::line`]s.
fn settled_lines(silenced: &[(&str, &str)]) -> Vec<String> {
    let sil = |l: &str| -> Vec<String> {
        silenced
            .iter()
            .filter(|(x, _)| *x == l)
            .map(|(_, n)| n.to_string())
            .collect()
    };
    let line = |l: &str, inhibited: Option<&str>, receivers: &[&str]| {
        let silenced_by = sil(l);
        let state = if silenced_by.is_empty() && inhibited.is_none() {
            "active"
        } else {
            "suppressed"
        };
        AlertView {
            labels: l.to_string(),
            state: state.to_string(),
            silenced_by,
            inhibited_by: inhibited.map(|s| vec![s.to_string()]).unwrap_or_default(),
            muted_by: vec![],
            receivers: receivers.iter().map(|s| s.to_string()).collect(),
        }
        .line()
    };
    let cpu_high = "alertname=CpuHigh,cluster=c1,severity=critical";
    vec![
        line(cpu_high, None, &["oncall"]),
        line(
            "alertname=CpuWarn,cluster=c1,severity=warning",
            Some(cpu_high),
            &["default"],
        ),
        line(
            "alertname=CpuWarn,cluster=c2,severity=warning",
            None,
            &["default"],
        ),
        line(
            "alertname=DbDown,cluster=c3,severity=critical,team=db",
            None,
            &["db", "oncall"],
        ),
        line(
            "alertname=DiskFull,cluster=c1,severity=warning,team=db",
            Some(cpu_high),
            &["db"],
        ),
        line("alertname=Quiet,team=quiet", None, &["quiet"]),
    ]
}

impl Pair {
    /// Post [`alerts`] to both (plus one invalid alert when `with_invalid`): both answer
    /// 200, or 400 with the invalid one, and store the valid ones.
    async fn post_alerts(&self, with_invalid: bool) {
        let mut batch = alerts();
        if with_invalid {
            // invalid in every Alertmanager version: starts after it ends
            let mut bad = alert(&[("alertname", "Invalid")]);
            bad["endsAt"] = json!(ts(now() - mins(2)));
            batch.insert(2, bad);
        }
        let a = self
            .call(Method::POST, "/api/v2/alerts", Some(&Value::Array(batch)))
            .await;
        let want = if with_invalid { 400 } else { 200 };
        self.status("POST /api/v2/alerts", &a, want);
    }
}

// ---------------------------------------------------------------------------------------
// 1 + 2: posting alerts, and GET /api/v2/alerts with every filter
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_alerts_post_and_query() {
    let p = Pair::start().await;
    p.post_alerts(true).await;
    // both stored the six valid alerts (and not the invalid one), with the same states
    let want = settled_lines(&[]);
    p.settle(0, &want).await;
    p.settle(1, &want).await;

    // two silences: one on an inhibited alert, one on an active one
    let t = now();
    p.post_silence(
        "DiskFull",
        &silence(&[("alertname", "DiskFull", false, true)], t, t + mins(60)),
        200,
    )
    .await;
    p.post_silence(
        "CpuWarn in c2",
        &silence(
            &[
                ("alertname", "Cpu.*", true, true),
                ("cluster", "c1", false, false),
            ],
            t,
            t + mins(120),
        ),
        200,
    )
    .await;
    let want = settled_lines(&[
        (
            "alertname=DiskFull,cluster=c1,severity=warning,team=db",
            "id1",
        ),
        ("alertname=CpuWarn,cluster=c2,severity=warning", "id2"),
    ]);
    p.settle(0, &want).await;
    p.settle(1, &want).await;

    let fps = p.fingerprints(0).await;
    let all = p.compare_alerts("", &fps).await;
    assert_eq!(all[0].len(), 6, "Alertmanager: {:#?}", all[0]);
    for q in [
        "?filter=alertname%3D%22CpuWarn%22",
        "?filter=severity%3D~%22crit.*%22&filter=cluster%21%3D%22c1%22",
        "?filter=team%3D%22%22",
        "?filter=alertname%21~%22Cpu.*%22",
        "?active=false",
        "?silenced=false",
        "?inhibited=false",
        "?active=false&silenced=false",
        "?active=false&inhibited=false",
        "?silenced=false&inhibited=false",
        "?active=true&silenced=false&inhibited=false&unprocessed=false",
        "?receiver=db",
        "?receiver=on.*",
        "?receiver=default%7Cquiet",
        "?receiver=nobody",
        "?filter=team%3D%22db%22&receiver=oncall",
        // go-openapi's booleans: unknown spellings are false, an empty value the default
        "?active=maybe",
        "?active=",
        "?silenced=0&inhibited=off",
    ] {
        let got = p.compare_alerts(q, &fps).await;
        if q == "?active=false" && got[0].len() != 3 {
            p.fail(format!("Alertmanager's ?active=false: {:#?}", got[0]));
        }
    }
    for q in ["?filter=%7Bbad", "?filter=alertname", "?receiver=%28"] {
        let a = p.get(&format!("/api/v2/alerts{q}")).await;
        p.status(&format!("GET /api/v2/alerts{q}"), &a, 400);
    }
    // Label names: Alertmanager 0.25 accepts only [a-zA-Z_][a-zA-Z0-9_]*; the router
    // accepts any non-empty UTF-8 name, as later releases do by default.
    let a = p
        .call(
            Method::POST,
            "/api/v2/alerts",
            Some(&json!([alert(&[
                ("alertname", "Dashed"),
                ("bad-name", "x")
            ])])),
        )
        .await;
    if (a[0].status, a[1].status) != (400, 200) {
        p.fail(format!(
            "an alert with the label name bad-name: Alertmanager {} {}, router {} {} (want 0.25's 400 and the router's 200)",
            a[0].status, a[0].text, a[1].status, a[1].text
        ));
    }
    p.finish("api_alerts_post_and_query");
}

// ---------------------------------------------------------------------------------------
// 3: silences
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_silences_lifecycle() {
    let p = Pair::start().await;
    let t = now();
    let a_eq = [("alertname", "A", false, true)];
    p.post_silence("active", &silence(&a_eq, t, t + mins(60)), 200)
        .await; // id1
    p.post_silence(
        "regex and not-equal",
        &silence(
            &[
                ("alertname", "B|C", true, true),
                ("team", "x", false, false),
            ],
            t - mins(5),
            t + mins(120),
        ),
        200,
    )
    .await; // id2
    p.post_silence(
        "pending",
        &silence(&[("job", "api", false, true)], t + mins(60), t + mins(180)),
        200,
    )
    .await; // id3
    p.compare_silences("").await;
    for q in [
        "?filter=alertname%3D%22A%22",
        "?filter=alertname%3D~%22B%7CC%22",
        "?filter=alertname%3D~%22B%7CC%22&filter=team%21%3D%22x%22",
        // not label matching: no silence has the matcher team="x"
        "?filter=team%3D%22x%22",
        "?filter=alertname%3DA",
    ] {
        p.compare_silences(q).await;
    }
    let a = p.get("/api/v2/silences?filter=%7Bbad").await;
    p.status("GET /api/v2/silences?filter={bad", &a, 400);

    // one silence by id: known, unknown, malformed
    let a = p.get("/api/v2/silence/{ID:id1}").await;
    p.status("GET /api/v2/silence/id1", &a, 200);
    p.same(
        "GET /api/v2/silence/id1",
        p.silence_view(0, &a[0].json()),
        p.silence_view(1, &a[1].json()),
    );
    let a = p
        .get("/api/v2/silence/00000000-0000-4000-8000-000000000000")
        .await;
    p.status("GET an unknown silence", &a, 404);
    let a = p.get("/api/v2/silence/not-a-uuid").await;
    p.status("GET a malformed silence id", &a, 422);

    // update in place: same matchers and start, later end → same id, new end
    let got = p.get("/api/v2/silence/{ID:id1}").await;
    let new_end = t + mins(240);
    for side in 0..2 {
        let mut body = got[side].json();
        body["endsAt"] = json!(ts(new_end));
        let a = p
            .client
            .post(format!("{}/api/v2/silences", p.base(side)))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = a.status().as_u16();
        let v: Value = a.json().await.unwrap_or(Value::Null);
        let id = v["silenceID"].as_str().unwrap_or("").to_string();
        let name = p.name(side, &id);
        if (status, name.as_str()) != (200, "id1") {
            p.fail(format!(
                "{}: extending id1 answered {status} with {name} (want 200, id1 in place)",
                SIDES[side]
            ));
        }
        let now_end = p.get("/api/v2/silence/{ID:id1}").await[side].json()["endsAt"]
            .as_str()
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
        if now_end.map(|e| e.unix_timestamp()) != Some(new_end.unix_timestamp()) {
            p.fail(format!(
                "{}: id1 ends at {now_end:?} after the update (want {new_end})",
                SIDES[side]
            ));
        }
    }
    // changing the matchers: a new id, the old silence expired
    let mut body = silence(&[("alertname", "C", false, true)], t, t + mins(120));
    body["id"] = json!("{ID:id2}");
    p.post_silence("id2 with other matchers", &body, 200).await; // id4
                                                                 // a pending silence moved to a start in the past: a new one, active
    let mut body = silence(&[("job", "api", false, true)], t - mins(1), t + mins(180));
    body["id"] = json!("{ID:id3}");
    p.post_silence("id3 starting in the past", &body, 200).await; // id5
                                                                  // a pending silence moved later: in place
    let mut body = silence(&[("job", "later", false, true)], t + mins(30), t + mins(90));
    let named = p.post_silence("another pending", &body, 200).await; // id6
    body["id"] = json!("{ID:id6}");
    body["startsAt"] = json!(ts(t + mins(45)));
    let again = p.post_silence("id6 starting later", &body, 200).await;
    p.same("pending update stays in place", named.clone(), again);
    p.compare_silences("").await;

    // expire: active, then again (no-op), pending
    for (what, path) in [
        ("DELETE id1", "/api/v2/silence/{ID:id1}"),
        ("DELETE id1 again", "/api/v2/silence/{ID:id1}"),
        ("DELETE pending id6", "/api/v2/silence/{ID:id6}"),
    ] {
        let a = p.call(Method::DELETE, path, None).await;
        p.status(what, &a, 200);
    }
    let a = p
        .call(Method::DELETE, "/api/v2/silence/not-a-uuid", None)
        .await;
    p.status("DELETE a malformed id", &a, 422);
    // Alertmanager 0.25 answers 500 "silence not found" here; later releases (and the API
    // spec) answer 404, as the router does.
    let a = p
        .call(
            Method::DELETE,
            "/api/v2/silence/00000000-0000-4000-8000-000000000000",
            None,
        )
        .await;
    if (a[0].status, a[1].status) != (500, 404) {
        p.fail(format!(
            "DELETE an unknown silence: Alertmanager {} {}, router {} {} (want 0.25's 500 and the router's 404)",
            a[0].status, a[0].text, a[1].status, a[1].text
        ));
    }
    let a = p.get("/api/v2/silence/{ID:id1}").await;
    p.same(
        "GET id1 after DELETE",
        p.silence_view(0, &a[0].json()),
        p.silence_view(1, &a[1].json()),
    );
    // updating an expired silence creates a new one
    let mut body = silence(&a_eq, t, t + mins(30));
    body["id"] = json!("{ID:id1}");
    p.post_silence("expired id1 again", &body, 200).await; // id7

    // invalid silences: same status codes (texts differ)
    let n = now();
    let m = [("alertname", "X", false, true)];
    let mut cases: Vec<(&str, Value, u16)> = vec![
        ("no matchers", silence(&[], n, n + mins(10)), 422),
        (
            "only a matcher matching the empty string",
            silence(&[("alertname", "", false, true)], n, n + mins(10)),
            400,
        ),
        (
            "only a regex matching the empty string",
            silence(&[("alertname", ".*", true, true)], n, n + mins(10)),
            400,
        ),
        (
            "end before start",
            silence(&m, n + mins(10), n + mins(5)),
            400,
        ),
        (
            "end equals start",
            silence(&m, n + mins(10), n + mins(10)),
            400,
        ),
        (
            "end in the past",
            silence(&m, n - mins(10), n - mins(5)),
            400,
        ),
        (
            "bad regex",
            silence(&[("a", "(", true, true)], n, n + mins(10)),
            400,
        ),
        (
            "empty label name",
            silence(&[("", "x", false, true)], n, n + mins(10)),
            400,
        ),
    ];
    let ok = silence(&m, n, n + mins(10));
    cases.push(("no startsAt", without(&ok, &["startsAt"]), 422));
    cases.push(("no comment", without(&ok, &["comment"]), 422));
    cases.push((
        "matcher without isRegex",
        without(&ok, &["matchers", "0", "isRegex"]),
        422,
    ));
    let mut wrong_type = silence(&m, n, n + mins(10));
    wrong_type["matchers"][0]["isRegex"] = json!("no");
    cases.push(("isRegex a string", wrong_type, 400));
    let mut bad_time = silence(&m, n, n + mins(10));
    bad_time["endsAt"] = json!("tomorrow");
    cases.push(("endsAt not a time", bad_time, 400));
    let mut unknown = silence(&m, n, n + mins(10));
    unknown["id"] = json!("00000000-0000-4000-8000-000000000000");
    cases.push(("unknown id", unknown, 404));
    let mut empty = silence(&m, n, n + mins(10));
    empty["createdBy"] = json!("");
    empty["comment"] = json!("");
    cases.push(("empty author and comment", empty, 200)); // id8
    for (what, body, want) in &cases {
        p.post_silence(what, body, *want).await;
    }
    for (what, raw) in [("not JSON", "nope"), ("an array", "[]")] {
        let mut st = [0u16; 2];
        for (side, s) in st.iter_mut().enumerate() {
            *s = p
                .client
                .post(format!("{}/api/v2/silences", p.base(side)))
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16();
        }
        p.same(&format!("POST silence ({what}): status"), st[0], st[1]);
        if st[0] != 400 {
            p.fail(format!(
                "POST silence ({what}): Alertmanager answered {}",
                st[0]
            ));
        }
    }
    let all = p.compare_silences("").await;
    assert!(all[0].len() >= 8, "Alertmanager: {:#?}", all[0]);
    // Label names (as for alerts): Alertmanager 0.25 refuses a matcher on `a-b`, the router
    // takes it (UTF-8 names, as later releases).
    let a = p
        .call(
            Method::POST,
            "/api/v2/silences",
            Some(&silence(&[("a-b", "x", false, true)], n, n + mins(10))),
        )
        .await;
    if (a[0].status, a[1].status) != (400, 200) {
        p.fail(format!(
            "a silence on the label name a-b: Alertmanager {} {}, router {} {} (want 0.25's 400 and the router's 200)",
            a[0].status, a[0].text, a[1].status, a[1].text
        ));
    }
    p.finish("api_silences_lifecycle");
}

// ---------------------------------------------------------------------------------------
// 4 + 5: groups, receivers, status
// ---------------------------------------------------------------------------------------

/// One alert group as compared.
#[derive(Debug, Clone, PartialEq)]
struct GroupView {
    labels: String,
    receiver: String,
    alerts: Vec<AlertView>,
}

impl Pair {
    fn group_views(&self, side: usize, v: &Value, fps: &HashMap<String, String>) -> Vec<GroupView> {
        v.as_array()
            .map(|g| {
                g.iter()
                    .map(|g| GroupView {
                        labels: labels(&g["labels"]),
                        receiver: g["receiver"]["name"]
                            .as_str()
                            .unwrap_or("<none>")
                            .to_string(),
                        // Alertmanager 0.25 lists an alert's receivers in a group in
                        // map order (random): compared sorted
                        alerts: self
                            .alert_views(side, &g["alerts"], fps)
                            .into_iter()
                            .map(|mut a| {
                                a.receivers.sort();
                                a
                            })
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn group_lines(g: &[GroupView]) -> Vec<String> {
    let mut out = Vec::new();
    for g in g {
        out.push(format!("group {{{}}} receiver={}", g.labels, g.receiver));
        for a in &g.alerts {
            out.push(format!("  {}", a.line()));
        }
    }
    out
}

/// Alertmanager 0.25 predates `mutedBy` and the `muted` parameter of
/// `/api/v2/alerts/groups` (later releases added both; the router implements them): it shows
/// the alerts of a group muted by a time interval as it shows them anywhere else. Checks
/// that the router marks exactly the `quiet` group as muted by `always` (suppressed), then
/// returns the router's groups as 0.25 shows them.
fn as_alertmanager_025(p: &Pair, what: &str, groups: &[GroupView]) -> Vec<GroupView> {
    groups
        .iter()
        .map(|g| {
            let mut g = g.clone();
            for a in &mut g.alerts {
                let want: Vec<String> = if g.receiver == "quiet" {
                    vec!["always".into()]
                } else {
                    vec![]
                };
                if a.muted_by != want {
                    p.fail(format!(
                        "{what}: the router's alert {} in the group of {} is muted by {:?} (want {want:?})",
                        a.labels, g.receiver, a.muted_by
                    ));
                }
                if !a.muted_by.is_empty() {
                    if a.state != "suppressed" {
                        p.fail(format!("{what}: muted alert {} is {}", a.labels, a.state));
                    }
                    a.muted_by.clear();
                    if a.silenced_by.is_empty() && a.inhibited_by.is_empty() {
                        a.state = "active".into();
                    }
                }
            }
            g
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_groups_receivers_status() {
    let p = Pair::start().await;
    p.post_alerts(false).await;
    let t = now();
    p.post_silence(
        "CpuWarn in c2",
        &silence(&[("cluster", "c2", false, true)], t, t + mins(60)),
        200,
    )
    .await;
    let want = settled_lines(&[("alertname=CpuWarn,cluster=c2,severity=warning", "id1")]);
    p.settle(0, &want).await;
    p.settle(1, &want).await;
    let fps = p.fingerprints(0).await;

    // groups exist as soon as their alerts are in (the flush after group_wait does not
    // change them); five alert names, DbDown in two groups (db and oncall)
    for side in 0..2 {
        let url = format!("{}/api/v2/alerts/groups", p.base(side));
        let c = p.client.clone();
        wait_for(Duration::from_secs(15), "six groups", || {
            let (c, url) = (c.clone(), url.clone());
            async move {
                let v: Value = c.get(url).send().await.ok()?.json().await.ok()?;
                (v.as_array()?.len() == 6).then_some(())
            }
        })
        .await;
    }
    for q in [
        "",
        "?active=false",
        "?silenced=false",
        "?inhibited=false",
        "?silenced=false&inhibited=false",
        "?filter=severity%3D%22warning%22",
        "?filter=team%3D~%22db%7Cquiet%22",
        "?receiver=db",
        "?receiver=oncall%7Cdefault",
    ] {
        let path = format!("/api/v2/alerts/groups{q}");
        let a = p.get(&path).await;
        p.status(&format!("GET {path}"), &a, 200);
        let am = p.group_views(0, &a[0].json(), &fps);
        let rt = as_alertmanager_025(&p, &path, &p.group_views(1, &a[1].json(), &fps));
        p.same(&format!("GET {path}"), group_lines(&am), group_lines(&rt));
        if q.is_empty() && am.len() != 6 {
            p.fail(format!("Alertmanager's groups: {:#?}", group_lines(&am)));
        }
    }
    // muted=false: Alertmanager 0.25 ignores it; the router drops the muted group
    let a = p.get("/api/v2/alerts/groups?muted=false").await;
    let all = p.get("/api/v2/alerts/groups").await;
    p.status("GET /api/v2/alerts/groups?muted=false", &a, 200);
    let am = p.group_views(0, &a[0].json(), &fps);
    let am_all = p.group_views(0, &all[0].json(), &fps);
    p.same(
        "Alertmanager 0.25 ignores muted=false",
        group_lines(&am_all),
        group_lines(&am),
    );
    let rt = p.group_views(1, &a[1].json(), &fps);
    let am_unmuted: Vec<GroupView> = am.into_iter().filter(|g| g.receiver != "quiet").collect();
    p.same(
        "muted=false (Alertmanager's groups less the muted one)",
        group_lines(&am_unmuted),
        group_lines(&as_alertmanager_025(&p, "muted=false", &rt)),
    );

    // receivers: names, in configuration order
    let a = p.get("/api/v2/receivers").await;
    p.status("GET /api/v2/receivers", &a, 200);
    p.same("GET /api/v2/receivers", a[0].json(), a[1].json());
    if a[0].json()
        != json!([{"name": "default"}, {"name": "db"}, {"name": "oncall"}, {"name": "quiet"}])
    {
        p.fail(format!("Alertmanager's receivers: {}", a[0].text));
    }

    // status: the same fields; cluster disabled on both (gossip off)
    let a = p.get("/api/v2/status").await;
    p.status("GET /api/v2/status", &a, 200);
    let (am, rt) = (a[0].json(), a[1].json());
    p.same(
        "GET /api/v2/status: fields",
        key_paths(&am, ""),
        key_paths(&rt, ""),
    );
    p.same(
        "GET /api/v2/status: cluster",
        am["cluster"].clone(),
        rt["cluster"].clone(),
    );
    if am["cluster"]["status"] != "disabled" {
        p.fail(format!("Alertmanager's cluster: {}", am["cluster"]));
    }
    for side in 0..2 {
        let v = &a[side].json();
        let uptime = v["uptime"]
            .as_str()
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
        if !uptime.is_some_and(|u| u <= now() && u > now() - mins(5)) {
            p.fail(format!("{}: uptime {}", SIDES[side], v["uptime"]));
        }
    }
    // config.original: the sections the router shows mean the same to Alertmanager
    let parse = |v: &Value| -> Value {
        serde_saphyr::from_str::<Value>(v["config"]["original"].as_str().unwrap_or(""))
            .unwrap_or(Value::Null)
    };
    let (am_cfg, rt_cfg) = (parse(&am), parse(&rt));
    for key in ["route", "inhibit_rules", "time_intervals"] {
        p.same(
            &format!("config.original: {key}"),
            without_defaults(&am_cfg[key]),
            without_defaults(&rt_cfg[key]),
        );
    }
    let names = |c: &Value| -> Vec<Value> {
        c["receivers"]
            .as_array()
            .map(|r| r.iter().map(|r| r["name"].clone()).collect())
            .unwrap_or_default()
    };
    p.same(
        "config.original: receiver names",
        names(&am_cfg),
        names(&rt_cfg),
    );
    p.finish("api_groups_receivers_status");
}

/// Every key path of a JSON document (`a.b`, arrays as `[]`), sorted.
fn key_paths(v: &Value, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = format!("{prefix}.{k}");
                out.push(p.clone());
                out.extend(key_paths(x, &p));
            }
        }
        Value::Array(a) => {
            for x in a {
                out.extend(key_paths(x, &format!("{prefix}[]")));
            }
        }
        _ => {}
    }
    out.sort();
    out.dedup();
    out
}

/// A configuration section without the keys Alertmanager prints at their default value
/// (`continue: false`).
fn without_defaults(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, x)| !(k.as_str() == "continue" && **x == Value::Bool(false)))
                .map(|(k, x)| (k.clone(), without_defaults(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_defaults).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// 6: amtool
// ---------------------------------------------------------------------------------------

/// Output of one `amtool` run.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    code: Option<i32>,
    stdout: Vec<String>,
}

impl Pair {
    /// Run `amtool --alertmanager.url=<side> args…` (`{ID:name}` replaced by the side's id);
    /// stdout normalised: timestamps replaced, ids named, whitespace collapsed per line.
    fn amtool_one(&self, side: usize, args: &[&str]) -> (Run, String) {
        assert!(
            std::path::Path::new(AMTOOL).exists(),
            "{AMTOOL} is missing: install Debian's prometheus-alertmanager (.ci/run does)"
        );
        let out = std::process::Command::new(AMTOOL)
            .arg(format!("--alertmanager.url={}", self.base(side)))
            .args(args.iter().map(|a| self.ids_in(side, a)))
            .env("HOME", self.home.path())
            .env("USER", "conformance")
            .current_dir(self.home.path())
            .output()
            .expect("run amtool");
        let raw = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = self.normalise(side, &raw);
        (
            Run {
                code: out.status.code(),
                stdout,
            },
            format!("{raw}\nstderr: {stderr}"),
        )
    }

    fn normalise(&self, side: usize, text: &str) -> Vec<String> {
        let time = regex::Regex::new(
            r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?( UTC|Z|[+-]\d{2}:\d{2})?",
        )
        .expect("regex");
        let uuid =
            regex::Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
                .expect("regex");
        let text = time.replace_all(text, "<time>");
        let text = uuid.replace_all(&text, |c: &regex::Captures| self.name(side, &c[0]));
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }

    /// Run the same `amtool` command (`line`, split on whitespace) against both: same exit
    /// code and normalised stdout; Alertmanager's exit code must be `want`. Returns the
    /// normalised runs.
    fn amtool(&self, line: &str, want: i32) -> [Run; 2] {
        let args: Vec<&str> = line.split_whitespace().collect();
        let (am, am_raw) = self.amtool_one(0, &args);
        let (rt, rt_raw) = self.amtool_one(1, &args);
        let what = format!("amtool {line}");
        eprintln!("$ {what}  (exit {:?})\n{}", am.code, am.stdout.join("\n"));
        if !self.same(&what, &am, &rt) {
            self.fail(format!(
                "{what}: raw output\n  Alertmanager:\n{am_raw}\n  router:\n{rt_raw}"
            ));
        }
        if am.code != Some(want) {
            self.fail(format!(
                "{what}: Alertmanager exited with {:?} (the test expects {want}): {am_raw}",
                am.code
            ));
        }
        [am, rt]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_against_both() {
    let p = Pair::start().await;
    p.post_alerts(false).await;
    let want = settled_lines(&[]);
    p.settle(0, &want).await;
    p.settle(1, &want).await;
    let p = std::sync::Arc::new(p);
    let q = p.clone();
    // amtool blocks: run the whole script off the runtime's workers
    tokio::task::spawn_blocking(move || amtool_script(&q))
        .await
        .expect("amtool script");
    let p = std::sync::Arc::try_unwrap(p).unwrap_or_else(|_| panic!("pair still shared"));
    p.finish("amtool_against_both");
}

fn amtool_script(p: &Pair) {
    p.amtool("alert add alertname=AmtoolAdded severity=warning cluster=c9 --annotation=summary=added-by-amtool", 0);
    for line in [
        "alert query",
        "alert query alertname=CpuWarn",
        "alert query CpuWarn",
        "alert query severity=~\"crit.*\" cluster!=c1",
        "alert query -a",
        "alert query -i",
        "alert query -s",
        "alert query -s -i",
        "alert query -a -r db",
        "alert query -o extended alertname=AmtoolAdded",
    ] {
        p.amtool(line, 0);
    }
    // silences
    let first = p.amtool(
        "silence add alertname=CpuWarn cluster=c2 -c maintenance -a tester --duration=2h",
        0,
    );
    if first[0].stdout != ["id1"] {
        p.fail(format!("amtool silence add printed {:?}", first[0].stdout));
    }
    p.amtool(
        "silence add alertname=~\"Disk.*\" -c disks -a tester --duration 3h",
        0,
    );
    for line in [
        "silence query",
        "silence query -q",
        "silence query alertname=CpuWarn",
        "silence query --expired",
        "alert query -s",
        "alert query -s -i",
        "alert query -a",
    ] {
        p.amtool(line, 0);
    }
    // update in place (same id on both), then the query shows the new end and comment
    p.amtool("silence update {ID:id1} --duration=4h", 0);
    p.amtool("silence update {ID:id1} -c longer", 0);
    p.amtool("silence query", 0);
    // export, expire one, import the export: the expired one comes back with a new id, the
    // active one is updated in place
    let export = |side: usize| -> std::path::PathBuf {
        let (run, raw) = p.amtool_one(side, &["silence", "query", "-o", "json"]);
        if run.code != Some(0) {
            p.fail(format!("{}: silence query -o json: {raw}", SIDES[side]));
        }
        let path = p.home.path().join(format!("export-{side}.json"));
        let raw = raw.split("\nstderr: ").next().unwrap_or("").to_string();
        std::fs::write(&path, raw).expect("write export");
        path
    };
    let files = [export(0), export(1)];
    p.amtool("silence expire {ID:id2}", 0);
    p.amtool("silence query --expired", 0);
    p.amtool("silence query", 0);
    // each side imports its own export (one worker: in the file's order)
    let mut runs = Vec::new();
    for (side, f) in files.iter().enumerate() {
        runs.push(p.amtool_one(
            side,
            &["silence", "import", "--worker=1", &f.display().to_string()],
        ));
    }
    p.same(
        "amtool silence import",
        runs[0].0.clone(),
        runs[1].0.clone(),
    );
    if runs[0].0.code != Some(0) || runs[0].0.stdout != ["id3", "id1"] {
        p.fail(format!("silence import on Alertmanager: {}", runs[0].1));
    }
    for line in [
        "silence query",
        "silence query --expired",
        "silence expire {ID:id1} {ID:id3}",
        "silence query -q",
        "alert query",
        // configuration
        "config routes",
        "config routes test team=db severity=critical",
        "config routes test --tree team=db severity=critical",
        "config routes test team=db",
        "config routes test --tree team=db",
        "config routes test alertname=x",
        "config routes test --tree alertname=x",
        "config routes test team=quiet severity=critical",
        "config routes test --tree team=quiet severity=critical",
        "config routes test --verify.receivers=db,oncall team=db severity=critical",
        "cluster show",
    ] {
        p.amtool(line, 0);
    }
    p.amtool("config routes test --verify.receivers=db alertname=x", 1);
    // `config show` prints config.original: Alertmanager's has every default and the
    // receivers' settings, the router's receivers by name only, so only the exit code is
    // compared here (the sections themselves in `api_groups_receivers_status`)
    let (am, _) = p.amtool_one(0, &["config", "show"]);
    let (rt, raw) = p.amtool_one(1, &["config", "show"]);
    p.same("amtool config show: exit code", am.code, rt.code);
    if !raw.contains("route:") {
        p.fail(format!("amtool config show on the router: {raw}"));
    }
}
