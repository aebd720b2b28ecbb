//! Storm digests: 200 groups flushing at once into a destination limited to one message
//! per second. The rate limit holds in every window, the groups waiting for the limiter
//! go out as one digest, every group's state arrives, no message exceeds the platform's
//! size limits, and the admin API and metrics show which digest carried what.
mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const GROUPS: usize = 200;
const WAIT: Duration = Duration::from_secs(20);

fn config(receivers: &str) -> String {
    format!(
        "route:\n  receiver: storm\n  group_by: [alertname, instance]\n  group_wait: 1s\n  group_interval: 1h\n\
         receivers:\n  - name: storm\n{receivers}"
    )
}

/// One post with `GROUPS` alerts, each its own group.
async fn storm(app: &TestApp) -> BTreeSet<String> {
    let alerts: Vec<Value> = (0..GROUPS)
        .map(|i| {
            let sev = if i % 7 == 0 { "critical" } else { "warning" };
            alert(
                &[
                    ("alertname", "Storm"),
                    ("instance", &format!("host-{i:03}")),
                    ("severity", sev),
                ],
                "firing",
            )
        })
        .collect();
    assert_eq!(
        app.post_json("/webhook", &webhook(alerts)).await.status(),
        200
    );
    let stored = app.get_json("/admin/v1/alerts").await;
    stored
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["fingerprint"].as_str().map(str::to_string))
        .collect()
}

/// Arrival gaps between consecutive requests (the sink saw them in order).
fn gaps(sink: &MockServer) -> Vec<Duration> {
    let r = sink.requests();
    r.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_goes_out_as_a_digest_within_the_rate_limit_and_nothing_is_lost() {
    let sink = MockServer::start(Reply::ok(""), None).await;
    let app = TestApp::start(&config(&format!(
        "    webhook_configs:\n      - url: '{}'\n        rate_limit: {{messages: 1, per: 1s}}\n        digest_threshold: 10\n",
        sink.url("/hook")
    )))
    .await;
    let fingerprints = storm(&app).await;
    assert_eq!(fingerprints.len(), GROUPS);

    // Every group's alert arrives, in a message of its own or in a digest.
    let arrived = wait_for(WAIT, "every group's state at the sink", || async {
        let seen: BTreeSet<String> = sink
            .requests()
            .iter()
            .flat_map(|r| {
                r.json()["alerts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|a| a["fingerprint"].as_str().map(str::to_string))
            })
            .collect();
        (seen == fingerprints).then_some(seen)
    })
    .await;
    assert_eq!(arrived.len(), GROUPS);
    let reqs = sink.requests();
    assert!(
        reqs.len() <= 3,
        "a digest instead of {GROUPS} messages: got {}",
        reqs.len()
    );
    for g in gaps(&sink) {
        // 1 per second; arrival times at the sink carry jitter (over 100 ms when loaded).
        assert!(g >= Duration::from_millis(750), "two messages {g:?} apart");
    }
    let digest = reqs
        .iter()
        .map(Received::json)
        .find(|b| b["digest"].is_object())
        .expect("a digest message");
    let d = &digest["digest"];
    let carried = d["notifications"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(d["groups"], carried);
    assert!(carried > 10, "{d}");
    assert_eq!(d["firing_groups"], carried);
    let first_line = d["lines"][0].as_str().unwrap_or_default();
    assert!(
        first_line.contains("critical"),
        "most severe first: {first_line}"
    );

    // The admin API shows what each digest carried (delivery bookkeeping is recorded
    // after the send, so wait for it); the metrics count it.
    let merged = wait_for(WAIT, "the carried notifications marked merged", || async {
        let m = app.notifications("state=merged").await;
        (m.len() == carried).then_some(m)
    })
    .await;
    let digest_record = wait_for(WAIT, "the digest delivered", || async {
        app.notifications("state=delivered")
            .await
            .into_iter()
            .find(|n| n["message"]["digest"].is_object())
    })
    .await;
    let digest_id = digest_record["id"].as_u64().expect("digest id");
    let by = format!("carried by digest notification {digest_id}");
    assert!(merged
        .iter()
        .all(|n| n["last_error"].as_str() == Some(by.as_str())));
    let ids: BTreeSet<u64> = merged.iter().filter_map(|n| n["id"].as_u64()).collect();
    let listed: BTreeSet<u64> = d["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(
        ids, listed,
        "the digest lists exactly the notifications it carried"
    );
    assert_eq!(
        metric(
            &app.base,
            "alert_router_digests_total{receiver=\"storm\",integration=\"webhook\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &app.base,
            "alert_router_notifications_digested_total{receiver=\"storm\",integration=\"webhook\"}"
        )
        .await,
        carried as f64
    );
    app.stop().await;
}

/// Slack's documented limits (message text 40,000 characters, attachment text 8,000,
/// title 1,024): a digest of 199 groups must still fit.
fn slack_size_limits(r: &Received) -> Result<(), String> {
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("invalid_payload: {e}"))?;
    let len = |p: &Value| p.as_str().map_or(0, |s| s.encode_utf16().count());
    if len(&v["text"]) > 40_000 {
        return Err("msg_too_long".into());
    }
    for a in v["attachments"].as_array().into_iter().flatten() {
        if len(&a["text"]) > 8_000 || len(&a["title"]) > 1_024 {
            return Err("attachment too long".into());
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_digest_fits_the_platform_limits() {
    let slack = MockServer::start(
        Reply::ok("ok"),
        Some(std::sync::Arc::new(slack_size_limits)),
    )
    .await;
    let app = TestApp::start(&config(&format!(
        "    slack_configs:\n      - api_url: '{}'\n        rate_limit: {{messages: 1, per: 1s}}\n",
        slack.url("/services/T/B/X")
    )))
    .await;
    storm(&app).await;
    let title = wait_for(WAIT, "a Slack digest", || async {
        slack.requests().iter().find_map(|r| {
            let t = r.json()["attachments"][0]["title"].as_str()?.to_string();
            t.contains("alert groups changed").then_some(t)
        })
    })
    .await;
    assert!(title.contains("firing"), "{title}");
    assert!(slack.violations().is_empty(), "{:?}", slack.violations());
    assert!(slack.count() <= 3, "got {} messages", slack.count());
    for g in gaps(&slack) {
        assert!(g >= Duration::from_millis(750), "two messages {g:?} apart");
    }
    app.stop().await;
}
