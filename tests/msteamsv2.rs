//! Teams Workflows (`msteamsv2_configs`) end to end: alerts go in through `/webhook`, the
//! real router delivers Adaptive Cards to a mock standing in for a Workflows webhook,
//! which checks each request against what the flow accepts (envelope, Adaptive Card
//! ≤ 1.4, ~28 KB) and answers 202 like Power Automate.
mod common;
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
/// Teams' message limit ("about 28 KB", card JSON included).
const TEAMS_MAX_BYTES: usize = 28 * 1024;

fn config(url: &str) -> String {
    format!(
        "delivery: {{backoff_initial: 100ms, backoff_max: 1s}}\n\
         route:\n  receiver: teams\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n\
         receivers:\n  - name: teams\n    msteamsv2_configs:\n      - webhook_url: '{url}'\n"
    )
}

/// What a Workflows webhook and the "Post card" action accept.
pub fn workflows_schema(r: &Received) -> Result<(), String> {
    if r.method != "POST" {
        return Err(format!("method {}", r.method));
    }
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(format!("content-type {ct:?}"));
    }
    if r.body.len() > TEAMS_MAX_BYTES {
        return Err(format!("413 Request Entity too large: {}", r.body.len()));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("bad JSON: {e}"))?;
    if v["type"] != "message" {
        return Err("type must be message".into());
    }
    let atts = v["attachments"]
        .as_array()
        .ok_or("attachments missing (foreach over Null)")?;
    if atts.len() != 1 {
        return Err(format!("{} attachments", atts.len()));
    }
    let a = &atts[0];
    if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
        return Err(format!("contentType {}", a["contentType"]));
    }
    let c = &a["content"];
    if c["type"] != "AdaptiveCard" || c["$schema"].as_str().is_none() {
        return Err("content is not an AdaptiveCard".into());
    }
    let version: f64 = c["version"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or("version missing")?;
    if version > 1.4 {
        return Err(format!("card version {version} > 1.4 cannot be displayed"));
    }
    let body = c["body"].as_array().ok_or("body missing")?;
    if body.is_empty() {
        return Err("empty body".into());
    }
    fn element(e: &Value) -> Result<(), String> {
        match e["type"].as_str() {
            Some("TextBlock") => match e["text"].as_str() {
                Some(t) if !t.is_empty() => Ok(()),
                _ => Err("TextBlock without text".into()),
            },
            Some("FactSet") => {
                for f in e["facts"].as_array().ok_or("FactSet without facts")? {
                    if f["title"].as_str().is_none() || f["value"].as_str().is_none() {
                        return Err(format!("bad fact {f}"));
                    }
                }
                Ok(())
            }
            Some("Container") => e["items"]
                .as_array()
                .ok_or("Container without items")?
                .iter()
                .try_for_each(element),
            other => Err(format!("unknown element {other:?}")),
        }
    }
    body.iter().try_for_each(element)?;
    for act in c["actions"].as_array().into_iter().flatten() {
        match act["type"].as_str() {
            Some("Action.OpenUrl") => {
                let url = act["url"].as_str().unwrap_or("");
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    return Err(format!("OpenUrl without URL: {act}"));
                }
            }
            other => return Err(format!("unsupported action {other:?}")),
        }
    }
    Ok(())
}

async fn workflows_mock() -> MockServer {
    MockServer::start(Reply::status(202, ""), Some(Arc::new(workflows_schema))).await
}

async fn fire(app: &TestApp, alerts: Vec<Value>) {
    assert_eq!(
        app.post_json("/webhook", &webhook(alerts)).await.status(),
        200
    );
}

