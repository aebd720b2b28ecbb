//! Slack's Web API (`chat.postMessage` with a bot token) end to end: alerts go in through
//! `/webhook`, the real router groups and delivers them to a local stand-in for
//! `slack.com/api`, which checks every request the way Slack would (token, channel,
//! method) and answers with Slack's JSON. Covers the bot token from
//! `http_config.authorization`, `ok:false` answers (permanent, or retried after
//! `Retry-After` when rate limited), and `update_message`: the first notification of an
//! episode posts, later ones edit that message and reply in its thread, a message that is
//! gone is posted anew, and a new episode starts a new message.
mod common;
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const TOKEN: &str = "xoxb-1234-5678-s3cr3tt0ken";
const TS: &str = "1700000000.000100";

/// Slack's answer to a successful post or update of message `ts` in channel C123.
fn posted(ts: &str) -> Reply {
    Reply::ok(&format!(
        r#"{{"ok":true,"channel":"C123","ts":"{ts}","message":{{"type":"message"}}}}"#
    ))
    .with_header("content-type", "application/json; charset=utf-8")
}

fn slack_error(status: u16, code: &str) -> Reply {
    Reply::status(status, &format!(r#"{{"ok":false,"error":"{code}"}}"#))
        .with_header("content-type", "application/json; charset=utf-8")
}

/// What Slack's Web API requires of every call: the bot token, JSON, a known method, a
/// channel, and `ts` exactly on `chat.update`.
fn web_api_rules(r: &Received) -> Result<(), String> {
    let auth = r
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {TOKEN}") {
        return Err(format!("not_authed: {auth:?}"));
    }
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(format!("invalid content-type {ct:?}"));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("invalid_json: {e}"))?;
    if v["channel"].as_str().unwrap_or("").is_empty() {
        return Err("channel_not_found: no channel".into());
    }
    if v["text"].as_str().unwrap_or("").is_empty() && v["attachments"].is_null() {
        return Err("no_text".into());
    }
    limits(&v)?;
    match r.path.as_str() {
        "/api/chat.postMessage" if v.get("ts").is_none() => Ok(()),
        "/api/chat.update" if v["ts"].is_string() => Ok(()),
        p => Err(format!("unexpected call {p} with {v}")),
    }
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

/// Slack's size limits (delivery-apis.md §1) and no control sequence but links: a
/// `<!channel>` or `<@U…>` from a label would notify people.
fn limits(v: &Value) -> Result<(), String> {
    let text = v["text"].as_str().unwrap_or("");
    if utf16_len(text) > 40_000 {
        return Err(format!("msg_too_long: text {}", utf16_len(text)));
    }
    let attachments = v["attachments"].as_array().cloned().unwrap_or_default();
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
    }
    let mut strings = Vec::new();
    all_strings(v, &mut strings);
    for s in strings {
        for (i, _) in s.match_indices('<') {
            let rest = &s[i + 1..];
            if !(rest.starts_with("http://") || rest.starts_with("https://")) {
                return Err(format!("control sequence injected: {s:?}"));
            }
        }
    }
    Ok(())
}

async fn slack_api(default: Reply) -> MockServer {
    MockServer::start(default, Some(Arc::new(web_api_rules))).await
}

/// Fast timers, one Slack Web API receiver with the bot token, plus `extra` keys.
fn config(slack: &MockServer, extra: &str) -> String {
    format!(
        "delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: chat\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 1s\n\
         receivers:\n  - name: chat\n    slack_configs:\n      - api_url: '{}'\n        http_config:\n          authorization:\n            credentials: {TOKEN}\n        channel: '#alerts'\n{extra}",
        slack.url("/api/chat.postMessage")
    )
}

async fn send(app: &TestApp, alerts: Vec<Value>) {
    assert_eq!(
        app.post_json("/webhook", &webhook(alerts)).await.status(),
        200
    );
}

fn disk(instances: &[&str], status: &str) -> Vec<Value> {
    instances
        .iter()
        .map(|i| alert(&[("alertname", "DiskFull"), ("instance", i)], status))
        .collect()
}

