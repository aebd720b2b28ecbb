//! Ingest edge: every bad-input case answers the right status with a JSON error naming the
//! field, and nothing from a rejected request is stored.
mod common;
use common::*;
use serde_json::{json, Value};

const CONFIG: &str = r#"
ingest:
  max_body_bytes: 2048
route:
  receiver: ops
  group_wait: 1h
receivers:
  - name: ops
    log_configs: [{}]
"#;

async fn stored_alerts(app: &TestApp) -> usize {
    app.get_json("/admin/v1/alerts")
        .await
        .as_array()
        .map_or(0, Vec::len)
}

async fn error_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("JSON error body");
    (
        status,
        v["error"].as_str().expect("error field").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_get_400_naming_the_field_and_store_nothing() {
    let app = TestApp::start(CONFIG).await;
    let good = alert(&[("alertname", "A")], "firing");
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"alerts": [good.clone(), {"annotations": {}}]}),
            "alerts[1].labels: required",
        ),
        (
            json!({"alerts": [good.clone(), {"labels": {"a": 1}}]}),
            "alerts[1].labels.a: value must be a string",
        ),
        (
            json!({"alerts": [{"labels": {"": "x"}}]}),
            "alerts[0].labels: invalid name",
        ),
        (
            json!({"alerts": [{"labels": {"a": "b"}, "startsAt": "yesterday"}]}),
            "alerts[0].startsAt",
        ),
        (
            json!({"alerts": [{"labels": {"a": "b"}, "endsAt": 17}]}),
            "alerts[0].endsAt",
        ),
        (
            json!({"alerts": [{"labels": {"a": "b"}, "status": "maybe"}]}),
            "alerts[0].status",
        ),
        (json!({"alerts": "nope"}), "alerts: must be an array"),
        (json!({"receiver": "x"}), "alerts: required"),
        (json!({"alerts": [], "version": "3"}), "version"),
        (json!([good.clone()]), "body: must be a JSON object"),
    ];
    for (body, want) in cases {
        let (status, err) = error_of(app.post_json("/webhook", &body).await).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            err.contains(want),
            "{body}: error {err:?} should contain {want:?}"
        );
    }
    let (status, err) = error_of(
        app.post_raw(
            "/webhook",
            Some("application/json"),
            b"{\"alerts\": [".to_vec(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(err.contains("invalid JSON"), "{err}");
    assert_eq!(
        stored_alerts(&app).await,
        0,
        "a rejected request must store nothing"
    );
    // the valid alert of a rejected batch was not stored either; a clean post is
    let r = app.post_json("/webhook", &webhook(vec![good])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(stored_alerts(&app).await, 1);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("alert_router_alerts_invalid_total 11"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_size_and_receiver_checks() {
    let app = TestApp::start(CONFIG).await;
    let body = serde_json::to_vec(&webhook(vec![alert(&[("alertname", "A")], "firing")])).unwrap();
    let (s, e) = error_of(
        app.post_raw("/webhook", Some("text/plain"), body.clone())
            .await,
    )
    .await;
    assert_eq!(s, 415);
    assert!(e.contains("application/json"));
    let (s, _) = error_of(app.post_raw("/webhook", None, body.clone()).await).await;
    assert_eq!(s, 415);
    // charset parameter is fine
    let r = app
        .post_raw(
            "/webhook",
            Some("application/json; charset=utf-8"),
            body.clone(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let big = webhook(
        (0..40)
            .map(|i| alert(&[("alertname", "Big"), ("i", &i.to_string())], "firing"))
            .collect(),
    );
    let (s, e) = error_of(app.post_json("/webhook", &big).await).await;
    assert_eq!(s, 413);
    assert!(e.contains("max_body_bytes"), "{e}");
    // chunked body without Content-Length is limited too
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(
        serde_json::to_vec(&big).unwrap(),
    )]);
    let r = app
        .client
        .post(app.url("/webhook"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let (s, e) = error_of(
        app.post_raw("/webhook/nobody", Some("application/json"), body.clone())
            .await,
    )
    .await;
    assert_eq!(s, 404);
    assert!(e.contains("nobody"));
    let r = app
        .post_raw("/webhook/ops", Some("application/json"), body)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        stored_alerts(&app).await,
        1,
        "same alert twice is one stored alert"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_auth_and_admin_auth() {
    let app = TestApp::start(&CONFIG.replace(
        "ingest:\n  max_body_bytes: 2048\n",
        "ingest:\n  max_body_bytes: 2048\n  auth:\n    bearer_tokens: [s3cret-token]\n    basic_auth: {username: am, password: pw}\nadmin:\n  bearer_tokens: [admin-token]\n",
    ))
    .await;
    let body = webhook(vec![alert(&[("alertname", "A")], "firing")]);
    let r = app.post_json("/webhook", &body).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let post = || app.client.post(app.url("/webhook")).json(&body);
    let status =
        |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().status().as_u16() };
    assert_eq!(status(post().bearer_auth("wrong")).await, 401);
    assert_eq!(status(post().bearer_auth("s3cret-token")).await, 200);
    assert_eq!(status(post().basic_auth("am", Some("pw"))).await, 200);
    assert_eq!(status(post().basic_auth("am", Some("nope"))).await, 401);
    // admin API: token required even from loopback once configured
    let alerts = || app.client.get(app.url("/admin/v1/alerts"));
    assert_eq!(status(alerts()).await, 401);
    assert_eq!(
        status(alerts().bearer_auth("s3cret-token")).await,
        401,
        "ingest token is not an admin token"
    );
    let r = alerts().bearer_auth("admin-token").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(status(app.client.post(app.url("/-/reload"))).await, 401);
    // health and metrics stay open
    for path in ["/-/healthy", "/-/ready", "/metrics"] {
        assert_eq!(status(app.client.get(app.url(path))).await, 200, "{path}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_v2_alerts_accepts_prometheus_posts() {
    let app = TestApp::start(CONFIG).await;
    let body = json!([{"labels": {"alertname": "FromProm", "job": "node"}, "annotations": {"summary": "s"}, "generatorURL": "http://prom/graph"}]);
    let r = app.post_json("/api/v2/alerts", &body).await;
    assert_eq!(r.status(), 200);
    let alerts = app
        .get_json("/admin/v1/alerts?filter=alertname%3D%22FromProm%22")
        .await;
    let a = &alerts.as_array().unwrap()[0];
    assert_eq!(a["status"], "firing");
    assert!(a["endsAt"].is_string(), "resolve_timeout applied: {a}");
    // timestamps at the edge of the calendar are stored, not a crash
    // (sent to /webhook/ops so that it creates a group of its own)
    let edge =
        json!({"alerts": [{"labels": {"alertname": "Edge"}, "startsAt": "9999-12-31T23:59:59Z"}]});
    assert_eq!(app.post_json("/webhook/ops", &edge).await.status(), 200);
    wait_for(
        std::time::Duration::from_secs(5),
        "edge alert grouped",
        || async {
            let g = app.get_json("/admin/v1/groups").await;
            g.as_array()
                .unwrap()
                .iter()
                .any(|g| g["route"] == "direct:ops")
                .then_some(())
        },
    )
    .await;
    let (s, e) = error_of(
        app.post_json("/api/v2/alerts", &json!([{"annotations": {}}]))
            .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(e.contains("alerts[0].labels"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_request_limits_refuse_oversized_alerts_and_name_the_limit() {
    let app = TestApp::start(
        r#"
ingest:
  max_alerts_per_request: 3
  max_labels_per_alert: 4
  max_label_bytes: 32
  max_annotations_per_alert: 2
  max_annotation_bytes: 64
route:
  receiver: ops
  group_wait: 1h
receivers:
  - name: ops
    log_configs: [{}]
"#,
    )
    .await;
    let ok = alert(&[("alertname", "Ok")], "firing");
    let mut many_labels = alert(
        &[
            ("alertname", "L"),
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
        ],
        "firing",
    );
    many_labels["annotations"] = json!({});
    let long_value = "x".repeat(40);
    let mut long_label = alert(&[("alertname", "V"), ("big", &long_value)], "firing");
    long_label["annotations"] = json!({});
    let mut big_note = alert(&[("alertname", "N")], "firing");
    big_note["annotations"] = json!({"description": "y".repeat(100)});
    for (body, needle) in [
        (
            webhook(vec![ok.clone(), many_labels.clone()]),
            "alerts[1].labels: 5 entries, more than ingest.max_labels_per_alert (4)",
        ),
        (
            webhook(vec![long_label.clone()]),
            "alerts[0].labels.big: 43 bytes, more than ingest.max_label_bytes (32)",
        ),
        (
            webhook(vec![big_note.clone()]),
            "alerts[0].annotations.description",
        ),
        (
            webhook(vec![ok.clone(), ok.clone(), ok.clone(), ok.clone()]),
            "4 alerts in one request, more than ingest.max_alerts_per_request (3)",
        ),
    ] {
        let (s, e) = error_of(app.post_json("/webhook", &body).await).await;
        assert_eq!(s, 400, "{e}");
        assert!(e.contains(needle), "{e:?} lacks {needle:?}");
    }
    assert_eq!(
        stored_alerts(&app).await,
        0,
        "a refused webhook stores nothing"
    );
    // API v2 keeps partial accept: the alert within the limits is stored.
    let (s, e) = error_of(
        app.post_json(
            "/api/v2/alerts",
            &json!([{"labels": {"alertname": "Fine"}}, {"labels": {"alertname": "Big", "big": long_value}}]),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(e.contains("alerts[1].labels.big"), "{e}");
    assert_eq!(stored_alerts(&app).await, 1);
    app.stop().await;
}

/// The defaults hold against the sizes a hostile or broken sender produces: 100,000 labels
/// on one alert, a 1 MB label value, 20,000 alerts in one request — each a 400 naming the
/// limit, nothing stored, the router healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limits_refuse_huge_alerts() {
    let app = TestApp::start(
        "route:\n  receiver: ops\n  group_wait: 1h\nreceivers:\n  - name: ops\n    log_configs: [{}]\n",
    )
    .await;
    let mut many = alert(&[("alertname", "Many")], "firing");
    for i in 0..100_000 {
        many["labels"][format!("l{i}")] = json!("v");
    }
    let huge = alert(
        &[("alertname", "Huge"), ("big", &"x".repeat(1 << 20))],
        "firing",
    );
    // small alerts, so that 20,000 stay within the 4 MiB body limit
    let ok = json!({"status": "firing", "labels": {"alertname": "Ok"}, "annotations": {}, "startsAt": "2026-01-01T00:00:00Z"});
    for (body, needle) in [
        (
            webhook(vec![many]),
            "more than ingest.max_labels_per_alert (256)",
        ),
        (
            webhook(vec![huge]),
            "alerts[0].labels.big: 1048579 bytes, more than ingest.max_label_bytes (65536)",
        ),
        (
            webhook(vec![ok; 20_000]),
            "20000 alerts in one request, more than ingest.max_alerts_per_request (10000)",
        ),
    ] {
        let (s, e) = error_of(app.post_json("/webhook", &body).await).await;
        assert_eq!(s, 400, "{e}");
        assert!(e.contains(needle), "{e:?} lacks {needle:?}");
    }
    assert_eq!(stored_alerts(&app).await, 0);
    assert_eq!(app.status(reqwest::Method::GET, "/-/healthy").await, 200);
    app.stop().await;
}

/// Hostile bodies get a clear 400 (never a panic, never a 2xx for nothing stored), and the
/// router stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_clear_errors_and_the_router_stays_up() {
    let app =
        TestApp::start(&CONFIG.replace("max_body_bytes: 2048", "max_body_bytes: 4194304")).await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("/api/v2/alerts", deep.clone(), "recursion limit"),
        ("/webhook", deep, "recursion limit"),
        (
            "/api/v2/alerts",
            b"[{\"labels\":{\"alertname\":\"\xff\xfe\"}}]".to_vec(),
            "invalid JSON",
        ),
        (
            "/api/v2/alerts",
            br#"[{"labels":{"alertname":"T"},"startsAt":"NaN"}]"#.to_vec(),
            "alerts[0].startsAt",
        ),
        (
            "/api/v2/alerts",
            br#"[{"labels":{"alertname":"T"},"startsAt":"10000-01-01T00:00:00Z"}]"#.to_vec(),
            "alerts[0].startsAt",
        ),
        (
            "/api/v2/alerts",
            br#"[{"labels":{"alertname":"T","x":1e999}}]"#.to_vec(),
            "",
        ),
        (
            "/api/v2/alerts",
            br#"[{"labels":{"alertname":"T"}"#.to_vec(),
            "invalid JSON",
        ),
    ];
    for (path, body, needle) in cases {
        let r = app.post_raw(path, Some("application/json"), body).await;
        let (s, e) = error_of(r).await;
        assert_eq!(s, 400, "{path}: {e}");
        assert!(e.contains(needle), "{e:?} lacks {needle:?}");
    }
    // Duplicate keys: the last one wins (as Go's decoder), stored once.
    let r = app
        .post_raw(
            "/api/v2/alerts",
            Some("application/json"),
            br#"[{"labels":{"alertname":"A","alertname":"B"}}]"#.to_vec(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let stored = app.get_json("/admin/v1/alerts").await;
    assert_eq!(stored.as_array().unwrap().len(), 1);
    assert_eq!(stored[0]["labels"]["alertname"], "B");
    assert_eq!(app.status(reqwest::Method::GET, "/-/healthy").await, 200);
    app.stop().await;
}
