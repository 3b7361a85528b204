//! The end of a WebSocket on a framework that hands the glue a socket that is a
//! `Sink` of messages and a `Stream` of them (axum's and warp's): the last steps of
//! the closing handshake, with a bound on how long the peer may take.

use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};

/// How long the server waits for the peer's part of a closing handshake before it
/// drops the connection anyway.
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Reads once more, for at most [`CLOSE_WAIT`], and drops what comes.
///
/// After the peer's close frame: a library that queues the reply and sends it only
/// on the next read or write (tungstenite does) has not sent it yet; dropping the
/// socket now would leave the peer without an answer (it would see 1006).
pub async fn read_once_more<S: Stream + Unpin>(socket: &mut S) {
    let _ = tokio::time::timeout(CLOSE_WAIT, socket.next()).await;
}

/// Sends our close frame, then reads until the peer's reply and its end of the
/// connection, for at most [`CLOSE_WAIT`], so the closing handshake completes before
/// the socket is dropped.
pub async fn send_close_and_wait<S, M, T, E>(mut socket: S, close: M)
where
    S: Sink<M> + Stream<Item = Result<T, E>> + Unpin,
{
    if socket.send(close).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A socket whose peer sends `incoming`, then either closes the connection
    /// (`closes`) or goes silent; what we send is kept in `sent`.
    #[derive(Default)]
    struct Socket {
        incoming: VecDeque<Result<&'static str, ()>>,
        closes: bool,
        sent: Vec<&'static str>,
    }

    impl Stream for Socket {
        type Item = Result<&'static str, ()>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            match self.incoming.pop_front() {
                Some(item) => Poll::Ready(Some(item)),
                None if self.closes => Poll::Ready(None),
                None => Poll::Pending,
            }
        }
    }

    impl Sink<&'static str> for Socket {
        type Error = ();
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(mut self: Pin<&mut Self>, item: &'static str) -> Result<(), ()> {
            self.sent.push(item);
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_close_is_sent_and_the_wait_ends_when_the_peer_closes() {
        let mut socket = Socket {
            incoming: VecDeque::from([Ok("close reply")]),
            closes: true,
            ..Socket::default()
        };
        let started = tokio::time::Instant::now();
        send_close_and_wait(&mut socket, "close").await;
        assert_eq!(socket.sent, ["close"]);
        assert!(socket.incoming.is_empty(), "the reply was read");
        assert!(started.elapsed() < CLOSE_WAIT, "it waited for nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_given_up_on_after_the_close_wait() {
        let mut socket = Socket::default();
        let started = tokio::time::Instant::now();
        read_once_more(&mut socket).await;
        assert_eq!(started.elapsed(), CLOSE_WAIT);
        let started = tokio::time::Instant::now();
        send_close_and_wait(&mut socket, "close").await;
        assert_eq!(started.elapsed(), CLOSE_WAIT);
        assert_eq!(socket.sent, ["close"]);
    }
}
