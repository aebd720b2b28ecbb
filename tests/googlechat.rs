//! Google Chat end to end: alerts go in through `/webhook`, the real router delivers them
//! to a local server standing in for a space webhook, which checks each request against
//! the documented format and limits; every notification of a group must land in one
//! thread.
mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const SPACE: &str = "/v1/spaces/AAAA1234/messages";
const QUERY: &str = "key=PUBLICKEY&token=s3cr3tT0ken";

fn config(receivers: &str) -> String {
    format!(
        "delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: gchat\n  group_by: [alertname]\n  group_wait: 50ms\n  group_interval: 1s\n\
         receivers:\n{receivers}"
    )
}

fn receiver(url: &str, extra: &str) -> String {
    format!("  - name: gchat\n    googlechat_configs:\n      - url: '{url}'\n{extra}")
}

fn query(r: &Received) -> BTreeMap<String, String> {
    let (_, q) = r.path.split_once('?').unwrap_or(("", ""));
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What a space webhook accepts (delivery-apis.md §5): a JSON POST on the space's
/// messages path with its `key` and `token`, `text` ≤ 32,000 bytes, the thread key in
/// `thread.threadKey` (and the `threadKey` parameter) with
/// `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD` — plus no live mention
/// (`<users/…>`) in the text.
fn googlechat_limits(r: &Received) -> Result<(), String> {
    let path = r.path.split('?').next().unwrap_or("");
    let q = query(r);
    if r.method != "POST" || path != SPACE {
        return Err(format!("unexpected {} {}", r.method, r.path));
    }
    if q.get("key").map(String::as_str) != Some("PUBLICKEY")
        || q.get("token").map(String::as_str) != Some("s3cr3tT0ken")
    {
        return Err(format!("401 missing key/token: {}", r.path));
    }
    if q.get("messageReplyOption").map(String::as_str)
        != Some("REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD")
    {
        return Err(format!("no reply option: {}", r.path));
    }
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(format!("content-type {ct:?}"));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("INVALID_ARGUMENT: {e}"))?;
    let text = v["text"].as_str().unwrap_or("");
    if text.is_empty() {
        return Err("INVALID_ARGUMENT: empty message".into());
    }
    if text.len() > 32_000 || r.body.len() > 32_000 {
        return Err(format!(
            "INVALID_ARGUMENT: message too large ({} bytes)",
            text.len()
        ));
    }
    let key = v["thread"]["threadKey"].as_str().unwrap_or("");
    if key.is_empty() || key.len() > 4000 || q.get("threadKey").map(String::as_str) != Some(key) {
        return Err(format!("thread key {key:?} vs {:?}", q.get("threadKey")));
    }
    if text.contains("<users/") {
        return Err(format!("live mention in {text:?}"));
    }
    Ok(())
}

async fn gchat_mock() -> MockServer {
    let reply =
        r#"{"name":"spaces/AAAA1234/messages/M1","thread":{"name":"spaces/AAAA1234/threads/T1"}}"#;
    MockServer::start(Reply::ok(reply), Some(Arc::new(googlechat_limits))).await
}