async fn wait_requests(slack: &MockServer, n: usize, what: &str) -> Vec<Received> {
    wait_for(WAIT, what, || async {
        (slack.count() >= n).then(|| slack.requests())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_message_edits_the_episode_message_and_replies_in_its_thread() {
    let slack = slack_api(posted(TS)).await;
    let app = TestApp::start(&config(
        &slack,
        "        update_message: true\n        send_resolved: true\n        username: alert-bot\n",
    ))
    .await;

    // First notification of the episode: a new message, posted with the bot token.
    send(&app, disk(&["a", "b"], "firing")).await;
    let reqs = wait_requests(&slack, 1, "the first post").await;
    let first = reqs[0].json();
    assert_eq!(reqs[0].path, "/api/chat.postMessage");
    assert_eq!(first["channel"], "#alerts");
    assert_eq!(first["username"], "alert-bot");
    assert!(first["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING:2] DiskFull"));
    assert_eq!(first["attachments"][0]["color"], "danger");
    let id = wait_for(WAIT, "the message id recorded", || async {
        let v = app.notifications("state=delivered&integration=slack").await;
        v.first()
            .and_then(|n| n["platform_message_id"].as_str().map(String::from))
    })
    .await;
    assert_eq!(id, format!("C123:{TS}"));

    // Two more alerts: the message is edited (channel ID and ts from the post), then a
    // short thread reply says what changed.
    send(&app, disk(&["a", "b", "c", "d"], "firing")).await;
    let reqs = wait_requests(&slack, 3, "the edit and its thread reply").await;
    assert_eq!(reqs[1].path, "/api/chat.update");
    let edit = reqs[1].json();
    assert_eq!(edit["channel"], "C123");
    assert_eq!(edit["ts"], TS);
    assert!(edit["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING:4] DiskFull"));
    let lines = edit["attachments"][0]["text"]
        .as_str()
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 4, "{edit}");
    assert_eq!(reqs[2].path, "/api/chat.postMessage");
    let note = reqs[2].json();
    assert_eq!(note["channel"], "C123");
    assert_eq!(note["thread_ts"], TS);
    assert!(note.get("attachments").is_none(), "{note}");
    let text = note["text"].as_str().unwrap();
    assert!(text.contains("2 more firing"), "{text}");
    assert!(text.chars().count() < 100, "a short reply: {text}");

    // Everything resolves: the same message now shows the resolution.
    send(&app, disk(&["a", "b", "c", "d"], "resolved")).await;
    let reqs = wait_requests(&slack, 5, "the resolved edit").await;
    assert_eq!(reqs[3].path, "/api/chat.update");
    let edit = reqs[3].json();
    assert_eq!(edit["ts"], TS);
    assert!(edit["text"]
        .as_str()
        .unwrap()
        .starts_with("[RESOLVED] DiskFull"));
    assert_eq!(edit["attachments"][0]["color"], "good");
    let text = edit["attachments"][0]["text"].as_str().unwrap();
    assert!(
        text.lines().all(|l| l.starts_with(":white_check_mark:")),
        "{text}"
    );
    let note = reqs[4].json();
    assert_eq!(note["thread_ts"], TS);
    assert!(
        note["text"].as_str().unwrap().contains("resolved"),
        "{note}"
    );

    // A new episode starts a new message.
    send(&app, disk(&["a"], "firing")).await;
    let reqs = wait_requests(&slack, 6, "a new post").await;
    assert_eq!(reqs[5].path, "/api/chat.postMessage");
    let again = reqs[5].json();
    assert!(again.get("ts").is_none() && again.get("thread_ts").is_none());
    assert!(again["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING:1] DiskFull"));

    assert_eq!(slack.violations(), Vec::<String>::new());
    wait_for(WAIT, "4 delivered notifications", || async {
        let v = app.notifications("state=delivered&integration=slack").await;
        (v.len() == 4).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_be_edited_is_posted_anew() {
    let slack = slack_api(posted(TS)).await;
    let app = TestApp::start(&config(&slack, "        update_message: true\n")).await;
    send(&app, disk(&["a"], "firing")).await;
    wait_requests(&slack, 1, "the first post").await;
    wait_for(WAIT, "the first delivery", || async {
        let v = app.notifications("state=delivered&integration=slack").await;
        (!v.is_empty()).then_some(())
    })
    .await;

    // Someone deleted the message: chat.update fails, a new message replaces it.
    const NEW_TS: &str = "1700000099.000200";
    slack.push(slack_error(200, "message_not_found"));
    slack.push(posted(NEW_TS));
    send(&app, disk(&["a", "b"], "firing")).await;
    let reqs = wait_requests(&slack, 3, "the failed edit and the new post").await;
    assert_eq!(reqs[1].path, "/api/chat.update");
    assert_eq!(reqs[2].path, "/api/chat.postMessage");
    let new = reqs[2].json();
    assert_eq!(new["channel"], "#alerts");
    assert!(new.get("thread_ts").is_none() && new.get("ts").is_none());
    assert!(new["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING:2] DiskFull"));
    let id = wait_for(WAIT, "the new message id", || async {
        let v = app.notifications("state=delivered&integration=slack").await;
        (v.len() == 2)
            .then(|| v[0]["platform_message_id"].as_str().map(String::from))
            .flatten()
    })
    .await;
    assert_eq!(id, format!("C123:{NEW_TS}"));

    // The next change edits the new message.
    slack.push(posted(NEW_TS));
    send(&app, disk(&["a", "b", "c"], "firing")).await;
    let reqs = wait_requests(&slack, 5, "the edit of the new message").await;
    assert_eq!(reqs[3].path, "/api/chat.update");
    assert_eq!(reqs[3].json()["ts"], NEW_TS);
    assert_eq!(reqs[4].json()["thread_ts"], NEW_TS);
    assert_eq!(slack.violations(), Vec::<String>::new());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_false_answers_are_errors_and_ratelimited_waits_for_retry_after() {
    // Rate limited: tried again only after Retry-After (the backoff alone is 100ms).
    let slack = slack_api(posted(TS)).await;
    slack.push(slack_error(429, "ratelimited").with_header("retry-after", "2"));
    let app = TestApp::start(&config(&slack, "")).await;
    send(&app, disk(&["a"], "firing")).await;
    let reqs = wait_requests(&slack, 2, "the retry").await;
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
    let n = wait_for(WAIT, "the delivery", || async {
        let v = app.notifications("state=delivered&integration=slack").await;
        v.into_iter().next()
    })
    .await;
    assert_eq!(n["attempts"], 2);
    // Without update_message the message id is still recorded.
    assert_eq!(n["platform_message_id"], format!("C123:{TS}"));
    app.stop().await;

    // Errors in a 200 answer are permanent: one attempt, then a dead letter naming
    // Slack's error and never the token.
    for code in [
        "invalid_auth",
        "channel_not_found",
        "is_archived",
        "msg_too_long",
    ] {
        let slack = slack_api(slack_error(200, code)).await;
        let app = TestApp::start(&config(&slack, "")).await;
        send(&app, disk(&["a"], "firing")).await;
        let dead = wait_for(WAIT, "a dead letter", || async {
            let v = app.notifications("state=dead").await;
            v.into_iter().next()
        })
        .await;
        let err = dead["last_error"].as_str().unwrap_or_default();
        assert_eq!(err, format!("error response from Slack: {code}"));
        assert_eq!(
            dead["attempts"], 1,
            "{code}: permanent errors are not retried"
        );
        assert_eq!(slack.count(), 1);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_editing_the_same_message() {
    let slack = slack_api(posted(TS)).await;
    let yaml = config(&slack, "        update_message: true\n");
    let app = TestApp::start(&yaml).await;
    send(&app, disk(&["a"], "firing")).await;
    wait_requests(&slack, 1, "the first post").await;
    wait_for(WAIT, "the first delivery", || async {
        let v = app.notifications("state=delivered&integration=slack").await;
        (!v.is_empty()).then_some(())
    })
    .await;
    let dir = app.stop().await;

    // The message id is durable: after the restart the next change edits it.
    let app = TestApp::start_in(dir, &yaml).await;
    send(&app, disk(&["a", "b"], "firing")).await;
    let reqs = wait_requests(&slack, 3, "the edit after the restart").await;
    assert_eq!(reqs[1].path, "/api/chat.update");
    let edit = reqs[1].json();
    assert_eq!(
        (edit["channel"].as_str(), edit["ts"].as_str()),
        (Some("C123"), Some(TS))
    );
    assert!(edit["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING:2] DiskFull"));
    assert_eq!(reqs[2].json()["thread_ts"], TS);
    assert_eq!(slack.violations(), Vec::<String>::new());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_update_message_every_notification_is_a_new_post() {
    let slack = slack_api(posted(TS)).await;
    // A 5xx is retried (after the backoff) before the first post gets through.
    slack.push(Reply::status(503, "upstream unavailable"));
    let app = TestApp::start(&config(&slack, "")).await;
    send(&app, disk(&["a"], "firing")).await;
    wait_requests(&slack, 2, "the retried first post").await;
    wait_for(WAIT, "the first delivery", || async {
        let v = app.notifications("state=delivered&integration=slack").await;
        (v.len() == 1 && v[0]["attempts"] == 2).then_some(())
    })
    .await;
    send(&app, disk(&["a", "b"], "firing")).await;
    let reqs = wait_requests(&slack, 3, "the second post").await;
    assert!(
        reqs.iter().all(|r| r.path == "/api/chat.postMessage"),
        "{:?}",
        reqs.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let second = reqs[2].json();
    assert!(second.get("ts").is_none() && second.get("thread_ts").is_none());
    assert!(second["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING:2] DiskFull"));
    assert_eq!(slack.violations(), Vec::<String>::new());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_labels_are_escaped_and_cut_on_the_web_api() {
    let slack = slack_api(posted(TS)).await;
    let app = TestApp::start(&config(&slack, "")).await;
    let huge = "x".repeat(10_000);
    let mut alerts = vec![alert(
        &[
            ("alertname", "<!channel> *bold* [x](http://evil)"),
            ("instance", "<@U123> & <!here>"),
            ("job", &huge),
        ],
        "firing",
    )];
    for i in 0..200 {
        alerts.push(alert(
            &[
                ("alertname", "<!channel> *bold* [x](http://evil)"),
                ("instance", &format!("host-{i}-{}", "y".repeat(300))),
            ],
            "firing",
        ));
    }
    send(&app, alerts).await;
    let reqs = wait_requests(&slack, 1, "the post").await;
    assert_eq!(slack.violations(), Vec::<String>::new());
    let raw = String::from_utf8_lossy(&reqs[0].body).into_owned();
    assert!(!raw.contains("<!") && !raw.contains("<@"), "{raw}");
    let v = reqs[0].json();
    let text = v["attachments"][0]["text"].as_str().unwrap();
    assert!(utf16_len(text) <= 3000, "{}", utf16_len(text));
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    assert!(text.ends_with("more alerts"), "{text}");
    wait_for(WAIT, "the delivery", || async {
        let v = app.notifications("state=delivered&integration=slack").await;
        (!v.is_empty()).then_some(())
    })
    .await;
    app.stop().await;
}

#[test]
fn an_alertmanager_yml_slack_receiver_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slack-token"), format!("{TOKEN}\n")).unwrap();
    let path = dir.path().join("alertmanager.yml");
    // Alertmanager's keys as an alertmanager.yml has them, Go templates included.
    std::fs::write(
        &path,
        r##"global:
  resolve_timeout: 5m
route:
  receiver: slack-bot
  group_by: [alertname]
receivers:
  - name: slack-bot
    slack_configs:
      - send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: slack-token
          follow_redirects: true
          enable_http2: true
        api_url: https://slack.com/api/chat.postMessage
        channel: '#alerts'
        username: Alertmanager
        color: '{{ template "slack.default.color" . }}'
        title: '{{ template "slack.default.title" . }}'
        title_link: '{{ template "slack.default.titlelink" . }}'
        pretext: ''
        text: '{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}'
        fallback: '{{ template "slack.default.fallback" . }}'
        callback_id: ''
        footer: ''
        icon_emoji: ':bell:'
        icon_url: ''
        image_url: ''
        thumb_url: ''
        short_fields: false
        link_names: false
        mrkdwn_in: [fallback, pretext, text]
        fields:
          - {title: Severity, value: '{{ .CommonLabels.severity }}', short: true}
        actions:
          - {type: button, text: Runbook, url: 'https://runbooks.example.com'}
          - type: button
            text: Ack
            name: ack
            value: ack
            confirm: {text: Sure?, title: Ack, ok_text: 'Yes', dismiss_text: 'No'}
        update_message: true
        timeout: 0s
  - name: slack-hook
    slack_configs:
      - api_url: https://hooks.slack.com/services/T000/B000/XXXX
        channel: '#alerts'
"##,
    )
    .unwrap();
    let c = alert_router::config::Config::load_file(&path).unwrap();
    let s = &c.receivers[0].slack_configs[0];
    assert!(s.is_web_api() && s.update_message);
    assert_eq!(s.actions.len(), 2);
    assert!(!c.receivers[1].slack_configs[0].is_web_api());
    // Incoming webhooks cannot edit: refused at load, naming the key.
    let text = std::fs::read_to_string(&path).unwrap();
    let bad = text.replace(
        "      - api_url: https://hooks.slack.com/services/T000/B000/XXXX\n",
        "      - api_url: https://hooks.slack.com/services/T000/B000/XXXX\n        update_message: true\n",
    );
    std::fs::write(&path, bad).unwrap();
    let e = alert_router::config::Config::load_file(&path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("slack_configs[0]: update_message: incoming webhooks cannot edit"),
        "{e}"
    );
}
