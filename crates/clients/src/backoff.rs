//! How long to wait before reconnecting: exponential backoff with full jitter.
//!
//! After the n-th failed attempt in a row (counting from 0) the client waits a random
//! time in `[0, ceiling)`, where the ceiling doubles with each attempt and stops at a
//! cap: `ceiling = min(cap, start × 2ⁿ)`. With the defaults (250 ms, 10 s) the
//! ceilings are 250 ms, 500 ms, 1 s, 2 s, 4 s, 8 s, then 10 s for good.
//!
//! - The doubling keeps a client that cannot get through from hammering a server
//!   that is down or overloaded.
//! - The jitter ("full": anywhere from zero to the ceiling) spreads out clients that
//!   were all dropped at the same moment, by a server restart say, so they do not
//!   all come back in the same millisecond and knock it over again.
//! - The count starts again only after a connection stayed up for a healthy while (a
//!   minute by default), not as soon as one opens: a server that accepts and then
//!   drops at once would otherwise be hammered at the shortest delay forever.
//!
//! The web page (`crates/app/src/page.html`) follows the same rules in JavaScript.

use std::time::Duration;

/// The three numbers of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The ceiling of the first attempt.
    pub start: Duration,
    /// The largest ceiling.
    pub cap: Duration,
    /// A connection that lasted this long resets the count.
    pub healthy_after: Duration,
}

impl BackoffPolicy {
    /// 250 ms, 10 s, one minute.
    pub const DEFAULT: BackoffPolicy = BackoffPolicy {
        start: Duration::from_millis(250),
        cap: Duration::from_secs(10),
        healthy_after: Duration::from_secs(60),
    };
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy::DEFAULT
    }
}

// ANCHOR: ceiling
/// The ceiling of attempt `attempt` (0 for the first after a healthy connection):
/// `min(cap, start × 2^attempt)`, without overflowing however many attempts failed.
pub fn ceiling(policy: &BackoffPolicy, attempt: u32) -> Duration {
    // 2^31 times anything useful is far above any cap; stopping the shift there keeps
    // it from overflowing.
    let factor = 1u32 << attempt.min(31);
    policy.start.saturating_mul(factor).min(policy.cap)
}

/// Full jitter: a delay `fraction` of the way from zero to `ceiling`, where `fraction`
/// is a random number in `[0, 1)`. Out-of-range fractions are clamped, so the result
/// is always below the ceiling (or zero when the ceiling is zero).
pub fn full_jitter(ceiling: Duration, fraction: f64) -> Duration {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let delay = ceiling.mul_f64(fraction);
    if delay >= ceiling && !ceiling.is_zero() {
        // fraction 1.0 (clamped from above): stay strictly below the ceiling.
        ceiling - Duration::from_nanos(1)
    } else {
        delay
    }
}
// ANCHOR_END: ceiling

// ANCHOR: backoff
/// The backoff state of one client: how many attempts failed in a row, and where the
/// randomness comes from.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
    random: fastrand::Rng,
}

impl Backoff {
    /// A backoff whose jitter comes from a generator seeded by the operating system.
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff::with_rng(policy, fastrand::Rng::new())
    }

    /// A backoff with the given generator: `fastrand::Rng::with_seed(7)` makes the
    /// delays repeatable, for tests.
    pub fn with_rng(policy: BackoffPolicy, random: fastrand::Rng) -> Self {
        Backoff {
            policy,
            attempt: 0,
            random,
        }
    }

    /// The rule in use.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    /// How many delays were handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The ceiling the next delay will be drawn under.
    pub fn next_ceiling(&self) -> Duration {
        ceiling(&self.policy, self.attempt)
    }

    /// The delay before the next attempt, drawn in `[0, ceiling)`; counts the attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = full_jitter(self.next_ceiling(), self.random.f64());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// A connection ended after `lasted`: if it was up for at least
    /// [`BackoffPolicy::healthy_after`], the next delay starts from the bottom again.
    pub fn connection_lasted(&mut self, lasted: Duration) {
        if lasted >= self.policy.healthy_after {
            self.reset();
        }
    }

    /// Starts counting from the first attempt again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}
// ANCHOR_END: backoff

#[cfg(test)]
mod tests {
    use super::*;

    const MILLISECOND: Duration = Duration::from_millis(1);

