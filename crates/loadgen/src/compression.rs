//! Scenario 6, compression: what permessage-deflate (RFC 7692) saves on the wire and
//! what it costs the server, against one server started with one compression setting.
//!
//! Every WebSocket client here offers the extension as a browser does
//! (`permessage-deflate; client_max_window_bits`) and compresses what it sends when
//! the server accepts; a server that declines gets the same traffic uncompressed, so
//! the row of a server started with `--no-deflate` is the baseline of the others.
//!
//! - The chat: `receivers` clients on `/ws` get every message posted with
//!   `POST /messages` (varied chat lines). One receiver, the last to join, is
//!   connected through the test kit's counting proxy: bytes down per chat message. The server's CPU time
//!   over the whole fan-out, divided by the copies delivered, is its cost per
//!   delivery, compression included (each connection compresses for itself).
//! - The echo: typical JSON documents (one record, and a page of records) sent to
//!   `/echo` and read back, through the proxy for the bytes up and down, then again on
//!   a direct connection for the server's CPU time per message (inflating what
//!   arrives, deflating what goes back).
//! - Memory: `idle_connections` connections to `/echo` that each exchanged one JSON
//!   message and then stay idle; the server's RSS growth per connection. With context
//!   takeover each keeps its compressor and decompressor between messages, without it
//!   neither (the wire crate makes them at the first message and drops them after
//!   each), and smaller window bits make them smaller.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use wsse_testkit::proxy::{Faults, FlakyProxy};
use wsse_testkit::ws::{RawEvent, RawWs};
use wsse_wire::deflate::CLIENT_OFFER;
use wsse_wire::message::Message;

use crate::net::post_chat;
use crate::procfs::{ServerCpu, rss_bytes};

/// How long one message may take to arrive before the run fails.
const STEP: Duration = Duration::from_secs(10);

/// The bounds of one compression run.
#[derive(Debug, Clone)]
pub struct CompressionOptions {
    /// The server.
    pub addr: SocketAddr,
    /// Its process id, for `/proc/PID/stat` and `/proc/PID/status`.
    pub pid: u32,
    /// Chat messages posted, and JSON documents echoed for the bytes.
    pub messages: u64,
    /// JSON documents echoed for the server's CPU time: more, since `/proc` counts
    /// it in 10 ms ticks.
    pub cpu_messages: u64,
    /// Chat clients receiving every message.
    pub receivers: u64,
    /// Idle connections for the memory measurement.
    pub idle_connections: u64,
    /// How long to wait before each memory reading.
    pub settle: Duration,
}

/// Bytes and CPU time for one kind of echoed JSON document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EchoRow {
    /// Records in the document.
    pub records: usize,
    /// The document's length, bytes (the mean over the documents sent).
    pub json_bytes: f64,
    /// Bytes up per message (the client's masked frame).
    pub up_bytes: f64,
    /// Bytes down per message (the server's frame).
    pub down_bytes: f64,
    /// The server's CPU time per message echoed, µs.
    pub server_cpu_us: f64,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompressionResult {
    /// The server's `Sec-WebSocket-Extensions` answer, or `None` when it declined.
    pub agreed: Option<String>,
    /// The chat message's JSON as it arrives, bytes (the mean).
    pub chat_json_bytes: f64,
    /// Bytes down per chat message on one receiver.
    pub chat_bytes: f64,
    /// Copies delivered in the fan-out.
    pub chat_deliveries: u64,
    /// The server's CPU time per copy delivered, µs.
    pub chat_cpu_us_per_delivery: f64,
    /// One row per echoed document kind.
    pub echo: Vec<EchoRow>,
    /// Connections held for the memory measurement.
    pub idle_connections: u64,
    /// (RSS with them − RSS before) / connections, bytes.
    pub idle_bytes_per_connection: f64,
}

/// The words chat lines are made of: plain text, no quotes or backslashes (the lines
/// go into the JSON of `POST /messages` as they are).
const WORDS: [&str; 48] = [
    "the",
    "build",
    "is",
    "green",
    "again",
    "did",
    "anyone",
    "run",
    "tests",
    "behind",
    "nginx",
    "with",
    "a",
    "timeout",
    "yes",
    "this",
    "morning",
    "pings",
    "keep",
    "it",
    "open",
    "lunch",
    "at",
    "noon",
    "sure",
    "can",
    "someone",
    "review",
    "my",
    "pull",
    "request",
    "about",
    "reconnecting",
    "looking",
    "now",
    "good",
    "catch",
    "fixing",
    "pushed",
    "thanks",
    "I",
    "think",
    "we",
    "should",
    "merge",
    "before",
    "release",
    "ok",
];

