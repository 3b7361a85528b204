//! Scenario 1, broadcast fan-out: one sender posts chat messages over a WebSocket,
//! `clients` receivers get every one over `/ws` or over `/events`.
//!
//! Each message carries its index and send time ([`crate::bench_message`]); each receiver
//! records the delivery latency of every copy it gets and [`DeliveryCount`]s what arrived.
//! At a fixed rate the sender keeps a timer; at saturation (`rate` 0) it sends as fast
//! as the receivers keep up, with at most `window` messages not yet delivered to
//! everyone on average, well inside the hub's 1000-message history, so that a
//! receiver that lags catches up from the ring instead of losing messages.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;
use wsse_wire::sse::Item;

use crate::bench_message::{client_message, clock_nanos, encode_content, parse_chat_json};
use crate::delivery_count::{DeliveryCount, lost};
use crate::net::{SseReader, Ws, connect_many, next_text, source_for, ws_connect};
use crate::procfs::{ServerCpu, own_cpu_seconds};
use crate::stats::{Summary, histogram, per_unit_micros, record};

/// How the receivers listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `GET /ws`.
    Ws,
    /// `GET /events`.
    Sse,
}

impl Transport {
    /// `ws` or `sse`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
        }
    }
}

/// The bounds of one fan-out run.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    /// The server.
    pub addr: SocketAddr,
    /// `/ws` or `/events`.
    pub transport: Transport,
    /// How many receivers.
    pub clients: u64,
    /// Broadcasts per second; 0 for saturation.
    pub rate: f64,
    /// How long the sender sends.
    pub duration: Duration,
    /// Content size in bytes (at least 32).
    pub size: usize,
    /// At saturation: how many messages may be on their way on average.
    pub window: u64,
    /// Pause after everyone connected, for the join announcements to drain.
    pub settle: Duration,
    /// Where the sender connects, if not to `addr`: another instance of a chat shared
    /// through Redis, to time the delivery across instances.
    pub sender_addr: Option<SocketAddr>,
    /// The server's processes, whose CPU time over the sending is counted (the
    /// instances and their Redis when the chat is shared).
    pub server_pids: Vec<u32>,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutResult {
    /// `ws` or `sse`.
    pub transport: Transport,
    /// Receivers.
    pub clients: u64,
    /// Broadcasts per second asked for; 0 for saturation.
    pub rate: f64,
    /// Content size.
    pub size: usize,
    /// Messages the sender sent.
    pub sent: u64,
    /// Copies delivered to receivers, in order.
    pub deliveries: u64,
    /// Deliveries per second, from the first send to the last delivery.
    pub deliveries_per_second: f64,
    /// Copies that never arrived (sent × clients − deliveries).
    pub lost: u64,
    /// Copies that arrived twice or out of order.
    pub out_of_order: u64,
    /// Send-to-delivery latency of every copy.
    pub latency: Summary,
    /// Seconds from the first send to the last delivery.
    pub seconds: f64,
    /// The load generator's own CPU time over the same span, seconds: its share of a
    /// delivery's latency. At a fixed rate, divided by the broadcasts sent, it is how
    /// long the load generator's one core needs to take in one broadcast (every copy
    /// read, decoded and timed), a floor under the p99 that no server can go below.
    pub loadgen_cpu_seconds: f64,
    /// The server processes' CPU time over the same span, seconds, when their pids
    /// were given: what the deliveries cost the server, steadier on a shared machine
    /// than any latency.
    #[serde(default)]
    pub server_cpu_seconds: Option<f64>,
}

impl FanoutResult {
    /// The load generator's CPU time per broadcast, microseconds.
    pub fn loadgen_micros_per_broadcast(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.loadgen_cpu_seconds * 1e6 / self.sent as f64
        }
    }

    /// The server's CPU time per copy delivered, microseconds.
    pub fn server_micros_per_delivery(&self) -> Option<f64> {
        per_unit_micros(self.server_cpu_seconds, self.deliveries)
    }
}

/// What every receiver of a run adds to.
pub(crate) struct Shared {
    pub(crate) histogram: Mutex<Histogram<u64>>,
    pub(crate) delivered: AtomicU64,
    pub(crate) last_delivery: AtomicU64,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            histogram: Mutex::new(histogram()),
            delivered: AtomicU64::new(0),
            last_delivery: AtomicU64::new(0),
        }
    }

    /// Records a copy sent at `sent_at` and received at `now`.
    pub(crate) fn deliver(&self, sent_at: u64, now: u64) {
        record(
            &mut self
                .histogram
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            now.saturating_sub(sent_at),
        );
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.last_delivery.fetch_max(now, Ordering::Relaxed);
    }
}

pub(crate) enum Receiver {
    Ws(Box<Ws>),
    Sse(Box<SseReader>),
}

