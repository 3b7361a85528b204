//! How much one server takes on, and from whom, once for every server:
//!
//! - [`ConnectionCeiling`]: the long connections held at once (WebSockets on `/ws`
//!   and `/echo`, event streams on `/events` and `/stream`, together), so that a flood
//!   of connections is refused with a clear answer instead of taking the process down
//!   when it runs out of file descriptors or memory. The glue asks
//!   [`ConnectionCeiling::admit`] before it answers `101` or `200`, and holds the
//!   [`ConnectionSlot`] for as long as the connection lives.
//! - [`MessageRate`]: the chat messages one WebSocket may send. The glue asks
//!   [`MessageRate::check`] for each text message before the hub sees it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::connection::{Closing, SENDING_TOO_FAST};
use crate::messages::{ErrorCode, ErrorReply};
use crate::refusals::{self, Refusal};

// ANCHOR: ceiling
/// The most long connections a server holds at once, and how many it holds now.
/// Clones share the count.
#[derive(Debug, Clone)]
pub struct ConnectionCeiling {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One admitted connection: its place is given back when this is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    open: Arc<AtomicUsize>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnectionCeiling {
    /// At most `max` connections at once.
    pub fn new(max: usize) -> ConnectionCeiling {
        ConnectionCeiling {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A place for one more connection, or the refusal (503 with `Retry-After`) when
    /// every place is taken. Counting and checking are one atomic step, so two
    /// connections arriving together cannot both take the last place.
    ///
    /// # Errors
    ///
    /// [`refusals::too_many_connections`] at the ceiling.
    pub fn admit(&self) -> Result<ConnectionSlot, Refusal> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .map(|_| ConnectionSlot {
                open: Arc::clone(&self.open),
            })
            .map_err(|_| {
                tracing::warn!(
                    max = self.max,
                    "refused a connection: the ceiling is reached"
                );
                refusals::too_many_connections(self.max)
            })
    }

    /// How many connections hold a place now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}
// ANCHOR_END: ceiling

// ANCHOR: message_rate
/// How many chat messages one WebSocket may send: a token bucket that holds `burst`
/// messages and refills at `per_second`. A message over it is refused with
/// `rate_limited`, to the sender only, and the connection stays open. Refusals fill a
/// second bucket of the same size that drains at the same rate: a client that keeps
/// sending at more than twice the rate, told or not, overflows it and is closed with
/// 1008. A rate of 0 turns the limit off.
#[derive(Debug, Clone)]
pub struct MessageRate {
    per_second: f64,
    burst: f64,
    /// Messages that may still be sent now.
    tokens: f64,
    /// Refusals not yet drained.
    refusals: f64,
    last: Instant,
}

/// What to do with one text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: hand it to the hub.
    Accept,
    /// Over the rate: send this reply to the sender, drop the message.
    Refuse(ErrorReply),
    /// Over the rate for too long: close the connection so.
    Close(Closing),
}

impl MessageRate {
    /// A full bucket at `now`: `burst` messages at once, then `per_second`.
    pub fn new(per_second: u32, burst: u32, now: Instant) -> MessageRate {
        let burst = f64::from(burst.max(1));
        MessageRate {
            per_second: f64::from(per_second),
            burst,
            tokens: burst,
            refusals: 0.0,
            last: now,
        }
    }

    /// The verdict on a message arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.per_second == 0.0 {
            return Verdict::Accept;
        }
        let refilled = now.saturating_duration_since(self.last).as_secs_f64() * self.per_second;
        self.last = now;
        self.tokens = (self.tokens + refilled).min(self.burst);
        self.refusals = (self.refusals - refilled).max(0.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Accept;
        }
        self.refusals += 1.0;
        if self.refusals > self.burst {
            return Verdict::Close(SENDING_TOO_FAST);
        }
        Verdict::Refuse(ErrorReply::new(
            ErrorCode::RateLimited,
            format!(
                "too many messages: at most {} a second, {} at once; the next in {} ms",
                self.per_second,
                self.burst,
                self.wait().as_millis()
            ),
        ))
    }

