//! Property tests (issue 8 §3): random and mutated inputs for every parser that reads
//! untrusted or hand-written text — webhook and postable-alert bodies, matchers, durations,
//! configuration YAML, Go and Jinja templates, silences and time intervals. Each property
//! says the parser never panics, never hangs, and either accepts with its invariants
//! holding or refuses with a message naming what is wrong.
//!
//! Every property runs `PROPTEST_CASES` cases (256 by default); a longer "fuzz-style"
//! run is `PROPTEST_CASES=100000 cargo test --release --test properties`.

use alert_router::alert::{
    parse_alert, parse_postable_alerts, parse_postable_alerts_partial, parse_webhook,
    valid_label_name, AlertLimits, Fingerprint, LabelSet, Targets, WebhookAlert, WebhookMessage,
};
use alert_router::config::Config;
use alert_router::duration::{AmDuration, MAX_MS, UNITS};
use alert_router::matcher::{
    parse_matcher, parse_matchers, parse_matchers_classic, parse_matchers_utf8, MatchType, Matcher,
    Matchers,
};
use alert_router::template::Templates;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::LazyLock;
use std::time::Duration;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------
// Seeds and mutations
// ---------------------------------------------------------------------------

const FIXTURES: [&str; 3] = [
    include_str!("fixtures/alertmanager-0.25-firing-group.json"),
    include_str!("fixtures/alertmanager-0.25-partly-resolved.json"),
    include_str!("fixtures/alertmanager-0.25-all-resolved.json"),
];

/// Values that have broken parsers before: NUL and control characters, lone surrogate
/// escapes, huge and odd numbers, timestamps at the edges of what `time` can hold, deep
/// nesting, and text that looks like syntax of another layer.
const HOSTILE: &[&str] = &[
    "\0",
    "\\u0000",
    "\u{0}\u{1}\u{7f}",
    "\\ud800",
    "\\udfff\\ud800",
    "\u{feff}",
    "\u{202e}",
    "é",
    "🔥",
    "\u{10ffff}",
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "true",
    "-0",
    "1e999999",
    "-1e999999",
    "18446744073709551616",
    "-9223372036854775809",
    "0.0000000000000000000000000000001",
    "NaN",
    "\"9999-12-31T23:59:59.999999999Z\"",
    "\"0000-01-01T00:00:00Z\"",
    "\"0001-01-01T00:00:00Z\"",
    "\"+275760-09-13T00:00:00Z\"",
    "\"2024-02-30T25:61:61+99:99\"",
    "\"2024-05-01T10:00:00.123456789123456789Z\"",
    "\"1h30m\"",
    "\"99999999999999999999y\"",
    "{{ template \"a\" }}",
    "${HOME}",
    "&a",
    "*a",
    "\n",
    "\r\n",
    "\t",
    "'",
    "#",
];

/// One edit of a byte string; positions are fractions of the current length.
#[derive(Debug, Clone)]
enum Edit {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Delete(Index, u8),
    Duplicate(Index, u8),
    InsertHostile(Index, Index),
    InsertBytes(Index, Vec<u8>),
    Nest(Index, u16),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::SetByte(i, b)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        2 => (any::<Index>(), 1u8..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => (any::<Index>(), 1u8..80).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(i, h)| Edit::InsertHostile(i, h)),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Edit::InsertBytes(i, b)),
        1 => (any::<Index>(), 1u16..3000).prop_map(|(i, n)| Edit::Nest(i, n)),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(edit(), 1..6)
}

/// Apply edits to `seed`; the result is usually invalid UTF-8 somewhere or near-valid.
fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for e in edits {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        match e {
            Edit::FlipBit(i, bit) if !b.is_empty() => {
                let p = i.index(b.len());
                b[p] ^= 1 << bit;
            }
            Edit::SetByte(i, v) if !b.is_empty() => {
                let p = i.index(b.len());
                b[p] = *v;
            }
            Edit::Truncate(i) => {
                let p = at(i, b.len());
                b.truncate(p);
            }
            Edit::Delete(i, n) => {
                let p = at(i, b.len()).min(b.len());
                let end = (p + usize::from(*n)).min(b.len());
                b.drain(p..end);
            }
            Edit::Duplicate(i, n) => {
                let p = at(i, b.len()).min(b.len());
                let end = (p + usize::from(*n)).min(b.len());
                let chunk = b[p..end].to_vec();
                b.splice(p..p, chunk);
            }
            Edit::InsertHostile(i, h) => {
                let p = at(i, b.len()).min(b.len());
                let s = HOSTILE[h.index(HOSTILE.len())].as_bytes().to_vec();
                b.splice(p..p, s);
            }
            Edit::InsertBytes(i, bytes) => {
                let p = at(i, b.len()).min(b.len());
                b.splice(p..p, bytes.iter().copied());
            }
            Edit::Nest(i, n) => {
                let p = at(i, b.len()).min(b.len());
                let n = usize::from(*n);
                let mut s = "[".repeat(n).into_bytes();
                s.extend(b"{\"a\":".repeat(n / 2));
                b.splice(p..p, s);
            }
            _ => {}
        }
    }
    b
}

/// A JSON value a hostile sender might put anywhere.
fn hostile_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        Just(json!("")),
        Just(json!("\u{0}")),
        Just(json!("firing")),
        Just(json!("resolved")),
        Just(json!("4")),
        Just(json!("0001-01-01T00:00:00Z")),
        Just(json!("9999-12-31T23:59:59.999999999Z")),
        Just(json!("0000-01-01T00:00:00Z")),
        Just(json!("2024-05-01T10:00:00+23:59")),
        Just(json!("2024-05-01T10:00:00.999999999999Z")),
        Just(json!("c626d2275ab0f610")),
        Just(json!("x".repeat(70_000))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(label_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Structural JSON edits: replace, delete or add a node anywhere in the tree.
#[derive(Debug, Clone)]
enum JsonEdit {
    Replace(Index, Value),
    Remove(Index),
    AddKey(Index, String, Value),
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        3 => (any::<Index>(), hostile_json()).prop_map(|(i, v)| JsonEdit::Replace(i, v)),
        1 => any::<Index>().prop_map(JsonEdit::Remove),
        2 => (
            any::<Index>(),
            prop_oneof![
                label_name(),
                Just("fingerprint".to_string()),
                Just("status".to_string()),
                Just("startsAt".to_string()),
                Just("endsAt".to_string()),
                Just("version".to_string()),
                Just("generatorURL".to_string()),
            ],
            hostile_json()
        )
            .prop_map(|(i, k, v)| JsonEdit::AddKey(i, k, v)),
    ]
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn apply_json_edit(root: &mut Value, e: &JsonEdit) {
    let total = count_nodes(root);
    let idx = match e {
        JsonEdit::Replace(i, _) | JsonEdit::Remove(i) | JsonEdit::AddKey(i, _, _) => i.index(total),
    };
    // The path to node `idx` in pre-order.
    fn path_to(v: &Value, mut n: usize) -> Vec<PathStep> {
        fn go(v: &Value, n: &mut usize, path: &mut Vec<PathStep>) -> bool {
            if *n == 0 {
                return true;
            }
            *n -= 1;
            match v {
                Value::Array(a) => {
                    for (i, c) in a.iter().enumerate() {
                        path.push(PathStep::Idx(i));
                        if go(c, n, path) {
                            return true;
                        }
                        path.pop();
                    }
                }
                Value::Object(o) => {
                    for (k, c) in o {
                        path.push(PathStep::Key(k.clone()));
                        if go(c, n, path) {
                            return true;
                        }
                        path.pop();
                    }
                }
                _ => {}
            }
            false
        }
        let mut path = Vec::new();
        go(v, &mut n, &mut path);
        path
    }
    let path = path_to(root, idx);
    let (parent_path, last) = match path.split_last() {
        Some((l, p)) => (p.to_vec(), Some(l.clone())),
        None => (Vec::new(), None),
    };
    let mut parent = &mut *root;
    for s in &parent_path {
        parent = match (parent, s) {
            (Value::Array(a), PathStep::Idx(i)) => &mut a[*i],
            (Value::Object(o), PathStep::Key(k)) => match o.get_mut(k) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
    }
    match (e, last) {
        (JsonEdit::Replace(_, v), None) => *root = v.clone(),
        (JsonEdit::Replace(_, v), Some(step)) => match (parent, step) {
            (Value::Array(a), PathStep::Idx(i)) => a[i] = v.clone(),
            (Value::Object(o), PathStep::Key(k)) => {
                o.insert(k, v.clone());
            }
            _ => {}
        },
        (JsonEdit::Remove(_), Some(step)) => match (parent, step) {
            (Value::Array(a), PathStep::Idx(i)) => {
                a.remove(i);
            }
            (Value::Object(o), PathStep::Key(k)) => {
                o.remove(&k);
            }
            _ => {}
        },
        (JsonEdit::AddKey(_, k, v), step) => {
            let target = match step {
                None => root,
                Some(PathStep::Idx(i)) => match parent {
                    Value::Array(a) => &mut a[i],
                    _ => return,
                },
                Some(PathStep::Key(key)) => match parent {
                    Value::Object(o) => match o.get_mut(&key) {
                        Some(v) => v,
                        None => return,
                    },
                    _ => return,
                },
            };
            match target {
                Value::Object(o) => {
                    o.insert(k.clone(), v.clone());
                }
                Value::Array(a) => a.push(v.clone()),
                _ => {}
            }
        }
        (JsonEdit::Remove(_), None) => {}
    }
}

#[derive(Debug, Clone)]
enum PathStep {
    Idx(usize),
    Key(String),
}

/// Label names: mostly ordinary, sometimes any Unicode (control characters included).
fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_][a-z0-9_]{0,12}",
        1 => "\\PC{1,8}",
        1 => any::<String>(),
        1 => Just("alertname".to_string()),
        1 => Just("severity".to_string()),
    ]
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[ -~]{0,16}",
        2 => any::<String>(),
        1 => Just(String::new()),
        1 => Just("\u{0}".to_string()),
    ]
}

