//! Telegram end to end: alerts go in through `/webhook`, the real router groups and
//! delivers them to a local mock of the Bot API, which checks every request against the
//! documented schema and limits (token in the path, JSON, integer `chat_id`, `text` of
//! 1–4096 characters after entity parsing, only Telegram's HTML tags and entities).
mod common;
use alert_router::config::Config;
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const TOKEN: &str = "123456:SECRET-bot_token";

fn config(receivers: &str) -> String {
    format!(
        "delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: tg\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n\
         receivers:\n{receivers}"
    )
}

fn receiver(api: &str, extra: &str) -> String {
    format!(
        "  - name: tg\n    telegram_configs:\n      - api_url: '{api}'\n        bot_token: '{TOKEN}'\n        chat_id: -1001\n{extra}"
    )
}

/// Telegram's HTML parser, as far as the checks need it: the length after entity
/// parsing, or why Telegram would answer "can't parse entities".
fn parse_html(s: &str) -> Result<usize, String> {
    let allowed = [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-spoiler",
        "tg-emoji",
        "span",
    ];
    let mut stack: Vec<String> = Vec::new();
    let mut n = 0;
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest.find('>').ok_or("can't parse entities: unclosed tag")?;
                let inner = &rest[1..end];
                let name: String = inner
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if !allowed.contains(&name.as_str()) {
                    return Err(format!("can't parse entities: unsupported tag {name:?}"));
                }
                if inner.starts_with('/') {
                    if stack.pop().as_deref() != Some(name.as_str()) {
                        return Err(format!("can't parse entities: unexpected </{name}>"));
                    }
                } else {
                    stack.push(name);
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let end = rest.find(';').ok_or("can't parse entities: bare &")?;
                let ent = &rest[..=end];
                if !["&lt;", "&gt;", "&amp;", "&quot;"].contains(&ent) && !ent.starts_with("&#") {
                    return Err(format!("can't parse entities: unknown entity {ent}"));
                }
                n += 1;
                rest = &rest[end + 1..];
            }
            '>' => return Err("can't parse entities: bare >".into()),
            c => {
                n += c.len_utf16();
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !stack.is_empty() {
        return Err(format!("can't parse entities: unclosed {stack:?}"));
    }
    Ok(n)
}

/// The Bot API's acceptance rules for `sendMessage` / `editMessageText`.
fn bot_api(r: &Received) -> Result<(), String> {
    if r.method != "POST" {
        return Err(format!("method {}", r.method));
    }
    let method = r
        .path
        .strip_prefix(&format!("/bot{TOKEN}/"))
        .ok_or_else(|| format!("Unauthorized: path {:?}", r.path.replace(TOKEN, "<token>")))?;
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(format!("content-type {ct:?}"));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("bad JSON: {e}"))?;
    if !v["chat_id"].is_i64() {
        return Err("Bad Request: chat_id is not an integer".into());
    }
    match method {
        "sendMessage" => {}
        "editMessageText" => {
            if !v["message_id"].is_i64() {
                return Err("Bad Request: message identifier is not specified".into());
            }
        }
        m => return Err(format!("Not Found: method {m}")),
    }
    let text = v["text"]
        .as_str()
        .ok_or("Bad Request: message text is empty")?;
    let len = match v["parse_mode"].as_str() {
        Some("HTML") => parse_html(text)?,
        None => text.encode_utf16().count(),
        Some(m) => return Err(format!("unexpected parse_mode {m}")),
    };
    if len == 0 {
        return Err("Bad Request: message text is empty".into());
    }
    if len > 4096 {
        return Err(format!("Bad Request: message is too long ({len})"));
    }
    Ok(())
}

fn sent(message_id: i64, chat: i64) -> Reply {
    Reply::ok(
        &json!({"ok": true, "result": {"message_id": message_id, "chat": {"id": chat, "type": "supergroup"}, "date": 1, "text": "x"}})
            .to_string(),
    )
}

fn api_error(code: u16, description: &str, parameters: Value) -> Reply {
    Reply::status(
        code,
        &json!({"ok": false, "error_code": code, "description": description, "parameters": parameters})
            .to_string(),
    )
}

