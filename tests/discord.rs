//! Discord end to end: alerts go in through `/webhook`, the real router groups them and
//! delivers to a local server standing in for Discord's webhook API, which checks every
//! request against Discord's documented format and limits.
mod common;
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const HOOK: &str = "/api/webhooks/123/T0KEN-s3cr3t";

fn config(receivers: &str) -> String {
    format!(
        "delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: discord\n  group_by: [alertname]\n  group_wait: 50ms\n  group_interval: 1s\n\
         receivers:\n{receivers}"
    )
}

fn receiver(url: &str, extra: &str) -> String {
    format!("  - name: discord\n    discord_configs:\n      - webhook_url: '{url}'\n{extra}")
}

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

/// What Discord's execute/edit webhook endpoints accept (delivery-apis.md §2): JSON, at
/// least content or an embed, content ≤ 2000, ≤ 10 embeds, title ≤ 256, description ≤
/// 4096, ≤ 6000 across embeds, username ≤ 80 — plus what the router promises: mentions
/// never parsed, POSTs with `?wait=true`, edits on `…/messages/{id}`.
fn discord_limits(r: &Received) -> Result<(), String> {
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(format!("content-type {ct:?}"));
    }
    let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
    match r.method.as_str() {
        "POST" if path == HOOK && query == "wait=true" => {}
        "PATCH" if path.starts_with(&format!("{HOOK}/messages/")) && query.is_empty() => {}
        m => return Err(format!("unexpected {m} {}", r.path)),
    }
    let v: Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("50109 invalid JSON: {e}"))?;
    if v["allowed_mentions"] != serde_json::json!({"parse": []}) {
        return Err(format!("allowed_mentions {}", v["allowed_mentions"]));
    }
    let content = v["content"].as_str().unwrap_or("");
    let embeds = v["embeds"].as_array().cloned().unwrap_or_default();
    if content.is_empty() && embeds.is_empty() {
        return Err("50006 empty message".into());
    }
    if utf16(content) > 2000 || embeds.len() > 10 {
        return Err("50035 content or embeds too long".into());
    }
    let mut total = 0;
    for e in &embeds {
        let title = e["title"].as_str().unwrap_or("");
        let desc = e["description"].as_str().unwrap_or("");
        let footer = e["footer"]["text"].as_str().unwrap_or("");
        if utf16(title) > 256 || utf16(desc) > 4096 || utf16(footer) > 2048 {
            return Err(format!("50035 embed field too long: {}", utf16(desc)));
        }
        if !e["color"].is_u64() || e["color"].as_u64().unwrap() > 0xFFFFFF {
            return Err(format!("bad color {}", e["color"]));
        }
        total += utf16(title) + utf16(desc) + utf16(footer);
    }
    if total > 6000 {
        return Err(format!("50035 embeds total {total}"));
    }
    if let Some(u) = v["username"].as_str() {
        if u.is_empty() || utf16(u) > 80 {
            return Err(format!("bad username {u:?}"));
        }
    }
    Ok(())
}

