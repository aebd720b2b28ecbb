//! Webex (`webex_configs`) end to end: the real router posts to a mock of the Messages
//! API, which checks the bot token, the body (`roomId`, `markdown` ≤ 7,439 bytes) and the
//! method/path of posts and edits, and answers with message objects. Edits in place:
//! one post then edits of the same id, across a restart, a new post when the message is
//! gone, and new posts when `update_message` is off.
mod common;
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const ROOM: &str = "Y2lzY29zcGFyazovL3VzL1JPT00vYWJj";

fn config(api: &str, extra: &str) -> String {
    format!(
        "delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: webex\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n\
         receivers:\n  - name: webex\n    webex_configs:\n      - api_url: '{api}'\n        room_id: '{ROOM}'\n\
         \x20       http_config:\n          authorization:\n            credentials: B0TT0KEN\n{extra}"
    )
}

/// The Messages API: bearer token, JSON `{roomId, markdown}` (markdown ≤ 7439 bytes),
/// `POST /v1/messages` or `PUT /v1/messages/{id}`.
fn messages_api(r: &Received) -> Result<(), String> {
    let auth = r.headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some("Bearer B0TT0KEN") {
        return Err(format!("401: authorization {auth:?}"));
    }
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(format!("content-type {ct:?}"));
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/v1/messages") => {}
        ("PUT", p) if p.starts_with("/v1/messages/") && p.len() > 13 => {}
        (m, p) => return Err(format!("404: {m} {p}")),
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("bad JSON: {e}"))?;
    let o = v.as_object().ok_or("not an object")?;
    if o.keys().any(|k| k != "roomId" && k != "markdown") {
        return Err(format!("unexpected keys {v}"));
    }
    if v["roomId"] != ROOM {
        return Err(format!("roomId {}", v["roomId"]));
    }
    let md = v["markdown"].as_str().ok_or("markdown missing")?;
    if md.is_empty() || md.len() > 7439 {
        return Err(format!("markdown length {}", md.len()));
    }
    Ok(())
}

fn message(id: &str) -> Reply {
    Reply::ok(
        &json!({"id": id, "roomId": ROOM, "roomType": "group", "markdown": "x", "personId": "p", "created": "2024-05-01T10:00:00.000Z"})
            .to_string(),
    )
}

async fn webex_mock() -> MockServer {
    MockServer::start(message("DEFAULT"), Some(Arc::new(messages_api))).await
}

async fn fire(app: &TestApp, alerts: Vec<Value>) {
    assert_eq!(
        app.post_json("/webhook", &webhook(alerts)).await.status(),
        200
    );
}

async fn wait_requests(m: &MockServer, n: usize) {
    wait_for(WAIT, &format!("{n} Webex requests"), || async {
        (m.count() >= n).then_some(())
    })
    .await;
}

