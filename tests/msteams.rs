//! Legacy Teams connectors (`msteams_configs`) end to end: the real router posts
//! MessageCards to a mock standing in for an Office 365 connector, which checks the card
//! and answers like the connector — `1` on success, error texts inside HTTP 200.
mod common;
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const TEAMS_MAX_BYTES: usize = 28 * 1024;

fn config(url: &str) -> String {
    format!(
        "delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: teams\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n\
         receivers:\n  - name: teams\n    msteams_configs:\n      - webhook_url: '{url}'\n"
    )
}

/// What a connector accepts: a JSON MessageCard with `@type`, `@context`, a hex
/// `themeColor`, a summary or text, under ~28 KB.
fn connector_schema(r: &Received) -> Result<(), String> {
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if r.method != "POST" || !ct.starts_with("application/json") {
        return Err(format!("{} with content-type {ct:?}", r.method));
    }
    if r.body.len() > TEAMS_MAX_BYTES {
        return Err(format!("413 Request Entity too large: {}", r.body.len()));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("bad JSON: {e}"))?;
    if v["@type"] != "MessageCard" || v["@context"].as_str().is_none() {
        return Err("not a MessageCard".into());
    }
    let color = v["themeColor"].as_str().unwrap_or("");
    if color.len() != 6 || !color.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("themeColor {color:?}"));
    }
    if v["summary"].as_str().unwrap_or("").is_empty() && v["text"].as_str().unwrap_or("").is_empty()
    {
        return Err("Summary or Text is required.".into());
    }
    Ok(())
}

async fn connector_mock() -> MockServer {
    MockServer::start(Reply::ok("1"), Some(Arc::new(connector_schema))).await
}

async fn fire(app: &TestApp, alerts: Vec<Value>) {
    assert_eq!(
        app.post_json("/webhook", &webhook(alerts)).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_are_delivered_escaped_and_within_limits() {
    let teams = connector_mock().await;
    let app = TestApp::start(&config(&teams.url("/webhookb2/abc/IncomingWebhook/def"))).await;
    fire(
        &app,
        vec![alert(
            &[("alertname", "DiskFull"), ("instance", "db1")],
            "firing",
        )],
    )
    .await;
    let long = "@everyone <b>*bold*</b> [x](http://evil) ".repeat(300);
    let hostile: Vec<Value> = (0..300)
        .map(|i| {
            alert(
                &[
                    ("alertname", "<b>Hostile</b> [x](http://evil)"),
                    ("instance", &format!("{long}{i}")),
                ],
                "firing",
            )
        })
        .collect();
    fire(&app, hostile).await;
    wait_for(WAIT, "2 cards", || async {
        (teams.count() >= 2).then_some(())
    })
    .await;
    assert_eq!(teams.violations(), Vec::<String>::new());
    let cards: Vec<Value> = teams.requests().iter().map(Received::json).collect();
    assert_eq!(cards.len(), 2);
    let normal = cards
        .iter()
        .find(|c| c["summary"].as_str().unwrap().contains("DiskFull"))
        .unwrap();
    assert_eq!(normal["themeColor"], "8C1A1A");
    assert_eq!(normal["summary"], "[FIRING:1] DiskFull (db1)");
    assert!(
        normal["text"]
            .as_str()
            .unwrap()
            .starts_with("- 🔥 **DiskFull** · instance=db1"),
        "{normal}"
    );
    let hostile = cards
        .iter()
        .find(|c| c["summary"].as_str().unwrap().contains("Hostile"))
        .unwrap();
    assert!(serde_json::to_vec(hostile).unwrap().len() <= 28_000);
    let text = hostile["text"].as_str().unwrap();
    assert!(
        !text.contains("<b>") && !text.contains("[x](") && !text.contains(" *bold*"),
        "{text}"
    );
    let shown = text.lines().filter(|l| l.starts_with("- 🔥")).count();
    assert!((1..300).contains(&shown));
    assert!(
        text.ends_with(&format!("…and {} more alerts", 300 - shown)),
        "{text}"
    );
    let title = hostile["title"].as_str().unwrap();
    assert!(
        title.starts_with("\\[FIRING:300\\] &lt;b&gt;Hostile&lt;/b&gt; \\[x\\]"),
        "{title}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_in_a_200_body_and_server_errors_are_retried() {
    let teams = connector_mock().await;
    teams.push(Reply::status(429, "").with_header("Retry-After", "1"));
    teams.push(Reply::ok(
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi",
    ));
    teams.push(Reply::status(503, "Service Unavailable"));
    let app = TestApp::start(&config(&teams.url("/webhookb2/x"))).await;
    fire(&app, vec![alert(&[("alertname", "Flaky")], "firing")]).await;
    let n = wait_for(WAIT, "delivered", || async {
        app.notifications("state=delivered")
            .await
            .into_iter()
            .next()
    })
    .await;
    let reqs = teams.requests();
    assert_eq!(reqs.len(), 4, "429, 200+error text, 503, then 1");
    assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(950));
    assert_eq!(n["attempts"], 4);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_dead_lettered_even_inside_a_200() {
    // HTTP 200 with an error text and no "1": a failure, not retried.
    let teams = MockServer::start(Reply::ok("Summary or Text is required."), None).await;
    let app = TestApp::start(&config(&teams.url("/webhookb2/S3CR3T"))).await;
    fire(&app, vec![alert(&[("alertname", "Rejected")], "firing")]).await;
    let dead = wait_for(WAIT, "dead letter", || async {
        app.notifications("state=dead").await.into_iter().next()
    })
    .await;
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("Summary or Text is required"),
        "{dead}"
    );
    assert_eq!(dead["attempts"], 1);
    // A plain 4xx too.
    *teams.default_reply.lock().unwrap() = Reply::status(400, "Bad payload");
    fire(&app, vec![alert(&[("alertname", "Rejected2")], "firing")]).await;
    let dead = wait_for(WAIT, "second dead letter", || async {
        let d = app.notifications("state=dead").await;
        (d.len() == 2).then_some(d)
    })
    .await;
    assert!(dead
        .iter()
        .any(|d| d["last_error"].as_str().unwrap().contains("400")));
    assert!(!serde_json::to_string(&dead).unwrap().contains("S3CR3T"));
    app.stop().await;
}

#[test]
fn alertmanager_receiver_block_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertmanager.yml");
    std::fs::write(
        &path,
        "route:\n  receiver: teams\nreceivers:\n  - name: teams\n    msteams_configs:\n\
         \x20     - webhook_url: 'https://example.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d'\n\
         \x20       title: 'Alerts'\n        summary: 'Summary'\n        text: 'Text'\n        send_resolved: true\n\
         \x20       http_config: {follow_redirects: true}\n",
    )
    .unwrap();
    let c = alert_router::config::Config::load_file(&path).unwrap();
    assert_eq!(c.receivers[0].msteams_configs.len(), 1);
    assert_eq!(
        c.receivers[0].msteams_configs[0].summary.as_deref(),
        Some("Summary")
    );
}
