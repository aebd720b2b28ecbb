//! Secrets never leak: a configuration with a secret in every place one can go (ingest and
//! admin tokens, SMTP password, Slack webhook URL, webhook URL credentials, bearer token,
//! Telegram bot token, Discord webhook token) is driven through failing deliveries and
//! retries, every admin and API v2 read, the render endpoint, `/metrics`, `check-config`
//! and debug-level logs of the real binary — and no secret appears in any of them.
mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const SECRETS: [&str; 8] = [
    "SECRETINGEST1",
    "SECRETADMIN2",
    "SECRETSMTP3",
    "SECRETSLACK4",
    "SECRETWEBHOOK5",
    "SECRETBEARER6",
    "SECRETTELEGRAM7",
    "SECRETDISCORD8",
];

fn config(dead: u16, mock: &str) -> String {
    format!(
        r#"
ingest:
  auth:
    bearer_tokens: [SECRETINGEST1]
admin:
  bearer_tokens: [SECRETADMIN2]
delivery:
  backoff_initial: 100ms
  backoff_max: 200ms
global:
  smtp_smarthost: 127.0.0.1:{dead}
  smtp_from: alerts@router.test
  smtp_auth_username: alerts
  smtp_auth_password: SECRETSMTP3
  smtp_require_tls: false
route:
  receiver: all
  group_wait: 100ms
  group_interval: 1s
receivers:
  - name: all
    email_configs:
      - to: ops@example.com
    slack_configs:
      - api_url: {mock}/services/T000/B000/SECRETSLACK4
        channel: '#ops'
    webhook_configs:
      - url: http://user:SECRETWEBHOOK5@{host}/hook
        http_config:
          authorization:
            credentials: SECRETBEARER6
    telegram_configs:
      - bot_token: '123:SECRETTELEGRAM7'
        api_url: {mock}
        chat_id: 42
    discord_configs:
      - webhook_url: {mock}/api/webhooks/1/SECRETDISCORD8
"#,
        host = mock.trim_start_matches("http://"),
    )
}

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} leaks {s}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_apis_metrics_errors_or_logs() {
    init();
    // Every destination fails (500), so errors, retries and failure reasons are recorded.
    let mock = MockServer::start(Reply::status(500, "internal error"), None).await;
    let dead = free_port();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("alert-router.yml");
    std::fs::write(
        &cfg,
        full_config(
            dir.path(),
            &config(dead, &mock.url("")),
            &format!("127.0.0.1:{port}"),
        ),
    )
    .unwrap();

    // check-config prints the configuration summary or errors: no secrets.
    let out = Command::new(env!("CARGO_BIN_EXE_alert-router"))
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_clean("check-config stdout", &String::from_utf8_lossy(&out.stdout));
    assert_clean("check-config stderr", &String::from_utf8_lossy(&out.stderr));
    // A broken config's error does not echo secrets either.
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&cfg).unwrap().replace(
            "chat_id: 42",
            "chat_id: 42\n        bogus_key: SECRETTELEGRAM7",
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_alert-router"))
        .arg("check-config")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(err.contains("bogus_key"), "{err}");
    assert_clean("check-config error", &err);

    let log_path = dir.path().join("router.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alert-router"))
        .arg("--config")
        .arg(&cfg)
        .arg("--log-level")
        .arg("debug")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, "router ready").await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/v2/alerts"))
        .bearer_auth("SECRETINGEST1")
        .json(&serde_json::json!([{"labels": {"alertname": "Leak"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Wait until every integration has failed at least twice (errors recorded, retried).
    let admin = |path: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth("SECRETADMIN2")
            .send()
    };
    wait_for(
        Duration::from_secs(30),
        "every integration failing",
        || async {
            let v: serde_json::Value = admin("/admin/v1/notifications?limit=100")
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let failing = v
                .as_array()?
                .iter()
                .filter(|n| n["attempts"].as_u64().unwrap_or(0) >= 2)
                .count();
            (failing >= 5).then_some(())
        },
    )
    .await;
    let mut seen = String::new();
    for path in [
        "/admin/v1/status",
        "/admin/v1/alerts",
        "/admin/v1/groups",
        "/admin/v1/notifications?limit=100",
        "/admin/v1/receivers",
        "/admin/v1/silences",
        "/api/v2/status",
        "/api/v2/receivers",
        "/api/v2/alerts",
        "/api/v2/alerts/groups",
        "/metrics",
    ] {
        let r = admin(path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let text = r.text().await.unwrap();
        assert_clean(path, &text);
        seen.push_str(&text);
    }
    // The failures were recorded (so the check above looked at real error texts).
    assert!(seen.contains("500"), "no recorded failure seen");
    let r = client
        .post(format!("{base}/admin/v1/receivers/all/render"))
        .bearer_auth("SECRETADMIN2")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rendered = r.text().await.unwrap();
    assert!(rendered.contains("<secret>"), "{rendered}");
    assert_clean("render", &rendered);
    // A wrong token is refused without echoing anything.
    let r = client
        .get(format!("{base}/admin/v1/status"))
        .bearer_auth("SECRETADMIN2x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Stop and read the debug log.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "not a debug log"
    );
    assert_clean("debug log", &log);
    // The destinations did receive the secrets (they are used, just never shown).
    let received: String = mock
        .requests()
        .iter()
        .map(|r| format!("{} {:?}", r.path, r.headers))
        .collect();
    assert!(received.contains("SECRETSLACK4"), "{received}");
    assert!(received.contains("SECRETBEARER6"), "{received}");
    assert!(received.contains("SECRETTELEGRAM7"), "{received}");
    assert!(received.contains("SECRETDISCORD8"), "{received}");
}
