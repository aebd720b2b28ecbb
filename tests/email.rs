//! Email integration, black box: the router runs in-process and delivers to a real SMTP
//! server (mailin-embedded) on a random port that offers STARTTLS with a certificate from a
//! test CA, requires AUTH, and records every message; the tests parse what it received with
//! mail-parser and read delivery state through the admin API.
mod common;
use common::*;

use mail_parser::{MessageParser, MimeHeaders};
use mailin_embedded::{response, AuthMechanism, Handler, Response, Server, SslConfig};
use serde_json::Value;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const USER: &str = "alerts-user";
const PASS: &str = "Corr3ct-horse-battery";
const WAIT: Duration = Duration::from_secs(15);

/// One message as the SMTP server received it.
#[derive(Debug, Clone)]
struct Mail {
    envelope_from: String,
    envelope_to: Vec<String>,
    data: Vec<u8>,
    /// EHLO commands seen on the connection before this message (2 = EHLO, STARTTLS, EHLO).
    ehlo_count: u32,
    /// The user that authenticated on the connection.
    auth_user: Option<String>,
}

#[derive(Default)]
struct Shared {
    mails: Vec<Mail>,
    /// (mechanism, user, accepted) for every AUTH attempt.
    auths: Vec<(&'static str, String, bool)>,
    /// Replies to the next RCPT commands, then `rcpt_default` (or 250).
    rcpt_script: VecDeque<(u16, &'static str)>,
    rcpt_default: Option<(u16, &'static str)>,
}

/// The mailin handler; mailin clones it once per connection, so the non-shared fields are
/// per-connection state.
#[derive(Clone)]
struct Recorder {
    shared: Arc<Mutex<Shared>>,
    ehlo_count: u32,
    auth_user: Option<String>,
    from: String,
    to: Vec<String>,
    buf: Vec<u8>,
}

impl Recorder {
    fn auth(&mut self, mechanism: &'static str, user: &str, password: &str) -> Response {
        let ok = user == USER && password == PASS;
        self.shared
            .lock()
            .unwrap()
            .auths
            .push((mechanism, user.to_string(), ok));
        if ok {
            self.auth_user = Some(user.to_string());
            response::AUTH_OK
        } else {
            response::INVALID_CREDENTIALS
        }
    }
}

impl Handler for Recorder {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        self.ehlo_count += 1;
        response::OK
    }

    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_string();
        self.to.clear();
        self.buf.clear();
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let mut s = self.shared.lock().unwrap();
        if let Some((code, text)) = s.rcpt_script.pop_front().or(s.rcpt_default) {
            return Response::custom(code, text.to_string());
        }
        self.to.push(to.to_string());
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = Mail {
            envelope_from: self.from.clone(),
            envelope_to: self.to.clone(),
            data: std::mem::take(&mut self.buf),
            ehlo_count: self.ehlo_count,
            auth_user: self.auth_user.clone(),
        };
        self.shared.lock().unwrap().mails.push(mail);
        response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.auth("PLAIN", user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.auth("LOGIN", user, password)
    }
}

/// An SMTP server on 127.0.0.1:<random> with STARTTLS (certificate for `localhost` signed
/// by a throw-away CA) and AUTH PLAIN/LOGIN; mailin only accepts AUTH once TLS is active and
/// only accepts MAIL after AUTH.
struct SmtpServer {
    port: u16,
    ca_file: std::path::PathBuf,
    shared: Arc<Mutex<Shared>>,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    fn start() -> SmtpServer {
        SmtpServer::start_with(true)
    }

    /// `tls: false` = a server that offers no STARTTLS (and hence no AUTH).
    fn start_with(tls: bool) -> SmtpServer {
        init();
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alert-router test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_file = dir.path().join("ca.pem");
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(&cert_file, leaf.pem()).unwrap();
        std::fs::write(&key_file, leaf_key.serialize_pem()).unwrap();

        let shared = Arc::new(Mutex::new(Shared::default()));
        let handler = Recorder {
            shared: shared.clone(),
            ehlo_count: 0,
            auth_user: None,
            from: String::new(),
            to: Vec::new(),
            buf: Vec::new(),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut server = Server::new(handler);
        let ssl = if tls {
            SslConfig::Trusted {
                cert_path: cert_file.display().to_string(),
                key_path: key_file.display().to_string(),
                chain_path: ca_file.display().to_string(),
            }
        } else {
            SslConfig::None
        };
        server
            .with_name("localhost")
            .with_ssl(ssl)
            .unwrap_or_else(|e| panic!("mailin TLS setup: {e}"))
            .with_auth(AuthMechanism::Plain)
            .with_auth(AuthMechanism::Login)
            .with_num_threads(8)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpServer {
            port,
            ca_file,
            shared,
            _dir: dir,
        }
    }

    fn mails(&self) -> Vec<Mail> {
        self.shared.lock().unwrap().mails.clone()
    }

    fn auths(&self) -> Vec<(&'static str, String, bool)> {
        self.shared.lock().unwrap().auths.clone()
    }

    /// Router config: one email receiver pointed at this server.
    fn config(&self, password: &str, extra: &str) -> String {
        format!(
            r#"delivery:
  backoff_initial: 100ms
  backoff_max: 500ms
route:
  receiver: oncall
  group_by: [team]
  group_wait: 100ms
  group_interval: 300ms
  repeat_interval: 1h
receivers:
  - name: oncall
    email_configs:
      - to: "Ops Team <ops@example.com>, db-oncall@example.com"
        from: "Alert Router <alerts@router.test>"
        smarthost: localhost:{port}
        require_tls: true
        auth_username: {USER}
        auth_password: "{password}"
        tls_config:
          ca_file: {ca}
{extra}"#,
            port = self.port,
            ca = self.ca_file.display(),
        )
    }
}

fn parse(m: &Mail) -> mail_parser::Message<'_> {
    MessageParser::default()
        .parse(&m.data)
        .expect("received DATA parses as a message")
}

fn header_text<'a>(m: &'a mail_parser::Message<'_>, name: &'a str) -> Option<&'a str> {
    m.header_raw(name).map(str::trim)
}

