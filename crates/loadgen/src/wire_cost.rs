//! Scenario 5, wire cost: what a message really costs on the socket, and how long
//! the first message takes to arrive when the network is slow.
//!
//! Clients connect through the test kit's [`FlakyProxy`], which counts every byte
//! it passes. For chat contents up to the chat's limit (4096 characters) a WebSocket
//! client on `/ws` and an SSE client on `/events` receive the same posted messages;
//! the bytes the proxy passed down, divided by the messages, include everything: the
//! WebSocket frame header, the SSE field names and blank line, and the HTTP chunk
//! header and CRLFs around each event. `/echo` carries every size, up to 64 KiB,
//! over WebSocket only.
//!
//! For the time to the first message the proxy holds every piece of data for the
//! added one-way latency. The first message is one already in the history, asked for
//! with `since=0` or `Last-Event-ID: 0`, so the server sends it right after the
//! handshake. The proxy cannot delay the TCP handshake itself (the kernel completes
//! it before the proxy sees the connection), so one round trip more must be added for
//! a real network, and two or more for TLS.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;
use wsse_testkit::proxy::{Faults, FlakyProxy};

use crate::net::{SseReader, next_text, post_chat, ws_connect};

/// The largest chat content (the protocol's limit).
pub const MAX_CHAT_CONTENT: usize = 4096;

/// The bounds of one wire-cost run.
#[derive(Debug, Clone)]
pub struct WireCostOptions {
    /// The server.
    pub addr: SocketAddr,
    /// Payload sizes in bytes.
    pub sizes: Vec<usize>,
    /// Messages per size.
    pub messages: u64,
    /// Added one-way latency for the time to the first message.
    pub latency: Duration,
    /// How many connects per transport for the time to the first message.
    pub connects: u32,
}

/// The bytes per message at one size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireCostRow {
    /// Content or payload size.
    pub size: usize,
    /// The chat message's JSON, as both transports carry it (chat sizes only).
    pub json_bytes: Option<f64>,
    /// Bytes down per chat message over `/ws`.
    pub ws_bytes: Option<f64>,
    /// Bytes down per chat message over `/events`.
    pub sse_bytes: Option<f64>,
    /// Bytes down per `/echo` message of `size` bytes.
    pub echo_down_bytes: f64,
    /// Bytes up per `/echo` message (masked client frames).
    pub echo_up_bytes: f64,
}

/// The time from connecting to the first chat message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FirstMessage {
    /// `ws` or `sse`.
    pub transport: String,
    /// The median over the connects, ms.
    pub median_ms: f64,
    /// The median divided by one round trip (twice the latency).
    pub round_trips: f64,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireCostResult {
    /// One row per size.
    pub rows: Vec<WireCostRow>,
    /// The added one-way latency, ms.
    pub latency_ms: f64,
    /// WebSocket and SSE.
    pub first_message: Vec<FirstMessage>,
}

