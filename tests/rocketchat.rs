//! Rocket.Chat end to end: alerts go in through `/webhook`, the real router groups and
//! delivers them to a local mock of the REST API, which checks every request against the
//! documented schema and limits (`X-User-Id` / `X-Auth-Token`, JSON, known keys only,
//! `channel` or `roomId`, texts ≤ 5000 characters, no mention of everyone).
mod common;
use alert_router::config::Config;
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const USER: &str = "uSeRiD4242";
const TOKEN: &str = "pAt-SECRET-token";

fn config(receivers: &str) -> String {
    format!(
        "delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: rc\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n\
         receivers:\n{receivers}"
    )
}

fn receiver(api: &str, extra: &str) -> String {
    format!(
        "  - name: rc\n    rocketchat_configs:\n      - api_url: '{api}'\n        token_id: '{USER}'\n        token: '{TOKEN}'\n        channel: '#alerts'\n        send_resolved: true\n{extra}"
    )
}

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

/// A mention Rocket.Chat would notify: `@name` at the start or after white space.
fn mentions(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == '@' && (i == 0 || chars[i - 1].is_whitespace() || chars[i - 1] == '>') {
            let name: String = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// The REST API's acceptance rules for `chat.postMessage` and `chat.update`.
fn rest_api(r: &Received) -> Result<(), String> {
    let h = |k: &str| r.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    if h("x-user-id") != USER || h("x-auth-token") != TOKEN {
        return Err("You must be logged in to do this.".into());
    }
    if !h("content-type").starts_with("application/json") {
        return Err(format!("content-type {:?}", h("content-type")));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("bad JSON: {e}"))?;
    let o = v.as_object().ok_or("not an object")?;
    let text = |v: &Value, what: &str| -> Result<(), String> {
        if let Some(s) = v.as_str() {
            if utf16(s) > 5000 {
                return Err(format!("error-message-size-exceeded: {what} {}", utf16(s)));
            }
            if let Some(m) = mentions(s)
                .into_iter()
                .find(|m| ["all", "here", "channel", "everyone"].contains(&m.as_str()))
            {
                return Err(format!("mention of @{m} in {what}"));
            }
        }
        Ok(())
    };
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/v1/chat.postMessage") => {
            let allowed = [
                "channel",
                "roomId",
                "text",
                "alias",
                "emoji",
                "avatar",
                "attachments",
                "customFields",
            ];
            if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(format!("Match error: unknown key {k}"));
            }
            if !o.contains_key("channel") && !o.contains_key("roomId") {
                return Err("error-invalid-channel".into());
            }
            text(&v["text"], "text")?;
            for a in v["attachments"].as_array().into_iter().flatten() {
                text(&a["text"], "attachment text")?;
                if utf16(a["title"].as_str().unwrap_or("")) > 1024 {
                    return Err("attachment title too long".into());
                }
            }
        }
        ("POST", "/api/v1/chat.update") => {
            for k in ["roomId", "msgId", "text"] {
                if !v[k].is_string() {
                    return Err(format!("Match error: {k} required"));
                }
            }
            if let Some(k) = o.keys().find(|k| {
                !["roomId", "msgId", "text", "previewUrls", "customFields"].contains(&k.as_str())
            }) {
                return Err(format!("Match error: unknown key {k}"));
            }
            text(&v["text"], "text")?;
        }
        (m, p) => return Err(format!("not found: {m} {p}")),
    }
    Ok(())
}

fn posted(id: &str) -> Reply {
    Reply::ok(
        &json!({"ts": 1, "channel": "alerts", "message": {"_id": id, "rid": "GENERAL", "msg": "", "u": {"_id": USER, "username": "bot"}}, "success": true})
            .to_string(),
    )
}

async fn mock() -> MockServer {
    MockServer::start(posted("m1"), Some(Arc::new(rest_api))).await
}

async fn fire(app: &TestApp, alerts: Vec<Value>) {
    assert_eq!(
        app.post_json("/webhook", &webhook(alerts)).await.status(),
        200
    );
}

