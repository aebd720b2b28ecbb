//! Silences, acknowledgements, inhibition and time intervals, end to end through HTTP:
//! what is (not) sent, what the APIs say about it, and that resolutions that happen
//! while an alert is muted are still announced once the mute ends.
mod common;
use common::*;
use serde_json::{json, Value};

const CONFIG: &str = r#"
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 200ms
  group_interval: 400ms
  repeat_interval: 1h
  routes:
    - receiver: night
      matchers: ['team="night"']
      mute_time_intervals: [always]
    - receiver: office
      matchers: ['team="office"']
      active_time_intervals: [year2000]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [cluster]
time_intervals:
  - name: always
    time_intervals:
      - weekdays: ['sunday:saturday']
  - name: year2000
    time_intervals:
      - years: ['2000']
receivers:
  - name: ops
    log_configs: [{send_resolved: true}]
  - name: night
    log_configs: [{send_resolved: true}]
  - name: office
    log_configs: [{send_resolved: true}]
"#;

fn in_one_hour() -> String {
    alert_router::alert::format_time(time::OffsetDateTime::now_utc() + time::Duration::hours(1))
}

async fn silence(app: &TestApp, name: &str, value: &str) -> String {
    let r = app
        .post_json(
            "/api/v2/silences",
            &json!({
                "matchers": [{"name": name, "value": value, "isRegex": false, "isEqual": true}],
                "startsAt": alert_router::alert::format_time(time::OffsetDateTime::now_utc()),
                "endsAt": in_one_hour(),
                "createdBy": "test",
                "comment": "maintenance",
            }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["silenceID"].as_str().unwrap().to_string()
}

async fn expire(app: &TestApp, id: &str) {
    let r = app
        .client
        .delete(app.url(&format!("/api/v2/silence/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Alert labels in a notification, with their status.
fn alerts_of(n: &Value) -> Vec<(String, String)> {
    n["message"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["instance"].as_str().unwrap_or("").to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn resolved_like(firing: &Value) -> Value {
    let mut r = firing.clone();
    r["status"] = "resolved".into();
    r["endsAt"] = alert_router::alert::format_time(time::OffsetDateTime::now_utc()).into();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_resolution_is_announced_when_the_silence_ends() {
    let app = TestApp::start(CONFIG).await;
    let a = alert(&[("alertname", "Disk"), ("instance", "a")], "firing");
    app.post_json("/webhook", &webhook(vec![a.clone()])).await;
    wait_count(&app, 1).await;
    let id = silence(&app, "instance", "a").await;
    // The alert shows as silenced in both APIs.
    let v = app
        .get_json("/api/v2/alerts?filter=instance%3D%22a%22")
        .await;
    assert_eq!(v[0]["status"]["state"], "suppressed");
    assert_eq!(v[0]["status"]["silencedBy"], json!([id]));
    let admin = app.get_json("/admin/v1/alerts").await;
    assert_eq!(admin[0]["silencedBy"], json!([id]));
    // It resolves while silenced: nothing is sent, however many flushes pass...
    app.post_json("/webhook", &webhook(vec![resolved_like(&a)]))
        .await;
    wait_ticks(&app, "Disk", 3).await;
    assert_eq!(sent(&app).await.len(), 1, "nothing sent while silenced");
    // ...and the group keeps the resolved alert it owes a resolution for.
    assert!(group_last_flush(&app, "Disk").await.is_some());
    expire(&app, &id).await;
    let v = wait_count(&app, 2).await;
    assert_eq!(alerts_of(&v[1]), vec![("a".into(), "resolved".into())]);
    assert_eq!(v[1]["message"]["status"], "resolved");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_new_alert_is_sent_when_the_silence_ends_and_others_go_out_meanwhile() {
    let app = TestApp::start(CONFIG).await;
    let id = silence(&app, "instance", "a").await;
    let a = alert(&[("alertname", "Cpu"), ("instance", "a")], "firing");
    let b = alert(&[("alertname", "Cpu"), ("instance", "b")], "firing");
    app.post_json("/webhook", &webhook(vec![a.clone(), b.clone()]))
        .await;
    // Only b goes out.
    let v = wait_count(&app, 1).await;
    assert_eq!(alerts_of(&v[0]), vec![("b".into(), "firing".into())]);
    wait_ticks(&app, "Cpu", 2).await;
    assert_eq!(sent(&app).await.len(), 1);
    // The groups view says why a is missing.
    let groups = app.get_json("/admin/v1/groups").await;
    let g = &groups[0];
    let fa = alert_router::alert::Fingerprint::of(
        &[("alertname", "Cpu"), ("instance", "a")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .to_string();
    assert_eq!(g["suppressed"][&fa]["silencedBy"], json!([id]));
    // Metrics: one active silence, one suppressed alert.
    wait_for(WAIT, "silence and suppression gauges", || async {
        let s = metric(&app.base, "alert_router_silences{state=\"active\"}").await;
        let a = metric(&app.base, "alert_router_alerts_suppressed").await;
        (s == 1.0 && a == 1.0).then_some(())
    })
    .await;
    expire(&app, &id).await;
    let v = wait_count(&app, 2).await;
    assert_eq!(
        alerts_of(&v[1]),
        vec![("a".into(), "firing".into()), ("b".into(), "firing".into())]
    );
    assert_eq!(v[1]["message"]["notification_reason"], "new alerts added");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_mutes_until_the_alert_resolves_then_expires() {
    let app = TestApp::start(CONFIG).await;
    let a = alert(&[("alertname", "Mem"), ("instance", "a")], "firing");
    app.post_json("/webhook", &webhook(vec![a.clone()])).await;
    wait_count(&app, 1).await;
    let stored = app.get_json("/admin/v1/alerts").await;
    let fp = stored[0]["fingerprint"].as_str().unwrap().to_string();
    // Bad requests name the field.
    let r = app
        .post_json(
            &format!("/admin/v1/alerts/{fp}/ack"),
            &json!({"createdBy": "", "comment": "x"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("createdBy"));
    let r = app
        .post_json(
            "/admin/v1/alerts/0000000000000001/ack",
            &json!({"createdBy": "me", "comment": "x"}),
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = app
        .post_json(
            &format!("/admin/v1/alerts/{fp}/ack"),
            &json!({"createdBy": "oncall", "comment": "looking"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let ack: Value = r.json().await.unwrap();
    let id = ack["silenceID"].as_str().unwrap().to_string();
    assert_eq!(ack["fingerprints"], json!([fp]));
    // A second alert in the same group is not acknowledged: it notifies.
    let b = alert(&[("alertname", "Mem"), ("instance", "b")], "firing");
    app.post_json("/webhook", &webhook(vec![a.clone(), b.clone()]))
        .await;
    let v = wait_count(&app, 2).await;
    assert!(
        alerts_of(&v[1]).contains(&("b".into(), "firing".into())),
        "{:?}",
        alerts_of(&v[1])
    );
    assert!(!alerts_of(&v[1]).iter().any(|(i, _)| i == "a"));
    // a resolves: the acknowledgement expires by itself and the resolution goes out.
    app.post_json("/webhook", &webhook(vec![resolved_like(&a), b.clone()]))
        .await;
    wait_for(WAIT, "acknowledgement expired", || async {
        let s = app.get_json(&format!("/api/v2/silence/{id}")).await;
        (s["status"]["state"] == "expired").then_some(())
    })
    .await;
    let v = wait_count(&app, 3).await;
    assert!(
        alerts_of(&v[2]).contains(&("a".into(), "resolved".into())),
        "{:?}",
        alerts_of(&v[2])
    );
    // It fires again: not silenced any more.
    let a2 = alert(&[("alertname", "Mem"), ("instance", "a")], "firing");
    app.post_json("/webhook", &webhook(vec![a2, b.clone()]))
        .await;
    let v = wait_count(&app, 4).await;
    assert!(alerts_of(&v[3]).contains(&("a".into(), "firing".into())));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_acknowledgement_binds_the_firing_alerts_of_the_group() {
    let app = TestApp::start(CONFIG).await;
    let a = alert(&[("alertname", "Net"), ("instance", "a")], "firing");
    let b = alert(&[("alertname", "Net"), ("instance", "b")], "firing");
    app.post_json("/webhook", &webhook(vec![a.clone(), b.clone()]))
        .await;
    wait_count(&app, 1).await;
    let groups = app.get_json("/admin/v1/groups").await;
    let gid = groups[0]["id"].as_str().unwrap().to_string();
    let r = app
        .post_json(
            &format!("/admin/v1/groups/{}/ack", urlencode(&gid)),
            &json!({"createdBy": "oncall", "comment": "on it"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let ack: Value = r.json().await.unwrap();
    assert_eq!(ack["fingerprints"].as_array().unwrap().len(), 2);
    let listed = app.get_json("/admin/v1/silences?state=active").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["matchers"][0]["name"], "alertname");
    assert_eq!(listed[0]["fingerprints"].as_array().unwrap().len(), 2);
    // Both resolve: the acknowledgement expires.
    app.post_json(
        "/webhook",
        &webhook(vec![resolved_like(&a), resolved_like(&b)]),
    )
    .await;
    wait_for(WAIT, "group acknowledgement expired", || async {
        let l = app.get_json("/admin/v1/silences?state=expired").await;
        (l.as_array().unwrap().len() == 1).then_some(())
    })
    .await;
    let r = app
        .post_json(
            "/admin/v1/groups/nope/ack",
            &json!({"createdBy": "oncall", "comment": "on it"}),
        )
        .await;
    assert_eq!(r.status(), 404);
    app.stop().await;
}

fn urlencode(s: &str) -> String {
    alert_router::template::urlencode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inhibited_alerts_wait_for_their_source_to_resolve() {
    let app = TestApp::start(CONFIG).await;
    let crit = alert(
        &[
            ("alertname", "Down"),
            ("severity", "critical"),
            ("cluster", "c1"),
        ],
        "firing",
    );
    let warn1 = alert(
        &[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("cluster", "c1"),
            ("instance", "w1"),
        ],
        "firing",
    );
    let warn2 = alert(
        &[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("cluster", "c2"),
            ("instance", "w2"),
        ],
        "firing",
    );
    app.post_json("/webhook", &webhook(vec![crit.clone()]))
        .await;
    wait_count(&app, 1).await;
    app.post_json("/webhook", &webhook(vec![warn1.clone(), warn2.clone()]))
        .await;
    let v = wait_count(&app, 2).await;
    // Only the warning of the other cluster.
    assert_eq!(alerts_of(&v[1]), vec![("w2".into(), "firing".into())]);
    wait_ticks(&app, "Slow", 2).await;
    assert_eq!(sent(&app).await.len(), 2);
    let inhibited = app
        .get_json("/api/v2/alerts?filter=instance%3D%22w1%22")
        .await;
    assert_eq!(inhibited[0]["status"]["state"], "suppressed");
    assert_eq!(
        inhibited[0]["status"]["inhibitedBy"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // amtool's default query (inhibited=false) leaves it out.
    let shown = app
        .get_json("/api/v2/alerts?active=true&silenced=false&inhibited=false")
        .await;
    assert!(!shown
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["labels"]["instance"] == "w1"));
    // The critical alert resolves: the warning goes out.
    app.post_json("/webhook", &webhook(vec![resolved_like(&crit)]))
        .await;
    let v = wait_for(WAIT, "inhibited warning released", || async {
        let v = sent(&app).await;
        v.iter()
            .any(|n| alerts_of(n).contains(&("w1".into(), "firing".into())))
            .then_some(v)
    })
    .await;
    assert!(v.len() >= 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_muted_by_time_intervals_send_nothing_and_say_why() {
    let app = TestApp::start(CONFIG).await;
    let night = alert(&[("alertname", "Batch"), ("team", "night")], "firing");
    let office = alert(&[("alertname", "Desk"), ("team", "office")], "firing");
    let other = alert(&[("alertname", "Other")], "firing");
    app.post_json("/webhook", &webhook(vec![night, office, other]))
        .await;
    let v = wait_count(&app, 1).await;
    assert_eq!(v[0]["receiver"], "ops");
    wait_ticks(&app, "Batch", 2).await;
    wait_ticks(&app, "Desk", 2).await;
    assert_eq!(sent(&app).await.len(), 1, "muted routes sent something");
    let groups = app.get_json("/api/v2/alerts/groups").await;
    let by_receiver = |r: &str| {
        groups
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["receiver"]["name"] == r)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        by_receiver("night")["alerts"][0]["status"]["mutedBy"],
        json!(["always"])
    );
    assert_eq!(
        by_receiver("office")["alerts"][0]["status"]["mutedBy"],
        json!(["year2000"])
    );
    assert_eq!(by_receiver("ops")["alerts"][0]["status"]["state"], "active");
    let unmuted = app.get_json("/api/v2/alerts/groups?muted=false").await;
    assert_eq!(unmuted.as_array().unwrap().len(), 1);
    let admin = app.get_json("/admin/v1/groups").await;
    assert!(admin
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["mutedBy"] == json!(["always"])));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_v2_errors_and_partial_accept() {
    let app = TestApp::start(CONFIG).await;
    // Invalid silences: 400 (422 for a body missing what Alertmanager's schema requires),
    // with a JSON body naming the problem.
    let start = alert_router::alert::format_time(time::OffsetDateTime::now_utc());
    for (body, code, needle) in [
        (
            json!({"matchers": [], "startsAt": start, "endsAt": in_one_hour(), "createdBy": "x", "comment": "y"}),
            422,
            "matchers",
        ),
        (
            json!({"matchers": [{"name": "a", "value": ".*", "isRegex": true}], "startsAt": start, "endsAt": in_one_hour(), "createdBy": "x", "comment": "y"}),
            400,
            "empty string",
        ),
        (
            json!({"matchers": [{"name": "a", "value": "b", "isRegex": false}], "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2020-01-01T01:00:00Z", "createdBy": "x", "comment": "y"}),
            400,
            "in the past",
        ),
        (
            json!({"matchers": [{"name": "a", "value": "b", "isRegex": false}], "startsAt": start, "createdBy": "x", "comment": "y"}),
            422,
            "endsAt",
        ),
    ] {
        let r = app.post_json("/api/v2/silences", &body).await;
        assert_eq!(r.status(), code, "{body}");
        let e = r.text().await.unwrap();
        assert!(e.contains(needle), "{e} lacks {needle}");
    }
    assert_eq!(
        app.status(reqwest::Method::GET, "/api/v2/silence/not-a-uuid")
            .await,
        422
    );
    assert_eq!(
        app.status(
            reqwest::Method::GET,
            "/api/v2/silence/00000000-0000-4000-8000-000000000000"
        )
        .await,
        404
    );
    assert_eq!(
        app.status(reqwest::Method::GET, "/api/v2/alerts?filter=%7Bbad")
            .await,
        400
    );
    assert_eq!(
        app.status(reqwest::Method::GET, "/api/v2/alerts?receiver=%28")
            .await,
        400
    );
    // Partial accept: the valid alert is stored, the answer is 400 naming the other.
    let r = app
        .post_json(
            "/api/v2/alerts",
            &json!([{"labels": {"alertname": "Good"}}, {"labels": {}}]),
        )
        .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("alerts[1].labels"));
    let stored = app.get_json("/api/v2/alerts").await;
    assert_eq!(stored.as_array().unwrap().len(), 1);
    assert_eq!(stored[0]["labels"]["alertname"], "Good");
    assert_eq!(stored[0]["receivers"], json!([{"name": "ops"}]));
    // Receivers and status.
    let rs = app.get_json("/api/v2/receivers").await;
    assert_eq!(rs.as_array().unwrap().len(), 3);
    let st = app.get_json("/api/v2/status").await;
    assert_eq!(st["cluster"]["status"], "disabled");
    let original = st["config"]["original"].as_str().unwrap();
    assert!(original.contains("inhibit_rules"), "{original}");
    assert!(!original.contains("storage"), "{original}");
    assert_eq!(
        app.status(reqwest::Method::GET, "/api/v1/alerts").await,
        410
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_writes_need_admin_credentials() {
    let cfg = format!(
        "admin:\n  bearer_tokens: [admin-token]\ningest:\n  auth:\n    bearer_tokens: [ingest-token]\n{CONFIG}"
    );
    let app = TestApp::start(&cfg).await;
    let body = json!({"matchers": [{"name": "a", "value": "b", "isRegex": false}], "startsAt": alert_router::alert::format_time(time::OffsetDateTime::now_utc()), "endsAt": in_one_hour(), "createdBy": "x", "comment": "y"});
    for token in [None, Some("ingest-token")] {
        let mut req = app.client.post(app.url("/api/v2/silences")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        assert_eq!(req.send().await.unwrap().status(), 401, "{token:?}");
    }
    let r = app
        .client
        .post(app.url("/api/v2/silences"))
        .bearer_auth("admin-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Reads need them too; alerts are posted with the ingest token.
    assert_eq!(
        app.client
            .get(app.url("/api/v2/alerts"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = app
        .client
        .post(app.url("/api/v2/alerts"))
        .bearer_auth("ingest-token")
        .json(&json!([{"labels": {"alertname": "A"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_survive_a_restart() {
    let app = TestApp::start(CONFIG).await;
    let id = silence(&app, "alertname", "Kept").await;
    let dir = app.stop().await;
    let app = TestApp::start_in(dir, CONFIG).await;
    let s = app.get_json(&format!("/api/v2/silence/{id}")).await;
    assert_eq!(s["status"]["state"], "active");
    app.post_json(
        "/webhook",
        &webhook(vec![alert(&[("alertname", "Kept")], "firing")]),
    )
    .await;
    wait_ticks(&app, "Kept", 2).await;
    assert!(sent(&app).await.is_empty());
    app.stop().await;
}
