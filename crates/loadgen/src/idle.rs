//! Scenario 3, idle memory: how much the server's resident memory grows per idle
//! connection.
//!
//! The load generator opens the connections itself, as cheaply as it can (a
//! hand-written upgrade or GET on a bare socket, then nothing), spread over many
//! 127.0.0.x source addresses. It reads the server's `VmRSS` before and after,
//! waiting `settle` for the server to finish its part, and divides.
//!
//! WebSocket connections go to `/echo`, not `/ws`: ten thousand chat clients would
//! each announce their arrival to all the others (fifty million presence messages),
//! which measures the hub, not an idle connection. SSE connections go to `/events`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use tokio::net::TcpStream;

use crate::net::{connect_many, raw_get, raw_ws_upgrade, source_for};
use crate::procfs::rss_bytes;

/// Which kind of idle connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An upgraded `/echo` WebSocket.
    Ws,
    /// An open `/events` stream.
    Sse,
}

/// The bounds of one idle-memory run.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    /// The server.
    pub addr: SocketAddr,
    /// Its process id, for `/proc/PID/status`.
    pub pid: u32,
    /// WebSocket or SSE.
    pub kind: Kind,
    /// How many connections.
    pub connections: u64,
    /// How long to wait before each reading.
    pub settle: Duration,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleResult {
    /// WebSocket or SSE.
    pub kind: Kind,
    /// Connections held open.
    pub connections: u64,
    /// Server RSS before, bytes.
    pub rss_before: u64,
    /// Server RSS with every connection open, bytes.
    pub rss_after: u64,
    /// (after − before) / connections.
    pub bytes_per_connection: f64,
}

async fn open(options: &IdleOptions, index: u64) -> Result<TcpStream, String> {
    let source = Some(source_for(index));
    match options.kind {
        Kind::Ws => raw_ws_upgrade(options.addr, "/echo", source).await,
        Kind::Sse => {
            let headers = [("Accept", "text/event-stream")];
            let (stream, status, _, _) = raw_get(options.addr, "/events", &headers, source).await?;
            if status == 200 {
                Ok(stream)
            } else {
                Err(format!("/events answered {status}"))
            }
        }
    }
}

/// Runs one idle-memory measurement.
///
/// # Errors
///
/// When a connection fails or `/proc` cannot be read.
pub async fn run(options: &IdleOptions) -> Result<IdleResult, String> {
    // A few connections first, so that one-time allocations (the first connection's
    // buffers, thread-local caches) are not counted as per-connection cost.
    let warm_up = connect_many(10, 10, |index| open(options, index)).await?;
    tokio::time::sleep(options.settle).await;
    let rss_before = rss_bytes(options.pid)?;
    let held = connect_many(options.connections, 100, |index| open(options, index + 10)).await?;
    tokio::time::sleep(options.settle).await;
    let rss_after = rss_bytes(options.pid)?;
    drop(held);
    drop(warm_up);
    Ok(IdleResult {
        kind: options.kind,
        connections: options.connections,
        rss_before,
        rss_after,
        bytes_per_connection: (rss_after as f64 - rss_before as f64) / options.connections as f64,
    })
}
