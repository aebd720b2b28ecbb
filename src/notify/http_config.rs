//! Alertmanager's `http_config`, accepted on every HTTP integration: authentication
//! (`authorization`, `basic_auth`, `bearer_token`, `oauth2` client credentials), TLS
//! (`tls_config`), proxies and redirects — and the HTTP client built from it.
//!
//! Secrets (`credentials`, `password`, `bearer_token`, `client_secret`, a proxy URL with a
//! password) are [`Secret`]s: redacted in every dump and error. `*_file` keys are read once
//! at load time ([`HttpConfig::resolve`]), so a missing file fails `check-config` and reload.

use super::http::USER_AGENT;
use super::{FailureReason, NotifyError};
use crate::secret::{redact, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `http_config` as Alertmanager (prometheus/common) spells it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub basic_auth: Option<HttpBasicAuth>,
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub oauth2: Option<OAuth2>,
    #[serde(default)]
    pub tls_config: HttpTlsConfig,
    #[serde(default)]
    pub proxy_url: Option<Secret>,
    #[serde(default)]
    pub no_proxy: Option<String>,
    #[serde(default)]
    pub proxy_from_environment: bool,
    /// Alertmanager follows redirects by default; the router does not (a redirect could
    /// carry the request and its credentials to another host) unless this says `true`.
    #[serde(default)]
    pub follow_redirects: Option<bool>,
    /// Accepted for compatibility; requests use HTTP/1.1.
    #[serde(default)]
    pub enable_http2: Option<bool>,
}

/// `authorization: {type, credentials | credentials_file}` (type defaults to `Bearer`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub credentials: Option<Secret>,
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpBasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// OAuth 2.0 client credentials grant; the token is cached until shortly before expiry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    pub token_url: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub endpoint_params: BTreeMap<String, String>,
}

/// TLS of outgoing HTTP connections.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTlsConfig {
    /// PEM file with CA certificates to trust in addition to the built-in roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// `TLS12` or `TLS13`.
    #[serde(default)]
    pub min_version: Option<String>,
}

impl HttpConfig {
    /// Read `*_file` secrets (relative to `base`) and check the combination, as
    /// Alertmanager does: at most one way of authenticating.
    pub fn resolve(&mut self, base: &Path) -> Result<(), String> {
        let read = |p: &Path, what: &str| crate::secret::read_file(base, p, what);
        let mut ways = Vec::new();
        if let Some(a) = &mut self.authorization {
            if let Some(p) = a.credentials_file.take() {
                if a.credentials.is_some() {
                    return Err("http_config.authorization: set only one of credentials and credentials_file".into());
                }
                a.credentials = Some(read(&p, "http_config.authorization.credentials_file")?);
            }
            if a.kind
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("basic"))
            {
                return Err(
                    "http_config.authorization.type: Basic is not allowed here, use basic_auth"
                        .into(),
                );
            }
            ways.push("authorization");
        }
        if let Some(b) = &mut self.basic_auth {
            if let Some(p) = b.password_file.take() {
                if b.password.is_some() {
                    return Err(
                        "http_config.basic_auth: set only one of password and password_file".into(),
                    );
                }
                b.password = Some(read(&p, "http_config.basic_auth.password_file")?);
            }
            ways.push("basic_auth");
        }
        if let Some(p) = self.bearer_token_file.take() {
            if self.bearer_token.is_some() {
                return Err(
                    "http_config: set only one of bearer_token and bearer_token_file".into(),
                );
            }
            self.bearer_token = Some(read(&p, "http_config.bearer_token_file")?);
        }
        if self.bearer_token.is_some() {
            ways.push("bearer_token");
        }
        if let Some(o) = &mut self.oauth2 {
            if let Some(p) = o.client_secret_file.take() {
                o.client_secret = Some(read(&p, "http_config.oauth2.client_secret_file")?);
            }
            if o.client_id.is_empty() {
                return Err("http_config.oauth2.client_id: required".into());
            }
            crate::config::check_url(&o.token_url)
                .map_err(|m| format!("http_config.oauth2.token_url: {m}"))?;
            ways.push("oauth2");
        }
        if ways.len() > 1 {
            return Err(format!(
                "http_config: at most one of basic_auth, oauth2, bearer_token and authorization may be set (found {})",
                ways.join(", ")
            ));
        }
        let t = &mut self.tls_config;
        for f in [&mut t.ca_file, &mut t.cert_file, &mut t.key_file]
            .into_iter()
            .flatten()
        {
            *f = base.join(&*f);
        }
        if t.cert_file.is_some() != t.key_file.is_some() {
            return Err("http_config.tls_config: cert_file and key_file go together".into());
        }
        if let Some(n) = &t.server_name {
            rustls::pki_types::ServerName::try_from(n.as_str()).map_err(|_| {
                format!(
                    "http_config.tls_config.server_name: {n:?} is not a host name or IP address"
                )
            })?;
        }
        match t.min_version.as_deref() {
            None | Some("TLS12") | Some("TLS13") => {}
            Some(v) => {
                return Err(format!(
                    "http_config.tls_config.min_version: {v:?} is not TLS12 or TLS13"
                ))
            }
        }
        if let Some(p) = &self.proxy_url {
            crate::config::check_url(p.expose())
                .map_err(|m| format!("http_config.proxy_url: {m}"))?;
        }
        Ok(())
    }
}

