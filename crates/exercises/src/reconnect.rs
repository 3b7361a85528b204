//! Exercise 6: a chat client that reconnects with exponential backoff and full
//! jitter, and resumes with `since=` without gaps or duplicates.
//!
//! The server is the book's chat (`GET /ws`, see the protocol chapter): it sends
//! `{"type":"message","seq":N,...}` for every chat message, numbered from 1, and
//! other types (`welcome`, `presence`, `reset`) that this client ignores. A client
//! that connects with `?since=N` first gets every message after N, then the live
//! ones.

use std::ops::ControlFlow;
use std::time::Duration;

#[cfg(test)]
mod test_server;

/// A chat message as the server sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Its sequence number, 1 for the first message the server accepted.
    pub seq: u64,
    /// Who sent it.
    pub from: String,
    /// What it says.
    pub content: String,
}

/// The chat message in a text frame, or `None` for anything else (a welcome, a
/// presence count, a reset, or text that is not a chat message).
pub fn parse_chat_message(text: &str) -> Option<ChatMessage> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value["type"] != "message" {
        return None;
    }
    Some(ChatMessage {
        seq: value["seq"].as_u64()?,
        from: value["from"].as_str()?.to_owned(),
        content: value["content"].as_str()?.to_owned(),
    })
}

/// A random number in `[0, 1)`: plenty for jitter. (The standard library has no
/// random numbers, but it seeds every `RandomState` from the operating system.)
pub fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::hash::RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

// ANCHOR: exercise
/// Exponential backoff: the ceiling starts at `start` and doubles with every
/// failed attempt in a row, up to `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first attempt.
    pub start: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// The delay before retrying after `attempt` failed attempts in a row (0 for
    /// the first), with full jitter: `fraction` (a random number in `[0, 1)`) of
    /// the ceiling `min(cap, start × 2^attempt)`. Must not overflow, however
    /// large `attempt` is.
    pub fn delay(&self, attempt: u32, fraction: f64) -> Duration {
        // ANCHOR: solution_delay
        let ceiling = self
            .start
            .saturating_mul(1u32 << attempt.min(31))
            .min(self.cap);
        ceiling.mul_f64(fraction.clamp(0.0, 1.0))
        // ANCHOR_END: solution_delay
    }
}

/// Follows the chat at `url` (like `ws://127.0.0.1:3001/ws?name=ada`): passes every
/// chat message to `on_message`, exactly once and in `seq` order, until
/// `on_message` returns `ControlFlow::Break(())`; then returns.
///
/// When connecting fails or a connection ends, waits
/// `backoff.delay(attempt, random_fraction())` and connects again, adding
/// `since=LAST` to the URL's query, where LAST is the `seq` of the last message
/// passed to `on_message` (no `since` before the first message). `attempt` counts
/// the failed attempts since a connection last delivered a message.
pub async fn follow_chat(
    url: &str,
    backoff: Backoff,
    mut on_message: impl FnMut(ChatMessage) -> ControlFlow<()>,
) {
    // ANCHOR: solution
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let mut last_seq: Option<u64> = None;
    let mut attempt = 0u32;
    loop {
        let address = match last_seq {
            None => url.to_owned(),
            Some(seq) => {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}since={seq}")
            }
        };
        if let Ok((mut socket, _response)) = tokio_tungstenite::connect_async(address).await {
            // Any error ends the connection: reconnecting is the answer to all of them.
            while let Some(Ok(frame)) = socket.next().await {
                let Message::Text(text) = frame else { continue };
                let Some(message) = parse_chat_message(&text) else {
                    continue;
                };
                // The server promises no duplicates; checking costs nothing.
                if last_seq.is_some_and(|last| message.seq <= last) {
                    continue;
                }
                last_seq = Some(message.seq);
                attempt = 0;
                if on_message(message).is_break() {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff.delay(attempt, random_fraction())).await;
        attempt = attempt.saturating_add(1);
    }
    // ANCHOR_END: solution
}
// ANCHOR_END: exercise

// ANCHOR: tests
#[cfg(test)]
mod tests {
    use super::test_server::TestServer;
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let backoff = Backoff {
            start: 10 * MS,
            cap: 100 * MS,
        };
        let halves: Vec<Duration> = (0..6).map(|attempt| backoff.delay(attempt, 0.5)).collect();
        // Half of 10, 20, 40, 80, 100 and 100 milliseconds.
        assert_eq!(
            halves,
            [5 * MS, 10 * MS, 20 * MS, 40 * MS, 50 * MS, 50 * MS]
        );
        for attempt in 0..40 {
            assert!(
                backoff.delay(attempt, 0.999) < 100 * MS,
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn full_jitter_is_a_fraction_of_the_ceiling() {
        let backoff = Backoff {
            start: 100 * MS,
            cap: 1000 * MS,
        };
        assert_eq!(backoff.delay(0, 0.0), Duration::ZERO);
        assert_eq!(backoff.delay(0, 0.5), 50 * MS);
        assert_eq!(backoff.delay(2, 0.25), 100 * MS);
        assert_eq!(backoff.delay(u32::MAX, 0.5), 500 * MS);
    }

    #[test]
    fn random_fractions_are_in_range_and_differ() {
        let fractions: Vec<f64> = (0..100).map(|_| random_fraction()).collect();
        assert!(fractions.iter().all(|f| (0.0..1.0).contains(f)));
        assert!(fractions.iter().any(|f| *f != fractions[0]));
    }

    #[tokio::test]
    async fn resumes_through_cuts_and_refusals_without_gaps_or_duplicates() {
        // 30 messages, 5 ms apart; the server cuts every connection after it sent 4
        // chat messages, and drops every third connection before the handshake.
        let server = TestServer::start(30, 5 * MS, 4, 3).await;
        let url = format!("ws://{}/ws?name=learner", server.addr);
        let backoff = Backoff {
            start: 5 * MS,
            cap: 40 * MS,
        };
        let mut seen = Vec::new();
        let followed = follow_chat(&url, backoff, |message| {
            seen.push(message.seq);
            if message.seq == 30 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        tokio::time::timeout(Duration::from_secs(20), followed)
            .await
            .expect("the client got every message within 20 s");

        assert_eq!(seen, (1..=30).collect::<Vec<u64>>());
        // Each connection delivered 4 messages, so each resumed after the last of them.
        let expected: Vec<Option<u64>> = std::iter::once(None)
            .chain((1..8).map(|n| Some(4 * n)))
            .collect();
        assert_eq!(server.sinces(), expected, "the since= of each connection");
        assert!(
            server.refused() >= 3,
            "the client retried refused connections"
        );
    }
}
// ANCHOR_END: tests
