//! Sending what is ready with one flush.
//!
//! A connection that writes each message and flushes it costs one system call per
//! message per client. When a broadcast reaches a thousand clients, or a client
//! falls behind and many messages wait for it, most of that work is the system
//! calls. Writing everything already waiting and flushing once costs one call per
//! burst. [`crate::hub::Subscription::take_burst`] collects the burst; the functions
//! here write it.

use futures_util::{Sink, SinkExt};

use crate::hub::HubEvent;

/// The most events one burst carries: enough to absorb a backlog, few enough that
/// one connection's task does not hold its thread for long.
pub const BURST_LIMIT: usize = 64;

// ANCHOR: send_burst
/// Writes each event's JSON to `sink` as the message `to_message` makes of it, then
/// flushes once.
///
/// # Errors
///
/// The sink's error, from the first write or the flush that failed.
pub async fn send_burst<S, M>(
    sink: &mut S,
    events: Vec<HubEvent>,
    to_message: impl Fn(String) -> M,
) -> Result<(), S::Error>
where
    S: Sink<M> + Unpin,
{
    for event in events {
        sink.feed(to_message(event.to_json())).await?;
    }
    sink.flush().await
}
// ANCHOR_END: send_burst

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A sink that records what it is given and when it was flushed.
    #[derive(Default)]
    struct Recorder {
        log: Vec<String>,
    }

    impl Sink<String> for Recorder {
        type Error = ();

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(mut self: Pin<&mut Self>, item: String) -> Result<(), ()> {
            self.log.push(item);
            Ok(())
        }

        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            self.log.push("flush".to_owned());
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_burst_is_written_in_order_and_flushed_once() {
        let events = vec![
            HubEvent::Presence { online: 1 },
            HubEvent::Presence { online: 2 },
        ];
        let mut sink = Recorder::default();
        send_burst(&mut sink, events, |json| json).await.unwrap();
        assert_eq!(
            sink.log,
            [
                r#"{"type":"presence","online":1}"#,
                r#"{"type":"presence","online":2}"#,
                "flush"
            ]
        );
    }
}