/// Read a file named by a `tls_config` key.
fn read_tls_file(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path)
        .map_err(|e| format!("tls_config.{key}: cannot read {}: {e}", path.display()))
}

/// `tls_config` through reqwest's own TLS settings (system roots plus `ca_file`).
fn reqwest_tls(
    mut b: reqwest::ClientBuilder,
    t: &HttpTlsConfig,
) -> Result<reqwest::ClientBuilder, String> {
    if let Some(ca) = &t.ca_file {
        let pem = read_tls_file(ca, "ca_file")?;
        for c in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?
        {
            b = b.add_root_certificate(c);
        }
    }
    if let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file) {
        let mut pem = read_tls_file(cert, "cert_file")?;
        pem.extend(read_tls_file(key, "key_file")?);
        let id = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("tls_config.cert_file/key_file: {e}"))?;
        b = b.identity(id);
    }
    if t.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    if t.min_version.as_deref() == Some("TLS13") {
        b = b.min_tls_version(reqwest::tls::Version::TLS_1_3);
    }
    Ok(b)
}

/// `tls_config` with `server_name`: a rustls configuration of our own whose verifier checks
/// the server's certificate against `server_name` instead of the URL's host (as Go's
/// `tls.Config.ServerName` does). Roots: `ca_file` alone when set (as in Alertmanager),
/// else the system's. The SNI sent stays the URL's host name (none for an IP address):
/// reqwest does not let the name sent be changed.
fn named_tls(t: &HttpTlsConfig, name: &str) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &t.ca_file {
        Some(ca) => {
            let pem = read_tls_file(ca, "ca_file")?;
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                // a system root rustls cannot parse is skipped, as reqwest does
                let _ = roots.add(c);
            }
        }
    }
    let name = ServerName::try_from(name.to_string()).map_err(|_| {
        format!("tls_config.server_name: {name:?} is not a host name or IP address")
    })?;
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("tls_config: no usable root certificate: {e}"))?;
    let versions: &[&rustls::SupportedProtocolVersion] =
        if t.min_version.as_deref() == Some("TLS13") {
            &[&rustls::version::TLS13]
        } else {
            rustls::DEFAULT_VERSIONS
        };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls_config: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(NamedVerifier { inner, name }));
    let mut config = match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(key)) => {
            let pem = read_tls_file(cert, "cert_file")?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("tls_config.cert_file {}: {e}", cert.display()))?;
            let key_pem = read_tls_file(key, "key_file")?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| format!("tls_config.key_file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("tls_config.cert_file/key_file: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    // HTTP/1.1 only, like the rest of the router's clients
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifies a server's certificate for a fixed name (`tls_config.server_name`), whatever
/// host the connection went to.
#[derive(Debug)]
struct NamedVerifier {
    inner: std::sync::Arc<rustls::client::WebPkiServerVerifier>,
    name: rustls::pki_types::ServerName<'static>,
}

impl rustls::client::danger::ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The client of one HTTP integration instance: connection settings from `http_config`
/// and the credentials to put on every request.
pub struct HttpClient {
    client: reqwest::Client,
    auth: Auth,
    /// The last URL requested, parsed (most integrations send to one URL: parsing it for
    /// every request was a few per cent of a notification's CPU).
    last_url: Mutex<Option<(String, reqwest::Url)>>,
}

enum Auth {
    None,
    Header(Secret),
    Basic(String, Option<Secret>),
    OAuth2(OAuth2State),
}

struct OAuth2State {
    config: OAuth2,
    /// Token and when to fetch a new one.
    cached: Mutex<Option<(Secret, Instant)>>,
    /// Held while a token is fetched, so concurrent sends wait for that one fetch instead
    /// of each asking the token endpoint.
    fetching: tokio::sync::Mutex<()>,
}

impl HttpClient {
    /// Build from a resolved `http_config` (see [`HttpConfig::resolve`]).
    pub fn new(cfg: &HttpConfig, timeout: Duration) -> Result<Self, String> {
        // reqwest (feature `rustls-no-provider`) panics without an installed provider;
        // installing twice is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let redirects = if cfg.follow_redirects == Some(true) {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        };
        let mut b = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(redirects)
            .timeout(timeout)
            .connect_timeout(timeout);
        let t = &cfg.tls_config;
        if let (Some(name), false) = (&t.server_name, t.insecure_skip_verify) {
            b = b.tls_backend_preconfigured(named_tls(t, name)?);
        } else {
            b = reqwest_tls(b, t)?;
        }
        match &cfg.proxy_url {
            Some(p) => {
                let mut proxy = reqwest::Proxy::all(p.expose())
                    .map_err(|_| "http_config.proxy_url: invalid URL".to_string())?;
                if let Some(np) = &cfg.no_proxy {
                    proxy = proxy.no_proxy(reqwest::NoProxy::from_string(np));
                }
                b = b.proxy(proxy);
            }
            // reqwest reads HTTP(S)_PROXY by default; Alertmanager only when asked.
            None if !cfg.proxy_from_environment => b = b.no_proxy(),
            None => {}
        }
        let client = b
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))?;
        let auth = if let Some(a) = &cfg.authorization {
            let kind = a.kind.clone().unwrap_or_else(|| "Bearer".into());
            let cred = a.credentials.as_ref().map_or("", |c| c.expose());
            Auth::Header(Secret::new(format!("{kind} {cred}")))
        } else if let Some(t) = &cfg.bearer_token {
            Auth::Header(Secret::new(format!("Bearer {}", t.expose())))
        } else if let Some(b) = &cfg.basic_auth {
            Auth::Basic(b.username.clone(), b.password.clone())
        } else if let Some(o) = &cfg.oauth2 {
            Auth::OAuth2(OAuth2State {
                config: o.clone(),
                cached: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
            })
        } else {
            Auth::None
        };
        Ok(HttpClient {
            client,
            auth,
            last_url: Mutex::new(None),
        })
    }

    /// A request to `url` with the configured credentials. The secrets of `url` and of
    /// the credentials never appear in an error.
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &Secret,
    ) -> Result<reqwest::RequestBuilder, NotifyError> {
        let rb = match self.parsed(url.expose()) {
            Some(u) => self.client.request(method, u),
            // unparsable: reqwest reports it (without the URL) when the request is sent
            None => self.client.request(method, url.expose()),
        };
        Ok(match &self.auth {
            Auth::None => rb,
            Auth::Header(h) => rb.header(reqwest::header::AUTHORIZATION, h.expose()),
            Auth::Basic(u, p) => rb.basic_auth(u, p.as_ref().map(Secret::expose)),
            Auth::OAuth2(o) => {
                let token = self.oauth2_token(o).await?;
                rb.bearer_auth(token.expose())
            }
        })
    }

    /// `url` parsed, from the one-entry cache when it is the last URL requested.
    fn parsed(&self, url: &str) -> Option<reqwest::Url> {
        let mut last = lock(&self.last_url);
        if let Some((s, u)) = last.as_ref() {
            if s == url {
                return Some(u.clone());
            }
        }
        let u = reqwest::Url::parse(url).ok()?;
        *last = Some((url.to_string(), u.clone()));
        Some(u)
    }

    /// The cached OAuth2 token, or a new one from the token endpoint.
    async fn oauth2_token(&self, o: &OAuth2State) -> Result<Secret, NotifyError> {
        let valid = || {
            lock(&o.cached)
                .as_ref()
                .filter(|(_, until)| Instant::now() < *until)
                .map(|(t, _)| t.clone())
        };
        if let Some(t) = valid() {
            return Ok(t);
        }
        let _fetching = o.fetching.lock().await;
        // Another send may have fetched it while this one waited.
        if let Some(t) = valid() {
            return Ok(t);
        }
        let c = &o.config;
        let secret = c.client_secret.clone().unwrap_or_default();
        let mut form: Vec<(String, String)> =
            vec![("grant_type".into(), "client_credentials".into())];
        if !c.scopes.is_empty() {
            form.push(("scope".into(), c.scopes.join(" ")));
        }
        form.extend(
            c.endpoint_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let fail = |reason, m: String| NotifyError::Retryable {
            message: format!("oauth2 token: {}", redact(&m, &[&secret])),
            reason,
            retry_after: None,
        };
        let resp = self
            .client
            .post(&c.token_url)
            .basic_auth(
                form_encode(&c.client_id),
                Some(form_encode(secret.expose())),
            )
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| fail(FailureReason::Network, e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            let reason = FailureReason::from_status(status);
            let m = format!("token endpoint answered {status}");
            return Err(if matches!(status, 429 | 500..=599) {
                fail(reason, m)
            } else {
                NotifyError::permanent(reason, format!("oauth2 token: {m}"))
            });
        }
        #[derive(Deserialize)]
        struct TokenReply {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let reply: TokenReply = serde_json::from_str(&text).map_err(|_| {
            NotifyError::permanent(
                FailureReason::Other,
                "oauth2 token: the token endpoint's answer has no access_token",
            )
        })?;
        let token = Secret::new(reply.access_token);
        // Refresh a little early; without expires_in, keep it for a minute.
        let life = reply.expires_in.map_or(60, |s| s.saturating_sub(10).max(1));
        *lock(&o.cached) = Some((token.clone(), Instant::now() + Duration::from_secs(life)));
        Ok(token)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `application/x-www-form-urlencoded` encoding of one value (Go's `url.QueryEscape`).
pub(crate) fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_way_to_authenticate() {
        let mut c = HttpConfig {
            bearer_token: Some(Secret::new("t")),
            basic_auth: Some(HttpBasicAuth {
                username: "u".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = c.resolve(Path::new(".")).unwrap_err();
        assert!(e.contains("at most one"), "{e}");
        assert!(
            e.contains("basic_auth") && e.contains("bearer_token"),
            "{e}"
        );
    }

    #[test]
    fn secrets_are_redacted_in_dumps() {
        let c = HttpConfig {
            authorization: Some(Authorization {
                kind: None,
                credentials: Some(Secret::new("xoxb-SECRET")),
                credentials_file: None,
            }),
            ..Default::default()
        };
        let dump = format!("{c:?} {}", serde_json::to_string(&c).unwrap());
        assert!(!dump.contains("xoxb-SECRET"), "{dump}");
    }

    #[test]
    fn files_are_read_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        let mut c = HttpConfig {
            bearer_token_file: Some("token".into()),
            ..Default::default()
        };
        c.resolve(dir.path()).unwrap();
        assert_eq!(c.bearer_token.as_ref().map(Secret::expose), Some("s3cret"));
        let mut missing = HttpConfig {
            bearer_token_file: Some("nope".into()),
            ..Default::default()
        };
        let e = missing.resolve(dir.path()).unwrap_err();
        assert!(
            e.contains("bearer_token_file") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
