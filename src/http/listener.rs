//! The HTTP listener: our own accept loop in place of `axum::serve`, so that every
//! connection, plain or TLS, is bounded — a connection limit (`server.max_connections`,
//! the rest wait in the kernel's backlog), a TLS handshake timeout, hyper's header read
//! timeout (slowloris; it also closes idle keep-alive connections), and a check that
//! refuses request heads with ambiguous framing (request smuggling). Optional TLS
//! (`tls:`, rustls with ring) reloads its certificate and key when the files change.
//! Each request carries [`ConnectInfo<SocketAddr>`] as with `axum::serve`, which the
//! admin API's loopback-only rule relies on.

use crate::duration::AmDuration;
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// `server:` — limits of the HTTP listener, for plain HTTP and TLS alike.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Connections served at once; further ones wait in the listen backlog.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Time a client has to send a complete request head, counted from the connection
    /// (after the TLS handshake) or from the end of the previous response: it is also
    /// the keep-alive idle timeout.
    #[serde(default = "defaults::header_read_timeout")]
    pub header_read_timeout: AmDuration,
    /// Time a client has to complete the TLS handshake.
    #[serde(default = "defaults::tls_handshake_timeout")]
    pub tls_handshake_timeout: AmDuration,
    /// Time to read the body and answer one request (else `503`).
    #[serde(default = "defaults::request_timeout")]
    pub request_timeout: AmDuration,
}

mod defaults {
    use crate::duration::AmDuration;
    use std::time::Duration;
    pub fn max_connections() -> usize {
        4096
    }
    pub fn header_read_timeout() -> AmDuration {
        AmDuration(Duration::from_secs(10))
    }
    pub fn tls_handshake_timeout() -> AmDuration {
        AmDuration(Duration::from_secs(10))
    }
    pub fn request_timeout() -> AmDuration {
        AmDuration(Duration::from_secs(30))
    }
    pub fn reload_interval() -> AmDuration {
        AmDuration(Duration::from_secs(10))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: defaults::max_connections(),
            header_read_timeout: defaults::header_read_timeout(),
            tls_handshake_timeout: defaults::tls_handshake_timeout(),
            request_timeout: defaults::request_timeout(),
        }
    }
}

/// Upper bound of `server.max_connections` (the shutdown waits for them all as permits).
const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

impl ServerConfig {
    /// The message names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections) {
            return Err(format!(
                "server.max_connections: must be between 1 and {MAX_CONNECTIONS_LIMIT}"
            ));
        }
        for (key, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("tls_handshake_timeout", self.tls_handshake_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if d.0.is_zero() {
                return Err(format!("server.{key}: must be greater than 0"));
            }
        }
        Ok(())
    }
}

/// Lowest TLS version accepted, spelled as in Prometheus' and Alertmanager's web config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "TLS12")]
    Tls12,
    #[serde(rename = "TLS13")]
    Tls13,
}

/// `tls:` — serve HTTPS. With `client_ca_file`, clients must present a certificate
/// signed by one of its CAs (mutual TLS).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub min_version: TlsVersion,
    /// How often the certificate and key files are checked for changes.
    #[serde(default = "defaults::reload_interval")]
    pub reload_interval: AmDuration,
}

impl ListenerTls {
    /// Make relative file names relative to the configuration file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.cert_file, &mut self.key_file] {
            *p = base.join(&*p);
        }
        if let Some(p) = &mut self.client_ca_file {
            *p = base.join(&*p);
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.reload_interval.0.is_zero() {
            return Err("tls.reload_interval: must be greater than 0".into());
        }
        Ok(())
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: cannot read {key} {}: {err}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("tls: {key} {}: {message}", path.display())]
    Invalid {
        key: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("tls: {0}")]
    Setup(String),
}

fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::Read {
        key,
        path: path.to_path_buf(),
        err,
    })
}