fn url(m: &MockServer) -> String {
    m.url(&format!("{SPACE}?{QUERY}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_stays_in_one_thread_across_updates_and_a_restart() {
    let chat = gchat_mock().await;
    let yaml = config(&receiver(&url(&chat), ""));
    let app = TestApp::start(&yaml).await;
    let a = alert(&[("alertname", "Disk"), ("instance", "a")], "firing");
    let b = alert(&[("alertname", "Disk"), ("instance", "b")], "firing");
    app.post_json("/webhook", &webhook(vec![a.clone()])).await;
    app.post_json(
        "/webhook",
        &webhook(vec![alert(&[("alertname", "Other")], "firing")]),
    )
    .await;
    wait_for(WAIT, "two groups", || async {
        (chat.count() >= 2).then_some(())
    })
    .await;
    app.post_json("/webhook", &webhook(vec![a.clone(), b.clone()]))
        .await;
    wait_for(WAIT, "the update", || async {
        (chat.count() >= 3).then_some(())
    })
    .await;

    let dir = app.stop().await;
    let app = TestApp::start_in(dir, &yaml).await;
    let resolved = |mut v: Value| {
        v["status"] = "resolved".into();
        v["endsAt"] = alert_router::alert::format_time(time::OffsetDateTime::now_utc()).into();
        v
    };
    app.post_json("/webhook", &webhook(vec![resolved(a), resolved(b)]))
        .await;
    wait_for(WAIT, "the resolve", || async {
        (chat.count() >= 4).then_some(())
    })
    .await;
    assert_eq!(chat.violations(), Vec::<String>::new());

    let reqs: Vec<(String, String)> = chat
        .requests()
        .iter()
        .map(|r| {
            let text = r.json()["text"].as_str().unwrap().to_string();
            (query(r)["threadKey"].clone(), text)
        })
        .collect();
    let disk: Vec<&(String, String)> = reqs.iter().filter(|(_, t)| t.contains("Disk")).collect();
    let other: Vec<&(String, String)> = reqs.iter().filter(|(_, t)| t.contains("Other")).collect();
    assert_eq!((disk.len(), other.len()), (3, 1), "{reqs:#?}");
    assert!(
        disk.iter().all(|(k, _)| *k == disk[0].0),
        "one thread per group: {disk:#?}"
    );
    assert_ne!(disk[0].0, other[0].0, "another group, another thread");
    assert!(disk[0].1.starts_with("*[FIRING:1] Disk"), "{}", disk[0].1);
    assert!(disk[1].1.starts_with("*[FIRING:2] Disk"), "{}", disk[1].1);
    assert!(disk[2].1.starts_with("*[RESOLVED] Disk"), "{}", disk[2].1);
    // The message name Google answers with is kept.
    let delivered = wait_for(WAIT, "4 delivered", || async {
        let v = app
            .notifications("state=delivered&integration=googlechat")
            .await;
        (v.len() == 4).then_some(v)
    })
    .await;
    assert_eq!(
        delivered[0]["platform_message_id"],
        "spaces/AAAA1234/messages/M1"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_errors_and_server_errors_are_retried_client_errors_dead() {
    let chat = gchat_mock().await;
    chat.push(
        Reply::status(
            429,
            r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#,
        )
        .with_header("Retry-After", "1"),
    );
    chat.push(Reply::status(
        503,
        r#"{"error":{"code":503,"status":"UNAVAILABLE"}}"#,
    ));
    let app = TestApp::start(&config(&receiver(&url(&chat), ""))).await;
    app.post_json(
        "/webhook",
        &webhook(vec![alert(&[("alertname", "Busy")], "firing")]),
    )
    .await;
    wait_for(WAIT, "429, 503, success", || async {
        (chat.count() >= 3).then_some(())
    })
    .await;
    let r = chat.requests();
    assert!(
        r[1].at - r[0].at >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    wait_for(WAIT, "delivered", || async {
        let v = app
            .notifications("state=delivered&integration=googlechat")
            .await;
        (v.first().is_some_and(|n| n["attempts"] == 3)).then_some(())
    })
    .await;

    chat.push(Reply::status(
        400,
        r#"{"error":{"code":400,"message":"Invalid JSON payload","status":"INVALID_ARGUMENT"}}"#,
    ));
    app.post_json(
        "/webhook",
        &webhook(vec![alert(&[("alertname", "Bad")], "firing")]),
    )
    .await;
    let dead = wait_for(WAIT, "dead letter", || async {
        let v = app.notifications("state=dead").await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    let err = dead[0]["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("400") && err.contains("INVALID_ARGUMENT"),
        "{err}"
    );
    assert!(!err.contains("s3cr3tT0ken"), "{err}");
    assert_eq!(dead[0]["attempts"], 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_labels_cannot_mention_or_format_and_text_fits() {
    let chat = gchat_mock().await;
    let app = TestApp::start(&config(&receiver(&url(&chat), ""))).await;
    let long = "é".repeat(2_000);
    let mut alerts = vec![alert(
        &[
            ("alertname", "Evil"),
            (
                "instance",
                "<users/all> *bold* _it_ `c` <http://evil.test|click>",
            ),
            ("job", "node_exporter"),
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
    wait_for(WAIT, "the message", || async {
        (chat.count() >= 1).then_some(())
    })
    .await;
    assert_eq!(chat.violations(), Vec::<String>::new());
    let text = chat.requests()[0].json()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains(
            "<\u{200B}users/all> \u{200B}*bold\u{200B}* \u{200B}_it\u{200B}_ \u{200B}`c\u{200B}` <\u{200B}http://evil.test|click>"
        ),
        "{}",
        &text[..400.min(text.len())]
    );
    assert!(
        text.contains("job=node_exporter"),
        "words keep their underscores"
    );
    assert!(text.ends_with("more alerts"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_template_and_url_file() {
    let chat = gchat_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gchat-url");
    std::fs::write(&file, format!("{}\n", url(&chat))).unwrap();
    let app = TestApp::start(&config(&format!(
        "  - name: gchat\n    googlechat_configs:\n      - url_file: {}\n        send_resolved: false\n        text: '{{{{ .Status }}}}: {{{{ len .Alerts }}}}'\n",
        file.display()
    )))
    .await;
    app.post_json(
        "/webhook",
        &webhook(vec![alert(&[("alertname", "T")], "firing")]),
    )
    .await;
    wait_for(WAIT, "the message", || async {
        (chat.count() >= 1).then_some(())
    })
    .await;
    assert_eq!(chat.requests()[0].json()["text"], "firing: 1");
    assert_eq!(chat.violations(), Vec::<String>::new());
    app.stop().await;
}
