//! How much one server takes on, and from whom, once for every server:
//!
//! - [`ConnectionCeiling`]: the long connections held at once (WebSockets on `/ws`
//!   and `/echo`, event streams on `/events` and `/stream`, together), in all and
//!   from one client address, so that a flood of connections is refused with a clear
//!   answer instead of taking the process down when it runs out of file descriptors
//!   or memory, and so that one client cannot take every place. The glue asks
//!   [`AppState::admit`](crate::AppState::admit) before it answers `101` or `200`, and
//!   holds the [`ConnectionSlot`] for as long as the connection lives.
//! - [`MessageRate`]: the chat messages one WebSocket may send. The glue asks
//!   [`MessageRate::check`] for each text message before the hub sees it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::connection::{Closing, SENDING_TOO_FAST};
use crate::messages::{ErrorCode, ErrorReply};
use crate::refusals::{self, Refusal};

/// The most streams one HTTP/2 connection may have open at once (its
/// `SETTINGS_MAX_CONCURRENT_STREAMS`): each event stream or WebSocket is one, and
/// each still counts against the ceilings above. RFC 9113 recommends no fewer than
/// 100; hyper's default is 200. A client that opens more gets `REFUSED_STREAM` for
/// each stream above it, which it may retry once another has closed.
pub const MAX_HTTP2_STREAMS: u32 = 100;

// ANCHOR: request_head
/// The largest request head, request line and header fields together, on every
/// server: hyper's bound under axum and warp ([`crate::hyper_server`]), the scratch
/// crate's own (`wsse_scratch::http::MAX_HEAD_LEN`), and on actix-web, whose parser
/// allows 128 KiB, a check of the glue's ([`request_head_bytes`]). Browsers send a few
/// hundred bytes to a few KiB, cookies most of it.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

/// The most frames one chat message may come in, where the server can count them
/// (scratch, on the wire crate's reader); one more closes the connection with 1009.
/// Empty continuation frames grow no message, so without a bound a client could keep
/// one open forever, each frame costing a parse. Browsers send every message in one
/// frame; 1024 lets a message of the largest size arrive in 64-byte pieces.
/// tungstenite (axum, warp) and actix-ws show the glue only whole messages and count
/// no frames; they keep nothing per empty frame, so memory stays bounded there too
/// (the scenario `fragment_flood` measures it on every server).
pub const MAX_CHAT_FRAGMENTS: usize = 1024;

/// How many bytes a request head took on the wire, near enough (HTTP/1.1, no
/// whitespace beyond one space after each colon), for a framework that has parsed it
/// already: the request line, each header field, the blank line.
pub fn request_head_bytes<'a>(
    method: &str,
    target: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> usize {
    let request_line = method.len() + 1 + target.len() + " HTTP/1.1\r\n".len();
    let fields: usize = headers
        .into_iter()
        .map(|(name, value)| name.len() + ": ".len() + value.len() + "\r\n".len())
        .sum();
    request_line + fields + "\r\n".len()
}
// ANCHOR_END: request_head

// ANCHOR: ceiling
/// The most long connections a server holds at once, in all and from one client
/// address, and how many it holds now. Clones share the counts.
#[derive(Debug, Clone)]
pub struct ConnectionCeiling {
    counts: Arc<Mutex<Counts>>,
    max: usize,
    /// 0: no limit per address.
    max_per_address: usize,
}

/// The connections held now: a client address is in `by_address` while it holds one.
#[derive(Debug, Default)]
struct Counts {
    open: usize,
    by_address: HashMap<IpAddr, usize>,
}
// ANCHOR_END: ceiling

/// One admitted connection: its place is given back when this is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: Arc<Mutex<Counts>>,
    address: Option<IpAddr>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.open -= 1;
        if let Some(address) = self.address
            && let Some(held) = counts.by_address.get_mut(&address)
        {
            *held -= 1;
            if *held == 0 {
                counts.by_address.remove(&address);
            }
        }
    }
}

/// The counts, even if a thread panicked while holding them: each change is one
/// step that leaves them whole.
fn lock(counts: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ConnectionCeiling {
    /// At most `max` connections at once, and at most `max_per_address` from one
    /// client address (0 for no such limit).
    pub fn new(max: usize, max_per_address: usize) -> ConnectionCeiling {
        ConnectionCeiling {
            counts: Arc::default(),
            max,
            max_per_address,
        }
    }

    // ANCHOR: admit
    /// A place for one more connection from `client` (`None` if the server does not
    /// know it: then only the total counts), or the refusal when there is none: 503
    /// with `Retry-After` when every place is taken, 429 with `Retry-After` when
    /// this client holds its share. Counting and checking are one step under one
    /// lock, so two connections arriving together cannot both take the last place.
    ///
    /// # Errors
    ///
    /// [`refusals::too_many_connections`] at the ceiling,
    /// [`refusals::too_many_from_address`] at the client's share.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<ConnectionSlot, Refusal> {
        let address = client.map(address_key);
        let mut counts = lock(&self.counts);
        if counts.open >= self.max {
            tracing::warn!(
                max = self.max,
                "refused a connection: the ceiling is reached"
            );
            return Err(refusals::too_many_connections(self.max));
        }
        let address = address.filter(|_| self.max_per_address > 0);
        if let Some(address) = address {
            let held = counts.by_address.entry(address).or_default();
            if *held >= self.max_per_address {
                tracing::warn!(
                    %address,
                    max = self.max_per_address,
                    "refused a connection: the address holds its share"
                );
                return Err(refusals::too_many_from_address(self.max_per_address));
            }
            *held += 1;
        }
        counts.open += 1;
        Ok(ConnectionSlot {
            counts: Arc::clone(&self.counts),
            address,
        })
    }
    // ANCHOR_END: admit

    /// How many connections hold a place now.
    pub fn open(&self) -> usize {
        lock(&self.counts).open
    }
}