/// The certificate files as last read, to notice a change.
#[derive(Clone, PartialEq)]
struct KeyFiles {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Parse a PEM certificate chain and private key into a checked [`CertifiedKey`].
fn certified_key(
    cfg: &ListenerTls,
    files: &KeyFiles,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let invalid_cert = |message: String| TlsError::Invalid {
        key: "cert_file",
        path: cfg.cert_file.clone(),
        message,
    };
    let invalid_key = |message: String| TlsError::Invalid {
        key: "key_file",
        path: cfg.key_file.clone(),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(&files.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid_cert(format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(invalid_cert("holds no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&files.key)
        .map_err(|e| invalid_key(format!("not a PEM private key ({e})")))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| invalid_key(format!("unusable with the certificate in cert_file ({e})")))
}

/// Serves the current certificate to every handshake; the watcher swaps it.
#[derive(Debug)]
struct ReloadingCert(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// TLS for the listener: the current server configuration (swapped whole when the client
/// CA changes; the certificate is swapped inside it), and what the watcher needs to reload.
#[derive(Clone)]
pub struct Tls {
    server: Arc<ArcSwap<rustls::ServerConfig>>,
    cert: Arc<ReloadingCert>,
    cfg: ListenerTls,
    loaded: KeyFiles,
    /// The client CA file's contents in use (with `client_ca_file`).
    client_ca: Option<Vec<u8>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

/// The server configuration: `cfg`'s versions, client verification against the CA
/// certificates in `client_ca` (PEM, with `client_ca_file`), certificates from `cert`.
fn server_config(
    cfg: &ListenerTls,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    cert: Arc<ReloadingCert>,
    client_ca: Option<&[u8]>,
) -> Result<rustls::ServerConfig, TlsError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match cfg.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS12, &rustls::version::TLS13],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match (&cfg.client_ca_file, client_ca) {
        (Some(path), Some(pem)) => {
            let invalid = |message: String| TlsError::Invalid {
                key: "client_ca_file",
                path: path.clone(),
                message,
            };
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| invalid(format!("not a PEM certificate ({e})")))?;
                roots
                    .add(c)
                    .map_err(|e| invalid(format!("not a usable CA certificate ({e})")))?;
            }
            if roots.is_empty() {
                return Err(invalid("holds no PEM certificate".into()));
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| invalid(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut server = builder.with_cert_resolver(cert);
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(server)
}

impl Tls {
    /// Read the files and build the server configuration; errors name the file.
    pub fn load(cfg: &ListenerTls) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = KeyFiles {
            cert: read_file("cert_file", &cfg.cert_file)?,
            key: read_file("key_file", &cfg.key_file)?,
        };
        let cert = Arc::new(ReloadingCert(ArcSwap::from_pointee(certified_key(
            cfg, &loaded, &provider,
        )?)));
        let client_ca = match &cfg.client_ca_file {
            Some(path) => Some(read_file("client_ca_file", path)?),
            None => None,
        };
        let server = server_config(cfg, &provider, cert.clone(), client_ca.as_deref())?;
        Ok(Tls {
            server: Arc::new(ArcSwap::from_pointee(server)),
            cert,
            cfg: cfg.clone(),
            loaded,
            client_ca,
            provider,
        })
    }

    /// The acceptor for a new connection (the configuration current at its handshake).
    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.load_full())
    }

    /// Check the files every `reload_interval`; a changed, valid pair replaces the
    /// certificate for new handshakes, and a changed, valid client CA file the CA that
    /// client certificates are checked against (connections already open keep theirs). A
    /// broken file keeps the old one in use and is reported once (until it changes again).
    async fn watch(mut self, metrics: Arc<Metrics>) {
        let mut tick = tokio::time::interval(self.cfg.reload_interval.0);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_seen = self.loaded.clone();
        let mut last_ca = self.client_ca.clone();
        let count = |outcome: &str| {
            metrics
                .tls_reloads
                .get_or_create(&crate::metrics::labels(&[("result", outcome)]))
                .inc();
        };
        loop {
            tick.tick().await;
            if let Some(path) = self.cfg.client_ca_file.clone() {
                // Missing for a moment while being replaced: the next tick looks again.
                if let Ok(pem) = tokio::fs::read(&path).await {
                    if last_ca.as_deref() != Some(pem.as_slice()) {
                        last_ca = Some(pem.clone());
                        match server_config(
                            &self.cfg,
                            &self.provider,
                            self.cert.clone(),
                            Some(&pem),
                        ) {
                            Ok(server) => {
                                self.server.store(Arc::new(server));
                                self.client_ca = Some(pem);
                                tracing::info!(client_ca_file = %path.display(), "TLS client CA reloaded");
                                count("success");
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "TLS client CA not reloaded; still checking clients against the previous one");
                                count("failure");
                            }
                        }
                    }
                }
            }
            let (Ok(cert), Ok(key)) = (
                tokio::fs::read(&self.cfg.cert_file).await,
                tokio::fs::read(&self.cfg.key_file).await,
            ) else {
                continue;
            };
            let files = KeyFiles { cert, key };
            if files == last_seen {
                continue;
            }
            last_seen = files.clone();
            match certified_key(&self.cfg, &files, &self.provider) {
                Ok(k) => {
                    self.cert.0.store(Arc::new(k));
                    self.loaded = files;
                    tracing::info!(cert_file = %self.cfg.cert_file.display(), "TLS certificate reloaded");
                    count("success");
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate not reloaded; still serving the previous one");
                    count("failure");
                }
            }
        }
    }
}

/// How long to pause accepting after an error such as running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serve `router` on `listener` until `shutdown` resolves, then stop accepting, let
/// in-flight requests finish and return when every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerConfig,
    tls: Option<Tls>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let watcher = tls.clone().map(|t| tokio::spawn(t.watch(metrics)));
    let tls = tls.map(Arc::new);
    // Validated: at most MAX_CONNECTIONS_LIMIT, so it fits in u32.
    let max = limits.max_connections.min(MAX_CONNECTIONS_LIMIT);
    let permits = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let limits = Arc::new(limits);
    let mut shutdown = pin!(shutdown);
    loop {
        // A permit first: over the limit, connections wait in the kernel's backlog
        // (bounded) instead of costing memory here.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let conn = Connection {
            peer,
            router: router.clone(),
            limits: limits.clone(),
            stop: stop_rx.clone(),
        };
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            conn.run(stream, acceptor).await;
            drop(permit);
        });
    }
    drop(listener);
    if let Some(w) = watcher {
        w.abort();
    }
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it is closed.
    let _ = permits.acquire_many(max as u32).await;
}

