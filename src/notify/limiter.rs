//! Rate limit of one integration instance: `rate_limit: {messages: N, per: T, burst: B}`.
//!
//! Two rules, both must allow a send:
//! - a governor GCRA limiter refills one message every `T / N` and holds at most `B`
//!   (default `N`) — it spaces messages out and bounds back-to-back bursts;
//! - a sliding window of the last `N` send times guarantees that no window of length `T`
//!   ever holds more than `N` messages (GCRA alone lets `B + N - 1` through in the first
//!   window, which is more than a platform documenting "N per T" accepts).

use crate::config::RateLimit;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

pub struct Limiter {
    gcra: DefaultDirectRateLimiter,
    clock: DefaultClock,
    window: VecDeque<Instant>,
    messages: usize,
    per: Duration,
}

impl Limiter {
    pub fn new(rl: &RateLimit) -> Self {
        let messages = rl.messages.max(1);
        let burst = NonZeroU32::new(rl.burst.unwrap_or(messages)).unwrap_or(NonZeroU32::MIN);
        let period = (rl.per.0 / messages).max(Duration::from_micros(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Limiter {
            gcra: governor::RateLimiter::direct(quota),
            clock: DefaultClock::default(),
            window: VecDeque::with_capacity(messages as usize),
            messages: messages as usize,
            per: rl.per.0,
        }
    }

    /// A limiter for a changed rate limit that remembers `old`'s recent sends (those within
    /// the new period, newest first, at most the new message count), so a reload that
    /// changes the limit never hands out a fresh burst.
    pub fn carry_over(rl: &RateLimit, old: &Limiter) -> Self {
        let mut l = Limiter::new(rl);
        let now = Instant::now();
        let recent: Vec<Instant> = old
            .window
            .iter()
            .copied()
            .filter(|t| now.duration_since(*t) < l.per)
            .collect();
        let skip = recent.len().saturating_sub(l.messages);
        for t in recent.into_iter().skip(skip) {
            let _ = l.gcra.check();
            l.window.push_back(t);
        }
        l
    }

    /// Take a send slot now (`None`), or say how long to wait before asking again.
    pub fn try_acquire(&mut self) -> Option<Duration> {
        let now = Instant::now();
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.per)
        {
            self.window.pop_front();
        }
        if self.window.len() >= self.messages {
            let oldest = self.window.front().copied().unwrap_or(now);
            return Some(
                (oldest + self.per)
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
            );
        }
        match self.gcra.check() {
            Ok(()) => {
                self.window.push_back(now);
                None
            }
            Err(not_until) => Some(
                not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_millis(1)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::AmDuration;

    #[test]
    fn window_caps_gcra_bursts() {
        let mut l = Limiter::new(&RateLimit {
            messages: 2,
            per: AmDuration(Duration::from_secs(1)),
            burst: None,
        });
        assert!(l.try_acquire().is_none());
        assert!(l.try_acquire().is_none());
        let wait = l
            .try_acquire()
            .expect("third message in the same second must wait");
        assert!(wait > Duration::from_millis(900), "{wait:?}");
    }

    #[test]
    fn carry_over_keeps_recent_sends() {
        let rl = |messages| RateLimit {
            messages,
            per: AmDuration(Duration::from_secs(10)),
            burst: None,
        };
        let mut old = Limiter::new(&rl(2));
        assert!(old.try_acquire().is_none());
        assert!(old.try_acquire().is_none());
        // Raised to 3 per 10 s: one more now, not a fresh burst of 3.
        let mut new = Limiter::carry_over(&rl(3), &old);
        assert!(new.try_acquire().is_none());
        assert!(
            new.try_acquire().is_some(),
            "the two earlier sends still count"
        );
        // Lowered to 1 per 10 s: the window is already full.
        assert!(Limiter::carry_over(&rl(1), &old).try_acquire().is_some());
    }

    #[test]
    fn smaller_burst_spaces_messages() {
        let mut l = Limiter::new(&RateLimit {
            messages: 4,
            per: AmDuration(Duration::from_secs(2)),
            burst: Some(1),
        });
        assert!(l.try_acquire().is_none());
        let wait = l.try_acquire().expect("burst of 1");
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
    }
}
