//! Alertmanager's notification-log rules (`DedupStage.needsUpdate`): decide whether a
//! flush of a group must notify one integration, and why.

use crate::store::NflogEntry;
use std::collections::BTreeSet;
use std::time::Duration;
use time::OffsetDateTime;

pub const FIRST: &str = "first notification";
pub const NEW_ALERTS: &str = "new alerts added";
pub const SOME_RESOLVED: &str = "some alerts resolved";
pub const ALL_RESOLVED: &str = "all alerts resolved";
pub const REPEAT: &str = "repeat interval elapsed";

/// `Some(reason)` when a notification is due, `None` when the last one still stands.
pub fn needs_update(
    entry: Option<&NflogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat_interval: Duration,
    now: OffsetDateTime,
) -> Option<&'static str> {
    let Some(e) = entry else {
        return (!firing.is_empty()).then_some(FIRST);
    };
    let last_firing: BTreeSet<u64> = e.firing.iter().copied().collect();
    if !firing.is_subset(&last_firing) {
        return Some(if last_firing.is_empty() {
            FIRST
        } else {
            NEW_ALERTS
        });
    }
    if firing.is_empty() {
        return (!last_firing.is_empty()).then_some(ALL_RESOLVED);
    }
    let last_resolved: BTreeSet<u64> = e.resolved.iter().copied().collect();
    if send_resolved && !resolved.is_subset(&last_resolved) {
        return Some(SOME_RESOLVED);
    }
    match e.timestamp {
        Some(t) if t >= now - repeat_interval => None,
        _ => Some(REPEAT),
    }
}

/// A group holding resolves handed over by an Alertmanager (see `Alert::handoff`): with
/// nothing firing, resolved alerts not announced yet are announced even when no firing
/// notification is on record here (Alertmanager's rule above sends nothing then). That
/// happens after an HA failover: the firing went out through a peer's router. A resolve
/// already announced (the same webhook from a second replica) is not announced again.
pub fn handed_over_resolve(
    entry: Option<&NflogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
) -> Option<&'static str> {
    if !firing.is_empty() || resolved.is_empty() {
        return None;
    }
    match entry {
        None => Some(ALL_RESOLVED),
        Some(e) if e.firing.is_empty() => {
            let last_resolved: BTreeSet<u64> = e.resolved.iter().copied().collect();
            (!resolved.is_subset(&last_resolved)).then_some(ALL_RESOLVED)
        }
        // firing on record: Alertmanager's rule has decided
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    fn entry(
        firing: &[u64],
        resolved: &[u64],
        ago: Option<i64>,
        now: OffsetDateTime,
    ) -> NflogEntry {
        NflogEntry {
            firing: firing.to_vec(),
            resolved: resolved.to_vec(),
            timestamp: ago.map(|m| now - time::Duration::minutes(m)),
            ..Default::default()
        }
    }

    /// Upstream TestDedupStageNeedsUpdate vectors (repeat = 10m).
    #[test]
    fn alertmanager_vectors() {
        let now = OffsetDateTime::now_utc();
        let r = Duration::from_secs(600);
        assert_eq!(
            needs_update(None, &set(&[2, 3, 4]), &set(&[]), false, r, now),
            Some(FIRST)
        );
        assert_eq!(
            needs_update(None, &set(&[]), &set(&[1]), true, r, now),
            None
        );
        let e = entry(&[1, 2, 3], &[], Some(1), now);
        assert_eq!(
            needs_update(Some(&e), &set(&[2, 3, 4]), &set(&[]), false, r, now),
            Some(NEW_ALERTS)
        );
        let e = entry(&[1, 2, 3], &[], None, now);
        assert_eq!(
            needs_update(Some(&e), &set(&[1, 2, 3]), &set(&[]), false, r, now),
            Some(REPEAT)
        );
        let e = entry(&[1, 2, 3], &[], Some(9), now);
        assert_eq!(
            needs_update(Some(&e), &set(&[1, 2, 3]), &set(&[]), false, r, now),
            None
        );
        let e = entry(&[1, 2, 3], &[], Some(11), now);
        assert_eq!(
            needs_update(Some(&e), &set(&[1, 2, 3]), &set(&[]), false, r, now),
            Some(REPEAT)
        );
        let e = entry(&[], &[1, 2, 3], Some(11), now);
        assert_eq!(
            needs_update(Some(&e), &set(&[]), &set(&[3, 4, 5]), true, r, now),
            None
        );
        let e = entry(&[1, 2], &[3], Some(1), now);
        assert_eq!(
            needs_update(Some(&e), &set(&[1]), &set(&[2, 3]), false, r, now),
            None
        );
        assert_eq!(
            needs_update(Some(&e), &set(&[1]), &set(&[2, 3]), true, r, now),
            Some(SOME_RESOLVED)
        );
        assert_eq!(
            needs_update(Some(&e), &set(&[]), &set(&[1, 2, 3]), false, r, now),
            Some(ALL_RESOLVED)
        );
        assert_eq!(
            needs_update(Some(&e), &set(&[]), &set(&[1, 2, 3]), true, r, now),
            Some(ALL_RESOLVED)
        );
        let e = entry(&[], &[1], Some(1), now);
        assert_eq!(
            needs_update(Some(&e), &set(&[1]), &set(&[]), false, r, now),
            Some(FIRST)
        );
    }

    #[test]
    fn handed_over_resolves_are_announced_once() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            handed_over_resolve(None, &set(&[]), &set(&[1])),
            Some(ALL_RESOLVED)
        );
        assert_eq!(handed_over_resolve(None, &set(&[2]), &set(&[1])), None);
        assert_eq!(handed_over_resolve(None, &set(&[]), &set(&[])), None);
        let announced = entry(&[], &[1], Some(1), now);
        assert_eq!(
            handed_over_resolve(Some(&announced), &set(&[]), &set(&[1])),
            None
        );
        assert_eq!(
            handed_over_resolve(Some(&announced), &set(&[]), &set(&[1, 2])),
            Some(ALL_RESOLVED)
        );
        let firing = entry(&[1], &[], Some(1), now);
        assert_eq!(
            handed_over_resolve(Some(&firing), &set(&[]), &set(&[1])),
            None
        );
    }
}
