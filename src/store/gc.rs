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
        }
    }

    #[tokio::test]
    async fn collects_only_what_is_past_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8, 1000).unwrap();
        let now = crate::alert::now();
        let old = now - time::Duration::days(6);
        let msg = WebhookMessage::new(
            "r",
            vec![],
            LabelSet::new(),
            "http://x",
            "{}:{}",
            "first notification",
        );
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
            delete_alerts: vec![],
            dispatch: vec![
                DispatchOp::PutNotification(Box::new(delivered_old)),
                DispatchOp::PutNotification(Box::new(pending_old)),
                DispatchOp::PutNotification(Box::new(dead_new)),
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
        };
        store.commit(commit).await.unwrap();
        let c = collect(&store, Duration::from_secs(5 * 24 * 3600), now).unwrap();
        assert_eq!(
            c.delete_alerts,
            vec![Fingerprint(1)],
            "only the alert resolved before the cutoff"
        );
        let dels: Vec<String> = c
            .dispatch
            .iter()
            .map(|op| match op {
                DispatchOp::DelNotification(id) => format!("o{id}"),
                DispatchOp::DelNflog(k) => String::from_utf8_lossy(k).into_owned(),
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
}
