//! A small chat server for exercise 6's tests: it numbers messages, replays them
//! after `since=`, and misbehaves on purpose (cuts connections, refuses some).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

#[derive(Default)]
struct State {
    history: Vec<(u64, String)>,
    /// The `since` of every WebSocket connection, in order.
    sinces: Vec<Option<u64>>,
    refused: usize,
}

/// The running server; stops when the test's runtime ends.
pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl TestServer {
    /// Publishes messages 1 to `total`, one every `interval`; cuts each connection
    /// after it sent `cut_after` chat messages; drops every `refuse_every`-th TCP
    /// connection before the handshake.
    pub async fn start(
        total: u64,
        interval: Duration,
        cut_after: usize,
        refuse_every: usize,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::default()));
        let (live, _) = broadcast::channel::<(u64, String)>(1024);

        let publisher_state = Arc::clone(&state);
        let publisher = live.clone();
        tokio::spawn(async move {
            for seq in 1..=total {
                tokio::time::sleep(interval).await;
                let text = serde_json::json!({
                    "type": "message", "seq": seq, "from": "bot",
                    "content": format!("message {seq}"), "ts": 0
                })
                .to_string();
                // Under the lock, so that a joining client sees it exactly once.
                let mut state = lock(&publisher_state);
                state.history.push((seq, text.clone()));
                let _ = publisher.send((seq, text));
            }
        });

        let accept_state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut accepted = 0;
            while let Ok((stream, _)) = listener.accept().await {
                accepted += 1;
                if accepted % refuse_every == 0 {
                    lock(&accept_state).refused += 1;
                    drop(stream);
                    continue;
                }
                let state = Arc::clone(&accept_state);
                let live = live.clone();
                tokio::spawn(serve(stream, state, live, cut_after));
            }
        });
        TestServer { addr, state }
    }

    /// The `since` each WebSocket connection asked for, in order.
    pub fn sinces(&self) -> Vec<Option<u64>> {
        lock(&self.state).sinces.clone()
    }

    /// How many connections were dropped before the handshake.
    pub fn refused(&self) -> usize {
        lock(&self.state).refused
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    state: Arc<Mutex<State>>,
    live: broadcast::Sender<(u64, String)>,
    cut_after: usize,
) {
    let mut since = None;
    // The error type is tungstenite's; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let record_since = |request: &Request, response: Response| {
        since = request.uri().query().and_then(|query| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("since="))
                .and_then(|value| value.parse::<u64>().ok())
        });
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, record_since).await else {
        return;
    };
    let (replay, mut live) = {
        let mut state = lock(&state);
        state.sinces.push(since);
        let after = since.unwrap_or(0);
        let replay: Vec<(u64, String)> = state
            .history
            .iter()
            .filter(|(seq, _)| *seq > after)
            .cloned()
            .collect();
        (replay, live.subscribe())
    };
    let welcome = r#"{"type":"welcome","you":"learner","online":1,"seq":0}"#;
    let presence = r#"{"type":"presence","online":1}"#;
    for text in [welcome, presence] {
        if socket.send(Message::text(text)).await.is_err() {
            return;
        }
    }
    let mut sent = 0;
    let mut last = since.unwrap_or(0);
    for (seq, text) in replay {
        if sent == cut_after || socket.send(Message::text(text)).await.is_err() {
            return;
        }
        sent += 1;
        last = seq;
    }
    while let Ok((seq, text)) = live.recv().await {
        if seq <= last {
            continue;
        }
        // Cut: drop the connection without a close frame, as a network failure would.
        if sent == cut_after || socket.send(Message::text(text)).await.is_err() {
            return;
        }
        sent += 1;
        last = seq;
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