async fn open_receiver(options: &FanoutOptions, index: u64) -> Result<Receiver, String> {
    let source = Some(source_for(index));
    match options.transport {
        Transport::Ws => {
            let mut ws = ws_connect(options.addr, &format!("/ws?name=r{index}"), source).await?;
            // The welcome shows the subscription exists.
            next_text(&mut ws)
                .await
                .ok_or("the chat closed before its welcome")?;
            Ok(Receiver::Ws(Box::new(ws)))
        }
        Transport::Sse => {
            let mut reader = SseReader::open(options.addr, "/events", &[], source).await?;
            // `retry:` comes first, once the subscription exists.
            loop {
                match reader.next_item().await? {
                    Some(Item::Retry(_)) => break,
                    Some(_) => {}
                    None => return Err("the event stream ended at once".to_owned()),
                }
            }
            Ok(Receiver::Sse(Box::new(reader)))
        }
    }
}

/// Reads `receiver` until its stream ends or the task is aborted, counting into
/// `count`. No stop signal is polled next to the socket: registering its waker for
/// every message cost the load generator a few percent of its core, so the run
/// aborts these tasks instead and reads the counts they leave behind.
pub(crate) async fn receive(
    receiver: Receiver,
    shared: Arc<Shared>,
    count: Arc<Mutex<DeliveryCount>>,
) {
    // The receive time is read as soon as the message is out of the client library,
    // before the bench timestamp is looked for in its JSON.
    let on_text = |text: &str| {
        let now = clock_nanos();
        if let Some((index, sent_at)) = parse_chat_json(text)
            && count
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(index)
        {
            shared.deliver(sent_at, now);
        }
    };
    match receiver {
        Receiver::Ws(mut ws) => loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => on_text(text.as_str()),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        },
        Receiver::Sse(mut reader) => loop {
            match reader.next_item().await {
                Ok(Some(Item::Event(event))) => on_text(&event.data),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        },
    }
}

/// Runs one fan-out.
///
/// # Errors
///
/// When a client cannot connect or the sender's connection fails.
pub async fn run(options: &FanoutOptions) -> Result<FanoutResult, String> {
    let shared = Arc::new(Shared::new());
    let receivers =
        connect_many(options.clients, 50, |index| open_receiver(options, index)).await?;
    let tasks: Vec<_> = receivers
        .into_iter()
        .map(|receiver| {
            let count = Arc::new(Mutex::new(DeliveryCount::default()));
            let task = tokio::spawn(receive(receiver, Arc::clone(&shared), Arc::clone(&count)));
            (task, count)
        })
        .collect();

    let sender_addr = options.sender_addr.unwrap_or(options.addr);
    let sender = ws_connect(sender_addr, "/ws?name=sender", None).await?;
    let (mut sink, mut sender_stream) = sender.split();
    // The sender gets its own messages back too; read them so its socket never fills.
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = sender_stream.next().await {} });
    tokio::time::sleep(options.settle).await;

    let clients = options.clients;
    let cpu_before = own_cpu_seconds()?;
    let server_cpu = ServerCpu::start(&options.server_pids)?;
    let first_send = clock_nanos();
    let end = tokio::time::Instant::now() + options.duration;
    let mut ticker = (options.rate > 0.0).then(|| {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    let mut sent = 0_u64;
    while tokio::time::Instant::now() < end {
        match &mut ticker {
            Some(ticker) => {
                ticker.tick().await;
                // A tick can land after the end: sending then would run over.
                if tokio::time::Instant::now() >= end {
                    break;
                }
            }
            None => {
                // Closed loop: wait while too much is still on its way.
                while sent * clients
                    > shared.delivered.load(Ordering::Relaxed) + options.window * clients
                {
                    if tokio::time::Instant::now() >= end {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
        let content = encode_content(sent, clock_nanos(), options.size);
        sink.send(Message::text(client_message(&content)))
            .await
            .map_err(|error| format!("the sender's connection failed: {error}"))?;
        sent += 1;
    }
    // Wait for the last copies (at most a few seconds).
    let grace = tokio::time::Instant::now() + Duration::from_secs(5);
    while shared.delivered.load(Ordering::Relaxed) < sent * clients
        && tokio::time::Instant::now() < grace
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let loadgen_cpu_seconds = own_cpu_seconds()? - cpu_before;
    let server_cpu_seconds = server_cpu.seconds()?;
    let mut counts = Vec::with_capacity(tasks.len());
    for (task, _) in &tasks {
        task.abort();
    }
    for (task, count) in tasks {
        if let Err(error) = task.await
            && error.is_panic()
        {
            return Err(format!("a receiver panicked: {error}"));
        }
        counts.push(*count.lock().unwrap_or_else(PoisonError::into_inner));
    }
    drain.abort();
    let _ = sink.close().await;

    let deliveries: u64 = counts.iter().map(|count| count.received).sum();
    let last = shared
        .last_delivery
        .load(Ordering::Relaxed)
        .max(first_send + 1);
    let seconds = (last - first_send) as f64 / 1e9;
    let latency = Summary::of(
        &shared
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    Ok(FanoutResult {
        transport: options.transport,
        clients,
        rate: options.rate,
        size: options.size,
        sent,
        deliveries,
        deliveries_per_second: deliveries as f64 / seconds,
        lost: lost(sent, &counts),
        out_of_order: counts.iter().map(|count| count.out_of_order).sum(),
        latency,
        seconds,
        loadgen_cpu_seconds,
        server_cpu_seconds,
    })
}
