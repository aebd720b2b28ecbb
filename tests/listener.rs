//! The listener: HTTPS (rustls), mutual TLS, `min_version`, certificate reload, the
//! real Alertmanager delivering over mutual TLS, and connection hardening — slow
//! clients, a flood of connections, request smuggling. Real sockets on 127.0.0.1.
mod common;
use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROUTE: &str = "route:\n  receiver: ops\n  group_wait: 100ms\nreceivers:\n  - name: ops\n    log_configs: [{}]\n";

type Issuer = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

fn new_ca(name: &str) -> Issuer {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate and its key, PEM; for 127.0.0.1 and localhost when `server`.
struct Leaf {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    key_der: Vec<u8>,
}

fn leaf(ca: &Issuer, cn: &str, server: bool) -> Leaf {
    let names = if server {
        vec!["localhost".to_string(), "127.0.0.1".to_string()]
    } else {
        vec![]
    };
    let mut p = rcgen::CertificateParams::new(names).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.extended_key_usages = vec![if server {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, ca).unwrap();
    Leaf {
        der: cert.der().clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

/// Certificates for one test: the server's CA and leaf, written to `dir`.
struct Pki {
    ca: Issuer,
    server: Leaf,
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let ca = new_ca("listener test CA");
        let server = leaf(&ca, "router-1", true);
        let p = Pki {
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
            ca,
            server,
        };
        std::fs::write(&p.ca_file, p.ca.pem()).unwrap();
        write_leaf(&p.cert_file, &p.key_file, &p.server);
        p
    }

    fn tls_yaml(&self, extra: &str) -> String {
        format!(
            "tls:\n  cert_file: {}\n  key_file: {}\n{extra}",
            self.cert_file.display(),
            self.key_file.display()
        )
    }

    fn client(
        &self,
        cert: Option<&Leaf>,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let b = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut cfg = match cert {
            Some(l) => b
                .with_client_auth_cert(
                    vec![l.der.clone()],
                    PrivateKeyDer::try_from(l.key_der.clone()).unwrap(),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        };
        // Full handshakes only: a resumed session shows no certificate of its own.
        cfg.resumption = rustls::client::Resumption::disabled();
        Arc::new(cfg)
    }
}

/// A directory holding the server's certificates.
fn pki() -> (Pki, tempfile::TempDir) {
    init();
    let dir = tempfile::tempdir().unwrap();
    (Pki::new(dir.path()), dir)
}

/// A router serving HTTPS with `pki`'s certificate (`extra` = more `tls:` keys).
async fn tls_router(pki: &Pki, extra: &str) -> TestApp {
    TestApp::start(&format!("{}{ROUTE}", pki.tls_yaml(extra))).await
}

/// A CA for client certificates, written to `dir`; the `tls:` line that requires it.
fn client_ca(dir: &Path) -> (Issuer, String) {
    let ca = new_ca("client CA");
    let file = dir.join("client-ca.pem");
    std::fs::write(&file, ca.pem()).unwrap();
    (ca, format!("  client_ca_file: {}\n", file.display()))
}

fn write_leaf(cert_file: &Path, key_file: &Path, l: &Leaf) {
    std::fs::write(key_file, &l.key_pem).unwrap();
    std::fs::write(cert_file, &l.cert_pem).unwrap();
}

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// An answer over HTTPS: status, body and the certificate the server presented.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    server_cert: Vec<u8>,
}

/// `alert_router_tls_certificate_reloads_total{result="failure"}`, read over HTTPS.
async fn reload_failures(app: &TestApp, cfg: Arc<ClientConfig>) -> f64 {
    let a = https(app, cfg, "/metrics").await.unwrap();
    a.body
        .lines()
        .find(|l| l.starts_with("alert_router_tls_certificate_reloads_total{result=\"failure\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// One HTTP/1.1 request over a new TLS connection.
async fn https(app: &TestApp, cfg: Arc<ClientConfig>, path: &str) -> Result<Answer, String> {
    let tcp = TcpStream::connect(addr(app))
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(cfg);
    let name = ServerName::try_from("localhost").unwrap();
    let mut s = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
    let server_cert = s
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let (status, body) = exchange(&mut s, "GET", path, "").await?;
    Ok(Answer {
        status,
        body,
        server_cert,
    })
}

/// Write one request (`Connection: close`) and read the answer to the end.
async fn exchange<S>(
    s: &mut S,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    raw_answer(s).await
}

/// Read an HTTP answer until the server closes; its status and body.
async fn raw_answer<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Result<(u16, String), String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return Err("no answer within 10s".into()),
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            // A close without close_notify after a full answer is fine.
            Ok(Err(e)) if out.is_empty() => return Err(format!("read: {e}")),
            Ok(Err(_)) => break,
        }
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer (got {} bytes: {text:?})", out.len()))?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Ok((status, body.to_string()))
}

fn addr(app: &TestApp) -> SocketAddr {
    app.running.as_ref().unwrap().addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_and_plain_http_to_the_tls_port_fails() {
    let (pki, _dir) = pki();
    let app = tls_router(&pki, "").await;
    let a = https(&app, pki.client(None, BOTH), "/-/healthy")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.server_cert, pki.server.der.to_vec());
    // TLS 1.2 is accepted by default.
    let a = https(&app, pki.client(None, TLS12_ONLY), "/-/ready")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    // The admin API's loopback rule still sees the peer address through TLS.
    let a = https(&app, pki.client(None, BOTH), "/admin/v1/status")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/-/healthy", addr(&app)))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_tls13_refuses_a_tls12_only_client() {
    let (pki, _dir) = pki();
    let app = tls_router(&pki, "  min_version: TLS13\n").await;
    let e = https(&app, pki.client(None, TLS12_ONLY), "/-/healthy")
        .await
        .expect_err("a TLS 1.2 client was served");
    assert!(e.contains("handshake"), "{e}");
    let a = https(&app, pki.client(None, BOTH), "/-/healthy")
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_certificate_from_the_client_ca() {
    let (pki, dir) = pki();
    let (client_ca, required) = client_ca(dir.path());
    let good = leaf(&client_ca, "alertmanager", false);
    let stranger = leaf(&new_ca("another CA"), "alertmanager", false);
    let app = tls_router(&pki, &required).await;
    for versions in [BOTH, TLS12_ONLY] {
        let r = https(&app, pki.client(None, versions), "/-/healthy").await;
        assert!(r.is_err(), "served without a client certificate: {r:?}");
        let r = https(&app, pki.client(Some(&stranger), versions), "/-/healthy").await;
        assert!(r.is_err(), "served a certificate of another CA: {r:?}");
        let a = https(&app, pki.client(Some(&good), versions), "/-/healthy")
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{a:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_files_are_reloaded_and_a_broken_one_keeps_the_old() {
    let (pki, _dir) = pki();
    let app = tls_router(&pki, "  reload_interval: 100ms\n").await;
    let client = pki.client(None, BOTH);
    let served = || async {
        https(&app, client.clone(), "/-/healthy")
            .await
            .map(|a| a.server_cert)
    };
    assert_eq!(served().await.unwrap(), pki.server.der.to_vec());

    let second = leaf(&pki.ca, "router-2", true);
    write_leaf(&pki.cert_file, &pki.key_file, &second);
    wait_for(
        Duration::from_secs(15),
        "the new certificate served",
        || async { (served().await.ok()? == second.der.to_vec()).then_some(()) },
    )
    .await;

    let failures = || reload_failures(&app, client.clone());
    let before = failures().await;
    std::fs::write(&pki.cert_file, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    wait_for(
        Duration::from_secs(15),
        "the broken certificate noticed",
        || async { (failures().await > before).then_some(()) },
    )
    .await;
    assert_eq!(served().await.unwrap(), second.der.to_vec());
    app.stop().await;
}

/// Rotating the client CA: once `client_ca_file` names the new CA, certificates of the old
/// one are refused and the new one's accepted, without a restart; a broken file keeps the
/// CA in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_ca_file_is_reloaded_and_a_broken_one_keeps_the_old() {
    let (pki, dir) = pki();
    let (old_ca, required) = client_ca(dir.path());
    let app = tls_router(&pki, &format!("{required}  reload_interval: 100ms\n")).await;
    let old = pki.client(Some(&leaf(&old_ca, "alertmanager", false)), BOTH);
    let new_ca = new_ca("client CA 2");
    let new = pki.client(Some(&leaf(&new_ca, "alertmanager", false)), BOTH);
    let accepted = |cfg: Arc<ClientConfig>| {
        let app = &app;
        async move {
            https(app, cfg, "/-/healthy")
                .await
                .is_ok_and(|a| a.status == 200)
        }
    };
    assert!(accepted(old.clone()).await);
    assert!(!accepted(new.clone()).await);

    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, new_ca.pem()).unwrap();
    wait_for(
        Duration::from_secs(15),
        "the new client CA in use",
        || async { accepted(new.clone()).await.then_some(()) },
    )
    .await;
    assert!(!accepted(old.clone()).await, "the old CA still accepted");

    let failures = || reload_failures(&app, new.clone());
    let before = failures().await;
    std::fs::write(&ca_file, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    wait_for(
        Duration::from_secs(15),
        "the broken client CA noticed",
        || async { (failures().await > before).then_some(()) },
    )
    .await;
    assert!(
        accepted(new.clone()).await,
        "a broken file replaced the CA in use"
    );
    assert!(!accepted(old).await);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_at_start_name_the_file() {
    let (pki, dir) = pki();
    let start = |tls: String| {
        let cfg = dir.path().join("alert-router.yml");
        std::fs::write(
            &cfg,
            full_config(dir.path(), &format!("{tls}{ROUTE}"), "127.0.0.1:0"),
        )
        .unwrap();
        async move {
            match alert_router::start(alert_router::ConfigSource::File(cfg)).await {
                Ok(r) => {
                    r.stop().await;
                    panic!("started with a bad certificate file")
                }
                Err(e) => e.to_string(),
            }
        }
    };
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let e = start(format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n",
        garbage.display(),
        pki.key_file.display()
    ))
    .await;
    assert!(e.contains("cert_file") && e.contains("garbage.pem"), "{e}");
    let e = start(format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n",
        pki.cert_file.display(),
        dir.path().join("missing.key").display()
    ))
    .await;
    assert!(e.contains("key_file") && e.contains("missing.key"), "{e}");
    // A key that does not belong to the certificate.
    let other = leaf(&pki.ca, "other", true);
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let e = start(format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n",
        pki.cert_file.display(),
        other_key.display()
    ))
    .await;
    assert!(e.contains("key_file") && e.contains("other.key"), "{e}");
    // check-config reads the files too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_alert-router"))
        .arg("check-config")
        .arg(dir.path().join("alert-router.yml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("other.key"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_delivers_over_mutual_tls() {
    let (pki, dir) = pki();
    let (client_ca, required) = client_ca(dir.path());
    let am_cert = leaf(&client_ca, "alertmanager", false);
    let (am_cert_file, am_key_file) = (dir.path().join("am.pem"), dir.path().join("am.key"));
    write_leaf(&am_cert_file, &am_key_file, &am_cert);
    let app = tls_router(&pki, &required).await;
    let am = Am::start(&format!(
        "route:\n  receiver: router\n  group_wait: 100ms\n  group_interval: 1s\nreceivers:\n  - name: router\n    webhook_configs:\n      - url: https://127.0.0.1:{}/webhook\n        http_config:\n          tls_config:\n            ca_file: {}\n            cert_file: {}\n            key_file: {}\n",
        addr(&app).port(),
        pki.ca_file.display(),
        am_cert_file.display(),
        am_key_file.display()
    ))
    .await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", am.base))
        .json(&serde_json::json!([{"labels": {"alertname": "OverMutualTls", "instance": "a"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let client = pki.client(Some(&leaf(&client_ca, "admin", false)), BOTH);
    wait_for(
        Duration::from_secs(30),
        "the alert at the router",
        || async {
            let a = https(&app, client.clone(), "/admin/v1/alerts").await.ok()?;
            a.body.contains("OverMutualTls").then_some(())
        },
    )
    .await;
    assert!(!am.log().contains("level=error"), "{}", am.log());
    app.stop().await;
}

/// Send `bytes` one at a time every `every`; how long until the server closed.
async fn trickle(addr: SocketAddr, bytes: Vec<u8>, every: Duration) -> (Duration, usize) {
    let started = Instant::now();
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        for b in bytes {
            if wr.write_all(&[b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(every).await;
        }
        sent
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut buf)).await;
    let closed = started.elapsed();
    writer.abort();
    let sent = writer.await.unwrap_or(0);
    (closed, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_others_are_served_meanwhile() {
    let app = TestApp::start(&format!(
        "server:\n  header_read_timeout: 1s\n  request_timeout: 2s\n{ROUTE}"
    ))
    .await;
    let head = b"POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n".to_vec();
    let slow_head = tokio::spawn(trickle(
        addr(&app),
        head.clone(),
        Duration::from_millis(500),
    ));
    // Headers at once, then the body a byte at a time.
    let s = TcpStream::connect(addr(&app)).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(&head).await.unwrap();
    let body_writer = tokio::spawn(async move {
        for _ in 0..200 {
            if wr.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    // Others are served meanwhile.
    for _ in 0..5 {
        assert_eq!(app.status(reqwest::Method::GET, "/-/healthy").await, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let (status, _) = raw_answer(&mut rd).await.unwrap_or((0, String::new()));
    let body_cut = started.elapsed();
    body_writer.abort();
    assert!(status == 503 || status == 0, "a trickled body got {status}");
    assert!(
        body_cut < Duration::from_secs(4),
        "body trickle cut after {body_cut:?}"
    );

    let (closed, sent) = slow_head.await.unwrap();
    assert!(
        sent < head.len(),
        "the whole head was accepted byte by byte"
    );
    assert!(
        closed < Duration::from_millis(2500),
        "slow head dropped only after {closed:?}"
    );
    assert_eq!(app.status(reqwest::Method::GET, "/-/healthy").await, 200);
    app.stop().await;
}

fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_stay_bounded() {
    const MAX: usize = 500;
    init();
    let router = RouterProc::start(&format!(
        "server:\n  max_connections: {MAX}\n  header_read_timeout: 2s\n{ROUTE}"
    ))
    .await;
    let pid = router.child.id();
    let addr: SocketAddr = router.base.trim_start_matches("http://").parse().unwrap();
    let fds_before = open_fds(pid);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10_000 {
        tasks.spawn(async move {
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
                .await
                .ok()
                .and_then(Result::ok)
        });
    }
    let mut held = Vec::new();
    let mut peak_fds = 0;
    while let Some(r) = tasks.join_next().await {
        if let Some(s) = r.unwrap() {
            held.push(s);
        }
        if held.len() % 500 == 0 {
            peak_fds = peak_fds.max(open_fds(pid));
        }
    }
    peak_fds = peak_fds.max(open_fds(pid));
    let rss_kib = proc_status(pid, "VmRSS:");
    eprintln!(
        "{} connections held; router: {peak_fds} descriptors at most, {rss_kib} KiB RSS",
        held.len()
    );
    assert!(held.len() >= 1000, "only {} connections opened", held.len());
    assert!(
        peak_fds <= fds_before + MAX + 16,
        "the router held {peak_fds} descriptors (limit {MAX} connections)"
    );
    assert!(
        rss_kib < 300 * 1024,
        "router RSS {rss_kib} KiB with {} connections",
        held.len()
    );
    drop(held);
    let client = reqwest::Client::new();
    wait_for(
        Duration::from_secs(20),
        "healthy after the flood",
        || async {
            let r = client
                .get(format!("{}/-/healthy", router.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    assert!(proc_status(pid, "VmRSS:") < 300 * 1024);
}

/// Send `request` raw and read what comes back (status 0 = closed without an answer).
async fn raw(addr: SocketAddr, request: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    raw_answer(&mut s).await.map(|a| a.0).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_request_framing_is_refused() {
    let app = TestApp::start(ROUTE).await;
    let body = |name: &str| {
        serde_json::to_string(&webhook(vec![alert(&[("alertname", name)], "firing")])).unwrap()
    };
    type Framing = fn(usize) -> String;
    // (alert name, framing headers for a body of n bytes, chunked body, accepted)
    let cases: [(&str, Framing, bool, bool); 5] = [
        (
            "SmuggledClTe",
            |n| format!("Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n"),
            true,
            false,
        ),
        (
            "SmuggledTeCl",
            |n| format!("Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n"),
            true,
            false,
        ),
        (
            "SmuggledTwoLengths",
            |n| format!("Content-Length: {n}\r\nContent-Length: {}\r\n", n + 1),
            false,
            false,
        ),
        // The same bodies framed one way are stored: chunked, and with a length.
        (
            "PlainChunked",
            |_| "Transfer-Encoding: chunked\r\n".into(),
            true,
            true,
        ),
        (
            "PlainLength",
            |n| format!("Content-Length: {n}\r\n"),
            false,
            true,
        ),
    ];
    for (name, framing, chunked, accepted) in cases {
        let b = body(name);
        let sent = if chunked {
            format!("{:x}\r\n{b}\r\n0\r\n\r\n", b.len())
        } else {
            b.clone()
        };
        let status = raw(
            addr(&app),
            &format!(
                "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n{}\r\n{sent}",
                framing(b.len())
            ),
        )
        .await;
        if accepted {
            assert_eq!(status, 200, "{name}");
        } else {
            assert!(status == 400 || status == 0, "{name} got {status}");
        }
    }
    let alerts = app.get_json("/admin/v1/alerts").await.to_string();
    assert!(
        alerts.contains("PlainChunked") && alerts.contains("PlainLength"),
        "{alerts}"
    );
    assert!(!alerts.contains("Smuggled"), "{alerts}");
    app.stop().await;
}