/// Message-ID, In-Reply-To and References values without the angle brackets.
fn ids(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match v {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

fn bare(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

async fn wait_mails(smtp: &SmtpServer, n: usize) -> Vec<Mail> {
    wait_for(WAIT, &format!("{n} mail(s) at the SMTP server"), || async {
        let m = smtp.mails();
        (m.len() >= n).then_some(m)
    })
    .await
}

/// Wait until the only email notification satisfies `pred`.
async fn wait_notification(app: &TestApp, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(WAIT, what, || async {
        let v = app.notifications("integration=email").await;
        v.into_iter().find(|n| pred(n))
    })
    .await
}

fn group() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "HighLatency",
            vec![
                ("alertname", "HighLatency"),
                ("team", "db"),
                ("instance", "db1:9100"),
                ("note", "<script>alert(1)</script>"),
            ],
        ),
        (
            "ReplicationLag",
            vec![
                ("alertname", "ReplicationLag"),
                ("team", "db"),
                ("instance", "db2:9100"),
            ],
        ),
    ]
}

fn post_group(status: &str) -> Value {
    webhook(group().iter().map(|(_, l)| alert(l, status)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_group_is_one_threaded_mail_over_starttls_and_resolved_replies_to_it() {
    let smtp = SmtpServer::start();
    let app = TestApp::start(&smtp.config(PASS, "        send_resolved: true\n")).await;

    // (a) Two firing alerts of one group: one mail.
    assert_eq!(
        app.post_json("/webhook", &post_group("firing"))
            .await
            .status(),
        200
    );
    let n1 = wait_notification(&app, "firing notification delivered", |n| {
        n["state"] == "delivered"
    })
    .await;
    let mails = wait_mails(&smtp, 1).await;
    assert_eq!(mails.len(), 1, "exactly one mail for the group");
    let first = &mails[0];

    // The session: STARTTLS (EHLO twice), then AUTH with the configured credentials.
    assert_eq!(
        first.ehlo_count, 2,
        "EHLO, STARTTLS, EHLO again: the mail went over TLS"
    );
    assert_eq!(first.auth_user.as_deref(), Some(USER));
    let auths = smtp.auths();
    assert!(
        !auths.is_empty()
            && auths
                .iter()
                .all(|(mech, u, ok)| ["PLAIN", "LOGIN"].contains(mech) && u == USER && *ok),
        "AUTH succeeded with the configured user: {auths:?}"
    );
    assert_eq!(first.envelope_from, "alerts@router.test");
    let mut rcpts = first.envelope_to.clone();
    rcpts.sort();
    assert_eq!(rcpts, vec!["db-oncall@example.com", "ops@example.com"]);

    let m = parse(first);
    let subject = m.subject().unwrap_or_default();
    assert!(subject.starts_with("[FIRING:2]"), "subject {subject:?}");
    let from = m.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.address(), Some("alerts@router.test"));
    assert_eq!(from.name(), Some("Alert Router"));
    let to: Vec<&str> = m
        .to()
        .expect("To")
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to, vec!["ops@example.com", "db-oncall@example.com"]);
    let mid1 = m.message_id().expect("Message-ID").to_string();
    assert_eq!(mid1, bare(n1["message_id"].as_str().unwrap()));
    assert_eq!(header_text(&m, "Auto-Submitted"), Some("auto-generated"));
    assert_eq!(header_text(&m, "X-Auto-Response-Suppress"), Some("All"));
    assert_eq!(header_text(&m, "X-Alert-Status"), Some("firing"));
    assert!(header_text(&m, "X-Alert-Group-Key").is_some_and(|k| k.contains("team")));
    assert!(m.date().is_some(), "Date header");
    assert!(
        m.in_reply_to().is_empty(),
        "the first mail starts the thread"
    );

    // MIME: multipart/alternative, text/plain first, text/html last.
    let root = m.root_part().content_type().expect("Content-Type");
    assert_eq!(
        (root.ctype(), root.subtype()),
        ("multipart", Some("alternative"))
    );
    let parts = match &m.root_part().body {
        mail_parser::PartType::Multipart(ids) => ids.clone(),
        other => panic!("root is not multipart: {other:?}"),
    };
    assert_eq!(parts.len(), 2, "exactly two alternatives");
    let text_part = &m.parts[parts[0] as usize];
    let html_part = &m.parts[parts[1] as usize];
    let ct = text_part.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
    let ct = html_part.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("html")));
    let text = text_part.text_contents().expect("text body");
    let html = html_part.text_contents().expect("html body");
    for body in [text, html] {
        for needle in [
            "HighLatency",
            "ReplicationLag",
            "db1:9100",
            "db2:9100",
            "something is wrong",
            "http://prometheus.test/graph",
            "http://alert-router.test",
        ] {
            assert!(body.contains(needle), "{needle:?} missing from:\n{body}");
        }
    }
    assert!(
        text.contains("<script>alert(1)</script>"),
        "text is not escaped"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "label value escaped in HTML:\n{html}"
    );
    assert!(!html.contains("<script>"), "no raw <script> in HTML");

    // (b) The same alerts resolved: one more mail, threaded under the first.
    assert_eq!(
        app.post_json("/webhook", &post_group("resolved"))
            .await
            .status(),
        200
    );
    let n2 = wait_notification(&app, "resolved notification delivered", |n| {
        n["state"] == "delivered" && n["message"]["status"] == "resolved"
    })
    .await;
    let mails = wait_mails(&smtp, 2).await;
    assert_eq!(mails.len(), 2, "exactly one more mail");
    let m2 = parse(&mails[1]);
    let subject2 = m2.subject().unwrap_or_default();
    assert!(subject2.starts_with("[RESOLVED]"), "subject {subject2:?}");
    let mid2 = m2.message_id().expect("Message-ID").to_string();
    assert_ne!(mid2, mid1);
    assert_eq!(mid2, bare(n2["message_id"].as_str().unwrap()));
    assert_eq!(ids(m2.in_reply_to()), vec![mid1.clone()]);
    assert!(
        ids(m2.references()).contains(&mid1),
        "References {:?} names the first mail",
        m2.references()
    );
    assert_eq!(header_text(&m2, "X-Alert-Status"), Some("resolved"));
    let text2 = m2.body_text(0).expect("text body");
    assert!(text2.contains("RESOLVED") && text2.contains("Ended:"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_dead_letter_without_the_password() {
    let smtp = SmtpServer::start();
    let wrong = "Wr0ng-pa55word-xyz";
    let app = TestApp::start(&smtp.config(wrong, "")).await;
    assert_eq!(
        app.post_json("/webhook", &post_group("firing"))
            .await
            .status(),
        200
    );
    let n = wait_notification(&app, "dead notification", |n| n["state"] == "dead").await;
    let err = n["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("535"),
        "last_error names the SMTP reply: {err}"
    );
    assert!(!err.contains(wrong), "password leaked: {err}");
    assert_eq!(n["attempts"], 1, "5xx is not retried");
    let auths = smtp.auths();
    assert!(!auths.is_empty() && auths.iter().all(|(_, u, ok)| u == USER && !ok));
    assert!(smtp.mails().is_empty());
    // The worker status does not show it either.
    let status = app.get_json("/admin/v1/status").await.to_string();
    assert!(!status.contains(wrong), "password leaked in status");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcpt_550_is_permanent() {
    let smtp = SmtpServer::start();
    smtp.shared.lock().unwrap().rcpt_default = Some((550, "5.1.1 mailbox unavailable"));
    let app = TestApp::start(&smtp.config(PASS, "")).await;
    assert_eq!(
        app.post_json("/webhook", &post_group("firing"))
            .await
            .status(),
        200
    );
    let n = wait_notification(&app, "dead notification", |n| n["state"] == "dead").await;
    let err = n["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("550"), "last_error: {err}");
    assert_eq!(n["attempts"], 1, "5xx is not retried");
    assert!(smtp.mails().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcpt_451_is_retried_until_accepted() {
    let smtp = SmtpServer::start();
    smtp.shared.lock().unwrap().rcpt_script = VecDeque::from([
        (451, "4.3.0 try again later"),
        (451, "4.3.0 try again later"),
    ]);
    let app = TestApp::start(&smtp.config(PASS, "")).await;
    assert_eq!(
        app.post_json("/webhook", &post_group("firing"))
            .await
            .status(),
        200
    );
    let n = wait_notification(&app, "delivered after retries", |n| {
        n["state"] == "delivered"
    })
    .await;
    assert_eq!(n["attempts"], 3, "two 451 replies, then accepted: {n}");
    assert!(n["last_error"].is_null(), "cleared on success: {n}");
    let mails = wait_mails(&smtp, 1).await;
    assert_eq!(mails.len(), 1);
    assert!(parse(&mails[0])
        .subject()
        .unwrap_or_default()
        .starts_with("[FIRING:2]"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_templates_and_headers_are_rendered() {
    let smtp = SmtpServer::start();
    let extra = r#"        subject: "{{ .Status | toUpper }}: {{ len .Alerts }} alerts for {{ .GroupLabels.team }}"
        text: "plain {{ .CommonLabels.team }}"
        html: "<p>rich {{ .CommonLabels.team }}</p>"
        headers:
          X-Team: "team-{{ .GroupLabels.team }}"
"#;
    let app = TestApp::start(&smtp.config(PASS, extra)).await;
    assert_eq!(
        app.post_json("/webhook", &post_group("firing"))
            .await
            .status(),
        200
    );
    let mails = wait_mails(&smtp, 1).await;
    let m = parse(&mails[0]);
    assert_eq!(m.subject(), Some("FIRING: 2 alerts for db"));
    assert_eq!(header_text(&m, "X-Team"), Some("team-db"));
    assert_eq!(m.body_text(0).as_deref().map(str::trim), Some("plain db"));
    assert_eq!(
        m.body_html(0).as_deref().map(str::trim),
        Some("<p>rich db</p>")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_refuses_a_server_without_starttls() {
    let smtp = SmtpServer::start_with(false);
    let app = TestApp::start(&smtp.config(PASS, "")).await;
    assert_eq!(
        app.post_json("/webhook", &post_group("firing"))
            .await
            .status(),
        200
    );
    let n = wait_notification(&app, "failed, retrying notification", |n| {
        n["state"] == "failed" && n["attempts"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    let err = n["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("STARTTLS"), "last_error: {err}");
    assert!(smtp.auths().is_empty(), "no credentials over plaintext");
    assert!(smtp.mails().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_recipient_is_a_startup_error_naming_the_field() {
    let smtp = SmtpServer::start();
    let yaml = smtp
        .config(PASS, "")
        .replace("db-oncall@example.com", "not an address");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alert-router.yml");
    std::fs::write(&path, full_config(dir.path(), &yaml, "127.0.0.1:0")).unwrap();
    let err = match alert_router::start(alert_router::ConfigSource::File(path)).await {
        Ok(r) => {
            r.stop().await;
            panic!("started with an invalid address");
        }
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("email_configs[0]") && err.contains("to:"),
        "{err}"
    );
    assert!(err.contains("not an address"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out_and_is_retried() {
    // Accepts TCP connections and never sends a greeting.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            h.lock().unwrap().push(sock);
        }
    });
    let smtp = SmtpServer::start();
    let yaml = smtp.config(PASS, "        timeout: 300ms\n").replace(
        &format!("localhost:{}", smtp.port),
        &format!("localhost:{port}"),
    );
    let app = TestApp::start(&yaml).await;
    assert_eq!(
        app.post_json("/webhook", &post_group("firing"))
            .await
            .status(),
        200
    );
    let n = wait_notification(&app, "timed out twice, still retrying", |n| {
        n["state"] == "failed" && n["attempts"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    let err = n["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("timeout"), "last_error: {err}");
    assert!(
        held.lock().unwrap().len() >= 2,
        "each attempt dials again after the stalled one"
    );
    app.stop().await;
}
