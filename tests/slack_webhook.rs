//! Slack and webhook integrations end to end: alerts go in through `/webhook`, the real
//! router groups and delivers them to local mock servers, and each received body is
//! checked against the platform's documented format and limits.
mod common;
use alert_router::alert::{Fingerprint, LabelSet, ZERO_TIME};
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// Fast timers and retries, then the route and receivers under test.
fn config(receiver: &str, receivers: &str) -> String {
    format!(
        "delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: {receiver}\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 1s\n\
         receivers:\n{receivers}"
    )
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn all_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| all_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| all_strings(x, out)),
        _ => {}
    }
}

/// What Slack's incoming webhooks accept (reference/delivery-apis.md §1): valid JSON,
/// `text` ≤ 40,000 chars, ≤ 100 attachments, attachment title ≤ 1024, attachment text
/// kept ≤ 8,000, known colours and `mrkdwn_in` fields — plus no control sequence other
/// than a link (`<!channel>`, `<@U…>` in a label would notify people).
fn slack_limits(r: &Received) -> Result<(), String> {
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(format!("invalid_payload: content-type {ct:?}"));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("invalid_payload: {e}"))?;
    let text = v["text"].as_str().unwrap_or("");
    let attachments = v["attachments"].as_array().cloned().unwrap_or_default();
    if text.is_empty() && attachments.is_empty() {
        return Err("missing_text_or_fallback_or_attachments".into());
    }
    if utf16_len(text) > 40_000 {
        return Err(format!("text too long: {}", utf16_len(text)));
    }
    if attachments.len() > 100 {
        return Err("too_many_attachments".into());
    }
    for a in &attachments {
        let title = a["title"].as_str().unwrap_or("");
        if utf16_len(title) > 1024 {
            return Err(format!("attachment title too long: {}", utf16_len(title)));
        }
        let atext = a["text"].as_str().unwrap_or("");
        if utf16_len(atext) > 8000 {
            return Err(format!("attachment text too long: {}", utf16_len(atext)));
        }
        match a["color"].as_str() {
            None | Some("good" | "warning" | "danger") => {}
            Some(c) if c.starts_with('#') => {}
            Some(c) => return Err(format!("invalid color {c:?}")),
        }
        for f in a["mrkdwn_in"].as_array().into_iter().flatten() {
            if !matches!(f.as_str(), Some("text" | "pretext" | "fields" | "fallback")) {
                return Err(format!("invalid mrkdwn_in entry {f}"));
            }
        }
        if let Some(link) = a["title_link"].as_str() {
            if !link.starts_with("http://") && !link.starts_with("https://") {
                return Err(format!("title_link is not a URL: {link:?}"));
            }
        }
    }
    let mut strings = Vec::new();
    all_strings(&v, &mut strings);
    for s in strings {
        // Every `<` must open a link `<http…|label>` that is closed.
        for (i, _) in s.match_indices('<') {
            let rest = &s[i + 1..];
            if !(rest.starts_with("http://") || rest.starts_with("https://")) {
                return Err(format!("control sequence injected: {s:?}"));
            }
            let end = rest.find('>').ok_or(format!("unclosed link in {s:?}"))?;
            if rest[..end].matches('|').count() > 1 {
                return Err(format!("'|' inside a link label: {s:?}"));
            }
        }
    }
    Ok(())
}

async fn slack_mock() -> MockServer {
    MockServer::start(Reply::ok("ok"), Some(Arc::new(slack_limits))).await
}

