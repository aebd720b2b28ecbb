//! Configuration: the YAML model (Alertmanager-shaped, strict), defaults, `${ENV}`
//! expansion, secrets from `*_file` keys, and validation with file:line:column errors.

use crate::duration::AmDuration;
use crate::matcher::{parse_matchers, MatchType, Matcher};
use crate::notify::http_config::HttpConfig;
pub use crate::notify::slack::SlackConfig;
use crate::secret::Secret;
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default configuration, embedded at build time (used when `--config` is not given).
pub const DEFAULT_CONFIG: &str = include_str!("../config/alert-router.yml");

/// A configuration error, pointing at the file and (when known) line and column.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{}:{}: {}", self.file, l, c, self.message),
            (Some(l), None) => write!(f, "{}:{}: {}", self.file, l, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Top-level configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Base URL of this router, used for links in messages.
    #[serde(default)]
    pub external_url: Option<String>,
    #[serde(default)]
    pub storage: StorageConfig,
    /// Listener limits (`src/http/listener.rs`).
    #[serde(default)]
    pub server: crate::http::listener::ServerConfig,
    /// HTTPS on the listener.
    #[serde(default)]
    pub tls: Option<crate::http::listener::ListenerTls>,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub global: GlobalConfig,
    pub route: RouteConfig,
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    #[serde(default)]
    pub inhibit_rules: Vec<crate::inhibit::InhibitRuleConfig>,
    #[serde(default)]
    pub time_intervals: Vec<crate::timeinterval::TimeIntervalConfig>,
    /// Deprecated spelling of `time_intervals` (same shape; names unique across both).
    #[serde(default)]
    pub mute_time_intervals: Vec<crate::timeinterval::TimeIntervalConfig>,
    /// Template files (glob patterns, relative to the configuration file's directory).
    #[serde(default)]
    pub templates: Vec<String>,
    /// Language of every templated field and template file: `go` (Alertmanager's) or `jinja`.
    #[serde(default)]
    pub template_language: crate::template::TemplateLanguage,
}

fn default_listen() -> String {
    "127.0.0.1:9095".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default = "default_storage_path")]
    pub path: PathBuf,
    /// Resolved alerts, delivered notifications and dead letters are kept this long.
    #[serde(default = "default_retention")]
    pub retention: AmDuration,
    /// sled page cache; sled treats it as a soft limit. Alerts are held in memory anyway
    /// (the live map), so the cache serves only the notification log and outbox.
    #[serde(default = "default_cache_mb")]
    pub cache_capacity_mb: u64,
    /// The alert log is checkpointed once it holds this many bytes (or half the live alert
    /// data, if that is more). Smaller = faster restarts, more background writing.
    #[serde(default = "default_checkpoint_bytes")]
    pub checkpoint_min_bytes: u64,
    /// When acknowledged writes are `fsync`ed: `always`, `batch` (default) or `none`
    /// (see [`crate::store::fsync`]).
    #[serde(default)]
    pub sync: crate::store::SyncMode,
}

fn default_storage_path() -> PathBuf {
    PathBuf::from("./data")
}
fn default_retention() -> AmDuration {
    AmDuration::from_secs(120 * 3600)
}
fn default_cache_mb() -> u64 {
    64
}
fn default_checkpoint_bytes() -> u64 {
    crate::store::alertlog::MIN_CHECKPOINT_BYTES
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: default_storage_path(),
            retention: default_retention(),
            cache_capacity_mb: default_cache_mb(),
            checkpoint_min_bytes: default_checkpoint_bytes(),
            sync: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Alerts waiting for the store writer before new requests get 503.
    #[serde(default = "default_queue")]
    pub max_pending_alerts: usize,
    #[serde(default)]
    pub auth: Option<IngestAuth>,
    /// Per-request limits (see [`crate::alert::AlertLimits`] for the defaults).
    #[serde(default = "limits::alerts")]
    pub max_alerts_per_request: usize,
    #[serde(default = "limits::labels")]
    pub max_labels_per_alert: usize,
    #[serde(default = "limits::label_bytes")]
    pub max_label_bytes: usize,
    #[serde(default = "limits::annotations")]
    pub max_annotations_per_alert: usize,
    #[serde(default = "limits::annotation_bytes")]
    pub max_annotation_bytes: usize,
    /// Aggregation groups before new groups of a route join its overflow group.
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
    /// How long a firing alert received by webhook stays firing without its Alertmanager
    /// sending it again (unset: until a resolved webhook arrives). Alertmanager repeats a
    /// firing group every `repeat_interval`, so this is set to a few of them (the sidecar
    /// manifests: 15m = 3 × their 5m). An alert not refreshed in time leaves its
    /// groups without a resolve notification: after an HA failover, the old sender's
    /// router stops repeating groups that its peer now delivers.
    #[serde(default)]
    pub webhook_firing_ttl: Option<AmDuration>,
}