/// One accepted connection.
struct Connection {
    peer: SocketAddr,
    router: Router,
    limits: Arc<ServerConfig>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = tls else {
            return self.http(stream).await;
        };
        let handshake =
            tokio::time::timeout(self.limits.tls_handshake_timeout.0, acceptor.accept(stream));
        let result = tokio::select! {
            r = handshake => r,
            _ = stopped(&mut self.stop) => return,
        };
        match result {
            Ok(Ok(s)) => self.http(s).await,
            Ok(Err(e)) => tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    async fn http<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let router = self.router.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(Body::new))
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout.0);
        let io = TokioIo::new(FramingGuard::new(io));
        let mut conn = pin!(builder.serve_connection(io, svc));
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = stopped(&mut self.stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection closed with an error");
        }
    }
}

/// Resolves once the server is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Request heads longer than this are left to hyper (which refuses them).
const MAX_INSPECTED_HEAD: usize = 128 * 1024;

/// Where the guard is in the request stream.
enum Framing {
    /// Reading a request head (bytes so far).
    Head(Vec<u8>),
    /// Skipping this many body bytes before the next head.
    Body(u64),
    /// No longer inspecting: after a chunked body (hyper frames it) or a head hyper
    /// itself refuses.
    Off,
}

/// Reads through to the connection, looking at each request head before hyper does:
/// one with both `Content-Length` and `Transfer-Encoding` (which hyper would read by
/// `Transfer-Encoding`, as RFC 9112 allows) is refused by closing the connection, so a
/// proxy in front that framed it by `Content-Length` cannot be desynchronised
/// (request smuggling). hyper refuses differing `Content-Length`s itself.
struct FramingGuard<I> {
    inner: I,
    state: Framing,
}

impl<I> FramingGuard<I> {
    fn new(inner: I) -> Self {
        FramingGuard {
            inner,
            state: Framing::Head(Vec::new()),
        }
    }

