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
    // A slow token endpoint: the groups below are sent together, and every one of them
    // must wait for the one fetch rather than start its own.
    let tokens = MockServer::start(
        Reply::ok(r#"{"access_token":"at-1","token_type":"Bearer","expires_in":3600}"#)
            .with_delay(Duration::from_millis(300)),
        None,
    )
    .await;
    let hook = MockServer::start(Reply::ok(""), None).await;
    let oauth = format!(
        "          oauth2:\n            client_id: router\n            client_secret: 'sh h'\n            token_url: '{}'\n            scopes: [alerts.write, other]\n            endpoint_params: {{audience: chat}}\n",
        tokens.url("/token")
    );
    let app = TestApp::start(&config(&oauth, &hook.url("/h"))).await;
    let body = webhook(
        ["First", "Second", "Third", "Fourth"]
            .iter()
            .map(|n| alert(&[("alertname", n)], "firing"))
            .collect(),
    );
    assert_eq!(app.post_json("/webhook", &body).await.status(), 200);
    wait_for(WAIT, "four webhooks", || async {
        (hook.count() >= 4).then_some(())
    })
    .await;
    for r in hook.requests() {
        assert_eq!(
            r.headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some("Bearer at-1")
        );
    }
    assert_eq!(
        tokens.count(),
        1,
        "one fetch for concurrent sends, then the token is cached until it expires"
    );
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

/// A loopback HTTPS endpoint with a certificate from a private CA (optionally requiring a
/// client certificate from the same CA): answers `200 ok` to every complete request and
/// counts them.
struct TlsServer {
    port: u16,
    served: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    dir: tempfile::TempDir,
}

impl TlsServer {
    async fn start(require_client_cert: bool) -> TlsServer {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls;
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alert-router test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(
            ca_params,
            rcgen::KeyPair::generate().expect("key"),
        )
        .expect("ca cert");
        let leaf = |name: &str| {
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = rcgen::CertificateParams::new(vec![name.to_string()])
                .expect("params")
                .signed_by(&key, &ca)
                .expect("leaf");
            (cert, key)
        };
        let (server_cert, server_key) = leaf("localhost");
        let (client_cert, client_key) = leaf("alert-router");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
        std::fs::write(dir.path().join("client.pem"), client_cert.pem()).expect("write");
        std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).expect("write");

        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der().clone()).expect("root");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der())
            .expect("key der");
        let config = builder
            .with_single_cert(vec![server_cert.der().clone()], key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = served.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, count) = (acceptor.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = tls.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        let Some(end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsServer { port, served, dir }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/hook", self.port)
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn served(&self) -> usize {
        self.served.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The error of the first failed delivery attempt (lower case), once there is one.
async fn first_failure(app: &TestApp) -> String {
    let failed = wait_for(WAIT, "a failed attempt", || async {
        app.notifications("state=failed").await.into_iter().next()
    })
    .await;
    failed["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_ca_and_client_certificate() {
    // Trusting the private CA: delivered.
    let server = TlsServer::start(false).await;
    let app = TestApp::start(&config(
        &format!(
            "          tls_config: {{ca_file: '{}'}}\n",
            server.file("ca.pem")
        ),
        &server.url(),
    ))
    .await;
    fire(&app, "PrivateCa").await;
    wait_for(WAIT, "delivery over TLS", || async {
        (server.served() == 1).then_some(())
    })
    .await;
    app.stop().await;

    // Without the CA the certificate is not trusted: nothing is served, the attempt fails
    // with a certificate error and stays queued for retry.
    let app = TestApp::start(&config(
        "          follow_redirects: false\n",
        &server.url(),
    ))
    .await;
    fire(&app, "Untrusted").await;
    let err = first_failure(&app).await;
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(server.served(), 1);
    app.stop().await;

    // Mutual TLS: a server requiring a client certificate refuses a client without one…
    let mtls = TlsServer::start(true).await;
    let app = TestApp::start(&config(
        &format!(
            "          tls_config: {{ca_file: '{}'}}\n",
            mtls.file("ca.pem")
        ),
        &mtls.url(),
    ))
    .await;
    fire(&app, "NoClientCert").await;
    wait_for(
        WAIT,
        "a failed attempt without a client certificate",
        || async { app.notifications("state=failed").await.into_iter().next() },
    )
    .await;
    assert_eq!(mtls.served(), 0);
    app.stop().await;
    // …and gets one from cert_file/key_file.
    let app = TestApp::start(&config(
        &format!(
            "          tls_config:\n            ca_file: '{}'\n            cert_file: '{}'\n            key_file: '{}'\n",
            mtls.file("ca.pem"),
            mtls.file("client.pem"),
            mtls.file("client.key")
        ),
        &mtls.url(),
    ))
    .await;
    fire(&app, "Mtls").await;
    wait_for(WAIT, "delivery over mutual TLS", || async {
        (mtls.served() == 1).then_some(())
    })
    .await;
    app.stop().await;
}

/// `tls_config.server_name`: the certificate (issued to `localhost`) is verified against
/// that name although the URL names the server by IP address; without it, or with another
/// name, the certificate is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_is_the_name_the_certificate_is_verified_for() {
    let server = TlsServer::start(true).await;
    let by_ip = format!("https://127.0.0.1:{}/hook", server.port);
    let tls = |name: Option<&str>| {
        format!(
            "          tls_config:\n            ca_file: '{}'\n            cert_file: '{}'\n            key_file: '{}'\n{}",
            server.file("ca.pem"),
            server.file("client.pem"),
            server.file("client.key"),
            name.map(|n| format!("            server_name: {n}\n"))
                .unwrap_or_default()
        )
    };
    for (name, alertname) in [(None, "NoName"), (Some("other.example"), "OtherName")] {
        let app = TestApp::start(&config(&tls(name), &by_ip)).await;
        fire(&app, alertname).await;
        let err = first_failure(&app).await;
        assert!(err.contains("certificate"), "{name:?}: {err}");
        app.stop().await;
    }
    assert_eq!(server.served(), 0);
    // the right name, with the private CA and a client certificate (mutual TLS)
    let app = TestApp::start(&config(&tls(Some("localhost")), &by_ip)).await;
    fire(&app, "RightName").await;
    wait_for(WAIT, "delivery verified for server_name", || async {
        (server.served() == 1).then_some(())
    })
    .await;
    app.stop().await;
}