/// Defaults of the ingest limits.
mod limits {
    use crate::alert::AlertLimits;
    pub fn alerts() -> usize {
        AlertLimits::default().max_alerts_per_request
    }
    pub fn labels() -> usize {
        AlertLimits::default().max_labels_per_alert
    }
    pub fn label_bytes() -> usize {
        AlertLimits::default().max_label_bytes
    }
    pub fn annotations() -> usize {
        AlertLimits::default().max_annotations_per_alert
    }
    pub fn annotation_bytes() -> usize {
        AlertLimits::default().max_annotation_bytes
    }
}

impl IngestConfig {
    /// The limits every ingest request is checked against.
    pub fn limits(&self) -> crate::alert::AlertLimits {
        crate::alert::AlertLimits {
            max_alerts_per_request: self.max_alerts_per_request,
            max_labels_per_alert: self.max_labels_per_alert,
            max_label_bytes: self.max_label_bytes,
            max_annotations_per_alert: self.max_annotations_per_alert,
            max_annotation_bytes: self.max_annotation_bytes,
        }
    }
}

fn default_max_body() -> usize {
    4 * 1024 * 1024
}
fn default_queue() -> usize {
    200_000
}
fn default_max_groups() -> usize {
    1_000_000
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: default_max_body(),
            max_pending_alerts: default_queue(),
            auth: None,
            max_alerts_per_request: limits::alerts(),
            max_labels_per_alert: limits::labels(),
            max_label_bytes: limits::label_bytes(),
            max_annotations_per_alert: limits::annotations(),
            max_annotation_bytes: limits::annotation_bytes(),
            max_groups: default_max_groups(),
            webhook_firing_ttl: None,
        }
    }
}

/// Credentials senders must present on the ingest endpoints.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngestAuth {
    #[serde(default)]
    pub bearer_tokens: Vec<Secret>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// Admin API protection. With no token configured the admin API answers loopback clients only.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default)]
    pub bearer_tokens: Vec<Secret>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
}

/// Retry policy of the delivery workers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// A notification still failing this long after it was queued goes to dead letters.
    #[serde(default = "default_max_age")]
    pub max_age: AmDuration,
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial: AmDuration,
    #[serde(default = "default_backoff_max")]
    pub backoff_max: AmDuration,
}

fn default_max_age() -> AmDuration {
    AmDuration::from_secs(6 * 3600)
}
fn default_backoff_initial() -> AmDuration {
    AmDuration(Duration::from_millis(500))
}
fn default_backoff_max() -> AmDuration {
    AmDuration::from_secs(60)
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_age: default_max_age(),
            backoff_initial: default_backoff_initial(),
            backoff_max: default_backoff_max(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default = "default_resolve_timeout")]
    pub resolve_timeout: AmDuration,
    #[serde(default)]
    pub smtp_smarthost: Option<String>,
    #[serde(default)]
    pub smtp_from: Option<String>,
    #[serde(default)]
    pub smtp_hello: Option<String>,
    #[serde(default)]
    pub smtp_auth_username: Option<String>,
    #[serde(default)]
    pub smtp_auth_password: Option<Secret>,
    #[serde(default)]
    pub smtp_auth_password_file: Option<PathBuf>,
    #[serde(default)]
    pub smtp_require_tls: Option<bool>,
    #[serde(default)]
    pub slack_api_url: Option<Secret>,
    #[serde(default)]
    pub slack_api_url_file: Option<PathBuf>,
    #[serde(default)]
    pub webex_api_url: Option<String>,
    /// Bot token for every `slack_configs` entry without `api_url`, `app_token` or
    /// credentials of its own (posted to `slack_app_url`).
    #[serde(default)]
    pub slack_app_token: Option<Secret>,
    #[serde(default)]
    pub slack_app_token_file: Option<PathBuf>,
    /// Default `https://slack.com/api/chat.postMessage`.
    #[serde(default)]
    pub slack_app_url: Option<String>,
    #[serde(default)]
    pub mattermost_webhook_url: Option<Secret>,
    #[serde(default)]
    pub mattermost_webhook_url_file: Option<PathBuf>,
    /// Default `api_url` of `telegram_configs`.
    #[serde(default)]
    pub telegram_api_url: Option<String>,
    /// Default `api_url` of `rocketchat_configs`.
    #[serde(default)]
    pub rocketchat_api_url: Option<String>,
    /// Default credentials of `rocketchat_configs`.
    #[serde(default)]
    pub rocketchat_token: Option<Secret>,
    #[serde(default)]
    pub rocketchat_token_file: Option<PathBuf>,
    #[serde(default)]
    pub rocketchat_token_id: Option<Secret>,
    #[serde(default)]
    pub rocketchat_token_id_file: Option<PathBuf>,
}

fn default_resolve_timeout() -> AmDuration {
    AmDuration::from_secs(300)
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            resolve_timeout: default_resolve_timeout(),
            smtp_smarthost: None,
            smtp_from: None,
            smtp_hello: None,
            smtp_auth_username: None,
            smtp_auth_password: None,
            smtp_auth_password_file: None,
            smtp_require_tls: None,
            slack_api_url: None,
            slack_api_url_file: None,
            webex_api_url: None,
            slack_app_token: None,
            slack_app_token_file: None,
            slack_app_url: None,
            mattermost_webhook_url: None,
            mattermost_webhook_url_file: None,
            telegram_api_url: None,
            rocketchat_api_url: None,
            rocketchat_token: None,
            rocketchat_token_file: None,
            rocketchat_token_id: None,
            rocketchat_token_id_file: None,
        }
    }
}

