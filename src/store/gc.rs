//! Retention: what is old enough to delete (resolved alerts, finished notifications,
//! expired notification-log entries).
//!
//! The scan reads the whole store (run it off the async runtime); its deletions are
//! conditional, re-checked by the writer, because anything may change between the scan
//! and the commit (an alert fires again, a dead letter is replayed, a flush rewrites an
//! nflog entry).

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
    for fp in store.resolved_before(cutoff) {
        c.delete_alerts.push((fp, cutoff));
    }
    for id in store.finished_before(cutoff) {
        c.dispatch
            .push(DispatchOp::DelNotificationIfFinishedBefore(id, cutoff));
    }
    for (k, m) in store.message_refs()? {
        if m.updated_at < cutoff {
            c.dispatch.push(DispatchOp::DelMessageRefIfOlder(k, cutoff));
        }
    }
    for (k, e) in store.nflog_entries()? {
        if e.expires_at.is_some_and(|x| x < now) {
            c.dispatch.push(DispatchOp::DelNflogIfExpired(k, now));
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, Fingerprint, LabelSet, WebhookMessage};
    use crate::store::{DeliveryState, NflogEntry, Notification};

    fn alert(fp: u64, ends_at: Option<OffsetDateTime>, t: OffsetDateTime) -> Alert {
        Alert {
            fingerprint: Fingerprint(fp),
            labels: [("a".to_string(), fp.to_string())].into(),
            annotations: LabelSet::new(),
            starts_at: t - time::Duration::days(30),
            ends_at,
            generator_url: String::new(),
            updated_at: t,
            received_at: t,
            targets: Default::default(),
            timeout: false,
            handoff: false,
            expires: false,
        }
    }

    #[tokio::test]
    async fn collects_only_what_is_past_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8, 1000, 1 << 20).unwrap();
        let now = crate::alert::now();
        let old = now - time::Duration::days(6);
        let msg = crate::store::tests::empty_message();
        let mut delivered_old =
            Notification::pending(1, ("r", "log", 0), msg.clone(), "<1@x>".into(), old);
        delivered_old.state = DeliveryState::Delivered;
        let pending_old =
            Notification::pending(2, ("r", "log", 0), msg.clone(), "<2@x>".into(), old);
        let mut dead_new = Notification::pending(3, ("r", "log", 0), msg, "<3@x>".into(), now);
        dead_new.state = DeliveryState::Dead;
        let commit = Commit {
            alerts: vec![
                alert(1, Some(old), now),
                alert(2, Some(now), now),
                alert(3, None, now),
            ],
            dispatch: vec![
                DispatchOp::PutNotification(std::sync::Arc::new(delivered_old)),
                DispatchOp::PutNotification(std::sync::Arc::new(pending_old)),
                DispatchOp::PutNotification(std::sync::Arc::new(dead_new)),
                DispatchOp::PutNflog(
                    b"n/expired".to_vec(),
                    NflogEntry {
                        expires_at: Some(old),
                        ..Default::default()
                    },
                ),
                DispatchOp::PutNflog(
                    b"n/live".to_vec(),
                    NflogEntry {
                        expires_at: Some(now + time::Duration::hours(1)),
                        ..Default::default()
                    },
                ),
            ],
            ..Default::default()
        };
        store.commit(commit).await.unwrap();
        let c = collect(&store, Duration::from_secs(5 * 24 * 3600), now).unwrap();
        let cutoff = now - time::Duration::days(5);
        assert_eq!(
            c.delete_alerts,
            vec![(Fingerprint(1), cutoff)],
            "only the alert resolved before the cutoff"
        );
        let dels: Vec<String> = c
            .dispatch
            .iter()
            .map(|op| match op {
                DispatchOp::DelNotificationIfFinishedBefore(id, _) => format!("o{id}"),
                DispatchOp::DelNflogIfExpired(k, _) => String::from_utf8_lossy(k).into_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            dels,
            ["o1", "n/expired"],
            "pending and recent notifications and live nflog entries stay"
        );
        store.commit(c).await.unwrap();
        assert_eq!(store.alert_count(), 2);
        assert!(store.notification(1).unwrap().is_none());
        assert!(store.notification(2).unwrap().is_some());
    }

    /// The writer re-checks every deletion: what changed between the scan and the commit
    /// (an alert fired again, a dead letter replayed, a fresh nflog entry) stays.
    #[tokio::test]
    async fn deletions_are_rechecked_by_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8, 1000, 1 << 20).unwrap();
        let now = crate::alert::now();
        let old = now - time::Duration::days(6);
        let msg = WebhookMessage::new("r", vec![], LabelSet::new(), "http://x", "g", "r");
        let mut dead = Notification::pending(7, ("r", "log", 0), msg, "<7@x>".into(), old);
        dead.state = DeliveryState::Dead;
        let expired = NflogEntry {
            expires_at: Some(old),
            ..Default::default()
        };
        store
            .commit(Commit {
                alerts: vec![alert(1, Some(old), old)],
                dispatch: vec![
                    DispatchOp::PutNotification(std::sync::Arc::new(dead.clone())),
                    DispatchOp::PutNflog(b"n/k".to_vec(), expired),
                ],
                ..Default::default()
            })
            .await
            .unwrap();
        let gc = collect(&store, Duration::from_secs(5 * 24 * 3600), now).unwrap();
        assert_eq!(gc.delete_alerts.len(), 1);
        assert_eq!(gc.dispatch.len(), 2);
        // Meanwhile: the alert fires again, the dead letter is replayed, the nflog renewed.
        let mut again = alert(1, None, now);
        again.starts_at = now;
        dead.state = DeliveryState::Pending;
        dead.updated_at = now;
        let fresh = NflogEntry {
            expires_at: Some(now + time::Duration::hours(1)),
            ..Default::default()
        };
        store
            .commit(Commit {
                alerts: vec![again],
                dispatch: vec![
                    DispatchOp::PutNotification(std::sync::Arc::new(dead)),
                    DispatchOp::PutNflog(b"n/k".to_vec(), fresh),
                ],
                ..Default::default()
            })
            .await
            .unwrap();
        store.commit(gc).await.unwrap();
        let a = store
            .alert(Fingerprint(1))
            .unwrap()
            .expect("re-fired alert kept");
        assert_eq!(a.ends_at, None);
        assert!(
            store.notification(7).unwrap().is_some(),
            "replayed notification kept"
        );
        assert!(
            store.nflog(b"n/k").unwrap().is_some(),
            "fresh nflog entry kept"
        );
    }
}
