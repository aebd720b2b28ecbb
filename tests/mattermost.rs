//! Mattermost end to end: alerts go in through `/webhook`, the real router delivers them
//! to a local server standing in for a Mattermost incoming webhook, which checks each
//! body against the documented format and limits.
mod common;
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const HOOK: &str = "/hooks/xk8s3cr3tk3y";

fn config(receivers: &str) -> String {
    format!(
        "delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: mm\n  group_by: [alertname]\n  group_wait: 50ms\n  group_interval: 1s\n\
         receivers:\n{receivers}"
    )
}

fn receiver(url: &str, extra: &str) -> String {
    format!("  - name: mm\n    mattermost_configs:\n      - webhook_url: '{url}'\n{extra}")
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn all_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| all_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| all_strings(x, out)),
        _ => {}
    }
}

/// What a Mattermost incoming webhook accepts (delivery-apis.md §6): a JSON POST on the
/// hook path with `text` or `attachments`, a post ≤ 16,383 characters, attachment fields
/// with title and value, `type` starting with `custom_` — plus no live mention or Slack
/// control sequence in any string (`@channel`/`@all`/`@here`, `<!channel>`).
fn mattermost_limits(r: &Received) -> Result<(), String> {
    if r.method != "POST" || r.path != HOOK {
        return Err(format!("unexpected {} {}", r.method, r.path));
    }
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(format!(
            "Unable to parse incoming data: content-type {ct:?}"
        ));
    }
    let v: Value = serde_json::from_slice(&r.body)
        .map_err(|e| format!("Unable to parse incoming data: {e}"))?;
    let text = v["text"].as_str().unwrap_or("");
    let attachments = v["attachments"].as_array().cloned().unwrap_or_default();
    if text.is_empty() && attachments.is_empty() {
        return Err("No text specified".into());
    }
    if chars(text) > 16_383 {
        return Err(format!("text too long: {}", chars(text)));
    }
    for a in &attachments {
        for k in ["text", "title", "pretext", "fallback"] {
            if chars(a[k].as_str().unwrap_or("")) > 16_383 {
                return Err(format!("attachment {k} too long"));
            }
        }
        for f in a["fields"].as_array().into_iter().flatten() {
            if !f["title"].is_string() || !f["value"].is_string() || !f["short"].is_boolean() {
                return Err(format!("bad field {f}"));
            }
        }
    }
    if let Some(t) = v["type"].as_str() {
        if !t.starts_with("custom_") {
            return Err(format!("type must start with custom_: {t}"));
        }
    }
    let mut strings = Vec::new();
    all_strings(&v, &mut strings);
    for s in strings {
        for bad in ["@channel", "@all", "@here", "<!"] {
            if s.contains(bad) {
                return Err(format!("live {bad} in {s:?}"));
            }
        }
    }
    Ok(())
}