/// Label matchers written as strings (`severity="critical"`, `env=~"prod|staging"`);
/// each string may hold several comma-separated matchers.
#[derive(Debug, Clone, Default)]
pub struct MatcherStrings(pub Vec<String>, pub Vec<Matcher>);

impl<'de> Deserialize<'de> for MatcherStrings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        let mut ms = Vec::new();
        for s in &raw {
            let parsed = parse_matchers(s)
                .map_err(|e| serde::de::Error::custom(format!("invalid matcher {s:?}: {e}")))?;
            ms.extend(parsed);
        }
        Ok(MatcherStrings(raw, ms))
    }
}

impl Serialize for MatcherStrings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// `match_re` values: regexes checked when the config is read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegexMap(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for RegexMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = BTreeMap::<String, String>::deserialize(d)?;
        for (k, v) in &m {
            Matcher::new(k.clone(), MatchType::Regex, v.clone())
                .map_err(|e| serde::de::Error::custom(format!("match_re {k}: {e}")))?;
        }
        Ok(RegexMap(m))
    }
}

/// One node of the routing tree (Alertmanager's `route`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default)]
    pub receiver: Option<Spanned<String>>,
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    #[serde(default)]
    pub group_wait: Option<AmDuration>,
    #[serde(default)]
    pub group_interval: Option<AmDuration>,
    #[serde(default)]
    pub repeat_interval: Option<AmDuration>,
    #[serde(default)]
    pub matchers: MatcherStrings,
    #[serde(default, rename = "match")]
    pub match_eq: BTreeMap<String, String>,
    #[serde(default)]
    pub match_re: RegexMap,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Names of `time_intervals` during which this node sends nothing (not inherited).
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    /// Names of `time_intervals` outside of which this node sends nothing (not inherited).
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// Token-bucket limit for one integration instance.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub messages: u32,
    pub per: AmDuration,
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimit {
    pub fn new(messages: u32, per_secs: u64, burst: u32) -> Self {
        RateLimit {
            messages,
            per: AmDuration::from_secs(per_secs),
            burst: Some(burst),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: Spanned<String>,
    #[serde(default)]
    pub email_configs: Vec<EmailConfig>,
    #[serde(default)]
    pub slack_configs: Vec<SlackConfig>,
    #[serde(default)]
    pub webhook_configs: Vec<WebhookConfig>,
    #[serde(default)]
    pub log_configs: Vec<LogConfig>,
    #[serde(default)]
    pub msteamsv2_configs: Vec<crate::notify::msteamsv2::MsTeamsV2Config>,
    #[serde(default)]
    pub msteams_configs: Vec<crate::notify::msteams::MsTeamsConfig>,
    #[serde(default)]
    pub webex_configs: Vec<crate::notify::webex::WebexConfig>,
    #[serde(default)]
    pub telegram_configs: Vec<crate::notify::telegram::TelegramConfig>,
    #[serde(default)]
    pub rocketchat_configs: Vec<crate::notify::rocketchat::RocketchatConfig>,
    #[serde(default)]
    pub discord_configs: Vec<crate::notify::discord::DiscordConfig>,
    #[serde(default)]
    pub mattermost_configs: Vec<crate::notify::mattermost::MattermostConfig>,
    #[serde(default)]
    pub googlechat_configs: Vec<crate::notify::googlechat::GoogleChatConfig>,
}

impl ReceiverConfig {
    /// Every integration instance of this receiver as (kind, index), in one fixed order
    /// (routing, test sends and worker keys all use it).
    pub fn integrations(&self) -> Vec<(&'static str, usize)> {
        let mut v: Vec<(&'static str, usize)> = Vec::new();
        v.extend((0..self.email_configs.len()).map(|i| ("email", i)));
        v.extend((0..self.slack_configs.len()).map(|i| ("slack", i)));
        v.extend((0..self.webhook_configs.len()).map(|i| ("webhook", i)));
        v.extend((0..self.log_configs.len()).map(|i| ("log", i)));
        v.extend((0..self.msteamsv2_configs.len()).map(|i| ("msteamsv2", i)));
        v.extend((0..self.msteams_configs.len()).map(|i| ("msteams", i)));
        v.extend((0..self.webex_configs.len()).map(|i| ("webex", i)));
        v.extend((0..self.telegram_configs.len()).map(|i| ("telegram", i)));
        v.extend((0..self.rocketchat_configs.len()).map(|i| ("rocketchat", i)));
        v.extend((0..self.discord_configs.len()).map(|i| ("discord", i)));
        v.extend((0..self.mattermost_configs.len()).map(|i| ("mattermost", i)));
        v.extend((0..self.googlechat_configs.len()).map(|i| ("googlechat", i)));
        v
    }
}

/// TLS settings for an outgoing connection.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with extra CA certificates to trust (private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Storm digest: more than this many groups waiting for the rate limiter go out as one
    /// message (0 = never).
    #[serde(default)]
    pub digest_threshold: Option<usize>,
    pub to: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub smarthost: Option<String>,
    #[serde(default)]
    pub hello: Option<String>,
    #[serde(default)]
    pub auth_username: Option<String>,
    #[serde(default)]
    pub auth_password: Option<Secret>,
    #[serde(default)]
    pub auth_password_file: Option<PathBuf>,
    #[serde(default)]
    pub require_tls: Option<bool>,
    #[serde(default)]
    pub force_implicit_tls: Option<bool>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub send_resolved: bool,
    #[serde(default)]
    pub timeout: Option<AmDuration>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

pub(crate) fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Storm digest: more than this many groups waiting for the rate limiter go out as one
    /// message (0 = never).
    #[serde(default)]
    pub digest_threshold: Option<usize>,
    #[serde(default)]
    pub http_config: HttpConfig,
    #[serde(default)]
    pub url: Option<Secret>,
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    #[serde(default)]
    pub max_alerts: usize,
    #[serde(default)]
    pub timeout: Option<AmDuration>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Storm digest: more than this many groups waiting for the rate limiter go out as one
    /// message (0 = never).
    #[serde(default)]
    pub digest_threshold: Option<usize>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

impl Config {
    /// Read, expand and validate a configuration file.
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: name.clone(),
            line: None,
            column: None,
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::load_str(&text, &name, base)
    }

    /// Parse configuration text. `file` names it in errors; relative `*_file` paths are
    /// resolved against `base_dir`.
    pub fn load_str(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let err = |line: Option<u64>, column: Option<u64>, message: String| ConfigError {
            file: file.to_string(),
            line,
            column,
            message,
        };
        let (expanded, env_values) =
            expand_env(text).map_err(|(line, msg)| err(Some(line), None, msg))?;
        // Values that came from the environment may be secrets: never echo them.
        let scrub = |m: String| {
            let secrets: Vec<Secret> = env_values.iter().map(|v| Secret::new(v.clone())).collect();
            crate::secret::redact(&m, &secrets.iter().collect::<Vec<_>>())
        };
        let mut cfg: Config = serde_saphyr::from_str(&expanded).map_err(|e| {
            let loc = e.location();
            // Keep only the message: the parser's source snippet could show a secret.
            let full = e.to_string();
            let first = full.lines().next().unwrap_or("invalid YAML");
            let message = first.strip_prefix("error: ").unwrap_or(first);
            let message = match message.split_once(": ") {
                Some((pos, rest)) if pos.starts_with("line ") => rest,
                _ => message,
            };
            err(
                loc.map(|l| l.line()),
                loc.map(|l| l.column()),
                scrub(message.to_string()),
            )
        })?;
        // Templated fields are checked in the configured language.
        let _lang = crate::template::CheckLanguage::set(cfg.template_language);
        cfg.resolve(base_dir)
            .map_err(|(loc, message)| err(loc.map(|l| l.0), loc.map(|l| l.1), scrub(message)))?;
        Ok(cfg)
    }

    /// The embedded default configuration.
    pub fn default_embedded() -> Result<Config, ConfigError> {
        Config::load_str(
            DEFAULT_CONFIG,
            "<embedded config/alert-router.yml>",
            Path::new("."),
        )
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // validated in resolve()
        self.listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9095)))
    }

    pub fn external_url(&self) -> String {
        match &self.external_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    pub fn receiver(&self, name: &str) -> Option<&ReceiverConfig> {
        self.receivers.iter().find(|r| r.name.value == name)
    }

    /// Fill defaults from `global`, read `*_file` secrets and check cross references.
    fn resolve(&mut self, base: &Path) -> Result<(), (Option<(u64, u64)>, String)> {
        let at = |s: &Spanned<String>| Some((s.referenced.line(), s.referenced.column()));
        let read = |p: &Path, what: &str| -> Result<Secret, (Option<(u64, u64)>, String)> {
            crate::secret::read_file(base, p, what).map_err(|e| (None, e))
        };
        for t in &mut self.templates {
            *t = base.join(&*t).display().to_string();
        }
        self.listen.parse::<SocketAddr>().map_err(|e| {
            (
                None,
                format!("listen: {:?} is not host:port ({e})", self.listen),
            )
        })?;
        if let Some(u) = &self.external_url {
            check_url(u).map_err(|m| (None, format!("external_url: {m}")))?;
        }
        self.server.validate().map_err(|m| (None, m))?;
        if let Some(t) = &mut self.tls {
            t.validate().map_err(|m| (None, m))?;
            t.resolve_paths(base);
        }
        if self.storage.checkpoint_min_bytes < 4096 {
            return Err((
                None,
                "storage.checkpoint_min_bytes: must be at least 4096".into(),
            ));
        }
        if self.storage.retention.0.is_zero() {
            return Err((None, "storage.retention: must be greater than 0".into()));
        }
        if self
            .ingest
            .webhook_firing_ttl
            .is_some_and(|d| d.0.is_zero())
        {
            return Err((
                None,
                "ingest.webhook_firing_ttl: must be greater than 0 (leave it unset for no TTL)"
                    .into(),
            ));
        }
        if self.ingest.max_body_bytes < 1024 {
            return Err((None, "ingest.max_body_bytes: must be at least 1024".into()));
        }
        for (key, v) in [
            ("max_alerts_per_request", self.ingest.max_alerts_per_request),
            ("max_labels_per_alert", self.ingest.max_labels_per_alert),
            ("max_label_bytes", self.ingest.max_label_bytes),
            (
                "max_annotations_per_alert",
                self.ingest.max_annotations_per_alert,
            ),
            ("max_annotation_bytes", self.ingest.max_annotation_bytes),
        ] {
            if v == 0 {
                return Err((None, format!("ingest.{key}: must be at least 1")));
            }
        }
        if let Some(auth) = &mut self.ingest.auth {
            if let Some(p) = auth.bearer_token_file.take() {
                auth.bearer_tokens
                    .push(read(&p, "ingest.auth.bearer_token_file")?);
            }
            if let Some(b) = &mut auth.basic_auth {
                if let Some(p) = b.password_file.take() {
                    b.password = Some(read(&p, "ingest.auth.basic_auth.password_file")?);
                }
                if b.password.is_none() {
                    return Err((
                        None,
                        "ingest.auth.basic_auth: password or password_file required".into(),
                    ));
                }
            }
            if auth.bearer_tokens.iter().any(Secret::is_empty) {
                return Err((None, "ingest.auth.bearer_tokens: empty token".into()));
            }
            if auth.bearer_tokens.is_empty() && auth.basic_auth.is_none() {
                return Err((
                    None,
                    "ingest.auth: set bearer_tokens, bearer_token_file or basic_auth".into(),
                ));
            }
        }
        if let Some(p) = self.admin.bearer_token_file.take() {
            self.admin
                .bearer_tokens
                .push(read(&p, "admin.bearer_token_file")?);
        }
        if self.admin.bearer_tokens.iter().any(Secret::is_empty) {
            return Err((None, "admin.bearer_tokens: empty token".into()));
        }
        let g = &mut self.global;
        if let Some(p) = g.smtp_auth_password_file.take() {
            g.smtp_auth_password = Some(read(&p, "global.smtp_auth_password_file")?);
        }
        if let Some(p) = g.slack_api_url_file.take() {
            g.slack_api_url = Some(read(&p, "global.slack_api_url_file")?);
        }
        if let Some(p) = g.slack_app_token_file.take() {
            if g.slack_app_token.is_some() {
                return Err((
                    None,
                    "global: set only one of slack_app_token and slack_app_token_file".into(),
                ));
            }
            g.slack_app_token = Some(read(&p, "global.slack_app_token_file")?);
        }
        if let Some(u) = &g.slack_app_url {
            check_url(u).map_err(|m| (None, format!("global.slack_app_url: {m}")))?;
        }
        if let (Some(_), Some(u)) = (&g.slack_app_token, &g.slack_api_url) {
            let app_url = g
                .slack_app_url
                .as_deref()
                .unwrap_or(crate::notify::slack::DEFAULT_APP_URL);
            if u.expose() != app_url {
                return Err((None, "global: slack_app_token goes with slack_app_url; slack_api_url may only be set too when it is that same URL".into()));
            }
        }
        secret_or_file(
            &mut g.mattermost_webhook_url,
            &mut g.mattermost_webhook_url_file,
            base,
            "global.mattermost_webhook_url",
        )
        .map_err(|m| (None, m))?;
        let g = self.global.clone();

        // Receivers: unique names, one resolved set of settings per integration.
        let mut names = BTreeSet::new();
        for r in &mut self.receivers {
            let rname = r.name.value.clone();
            if rname.is_empty() {
                return Err((at(&r.name), "receivers[].name: must not be empty".into()));
            }
            if !names.insert(rname.clone()) {
                return Err((
                    at(&r.name),
                    format!("receivers: duplicate receiver name {rname:?}"),
                ));
            }
            let ctx = |i: usize, kind: &str, m: String| {
                (at(&r.name), format!("receiver {rname:?} {kind}[{i}]: {m}"))
            };
            for (i, e) in r.email_configs.iter_mut().enumerate() {
                let c = |m: String| ctx(i, "email_configs", m);
                if e.to.trim().is_empty() {
                    return Err(c("to: required".into()));
                }
                e.from = e.from.take().or_else(|| g.smtp_from.clone());
                if e.from.as_deref().is_none_or(str::is_empty) {
                    return Err(c("from: required (here or as global.smtp_from)".into()));
                }
                e.smarthost = e.smarthost.take().or_else(|| g.smtp_smarthost.clone());
                match e.smarthost.as_deref().map(split_host_port) {
                    Some(Some(_)) => {}
                    _ => {
                        return Err(c(
                            "smarthost: required as host:port (here or as global.smtp_smarthost)"
                                .into(),
                        ))
                    }
                }
                e.hello = e.hello.take().or_else(|| g.smtp_hello.clone());
                e.auth_username = e
                    .auth_username
                    .take()
                    .or_else(|| g.smtp_auth_username.clone());
                if let Some(p) = e.auth_password_file.take() {
                    e.auth_password =
                        Some(read(&p, "email_configs.auth_password_file").map_err(|x| c(x.1))?);
                }
                e.auth_password = e
                    .auth_password
                    .take()
                    .or_else(|| g.smtp_auth_password.clone());
                e.require_tls = Some(e.require_tls.or(g.smtp_require_tls).unwrap_or(true));
                if let Some(ca) = &e.tls_config.ca_file {
                    if ca.is_relative() {
                        e.tls_config.ca_file = Some(base.join(ca));
                    }
                }
                for t in [&e.subject, &e.html, &e.text].into_iter().flatten() {
                    check_template(t).map_err(c)?;
                }
                if let Some(rl) = &e.rate_limit {
                    check_rate_limit(rl).map_err(c)?;
                }
            }
            for (i, s) in r.slack_configs.iter_mut().enumerate() {
                s.validate(base, &g)
                    .map_err(|m| ctx(i, "slack_configs", m))?;
            }
            for (i, w) in r.webhook_configs.iter_mut().enumerate() {
                let c = |m: String| ctx(i, "webhook_configs", m);
                w.http_config.resolve(base).map_err(c)?;
                match (&w.url, w.url_file.take()) {
                    (Some(_), Some(_)) => return Err(c("set only one of url and url_file".into())),
                    (None, Some(p)) => {
                        w.url = Some(read(&p, "webhook_configs.url_file").map_err(|x| c(x.1))?)
                    }
                    (None, None) => {
                        return Err(c("url: one of url or url_file is required".into()))
                    }
                    (Some(_), None) => {}
                }
                if let Some(u) = &w.url {
                    check_url(u.expose()).map_err(|m| c(format!("url: {m}")))?;
                }
                if let Some(rl) = &w.rate_limit {
                    check_rate_limit(rl).map_err(c)?;
                }
            }
            for (i, l) in r.log_configs.iter().enumerate() {
                if let Some(rl) = &l.rate_limit {
                    check_rate_limit(rl).map_err(|m| ctx(i, "log_configs", m))?;
                }
            }
            for (i, x) in r.msteamsv2_configs.iter_mut().enumerate() {
                x.validate(base, &g)
                    .map_err(|m| ctx(i, "msteamsv2_configs", m))?;
            }
            for (i, x) in r.msteams_configs.iter_mut().enumerate() {
                x.validate(base, &g)
                    .map_err(|m| ctx(i, "msteams_configs", m))?;
            }
            for (i, x) in r.webex_configs.iter_mut().enumerate() {
                x.validate(base, &g)
                    .map_err(|m| ctx(i, "webex_configs", m))?;
            }
            for (i, x) in r.telegram_configs.iter_mut().enumerate() {
                x.validate(base, &g)
                    .map_err(|m| ctx(i, "telegram_configs", m))?;
            }
            for (i, x) in r.rocketchat_configs.iter_mut().enumerate() {
                x.validate(base, &g)
                    .map_err(|m| ctx(i, "rocketchat_configs", m))?;
            }
            for (i, x) in r.discord_configs.iter_mut().enumerate() {
                x.validate(base, &g)
                    .map_err(|m| ctx(i, "discord_configs", m))?;
            }
            for (i, x) in r.mattermost_configs.iter_mut().enumerate() {
                x.validate(base, &g)
                    .map_err(|m| ctx(i, "mattermost_configs", m))?;
            }
            for (i, x) in r.googlechat_configs.iter_mut().enumerate() {
                x.validate(base, &g)
                    .map_err(|m| ctx(i, "googlechat_configs", m))?;
            }
        }

        // Route tree.
        let root = &self.route;
        let Some(recv) = &root.receiver else {
            return Err((
                None,
                "route.receiver: the root route must name a receiver".into(),
            ));
        };
        let _ = recv;
        if !root.matchers.1.is_empty() || !root.match_eq.is_empty() || !root.match_re.0.is_empty() {
            return Err((None, "route: the root route must not have matchers".into()));
        }
        if root.continue_matching {
            return Err((None, "route: the root route must not set continue".into()));
        }
        check_route(root, "route", &names)?;
        crate::inhibit::validate_rules(&self.inhibit_rules).map_err(|m| (None, m))?;
        crate::timeinterval::validate(&self.time_intervals, &self.mute_time_intervals, root)?;
        Ok(())
    }
}

