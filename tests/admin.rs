//! Admin and operations API: reload (valid and invalid), receivers, test notifications,
//! status, metrics, graceful shutdown on SIGTERM.
mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const CONFIG: &str = "route:\n  receiver: ops\n  group_wait: 100ms\nreceivers:\n  - name: ops\n    log_configs: [{}]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_valid_config_and_rejects_invalid() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(CONFIG).await;
    let status = app.get_json("/admin/v1/status").await;
    let hash0 = status["config_hash"].as_str().unwrap().to_string();

    // invalid: the old config keeps running and the error names the problem
    let path = app.config_path.clone();
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("receiver: ops", "receiver: nobody")).unwrap();
    let r = app.client.post(app.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("undefined receiver \"nobody\""),
        "{e}"
    );
    assert_eq!(
        app.get_json("/admin/v1/status").await["config_hash"],
        hash0.as_str()
    );
    let m = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("alert_router_config_last_reload_successful 0"),
        "{m}"
    );

    // valid: a new receiver with a webhook appears and receives
    let new = good.replace(
        "    log_configs: [{}]\n",
        &format!(
            "    log_configs: [{{}}]\n  - name: hooks\n    webhook_configs: [{{url: '{}'}}]\n",
            sink.url("/h")
        ),
    );
    std::fs::write(&path, new).unwrap();
    let r = app.client.post(app.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(
        app.get_json("/admin/v1/status").await["config_hash"],
        hash0.as_str()
    );
    let receivers = app.get_json("/admin/v1/receivers").await;
    let names: Vec<&str> = receivers
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hooks", "ops"]);
    let body = webhook(vec![alert(&[("alertname", "AfterReload")], "firing")]);
    assert_eq!(app.post_json("/webhook/hooks", &body).await.status(), 200);
    wait_for(
        Duration::from_secs(10),
        "delivery to the new receiver",
        || async { (sink.count() == 1).then_some(()) },
    )
    .await;
    let m = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("alert_router_config_last_reload_successful 1"),
        "{m}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_view_and_test_notification() {
    let sink = MockServer::start(Reply::ok("ok"), None).await;
    let app = TestApp::start(&format!(
        "route:\n  receiver: team\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: '{}'\n        rate_limit: {{messages: 5, per: 1m}}\n",
        sink.url("/secret-path-token")
    ))
    .await;
    assert_eq!(
        app.status(reqwest::Method::POST, "/admin/v1/receivers/nobody/test")
            .await,
        404
    );
    let r = app
        .post_json("/admin/v1/receivers/team/test", &Value::Null)
        .await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["notifications"].as_array().unwrap().len(), 1);
    wait_for(Duration::from_secs(10), "test notification", || async {
        (sink.count() == 1).then_some(())
    })
    .await;
    assert_eq!(
        sink.requests()[0].json()["alerts"][0]["labels"]["alertname"],
        "AlertRouterTest"
    );
    let rv = wait_for(Duration::from_secs(5), "last_success recorded", || async {
        let rv = app.get_json("/admin/v1/receivers").await;
        let i = &rv[0]["integrations"][0];
        (i["last_success"].is_string() && i["queue_depth"] == 0).then_some(rv)
    })
    .await;
    let i = &rv[0]["integrations"][0];
    assert_eq!(i["integration"], "webhook");
    assert_eq!(i["rate_limit"]["messages"], 5);
    assert_eq!(i["rate_limit"]["per"], "1m");
    let everything = format!(
        "{}{}{}",
        rv,
        app.get_json("/admin/v1/status").await,
        app.get_json("/admin/v1/notifications").await
    );
    assert!(
        !everything.contains("secret-path-token"),
        "destination URL leaked: {everything}"
    );
    // The delivery state is recorded after the send without waiting for it.
    let id = wait_for(
        Duration::from_secs(10),
        "the delivered state recorded",
        || async {
            app.get_json("/admin/v1/notifications?state=delivered")
                .await
                .get(0)
                .and_then(|n| n["id"].as_u64())
        },
    )
    .await;
    assert_eq!(
        app.get_json(&format!("/admin/v1/notifications/{id}")).await["state"],
        "delivered"
    );
    assert_eq!(
        app.status(reqwest::Method::GET, "/admin/v1/notifications?state=bogus")
            .await,
        400
    );
    assert_eq!(
        app.status(reqwest::Method::GET, "/admin/v1/notifications/999999")
            .await,
        404
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_groups_and_metrics_views() {
    let app = TestApp::start(
        "route:\n  receiver: ops\n  group_by: [alertname]\n  group_wait: 1h\nreceivers:\n  - name: ops\n    log_configs: [{}]\n",
    )
    .await;
    let body = webhook(vec![
        alert(&[("alertname", "A"), ("env", "prod")], "firing"),
        alert(&[("alertname", "A"), ("env", "dev")], "firing"),
        alert(&[("alertname", "B"), ("env", "prod")], "resolved"),
    ]);
    assert_eq!(app.post_json("/webhook", &body).await.status(), 200);
    let all = app.get_json("/admin/v1/alerts").await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    let prod = app
        .get_json("/admin/v1/alerts?filter=env%3D%22prod%22&status=firing")
        .await;
    assert_eq!(prod.as_array().unwrap().len(), 1);
    assert_eq!(prod[0]["receivers"][0], "ops");
    assert_eq!(
        app.status(
            reqwest::Method::GET,
            "/admin/v1/alerts?filter=env%3D~%22%5B%22"
        )
        .await,
        400
    );
    // A with its two firing alerts; B holds the resolve an Alertmanager handed over
    let groups = wait_for(Duration::from_secs(5), "group view", || async {
        let g = app.get_json("/admin/v1/groups").await;
        (g.as_array().unwrap().len() == 2).then_some(g)
    })
    .await;
    assert_eq!(groups[0]["groupKey"], "{}:{alertname=\"A\"}");
    assert_eq!(groups[0]["firing"], 2);
    assert_eq!(groups[1]["groupKey"], "{}:{alertname=\"B\"}");
    assert_eq!(groups[1]["resolved"], 1);
    let m = wait_for(Duration::from_secs(5), "gauges", || async {
        let m = reqwest::get(app.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        m.contains("alert_router_alerts_active 2").then_some(m)
    })
    .await;
    for name in [
        "alert_router_alerts_received_total{status=\"firing\"} 2",
        "alert_router_alerts_received_total{status=\"resolved\"} 1",
        "alert_router_aggregation_groups 2",
        "alert_router_ingest_ack_latency_seconds_bucket",
    ] {
        assert!(m.contains(name), "missing {name} in\n{m}");
    }
    app.stop().await;
}

/// `templates:` files are parsed on every reload: a broken one is rejected naming file,
/// line and column (the old templates keep serving), a changed one takes effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reparses_template_files_and_names_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tmpl")).unwrap();
    let file = dir.path().join("tmpl/slack.tmpl");
    std::fs::write(
        &file,
        "{{ define \"t\" }}v1 {{ .CommonLabels.alertname }}{{ end }}",
    )
    .unwrap();
    let yaml = "templates: ['tmpl/*.tmpl']\nroute:\n  receiver: ops\nreceivers:\n  - name: ops\n    slack_configs:\n      - api_url: 'https://hooks.slack.test/services/T/B/X'\n        title: '{{ template \"t\" . }}'\n";
    let app = TestApp::start_in(dir, yaml).await;
    let title = || async {
        let r = app
            .client
            .post(app.url("/admin/v1/receivers/ops/render"))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["integrations"][0]["requests"][0]["body"]["attachments"][0]["title"].clone()
    };
    assert_eq!(title().await, "v1 AlertRouterSample");

    std::fs::write(
        &file,
        "{{ define \"t\" }}\n  v2 {{ .Status | shout }}{{ end }}",
    )
    .unwrap();
    let r = app.client.post(app.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    let want = format!("{}:2:19: function \"shout\" not defined", file.display());
    assert!(e["error"].as_str().unwrap().contains(&want), "{e}");
    assert_eq!(title().await, "v1 AlertRouterSample");

    std::fs::write(
        &file,
        "{{ define \"t\" }}v2 {{ .Status | toUpper }}{{ end }}",
    )
    .unwrap();
    let r = app.client.post(app.url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(title().await, "v2 FIRING");
    app.stop().await;
}