async fn wait_requests(m: &MockServer, n: usize, what: &str) -> Vec<Received> {
    wait_for(WAIT, what, || async {
        (m.count() >= n).then(|| m.requests())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_escape_labels_fit_limits_and_use_config() {
    let rc = mock().await;
    let app = TestApp::start(&config(&receiver(
        &rc.url(""),
        "        emoji: ':rotating_light:'\n        icon_url: 'https://icons.test/bot.png'\n        fields:\n          - title: Severity\n            value: '{{ .CommonLabels.severity }}'\n        short_fields: true\n        actions:\n          - type: button\n            text: Runbook\n            url: 'https://runbooks.test/{{ .CommonLabels.alertname }}'\n",
    )))
    .await;
    let huge = "@all *x* ".repeat(1500);
    let mut alerts = vec![alert(
        &[
            ("alertname", "Evil"),
            (
                "instance",
                "@all @here [x](http://evil) *bold* <http://evil|y>",
            ),
            ("job", &huge),
            ("severity", "page"),
        ],
        "firing",
    )];
    for i in 0..400 {
        alerts.push(alert(
            &[
                ("alertname", "Many"),
                ("instance", &format!("host-{i:03}-{}", "_".repeat(60))),
            ],
            "firing",
        ));
    }
    fire(&app, alerts).await;
    let reqs = wait_requests(&rc, 2, "2 Rocket.Chat messages").await;
    assert_eq!(rc.violations(), Vec::<String>::new());
    let bodies: Vec<Value> = reqs.iter().map(Received::json).collect();
    for b in &bodies {
        assert_eq!(b["channel"], "#alerts");
        assert_eq!(b["emoji"], ":rotating_light:");
        assert_eq!(b["avatar"], "https://icons.test/bot.png");
        assert_eq!(b["attachments"][0]["color"], "red");
    }
    let find = |part: &str| {
        bodies
            .iter()
            .find(|b| {
                b["attachments"][0]["title"]
                    .as_str()
                    .unwrap()
                    .contains(part)
            })
            .unwrap_or_else(|| panic!("no message titled {part:?}"))["attachments"][0]
            .clone()
    };
    let evil = find("Evil");
    let text = evil["text"].as_str().unwrap();
    assert!(text.contains("instance=@\u{2060}all @\u{2060}here [x]\u{2060}(http://evil) \\*bold\\* <\u{2060}http://evil|y>"), "{text}");
    assert!(text.contains('…'), "the long label is cut");
    assert_eq!(
        evil["fields"],
        json!([{"short": true, "title": "Severity", "value": "page"}])
    );
    assert_eq!(evil["actions"][0]["url"], "https://runbooks.test/Evil");
    assert_eq!(evil["actions"][0]["type"], "button");
    let many = find("Many");
    let text = many["text"].as_str().unwrap();
    assert!(utf16(text) <= 5000);
    let shown = text.lines().filter(|l| l.starts_with("🔥 *Many*")).count();
    assert!((5..400).contains(&shown), "{shown}");
    assert!(text.ends_with(&format!("…and {} more alerts", 400 - shown)));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_wait_for_the_reset_and_server_errors_are_retried() {
    let rc = mock().await;
    let app = TestApp::start(&config(&receiver(&rc.url(""), ""))).await;
    // The reset (absolute epoch milliseconds) is 2.5 s away; the error text's "wait 1
    // seconds" is only a fallback for answers without the header.
    let reset_at = std::time::Instant::now() + Duration::from_millis(2500);
    let reset = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000 + 2500;
    rc.push(
        Reply::status(429, r#"{"success":false,"error":"Error, too many requests. Please slow down. You must wait 1 seconds before trying this endpoint again. [error-too-many-requests]"}"#)
            .with_header("X-RateLimit-Limit", "10")
            .with_header("X-RateLimit-Remaining", "0")
            .with_header("X-RateLimit-Reset", &reset.to_string()),
    );
    rc.push(Reply::status(503, "Service Unavailable"));
    fire(&app, vec![alert(&[("alertname", "Slow")], "firing")]).await;
    let n = wait_for(WAIT, "delivered", || async {
        app.notifications("state=delivered")
            .await
            .into_iter()
            .next()
    })
    .await;
    let reqs = rc.requests();
    assert_eq!(reqs.len(), 3, "429, 503, then delivered");
    assert!(
        reqs[1].at + Duration::from_millis(50) >= reset_at,
        "retried {:?} before the reset",
        reset_at - reqs[1].at
    );
    assert!(
        reqs[2].at - reqs[1].at < Duration::from_millis(1500),
        "the 503 is retried with the short backoff"
    );
    assert_eq!(n["attempts"], 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_client_errors_are_dead_letters_without_the_tokens() {
    let rc = MockServer::start(
        Reply::status(401, &format!(r#"{{"success":false,"status":"error","error":"You must be logged in to do this. ({TOKEN})"}}"#)),
        None,
    )
    .await;
    let app = TestApp::start(&config(&receiver(&rc.url(""), ""))).await;
    fire(&app, vec![alert(&[("alertname", "Locked")], "firing")]).await;
    let dead = wait_for(WAIT, "dead letter", || async {
        app.notifications("state=dead").await.into_iter().next()
    })
    .await;
    let err = dead["last_error"].as_str().unwrap();
    assert!(err.contains("401") && err.contains("logged in"), "{err}");
    assert_eq!(dead["attempts"], 1);

    // `success: false` inside a 200 is an error too.
    *rc.default_reply.lock().unwrap() = Reply::ok(
        r#"{"success":false,"error":"error-invalid-channel","errorType":"error-invalid-channel"}"#,
    );
    fire(&app, vec![alert(&[("alertname", "Nowhere")], "firing")]).await;
    wait_for(WAIT, "2 dead letters", || async {
        (app.notifications("state=dead").await.len() == 2).then_some(())
    })
    .await;
    let all = app
        .get_json("/admin/v1/notifications?state=dead")
        .await
        .to_string();
    assert!(all.contains("error-invalid-channel"), "{all}");
    for path in ["/admin/v1/notifications?state=dead", "/admin/v1/receivers"] {
        let text = app.get_json(path).await.to_string();
        assert!(
            !text.contains(TOKEN) && !text.contains(USER),
            "{path}: {text}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_message_edits_one_message_across_a_restart_and_reposts_when_gone() {
    let rc = mock().await;
    rc.push(posted("first"));
    let yaml = config(&receiver(&rc.url(""), "        update_message: true\n"));
    let app = TestApp::start(&yaml).await;
    let a = |i: &str, s: &str| alert(&[("alertname", "Disk"), ("instance", i)], s);
    let updated = || Reply::ok(r#"{"message":{"_id":"x","rid":"GENERAL"},"success":true}"#);
    rc.default_reply.lock().unwrap().clone_from(&updated());

    fire(&app, vec![a("a", "firing")]).await;
    let reqs = wait_requests(&rc, 1, "the first message").await;
    assert_eq!(reqs[0].path, "/api/v1/chat.postMessage");
    let first = reqs[0].json();
    assert!(
        first.get("attachments").is_none(),
        "an editable message carries its content in text"
    );
    assert!(
        first["text"]
            .as_str()
            .unwrap()
            .starts_with("🔥 *[FIRING:1] Disk"),
        "{first}"
    );

    fire(&app, vec![a("a", "firing"), a("b", "firing")]).await;
    let reqs = wait_requests(&rc, 2, "the first edit").await;
    assert_eq!(reqs[1].path, "/api/v1/chat.update");
    let e = reqs[1].json();
    assert_eq!(
        (e["roomId"].as_str(), e["msgId"].as_str()),
        (Some("GENERAL"), Some("first"))
    );
    assert!(e["text"].as_str().unwrap().contains("[FIRING:2]"), "{e}");
    wait_for(WAIT, "2 delivered", || async {
        (app.notifications("state=delivered").await.len() == 2).then_some(())
    })
    .await;

    let dir = app.stop().await;
    let app = TestApp::start_in(dir, &yaml).await;
    fire(
        &app,
        vec![a("a", "firing"), a("b", "firing"), a("c", "firing")],
    )
    .await;
    let reqs = wait_requests(&rc, 3, "the edit after the restart").await;
    assert_eq!(reqs[2].path, "/api/v1/chat.update");
    assert_eq!(reqs[2].json()["msgId"], "first");

    // Deleted meanwhile: Rocket.Chat answers 400, a new message replaces it.
    rc.push(Reply::status(
        400,
        r#"{"success":false,"error":"No message found with the id of \"first\"."}"#,
    ));
    rc.push(posted("second"));
    fire(
        &app,
        vec![
            a("a", "firing"),
            a("b", "firing"),
            a("c", "firing"),
            a("d", "firing"),
        ],
    )
    .await;
    let reqs = wait_requests(&rc, 5, "the failed edit and the new message").await;
    assert_eq!(reqs[3].path, "/api/v1/chat.update");
    assert_eq!(reqs[4].path, "/api/v1/chat.postMessage");

    fire(
        &app,
        vec![
            a("a", "resolved"),
            a("b", "resolved"),
            a("c", "resolved"),
            a("d", "resolved"),
        ],
    )
    .await;
    let reqs = wait_requests(&rc, 6, "the resolved edit").await;
    assert_eq!(reqs[5].path, "/api/v1/chat.update");
    let e = reqs[5].json();
    assert_eq!(e["msgId"], "second");
    assert!(
        e["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ *[RESOLVED] Disk*"),
        "{e}"
    );
    wait_for(WAIT, "5 delivered", || async {
        (app.notifications("state=delivered").await.len() == 5).then_some(())
    })
    .await;
    assert_eq!(rc.violations(), Vec::<String>::new());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rc.count(), 6, "nothing else was sent");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_update_message_each_notification_is_a_new_message() {
    let rc = mock().await;
    let app = TestApp::start(&config(&receiver(&rc.url(""), ""))).await;
    let a = |i: &str, s: &str| alert(&[("alertname", "Disk"), ("instance", i)], s);
    fire(&app, vec![a("a", "firing")]).await;
    wait_requests(&rc, 1, "the first message").await;
    fire(&app, vec![a("a", "firing"), a("b", "firing")]).await;
    wait_requests(&rc, 2, "the second message").await;
    fire(&app, vec![a("a", "resolved"), a("b", "resolved")]).await;
    let reqs = wait_requests(&rc, 3, "the resolved message").await;
    assert!(reqs.iter().all(|r| r.path == "/api/v1/chat.postMessage"));
    assert_eq!(reqs[2].json()["attachments"][0]["color"], "green");
    app.stop().await;
}

#[test]
fn an_alertmanager_receiver_block_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let yaml = "route:\n  receiver: rocket\nreceivers:\n  - name: rocket\n    rocketchat_configs:\n      - api_url: https://chat.example.com\n        token_id: abcdef\n        token_file: token\n        channel: '#ops'\n        emoji: ':fire:'\n        icon_url: https://example.com/i.png\n        image_url: https://example.com/img.png\n        thumb_url: https://example.com/t.png\n        link_names: true\n        short_fields: true\n        fields:\n          - title: severity\n            value: critical\n            short: false\n        actions:\n          - type: button\n            text: Silence\n            url: https://am.example.com/#/silences/new\n            msg: silenced\n        send_resolved: true\n        http_config:\n          follow_redirects: true\n";
    let path = dir.path().join("alertmanager.yml");
    std::fs::write(&path, yaml).unwrap();
    let c = Config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let r = &c.receivers[0].rocketchat_configs[0];
    assert_eq!(r.token.as_ref().unwrap().expose(), TOKEN);
    assert!(r.send_resolved && !r.update_message);
    assert_eq!(c.receivers[0].integrations(), vec![("rocketchat", 0)]);

    let missing = yaml.replace("        token_id: abcdef\n", "");
    std::fs::write(&path, missing).unwrap();
    let e = Config::load_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("rocketchat_configs[0]") && e.contains("token_id"),
        "{e}"
    );
    let unknown = yaml.replace("link_names: true", "link_name: true");
    std::fs::write(&path, unknown).unwrap();
    assert!(Config::load_file(&path).is_err());
}