// ---------------------------------------------------------------------------
// Bounded execution
// ---------------------------------------------------------------------------

/// Run `f` on a thread with a 2 MiB stack (what the router's worker threads get) and
/// fail if it takes longer than `limit` (a hang) — the thread is left behind then, but
/// the test fails.
fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn");
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = handle.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => panic!("{what}: no result"),
        },
    }
}

fn config(cases: u32) -> ProptestConfig {
    // PROPTEST_CASES overrides the default of 256; properties that are expensive per case
    // scale theirs down from it.
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: (base.cases * cases / 256).max(1),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..base
    }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_714_557_600).expect("time") // 2024-05-01T10:00:00Z
}

// ---------------------------------------------------------------------------
// Webhook and postable alerts
// ---------------------------------------------------------------------------

/// The message of an ingest error must start by naming the field it is about.
fn names_a_field(msg: &str) -> bool {
    const TOP: [&str; 8] = [
        "invalid JSON: ",
        "body: ",
        "version: ",
        "receiver: ",
        "status: ",
        "groupKey: ",
        "externalURL: ",
        "notification_reason: ",
    ];
    if TOP.iter().any(|p| msg.starts_with(p)) || msg.starts_with("alerts: ") {
        return true;
    }
    let Some(rest) = msg.strip_prefix("alerts[") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with(']') && rest[digits + 1..].starts_with([':', '.'])
}

fn check_alerts(
    body: &[u8],
    alerts: &[alert_router::alert::Alert],
    now: OffsetDateTime,
    limits: &AlertLimits,
) {
    for a in alerts {
        assert!(!a.labels.is_empty(), "an accepted alert has labels");
        for (k, v) in &a.labels {
            assert!(valid_label_name(k), "label name {k:?} accepted");
            assert!(!v.is_empty(), "empty label value kept for {k:?}");
            assert!(k.len() + v.len() <= limits.max_label_bytes);
        }
        for k in a.annotations.keys() {
            assert!(valid_label_name(k), "annotation name {k:?} accepted");
        }
        assert!(a.labels.len() <= limits.max_labels_per_alert);
        assert!(a.annotations.len() <= limits.max_annotations_per_alert);
        for (k, v) in &a.annotations {
            assert!(k.len() + v.len() <= limits.max_annotation_bytes);
        }
        if let Some(e) = a.ends_at {
            assert!(e >= a.starts_at, "ends before it starts: {a:?}");
        }
        assert_eq!(a.updated_at, now);
        if a.fingerprint != Fingerprint::of(&a.labels) {
            // only a fingerprint the sender gave is taken as is
            let hex = a.fingerprint.to_string();
            assert!(
                body.windows(16)
                    .any(|w| w.eq_ignore_ascii_case(hex.as_bytes())),
                "fingerprint {hex} neither computed nor sent"
            );
        }
    }
}

fn webhook_checks(body: &[u8]) {
    let now = t0();
    let limits = AlertLimits::default();
    match parse_webhook(body, now, &Targets::default(), &limits) {
        Ok(alerts) => check_alerts(body, &alerts, now, &limits),
        Err(e) => assert!(
            names_a_field(&e.0),
            "error does not name a field: {:?}",
            e.0
        ),
    }
}

fn postable_checks(body: &[u8]) {
    let now = t0();
    let limits = AlertLimits::default();
    let partial = parse_postable_alerts_partial(body, now, &Targets::default(), &limits);
    let full = parse_postable_alerts(body, now, &Targets::default(), &limits);
    match partial {
        Ok((ok, errors)) => {
            check_alerts(body, &ok, now, &limits);
            for e in &errors {
                assert!(
                    e.starts_with("alerts["),
                    "error does not name the alert: {e:?}"
                );
                assert!(names_a_field(e), "error does not name a field: {e:?}");
            }
            if let Ok(v) = serde_json::from_slice::<Value>(body) {
                let n = v.as_array().map_or(0, Vec::len);
                assert_eq!(
                    ok.len() + errors.len(),
                    n,
                    "every alert is accepted or refused"
                );
            }
            if errors.is_empty() {
                assert_eq!(
                    full.as_ref().ok(),
                    Some(&ok),
                    "partial and full parse agree"
                );
            } else {
                assert!(full.is_err(), "full parse accepts what partial refused");
            }
        }
        Err(e) => {
            assert!(
                names_a_field(&e.0),
                "error does not name a field: {:?}",
                e.0
            );
            assert!(full.is_err());
        }
    }
}

/// A postable alert (or webhook alert) from generated parts.
fn alert_json() -> impl Strategy<Value = Value> {
    (
        proptest::collection::btree_map(label_name(), label_value(), 0..6),
        proptest::collection::btree_map(label_name(), label_value(), 0..4),
        proptest::option::of(prop_oneof![
            Just("firing"),
            Just("resolved"),
            Just("pending")
        ]),
        proptest::option::of(-100_000i64..100_000),
        proptest::option::of(-100_000i64..100_000),
    )
        .prop_map(|(labels, annotations, status, start, end)| {
            let ts = |s: i64| alert_router::alert::format_time(t0() + time::Duration::seconds(s));
            let mut o = serde_json::Map::new();
            o.insert("labels".into(), json!(labels));
            o.insert("annotations".into(), json!(annotations));
            if let Some(s) = status {
                o.insert("status".into(), json!(s));
            }
            if let Some(s) = start {
                o.insert("startsAt".into(), json!(ts(s)));
            }
            if let Some(e) = end {
                o.insert("endsAt".into(), json!(ts(e)));
            }
            Value::Object(o)
        })
}

