//! See a message before it pages someone: `POST /admin/v1/receivers/{name}/render` shows,
//! per integration, the exact request a notification would make (secrets redacted) and
//! sends nothing; `check-config` renders every integration's templates against a sample
//! group and fails on a template that cannot render.
mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;

fn config(hook: &str, slack: &str) -> String {
    format!(
        "route:\n  receiver: ops\n  group_by: [alertname]\n  group_wait: 0s\n\
         receivers:\n  - name: ops\n    webhook_configs:\n      - url: '{hook}'\n    slack_configs:\n      - api_url: '{slack}'\n        title: 'Render {{{{ .CommonLabels.alertname }}}}'\n    log_configs:\n      - {{}}\n"
    )
}

async fn render(app: &TestApp, body: Option<Value>) -> (u16, Value) {
    let mut req = app.client.post(app.url("/admin/v1/receivers/ops/render"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.json().await.expect("json"))
}

fn integration<'a>(v: &'a Value, kind: &str) -> &'a Value {
    v["integrations"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["integration"] == kind))
        .unwrap_or_else(|| panic!("no {kind} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_shows_each_request_and_sends_nothing() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let hook = sink.url("/hook/TOKEN-IN-PATH");
    let slack = sink.url("/services/T0/B0/SLACKSECRET");
    let app = TestApp::start(&config(&hook, &slack)).await;

    // No body: built-in samples (one firing, one resolved).
    let (status, v) = render(&app, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["alerts"], 2);
    let w = &integration(&v, "webhook")["requests"][0];
    assert_eq!(w["method"], "POST");
    assert_eq!(w["url"], format!("http://{}/<secret>", sink.addr));
    assert_eq!(w["body"]["version"], "4");
    assert_eq!(w["body"]["alerts"].as_array().map(Vec::len), Some(2));
    let s = &integration(&v, "slack")["requests"][0];
    assert_eq!(
        s["body"]["attachments"][0]["title"], "Render AlertRouterSample",
        "the user's template is rendered"
    );
    assert!(integration(&v, "log")["requests"][0]["body"]
        .as_str()
        .is_some_and(|t| t.contains("AlertRouterSample")));
    let text = v.to_string();
    assert!(
        !text.contains("TOKEN-IN-PATH") && !text.contains("SLACKSECRET"),
        "{text}"
    );

    // Sample alerts in Alertmanager's API shape.
    let (status, v) = render(
        &app,
        Some(json!({"alerts": [{"labels": {"alertname": "DiskFull", "instance": "db1"}}]})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let body = &integration(&v, "webhook")["requests"][0]["body"];
    assert_eq!(body["commonLabels"]["instance"], "db1");
    assert_eq!(body["status"], "firing");

    // A matcher over live alerts.
    let post = webhook(vec![alert(
        &[("alertname", "Live"), ("job", "x")],
        "firing",
    )]);
    assert_eq!(app.post_json("/webhook", &post).await.status(), 200);
    let (status, v) = render(&app, Some(json!({"filter": "alertname=\"Live\""}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["alerts"], 1);
    let (status, _) = render(&app, Some(json!({"filter": "alertname=\"Nope\""}))).await;
    assert_eq!(status, 404);

    // Bad input names the field.
    let (status, v) = render(&app, Some(json!({"alerts": [{"labels": {}}]}))).await;
    assert_eq!(status, 400);
    assert!(
        v["error"].as_str().is_some_and(|e| e.starts_with("alerts")),
        "{v}"
    );
    // The ingest limits hold here too (a 70 kB label is refused by name).
    let big = "x".repeat(70_000);
    let (status, v) = render(
        &app,
        Some(json!({"alerts": [{"labels": {"alertname": big}}]})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().is_some_and(
            |e| e.contains("alerts[0].labels.alertname") && e.contains("max_label_bytes")
        ),
        "{v}"
    );
    let (status, v) = render(&app, Some(json!({"filter": "a=\"unterminated"}))).await;
    assert_eq!(status, 400);
    assert!(
        v["error"].as_str().is_some_and(|e| e.starts_with("filter")),
        "{v}"
    );

    // Rendering sent nothing (the live alert's own notification goes to the same sink,
    // so count only requests that are not that one's).
    let rendered_sends = sink
        .requests()
        .iter()
        .filter(|r| !String::from_utf8_lossy(&r.body).contains("Live"))
        .count();
    assert_eq!(rendered_sends, 0, "render must not send");
    app.stop().await;
}

#[test]
fn check_config_fails_on_a_template_that_cannot_render() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yml");
    // Compiles, but fails when rendered (the sample has two alerts, not six).
    std::fs::write(
        &path,
        "route:\n  receiver: ops\nreceivers:\n  - name: ops\n    slack_configs:\n      - api_url: 'https://hooks.slack.test/services/T/B/X'\n        text: '{{ (index .Alerts 5).Labels.x }}'\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_alert-router"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ops/slack[0]") && stdout.contains("rendering a sample"),
        "{stdout}"
    );
}