fn texts(v: &Value) -> Vec<String> {
    v["attachments"][0]["content"]["body"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_are_delivered_escaped_and_within_limits() {
    let teams = workflows_mock().await;
    let path = "/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=S3CR3TSIG";
    let app = TestApp::start(&config(&teams.url(path))).await;

    fire(
        &app,
        vec![alert(
            &[
                ("alertname", "DiskFull"),
                ("instance", "db1"),
                ("severity", "critical"),
            ],
            "firing",
        )],
    )
    .await;
    let long = "@everyone <b>*bold*</b> [x](http://evil) ".repeat(300);
    let hostile: Vec<Value> = (0..300)
        .map(|i| {
            alert(
                &[
                    ("alertname", "**Hostile** [x](http://evil)"),
                    ("instance", &format!("{long}{i}")),
                    ("job", "<at>everyone</at>"),
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
    let reqs = teams.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.path, path, "posted to the webhook URL as configured");
    }
    let cards: Vec<Value> = reqs.iter().map(Received::json).collect();
    let normal = cards
        .iter()
        .find(|c| texts(c).iter().any(|t| t.contains("DiskFull")))
        .expect("DiskFull card");
    let t = texts(normal);
    assert!(
        t[0].starts_with("- 🔥 **DiskFull** · instance=db1"),
        "{t:?}"
    );
    let head = &normal["attachments"][0]["content"]["body"][0];
    assert_eq!(
        head["items"][0]["text"],
        "\\[FIRING:1\\] DiskFull (db1 critical)"
    );
    assert_eq!(head["style"], "attention");
    assert_eq!(head["items"][0]["color"], "Attention");

    let hostile = cards
        .iter()
        .find(|c| texts(c).iter().any(|t| t.contains("Hostile")))
        .expect("hostile card");
    let size = serde_json::to_vec(hostile).unwrap().len();
    assert!(size <= 28_000, "{size}");
    let t = texts(hostile);
    let shown = t.iter().filter(|l| l.starts_with("- 🔥")).count();
    assert!((1..300).contains(&shown), "{shown}");
    assert_eq!(
        t.last().unwrap(),
        &format!("…and {} more alerts", 300 - shown)
    );
    for line in &t {
        assert!(!line.contains("[x]("), "link injected: {line}");
        assert!(!line.contains(" *bold*"), "emphasis injected: {line}");
        assert!(!line.contains(" **Hostile**"), "bold injected: {line}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried() {
    let teams = workflows_mock().await;
    teams.push(Reply::status(429, "Too Many Requests").with_header("Retry-After", "1"));
    teams.push(Reply::status(502, "Bad Gateway"));
    teams.push(Reply::status(412, "Precondition Failed"));
    let app = TestApp::start(&config(&teams.url("/invoke?sig=x"))).await;
    fire(&app, vec![alert(&[("alertname", "Flaky")], "firing")]).await;

    let n = wait_for(WAIT, "delivered", || async {
        app.notifications("state=delivered")
            .await
            .into_iter()
            .next()
    })
    .await;
    let reqs = teams.requests();
    assert_eq!(reqs.len(), 4, "429, 502, 412, then 202");
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After ignored: {gap:?}"
    );
    assert_eq!(n["attempts"], 4);
    assert!(reqs.windows(2).all(|w| w[0].body == w[1].body));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_dead_lettered_without_the_secret_url() {
    let teams = MockServer::start(Reply::status(400, "Bad Request"), None).await;
    let app = TestApp::start(&config(&teams.url("/invoke?sig=T0PS3CR3T"))).await;
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
    let status = app.get_json("/admin/v1/receivers").await.to_string();
    for text in [dead.to_string(), status] {
        assert!(!text.contains("T0PS3CR3T"), "secret leaked: {text}");
    }
    assert_eq!(teams.count(), 1);
    app.stop().await;
}

#[test]
fn alertmanager_receiver_block_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("teams-url"),
        "https://prod-01.westeurope.logic.azure.com:443/workflows/x/triggers/manual/paths/invoke?api-version=2016-06-01&sig=abc\n",
    )
    .unwrap();
    let path = dir.path().join("alertmanager.yml");
    std::fs::write(
        &path,
        "route:\n  receiver: teams\nreceivers:\n  - name: teams\n    msteamsv2_configs:\n\
         \x20     - webhook_url: 'https://prod-01.westeurope.logic.azure.com:443/workflows/x/triggers/manual/paths/invoke?api-version=2016-06-01&sig=abc'\n\
         \x20       title: 'Alerts'\n        text: 'See the list'\n        send_resolved: false\n\
         \x20       http_config:\n          proxy_url: 'http://proxy.test:3128'\n\
         \x20     - webhook_url_file: teams-url\n",
    )
    .unwrap();
    let c = alert_router::config::Config::load_file(&path).unwrap();
    let t = &c.receivers[0].msteamsv2_configs;
    assert_eq!(t.len(), 2);
    assert!(!t[0].send_resolved);
    assert!(t[1].send_resolved, "Alertmanager's default");
    assert!(t[1]
        .webhook_url
        .as_ref()
        .unwrap()
        .expose()
        .ends_with("sig=abc"));
    std::fs::write(
        &path,
        "route:\n  receiver: teams\nreceivers:\n  - name: teams\n    msteamsv2_configs:\n      - {title: x}\n",
    )
    .unwrap();
    let e = alert_router::config::Config::load_file(&path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("msteamsv2_configs[0]: webhook_url"), "{e}");
}
