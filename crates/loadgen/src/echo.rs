//! Scenario 2, echo round trips on `/echo`: each connection sends a text message,
//! waits for it to come back, and sends the next (closed loop). One connection gives
//! the bare round-trip time; many give the messages per second a server sustains.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use crate::net::{connect_many, source_for, ws_connect};
use crate::stamp::clock_nanos;
use crate::stats::{Summary, histogram, record};

/// Round trips each connection makes before measuring.
const WARM_UP: u64 = 100;

/// The bounds of one echo run.
#[derive(Debug, Clone)]
pub struct EchoOptions {
    /// The server.
    pub addr: SocketAddr,
    /// How many connections, each in its own closed loop.
    pub connections: u64,
    /// How long to measure.
    pub duration: Duration,
    /// Message size in bytes.
    pub size: usize,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EchoResult {
    /// Connections.
    pub connections: u64,
    /// Message size.
    pub size: usize,
    /// Round trips completed while measuring.
    pub messages: u64,
    /// Round trips per second, all connections together.
    pub messages_per_second: f64,
    /// Round-trip time.
    pub round_trip: Summary,
}

/// Runs one echo measurement.
///
/// # Errors
///
/// When a connection fails or an echo does not match.
pub async fn run(options: &EchoOptions) -> Result<EchoResult, String> {
    let connections = connect_many(options.connections, 50, |index| {
        ws_connect(options.addr, "/echo", Some(source_for(index)))
    })
    .await?;
    let payload = "e".repeat(options.size);
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let end = start + options.duration;
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|ws| {
            let payload = payload.clone();
            tokio::spawn(async move { ping_pong(ws, payload, start, end).await })
        })
        .collect();
    let mut total = histogram();
    let mut messages = 0;
    for task in tasks {
        let (count, histogram) = task
            .await
            .map_err(|error| format!("an echo task panicked: {error}"))??;
        messages += count;
        total
            .add(&histogram)
            .map_err(|error| format!("merging histograms: {error}"))?;
    }
    Ok(EchoResult {
        connections: options.connections,
        size: options.size,
        messages,
        messages_per_second: messages as f64 / options.duration.as_secs_f64(),
        round_trip: Summary::of(&total),
    })
}

async fn ping_pong(
    mut ws: crate::net::Ws,
    payload: String,
    start: tokio::time::Instant,
    end: tokio::time::Instant,
) -> Result<(u64, Histogram<u64>), String> {
    let mut histogram = histogram();
    let mut round = 0_u64;
    let mut measured = 0_u64;
    loop {
        let now = tokio::time::Instant::now();
        if now >= end {
            break;
        }
        let counting = round >= WARM_UP && now >= start;
        let sent_at = clock_nanos();
        ws.send(Message::text(payload.as_str()))
            .await
            .map_err(|error| format!("sending to /echo: {error}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    if text.len() != payload.len() {
                        return Err("/echo sent back something else".to_owned());
                    }
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(format!("reading from /echo: {error}")),
                None => return Err("/echo closed the connection".to_owned()),
            }
        }
        if counting {
            record(&mut histogram, clock_nanos() - sent_at);
            measured += 1;
        }
        round += 1;
    }
    let _ = ws.close(None).await;
    Ok((measured, histogram))
}