proptest! {
    #![proptest_config(config(256))]

    /// Byte-level mutations of real Alertmanager webhook bodies.
    #[test]
    fn webhook_mutated_bytes(seed in 0..FIXTURES.len(), e in edits()) {
        let body = mutate(FIXTURES[seed].as_bytes(), &e);
        webhook_checks(&body);
    }

    /// Structural mutations: any node of a real webhook body replaced, removed or given
    /// a hostile sibling.
    #[test]
    fn webhook_mutated_tree(seed in 0..FIXTURES.len(), es in proptest::collection::vec(json_edit(), 1..5)) {
        let mut v: Value = serde_json::from_str(FIXTURES[seed]).expect("fixture");
        for e in &es {
            apply_json_edit(&mut v, e);
        }
        let body = serde_json::to_vec(&v).expect("json");
        webhook_checks(&body);
    }

    /// Postable alerts: generated arrays, then mutated.
    #[test]
    fn postable_alerts_generated_and_mutated(
        alerts in proptest::collection::vec(alert_json(), 0..5),
        es in proptest::collection::vec(json_edit(), 0..3),
        bytes in proptest::option::weighted(0.3, edits()),
    ) {
        let mut v = Value::Array(alerts);
        for e in &es {
            apply_json_edit(&mut v, e);
        }
        let mut body = serde_json::to_vec(&v).expect("json");
        if let Some(b) = bytes {
            body = mutate(&body, &b);
        }
        postable_checks(&body);
    }

    /// The fingerprint depends on the label set only: not on the order the sender
    /// wrote the labels in, nor on empty-valued labels (which are dropped).
    #[test]
    fn fingerprint_ignores_label_order(
        labels in proptest::collection::btree_map("[a-z_]{1,6}|\\PC{1,4}", "\\PC{1,8}", 1..8),
        perm in any::<proptest::sample::Index>(),
        empties in proptest::collection::btree_set("[A-Z]{1,4}", 0..3),
    ) {
        // empty-valued extras with other names (a repeated name would replace a label)
        let empties: Vec<&String> = empties.iter().filter(|k| !labels.contains_key(*k)).collect();
        let pairs: Vec<(String, String)> = labels.clone().into_iter().collect();
        let mut shuffled = pairs.clone();
        let k = perm.index(shuffled.len());
        shuffled.rotate_left(k);
        shuffled.reverse();
        let obj = |p: &[(String, String)], extra: bool| {
            let mut s = String::from("[{\"labels\":{");
            let mut items: Vec<String> = p
                .iter()
                .map(|(k, v)| format!("{}:{}", json!(k), json!(v)))
                .collect();
            if extra {
                items.extend(empties.iter().map(|k| format!("{}:\"\"", json!(k))));
            }
            s.push_str(&items.join(","));
            s.push_str("}}]");
            s
        };
        let a = parse_postable_alerts(obj(&pairs, false).as_bytes(), t0(), &Targets::default(), &AlertLimits::default());
        let b = parse_postable_alerts(obj(&shuffled, true).as_bytes(), t0(), &Targets::default(), &AlertLimits::default());
        let valid = labels.keys().all(|k| valid_label_name(k));
        match (a, b) {
            (Ok(a), Ok(b)) => {
                prop_assert!(valid);
                let expected: LabelSet = labels.clone();
                prop_assert_eq!(&a[0].labels, &expected);
                prop_assert_eq!(&b[0].labels, &expected);
                prop_assert_eq!(a[0].fingerprint, b[0].fingerprint);
                prop_assert_eq!(a[0].fingerprint, Fingerprint::of(&expected));
            }
            (Err(a), Err(b)) => {
                prop_assert!(!valid);
                prop_assert!(a.0.starts_with("alerts[0].labels"), "{}", a.0);
                prop_assert!(b.0.starts_with("alerts[0].labels"), "{}", b.0);
            }
            (a, b) => prop_assert!(false, "order changed the outcome: {a:?} vs {b:?}"),
        }
    }

    /// What the webhook integration re-emits parses back to the same alerts.
    #[test]
    fn webhook_reemit_round_trip(alerts in proptest::collection::vec(alert_json(), 1..5)) {
        let now = t0();
        let body = json!({"version": "4", "status": "firing", "receiver": "r", "alerts": alerts});
        let body = serde_json::to_vec(&body).expect("json");
        let Ok(first) = parse_webhook(&body, now, &Targets::default(), &AlertLimits::default()) else {
            return Ok(());
        };
        let msg = WebhookMessage::new(
            "r",
            first.iter().map(|a| WebhookAlert::from_alert(a, now)).collect(),
            LabelSet::new(),
            "http://router",
            "{}:{}",
            "first notification",
        );
        let again_body = serde_json::to_vec(&msg).expect("json");
        let again = parse_webhook(&again_body, now, &Targets::default(), &AlertLimits::default())
            .map_err(|e| TestCaseError::fail(format!("re-emitted body refused: {e}")))?;
        prop_assert_eq!(again.len(), first.len());
        for (a, b) in first.iter().zip(&again) {
            prop_assert_eq!(&a.labels, &b.labels);
            prop_assert_eq!(&a.annotations, &b.annotations);
            prop_assert_eq!(a.fingerprint, b.fingerprint);
            prop_assert_eq!(a.status_at(now), b.status_at(now));
            prop_assert_eq!(a.starts_at, b.starts_at);
            if a.resolved_at(now) {
                prop_assert_eq!(a.ends_at, b.ends_at);
            }
        }
    }

    /// Limits: whatever is accepted is within them; whatever is over them is refused
    /// naming the `ingest.*` setting.
    #[test]
    fn limits_hold(
        alerts in proptest::collection::vec(alert_json(), 0..6),
        max in (1usize..6, 1usize..6, 1usize..40, 1usize..6, 1usize..40),
    ) {
        let limits = AlertLimits {
            max_alerts_per_request: max.0,
            max_labels_per_alert: max.1,
            max_label_bytes: max.2,
            max_annotations_per_alert: max.3,
            max_annotation_bytes: max.4,
        };
        let n = alerts.len();
        let body = serde_json::to_vec(&json!({"alerts": alerts})).expect("json");
        match parse_webhook(&body, t0(), &Targets::default(), &limits) {
            Ok(ok) => {
                prop_assert!(n <= limits.max_alerts_per_request);
                check_alerts(&body, &ok, t0(), &limits);
            }
            Err(e) => {
                prop_assert!(names_a_field(&e.0), "{}", e.0);
                if n > limits.max_alerts_per_request {
                    prop_assert!(e.0.contains("ingest.max_alerts_per_request"), "{}", e.0);
                }
            }
        }
    }

    /// One alert object on its own (the function both parsers share).
    #[test]
    fn single_alert_object(v in hostile_json(), i in 0usize..1000) {
        match parse_alert(&v, i, t0(), &Targets::default()) {
            Ok(a) => check_alerts(v.to_string().as_bytes(), &[a], t0(), &AlertLimits {
                max_alerts_per_request: usize::MAX,
                max_labels_per_alert: usize::MAX,
                max_label_bytes: usize::MAX,
                max_annotations_per_alert: usize::MAX,
                max_annotation_bytes: usize::MAX,
            }),
            Err(e) => prop_assert!(e.0.starts_with(&format!("alerts[{i}]")), "{}", e.0),
        }
    }
}

