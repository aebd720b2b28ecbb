//! Authentication for ingest (bearer tokens or basic auth) and the admin API (bearer
//! tokens, or loopback clients only when no token is configured). Comparisons are
//! constant-time.

use crate::config::{AdminConfig, IngestAuth};
use axum::http::{header, HeaderMap};
use base64::Engine;
use std::net::SocketAddr;

/// Outcome of an auth check.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthResult {
    Ok,
    /// 401: missing or wrong credentials.
    Unauthorized(&'static str),
    /// 403: credentials cannot help (admin API from a non-loopback client with no token configured).
    Forbidden(&'static str),
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(decoded).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

pub fn check_ingest(auth: Option<&IngestAuth>, headers: &HeaderMap) -> AuthResult {
    let Some(auth) = auth else {
        return AuthResult::Ok;
    };
    if let Some(token) = bearer(headers) {
        // Check every token so the time taken does not depend on which one matched.
        let ok = auth
            .bearer_tokens
            .iter()
            .fold(false, |acc, t| t.ct_eq(token.as_bytes()) | acc);
        if ok {
            return AuthResult::Ok;
        }
    }
    if let (Some(b), Some((u, p))) = (&auth.basic_auth, basic(headers)) {
        let user_ok = crate::secret::Secret::new(b.username.clone()).ct_eq(u.as_bytes());
        let pass_ok = b.password.as_ref().is_some_and(|pw| pw.ct_eq(p.as_bytes()));
        if user_ok & pass_ok {
            return AuthResult::Ok;
        }
    }
    AuthResult::Unauthorized("missing or invalid credentials for ingest")
}

pub fn check_admin(
    admin: &AdminConfig,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> AuthResult {
    if admin.bearer_tokens.is_empty() {
        return match peer {
            Some(p) if p.ip().is_loopback() => AuthResult::Ok,
            _ => AuthResult::Forbidden(
                "admin API is restricted to loopback clients because no admin.bearer_tokens are configured",
            ),
        };
    }
    match bearer(headers) {
        Some(token) => {
            let ok = admin
                .bearer_tokens
                .iter()
                .fold(false, |acc, t| t.ct_eq(token.as_bytes()) | acc);
            if ok {
                AuthResult::Ok
            } else {
                AuthResult::Unauthorized("invalid admin token")
            }
        }
        None => AuthResult::Unauthorized("admin API requires Authorization: Bearer <token>"),
    }
}