    #[test]
    fn ceilings_double_from_the_start_up_to_the_cap() {
        let policy = BackoffPolicy::DEFAULT;
        let ceilings: Vec<u128> = (0..9)
            .map(|attempt| ceiling(&policy, attempt).as_millis())
            .collect();
        assert_eq!(
            ceilings,
            [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn ceilings_never_overflow() {
        let policy = BackoffPolicy {
            start: Duration::from_secs(u64::MAX / 2),
            cap: Duration::MAX,
            healthy_after: Duration::from_secs(60),
        };
        for attempt in [0, 1, 30, 31, 32, 1000, u32::MAX] {
            assert!(ceiling(&policy, attempt) >= policy.start);
        }
        assert_eq!(
            ceiling(&BackoffPolicy::DEFAULT, u32::MAX),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn full_jitter_stays_in_zero_to_ceiling() {
        let ceiling = Duration::from_millis(1000);
        assert_eq!(full_jitter(ceiling, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(ceiling, 0.5), Duration::from_millis(500));
        assert!(full_jitter(ceiling, 0.999_999) < ceiling);
        assert!(full_jitter(ceiling, 1.0) < ceiling);
        assert!(full_jitter(ceiling, 7.0) < ceiling);
        assert_eq!(full_jitter(ceiling, -1.0), Duration::ZERO);
        assert_eq!(full_jitter(ceiling, f64::NAN), Duration::ZERO);
        assert_eq!(full_jitter(Duration::ZERO, 0.7), Duration::ZERO);
    }

    #[test]
    fn every_delay_is_below_its_ceiling_and_they_spread_out() {
        let mut backoff = Backoff::with_rng(BackoffPolicy::DEFAULT, fastrand::Rng::with_seed(1));
        let mut delays_at_cap = Vec::new();
        for attempt in 0..200u32 {
            let ceiling = backoff.next_ceiling();
            assert_eq!(ceiling, super::ceiling(&BackoffPolicy::DEFAULT, attempt));
            let delay = backoff.next_delay();
            assert!(
                delay < ceiling,
                "attempt {attempt}: {delay:?} >= {ceiling:?}"
            );
            if attempt >= 6 {
                delays_at_cap.push(delay);
            }
        }
        // Full jitter: at the cap the delays cover the whole range, not just its top.
        let below_a_second = delays_at_cap
            .iter()
            .filter(|delay| **delay < Duration::from_secs(1))
            .count();
        let above_nine_seconds = delays_at_cap
            .iter()
            .filter(|delay| **delay > Duration::from_secs(9))
            .count();
        assert!(
            below_a_second > 5,
            "{below_a_second} of {}",
            delays_at_cap.len()
        );
        assert!(above_nine_seconds > 5, "{above_nine_seconds}");
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let delays = |seed| {
            let mut backoff =
                Backoff::with_rng(BackoffPolicy::DEFAULT, fastrand::Rng::with_seed(seed));
            (0..10).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(42), delays(42));
        assert_ne!(delays(42), delays(43));
    }

    #[test]
    fn only_a_healthy_connection_resets_the_count() {
        let mut backoff = Backoff::with_rng(BackoffPolicy::DEFAULT, fastrand::Rng::with_seed(3));
        for _ in 0..4 {
            backoff.next_delay();
        }
        assert_eq!(backoff.attempt(), 4);
        assert_eq!(backoff.next_ceiling(), Duration::from_secs(4));

        // Connections that open and drop within the minute do not reset it.
        backoff.connection_lasted(Duration::from_secs(59));
        backoff.connection_lasted(Duration::ZERO);
        assert_eq!(backoff.attempt(), 4);

        // One that lasted a minute does.
        backoff.connection_lasted(Duration::from_secs(60));
        assert_eq!(backoff.attempt(), 0);
        assert_eq!(backoff.next_ceiling(), 250 * MILLISECOND);
        assert!(backoff.next_delay() < 250 * MILLISECOND);
        assert_eq!(backoff.attempt(), 1);
    }

    #[test]
    fn a_custom_policy_is_followed() {
        let policy = BackoffPolicy {
            start: 100 * MILLISECOND,
            cap: 300 * MILLISECOND,
            healthy_after: Duration::from_secs(1),
        };
        let mut backoff = Backoff::with_rng(policy, fastrand::Rng::with_seed(9));
        let ceilings: Vec<Duration> = (0..4)
            .map(|_| {
                let ceiling = backoff.next_ceiling();
                backoff.next_delay();
                ceiling
            })
            .collect();
        assert_eq!(
            ceilings,
            [100, 200, 300, 300].map(|milliseconds| milliseconds * MILLISECOND)
        );
        backoff.connection_lasted(Duration::from_secs(1));
        assert_eq!(backoff.next_ceiling(), 100 * MILLISECOND);
    }
}