fn find<'a>(reqs: &'a [Value], title_part: &str) -> &'a Value {
    reqs.iter()
        .find(|v| {
            v["attachments"][0]["title"]
                .as_str()
                .is_some_and(|t| t.contains(title_part))
        })
        .unwrap_or_else(|| panic!("no Slack message titled with {title_part:?} in {reqs:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_messages_fit_limits_escape_labels_and_use_config() {
    let slack = slack_mock().await;
    let app = TestApp::start(&config(
        "chat",
        &format!(
            "  - name: chat\n    slack_configs:\n      - api_url: '{}'\n        channel: '#alerts'\n        username: alert-bot\n        icon_emoji: ':rotating_light:'\n        icon_url: 'https://icons.test/bot.png'\n",
            slack.url("/services/T000/B000/XXXX")
        ),
    ))
    .await;

    let mut alerts = vec![
        alert(
            &[
                ("alertname", "Normal"),
                ("instance", "web-1"),
                ("severity", "critical"),
            ],
            "firing",
        ),
        alert(
            &[
                ("alertname", "Normal"),
                ("instance", "web-2"),
                ("severity", "critical"),
            ],
            "firing",
        ),
        alert(
            &[
                ("alertname", "<!channel> & <@U123> >"),
                ("instance", "<!here>"),
            ],
            "firing",
        ),
    ];
    for i in 0..300 {
        alerts.push(alert(
            &[
                ("alertname", "Many"),
                ("instance", &format!("host-{i:03}.example.com:9100")),
            ],
            "firing",
        ));
    }
    assert_eq!(
        app.post_json("/webhook", &webhook(alerts)).await.status(),
        200
    );

    wait_for(WAIT, "3 Slack messages", || async {
        (slack.count() >= 3).then_some(())
    })
    .await;
    assert_eq!(slack.violations(), Vec::<String>::new());
    let reqs: Vec<Value> = slack.requests().iter().map(Received::json).collect();
    assert_eq!(reqs.len(), 3, "one message per group");
    for (r, v) in slack.requests().iter().zip(&reqs) {
        let ua = r.headers.get("user-agent").and_then(|h| h.to_str().ok());
        assert!(ua.is_some_and(|u| u.starts_with("alert-router/")), "{ua:?}");
        assert_eq!(v["channel"], "#alerts");
        assert_eq!(v["username"], "alert-bot");
        assert_eq!(v["icon_emoji"], ":rotating_light:");
        assert_eq!(v["icon_url"], "https://icons.test/bot.png");
        assert_eq!(v["attachments"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            v["attachments"][0]["mrkdwn_in"],
            serde_json::json!(["text", "pretext"])
        );
    }

    // A normal group: fallback = subject, one line per alert with a link to its source.
    let normal = find(&reqs, "Normal");
    assert!(
        normal["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING:2] Normal"),
        "{normal}"
    );
    let a = &normal["attachments"][0];
    assert_eq!(a["color"], "danger");
    assert!(a["title_link"]
        .as_str()
        .unwrap()
        .starts_with("http://alert-router.test/admin/v1/alerts?receiver=chat"));
    let text = a["text"].as_str().unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    for (line, inst) in text.lines().zip(["web-1", "web-2"]) {
        assert!(line.starts_with(":fire: *Normal*"), "{line}");
        assert!(line.contains(&format!("instance={inst}")), "{line}");
        assert!(line.contains("something is wrong"), "{line}");
        assert!(
            line.ends_with("<http://prometheus.test/graph?g0.expr=up|source>"),
            "{line}"
        );
    }

    // 300 alerts: cut well inside the limits, the rest counted.
    let many = find(&reqs, "Many");
    let text = many["attachments"][0]["text"].as_str().unwrap();
    assert!(utf16_len(text) <= 3000, "{}", utf16_len(text));
    let shown = text.lines().filter(|l| l.starts_with(":fire:")).count();
    assert!((5..300).contains(&shown), "{shown} alerts shown");
    assert!(
        text.ends_with(&format!("…and {} more alerts", 300 - shown)),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
    assert!(many["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING:300] Many"));

    // Mentions in labels are escaped, never sent as control sequences.
    let raw: Vec<String> = slack
        .requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        raw.iter().all(|b| !b.contains("<!") && !b.contains("<@")),
        "{raw:?}"
    );
    let evil = find(&reqs, "&lt;!channel&gt; &amp; &lt;@U123&gt; &gt;");
    assert_eq!(
        evil["text"].as_str().unwrap(),
        "[FIRING:1] &lt;!channel&gt; &amp; &lt;@U123&gt; &gt; (&lt;!here&gt;)"
    );
    let line = evil["attachments"][0]["text"].as_str().unwrap();
    assert!(line.contains("instance=&lt;!here&gt;"), "{line}");

    // The mock answers before the worker records the delivery.
    wait_for(WAIT, "3 delivered Slack notifications", || async {
        let v = app.notifications("state=delivered&integration=slack").await;
        (v.len() == 3).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_error_bodies_are_permanent_and_reported_without_the_url() {
    let slack = MockServer::start(Reply::status(410, "channel_is_archived"), None).await;
    let app = TestApp::start(&config(
        "chat",
        &format!(
            "  - name: chat\n    slack_configs:\n      - api_url: '{}'\n",
            slack.url("/services/T000/B000/s3cr3tp4th")
        ),
    ))
    .await;
    let body = webhook(vec![alert(&[("alertname", "Archived")], "firing")]);
    assert_eq!(app.post_json("/webhook", &body).await.status(), 200);
    let dead = wait_for(WAIT, "dead letter", || async {
        let v = app.notifications("state=dead").await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    let err = dead[0]["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("410") && err.contains("channel_is_archived"),
        "{err}"
    );
    assert!(!err.contains("s3cr3tp4th"), "{err}");
    assert_eq!(dead[0]["attempts"], 1, "permanent errors are not retried");
    assert_eq!(slack.count(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_payload_is_alertmanager_v4_with_max_alerts() {
    let hook = MockServer::start(Reply::ok(""), None).await;
    let app = TestApp::start(&config(
        "team.hook",
        &format!(
            "  - name: team.hook\n    webhook_configs:\n      - url: '{}'\n        max_alerts: 2\n",
            hook.url("/alertmanager/hook")
        ),
    ))
    .await;
    // The first alert is Alertmanager's own example (reference/alertmanager.md §1.2).
    let sent: Vec<Value> = (1..=5)
        .map(|i| {
            alert(
                &[
                    ("alertname", "HighLatency"),
                    ("instance", &format!("web-{i}:9100")),
                    ("job", "node"),
                    ("severity", "critical"),
                ],
                "firing",
            )
        })
        .collect();
    assert_eq!(
        app.post_json("/webhook", &webhook(sent.clone()))
            .await
            .status(),
        200
    );
    wait_for(WAIT, "webhook delivery", || async {
        (hook.count() >= 1).then_some(())
    })
    .await;
    let r = &hook.requests()[0];
    assert_eq!(r.path, "/alertmanager/hook");
    let ct = r.headers.get("content-type").and_then(|v| v.to_str().ok());
    assert_eq!(ct, Some("application/json"));
    let ua = r.headers.get("user-agent").and_then(|v| v.to_str().ok());
    assert!(ua.is_some_and(|u| u.starts_with("alert-router/")), "{ua:?}");

    let v = r.json();
    let keys: std::collections::BTreeSet<&str> =
        v.as_object().unwrap().keys().map(String::as_str).collect();
    let want: std::collections::BTreeSet<&str> = [
        "receiver",
        "status",
        "alerts",
        "notification_reason",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "routeLabels",
        "externalURL",
        "version",
        "groupKey",
        "truncatedAlerts",
    ]
    .into();
    assert_eq!(keys, want);
    assert_eq!(v["version"], "4");
    assert_eq!(
        v["receiver"], r"team\.hook",
        "receiver is regexp-quoted like Alertmanager's"
    );
    assert_eq!(v["status"], "firing");
    assert_eq!(v["groupKey"], r#"{}:{alertname="HighLatency"}"#);
    assert_eq!(
        v["groupLabels"],
        serde_json::json!({"alertname": "HighLatency"})
    );
    assert_eq!(
        v["commonLabels"],
        serde_json::json!({"alertname": "HighLatency", "job": "node", "severity": "critical"})
    );
    assert_eq!(v["commonAnnotations"]["summary"], "something is wrong");
    assert_eq!(v["externalURL"], "http://alert-router.test");
    assert_eq!(v["truncatedAlerts"], 3);
    let alerts = v["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "max_alerts: 2");
    // Alertmanager order (job, then instance) and Alertmanager fingerprints.
    assert_eq!(alerts[0]["fingerprint"], "c626d2275ab0f610");
    for (a, s) in alerts.iter().zip(&sent) {
        assert_eq!(a["status"], "firing");
        assert_eq!(a["labels"], s["labels"]);
        assert_eq!(a["annotations"], s["annotations"]);
        assert_eq!(a["startsAt"], s["startsAt"]);
        assert_eq!(a["endsAt"], ZERO_TIME);
        assert_eq!(a["generatorURL"], "http://prometheus.test/graph?g0.expr=up");
        let labels: LabelSet = serde_json::from_value(a["labels"].clone()).unwrap();
        assert_eq!(a["fingerprint"], Fingerprint::of(&labels).to_string());
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_goes_to_webhook_but_not_to_slack_by_default() {
    let slack = slack_mock().await;
    let hook = MockServer::start(Reply::ok(""), None).await;
    let app = TestApp::start(&config(
        "both",
        &format!(
            "  - name: both\n    slack_configs:\n      - api_url: '{}'\n    webhook_configs:\n      - url: '{}'\n",
            slack.url("/services/T/B/X"),
            hook.url("/hook")
        ),
    ))
    .await;
    let labels = [("alertname", "Flappy"), ("instance", "a")];
    app.post_json("/webhook", &webhook(vec![alert(&labels, "firing")]))
        .await;
    wait_for(WAIT, "firing on both", || async {
        (slack.count() == 1 && hook.count() == 1).then_some(())
    })
    .await;

    app.post_json("/webhook", &webhook(vec![alert(&labels, "resolved")]))
        .await;
    wait_for(WAIT, "resolved on the webhook", || async {
        (hook.count() == 2).then_some(())
    })
    .await;
    let resolved = hook.requests()[1].json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_ne!(resolved["alerts"][0]["endsAt"], ZERO_TIME);

    // A later group reaches Slack after anything the resolve could have queued for it
    // (one worker, in order), so Slack's second message must be the later group.
    app.post_json(
        "/webhook",
        &webhook(vec![alert(&[("alertname", "Later")], "firing")]),
    )
    .await;
    wait_for(WAIT, "the later group on Slack", || async {
        (slack.count() >= 2).then_some(())
    })
    .await;
    let msgs: Vec<Value> = slack.requests().iter().map(Received::json).collect();
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    assert!(msgs[0]["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING:1] Flappy"));
    assert!(msgs[1]["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING:1] Later"));
    assert!(msgs.iter().all(|m| m["attachments"][0]["color"] != "good"));
    assert_eq!(slack.violations(), Vec::<String>::new());
    assert_eq!(app.notifications("integration=slack").await.len(), 2);
    app.stop().await;
}
