//! The chat connection's policy, once for every server: when to ping, when to give up
//! on a client, and the close code and reason each ending gets. No I/O: the glue reads
//! and writes, asks this module what to do, and does it.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};
use wsse_wire::close::CloseCode;

/// How the server closes a connection: the code and the reason of its close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing {
    /// The close code.
    pub code: CloseCode,
    /// The reason, for logs: at most 123 bytes.
    pub reason: &'static str,
}

impl Closing {
    /// A closing with this code and reason.
    pub const fn new(code: u16, reason: &'static str) -> Closing {
        Closing {
            code: CloseCode(code),
            reason,
        }
    }
}

// ANCHOR: closings
/// The server is stopping: 1001 Going Away.
pub const SHUTTING_DOWN: Closing = Closing::new(1001, "server shutting down");

/// The chat is text only: a binary message is closed with 1003 Unsupported Data.
pub const BINARY_REFUSED: Closing = Closing::new(1003, "binary messages are not accepted");

/// A client that kept sending faster than its rate after being told
/// ([`crate::limits::MessageRate`]): 1008 Policy Violation.
pub const SENDING_TOO_FAST: Closing = Closing::new(1008, "sending too fast");

/// With `--auth`, the connection's session ended while it was open (signed out, or
/// expired): 4001, a code of the range RFC 6455 leaves to applications (4000-4999).
/// A client that sees it signs in again instead of reconnecting.
pub const SESSION_ENDED: Closing = Closing::new(4001, "session ended");

/// What a peer did wrong, as far as the close code goes. Each framework reports these
/// in its own error type; the glue says which one it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A frame or message over the size limit.
    TooBig,
    /// A text message that is not UTF-8.
    InvalidUtf8,
    /// Anything else RFC 6455 forbids.
    Protocol,
}

/// The closing a fault earns: the code the wire crate gives the same fault when it
/// finds it itself ([`wsse_wire::ProtocolError::close_code`]): 1009, 1007 or 1002.
pub const fn closing_for(fault: Fault) -> Closing {
    let (code, reason) = match fault {
        Fault::TooBig => (CloseCode::MESSAGE_TOO_BIG, "message too big"),
        Fault::InvalidUtf8 => (CloseCode::INVALID_PAYLOAD, "invalid UTF-8"),
        Fault::Protocol => (CloseCode::PROTOCOL_ERROR, "protocol error"),
    };
    Closing { code, reason }
}
// ANCHOR_END: closings

// ANCHOR: heartbeat
/// The heartbeat rule: a ping every interval, the first one a whole interval after the
/// connection opened; any pong shows the client is alive, whichever ping it answers;
/// a client that answered none of the last [`Heartbeat::UNANSWERED_PINGS_BEFORE_DROP`]
/// pings is dropped at the next tick, so a dead one goes after about three intervals.
#[derive(Debug)]
pub struct Heartbeat {
    timer: Interval,
    unanswered_pings: u32,
}

/// What a tick of the heartbeat calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Send a ping.
    Ping,
    /// The client answered none of the last pings: drop the connection, without a
    /// close frame (nobody would read it).
    Drop,
}

impl Heartbeat {
    /// Pings a client may leave unanswered before it is dropped.
    pub const UNANSWERED_PINGS_BEFORE_DROP: u32 = 2;

    /// A heartbeat of `interval`, starting now.
    pub fn new(interval: Duration) -> Heartbeat {
        let mut timer = interval_at(Instant::now() + interval, interval);
        // After a stall, one late tick rather than a burst of them.
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Heartbeat {
            timer,
            unanswered_pings: 0,
        }
    }

    /// Waits for the next tick and says what it calls for. Cancel-safe, so it can be
    /// one branch of a `select!` loop.
    pub async fn tick(&mut self) -> Beat {
        self.timer.tick().await;
        self.beat()
    }

    /// A pong arrived.
    pub fn pong(&mut self) {
        self.unanswered_pings = 0;
    }

    fn beat(&mut self) -> Beat {
        if self.unanswered_pings >= Self::UNANSWERED_PINGS_BEFORE_DROP {
            return Beat::Drop;
        }
        self.unanswered_pings += 1;
        Beat::Ping
    }
}
// ANCHOR_END: heartbeat

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_gets_two_pings_then_is_dropped() {
        let started = Instant::now();
        let mut heartbeat = Heartbeat::new(Duration::from_secs(15));
        assert_eq!(heartbeat.tick().await, Beat::Ping);
        assert_eq!(started.elapsed(), Duration::from_secs(15), "not at once");
        assert_eq!(heartbeat.tick().await, Beat::Ping);
        assert_eq!(heartbeat.tick().await, Beat::Drop);
        assert_eq!(started.elapsed(), Duration::from_secs(45));
    }

    #[tokio::test(start_paused = true)]
    async fn any_pong_restarts_the_count() {
        let mut heartbeat = Heartbeat::new(Duration::from_secs(1));
        for _ in 0..10 {
            assert_eq!(heartbeat.tick().await, Beat::Ping);
            assert_eq!(heartbeat.tick().await, Beat::Ping);
            heartbeat.pong();
        }
        assert_eq!(heartbeat.tick().await, Beat::Ping);
        assert_eq!(heartbeat.tick().await, Beat::Ping);
        assert_eq!(heartbeat.tick().await, Beat::Drop);
    }

    #[test]
    fn the_closings_are_valid_close_frames() {
        for closing in [SHUTTING_DOWN, BINARY_REFUSED] {
            assert!(closing.code.is_allowed_on_wire());
            assert!(closing.reason.len() <= wsse_wire::close::MAX_REASON_LEN);
        }
        for (fault, code) in [
            (Fault::TooBig, CloseCode::MESSAGE_TOO_BIG),
            (Fault::InvalidUtf8, CloseCode::INVALID_PAYLOAD),
            (Fault::Protocol, CloseCode::PROTOCOL_ERROR),
        ] {
            assert_eq!(closing_for(fault).code, code, "{fault:?}");
        }
        assert_eq!(SHUTTING_DOWN.code, CloseCode::GOING_AWAY);
        assert_eq!(BINARY_REFUSED.code, CloseCode::UNSUPPORTED_DATA);
    }
}
