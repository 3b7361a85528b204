//! Scenario 4, token streaming: `streams` clients read `/stream` over and over for
//! `duration`, each recording the gap between two tokens of a stream.
//!
//! With the server's `--token-interval-ms 0` one stream measures how fast a server
//! can push events; with 20 ms and a thousand streams, how steadily it keeps a
//! thousand timers (the gap's deviation from the interval is the jitter) and how much
//! of its core that costs.

use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::bench_message::clock_nanos;
use crate::net::{SseReader, source_for};
use crate::procfs::{ServerCpu, own_cpu_seconds};
use crate::stats::{Summary, histogram, per_unit_micros, record};

/// The bounds of one token-stream run.
#[derive(Debug, Clone)]
pub struct TokensOptions {
    /// The server.
    pub addr: SocketAddr,
    /// Its process id, for its CPU time (optional).
    pub pid: Option<u32>,
    /// Concurrent streams.
    pub streams: u64,
    /// How long to read.
    pub duration: Duration,
    /// The server's `--token-interval-ms`, to compute the jitter.
    pub interval: Duration,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokensResult {
    /// Concurrent streams.
    pub streams: u64,
    /// The server's token interval, ms.
    pub interval_ms: f64,
    /// Token events received.
    pub events: u64,
    /// Token events per second, all streams together.
    pub events_per_second: f64,
    /// Streams read to their `[DONE]`.
    pub completed_streams: u64,
    /// Time between two tokens of a stream.
    pub gap: Summary,
    /// |gap − interval|.
    pub jitter: Summary,
    /// The server's CPU time over the run, in percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// The same CPU time in seconds (streams opened and ended included: a stream per
    /// prompt is part of the work).
    #[serde(default)]
    pub server_cpu_seconds: Option<f64>,
    /// The load generator's own CPU time over the run, in percent of its one core:
    /// near 100 %, it is the reader, not the server, that delays tokens.
    pub loadgen_cpu_percent: f64,
}

impl TokensResult {
    /// The server's CPU time per token delivered, microseconds.
    pub fn server_micros_per_token(&self) -> Option<f64> {
        per_unit_micros(self.server_cpu_seconds, self.events)
    }
}

struct StreamStats {
    events: u64,
    completed: u64,
    gaps: Histogram<u64>,
    jitter: Histogram<u64>,
}

async fn read_streams(
    addr: SocketAddr,
    index: u64,
    interval: u64,
    end: tokio::time::Instant,
) -> Result<StreamStats, String> {
    let mut stats = StreamStats {
        events: 0,
        completed: 0,
        gaps: histogram(),
        jitter: histogram(),
    };
    let mut round = 0;
    while tokio::time::Instant::now() < end {
        let path = format!("/stream?prompt=bench-{index}-{round}");
        round += 1;
        let mut reader = SseReader::open(addr, &path, &[], Some(source_for(index))).await?;
        let mut previous: Option<u64> = None;
        loop {
            let event = tokio::select! {
                event = reader.next_event() => event?,
                () = tokio::time::sleep_until(end) => return Ok(stats),
            };
            let Some(event) = event else { break };
            // Tokens and [DONE] are plain messages; the heartbeat event that opens
            // every stream is not a token.
            if event.event_type != "message" {
                continue;
            }
            if event.data == "[DONE]" {
                stats.completed += 1;
                break;
            }
            let now = clock_nanos();
            stats.events += 1;
            if let Some(previous) = previous {
                let gap = now - previous;
                record(&mut stats.gaps, gap);
                record(&mut stats.jitter, gap.abs_diff(interval));
            }
            previous = Some(now);
        }
    }
    Ok(stats)
}

/// Runs one token-stream measurement.
///
/// # Errors
///
/// When a stream cannot be opened or read.
pub async fn run(options: &TokensOptions) -> Result<TokensResult, String> {
    let server_cpu = ServerCpu::start(options.pid.as_slice())?;
    let own_cpu_before = own_cpu_seconds()?;
    let started = tokio::time::Instant::now();
    let end = started + options.duration;
    let interval = u64::try_from(options.interval.as_nanos()).unwrap_or(u64::MAX);
    let tasks: Vec<_> = (0..options.streams)
        .map(|index| tokio::spawn(read_streams(options.addr, index, interval, end)))
        .collect();
    let (mut gaps, mut jitter) = (histogram(), histogram());
    let (mut events, mut completed) = (0, 0);
    for task in tasks {
        let stats = task
            .await
            .map_err(|error| format!("a stream task panicked: {error}"))??;
        events += stats.events;
        completed += stats.completed;
        gaps.add(&stats.gaps).map_err(|error| error.to_string())?;
        jitter
            .add(&stats.jitter)
            .map_err(|error| error.to_string())?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let loadgen_cpu_percent = (own_cpu_seconds()? - own_cpu_before) / elapsed * 100.0;
    let server_cpu_seconds = server_cpu.seconds()?;
    let server_cpu_percent = server_cpu_seconds.map(|seconds| seconds / elapsed * 100.0);
    Ok(TokensResult {
        streams: options.streams,
        interval_ms: options.interval.as_secs_f64() * 1000.0,
        events,
        events_per_second: events as f64 / options.duration.as_secs_f64(),
        completed_streams: completed,
        gap: Summary::of(&gaps),
        jitter: Summary::of(&jitter),
        server_cpu_percent,
        server_cpu_seconds,
        loadgen_cpu_percent,
    })
}