async fn discord_mock(id: &str) -> MockServer {
    let body = format!(r#"{{"id":"{id}","channel_id":"42","webhook_id":"123"}}"#);
    MockServer::start(Reply::ok(&body), Some(Arc::new(discord_limits))).await
}

fn calls(m: &MockServer) -> Vec<String> {
    m.requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

async fn wait_calls(m: &MockServer, n: usize, what: &str) -> Vec<String> {
    wait_for(WAIT, what, || async { (m.count() >= n).then(|| calls(m)) }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_message_edits_one_message_across_an_episode_and_a_restart() {
    let discord = discord_mock("1001").await;
    let yaml = config(&receiver(
        &discord.url(HOOK),
        "        update_message: true\n",
    ));
    let app = TestApp::start(&yaml).await;
    let a = alert(&[("alertname", "Disk"), ("instance", "a")], "firing");
    let b = alert(&[("alertname", "Disk"), ("instance", "b")], "firing");
    app.post_json("/webhook", &webhook(vec![a.clone()])).await;
    wait_calls(&discord, 1, "the first post").await;
    app.post_json("/webhook", &webhook(vec![a.clone(), b.clone()]))
        .await;
    let c = wait_calls(&discord, 2, "the edit for the joining alert").await;
    assert_eq!(
        c,
        [
            format!("POST {HOOK}?wait=true"),
            format!("PATCH {HOOK}/messages/1001")
        ]
    );
    let edit = discord.requests()[1].json();
    assert!(
        edit["embeds"][0]["title"]
            .as_str()
            .unwrap()
            .contains("FIRING:2"),
        "{edit}"
    );
    assert!(edit.get("username").is_none());
    // The delivered notification records the message id.
    wait_for(WAIT, "two delivered notifications", || async {
        let v = app
            .notifications("state=delivered&integration=discord")
            .await;
        (v.len() == 2).then_some(())
    })
    .await;

    // Restart on the same store, then resolve: still an edit of the same message.
    let dir = app.stop().await;
    let app = TestApp::start_in(dir, &yaml).await;
    let resolved = |mut v: Value| {
        v["status"] = "resolved".into();
        v["endsAt"] = alert_router::alert::format_time(time::OffsetDateTime::now_utc()).into();
        v
    };
    app.post_json(
        "/webhook",
        &webhook(vec![resolved(a.clone()), resolved(b.clone())]),
    )
    .await;
    let c = wait_calls(&discord, 3, "the resolve edit after a restart").await;
    assert_eq!(c[2], format!("PATCH {HOOK}/messages/1001"));
    let last = discord.requests()[2].json();
    assert_eq!(last["embeds"][0]["color"], 0x2ECC71, "{last}");

    // A new episode starts a new message; when the message to edit is gone (404,
    // Unknown Message) a new one is posted and edited from then on.
    discord.push(Reply::ok(r#"{"id":"2002"}"#));
    app.post_json(
        "/webhook",
        &webhook(vec![alert(
            &[("alertname", "Disk"), ("instance", "c")],
            "firing",
        )]),
    )
    .await;
    let c = wait_calls(&discord, 4, "a new episode").await;
    assert_eq!(c[3], format!("POST {HOOK}?wait=true"));
    discord.push(Reply::status(
        404,
        r#"{"message":"Unknown Message","code":10008}"#,
    ));
    discord.push(Reply::ok(r#"{"id":"3003"}"#));
    app.post_json(
        "/webhook",
        &webhook(vec![
            alert(&[("alertname", "Disk"), ("instance", "c")], "firing"),
            alert(&[("alertname", "Disk"), ("instance", "d")], "firing"),
        ]),
    )
    .await;
    let c = wait_calls(&discord, 6, "edit 404 then a new post").await;
    assert_eq!(c[4], format!("PATCH {HOOK}/messages/2002"));
    assert_eq!(c[5], format!("POST {HOOK}?wait=true"));
    app.post_json(
        "/webhook",
        &webhook(vec![
            alert(&[("alertname", "Disk"), ("instance", "c")], "firing"),
            alert(&[("alertname", "Disk"), ("instance", "d")], "firing"),
            alert(&[("alertname", "Disk"), ("instance", "e")], "firing"),
        ]),
    )
    .await;
    let c = wait_calls(&discord, 7, "the next edit goes to the new message").await;
    assert_eq!(c[6], format!("PATCH {HOOK}/messages/3003"));
    assert_eq!(discord.violations(), Vec::<String>::new());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_update_message_every_notification_is_a_new_post() {
    let discord = discord_mock("1").await;
    let app = TestApp::start(&config(&receiver(&discord.url(HOOK), ""))).await;
    let a = alert(&[("alertname", "Cpu"), ("instance", "a")], "firing");
    let b = alert(&[("alertname", "Cpu"), ("instance", "b")], "firing");
    app.post_json("/webhook", &webhook(vec![a.clone()])).await;
    wait_calls(&discord, 1, "first post").await;
    app.post_json("/webhook", &webhook(vec![a, b])).await;
    let c = wait_calls(&discord, 2, "second post").await;
    assert_eq!(
        c,
        [
            format!("POST {HOOK}?wait=true"),
            format!("POST {HOOK}?wait=true")
        ]
    );
    assert_eq!(discord.violations(), Vec::<String>::new());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_server_errors_retried() {
    let discord = discord_mock("7").await;
    // Retry-After says 1 s, the JSON body (what Discord means) 1.5 s: the longer wins.
    discord.push(
        Reply::status(
            429,
            r#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#,
        )
        .with_header("Retry-After", "1")
        .with_header("Content-Type", "application/json"),
    );
    discord.push(Reply::status(502, "bad gateway"));
    let app = TestApp::start(&config(&receiver(&discord.url(HOOK), ""))).await;
    app.post_json(
        "/webhook",
        &webhook(vec![alert(&[("alertname", "Slow")], "firing")]),
    )
    .await;
    wait_calls(&discord, 3, "429, 502, then success").await;
    let r = discord.requests();
    let gap = r[1].at - r[0].at;
    assert!(gap >= Duration::from_millis(1500), "retried after {gap:?}");
    let delivered = wait_for(WAIT, "delivered", || async {
        let v = app
            .notifications("state=delivered&integration=discord")
            .await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(delivered[0]["attempts"], 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_dead_letters_without_the_token() {
    let discord = MockServer::start(
        Reply::status(400, r#"{"code":50035,"message":"Invalid Form Body"}"#),
        None,
    )
    .await;
    let app = TestApp::start(&config(&receiver(&discord.url(HOOK), ""))).await;
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
        err.contains("400") && err.contains("Invalid Form Body"),
        "{err}"
    );
    assert!(!err.contains("T0KEN"), "{err}");
    assert_eq!(dead[0]["attempts"], 1);
    assert_eq!(discord.count(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_labels_cannot_ping_format_or_overflow() {
    let discord = discord_mock("5").await;
    let app = TestApp::start(&config(&receiver(
        &discord.url(HOOK),
        "        username: alert-bot\n        avatar_url: 'https://icons.test/a.png'\n        content: '{{ len .Alerts }} alerts'\n",
    )))
    .await;
    let long = "x".repeat(10_000);
    let mut alerts = vec![alert(
        &[
            ("alertname", "Evil"),
            (
                "instance",
                "@everyone <@123> **bold** [x](http://evil.test) `c`",
            ),
        ],
        "firing",
    )];
    for i in 0..200 {
        alerts.push(alert(
            &[("alertname", "Evil"), ("instance", &format!("{long}{i}"))],
            "firing",
        ));
    }
    assert_eq!(
        app.post_json("/webhook", &webhook(alerts)).await.status(),
        200
    );
    wait_calls(&discord, 1, "the message").await;
    assert_eq!(discord.violations(), Vec::<String>::new());
    let v = discord.requests()[0].json();
    assert_eq!(v["username"], "alert-bot");
    assert_eq!(v["avatar_url"], "https://icons.test/a.png");
    assert_eq!(v["content"], "201 alerts");
    let desc = v["embeds"][0]["description"].as_str().unwrap();
    assert!(
        !desc.contains("@everyone") && !desc.contains("<@1"),
        "{desc}"
    );
    assert!(
        desc.contains("@\u{200B}everyone \\<@\u{200B}123\\>"),
        "{desc}"
    );
    assert!(
        desc.contains("\\*\\*bold\\*\\* \\[x\\]\\(http://evil.test\\)"),
        "{desc}"
    );
    assert!(desc.contains("…"), "long values are cut");
    assert!(
        desc.ends_with("more alerts"),
        "{}",
        &desc[desc.len() - 60..]
    );
    app.stop().await;
}

#[test]
fn alertmanager_discord_block_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hook"),
        "https://discord.com/api/webhooks/1/abc\n",
    )
    .unwrap();
    let yaml = [
        "route:",
        "  receiver: d",
        "receivers:",
        "  - name: d",
        "    discord_configs:",
        "      - webhook_url_file: hook",
        "        title: Alerts",
        "        message: 'something happened'",
        "        content: ''",
        "        username: Alertmanager",
        "        avatar_url: 'https://a.test/x.png'",
        "        send_resolved: false",
        "        http_config: {follow_redirects: true}",
        "      - webhook_url: 'https://discord.com/api/webhooks/2/def'",
    ]
    .join("\n");
    let yaml = yaml.as_str();
    let c = alert_router::config::Config::load_str(yaml, "am.yml", dir.path()).unwrap();
    let d = &c.receivers[0].discord_configs;
    assert_eq!(
        d[0].webhook_url.as_ref().unwrap().expose(),
        "https://discord.com/api/webhooks/1/abc"
    );
    assert!(!d[0].send_resolved && d[1].send_resolved);
    let e = alert_router::config::Config::load_str(
        "route:\n  receiver: d\nreceivers:\n  - name: d\n    discord_configs: [{webhook_url: 'http://x/y', webhook_url_file: f}]\n",
        "am.yml",
        dir.path(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("set only one of webhook_url and webhook_url_file"),
        "{e}"
    );
}
