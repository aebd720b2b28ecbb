//! The one place that knows how records are laid out in sled.
//!
//! Trees:
//! - `meta`: `schema_version` → ASCII decimal; `checkpoint` → generation and last covered
//!   log sequence number (two u64, big-endian).
//!
//! Alerts themselves are not in sled: see [`crate::store::alertlog`] (checkpoint files) and
//! [`crate::store::logfile`] (the alert log's segment files).
//! - `alerts` (schema 1 only, migrated and dropped on open): fingerprint (u64, big-endian)
//!   → [`crate::alert::Alert`] as JSON.
//! - `dispatch`: everything the dispatcher and the delivery workers must change together,
//!   in one tree so a single batch is atomic:
//!   - `g/<group id>` → [`crate::store::GroupState`] (timer deadlines of a group),
//!   - `n/<receiver>\0<integration>\0<index>\0<group key>` → [`crate::store::NflogEntry`],
//!   - `o/<id u64 big-endian>` → [`crate::store::Notification`] and `d/<id u64
//!     big-endian>` → [`crate::store::DeliveryRecord`] (schema 3 only: since schema 4
//!     notifications are in the outbox log, see [`crate::store::outbox`]; moved there on
//!     open),
//!   - `x/outbox` → the sequence number (u64, big-endian) of the last outbox frame whose
//!     sled half this tree holds (see [`crate::store::outbox`]),
//!   - `m/<receiver>\0<integration>\0<index>\0<group key>` → [`crate::store::MessageRef`]
//!     (the platform message showing a group, for integrations that edit in place),
//!   - `s/<silence id>` → [`crate::silence::Silence`] as JSON.

use crate::alert::Fingerprint;

/// 1: alerts as JSON keyed by fingerprint. 2: alert log + checkpoints of binary records.
/// 3: attempts recorded as `d/` delivery records beside the notification (a schema 2 store
/// opens unchanged; a build knowing only 2 would miss them and send again, so it refuses).
/// 4: notifications and delivery records in the outbox log instead of sled (moved there on
/// open; a build knowing only 3 would see no notifications, so it refuses).
pub const SCHEMA_VERSION: u32 = 4;
pub const SCHEMA_KEY: &[u8] = b"schema_version";
pub const CHECKPOINT_KEY: &[u8] = b"checkpoint";

pub const TREE_META: &str = "meta";
pub const TREE_ALERTS: &str = "alerts";
pub const TREE_DISPATCH: &str = "dispatch";

pub const GROUP_PREFIX: &[u8] = b"g/";
pub const NFLOG_PREFIX: &[u8] = b"n/";
pub const OUTBOX_PREFIX: &[u8] = b"o/";
pub const DELIVERY_PREFIX: &[u8] = b"d/";
pub const MESSAGE_PREFIX: &[u8] = b"m/";
pub const SILENCE_PREFIX: &[u8] = b"s/";
pub const OUTBOX_MARK_KEY: &[u8] = b"x/outbox";

pub fn alert(fp: Fingerprint) -> [u8; 8] {
    fp.0.to_be_bytes()
}

pub fn alert_fp(key: &[u8]) -> Option<Fingerprint> {
    let arr: [u8; 8] = key.try_into().ok()?;
    Some(Fingerprint(u64::from_be_bytes(arr)))
}

pub fn group(id: &str) -> Vec<u8> {
    [GROUP_PREFIX, id.as_bytes()].concat()
}

pub fn nflog(receiver: &str, integration: &str, index: usize, group_key: &str) -> Vec<u8> {
    format!("n/{receiver}\0{integration}\0{index}\0{group_key}").into_bytes()
}

pub fn message(receiver: &str, integration: &str, index: usize, group_key: &str) -> Vec<u8> {
    format!("m/{receiver}\0{integration}\0{index}\0{group_key}").into_bytes()
}

pub fn silence(id: &str) -> Vec<u8> {
    [SILENCE_PREFIX, id.as_bytes()].concat()
}

pub fn outbox(id: u64) -> Vec<u8> {
    [OUTBOX_PREFIX, &id.to_be_bytes()].concat()
}

pub fn delivery(id: u64) -> Vec<u8> {
    [DELIVERY_PREFIX, &id.to_be_bytes()].concat()
}

pub fn outbox_id(key: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = key.get(OUTBOX_PREFIX.len()..)?.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}
