//! A TCP proxy that cuts, delays or stalls connections on purpose, to watch clients
//! reconnect and resume.
//!
//! ```text
//! cargo run --example axum                     # the server, on :3001
//! cargo run --example flaky_proxy -- --listen 127.0.0.1:4000 --upstream 127.0.0.1:3001 \
//!     --cut-every-bytes 2000
//! cargo run --example chat_client -- ws://127.0.0.1:4000/ws --name ada
//! cargo run --example stream_client -- http://127.0.0.1:4000/events
//! ```
//!
//! Prints `listening on http://IP:PORT` on stdout like the servers, and one line per
//! connection event (opened, cut, stalled, closed) on stderr. Ctrl-C stops it.
//! The proxy itself is `wsse_testkit::proxy::FlakyProxy`, which the fault tests use.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::sync::broadcast::error::RecvError;
use wsse_testkit::proxy::{Faults, FlakyProxy};

/// A TCP proxy that misbehaves: cuts connections, adds latency, stalls.
#[derive(Parser)]
struct Arguments {
    /// Where to listen.
    #[arg(
        long,
        visible_alias = "addr",
        value_name = "IP:PORT",
        default_value = "127.0.0.1:4000"
    )]
    listen: SocketAddr,

    /// The server to pass connections to.
    #[arg(long, value_name = "IP:PORT")]
    upstream: SocketAddr,

    /// Cut every connection after this many bytes (both directions counted together).
    #[arg(long, value_name = "BYTES")]
    cut_every_bytes: Option<u64>,

    /// Cut every connection after a random number of bytes between MIN and MAX.
    #[arg(long, value_name = "MIN-MAX", value_parser = parse_bounds)]
    cut_randomly: Option<(u64, u64)>,

    /// Hold every piece of data this many milliseconds, in each direction.
    #[arg(long, value_name = "MS")]
    latency_ms: Option<u64>,

    /// After this many bytes, pass nothing more and keep the connection open.
    #[arg(long, value_name = "BYTES")]
    stall_after_bytes: Option<u64>,
}

/// `MIN-MAX`, like `500-4000`.
fn parse_bounds(text: &str) -> Result<(u64, u64), String> {
    let (low, high) = text
        .split_once('-')
        .ok_or_else(|| format!("expected MIN-MAX, like 500-4000, got {text:?}"))?;
    let number = |part: &str| {
        part.trim()
            .parse::<u64>()
            .map_err(|error| format!("{part:?}: {error}"))
    };
    let (low, high) = (number(low)?, number(high)?);
    if low > high {
        return Err(format!("MIN {low} is above MAX {high}"));
    }
    Ok((low, high))
}

#[tokio::main]
async fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let faults = Faults {
        cut_after_bytes: arguments.cut_every_bytes,
        cut_randomly: arguments.cut_randomly,
        latency: arguments.latency_ms.map(Duration::from_millis),
        stall_after_bytes: arguments.stall_after_bytes,
    };
    let proxy = match FlakyProxy::bind(arguments.listen, arguments.upstream, faults.clone()).await {
        Ok(proxy) => proxy,
        Err(error) => {
            eprintln!(
                "flaky_proxy: cannot listen on {}: {error}",
                arguments.listen
            );
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", proxy.addr());
    eprintln!(
        "flaky_proxy: passing connections to {} with {faults:?}",
        proxy.upstream()
    );

    let mut events = proxy.events();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => eprintln!("flaky_proxy: {event}"),
                Err(RecvError::Lagged(missed)) => {
                    eprintln!("flaky_proxy: ({missed} events not shown: too many at once)");
                }
                Err(RecvError::Closed) => return,
            }
        }
    });

    wsse_app::shutdown_signal().await;
    eprintln!(
        "flaky_proxy: stopping after {} connections, {} cut, {} stalled",
        proxy.connections(),
        proxy.cuts(),
        proxy.stalls()
    );
    proxy.stop();
    ExitCode::SUCCESS
}
