//! HTTP plumbing shared by the HTTP integrations (webhook, Slack): sending with the
//! integration's [`HttpClient`] (built from its `http_config`), and the classification of
//! answers into success, retryable and permanent failures. Destination URLs are secrets,
//! so they never appear in an error message.

use super::http_config::HttpClient;
use super::{FailureReason, NotifyError};
use crate::secret::{redact, Secret};
use crate::template::{one_line, truncate};
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;

/// Sent as `User-Agent` on every outgoing HTTP request.
pub const USER_AGENT: &str = concat!("alert-router/", env!("CARGO_PKG_VERSION"));

/// Per-attempt timeout when the configuration sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest `Retry-After` honoured; a destination asking for more is retried after
/// this (the worker's `max_age` still bounds the whole delivery).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How much of an error response body is kept for the error message.
const ERROR_BODY_CHARS: usize = 200;

/// How much of any response body is read at all.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A destination URL as it may be shown (render endpoint, logs): scheme, host and port;
/// the path and query, which carry tokens on most chat platforms, become `<secret>`.
pub fn redacted_url(url: &Secret) -> String {
    match reqwest::Url::parse(url.expose()) {
        Ok(u) => {
            let mut out = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
            if let Some(p) = u.port() {
                out.push_str(&format!(":{p}"));
            }
            if u.path() != "/" || u.query().is_some() {
                out.push_str("/<secret>");
            }
            out
        }
        Err(_) => crate::secret::REDACTED.to_string(),
    }
}

/// How a JSON POST to `url` with `body` is shown by the render endpoint.
pub(crate) fn rendered_post<T: Serialize + ?Sized>(
    url: &Secret,
    body: &T,
) -> super::RenderedRequest {
    super::RenderedRequest {
        method: "POST".into(),
        url: redacted_url(url),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: serde_json::to_value(body).unwrap_or_default(),
    }
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub(crate) struct HttpReply {
    pub status: u16,
    pub body: String,
}

/// Any answer, before classification: for integrations that read a platform's own
/// signals (a JSON `retry_after`, "unknown message") before [`classify`] decides.
#[derive(Debug)]
pub(crate) struct RawReply {
    pub status: u16,
    /// The `Retry-After` header, parsed.
    pub retry_after: Option<Duration>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

/// POST `body` as JSON to the secret `url` (with the client's credentials) and classify
/// the answer.
pub(crate) async fn post_json<T: Serialize + ?Sized>(
    client: &HttpClient,
    url: &Secret,
    body: &T,
) -> Result<HttpReply, NotifyError> {
    let r = send_json(client, reqwest::Method::POST, url, body).await?;
    classify(r.status, r.retry_after, &r.body, url)?;
    Ok(HttpReply {
        status: r.status,
        body: r.body,
    })
}

/// Send `body` as JSON with `method` to the secret `url` and return the answer, whatever
/// its status; only a request that got no answer is an error.
pub(crate) async fn send_json<T: Serialize + ?Sized>(
    client: &HttpClient,
    method: reqwest::Method,
    url: &Secret,
    body: &T,
) -> Result<RawReply, NotifyError> {
    send_json_as(client, method, url, body, "application/json").await
}

/// POST `body` as JSON sent with `content_type` (Slack's Web API wants a charset) and
/// return the answer unclassified, for APIs whose body says more than the status.
pub(crate) async fn post_json_raw<T: Serialize + ?Sized>(
    client: &HttpClient,
    url: &Secret,
    body: &T,
    content_type: &str,
) -> Result<RawReply, NotifyError> {
    send_json_as(client, reqwest::Method::POST, url, body, content_type).await
}

async fn send_json_as<T: Serialize + ?Sized>(
    client: &HttpClient,
    method: reqwest::Method,
    url: &Secret,
    body: &T,
    content_type: &str,
) -> Result<RawReply, NotifyError> {
    // sized for a typical notification: growing from empty reallocated it ~10 times
    let mut bytes = Vec::with_capacity(4096);
    serde_json::to_writer(&mut bytes, body).map_err(|e| {
        NotifyError::permanent(FailureReason::Other, format!("cannot encode the body: {e}"))
    })?;
    let mut resp = client
        .request(method, url)
        .await?
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(bytes)
        .send()
        .await
        .map_err(|e| transport_error(e, url))?;
    let status = resp.status().as_u16();
    let headers = std::mem::take(resp.headers_mut());
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, OffsetDateTime::now_utc()));
    // The status decides; a body that cannot be read only loses detail.
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    let body = String::from_utf8_lossy(&bytes).into_owned();
    Ok(RawReply {
        status,
        retry_after,
        headers,
        body,
    })
}

