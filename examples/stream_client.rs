//! An SSE client for the terminal that behaves like a browser's `EventSource`.
//!
//! ```text
//! cargo run --example stream_client -- http://127.0.0.1:3001/events
//! cargo run --example stream_client -- "http://127.0.0.1:3001/stream?prompt=hi" --until-done
//! cargo run --example stream_client -- http://127.0.0.1:3001/events --json --max-events 10
//! ```
//!
//! Prints one line per event on stdout (`--json`:
//! `{"type":EVENT_TYPE,"data":DATA,"id":LAST_EVENT_ID}`), connection state changes
//! on stderr. After a drop it waits the server's `retry:` (3 s without one) and
//! reconnects with `Last-Event-ID`; a stream that sent no byte for 2.5 heartbeat
//! intervals (learnt from the servers' heartbeat event, 15 s until then) counts as
//! dropped. It stops for good, with status 1, on a 204, on
//! any other status that is not 2xx and on a content type that is not
//! `text/event-stream`.
//!
//! The logic lives in `wsse_clients::event_source`; this file is the command line.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use wsse_clients::{EventSource, EventSourceOptions, Update};
use wsse_wire::sse::ParsedEvent;

/// Read a Server-Sent Events stream, reconnecting and resuming like EventSource.
#[derive(Parser)]
struct Arguments {
    /// The stream's address.
    #[arg(value_name = "http://HOST:PORT/PATH")]
    url: String,

    /// Print each event as one line of JSON: {"type":...,"data":...,"id":...}.
    #[arg(long)]
    json: bool,

    /// Exit (status 0) after an event whose data is [DONE].
    #[arg(long)]
    until_done: bool,

    /// Exit (status 0) after this many events.
    #[arg(long, value_name = "N")]
    max_events: Option<u64>,

    /// For tests only: never wait longer than this before reconnecting, whatever the
    /// server's retry: says (fault tests cut a stream many times and cannot wait 3 s
    /// for each; a separate test proves that retry: itself is honoured).
    #[arg(long, value_name = "MS")]
    max_retry_delay_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let options = EventSourceOptions {
        max_reconnection_time: arguments.max_retry_delay_ms.map(Duration::from_millis),
        ..EventSourceOptions::default()
    };
    let mut source = match EventSource::new(&arguments.url, options) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("stream_client: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut events = 0;
    loop {
        match source.next().await {
            Ok(Update::Event(event)) => {
                show(&event, arguments.json);
                events += 1;
                let done = arguments.until_done && event.data == wsse_app::tokens::DONE;
                let enough = arguments.max_events.is_some_and(|limit| events >= limit);
                if done || enough {
                    return ExitCode::SUCCESS;
                }
            }
            Ok(update) => eprintln!("stream_client: {update}"),
            Err(error) => {
                eprintln!("stream_client: error: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
}

fn show(event: &ParsedEvent, json: bool) {
    if json {
        // Written by hand to keep the keys in this order (serde_json sorts them).
        let string = |text: &str| serde_json::Value::from(text).to_string();
        println!(
            "{{\"type\":{},\"data\":{},\"id\":{}}}",
            string(&event.event_type),
            string(&event.data),
            string(&event.last_event_id)
        );
    } else if event.last_event_id.is_empty() {
        println!("{}: {}", event.event_type, event.data);
    } else {
        println!(
            "[{}] {}: {}",
            event.last_event_id, event.event_type, event.data
        );
    }
}
