//! Retention: what is old enough to delete (resolved alerts, finished notifications,
//! expired notification-log entries).

use super::{Commit, DispatchOp, Store, StoreError};
use std::time::Duration;
use time::OffsetDateTime;

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.delete_alerts.is_empty() && self.dispatch.is_empty()
    }
}

/// Build the deletions for everything past `retention` at `now`.
pub fn collect(
    store: &Store,
    retention: Duration,
    now: OffsetDateTime,
) -> Result<Commit, StoreError> {
    let cutoff = now - time::Duration::try_from(retention).unwrap_or(time::Duration::days(5));
    let mut c = Commit::default();
    for a in store.all_alerts()? {
        if a.ends_at.is_some_and(|e| e < cutoff) {
            c.delete_alerts.push(a.fingerprint);
        }
    }
    for n in store.notifications(usize::MAX, |n| !n.state.is_open() && n.updated_at < cutoff)? {
        c.dispatch.push(DispatchOp::DelNotification(n.id));
    }
    for (k, e) in store.nflog_entries()? {
        if e.expires_at.is_some_and(|x| x < now) {
            c.dispatch.push(DispatchOp::DelNflog(k));
        }
    }
    Ok(c)
}