async fn mm_mock() -> MockServer {
    MockServer::start(Reply::ok("ok"), Some(Arc::new(mattermost_limits))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_message_is_one_escaped_attachment_within_limits() {
    let mm = mm_mock().await;
    let app = TestApp::start(&config(&receiver(
        &mm.url(HOOK),
        "        channel: town-square\n        username: alert-bot\n        icon_emoji: ':bell:'\n",
    )))
    .await;
    let long = "z".repeat(5_000);
    let mut alerts = vec![alert(
        &[
            ("alertname", "Evil"),
            (
                "instance",
                "<!channel> @all @here **b** [x](http://evil.test) <http://e|y>",
            ),
        ],
        "firing",
    )];
    for i in 0..300 {
        alerts.push(alert(
            &[("alertname", "Evil"), ("instance", &format!("{long}{i}"))],
            "firing",
        ));
    }
    assert_eq!(
        app.post_json("/webhook", &webhook(alerts)).await.status(),
        200
    );
    wait_for(WAIT, "the post", || async {
        (mm.count() >= 1).then_some(())
    })
    .await;
    assert_eq!(mm.violations(), Vec::<String>::new());
    let v = mm.requests()[0].json();
    assert_eq!(v["channel"], "town-square");
    assert_eq!(v["username"], "alert-bot");
    assert_eq!(v["icon_emoji"], ":bell:");
    assert!(v.get("text").is_none(), "{v}");
    let a = &v["attachments"][0];
    assert_eq!(a["color"], "danger");
    assert!(
        a["title"]
            .as_str()
            .unwrap()
            .starts_with("\\[FIRING:301\\] Evil"),
        "{a}"
    );
    assert!(a["title_link"]
        .as_str()
        .unwrap()
        .starts_with("http://alert-router.test/admin/v1/alerts"));
    let text = a["text"].as_str().unwrap();
    assert!(
        text.contains("\\<\\!channel\\> @\u{200B}all @\u{200B}here \\*\\*b\\*\\* \\[x\\]\\(http://evil.test\\)"),
        "{}",
        &text[..300.min(text.len())]
    );
    assert!(
        text.ends_with("more alerts"),
        "{}",
        &text[text.len() - 60..]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_server_errors_retried_client_errors_dead() {
    let mm = mm_mock().await;
    // Mattermost's limiter: 429 with X-Ratelimit-Reset (seconds), no Retry-After.
    mm.push(
        Reply::status(429, "limit exceeded")
            .with_header("X-Ratelimit-Limit", "10")
            .with_header("X-Ratelimit-Remaining", "0")
            .with_header("X-Ratelimit-Reset", "2"),
    );
    mm.push(Reply::status(500, "internal"));
    let app = TestApp::start(&config(&receiver(&mm.url(HOOK), ""))).await;
    app.post_json(
        "/webhook",
        &webhook(vec![alert(&[("alertname", "Slow")], "firing")]),
    )
    .await;
    wait_for(WAIT, "429, 500, success", || async {
        (mm.count() >= 3).then_some(())
    })
    .await;
    let r = mm.requests();
    let gap = r[1].at - r[0].at;
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    let delivered = wait_for(WAIT, "delivered", || async {
        let v = app
            .notifications("state=delivered&integration=mattermost")
            .await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(delivered[0]["attempts"], 3);

    // A deleted hook answers 400: permanent, reported without the hook key.
    mm.push(Reply::status(400, "Invalid webhook"));
    app.post_json(
        "/webhook",
        &webhook(vec![alert(&[("alertname", "Gone")], "firing")]),
    )
    .await;
    let dead = wait_for(WAIT, "dead letter", || async {
        let v = app.notifications("state=dead").await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    let err = dead[0]["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("400") && err.contains("Invalid webhook"),
        "{err}"
    );
    assert!(!err.contains("xk8s3cr3tk3y"), "{err}");
    assert_eq!(dead[0]["attempts"], 1);
    assert_eq!(mm.count(), 4);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_block_with_attachments_props_and_priority() {
    let mm = mm_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let hook_file = dir.path().join("mm-hook");
    std::fs::write(&hook_file, format!("{}\n", mm.url(HOOK))).unwrap();
    // An alertmanager.yml receiver: global URL file, deprecated `attachments`, props,
    // priority.
    let yaml = format!(
        "global:\n  mattermost_webhook_url_file: {}\n{}",
        hook_file.display(),
        config(
            "  - name: mm\n    mattermost_configs:\n      - send_resolved: true\n        type: custom_alert\n\
             \x20       text: 'Alerts: {{ len .Alerts }}'\n\
             \x20       attachments:\n          - title: Details\n            color: '#FF0000'\n\
             \x20           fields:\n              - {title: Count, value: '{{ len .Alerts }}', short: true}\n\
             \x20       props: {card: 'status {{ .Status }}'}\n\
             \x20       priority: {priority: Important, requested_ack: true, persistent_notifications: true}\n"
        )
    );
    let app = TestApp::start(&yaml).await;
    app.post_json(
        "/webhook",
        &webhook(vec![alert(&[("alertname", "A")], "firing")]),
    )
    .await;
    wait_for(WAIT, "the post", || async {
        (mm.count() >= 1).then_some(())
    })
    .await;
    assert_eq!(mm.violations(), Vec::<String>::new());
    let v = mm.requests()[0].json();
    assert_eq!(v["text"], "Alerts: 1");
    assert_eq!(v["type"], "custom_alert");
    assert_eq!(
        v["attachments"],
        serde_json::json!([{"title": "Details", "color": "#FF0000",
            "fields": [{"title": "Count", "value": "1", "short": true}]}])
    );
    assert_eq!(v["props"], serde_json::json!({"card": "status firing"}));
    assert_eq!(
        v["priority"],
        serde_json::json!({"priority": "important", "requested_ack": true, "persistent_notifications": false})
    );
    app.stop().await;
}