fn calls(m: &MockServer) -> Vec<String> {
    m.requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn markdown(r: &Received) -> String {
    r.json()["markdown"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_escaped_and_fit() {
    let webex = webex_mock().await;
    let app = TestApp::start(&config(&webex.url("/v1/messages"), "")).await;
    let long = "<@all> <@personEmail:boss@corp.test|Boss> *bold* [x](http://evil) ".repeat(200);
    let hostile: Vec<Value> = (0..200)
        .map(|i| {
            alert(
                &[
                    ("alertname", "<@all> **Hostile**"),
                    ("instance", &format!("{long}{i}")),
                ],
                "firing",
            )
        })
        .collect();
    fire(&app, hostile).await;
    wait_requests(&webex, 1).await;
    assert_eq!(webex.violations(), Vec::<String>::new());
    let md = markdown(&webex.requests()[0]);
    assert!(md.len() <= 7439);
    assert!(!md.contains("<@"), "mention injected: {md}");
    assert!(
        !md.contains("[x](") && !md.contains(" *bold*") && !md.contains(" **Hostile**"),
        "{md}"
    );
    assert!(
        md.starts_with("🔥 **\\[FIRING:200\\] &lt;@all&gt; \\*\\*Hostile\\*\\***"),
        "{md}"
    );
    let shown = md.lines().filter(|l| l.starts_with("- 🔥")).count();
    assert!((1..200).contains(&shown));
    assert!(
        md.contains(&format!("…and {} more alerts", 200 - shown)),
        "{md}"
    );
    assert!(md.ends_with(")"), "ends with the link to the alerts: {md}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_one_message_across_a_restart() {
    let webex = webex_mock().await;
    let yaml = config(&webex.url("/v1/messages"), "        update_message: true\n");
    let app = TestApp::start(&yaml).await;
    webex.push(message("MSG-1"));
    fire(
        &app,
        vec![alert(&[("alertname", "Disk"), ("instance", "a")], "firing")],
    )
    .await;
    wait_requests(&webex, 1).await;
    webex.push(message("MSG-1"));
    fire(
        &app,
        vec![alert(&[("alertname", "Disk"), ("instance", "b")], "firing")],
    )
    .await;
    wait_requests(&webex, 2).await;
    assert!(markdown(&webex.requests()[1]).starts_with("🔥 **\\[FIRING:2\\] Disk**"));

    // Restart on the same store: the message id survives.
    let dir = app.stop().await;
    let app = TestApp::start_in(dir, &yaml).await;
    webex.push(message("MSG-1"));
    fire(
        &app,
        vec![
            alert(&[("alertname", "Disk"), ("instance", "a")], "resolved"),
            alert(&[("alertname", "Disk"), ("instance", "b")], "resolved"),
        ],
    )
    .await;
    wait_for(WAIT, "the resolved edit", || async {
        webex
            .requests()
            .iter()
            .any(|r| markdown(r).starts_with("✅ **\\[RESOLVED\\]"))
            .then_some(())
    })
    .await;
    assert_eq!(webex.violations(), Vec::<String>::new());
    let c = calls(&webex);
    assert_eq!(c[0], "POST /v1/messages");
    assert!(
        c[1..].iter().all(|x| x == "PUT /v1/messages/MSG-1"),
        "{c:?}"
    );
    assert!(c.len() >= 3, "{c:?}");
    let last = markdown(webex.requests().last().unwrap());
    assert!(
        last.contains("- ✅ **Disk** · instance=a") && last.contains("- ✅ **Disk** · instance=b"),
        "{last}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_message_is_posted_again_then_edited() {
    let webex = webex_mock().await;
    let app = TestApp::start(&config(
        &webex.url("/v1/messages"),
        "        update_message: true\n",
    ))
    .await;
    webex.push(message("OLD"));
    fire(
        &app,
        vec![alert(&[("alertname", "Net"), ("instance", "a")], "firing")],
    )
    .await;
    wait_requests(&webex, 1).await;
    webex.push(Reply::status(
        404,
        r#"{"message":"Message not found","trackingId":"t"}"#,
    ));
    webex.push(message("NEW"));
    fire(
        &app,
        vec![alert(&[("alertname", "Net"), ("instance", "b")], "firing")],
    )
    .await;
    wait_requests(&webex, 3).await;
    webex.push(message("NEW"));
    fire(
        &app,
        vec![alert(&[("alertname", "Net"), ("instance", "c")], "firing")],
    )
    .await;
    wait_requests(&webex, 4).await;
    assert_eq!(
        calls(&webex),
        [
            "POST /v1/messages",
            "PUT /v1/messages/OLD",
            "POST /v1/messages",
            "PUT /v1/messages/NEW"
        ]
    );
    wait_for(WAIT, "3 delivered notifications", || async {
        (app.notifications("state=delivered").await.len() == 3).then_some(())
    })
    .await;
    assert!(app.notifications("state=dead").await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_update_message_every_notification_is_a_new_post() {
    let webex = webex_mock().await;
    let app = TestApp::start(&config(&webex.url("/v1/messages"), "")).await;
    fire(
        &app,
        vec![alert(&[("alertname", "Cpu"), ("instance", "a")], "firing")],
    )
    .await;
    wait_requests(&webex, 1).await;
    fire(
        &app,
        vec![alert(&[("alertname", "Cpu"), ("instance", "b")], "firing")],
    )
    .await;
    wait_requests(&webex, 2).await;
    assert_eq!(calls(&webex), ["POST /v1/messages", "POST /v1/messages"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_client_errors_dead_lettered() {
    let webex = webex_mock().await;
    webex.push(
        Reply::status(429, r#"{"message":"Too Many Requests"}"#).with_header("Retry-After", "1"),
    );
    webex.push(Reply::status(503, "unavailable"));
    let app = TestApp::start(&config(&webex.url("/v1/messages"), "")).await;
    fire(&app, vec![alert(&[("alertname", "Flaky")], "firing")]).await;
    let n = wait_for(WAIT, "delivered", || async {
        app.notifications("state=delivered")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(n["attempts"], 3);
    let reqs = webex.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_millis(950),
        "Retry-After ignored"
    );

    webex.push(Reply::status(400, r#"{"message":"Invalid roomId"}"#));
    fire(&app, vec![alert(&[("alertname", "Rejected")], "firing")]).await;
    let dead = wait_for(WAIT, "dead letter", || async {
        app.notifications("state=dead").await.into_iter().next()
    })
    .await;
    assert_eq!(dead["attempts"], 1);
    assert!(
        dead["last_error"].as_str().unwrap().contains("400"),
        "{dead}"
    );
    let everything = format!(
        "{dead}{}{}",
        app.get_json("/admin/v1/receivers").await,
        app.get_json("/admin/v1/status").await
    );
    assert!(!everything.contains("B0TT0KEN"), "token leaked");
    app.stop().await;
}

#[test]
fn alertmanager_receiver_block_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "T0KEN\n").unwrap();
    let path = dir.path().join("alertmanager.yml");
    std::fs::write(
        &path,
        "global:\n  webex_api_url: 'https://webex.internal.test/v1/messages'\n\
         route:\n  receiver: webex\nreceivers:\n  - name: webex\n    webex_configs:\n\
         \x20     - room_id: 'Y2lzY29zcGFyazovL3VzL1JPT00v'\n        send_resolved: false\n\
         \x20       http_config:\n          authorization:\n            type: Bearer\n            credentials_file: token\n\
         \x20     - room_id: r2\n        api_url: 'https://webexapis.com/v1/messages'\n        message: 'hello'\n\
         \x20       http_config:\n          authorization:\n            credentials: T0KEN\n",
    )
    .unwrap();
    let c = alert_router::config::Config::load_file(&path).unwrap();
    let w = &c.receivers[0].webex_configs;
    assert_eq!(
        w[0].api_url.as_deref(),
        Some("https://webex.internal.test/v1/messages")
    );
    assert_eq!(
        w[1].api_url.as_deref(),
        Some("https://webexapis.com/v1/messages")
    );
    assert!(!w[0].send_resolved && w[1].send_resolved);
    // Alertmanager requires the token.
    std::fs::write(
        &path,
        "route:\n  receiver: webex\nreceivers:\n  - name: webex\n    webex_configs:\n      - room_id: r\n",
    )
    .unwrap();
    let e = alert_router::config::Config::load_file(&path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("webex_configs[0]: http_config.authorization"),
        "{e}"
    );
}