/// Runs the wire-cost measurement.
///
/// # Errors
///
/// When a connection fails or messages do not arrive.
pub async fn run(options: &WireCostOptions) -> Result<WireCostResult, String> {
    let start_proxy = || async {
        FlakyProxy::start(options.addr, Faults::default())
            .await
            .map_err(|error| format!("starting a proxy: {error}"))
    };
    let (ws_proxy, sse_proxy, echo_proxy) = (
        start_proxy().await?,
        start_proxy().await?,
        start_proxy().await?,
    );
    let mut sse = SseReader::open(sse_proxy.addr(), "/events", &[], None).await?;
    let mut ws = ws_connect(ws_proxy.addr(), "/ws?name=w", None).await?;
    let mut echo = ws_connect(echo_proxy.addr(), "/echo", None).await?;
    // Let the join announcements and the first bytes pass.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let step = Duration::from_secs(10);

    let mut rows = Vec::new();
    for &size in &options.sizes {
        let (mut json_bytes, mut ws_bytes, mut sse_bytes) = (None, None, None);
        if size <= MAX_CHAT_CONTENT {
            let content = "c".repeat(size);
            let (ws_before, sse_before) = (ws_proxy.bytes_down(), sse_proxy.bytes_down());
            for _ in 0..options.messages {
                post_chat(options.addr, &content).await?;
            }
            let mut json_total = 0;
            let mut got = 0;
            while got < options.messages {
                let text = tokio::time::timeout(step, next_text(&mut ws))
                    .await
                    .map_err(|_| "the WebSocket chat stopped delivering")?
                    .ok_or("the WebSocket chat closed")?;
                if text.contains(&format!("\"content\":\"{content}\"")) {
                    json_total += text.len();
                    got += 1;
                }
            }
            got = 0;
            while got < options.messages {
                let event = tokio::time::timeout(step, sse.next_event())
                    .await
                    .map_err(|_| "the event stream stopped delivering")??
                    .ok_or("the event stream ended")?;
                if event.data.contains(&format!("\"content\":\"{content}\"")) {
                    got += 1;
                }
            }
            let count = options.messages as f64;
            json_bytes = Some(json_total as f64 / count);
            ws_bytes = Some((ws_proxy.bytes_down() - ws_before) as f64 / count);
            sse_bytes = Some((sse_proxy.bytes_down() - sse_before) as f64 / count);
        }
        let payload = "e".repeat(size);
        let (down_before, up_before) = (echo_proxy.bytes_down(), echo_proxy.bytes_up());
        for _ in 0..options.messages {
            echo.send(Message::text(payload.as_str()))
                .await
                .map_err(|error| format!("sending to /echo: {error}"))?;
            let back = tokio::time::timeout(step, next_text(&mut echo))
                .await
                .map_err(|_| "/echo did not answer")?
                .ok_or("/echo closed")?;
            if back.len() != size {
                return Err("/echo answered something else".to_owned());
            }
        }
        let count = options.messages as f64;
        rows.push(WireCostRow {
            size,
            json_bytes,
            ws_bytes,
            sse_bytes,
            echo_down_bytes: (echo_proxy.bytes_down() - down_before) as f64 / count,
            echo_up_bytes: (echo_proxy.bytes_up() - up_before) as f64 / count,
        });
    }
    drop((ws, sse, echo));

    let first_message = first_messages(options).await?;
    Ok(WireCostResult {
        rows,
        latency_ms: options.latency.as_secs_f64() * 1000.0,
        first_message,
    })
}

async fn first_messages(options: &WireCostOptions) -> Result<Vec<FirstMessage>, String> {
    // Make sure the history holds a message to replay.
    post_chat(options.addr, "first").await?;
    let proxy = FlakyProxy::start(
        options.addr,
        Faults {
            latency: Some(options.latency),
            ..Faults::default()
        },
    )
    .await
    .map_err(|error| format!("starting a proxy: {error}"))?;
    let round_trip = options.latency.as_secs_f64() * 2000.0;
    let mut ws_times = Vec::new();
    let mut sse_times = Vec::new();
    for _ in 0..options.connects.max(1) {
        let started = Instant::now();
        let mut ws = ws_connect(proxy.addr(), "/ws?name=f&since=0", None).await?;
        loop {
            let text = next_text(&mut ws).await.ok_or("the chat closed")?;
            if text.starts_with("{\"type\":\"message\"") {
                break;
            }
        }
        ws_times.push(started.elapsed().as_secs_f64() * 1000.0);
        let _ = ws.close(None).await;

        let started = Instant::now();
        let mut sse =
            SseReader::open(proxy.addr(), "/events", &[("Last-Event-ID", "0")], None).await?;
        loop {
            let event = sse.next_event().await?.ok_or("the event stream ended")?;
            if event.event_type == "message" {
                break;
            }
        }
        sse_times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let row = |transport: &str, mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        let median_ms = times[times.len() / 2];
        FirstMessage {
            transport: transport.to_owned(),
            median_ms,
            round_trips: median_ms / round_trip,
        }
    };
    Ok(vec![row("ws", ws_times), row("sse", sse_times)])
}