// ANCHOR: address_key
/// What a client address counts as: an IPv4 address as it is (also when it comes as
/// an IPv4-mapped IPv6 address, as on a dual-stack socket), an IPv6 address by its
/// /64, the block a single home or phone is given, any address of which it may use.
fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}
// ANCHOR_END: address_key

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
        let ceiling = ConnectionCeiling::new(2, 0);
        let first = ceiling.admit(None).expect("a place");
        let _second = ceiling.clone().admit(None).expect("a place");
        assert_eq!(ceiling.open(), 2);
        let refused = ceiling.admit(None).expect_err("no place left");
        assert_eq!(refused.status, 503);
        assert_eq!(refused.headers, [("Retry-After", "5")]);
        assert!(refused.body.contains('2'), "{}", refused.body);
        // A refusal takes no place.
        assert_eq!(ceiling.open(), 2);
        drop(first);
        assert_eq!(ceiling.open(), 1);
        let _third = ceiling.admit(None).expect("the place given back");
    }

    #[test]
    fn connections_racing_for_the_last_places_get_exactly_those() {
        let ceiling = ConnectionCeiling::new(50, 0);
        let slots = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..20)
                            .filter_map(|_| ceiling.admit(None).ok())
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

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("an IP address"))
    }

    #[test]
    fn one_address_gets_its_share_and_the_others_theirs() {
        let ceiling = ConnectionCeiling::new(10, 2);
        let first = ceiling.admit(ip("192.0.2.1")).expect("a place");
        let _second = ceiling.admit(ip("192.0.2.1")).expect("a place");
        let refused = ceiling
            .admit(ip("192.0.2.1"))
            .expect_err("its share is taken");
        assert_eq!(refused.status, 429);
        assert_eq!(refused.headers, [("Retry-After", "5")]);
        assert!(refused.body.contains("maximum of 2"), "{}", refused.body);
        // Other addresses, and connections whose address is unknown, still come in.
        let _other = ceiling.admit(ip("192.0.2.2")).expect("another address");
        let _unknown = ceiling.admit(None).expect("no address");
        assert_eq!(ceiling.open(), 4);
        drop(first);
        let _again = ceiling
            .admit(ip("192.0.2.1"))
            .expect("the place given back");
        // The total still rules: 4 held, 6 more from six addresses, then none.
        let more: Vec<_> = (3..9)
            .map(|n| ceiling.admit(ip(&format!("192.0.2.{n}"))).expect("a place"))
            .collect();
        assert_eq!(ceiling.open(), 10);
        assert_eq!(
            ceiling.admit(ip("192.0.2.9")).expect_err("full").status,
            503
        );
        drop(more);
        assert_eq!(ceiling.open(), 4);
    }

    #[test]
    fn an_address_leaves_no_trace_once_its_connections_are_gone() {
        let ceiling = ConnectionCeiling::new(10, 1);
        for n in 0..100 {
            drop(ceiling.admit(ip(&format!("10.0.0.{n}"))).expect("a place"));
        }
        assert!(lock(&ceiling.counts).by_address.is_empty());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let ceiling = ConnectionCeiling::new(10, 2);
        let _first = ceiling.admit(ip("2001:db8:1:2::1")).expect("a place");
        let _second = ceiling.admit(ip("2001:db8:1:2:aaaa::9")).expect("a place");
        let refused = ceiling.admit(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_eq!(refused.expect_err("the same /64").status, 429);
        let _next_block = ceiling.admit(ip("2001:db8:1:3::1")).expect("another /64");

        let _v4 = ceiling.admit(ip("192.0.2.7")).expect("a place");
        let _mapped = ceiling.admit(ip("::ffff:192.0.2.7")).expect("a place");
        let refused = ceiling.admit(ip("192.0.2.7"));
        assert_eq!(refused.expect_err("the same IPv4 address").status, 429);
    }

    #[test]
    fn a_head_counts_as_its_bytes_on_the_wire() {
        let head = "GET /ws?name=a HTTP/1.1\r\nHost: example\r\nX-Empty: \r\n\r\n";
        let headers: [(&str, &[u8]); 2] = [("Host", b"example"), ("X-Empty", b"")];
        assert_eq!(request_head_bytes("GET", "/ws?name=a", headers), head.len());
    }

    #[test]
    fn a_share_of_zero_is_no_limit_per_address() {
        let ceiling = ConnectionCeiling::new(3, 0);
        let slots: Vec<_> = (0..3)
            .map(|_| ceiling.admit(ip("127.0.0.1")).expect("a place"))
            .collect();
        assert_eq!(
            ceiling.admit(ip("127.0.0.1")).expect_err("full").status,
            503
        );
        drop(slots);
    }
}
