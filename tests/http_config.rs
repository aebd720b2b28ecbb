//! Alertmanager's `http_config` on the HTTP integrations, through the real router: each
//! way of authenticating reaches the destination as the header it should be, OAuth2
//! client credentials are fetched from a token endpoint and cached, an invalid combination
//! is refused at load time, and no credential shows up in the admin API.
mod common;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn config(http_config: &str, url: &str) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n\
         receivers:\n  - name: hook\n    webhook_configs:\n      - url: '{url}'\n        http_config:\n{http_config}"
    )
}

async fn fire(app: &TestApp, alertname: &str) {
    let body = webhook(vec![alert(&[("alertname", alertname)], "firing")]);
    assert_eq!(app.post_json("/webhook", &body).await.status(), 200);
}

/// Start the router with `http_config`, send one alert, and return the Authorization
/// header the destination saw.
async fn authorization_seen(http_config: &str) -> String {
    let hook = MockServer::start(Reply::ok(""), None).await;
    let app = TestApp::start(&config(http_config, &hook.url("/h"))).await;
    fire(&app, "Auth").await;
    wait_for(WAIT, "the webhook", || async {
        (hook.count() > 0).then_some(())
    })
    .await;
    let seen = hook.requests()[0]
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    app.stop().await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_basic_and_authorization_headers() {
    assert_eq!(
        authorization_seen("          bearer_token: tok-123\n").await,
        "Bearer tok-123"
    );
    assert_eq!(
        authorization_seen("          basic_auth: {username: alice, password: 'p@ss'}\n").await,
        // base64("alice:p@ss")
        "Basic YWxpY2U6cEBzcw=="
    );
    assert_eq!(
        authorization_seen("          authorization: {type: Token, credentials: xyz}\n").await,
        "Token xyz"
    );
    assert_eq!(
        authorization_seen("          authorization: {credentials: abc}\n").await,
        "Bearer abc",
        "authorization.type defaults to Bearer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_client_credentials_are_fetched_and_cached() {
    let tokens = MockServer::start(
        Reply::ok(r#"{"access_token":"at-1","token_type":"Bearer","expires_in":3600}"#),
        None,
    )
    .await;
    let hook = MockServer::start(Reply::ok(""), None).await;
    let oauth = format!(
        "          oauth2:\n            client_id: router\n            client_secret: 'sh h'\n            token_url: '{}'\n            scopes: [alerts.write, other]\n            endpoint_params: {{audience: chat}}\n",
        tokens.url("/token")
    );
    let app = TestApp::start(&config(&oauth, &hook.url("/h"))).await;
    fire(&app, "First").await;
    fire(&app, "Second").await;
    wait_for(WAIT, "two webhooks", || async {
        (hook.count() >= 2).then_some(())
    })
    .await;
    for r in hook.requests() {
        assert_eq!(
            r.headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some("Bearer at-1")
        );
    }
    assert_eq!(tokens.count(), 1, "the token is cached until it expires");
    let t = &tokens.requests()[0];
    let form = String::from_utf8_lossy(&t.body).into_owned();
    for part in [
        "grant_type=client_credentials",
        "scope=alerts.write+other",
        "audience=chat",
    ] {
        assert!(form.contains(part), "{part} missing from {form}");
    }
    assert_eq!(
        t.headers.get("authorization").and_then(|v| v.to_str().ok()),
        // base64("router:sh+h"): the client credentials are form-encoded first (RFC 6749 §2.3.1)
        Some("Basic cm91dGVyOnNoK2g="),
    );
    let listing = app
        .client
        .get(app.url("/admin/v1/notifications"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(!listing.contains("at-1") && !listing.contains("sh h"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_token_endpoint_refusal_is_a_dead_letter_without_secrets() {
    let tokens = MockServer::start(Reply::status(401, "bad client"), None).await;
    let hook = MockServer::start(Reply::ok(""), None).await;
    let oauth = format!(
        "          oauth2: {{client_id: router, client_secret: TOPSECRET, token_url: '{}'}}\n",
        tokens.url("/token")
    );
    let app = TestApp::start(&config(&oauth, &hook.url("/h"))).await;
    fire(&app, "Refused").await;
    let dead = wait_for(WAIT, "a dead letter", || async {
        app.notifications("state=dead").await.into_iter().next()
    })
    .await;
    let err = dead["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("oauth2 token") && err.contains("401"), "{err}");
    assert!(!err.contains("TOPSECRET"), "{err}");
    assert_eq!(hook.count(), 0, "nothing sent without a token");
    app.stop().await;
}

#[tokio::test]
async fn two_ways_of_authenticating_are_refused_at_load() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yml");
    std::fs::write(
        &path,
        full_config(
            dir.path(),
            &config(
                "          bearer_token: a\n          basic_auth: {username: u, password: p}\n",
                "http://127.0.0.1:9/h",
            ),
            "127.0.0.1:0",
        ),
    )
    .expect("write");
    let e = alert_router::config::Config::load_file(&path)
        .expect_err("two auth methods must be refused")
        .to_string();
    assert!(
        e.contains("webhook_configs[0]") && e.contains("at most one"),
        "{e}"
    );
}