    /// Follow the request stream over `data`; `Err` when a head has ambiguous framing.
    /// Each byte is looked at a bounded number of times, however the client splits it.
    fn inspect(&mut self, data: &[u8]) -> Result<(), &'static str> {
        let joined;
        let mut data = data;
        // A head begun in an earlier read: parse it once its end has arrived.
        if let Framing::Head(buf) = &mut self.state {
            if !buf.is_empty() {
                let start = buf.len().saturating_sub(3);
                buf.extend_from_slice(data);
                if buf.len() > MAX_INSPECTED_HEAD {
                    self.state = Framing::Off;
                    return Ok(());
                }
                if !has_blank_line(&buf[start..]) {
                    return Ok(());
                }
                joined = std::mem::take(buf);
                data = &joined;
            }
        }
        while !data.is_empty() {
            match &mut self.state {
                Framing::Off => return Ok(()),
                Framing::Body(n) => {
                    let k = (*n).min(data.len() as u64);
                    data = &data[k as usize..];
                    *n -= k;
                    if *n == 0 {
                        self.state = Framing::Head(Vec::new());
                    }
                }
                Framing::Head(buf) => {
                    let mut headers = [httparse::EMPTY_HEADER; 128];
                    let mut req = httparse::Request::new(&mut headers);
                    let parsed = if has_blank_line(data) {
                        req.parse(data)
                    } else {
                        Ok(httparse::Status::Partial)
                    };
                    let used = match parsed {
                        Ok(httparse::Status::Complete(n)) => n,
                        Ok(httparse::Status::Partial) if data.len() <= MAX_INSPECTED_HEAD => {
                            buf.extend_from_slice(data);
                            return Ok(());
                        }
                        // Too long or malformed: hyper refuses it.
                        _ => {
                            self.state = Framing::Off;
                            return Ok(());
                        }
                    };
                    let header = |name: &str| {
                        req.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                    };
                    let length = header("content-length");
                    let chunked = header("transfer-encoding").is_some();
                    if chunked && length.is_some() {
                        return Err("both Content-Length and Transfer-Encoding");
                    }
                    let body = length.map(|h| {
                        std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    });
                    self.state = match (chunked, body) {
                        // hyper frames chunked bodies; an invalid length it refuses.
                        (true, _) | (false, Some(None)) => Framing::Off,
                        (false, Some(Some(n))) if n > 0 => Framing::Body(n),
                        _ => Framing::Head(Vec::new()),
                    };
                    data = &data[used..];
                }
            }
        }
        Ok(())
    }
}

/// Whether `bytes` hold the blank line that ends a request head: one pass that stops at
/// the first, so that pipelined requests cost no rescans.
fn has_blank_line(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'\n'
            && match bytes.get(i + 1) {
                Some(b'\n') => true,
                Some(b'\r') => bytes.get(i + 2) == Some(&b'\n'),
                _ => false,
            }
    })
}

impl<I: AsyncRead + Unpin> AsyncRead for FramingGuard<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                match this.inspect(new) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(why) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("request refused: {why}"),
                    ))),
                }
            }
            other => other,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FramingGuard<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> FramingGuard<tokio::io::Empty> {
        FramingGuard::new(tokio::io::empty())
    }

    #[test]
    fn follows_keep_alive_requests_and_refuses_ambiguous_framing() {
        let mut g = guard();
        let first = b"POST /webhook HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        assert!(g.inspect(first).is_ok());
        // Byte by byte, the second head is still seen.
        let second =
            b"POST /webhook HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (last, rest) = second.split_last().unwrap();
        for b in rest {
            assert!(g.inspect(std::slice::from_ref(b)).is_ok());
        }
        assert!(g.inspect(&[*last]).is_err());
    }

    #[test]
    fn many_pipelined_requests_in_one_read() {
        let mut g = guard();
        let mut data = b"GET /-/healthy HTTP/1.1\r\n\r\n".repeat(20_000);
        assert!(g.inspect(&data).is_ok());
        data.extend_from_slice(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert!(guard().inspect(&data).is_err());
    }

    #[test]
    fn body_text_that_looks_like_a_head_is_body() {
        let mut g = guard();
        let body = "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let req = format!(
            "POST /x HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET / HTTP/1.1\r\n\r\n",
            body.len()
        );
        assert!(g.inspect(req.as_bytes()).is_ok());
    }
}