#[test]
fn hostile_webhook_bodies() {
    let deep = "[".repeat(200_000);
    let deep_obj = "{\"a\":".repeat(100_000);
    let many = format!(
        "{{\"alerts\":[{}]}}",
        vec!["{\"labels\":{\"a\":\"b\"}}"; 10_001].join(",")
    );
    for body in [
        deep.as_str(),
        deep_obj.as_str(),
        many.as_str(),
        "",
        "\0",
        "{\"alerts\":[{\"labels\":{\"a\":\"b\"},\"startsAt\":\"+275760-09-13T00:00:00Z\"}]}",
        "{\"alerts\":[{\"labels\":{\"a\":\"b\"},\"endsAt\":\"9999-12-31T23:59:59.999999999Z\",\"status\":\"firing\"}]}",
        "{\"alerts\":[{\"labels\":{\"a\":\"b\"},\"startsAt\":\"0001-01-01T00:00:00.000000001Z\"}]}",
        "{\"alerts\":[{\"labels\":{\"a\":\"\\ud800\"}}]}",
        "{\"alerts\":[{\"labels\":{\"a\\u0000\":\"b\"}}]}",
        "{\"alerts\":[{\"labels\":{\"a\":\"b\"},\"fingerprint\":\"ffffffffffffffff\"}]}",
    ] {
        webhook_checks(body.as_bytes());
        postable_checks(body.as_bytes());
    }
}

// ---------------------------------------------------------------------------
// Matchers
// ---------------------------------------------------------------------------

const MATCHER_SEEDS: &[&str] = &[
    r#"{a="b",c=~"d"}"#,
    r#"{alertname="Watchdog"}"#,
    r#"alertname=Watchdog"#,
    r#"severity!=info"#,
    r#"job=~"api|web", instance!~".*:9090""#,
    r#"{"foo bar"="baz", "é"!~"\u00e9+"}"#,
    r#"{foo="bar\"baz\\", x="\n"}"#,
    r#"team="db""#,
    r#"{}"#,
    r#"service=~^(api|frontend)$"#,
    r#"{a=b,}"#,
    r#"{a="\x41\101\u0041\U00000041"}"#,
];

fn matcher_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-z{}=!~,\" \\\\'`é.*|()^$\\[\\]0-9:_-]{0,24}",
        1 => any::<String>(),
        3 => (0..MATCHER_SEEDS.len(), edits()).prop_map(|(i, e)| {
            String::from_utf8_lossy(&mutate(MATCHER_SEEDS[i].as_bytes(), &e)).into_owned()
        }),
    ]
}

fn op() -> impl Strategy<Value = MatchType> {
    prop_oneof![
        Just(MatchType::Equal),
        Just(MatchType::NotEqual),
        Just(MatchType::Regex),
        Just(MatchType::NotRegex),
    ]
}

fn matcher() -> impl Strategy<Value = Matcher> {
    let name = prop_oneof![
        3 => "[a-zA-Z_:][a-zA-Z0-9_:]{0,8}",
        1 => "\\PC{1,6}",
        1 => "[a-z {}=!~,\"'`\\\\é.\t\n-]{1,8}",
        1 => any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
    ];
    let value = prop_oneof![
        3 => "[ -~]{0,12}",
        1 => any::<String>(),
        1 => "[a-z\"\\\\\n,{}]{0,8}",
        1 => Just(String::new()),
        1 => Just(r".*".to_string()),
        1 => Just(r"\d+|[a-z]{2,}".to_string()),
    ];
    (name, op(), value).prop_filter_map("valid regex", |(n, o, v)| Matcher::new(n, o, v).ok())
}