async fn mock() -> MockServer {
    MockServer::start(sent(42, -1001), Some(Arc::new(bot_api))).await
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

fn method_of(r: &Received) -> String {
    r.path.rsplit('/').next().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_escape_labels_fit_limits_and_use_config() {
    let tg = mock().await;
    let app = TestApp::start(&config(&receiver(
        &tg.url(""),
        "        message_thread_id: 7\n        disable_notifications: true\n",
    )))
    .await;
    let huge = "<b>&".repeat(3000);
    let mut alerts = vec![alert(
        &[
            ("alertname", "Evil"),
            ("instance", "<b>x</b> @everyone [x](http://evil) *bold*"),
            ("job", &huge),
        ],
        "firing",
    )];
    for i in 0..300 {
        alerts.push(alert(
            &[
                ("alertname", "Many"),
                ("instance", &format!("host-{i:03}-{}", "é".repeat(50))),
            ],
            "firing",
        ));
    }
    fire(&app, alerts).await;
    let reqs = wait_requests(&tg, 2, "2 Telegram messages").await;
    assert_eq!(tg.violations(), Vec::<String>::new());
    let bodies: Vec<Value> = reqs.iter().map(Received::json).collect();
    for b in &bodies {
        assert_eq!(b["chat_id"], -1001);
        assert_eq!(b["parse_mode"], "HTML");
        assert_eq!(b["message_thread_id"], 7);
        assert_eq!(b["disable_notification"], true);
    }
    let find = |part: &str| {
        bodies
            .iter()
            .find(|b| b["text"].as_str().unwrap().contains(part))
            .unwrap_or_else(|| panic!("no message with {part:?}"))["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let evil = find("Evil");
    assert!(
        evil.contains("instance=&lt;b&gt;x&lt;/b&gt; @\u{2060}everyone [x](http://evil) *bold*"),
        "{evil}"
    );
    assert!(!evil.contains("@everyone"));
    assert!(evil.contains("…"), "the 12,000-character label is cut");
    let many = find("Many");
    assert!(
        many.starts_with("🔥 <b>[FIRING:300] Many</b>"),
        "{}",
        &many[..60]
    );
    let shown = many.lines().filter(|l| l.starts_with("🔥 <b>Many")).count();
    assert!((5..300).contains(&shown), "{shown}");
    assert!(
        many.ends_with(&format!("…and {} more alerts", 300 - shown)),
        "{}",
        &many[many.len() - 60..]
    );
    assert!(parse_html(&many).unwrap() <= 4096);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_waited_and_server_errors_retried() {
    let tg = mock().await;
    tg.push(api_error(
        429,
        "Too Many Requests: retry after 1",
        json!({"retry_after": 1}),
    ));
    tg.push(Reply::status(502, "<html>Bad Gateway</html>"));
    let app = TestApp::start(&config(&receiver(&tg.url(""), ""))).await;
    fire(&app, vec![alert(&[("alertname", "Slow")], "firing")]).await;
    let n = wait_for(WAIT, "delivered", || async {
        app.notifications("state=delivered")
            .await
            .into_iter()
            .next()
    })
    .await;
    let reqs = tg.requests();
    assert_eq!(reqs.len(), 3, "429, 502, then delivered");
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, not retry_after"
    );
    assert_eq!(n["attempts"], 3);
    assert_eq!(reqs[0].body, reqs[2].body);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_dead_letters_without_the_token() {
    let tg = MockServer::start(
        api_error(
            400,
            &format!("Bad Request: chat not found (POST /bot{TOKEN}/sendMessage)"),
            json!({}),
        ),
        Some(Arc::new(bot_api)),
    )
    .await;
    let app = TestApp::start(&config(&receiver(&tg.url(""), ""))).await;
    fire(&app, vec![alert(&[("alertname", "Nowhere")], "firing")]).await;
    let dead = wait_for(WAIT, "dead letter", || async {
        app.notifications("state=dead").await.into_iter().next()
    })
    .await;
    let err = dead["last_error"].as_str().unwrap();
    assert!(
        err.contains("400") && err.contains("chat not found"),
        "{err}"
    );
    assert_eq!(dead["attempts"], 1);
    for path in ["/admin/v1/notifications?state=dead", "/admin/v1/receivers"] {
        let text = app.get_json(path).await.to_string();
        assert!(!text.contains("SECRET-bot_token"), "{path}: {text}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_group_is_followed_at_once_and_kept() {
    let tg = mock().await;
    tg.push(api_error(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        json!({"migrate_to_chat_id": -100777}),
    ));
    let app = TestApp::start(&config(&receiver(&tg.url(""), ""))).await;
    fire(&app, vec![alert(&[("alertname", "One")], "firing")]).await;
    let reqs = wait_requests(&tg, 2, "the resend to the supergroup").await;
    assert_eq!(reqs[0].json()["chat_id"], -1001);
    assert_eq!(reqs[1].json()["chat_id"], -100777);
    assert!(
        reqs[1].at - reqs[0].at < Duration::from_millis(500),
        "resent at once"
    );
    fire(&app, vec![alert(&[("alertname", "Two")], "firing")]).await;
    let reqs = wait_requests(&tg, 3, "the next message").await;
    assert_eq!(reqs[2].json()["chat_id"], -100777, "the new chat is kept");
    wait_for(WAIT, "2 delivered", || async {
        (app.notifications("state=delivered").await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(app.notifications("state=dead").await.len(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_message_edits_one_message_across_a_restart_and_reposts_when_gone() {
    let tg = mock().await;
    tg.push(sent(101, -1001));
    let yaml = config(&receiver(&tg.url(""), "        update_message: true\n"));
    let app = TestApp::start(&yaml).await;
    let a = |i: &str, s: &str| alert(&[("alertname", "Disk"), ("instance", i)], s);

    fire(&app, vec![a("a", "firing")]).await;
    let reqs = wait_requests(&tg, 1, "the first message").await;
    assert_eq!(method_of(&reqs[0]), "sendMessage");

    fire(&app, vec![a("a", "firing"), a("b", "firing")]).await;
    let reqs = wait_requests(&tg, 2, "the first edit").await;
    assert_eq!(method_of(&reqs[1]), "editMessageText");
    let e = reqs[1].json();
    assert_eq!(
        (e["chat_id"].as_i64(), e["message_id"].as_i64()),
        (Some(-1001), Some(101))
    );
    assert!(e["text"].as_str().unwrap().contains("[FIRING:2]"), "{e}");
    wait_for(WAIT, "2 delivered", || async {
        (app.notifications("state=delivered").await.len() == 2).then_some(())
    })
    .await;

    // Restart on the same store: the group's message is remembered.
    let dir = app.stop().await;
    let app = TestApp::start_in(dir, &yaml).await;
    fire(
        &app,
        vec![a("a", "firing"), a("b", "firing"), a("c", "firing")],
    )
    .await;
    let reqs = wait_requests(&tg, 3, "the edit after the restart").await;
    assert_eq!(method_of(&reqs[2]), "editMessageText");
    assert_eq!(reqs[2].json()["message_id"], 101);

    // The message was deleted: the edit fails and a new message replaces it.
    tg.push(api_error(
        400,
        "Bad Request: message to edit not found",
        json!({}),
    ));
    tg.push(sent(202, -1001));
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
    let reqs = wait_requests(&tg, 5, "the failed edit and the new message").await;
    assert_eq!(method_of(&reqs[3]), "editMessageText");
    assert_eq!(method_of(&reqs[4]), "sendMessage");
    assert!(reqs[4].json()["text"]
        .as_str()
        .unwrap()
        .contains("[FIRING:4]"));

    // Resolved: the new message is edited, and "not modified" counts as success.
    tg.push(api_error(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same", json!({})));
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
    let reqs = wait_requests(&tg, 6, "the resolved edit").await;
    assert_eq!(method_of(&reqs[5]), "editMessageText");
    assert_eq!(reqs[5].json()["message_id"], 202);
    assert!(reqs[5].json()["text"]
        .as_str()
        .unwrap()
        .starts_with("✅ <b>[RESOLVED]"));
    wait_for(WAIT, "5 delivered", || async {
        (app.notifications("state=delivered").await.len() == 5).then_some(())
    })
    .await;
    assert_eq!(tg.violations(), Vec::<String>::new());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(tg.count(), 6, "nothing else was sent");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_update_message_each_notification_is_a_new_message() {
    let tg = mock().await;
    let app = TestApp::start(&config(&receiver(&tg.url(""), ""))).await;
    let a = |i: &str, s: &str| alert(&[("alertname", "Disk"), ("instance", i)], s);
    fire(&app, vec![a("a", "firing")]).await;
    wait_requests(&tg, 1, "the first message").await;
    fire(&app, vec![a("a", "firing"), a("b", "firing")]).await;
    wait_requests(&tg, 2, "the second message").await;
    fire(&app, vec![a("a", "resolved"), a("b", "resolved")]).await;
    let reqs = wait_requests(&tg, 3, "the resolved message").await;
    let methods: Vec<String> = reqs.iter().map(method_of).collect();
    assert_eq!(methods, ["sendMessage", "sendMessage", "sendMessage"]);
    assert!(reqs[2].json()["text"].as_str().unwrap().starts_with("✅"));
    app.stop().await;
}

#[test]
fn an_alertmanager_receiver_block_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bot-token"), format!("{TOKEN}\n")).unwrap();
    let yaml = "route:\n  receiver: telegram\nreceivers:\n  - name: telegram\n    telegram_configs:\n      - bot_token_file: bot-token\n        chat_id: -1001234567890\n        message_thread_id: 42\n        parse_mode: MarkdownV2\n        disable_notifications: false\n        send_resolved: false\n        http_config:\n          follow_redirects: true\n      - api_url: https://telegram.internal\n        bot_token: '123:abc'\n        chat_id: 5\n        parse_mode: ''\n";
    let path = dir.path().join("alertmanager.yml");
    std::fs::write(&path, yaml).unwrap();
    let c = Config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let t = &c.receivers[0].telegram_configs;
    assert_eq!(t[0].bot_token.as_ref().unwrap().expose(), TOKEN);
    assert_eq!(t[0].api_url.as_deref(), Some("https://api.telegram.org"));
    assert!(!t[0].send_resolved && t[1].send_resolved);
    assert_eq!(
        c.receivers[0].integrations(),
        vec![("telegram", 0), ("telegram", 1)]
    );

    let bad = yaml.replace("parse_mode: ''", "parse_mode: Html");
    std::fs::write(&path, bad).unwrap();
    let e = Config::load_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("telegram_configs[1]") && e.contains("parse_mode"),
        "{e}"
    );
    let missing = yaml.replace("        chat_id: 5\n", "");
    std::fs::write(&path, missing).unwrap();
    let e = Config::load_file(&path).unwrap_err().to_string();
    assert!(e.contains("chat_id"), "{e}");
    assert!(!e.contains("abc"), "{e}");
}
