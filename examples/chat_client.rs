//! A chat client for the terminal that reconnects and resumes by itself.
//!
//! ```text
//! cargo run --example chat_client -- ws://127.0.0.1:3001/ws --name ada
//! cargo run --example chat_client -- ws://127.0.0.1:3001/ws --json --since 0
//! cargo run --example chat_client -- --autobahn ws://127.0.0.1:9001   # see cargo xtask autobahn
//! ```
//!
//! Each line typed (stdin) is sent as a chat message; what arrives is printed on
//! stdout, one line per server message (`--json`: the JSON exactly as received).
//! Connection state changes go to stderr. At the end of stdin it waits until the
//! server has confirmed every line sent, then closes with 1000 and exits (so to
//! only listen, keep stdin open: a terminal does).
//!
//! All the logic lives in `wsse_clients::chat`; this file only wires stdin, stdout
//! and the command line to it.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::sync::mpsc;
use wsse_app::messages::ServerMessage;
use wsse_clients::{BackoffPolicy, ChatClient, ChatEvent, ChatOptions};

/// Chat over WebSocket from the terminal, reconnecting with backoff and resuming
/// with since= after every drop.
#[derive(Parser)]
struct Arguments {
    /// The chat's address.
    #[arg(value_name = "ws://HOST:PORT/ws", required_unless_present = "autobahn")]
    url: Option<String>,

    /// Instead of chatting, run every case of the Autobahn|Testsuite fuzzing server
    /// at this URL (`ws://IP:PORT`), echoing, with the same library.
    #[arg(long, value_name = "URL", conflicts_with = "url")]
    autobahn: Option<String>,

    /// The name to chat under (the server picks anon-K without one).
    #[arg(long)]
    name: Option<String>,

    /// Start after this seq (0: all the history the server still has), instead of
    /// with the live messages.
    #[arg(long, value_name = "SEQ")]
    since: Option<u64>,

    /// Print each server message as the JSON line it came as.
    #[arg(long)]
    json: bool,

    /// Milliseconds between the client's pings.
    #[arg(long, value_name = "MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    ping_interval_ms: u64,

    /// Milliseconds to wait for a pong before the connection counts as dead.
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pong_timeout_ms: u64,

    /// Milliseconds the connection and the handshake may take.
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    connect_timeout_ms: u64,

    /// The backoff ceiling of the first reconnection attempt, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 250)]
    backoff_start_ms: u64,

    /// The largest backoff ceiling, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    backoff_cap_ms: u64,

    /// A connection that lasted this many milliseconds resets the backoff.
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    healthy_after_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let arguments = Arguments::parse();
    if let Some(fuzzing_server) = &arguments.autobahn {
        return match wsse_clients::autobahn::run_all_cases(fuzzing_server, "chat_client").await {
            Ok(count) => {
                println!("ran {count} cases; reports updated");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("chat_client: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let url = arguments
        .url
        .clone()
        .expect("clap requires a URL without --autobahn");
    let options = ChatOptions {
        name: arguments.name.clone(),
        since: arguments.since,
        backoff: BackoffPolicy {
            start: Duration::from_millis(arguments.backoff_start_ms),
            cap: Duration::from_millis(arguments.backoff_cap_ms),
            healthy_after: Duration::from_millis(arguments.healthy_after_ms),
        },
        ping_interval: Duration::from_millis(arguments.ping_interval_ms),
        pong_timeout: Duration::from_millis(arguments.pong_timeout_ms),
        connect_timeout: Duration::from_millis(arguments.connect_timeout_ms),
        ..ChatOptions::new(url)
    };

    // Reading stdin blocks, so it gets a thread of its own; the end of stdin closes
    // the channel, which tells the client to finish.
    let (lines, input) = mpsc::channel(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines.blocking_send(line).is_err() {
                break;
            }
        }
    });

    let json = arguments.json;
    let mut client = ChatClient::new(options);
    match client.run(input, |event| show(&event, json)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat_client: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Server messages to stdout, everything else to stderr.
fn show(event: &ChatEvent, json: bool) {
    match event {
        ChatEvent::Received { json: text, .. } | ChatEvent::Unknown { json: text } if json => {
            println!("{text}");
        }
        ChatEvent::Received { message, .. } => println!("{}", pretty(message)),
        ChatEvent::Unknown { json: text } => println!("?? {text}"),
        other => eprintln!("chat_client: {other}"),
    }
}

/// A server message for people.
fn pretty(message: &ServerMessage) -> String {
    match message {
        ServerMessage::Welcome { you, online, .. } => format!("-- you are {you}; {online} online"),
        ServerMessage::Message(chat) => format!(
            "[#{} {}] {}: {}",
            chat.seq,
            time_of_day(chat.ts),
            chat.from,
            chat.content
        ),
        ServerMessage::Presence { online } => format!("-- {online} online"),
        ServerMessage::Error { code, message } => {
            format!("-- not sent: {message} ({})", code.as_str())
        }
        ServerMessage::Reset { oldest } => {
            format!("-- some messages are gone; history resumes at #{oldest}")
        }
    }
}

/// `HH:MM:SS` (UTC) of a time in milliseconds since the Unix epoch.
fn time_of_day(milliseconds: u64) -> String {
    let seconds = milliseconds / 1000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}