/// Chat line number `index`: four to fifteen words, picked by a fixed pseudo-random
/// sequence, so that lines share words as people's do but never repeat whole (a
/// repeated line would flatter context takeover).
pub fn chat_line(index: u64) -> String {
    let mut state = index
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let count = 4 + next() % 12;
    (0..count)
        .map(|_| WORDS[next() % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A typical JSON document of an API: `records` orders with their customer and items,
/// the numbers varied by `seed` so that no two documents are the same.
pub fn json_document(records: usize, seed: u64) -> String {
    let mut orders = Vec::with_capacity(records);
    for index in 0..records as u64 {
        let id = 100_000 + seed * 97 + index * 13;
        let quantity = 1 + (seed + index) % 5;
        let cents = 499 + (seed * 31 + index * 17) % 9500;
        orders.push(format!(
            "{{\"id\":{id},\"status\":\"{}\",\"created_at\":\"2026-12-{:02}T{:02}:{:02}:{:02}Z\",\
             \"customer\":{{\"id\":{},\"name\":\"Customer {}\",\"email\":\"customer{}@example.com\"}},\
             \"items\":[{{\"sku\":\"SKU-{:05}\",\"quantity\":{quantity},\"unit_price\":{}.{:02}}}],\
             \"total\":{}.{:02}}}",
            ["paid", "shipped", "delivered", "refunded"][((seed + index) % 4) as usize],
            1 + (id % 28),
            id % 24,
            id % 60,
            (id * 7) % 60,
            id % 1000,
            id % 1000,
            id % 1000,
            id % 100_000,
            cents / 100,
            cents % 100,
            cents * quantity / 100,
            cents * quantity % 100,
        ));
    }
    format!(
        "{{\"page\":{seed},\"count\":{records},\"orders\":[{}]}}",
        orders.join(",")
    )
}

/// Runs the compression measurements.
///
/// # Errors
///
/// When a connection fails, a message does not come back, or `/proc` cannot be read.
pub async fn run(options: &CompressionOptions) -> Result<CompressionResult, String> {
    let proxy = FlakyProxy::start(options.addr, Faults::default())
        .await
        .map_err(|error| format!("starting a proxy: {error}"))?;
    let agreed = {
        let probe = connect(options.addr, "/echo").await?;
        probe
            .head
            .header("Sec-WebSocket-Extensions")
            .map(str::to_owned)
    };
    let chat = chat_fanout(options, &proxy).await?;
    let mut echo = Vec::new();
    for records in [1, 20] {
        echo.push(echo_row(options, &proxy, records).await?);
    }
    let idle_bytes_per_connection = idle_memory(options).await?;
    Ok(CompressionResult {
        agreed,
        chat_json_bytes: chat.json_bytes,
        chat_bytes: chat.bytes,
        chat_deliveries: chat.deliveries,
        chat_cpu_us_per_delivery: chat.cpu_us_per_delivery,
        echo,
        idle_connections: options.idle_connections,
        idle_bytes_per_connection,
    })
}

async fn connect(addr: SocketAddr, path: &str) -> Result<RawWs, String> {
    RawWs::connect(addr, path, &[("Sec-WebSocket-Extensions", CLIENT_OFFER)]).await
}

/// The next text message, answering nothing (the bench servers' heartbeat is an hour).
async fn next_text(socket: &mut RawWs, wait: Duration) -> Result<String, String> {
    loop {
        match socket.next(wait).await? {
            RawEvent::Message(Message::Text(text)) => return Ok(text),
            RawEvent::Message(Message::Ping(_) | Message::Pong(_)) => {}
            other => return Err(format!("expected a text message, got {other:?}")),
        }
    }
}

/// Reads and drops whatever arrives until nothing has for `quiet`.
async fn drain(socket: &mut RawWs, quiet: Duration) -> Result<(), String> {
    loop {
        match socket.next(quiet).await {
            Ok(RawEvent::Message(_)) => {}
            Ok(other) => return Err(format!("the chat ended: {other:?}")),
            // Nothing within `quiet`: drained.
            Err(_) => return Ok(()),
        }
    }
}

struct ChatMeasurement {
    json_bytes: f64,
    bytes: f64,
    deliveries: u64,
    cpu_us_per_delivery: f64,
}

async fn chat_fanout(
    options: &CompressionOptions,
    proxy: &FlakyProxy,
) -> Result<ChatMeasurement, String> {
    let mut receivers = Vec::new();
    for index in 1..options.receivers.max(1) {
        receivers.push(connect(options.addr, &format!("/ws?name=r{index}")).await?);
    }
    // The counted receiver joins last, so that fewer arrivals reach it; it is first
    // in the list.
    receivers.insert(0, connect(proxy.addr(), "/ws?name=r0").await?);
    // The welcomes, histories and presence updates: not part of the measurement. The
    // server sends presence at most every 250 ms, so a second of quiet has them all.
    try_join_all(
        receivers
            .iter_mut()
            .map(|receiver| drain(receiver, Duration::from_secs(1))),
    )
    .await?;
    let messages = options.messages;
    let bytes_before = proxy.bytes_down();
    let cpu = ServerCpu::start(&[options.pid])?;
    let post = async {
        for index in 0..messages {
            post_chat(options.addr, &chat_line(index)).await?;
        }
        Ok::<(), String>(())
    };
    let receive = try_join_all(receivers.iter_mut().map(|receiver| async move {
        let mut json_bytes = 0;
        let mut got = 0;
        while got < messages {
            let text = next_text(receiver, STEP).await?;
            if text.starts_with("{\"type\":\"message\"") {
                json_bytes += text.len();
                got += 1;
            }
        }
        Ok::<usize, String>(json_bytes)
    }));
    let ((), json_totals) = tokio::try_join!(post, receive)?;
    let seconds = cpu.seconds()?.unwrap_or_default();
    let deliveries = messages * receivers.len() as u64;
    Ok(ChatMeasurement {
        json_bytes: json_totals[0] as f64 / messages as f64,
        bytes: (proxy.bytes_down() - bytes_before) as f64 / messages as f64,
        deliveries,
        cpu_us_per_delivery: seconds * 1e6 / deliveries as f64,
    })
}

/// Sends `count` documents of `records` records on `socket` and reads each back;
/// returns their total length.
async fn echo_documents(socket: &mut RawWs, records: usize, count: u64) -> Result<usize, String> {
    let mut total = 0;
    for seed in 0..count {
        let document = json_document(records, seed);
        socket.send_text_as_agreed(&document).await?;
        let back = next_text(socket, STEP).await?;
        if back != document {
            return Err("/echo answered something else".to_owned());
        }
        total += document.len();
    }
    Ok(total)
}

async fn echo_row(
    options: &CompressionOptions,
    proxy: &FlakyProxy,
    records: usize,
) -> Result<EchoRow, String> {
    let count = options.messages;
    let mut through_proxy = connect(proxy.addr(), "/echo").await?;
    let (up_before, down_before) = (proxy.bytes_up(), proxy.bytes_down());
    let json_total = echo_documents(&mut through_proxy, records, count).await?;
    let (up, down) = (
        proxy.bytes_up() - up_before,
        proxy.bytes_down() - down_before,
    );
    drop(through_proxy);

    let cpu_count = options.cpu_messages.max(1);
    let mut direct = connect(options.addr, "/echo").await?;
    let cpu = ServerCpu::start(&[options.pid])?;
    echo_documents(&mut direct, records, cpu_count).await?;
    let seconds = cpu.seconds()?.unwrap_or_default();
    Ok(EchoRow {
        records,
        json_bytes: json_total as f64 / count as f64,
        up_bytes: up as f64 / count as f64,
        down_bytes: down as f64 / count as f64,
        server_cpu_us: seconds * 1e6 / cpu_count as f64,
    })
}

/// RSS growth per `/echo` connection that exchanged one document and went idle.
async fn idle_memory(options: &CompressionOptions) -> Result<f64, String> {
    let open = |_| async {
        let mut socket = connect(options.addr, "/echo").await?;
        echo_documents(&mut socket, 1, 1).await?;
        Ok::<RawWs, String>(socket)
    };
    // A few first, so that one-time allocations are not counted per connection.
    let warm_up = try_join_all((0..10).map(open)).await?;
    tokio::time::sleep(options.settle).await;
    let before = rss_bytes(options.pid)?;
    let mut held = Vec::new();
    for batch in 0..options.idle_connections.div_ceil(100) {
        let size = (options.idle_connections - batch * 100).min(100);
        held.extend(try_join_all((0..size).map(open)).await?);
    }
    tokio::time::sleep(options.settle).await;
    let after = rss_bytes(options.pid)?;
    drop(held);
    drop(warm_up);
    Ok((after as f64 - before as f64) / options.idle_connections.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_json_and_differ_by_seed() {
        for records in [1, 20] {
            let first: serde_json::Value =
                serde_json::from_str(&json_document(records, 1)).expect("JSON");
            assert_eq!(first["orders"].as_array().map(Vec::len), Some(records));
            assert_ne!(json_document(records, 1), json_document(records, 2));
        }
        assert!(json_document(20, 0).len() > 10 * json_document(1, 0).len());
    }

    #[test]
    fn chat_lines_vary_and_need_no_escaping() {
        let lines: Vec<String> = (0..500).map(chat_line).collect();
        let distinct: std::collections::BTreeSet<&String> = lines.iter().collect();
        assert!(distinct.len() > 490, "{} distinct of 500", distinct.len());
        for line in &lines {
            let words = line.split(' ').count();
            assert!((4..16).contains(&words), "{line}");
        }
        for word in WORDS {
            assert!(!word.contains(['"', '\\', ' ']), "{word}");
        }
    }
}
