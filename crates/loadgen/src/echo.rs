//! Scenario 2, echo round trips on `/echo`: each connection sends a text message,
//! waits for it to come back, and sends the next (closed loop). One connection gives
//! the bare round-trip time; many give the messages per second a server sustains.
//!
//! With [`EchoOptions::plain_tcp`] the same loop runs over plain TCP against
//! [`crate::floor::tcp_echo_server`]: no WebSocket framing on either side, one read
//! and one write per message on the server. That is the floor: what two processes on
//! two cores of this machine cost for a round trip, before any server's work.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::bench_message::clock_nanos;
use crate::net::{Ws, connect_from, connect_many, source_for, ws_connect};
use crate::procfs::ServerCpu;
use crate::stats::{Summary, histogram, per_unit_micros, record};

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
    /// Plain TCP (to [`crate::floor::tcp_echo_server`]) instead of a WebSocket on
    /// `/echo`.
    pub plain_tcp: bool,
    /// The server's process, whose CPU time over the measured span is counted.
    pub server_pid: Option<u32>,
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
    /// The server's CPU time over the measured span, seconds, when its pid was given.
    #[serde(default)]
    pub server_cpu_seconds: Option<f64>,
}

impl EchoResult {
    /// The server's CPU time per round trip, microseconds.
    pub fn server_micros_per_round_trip(&self) -> Option<f64> {
        per_unit_micros(self.server_cpu_seconds, self.messages)
    }
}

/// Runs one echo measurement.
///
/// # Errors
///
/// When a connection fails or an echo does not match.
pub async fn run(options: &EchoOptions) -> Result<EchoResult, String> {
    let connections = connect_many(options.connections, 50, |index| async move {
        let source = Some(source_for(index));
        if options.plain_tcp {
            Ok(Connection::Tcp(connect_from(options.addr, source).await?))
        } else {
            Ok(Connection::Ws(Box::new(
                ws_connect(options.addr, "/echo", source).await?,
            )))
        }
    })
    .await?;
    let payload = "e".repeat(options.size);
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let end = start + options.duration;
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|connection| {
            let payload = payload.clone();
            tokio::spawn(async move { ping_pong(connection, payload, start, end).await })
        })
        .collect();
    // The server's CPU time over the span the round trips are counted in (the
    // connections' warm-up rounds aside), not their connecting and closing.
    tokio::time::sleep_until(start).await;
    let server_cpu = ServerCpu::start(options.server_pid.as_slice())?;
    tokio::time::sleep_until(end).await;
    let server_cpu_seconds = server_cpu.seconds()?;
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
        server_cpu_seconds,
    })
}

/// One echo connection: a WebSocket on `/echo`, or plain TCP to the floor server.
enum Connection {
    Ws(Box<Ws>),
    Tcp(TcpStream),
}

impl Connection {
    /// Sends `payload` and waits until all of it came back.
    async fn round_trip(&mut self, payload: &str, buffer: &mut [u8]) -> Result<(), String> {
        match self {
            Connection::Ws(ws) => {
                ws.send(Message::text(payload))
                    .await
                    .map_err(|error| format!("sending to /echo: {error}"))?;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(text))) => {
                            if text.len() != payload.len() {
                                return Err("/echo sent back something else".to_owned());
                            }
                            return Ok(());
                        }
                        Some(Ok(_)) => {}
                        Some(Err(error)) => return Err(format!("reading from /echo: {error}")),
                        None => return Err("/echo closed the connection".to_owned()),
                    }
                }
            }
            Connection::Tcp(stream) => {
                stream
                    .write_all(payload.as_bytes())
                    .await
                    .map_err(|error| format!("sending to the TCP echo: {error}"))?;
                let mut received = 0;
                while received < payload.len() {
                    let read = stream
                        .read(&mut buffer[..payload.len() - received])
                        .await
                        .map_err(|error| format!("reading from the TCP echo: {error}"))?;
                    if read == 0 {
                        return Err("the TCP echo closed the connection".to_owned());
                    }
                    received += read;
                }
                Ok(())
            }
        }
    }

    async fn close(self) {
        match self {
            Connection::Ws(ws) => {
                // Unboxed: on the box, `SinkExt::close` would be found first.
                let mut ws = *ws;
                let _ = ws.close(None).await;
            }
            Connection::Tcp(mut stream) => {
                let _ = stream.shutdown().await;
            }
        }
    }
}

async fn ping_pong(
    mut connection: Connection,
    payload: String,
    start: tokio::time::Instant,
    end: tokio::time::Instant,
) -> Result<(u64, Histogram<u64>), String> {
    let mut histogram = histogram();
    let mut buffer = vec![0; payload.len().max(1)];
    let mut round = 0_u64;
    let mut measured = 0_u64;
    loop {
        let now = tokio::time::Instant::now();
        if now >= end {
            break;
        }
        let counting = round >= WARM_UP && now >= start;
        let sent_at = clock_nanos();
        connection.round_trip(&payload, &mut buffer).await?;
        if counting {
            record(&mut histogram, clock_nanos() - sent_at);
            measured += 1;
        }
        round += 1;
    }
    connection.close().await;
    Ok((measured, histogram))
}
