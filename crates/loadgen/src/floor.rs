//! Baselines that measure the machine instead of a server.
//!
//! [`tcp_echo_server`] is the cheapest echo server there is: plain TCP, no HTTP and no
//! WebSocket, one read and one write per message, on a single-threaded Tokio runtime
//! like the load generator's. `cargo xtask bench` starts it pinned to the servers'
//! core and runs the echo scenario against it with [`crate::echo::EchoOptions::plain_tcp`],
//! so its round trip is what the kernel, the loopback device, the wake-ups across two
//! cores and Tokio cost before any framework does anything.
//!
//! [`receive_cost`] is the fan-out's floor on the other side: the load generator
//! alone, timing the copies of a broadcast that are already in its sockets.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use wsse_testkit::http::find_head_end;

use crate::bench_message::{clock_nanos, encode_content};
use crate::delivery_count::{DeliveryCount, lost};
use crate::fanout::{Receiver, Shared, Transport, receive};
use crate::net::{SseReader, source_for, ws_connect};
use crate::stats::{Summary, histogram, record};

/// Listens on `addr`, prints `listening on http://IP:PORT` (the line
/// `wsse_testkit::process::ServerProcess` waits for) and echoes every byte of every
/// connection back, until the process is stopped.
///
/// # Errors
///
/// When the address cannot be bound.
pub async fn tcp_echo_server(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| format!("bind {addr}: {error}"))?;
    let local = listener
        .local_addr()
        .map_err(|error| format!("local address: {error}"))?;
    println!("listening on http://{local}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Like every client socket of the load generator, and like a server should.
        stream.set_nodelay(true).ok();
        tokio::spawn(echo(stream));
    }
}

async fn echo(mut stream: TcpStream) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                if stream.write_all(&buffer[..read]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The bounds of one [`receive_cost`] measurement.
#[derive(Debug, Clone)]
pub struct ReceiveCostOptions {
    /// `/ws` frames or `/events` chunks.
    pub transport: Transport,
    /// Receivers, as in the fan-out.
    pub clients: u64,
    /// Broadcasts to time, one after the other.
    pub broadcasts: u64,
    /// Content size in bytes (at least 32), as in the fan-out.
    pub size: usize,
}

/// What [`receive_cost`] measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiveCostResult {
    /// `ws` or `sse`.
    pub transport: Transport,
    /// Receivers.
    pub clients: u64,
    /// Broadcasts timed.
    pub broadcasts: u64,
    /// Copies lost (should be 0: this is loopback inside one process).
    pub lost: u64,
    /// For each broadcast, the time from the moment every copy sat in the receivers'
    /// sockets to the moment the last one was timed.
    pub per_broadcast: Summary,
}