fn check_route(
    r: &RouteConfig,
    path: &str,
    receivers: &BTreeSet<String>,
) -> Result<(), (Option<(u64, u64)>, String)> {
    if let Some(recv) = &r.receiver {
        if !receivers.contains(&recv.value) {
            return Err((
                Some((recv.referenced.line(), recv.referenced.column())),
                format!(
                    "{path}.receiver: undefined receiver {:?} (known: {})",
                    recv.value,
                    receivers.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    if let Some(gb) = &r.group_by {
        let mut seen = BTreeSet::new();
        for l in gb {
            if l == "..." && gb.len() > 1 {
                return Err((
                    None,
                    format!("{path}.group_by: '...' must be the only entry"),
                ));
            }
            if !seen.insert(l) {
                return Err((None, format!("{path}.group_by: duplicate label {l:?}")));
            }
            if l.is_empty() {
                return Err((None, format!("{path}.group_by: empty label name")));
            }
        }
    }
    for (name, d) in [
        ("group_interval", r.group_interval),
        ("repeat_interval", r.repeat_interval),
    ] {
        if d.is_some_and(|d| d.0.is_zero()) {
            return Err((None, format!("{path}.{name}: must be greater than 0")));
        }
    }
    for (i, child) in r.routes.iter().enumerate() {
        check_route(child, &format!("{path}.routes[{i}]"), receivers)?;
    }
    Ok(())
}

pub fn check_rate_limit(rl: &RateLimit) -> Result<(), String> {
    if rl.messages == 0 || rl.per.0.is_zero() || rl.burst == Some(0) {
        return Err("rate_limit: messages, per and burst must be greater than 0".into());
    }
    Ok(())
}

pub fn check_template(t: &str) -> Result<(), String> {
    crate::template::check(t).map_err(|e| format!("template error: {e}"))
}

/// Only http(s) URLs with a host are accepted as destinations.
pub fn check_url(u: &str) -> Result<(), String> {
    match reqwest::Url::parse(u) {
        Ok(url) if (url.scheme() == "http" || url.scheme() == "https") && url.host().is_some() => {
            Ok(())
        }
        Ok(_) => Err("must be an http:// or https:// URL with a host".into()),
        Err(e) => Err(format!("not a valid URL ({e})")),
    }
}

/// Resolve a secret given either inline (`key`) or in a file (`key_file`, read and trimmed,
/// relative to `base`): at most one of the two; `value` holds the secret afterwards.
pub fn secret_or_file(
    value: &mut Option<Secret>,
    file: &mut Option<PathBuf>,
    base: &Path,
    key: &str,
) -> Result<(), String> {
    let Some(p) = file.take() else {
        return Ok(());
    };
    if value.is_some() {
        return Err(format!("set only one of {key} and {key}_file"));
    }
    *value = Some(crate::secret::read_file(base, &p, &format!("{key}_file"))?);
    Ok(())
}

/// Split `host:port` (IPv6 as `[::1]:25`).
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port))
}

/// Expand `${NAME}` from the environment (`$$` is a literal `$`). An unset variable is an
/// error naming it and its line, so a typo never silently becomes an empty password.
pub fn expand_env(text: &str) -> Result<(String, Vec<String>), (u64, String)> {
    let mut out = String::with_capacity(text.len());
    let mut values = Vec::new();
    for (n, full_line) in text.split_inclusive('\n').enumerate() {
        // YAML comments are copied as they are: documentation may mention ${VARS}.
        let (line, comment) = full_line.split_at(comment_start(full_line));
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
            } else if let Some(body) = after.strip_prefix('{') {
                let Some(end) = body.find('}') else {
                    return Err((n as u64 + 1, "unterminated ${...} reference".into()));
                };
                let name = &body[..end];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err((
                        n as u64 + 1,
                        format!("invalid environment variable name {name:?} in ${{...}}"),
                    ));
                }
                let val = std::env::var(name).map_err(|_| {
                    (
                        n as u64 + 1,
                        format!("environment variable {name} is not set"),
                    )
                })?;
                out.push_str(&val);
                values.push(val);
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    Ok((out, values))
}

/// Byte offset where a YAML comment starts on this line (`#` outside quotes, at the start
/// or after whitespace), or the line length.
fn comment_start(line: &str) -> usize {
    let (mut single, mut double) = (false, false);
    let mut prev_ws = true;
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_ws => return i,
            _ => {}
        }
        prev_ws = c.is_whitespace();
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<Config, ConfigError> {
        Config::load_str(yaml, "t.yml", Path::new("."))
    }

    const MIN: &str = "route:\n  receiver: x\nreceivers:\n  - name: x\n";

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::default_embedded().unwrap();
        assert_eq!(c.listen, "127.0.0.1:9095");
        assert_eq!(c.storage.path, PathBuf::from("./data"));
        assert_eq!(c.receivers[0].log_configs.len(), 1);
    }

    #[test]
    fn defaults_follow_alertmanager() {
        let c = load("route:\n  receiver: x\nreceivers:\n  - name: x\n    webhook_configs: [{url: 'http://h/x'}]\n    slack_configs: [{api_url: 'https://hooks.slack.test/x'}]\n").unwrap();
        assert!(c.receivers[0].webhook_configs[0].send_resolved);
        assert_eq!(c.receivers[0].slack_configs[0].send_resolved, Some(false));
        assert_eq!(c.global.resolve_timeout, AmDuration::from_secs(300));
        assert_eq!(c.storage.retention, AmDuration::from_secs(120 * 3600));
        assert_eq!(c.ingest.max_body_bytes, 4 * 1024 * 1024);
    }

    #[test]
    fn storage_sync_mode_parses_and_defaults_to_batch() {
        use crate::store::SyncMode;
        assert_eq!(load(MIN).unwrap().storage.sync, SyncMode::Batch);
        for (v, want) in [
            ("always", SyncMode::Always),
            ("batch", SyncMode::Batch),
            ("none", SyncMode::None),
        ] {
            let c = load(&format!("storage:\n  sync: {v}\n{MIN}")).unwrap();
            assert_eq!(c.storage.sync, want, "{v}");
        }
        let e = load(&format!("storage:\n  sync: fsync\n{MIN}")).unwrap_err();
        assert!(e.message.contains("unknown variant `fsync`"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let e =
            load("route:\n  receiver: x\n  grup_by: [a]\nreceivers:\n  - name: x\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(3)));
        assert!(e.message.starts_with("unknown field `grup_by`"), "{e}");
        assert!(e.to_string().starts_with("t.yml:3:3: "), "{e}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let cases = [
            ("route:\n  receiver: y\nreceivers:\n  - name: x\n", "undefined receiver \"y\""),
            ("route:\n  receiver: x\n  group_wait: 5 minutes\nreceivers:\n  - name: x\n", "not a valid duration"),
            ("route:\n  receiver: x\n  routes: [{matchers: ['a=~[z']}]\nreceivers:\n  - name: x\n", "invalid matcher"),
            ("route:\n  receiver: x\n  group_by: ['...', a]\nreceivers:\n  - name: x\n", "'...' must be the only entry"),
            ("route:\n  receiver: x\n  matchers: ['a=b']\nreceivers:\n  - name: x\n", "root route must not have matchers"),
            ("route:\n  receiver: x\nreceivers:\n  - name: x\n  - name: x\n", "duplicate receiver name"),
            ("route:\n  receiver: x\nreceivers:\n  - name: x\n    webhook_configs: [{}]\n", "one of url or url_file is required"),
            ("route:\n  receiver: x\nreceivers:\n  - name: x\n    webhook_configs: [{url: 'ftp://h'}]\n", "http:// or https://"),
            ("route:\n  receiver: x\nreceivers:\n  - name: x\n    email_configs: [{to: a@b.c}]\n", "from: required"),
            ("route:\n  receiver: x\nreceivers:\n  - name: x\n    slack_configs: [{}]\n", "api_url: required"),
            ("route:\n  receiver: x\nreceivers:\n  - name: x\n    log_configs: [{rate_limit: {messages: 0, per: 1s}}]\n", "rate_limit"),
            ("route:\n  receiver: x\nreceivers:\n  - name: x\n    slack_configs: [{api_url: 'http://h', title: '{{ x'}]\n", "template error"),
            ("listen: nope\nroute:\n  receiver: x\nreceivers:\n  - name: x\n", "listen: \"nope\" is not host:port"),
            ("ingest: {webhook_firing_ttl: 0s}\nroute:\n  receiver: x\nreceivers:\n  - name: x\n", "ingest.webhook_firing_ttl: must be greater than 0"),
        ];
        for (yaml, want) in cases {
            let e = load(yaml).map(|_| ()).unwrap_err();
            assert!(e.to_string().contains(want), "{yaml}\n=> {e}\nwant {want}");
        }
    }

    #[test]
    fn env_expansion_and_secret_files() {
        std::env::set_var(
            "AR_TEST_SLACK_URL",
            "https://hooks.slack.test/services/T/B/hunter2secret",
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "admintoken\n").unwrap();
        let yaml = "admin: {bearer_token_file: tok}\nroute:\n  receiver: x\nreceivers:\n  - name: x\n    slack_configs: [{api_url: '${AR_TEST_SLACK_URL}'}]\n";
        let c = Config::load_str(yaml, "t.yml", dir.path()).unwrap();
        assert_eq!(c.admin.bearer_tokens[0].expose(), "admintoken");
        let url = c.receivers[0].slack_configs[0].api_url.as_ref().unwrap();
        assert!(url.expose().ends_with("hunter2secret"));
        let dump = format!("{c:?}");
        assert!(
            !dump.contains("hunter2secret") && !dump.contains("admintoken"),
            "secrets leaked in Debug"
        );
        let e = load("route:\n  receiver: x\nreceivers:\n  - name: x\n    webhook_configs: [{url: '${AR_TEST_UNSET_VAR}'}]\n").unwrap_err();
        assert!(
            e.to_string().contains("AR_TEST_UNSET_VAR is not set"),
            "{e}"
        );
        assert_eq!(e.line, Some(5));
        // an env value never shows up in an error message
        std::env::set_var("AR_TEST_BAD_TOKENS", "sekritvalue");
        let e = load("admin: {bearer_tokens: ${AR_TEST_BAD_TOKENS}}\nroute:\n  receiver: x\nreceivers:\n  - name: x\n").unwrap_err();
        assert!(!e.to_string().contains("sekritvalue"), "{e}");
        assert_eq!(expand_env("a $$ b").unwrap().0, "a $ b");
        assert_eq!(
            expand_env("a: 1 # see ${NOT_SET_ANYWHERE}\n").unwrap().0,
            "a: 1 # see ${NOT_SET_ANYWHERE}\n"
        );
        assert_eq!(
            expand_env("a: 'x#${AR_TEST_BAD_TOKENS}'").unwrap().0,
            "a: 'x#sekritvalue'"
        );
    }

    #[test]
    fn minimal_is_valid() {
        assert!(load(MIN).is_ok());
    }
}