proptest! {
    #![proptest_config(config(256))]

    /// Every matcher parser, on random and mutated text: no panic, errors with text.
    #[test]
    fn matcher_parsers_never_panic(s in matcher_text()) {
        for r in [
            parse_matchers(&s),
            parse_matchers_classic(&s),
            parse_matchers_utf8(&s),
            parse_matcher(&s).map(|m| vec![m]),
        ] {
            match r {
                Ok(ms) => {
                    for m in &ms {
                        // parsed matchers are usable
                        let _ = m.matches("");
                        let _ = m.matches(&s);
                        let _ = m.to_string();
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    /// A matcher printed back parses to an equal matcher (single and in a list).
    #[test]
    fn matcher_display_round_trip(ms in proptest::collection::vec(matcher(), 1..5)) {
        for m in &ms {
            let text = m.to_string();
            let back = parse_matcher(&text)
                .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(&back, m, "{:?}", text);
            let list = parse_matchers(&format!("{{{text}}}"))
                .map_err(|e| TestCaseError::fail(format!("{{{text}}}: {e}")))?;
            prop_assert_eq!(&list, &vec![m.clone()], "{:?}", text);
        }
        let joined = format!("{{{}}}", ms.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
        let back = parse_matchers(&joined).map_err(|e| TestCaseError::fail(format!("{joined:?}: {e}")))?;
        prop_assert_eq!(&back, &ms, "{:?}", joined);
        let key = Matchers(ms.clone()).route_key_string();
        let mut from_key = parse_matchers(&key).map_err(|e| TestCaseError::fail(format!("{key:?}: {e}")))?;
        let mut sorted = ms.clone();
        let k = |m: &Matcher| (m.name.clone(), m.value.clone(), m.op);
        sorted.sort_by_key(k);
        from_key.sort_by_key(k);
        prop_assert_eq!(from_key, sorted, "{:?}", key);
    }
}

// ---------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn duration_parse_never_panics(s in prop_oneof![
        "[0-9ywdhms]{0,16}",
        "[0-9]{15,25}(y|w|d|h|m|s|ms)",
        any::<String>(),
        (prop_oneof![Just("1h30m"), Just("5m"), Just("0s"), Just("1y"), Just("250ms"), Just("0")], edits())
            .prop_map(|(s, e)| String::from_utf8_lossy(&mutate(s.as_bytes(), &e)).into_owned()),
    ]) {
        if let Ok(d) = AmDuration::parse(&s) {
            prop_assert!(d.0.as_millis() <= u128::from(MAX_MS));
            prop_assert_eq!(AmDuration::parse(&d.to_string()), Ok(d));
        }
    }

    /// format → parse is the identity on every valid duration.
    #[test]
    fn duration_format_parse_round_trip(ms in 0..=MAX_MS) {
        let d = AmDuration(Duration::from_millis(ms));
        let text = d.to_string();
        prop_assert_eq!(AmDuration::parse(&text), Ok(d), "{}", text);
    }

    /// Written with any units in order: the exact sum, or an error past the maximum —
    /// never a wrapped value.
    #[test]
    fn duration_sums_or_refuses(parts in proptest::collection::vec(
        proptest::option::of(prop_oneof![0u64..1000, any::<u64>()]), 7)
    ) {
        let mut text = String::new();
        let mut total: u128 = 0;
        for ((unit, size), n) in UNITS.iter().zip(&parts) {
            if let Some(n) = n {
                text.push_str(&format!("{n}{unit}"));
                total += u128::from(*n) * u128::from(*size);
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        match AmDuration::parse(&text) {
            Ok(d) => prop_assert_eq!(d.0.as_millis(), total, "{}", text),
            Err(e) => {
                prop_assert!(total > u128::from(MAX_MS), "{} refused: {}", text, e);
                prop_assert!(e.to_string().contains(&text));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

const CONFIG_SEEDS: [(&str, &str); 7] = [
    (
        "config/alert-router.yml",
        include_str!("../config/alert-router.yml"),
    ),
    ("config/docker.yml", include_str!("../config/docker.yml")),
    (
        "config/examples/email.yml",
        include_str!("../config/examples/email.yml"),
    ),
    (
        "config/examples/slack.yml",
        include_str!("../config/examples/slack.yml"),
    ),
    (
        "config/examples/webhook.yml",
        include_str!("../config/examples/webhook.yml"),
    ),
    (
        "tests/fixtures/alertmanager-receivers.yml",
        include_str!("fixtures/alertmanager-receivers.yml"),
    ),
    (
        "tests/fixtures/alertmanager-inhibit-timeintervals.yml",
        include_str!("fixtures/alertmanager-inhibit-timeintervals.yml"),
    ),
];

/// A directory holding the secret files the example configurations name, so the seeds
/// load as they are (their `/etc/alert-router/…` paths are rewritten into it).
static SECRETS_DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("alert-router-props-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for name in [
        "admin-token",
        "ingest-token",
        "smtp-password",
        "slack-payments-url",
        "slack-bot-token",
    ] {
        let content = if name.ends_with("-url") {
            "https://hooks.slack.com/services/T0/B0/X"
        } else {
            "s3cret"
        };
        std::fs::write(dir.join(name), content).expect("secret file");
    }
    dir
});

fn seed_config(i: usize) -> String {
    CONFIG_SEEDS[i]
        .1
        .replace("/etc/alert-router/", &format!("{}/", SECRETS_DIR.display()))
        .replace(
            "${SLACK_OPS_WEBHOOK}",
            "https://hooks.slack.com/services/T0/B0/OPS",
        )
}

fn fixtures_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

fn load_checks(text: &str) {
    const FILE: &str = "mutated.yml";
    match Config::load_str(text, FILE, fixtures_dir()) {
        Ok(cfg) => {
            // what the router builds from an accepted configuration must build too
            let _ = Templates::from_config(&cfg);
            let _ = alert_router::timeinterval::TimeIntervals::from_config(&cfg);
        }
        Err(e) => {
            assert!(!e.message.trim().is_empty(), "empty message");
            let shown = e.to_string();
            assert!(shown.starts_with(FILE), "{shown}");
            assert!(!shown.contains("panicked"), "{shown}");
        }
    }
}

/// Line-level YAML edits: keep the document mostly well-formed so validation runs.
#[derive(Debug, Clone)]
enum YamlEdit {
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    Indent(Index, bool),
    ReplaceValue(Index, &'static str),
}

const YAML_VALUES: &[&str] = &[
    "~",
    "null",
    "''",
    "\"\"",
    "[]",
    "{}",
    "-1",
    "0",
    "0s",
    "1y",
    "101y",
    "99999999999999999999",
    "1e309",
    ".nan",
    "-.inf",
    "true",
    "\"\\0\"",
    "\"\\u0000\"",
    "\"é🔥\"",
    "&x a",
    "*x",
    "*undefined",
    "!!binary aGVsbG8=",
    "'{{ template \"a\" . }}'",
    "'{{ range 9999999999 }}x{{ end }}'",
    "'{{'",
    "'{{ define \"x\" }}{{ template \"x\" }}{{ end }}{{ template \"x\" }}'",
    "'a=\"b\"'",
    "['a=~\"(\"']",
    "[..., a]",
    "'127.0.0.1:99999'",
    "'http://'",
    "'${UNSET_VARIABLE_FOR_PROPS}'",
    "'$${escaped}'",
    "[[[[[[[[[[]]]]]]]]]]",
    "{a: {b: {c: {d: {}}}}}",
    "\"\\x80\"",
    "|\n  block",
];

fn yaml_edit() -> impl Strategy<Value = YamlEdit> {
    prop_oneof![
        1 => any::<Index>().prop_map(YamlEdit::DeleteLine),
        1 => any::<Index>().prop_map(YamlEdit::DuplicateLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| YamlEdit::SwapLines(a, b)),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(a, b)| YamlEdit::Indent(a, b)),
        4 => (any::<Index>(), proptest::sample::select(YAML_VALUES))
            .prop_map(|(a, v)| YamlEdit::ReplaceValue(a, v)),
    ]
}

fn apply_yaml_edits(text: &str, edits: &[YamlEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for e in edits {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match e {
            YamlEdit::DeleteLine(i) => {
                lines.remove(i.index(n));
            }
            YamlEdit::DuplicateLine(i) => {
                let l = lines[i.index(n)].clone();
                lines.insert(i.index(n), l);
            }
            YamlEdit::SwapLines(a, b) => lines.swap(a.index(n), b.index(n)),
            YamlEdit::Indent(i, more) => {
                let l = &mut lines[i.index(n)];
                if *more {
                    l.insert_str(0, "  ");
                } else if let Some(s) = l.strip_prefix("  ") {
                    *l = s.to_string();
                }
            }
            YamlEdit::ReplaceValue(i, v) => {
                // the value after the first `: ` (or of a `- ` list item) of a line
                let l = &mut lines[i.index(n)];
                if let Some(p) = l.find(": ") {
                    l.truncate(p + 2);
                    l.push_str(v);
                } else if let Some(p) = l.find("- ") {
                    l.truncate(p + 2);
                    l.push_str(v);
                }
            }
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn config_seeds_load() {
    for (i, (name, _)) in CONFIG_SEEDS.iter().enumerate() {
        let text = seed_config(i);
        if let Err(e) = Config::load_str(&text, name, fixtures_dir()) {
            panic!("{name}: {e}");
        }
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Byte-level mutations of the shipped configurations.
    #[test]
    fn config_mutated_bytes(seed in 0..CONFIG_SEEDS.len(), e in edits()) {
        let text = seed_config(seed);
        let mutated = mutate(text.as_bytes(), &e);
        let text = String::from_utf8_lossy(&mutated).into_owned();
        bounded("config load", Duration::from_secs(30), move || load_checks(&text));
    }

    /// Line-level mutations (deleted, duplicated, swapped, re-indented lines, hostile
    /// values), which mostly keep the YAML well-formed so validation is what answers.
    #[test]
    fn config_mutated_lines(seed in 0..CONFIG_SEEDS.len(), e in proptest::collection::vec(yaml_edit(), 1..5)) {
        let text = apply_yaml_edits(&seed_config(seed), &e);
        bounded("config load", Duration::from_secs(30), move || load_checks(&text));
    }
}

#[test]
fn hostile_configs() {
    let mut laughs = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        laughs.push_str(&format!("a{i}: &a{i} [{}]\n", [prev.as_str(); 9].join(",")));
    }
    laughs.push_str("route: {receiver: x, group_by: *a11}\nreceivers: [{name: x}]\n");
    let mut deep_routes = String::from("receivers: [{name: x}]\nroute:\n  receiver: x\n");
    let mut indent = String::from("  ");
    for _ in 0..2000 {
        deep_routes.push_str(&format!("{indent}routes:\n{indent}- receiver: x\n"));
        indent.push_str("  ");
    }
    let deep_flow = format!("route: {}{}", "{routes: [".repeat(5000), "]}".repeat(5000));
    let deep_seq = format!("templates: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    for text in [
        laughs,
        deep_routes,
        deep_flow,
        deep_seq,
        "\0".into(),
        "route: \0".into(),
    ] {
        bounded("config load", Duration::from_secs(60), move || {
            load_checks(&text)
        });
    }
}

// ---------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------

static SAMPLE: LazyLock<WebhookMessage> = LazyLock::new(|| {
    let now = t0() + time::Duration::hours(24 * 365 * 3);
    let alerts = parse_webhook(
        FIXTURES[1].as_bytes(),
        now,
        &Targets::default(),
        &AlertLimits::default(),
    )
    .expect("fixture");
    WebhookMessage::new(
        "team-ops",
        alerts
            .iter()
            .map(|a| WebhookAlert::from_alert(a, now))
            .collect(),
        [("alertname".to_string(), "KubePodCrashLooping".to_string())].into(),
        "http://alertmanager.monitoring.svc:9093",
        "{}:{alertname=\"KubePodCrashLooping\"}",
        "first notification",
    )
});

static GO: LazyLock<Templates> = LazyLock::new(Templates::new);
static JINJA: LazyLock<Templates> = LazyLock::new(Templates::jinja);

/// Output cap of the Go engine plus slack for the last write.
const MAX_RENDER: usize = 8 << 20;

fn render_checks(src: String, jinja: bool) {
    render_checks_as(src, jinja, &[false, true]);
}

/// Render as plain text and/or HTML (`html`), and check the template.
fn render_checks_as(src: String, jinja: bool, html: &'static [bool]) {
    let check_src = src.clone();
    bounded("render", Duration::from_secs(20), move || {
        let t: &Templates = if jinja { &JINJA } else { &GO };
        for &html in html {
            let r = if html {
                t.render_html(&src, &SAMPLE)
            } else {
                t.render(&src, &SAMPLE)
            };
            match r {
                Ok(out) => assert!(out.len() <= MAX_RENDER, "{} bytes of output", out.len()),
                Err(e) => assert!(!e.to_string().trim().is_empty()),
            }
        }
    });
    let _lang = alert_router::template::CheckLanguage::set(if jinja {
        alert_router::template::TemplateLanguage::Jinja
    } else {
        alert_router::template::TemplateLanguage::Go
    });
    let _ = alert_router::template::check(&check_src);
}

const GO_SEEDS: &[&str] = &[
    include_str!("fixtures/templates/discord.tmpl"),
    "{{ template \"slack.default.title\" . }}",
    "{{ template \"__subject\" . }}",
    "{{ template \"email.default.html\" . }}",
    "{{ range .Alerts.Firing }}{{ .Labels.alertname }} {{ .StartsAt.Format \"2006-01-02\" }}{{ end }}",
    "{{ range $k, $v := .CommonLabels.SortedPairs }}{{ $k }}={{ $v.Value | toUpper }}{{ end }}",
    "{{ with .CommonAnnotations.summary }}{{ . }}{{ else }}{{ .Status | title }}{{ end }}",
    "{{ printf \"%-10s|%5.2f|%x|%q\" .Status 3.14159 255 .Receiver }}",
    "{{ define \"a\" }}[{{ . }}]{{ end }}{{ template \"a\" .Status }}",
    "{{ $x := len .Alerts }}{{ if gt $x 1 }}many{{ else if eq $x 1 }}one{{ end }}",
    "{{ reReplaceAll \"(.*)-(.*)\" \"$2 $1\" .Receiver }} {{ join \", \" .GroupLabels.Values }}",
    "{{ (index .Alerts 0).Annotations.description | safeHtml }} {{ toJson .CommonLabels }}",
    "{{- /* comment */ -}} {{ range $i, $a := .Alerts }}{{ if $i }}, {{ end }}{{ $a.Fingerprint }}{{ end }}",
    "{{ tz \"Europe/Paris\" (index .Alerts 0).StartsAt }} {{ humanizeDuration 3600 }} {{ since (index .Alerts 0).StartsAt }}",
];

const JINJA_SEEDS: &[&str] = &[
    "{{ subject }}",
    "{% for a in firing %}{{ a.labels.alertname }} {{ a.annotations.summary | default('') }}\n{% endfor %}",
    "{% if status == 'firing' %}🔥{% else %}✅{% endif %} {{ commonLabels | tojson }}",
    "{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(receiver) }}{{ alerts | length }}",
    "{{ groupLabels.alertname | upper }} {{ alertsURL }} {{ externalURL ~ '/x' }}",
    "{% set ns = namespace(n=0) %}{% for a in alerts %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
    "{{ receiver | slack_escape }} {{ '%s-%d' | format('a', 3) }}",
];

/// Pieces of Go template source, combined at random (most combinations do not parse;
/// those that do exercise the executor).
fn go_fragment() -> impl Strategy<Value = String> {
    let field = proptest::sample::select(vec![
        ".",
        ".Status",
        ".Receiver",
        ".Alerts",
        ".Alerts.Firing",
        ".Alerts.Resolved",
        ".CommonLabels",
        ".CommonLabels.alertname",
        ".GroupLabels.SortedPairs",
        ".CommonAnnotations.Values",
        ".ExternalURL",
        ".Nope",
        "$",
        "$x",
        "$.Alerts",
        "(index .Alerts 0).StartsAt",
        ".Labels",
        ".StartsAt",
        "nil",
        "0",
        "-1",
        "9223372036854775807",
        "1e308",
        "\"s\"",
        "(printf \"%1000000s\" \"\")",
        "`raw`",
        "'c'",
        "true",
        "0x10",
        "1_000",
    ]);
    let func = proptest::sample::select(vec![
        "print",
        "printf \"%v\"",
        "printf \"%*d\" 1000000",
        "printf \"%.*f\" 400",
        "len",
        "index",
        "slice",
        "html",
        "js",
        "urlquery",
        "not",
        "and",
        "or",
        "eq",
        "ne",
        "lt",
        "toUpper",
        "title",
        "join \",\"",
        "match \"a+\"",
        "reReplaceAll \"a\" \"$0$0\"",
        "reReplaceAll \"\"",
        "toJson",
        "list",
        "append (list)",
        "dict \"k\"",
        "stringSlice",
        "date \"2006\"",
        "tz \"UTC\"",
        "humanizeDuration",
        "base64encode",
        "base64decode",
        "urlUnescape",
        "safeHtml",
        "trimSpace",
        "since",
        "toDate \"2006\"",
        "call",
    ]);
    let leaf = prop_oneof![
        4 => "[a-z <>&\n]{0,6}",
        3 => field.clone().prop_map(|f| format!("{{{{ {f} }}}}")),
        3 => (field.clone(), func.clone(), field.clone())
            .prop_map(|(a, f, b)| format!("{{{{ {f} {a} {b} }}}}")),
        2 => (field.clone(), func.clone()).prop_map(|(a, f)| format!("{{{{ {a} | {f} }}}}")),
        1 => field.clone().prop_map(|f| format!("{{{{ $x := {f} }}}}")),
        1 => field.clone().prop_map(|f| format!("{{{{ $x = {f} }}}}")),
        1 => "[a-c]".prop_map(|n| format!("{{{{ template \"{n}\" . }}}}")),
        1 => Just("{{ break }}".to_string()),
        1 => Just("{{ continue }}".to_string()),
        1 => Just("{{/* c */}}".to_string()),
        1 => Just("{{- ".to_string()),
        1 => Just(" -}}".to_string()),
        1 => Just("{{ end }}".to_string()),
        1 => Just("{{ else }}".to_string()),
        1 => (0u32..5).prop_map(|n| format!("{{{{ range {} }}}}.{{{{ end }}}}", 10u64.pow(n))),
        2 => (time_expr(), method(), num_literal())
            .prop_map(|(t, m, n)| format!("{{{{ ({t}).{m} {n} }}}}")),
        1 => (time_expr(), proptest::sample::select(vec![
            "String", "Hours", "Unix", "UnixNano", "Year", "Month", "Weekday", "IsZero", "Location", "UTC",
        ])).prop_map(|(t, m)| format!("{{{{ ({t}).{m} }}}}")),
        1 => (time_expr(), "[0-9A-Za-z:._ -]{0,12}")
            .prop_map(|(t, l)| format!("{{{{ ({t}).Format {l:?} }}}}")),
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        let body = proptest::collection::vec(inner, 0..4).prop_map(|v| v.concat());
        prop_oneof![
            (
                proptest::sample::select(vec!["if", "with", "range"]),
                field.clone(),
                body.clone(),
                proptest::option::of(body.clone())
            )
                .prop_map(|(k, f, b, e)| match e {
                    Some(e) => format!("{{{{ {k} {f} }}}}{b}{{{{ else }}}}{e}{{{{ end }}}}"),
                    None => format!("{{{{ {k} {f} }}}}{b}{{{{ end }}}}"),
                }),
            ("[a-c]", body.clone())
                .prop_map(|(n, b)| format!("{{{{ define \"{n}\" }}}}{b}{{{{ end }}}}")),
            ("[a-c]", body.clone())
                .prop_map(|(n, b)| format!("{{{{ block \"{n}\" . }}}}{b}{{{{ end }}}}")),
            (body.clone(), func.clone()).prop_map(|(b, f)| format!("{{{{ ({f} ({b:?})) }}}}")),
            body,
        ]
    })
}

/// Times and durations of the data model, including ones far from now.
fn time_expr() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "(index .Alerts 0).StartsAt",
        "(index .Alerts 0).EndsAt",
        "toDate \"2006\" \"1850\"",
        "toDate \"2006\" \"9999\"",
        "toDate \"2006\" \"0001\"",
        "(index .Alerts 0).StartsAt.Sub (toDate \"2006\" \"1850\")",
        "(index .Alerts 0).StartsAt.Sub (toDate \"2006\" \"9999\")",
        "since (toDate \"2006\" \"1\")",
        "since (index .Alerts 0).StartsAt",
    ])
}

fn method() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "Round", "Truncate", "Add", "In", "Sub", "Before", "Equal",
    ])
}

fn num_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "0",
            "1",
            "-1",
            "9223372036854775807",
            "-9223372036854775808",
            "6000000000000000000",
            "4611686018427387904",
            "1000000000",
            "3600000000000",
            "1.5",
            "\"x\"",
            "nil",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn jinja_fragment() -> impl Strategy<Value = String> {
    let expr = proptest::sample::select(vec![
        "status",
        "receiver",
        "alerts",
        "firing",
        "resolved",
        "commonLabels",
        "groupLabels.x",
        "alerts[0].labels",
        "nope",
        "nope.deeper",
        "1",
        "-1",
        "9223372036854775807",
        "1e308",
        "'s'",
        "[1,2]",
        "{'a': 1}",
        "range(100000)",
        "'x' * 1000",
        "none",
        "true",
        "x",
        "loop.index",
        "caller()",
    ]);
    let filter = proptest::sample::select(vec![
        "upper",
        "length",
        "tojson",
        "default('d')",
        "join(',')",
        "first",
        "last",
        "list",
        "slack_escape",
        "int",
        "float",
        "reverse",
        "sort",
        "unique",
        "items",
        "batch(3)",
        "indent(4)",
        "replace('a','bb')",
        "safe",
        "escape",
        "trim",
        "title",
        "abs",
    ]);
    let leaf = prop_oneof![
        4 => "[a-z <>&\n]{0,6}",
        3 => expr.clone().prop_map(|e| format!("{{{{ {e} }}}}")),
        3 => (expr.clone(), filter.clone()).prop_map(|(e, f)| format!("{{{{ {e} | {f} }}}}")),
        1 => (expr.clone(), expr.clone()).prop_map(|(a, b)| format!("{{{{ {a} ~ {b} }}}}")),
        1 => (expr.clone(), expr.clone()).prop_map(|(a, b)| format!("{{{{ {a} + {b} }}}}")),
        1 => expr.clone().prop_map(|e| format!("{{% set x = {e} %}}")),
        1 => "[a-c]".prop_map(|n| format!("{{{{ {n}() }}}}")),
        1 => Just("{% endfor %}".to_string()),
        1 => Just("{% endif %}".to_string()),
        1 => Just("{#".to_string()),
        1 => Just("{% raw %}{{{% endraw %}".to_string()),
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        let body = proptest::collection::vec(inner, 0..4).prop_map(|v| v.concat());
        prop_oneof![
            (expr.clone(), body.clone())
                .prop_map(|(e, b)| format!("{{% for x in {e} %}}{b}{{% endfor %}}")),
            (expr.clone(), body.clone(), body.clone())
                .prop_map(|(e, b, c)| format!("{{% if {e} %}}{b}{{% else %}}{c}{{% endif %}}")),
            ("[a-c]", body.clone())
                .prop_map(|(n, b)| format!("{{% macro {n}() %}}{b}{{% endmacro %}}")),
            body,
        ]
    })
}

proptest! {
    #![proptest_config(config(512))]

    /// Generated from the grammar's pieces, in both languages.
    #[test]
    fn templates_generated((src, jinja) in prop_oneof![
        go_fragment().prop_map(|s| (s, false)),
        jinja_fragment().prop_map(|s| (s, true)),
    ]) {
        render_checks(src, jinja);
    }

    /// Byte-level mutations of working templates, in both languages.
    #[test]
    fn templates_mutated(jinja in any::<bool>(), seed in any::<Index>(), e in edits()) {
        let seeds = if jinja { JINJA_SEEDS } else { GO_SEEDS };
        let src = mutate(seeds[seed.index(seeds.len())].as_bytes(), &e);
        render_checks(String::from_utf8_lossy(&src).into_owned(), jinja);
    }

    #[test]
    fn go_templates_random_text(src in "[{}a-z .$|()\"=:-]{0,40}") {
        render_checks(src, false);
    }
}

/// Templates that recurse, loop or grow without end must stop with an error, quickly,
/// without overflowing the stack.
#[test]
fn runaway_go_templates_are_bounded() {
    let deep_parens = format!("{{{{ {}1{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
    let deep_ifs = format!(
        "{}x{}",
        "{{ if 1 }}".repeat(5_000),
        "{{ end }}".repeat(5_000)
    );
    for src in [
        r#"{{define "a"}}{{template "a"}}{{end}}{{template "a"}}"#.to_string(),
        r#"{{define "a"}}{{template "a" .}}{{template "a" .}}{{end}}{{template "a" .}}"#.to_string(),
        r#"{{define "a"}}x{{template "b" .}}{{end}}{{define "b"}}{{template "a" .}}{{end}}{{template "a" .}}"#.to_string(),
        "{{ range 9223372036854775807 }}x{{ end }}".to_string(),
        "{{ range 4999999 }}{{ end }}".to_string(),
        "{{ range 3000 }}{{ range 3000 }}{{ end }}{{ end }}".to_string(),
        "{{ range 4999999 }}{{ range 4999999 }}{{ end }}{{ end }}".to_string(),
        "{{ range $i := 4999999 }}{{ range $j := 4999999 }}{{ continue }}{{ end }}{{ end }}".to_string(),
        "{{ range 100000 }}{{ printf \"%1000s\" \"\" }}{{ end }}".to_string(),
        "{{ printf \"%*d\" 9223372036854775807 1 }}".to_string(),
        "{{ printf \"%.*f\" 9223372036854775807 1.0 }}".to_string(),
        "{{ printf \"%*d\" 100000000000 1 }}".to_string(),
        "{{ printf \"%.*d\" 100000000000 1 }}".to_string(),
        "{{ printf \"%99999999999999999999d\" 1 }}".to_string(),
        "{{ $x := \"ab\" }}{{ range 64 }}{{ $x = printf \"%s%s\" $x $x }}{{ end }}{{ len $x }}".to_string(),
        "{{ $x := list }}{{ range 200000 }}{{ $x = list $x }}{{ end }}{{ len $x }}".to_string(),
        "{{ $x := list }}{{ range 200000 }}{{ $x = list $x }}{{ end }}{{ toJson $x }}".to_string(),
        "{{ $x := list }}{{ range 200000 }}{{ $x = list $x }}{{ end }}{{ $x }}".to_string(),
        "{{ $x := dict }}{{ range 200000 }}{{ $x = dict \"a\" $x }}{{ end }}{{ eq $x $x }}".to_string(),
        "{{ $x := list }}{{ range 1000000 }}{{ $x = append $x 1 }}{{ end }}{{ len $x }}".to_string(),
        "{{ $x := \"a\" }}{{ range 30 }}{{ $x = reReplaceAll \"\" \"$0$0\" $x }}{{ end }}{{ len $x }}".to_string(),
        "{{ reReplaceAll \"\" (printf \"%100000s\" \"\") (printf \"%1000000s\" \"\") }}".to_string(),
        "{{ $x := printf \"%1000000s\" \"\" }}{{ join $x (stringSlice $x $x $x $x $x) }}".to_string(),
        "{{ $x := printf \"%1000000s\" \"\" }}{{ .CommonLabels.Values.Join $x }}".to_string(),
        "{{ range 2000 }}{{ match \"(a|b|c){1,1000}x\" \"abc\" }}{{ end }}".to_string(),
        "{{ range $i := 2000000 }}{{ match (printf \"(a|b){1,100}%d\" $i) \"ab\" }}{{ end }}".to_string(),
        "{{ $x := \"a\" }}{{ range 40 }}{{ $x = join \"\" (list $x $x) }}{{ end }}{{ len $x }}".to_string(),
        "{{ ((index .Alerts 0).StartsAt.Sub (toDate \"2006\" \"1850\")).Round 6000000000000000000 }}".to_string(),
        "{{ ((index .Alerts 0).StartsAt.Sub (toDate \"2006\" \"1850\")).Truncate 6000000000000000000 }}".to_string(),
        "{{ (toDate \"2006\" \"0001\").Round 9223372036854775807 }}".to_string(),
        "{{ ((toDate \"2006\" \"9999\").Add 9223372036854775807).Format \"2006\" }}".to_string(),
        deep_parens,
        deep_ifs,
    ] {
        let shown = src.get(..80).unwrap_or(&src).to_string();
        let started = std::time::Instant::now();
        render_checks_as(src, false, &[false]);
        eprintln!("runaway: {:?} {shown}", started.elapsed());
    }
}

#[test]
fn runaway_jinja_templates_are_bounded() {
    for src in [
        "{% macro a() %}{{ a() }}{% endmacro %}{{ a() }}",
        "{{ 'x' * 9223372036854775807 }}",
        "{% set x = 'ab' %}{% for i in range(64) %}{% set x = x ~ x %}{% endfor %}{{ x | length }}",
        "{{ range(9223372036854775807) }}",
    ] {
        eprintln!("runaway: {src}");
        render_checks_as(src.to_string(), true, &[false]);
    }
}

/// Nested loops in MiniJinja (10^10 iterations here) would run for hours: the router's
/// environment gives each render a fuel budget, so they stop with an error.
#[test]
fn runaway_jinja_loops_are_bounded() {
    render_checks_as(
        "{% for x in range(100000) %}{% for y in range(100000) %}{% endfor %}{% endfor %}"
            .to_string(),
        true,
        &[false],
    );
}

// ---------------------------------------------------------------------------
// Time intervals and silences
// ---------------------------------------------------------------------------

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        "(monday|sunday|Saturday|funday)(:(friday|monday|x))?",
        "-?[0-9]{1,3}(:-?[0-9]{1,3})?",
        "(january|December|13|0|-1)(:(march|12|1))?",
        "[0-9]{4,20}(:[0-9]{4,20})?",
        "[:a-z0-9-]{0,8}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config(64))]

    /// Time intervals of every shape: they load (or are refused with the interval named)
    /// and can be evaluated at any instant.
    #[test]
    fn time_intervals(
        weekdays in proptest::collection::vec(scalar(), 0..3),
        days in proptest::collection::vec(scalar(), 0..3),
        months in proptest::collection::vec(scalar(), 0..3),
        years in proptest::collection::vec(scalar(), 0..3),
        times in proptest::collection::vec(("[0-9:]{0,6}|24:00", "[0-9:]{0,6}|24:00"), 0..3),
        location in proptest::option::of(prop_oneof![
            Just("UTC".to_string()), Just("Local".to_string()), Just("Europe/Paris".to_string()),
            Just("../etc/passwd".to_string()), Just("America/New_York".to_string()), "\\PC{0,12}",
        ]),
        at in -10_000_000_000i64..10_000_000_000,
    ) {
        let q = |v: &[String]| serde_json::to_string(v).expect("json");
        let times = format!(
            "[{}]",
            times.iter().map(|(a, b)| format!("{{start_time: {}, end_time: {}}}", json!(a), json!(b))).collect::<Vec<_>>().join(", ")
        );
        let loc = location.map(|l| format!(", location: {}", json!(l))).unwrap_or_default();
        let text = format!(
            "route:\n  receiver: x\n  routes:\n    - receiver: x\n      mute_time_intervals: [ti]\n\
             receivers: [{{name: x}}]\n\
             time_intervals:\n  - name: ti\n    time_intervals:\n      - {{weekdays: {}, days_of_month: {}, months: {}, years: {}, times: {}{}}}\n",
            q(&weekdays), q(&days), q(&months), q(&years), times, loc
        );
        match Config::load_str(&text, "ti.yml", fixtures_dir()) {
            Ok(cfg) => {
                let ti = alert_router::timeinterval::TimeIntervals::from_config(&cfg);
                let t = OffsetDateTime::from_unix_timestamp(at).expect("time");
                let _ = ti.contains("ti", t);
            }
            Err(e) => prop_assert!(
                e.message.contains("\"ti\"") || e.line.is_some(),
                "{}", e
            ),
        }
    }
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
});

static SILENCES: LazyLock<alert_router::silence::Silences> = LazyLock::new(|| {
    let dir = SECRETS_DIR.join("store");
    let store = alert_router::store::Store::open_with_sync(
        &dir,
        16,
        10_000,
        4096,
        alert_router::store::SyncMode::None,
    )
    .expect("store");
    alert_router::silence::Silences::open(store).expect("silences")
});

proptest! {
    #![proptest_config(config(64))]

    /// Silences as clients post them: any matchers and times are stored or refused with
    /// a message, and a stored one can be matched against any labels.
    #[test]
    fn silences(
        matchers in proptest::collection::vec(
            (label_name(), prop_oneof![label_value(), Just("(".to_string()), Just(".*".to_string()), Just("a{99999}{99999}".to_string())], any::<bool>(), any::<bool>()),
            0..4,
        ),
        start in proptest::option::of(-1000i64..1000),
        end in -1000i64..100_000,
        labels in proptest::collection::btree_map(label_name(), label_value(), 0..4),
    ) {
        let now = alert_router::alert::now();
        let body = json!({
            "matchers": matchers.iter().map(|(n, v, r, e)| json!({"name": n, "value": v, "isRegex": r, "isEqual": e})).collect::<Vec<_>>(),
            "startsAt": start.map(|s| alert_router::alert::format_time(now + time::Duration::seconds(s))),
            "endsAt": alert_router::alert::format_time(now + time::Duration::seconds(end)),
            "createdBy": "props",
            "comment": "property test",
        });
        let p: alert_router::silence::PostableSilence = serde_json::from_value(body).expect("postable");
        let r = RUNTIME.block_on(SILENCES.upsert(p, now));
        match r {
            Ok(id) => {
                let s = SILENCES.get(&id).expect("stored");
                prop_assert!(!s.matchers.is_empty());
                prop_assert!(s.ends_at > s.starts_at);
                let _ = SILENCES.silenced_by(Fingerprint::of(&labels), &labels, now);
            }
            Err(alert_router::silence::SilenceError::Invalid(m)) => prop_assert!(!m.is_empty()),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