/// Classify an HTTP answer: 2xx success; 429 and 5xx retryable (honouring `retry_after`);
/// anything else (4xx, unfollowed 3xx) permanent. The message names the status code and
/// the start of the body, never the URL.
pub(crate) fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
    url: &Secret,
) -> Result<(), NotifyError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let snippet = truncate(&one_line(redact(body, &[url]).trim()), ERROR_BODY_CHARS);
    let mut message = format!("unexpected status code {status}");
    if !snippet.is_empty() {
        message.push_str(": ");
        message.push_str(&snippet);
    }
    let reason = FailureReason::from_status(status);
    match status {
        429 | 500..=599 => Err(NotifyError::Retryable {
            message,
            reason,
            retry_after,
        }),
        300..=399 => Err(NotifyError::permanent(
            reason,
            format!("{message} (redirects are not followed)"),
        )),
        _ => Err(NotifyError::permanent(reason, message)),
    }
}

/// A request that got no answer: retryable (network, timeout), except a request that
/// could not even be built. reqwest errors carry the URL, so it is stripped and the rest
/// redacted.
pub(crate) fn transport_error(e: reqwest::Error, url: &Secret) -> NotifyError {
    let mut chain = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    let (timeout, builder) = (e.is_timeout(), e.is_builder());
    let mut message = e.without_url().to_string();
    for s in chain {
        if !message.contains(&s) {
            message.push_str(": ");
            message.push_str(&s);
        }
    }
    let message = redact(&message, &[url]);
    if builder {
        NotifyError::permanent(FailureReason::Other, message)
    } else if timeout {
        NotifyError::retryable(FailureReason::Timeout, message)
    } else {
        NotifyError::retryable(FailureReason::Network, message)
    }
}

/// Parse `Retry-After`: delay in seconds, or an HTTP date (IMF-fixdate) relative to `now`.
/// Capped at [`MAX_RETRY_AFTER`].
pub(crate) fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, format)
        .ok()?
        .assume_utc();
    Some(
        Duration::try_from(at - now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = time::macros::datetime!(2024-05-01 10:00:00 UTC);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 30 ", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Wed, 01 May 2024 10:00:42 GMT", now),
            Some(Duration::from_secs(42))
        );
        assert_eq!(
            parse_retry_after("Wed, 01 May 2024 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn urls_are_shown_without_their_secret_parts() {
        let u = Secret::new("https://hooks.slack.com/services/T0/B0/XYZ");
        assert_eq!(redacted_url(&u), "https://hooks.slack.com/<secret>");
        let u = Secret::new("http://127.0.0.1:8080/");
        assert_eq!(redacted_url(&u), "http://127.0.0.1:8080");
    }

    #[test]
    fn statuses_are_classified() {
        let url = Secret::new("http://hooks.test/services/T/B/SECRETTOKEN");
        assert!(classify(200, None, "ok", &url).is_ok());
        assert!(classify(204, None, "", &url).is_ok());
        match classify(429, Some(Duration::from_secs(3)), "", &url) {
            Err(NotifyError::Retryable {
                reason: FailureReason::RateLimited,
                retry_after: Some(d),
                ..
            }) => assert_eq!(d, Duration::from_secs(3)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(503, None, "", &url),
            Err(NotifyError::Retryable {
                reason: FailureReason::ServerError,
                ..
            })
        ));
        assert!(matches!(
            classify(302, None, "", &url),
            Err(NotifyError::Permanent { .. })
        ));
        let e = classify(
            410,
            None,
            "channel_is_archived\n for http://hooks.test/services/T/B/SECRETTOKEN",
            &url,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            NotifyError::Permanent {
                reason: FailureReason::ClientError,
                ..
            }
        ));
        let msg = e.to_string();
        assert!(msg.starts_with("unexpected status code 410: channel_is_archived"));
        assert!(!msg.contains("SECRETTOKEN"), "{msg}");
        assert!(matches!(
            classify(403, None, "invalid_token", &url).map_err(|e| e.reason()),
            Err(FailureReason::AuthError)
        ));
        let long = "x".repeat(1000);
        let msg = classify(400, None, &long, &url).unwrap_err().to_string();
        assert!(msg.chars().count() < 250, "{msg}");
    }

    #[tokio::test]
    async fn network_errors_are_retryable_and_hide_the_url() {
        // A port nobody listens on: bind, learn the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let url = Secret::new(format!("http://127.0.0.1:{port}/hook/SECRETTOKEN"));
        let client = HttpClient::new(
            &crate::notify::http_config::HttpConfig::default(),
            Duration::from_secs(2),
        )
        .unwrap();
        let e = post_json(&client, &url, &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(matches!(e, NotifyError::Retryable { .. }), "{e:?}");
        assert!(!e.to_string().contains("SECRETTOKEN"), "{e}");
    }
}