/// The load generator alone: how long its fan-out receivers take to read, decode and
/// time one broadcast whose copies are all already waiting in their sockets.
///
/// The sending side lives in this process too, on plain sockets: after a WebSocket
/// handshake (or an SSE response head) each copy is one pre-encoded server frame (or
/// chunk) of the chat's JSON, written to every socket in one go before any receiver
/// runs. Nothing else is on the way, so the time until the last copy is timed is
/// the instrument's own cost of one broadcast to `clients` receivers: on a single
/// thread, the floor under every fan-out latency it reports.
///
/// # Errors
///
/// When a loopback connection fails.
pub async fn receive_cost(options: &ReceiveCostOptions) -> Result<ReceiveCostResult, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| format!("bind: {error}"))?;
    let addr = listener
        .local_addr()
        .map_err(|error| format!("local address: {error}"))?;
    let mut senders = Vec::with_capacity(options.clients as usize);
    let mut handshakes = Vec::with_capacity(options.clients as usize);
    let shared = Arc::new(Shared::new());
    let mut tasks = Vec::with_capacity(options.clients as usize);
    for index in 0..options.clients {
        let (receiver, sender) = tokio::try_join!(
            open(addr, options.transport, index),
            accept(&listener, options.transport)
        )?;
        let count = Arc::new(Mutex::new(DeliveryCount::default()));
        tasks.push((
            tokio::spawn(receive(receiver, Arc::clone(&shared), Arc::clone(&count))),
            count,
        ));
        match sender {
            Sender::Plain(stream) => senders.push(stream),
            Sender::Ws(ws) => handshakes.push(ws),
        }
    }
    let mut histogram = histogram();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for round in 0..options.broadcasts {
        let bytes = encoded(options.transport, round, options.size);
        // Unconstrained: Tokio's cooperative budget would otherwise make this task
        // yield after a hundred writes and let receivers start early.
        tokio::task::unconstrained(async {
            for stream in &mut senders {
                stream.write_all(&bytes).await?;
            }
            for ws in &mut handshakes {
                ws.get_mut().write_all(&bytes).await?;
            }
            Ok::<(), std::io::Error>(())
        })
        .await
        .map_err(|error| format!("writing a copy: {error}"))?;
        let written = clock_nanos();
        let expected = options.clients * (round + 1);
        let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
        while shared.delivered.load(Ordering::Relaxed) < expected {
            if tokio::time::Instant::now() >= give_up {
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        record(
            &mut histogram,
            shared
                .last_delivery
                .load(Ordering::Relaxed)
                .saturating_sub(written),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut counts = Vec::with_capacity(tasks.len());
    for (task, count) in tasks {
        task.abort();
        let _ = task.await;
        counts.push(*count.lock().unwrap_or_else(PoisonError::into_inner));
    }
    Ok(ReceiveCostResult {
        transport: options.transport,
        clients: options.clients,
        broadcasts: options.broadcasts,
        lost: lost(options.broadcasts, &counts),
        per_broadcast: Summary::of(&histogram),
    })
}

/// The sending end of one loopback receiver.
enum Sender {
    Plain(TcpStream),
    Ws(Box<WebSocketStream<TcpStream>>),
}

async fn open(addr: SocketAddr, transport: Transport, index: u64) -> Result<Receiver, String> {
    let source = Some(source_for(index));
    Ok(match transport {
        Transport::Ws => Receiver::Ws(Box::new(ws_connect(addr, "/ws", source).await?)),
        Transport::Sse => Receiver::Sse(Box::new(
            SseReader::open(addr, "/events", &[], source).await?,
        )),
    })
}

async fn accept(listener: &TcpListener, transport: Transport) -> Result<Sender, String> {
    let (mut stream, _) = listener
        .accept()
        .await
        .map_err(|error| format!("accept: {error}"))?;
    stream.set_nodelay(true).ok();
    match transport {
        Transport::Ws => Ok(Sender::Ws(Box::new(
            tokio_tungstenite::accept_async(stream)
                .await
                .map_err(|error| format!("WebSocket handshake: {error}"))?,
        ))),
        Transport::Sse => {
            let mut request = Vec::new();
            let mut buffer = [0; 1024];
            while find_head_end(&request).is_none() {
                let read = stream
                    .read(&mut buffer)
                    .await
                    .map_err(|error| format!("reading the request: {error}"))?;
                if read == 0 {
                    return Err("the client closed before its request".to_owned());
                }
                request.extend_from_slice(&buffer[..read]);
            }
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                      transfer-encoding: chunked\r\n\r\n",
                )
                .await
                .map_err(|error| format!("writing the head: {error}"))?;
            Ok(Sender::Plain(stream))
        }
    }
}

/// Broadcast `round` as the chat's servers send it: its JSON in one unmasked
/// WebSocket text frame, or as an SSE event in one HTTP chunk.
fn encoded(transport: Transport, round: u64, size: usize) -> Vec<u8> {
    let content = encode_content(round, clock_nanos(), size);
    let json = format!(
        "{{\"type\":\"message\",\"seq\":{round},\"from\":\"floor\",\"content\":\"{content}\",\"ts\":0}}"
    );
    match transport {
        Transport::Ws => {
            let mut frame = vec![0x81];
            match json.len() {
                length @ 0..=125 => frame.push(length as u8),
                length @ 126..=65535 => {
                    frame.push(126);
                    frame.extend_from_slice(&(length as u16).to_be_bytes());
                }
                length => {
                    frame.push(127);
                    frame.extend_from_slice(&(length as u64).to_be_bytes());
                }
            }
            frame.extend_from_slice(json.as_bytes());
            frame
        }
        Transport::Sse => {
            let event = format!("id: {round}\nevent: message\ndata: {json}\n\n");
            format!("{:x}\r\n{event}\r\n", event.len()).into_bytes()
        }
    }
}