    /// How long until the next message would be accepted (zero if now).
    pub fn wait(&self) -> Duration {
        if self.per_second == 0.0 || self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
    }
}
// ANCHOR_END: message_rate

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(rate: &mut MessageRate, at: Instant, count: usize) -> (usize, usize, usize) {
        let (mut accepted, mut refused, mut closed) = (0, 0, 0);
        for _ in 0..count {
            match rate.check(at) {
                Verdict::Accept => accepted += 1,
                Verdict::Refuse(reply) => {
                    assert_eq!(reply.code, ErrorCode::RateLimited);
                    refused += 1;
                }
                Verdict::Close(closing) => {
                    assert_eq!(closing.code.0, 1008);
                    closed += 1;
                }
            }
        }
        (accepted, refused, closed)
    }

    #[test]
    fn a_burst_passes_then_the_rate_and_the_refused_are_told() {
        let start = Instant::now();
        let mut rate = MessageRate::new(2, 5, start);
        assert_eq!(verdicts(&mut rate, start, 5), (5, 0, 0));
        assert_eq!(verdicts(&mut rate, start, 1), (0, 1, 0));
        assert_eq!(rate.wait(), Duration::from_millis(500));
        // Half a second is one more message at two a second, and no more.
        let later = start + Duration::from_millis(500);
        assert_eq!(verdicts(&mut rate, later, 2), (1, 1, 0));
        // Waiting refills up to the burst, not past it.
        let much_later = later + Duration::from_secs(60);
        assert_eq!(verdicts(&mut rate, much_later, 6), (5, 1, 0));
    }

    #[test]
    fn sending_on_regardless_is_closed_and_a_slower_sender_is_not() {
        let start = Instant::now();
        let mut flood = MessageRate::new(2, 5, start);
        // Five accepted, then refusals until the second bucket overflows.
        assert_eq!(verdicts(&mut flood, start, 11), (5, 5, 1));

        // One and a half times the rate for a minute: refused now and then, never closed.
        let mut eager = MessageRate::new(2, 5, start);
        let mut totals = (0, 0, 0);
        for tick in 1..=180 {
            let (accepted, refused, closed) =
                verdicts(&mut eager, start + Duration::from_millis(tick * 333), 1);
            totals = (totals.0 + accepted, totals.1 + refused, totals.2 + closed);
        }
        assert_eq!(totals.2, 0, "{totals:?}");
        assert!(totals.1 > 0 && totals.0 > totals.1, "{totals:?}");
    }

    #[test]
    fn a_rate_of_zero_accepts_everything() {
        let start = Instant::now();
        let mut rate = MessageRate::new(0, 5, start);
        assert_eq!(verdicts(&mut rate, start, 1000), (1000, 0, 0));
    }

    #[test]
    fn the_last_place_goes_once_and_comes_back_when_dropped() {
        let ceiling = ConnectionCeiling::new(2);
        let first = ceiling.admit().expect("a place");
        let _second = ceiling.clone().admit().expect("a place");
        assert_eq!(ceiling.open(), 2);
        let refused = ceiling.admit().expect_err("no place left");
        assert_eq!(refused.status, 503);
        assert_eq!(refused.headers, [("Retry-After", "5")]);
        assert!(refused.body.contains('2'), "{}", refused.body);
        // A refusal takes no place.
        assert_eq!(ceiling.open(), 2);
        drop(first);
        assert_eq!(ceiling.open(), 1);
        let _third = ceiling.admit().expect("the place given back");
    }

    #[test]
    fn connections_racing_for_the_last_places_get_exactly_those() {
        let ceiling = ConnectionCeiling::new(50);
        let slots = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..20)
                            .filter_map(|_| ceiling.admit().ok())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|thread| thread.join().expect("no panic"))
                .collect::<Vec<_>>()
        });
        assert_eq!(slots.len(), 50);
        assert_eq!(ceiling.open(), 50);
        drop(slots);
        assert_eq!(ceiling.open(), 0);
    }
}
