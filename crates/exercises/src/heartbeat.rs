//! Exercise 7: add a heartbeat to a bare echo server, and drop silent clients.
//!
//! A connection can die without either end noticing: a laptop that sleeps sends
//! no FIN, and a server keeps its socket (and whatever it holds for it) open for
//! ever. The server finds out by pinging: a live client's WebSocket library
//! answers every ping with a pong on its own, so a client that answered none of
//! the pings for two intervals is gone.

use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;

/// The server: `GET /echo` is a WebSocket that sends every text and binary
/// message back. `heartbeat` is how often it pings each client.
pub fn app(heartbeat: Duration) -> Router {
    Router::new().route(
        "/echo",
        get(move |upgrade: WebSocketUpgrade| async move {
            upgrade.on_upgrade(move |socket| handle_socket(socket, heartbeat))
        }),
    )
}

/// Echoes until the client closes, with no heartbeat.
pub async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                if socket.send(message).await.is_err() {
                    return;
                }
            }
            Message::Close(_) => return,
            // axum answers pings by itself.
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

// ANCHOR: exercise
/// Serves one client: echoes like [`echo`], and also sends a ping every
/// `heartbeat`. A client that answered none of the pings for two intervals is
/// dropped: return, and axum closes the connection. Any pong counts as an answer.
///
/// Hints: `tokio::time::interval`, and `tokio::select!` over `socket.recv()` and
/// the interval's `tick()`.
pub async fn handle_socket(mut socket: WebSocket, heartbeat: Duration) {
    // ANCHOR: solution
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick completes at once: skip it, the first ping goes out after one interval.
    ticker.tick().await;
    let mut unanswered_pings = 0u32;
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Pong(_))) => unanswered_pings = 0,
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if socket.send(message).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Ping(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            _ = ticker.tick() => {
                if unanswered_pings >= 2 {
                    return;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                unanswered_pings += 1;
            }
        }
    }
    // ANCHOR_END: solution
    // STARTER: let _ = heartbeat; // Replace the plain echo with your heartbeat.
    // STARTER: echo(socket).await;
}
// ANCHOR_END: exercise

// ANCHOR: tests
#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::{Instant, timeout};
    use tokio_tungstenite::tungstenite::Message as ClientMessage;

    const INTERVAL: Duration = Duration::from_millis(100);

    async fn start_server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app(INTERVAL)).await });
        addr
    }

    /// A client that completes the handshake by hand, then never sends a byte:
    /// no pong, ever. Returns its socket once the 101 has been read.
    async fn silent_client(addr: SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        while !response.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            stream.read_exact(&mut byte).await.unwrap();
            response.push(byte[0]);
        }
        assert!(response.starts_with(b"HTTP/1.1 101"), "{response:?}");
        stream
    }

    #[tokio::test]
    async fn it_still_echoes() {
        let addr = start_server().await;
        let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/echo"))
            .await
            .unwrap();
        client.send(ClientMessage::text("hello")).await.unwrap();
        client
            .send(ClientMessage::binary(vec![1, 2, 3]))
            .await
            .unwrap();
        let mut echoed = Vec::new();
        while echoed.len() < 2 {
            let message = client.next().await.unwrap().unwrap();
            if message.is_text() || message.is_binary() {
                echoed.push(message);
            }
        }
        assert_eq!(
            echoed,
            [
                ClientMessage::text("hello"),
                ClientMessage::binary(vec![1, 2, 3])
            ]
        );
    }

    #[tokio::test]
    async fn a_silent_client_is_pinged_then_dropped() {
        let addr = start_server().await;
        let mut stream = silent_client(addr).await;
        let started = Instant::now();
        let mut received = Vec::new();
        let mut buffer = [0; 256];
        // Read until the server closes the connection (end of file or a reset).
        let read_all = async {
            while let Ok(count @ 1..) = stream.read(&mut buffer).await {
                received.extend_from_slice(&buffer[..count]);
            }
        };
        timeout(10 * INTERVAL, read_all)
            .await
            .expect("the server dropped the silent client within ten intervals");
        assert!(
            started.elapsed() >= 2 * INTERVAL,
            "dropped after {:?}, before two intervals had passed",
            started.elapsed()
        );
        // A ping from a server: 0x89 (FIN, opcode 9), then an unmasked length.
        assert!(received.starts_with(&[0x89]), "first bytes {received:x?}");
    }

    #[tokio::test]
    async fn a_client_that_answers_stays_connected() {
        let addr = start_server().await;
        let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/echo"))
            .await
            .unwrap();
        // tokio-tungstenite answers each ping while we read.
        let mut pings = 0;
        let deadline = Instant::now() + 8 * INTERVAL;
        while let Ok(next) = tokio::time::timeout_at(deadline, client.next()).await {
            match next {
                Some(Ok(ClientMessage::Ping(_))) => pings += 1,
                other => panic!("the server ended the connection: {other:?}"),
            }
        }
        assert!(pings >= 4, "{pings} pings in eight intervals");
        client
            .send(ClientMessage::text("still here"))
            .await
            .unwrap();
        loop {
            match client.next().await {
                Some(Ok(ClientMessage::Text(text))) => {
                    assert_eq!(text.as_str(), "still here");
                    break;
                }
                Some(Ok(ClientMessage::Ping(_))) => {}
                other => panic!("expected the echo, got {other:?}"),
            }
        }
    }
}
// ANCHOR_END: tests
