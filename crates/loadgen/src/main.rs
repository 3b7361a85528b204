//! `loadgen`: runs one benchmark scenario against one server and prints its result
//! as one JSON line on stdout (progress goes to stderr). `cargo xtask bench` runs it
//! pinned to one core, with the server pinned to the other.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;
use wsse_loadgen::{compression, echo, fanout, floor, idle, tokens, wire_cost};

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load scenarios for the book's servers (127.0.0.1 only)"
)]
struct Cli {
    /// The server, like 127.0.0.1:3001.
    #[arg(long, global = true, default_value = "127.0.0.1:3001")]
    addr: SocketAddr,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Broadcast chat messages to many /ws or /events clients
    Fanout {
        /// ws or sse
        #[arg(long, default_value = "ws")]
        transport: String,
        #[arg(long, default_value_t = 1000)]
        clients: u64,
        /// Broadcasts per second; 0 = saturation
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Seconds of sending
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Content bytes
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// At saturation: messages on their way, at most (on average)
        #[arg(long, default_value_t = 200)]
        window: u64,
        /// Seconds to wait after connecting
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
        /// Where the sender connects, if not to --addr (another instance on the same Redis)
        #[arg(long, value_name = "IP:PORT")]
        sender_addr: Option<SocketAddr>,
        /// A server process whose CPU time over the sending is counted (repeat it
        /// for instances and their Redis)
        #[arg(long)]
        pid: Vec<u32>,
    },
    /// Round trips on /echo
    Echo {
        #[arg(long, default_value_t = 1)]
        connections: u64,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Plain TCP to `loadgen tcp-echo-server` instead of a WebSocket on /echo
        #[arg(long)]
        plain_tcp: bool,
        /// The server's process id, for its CPU time per round trip
        #[arg(long)]
        pid: Option<u32>,
    },
    /// The floor of the echo table: a plain TCP echo server on --addr (runs until stopped)
    TcpEchoServer,
    /// The floor of the fan-out table: the load generator alone timing broadcasts
    /// already in its sockets (no server; --addr is not used)
    ReceiveFloor {
        /// ws or sse
        #[arg(long, default_value = "ws")]
        transport: String,
        #[arg(long, default_value_t = 1000)]
        clients: u64,
        #[arg(long, default_value_t = 20)]
        broadcasts: u64,
        /// Content bytes
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// Server memory per idle connection
    Idle {
        /// The server's process id
        #[arg(long)]
        pid: u32,
        /// ws or sse
        #[arg(long, default_value = "ws")]
        kind: String,
        #[arg(long, default_value_t = 10_000)]
        connections: u64,
        /// Seconds to wait before each RSS reading
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
    },
    /// /stream token streams
    Tokens {
        /// The server's process id, for its CPU time
        #[arg(long)]
        pid: Option<u32>,
        #[arg(long, default_value_t = 1)]
        streams: u64,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// The server's --token-interval-ms
        #[arg(long, default_value_t = 50)]
        interval_ms: u64,
    },
    /// Bytes per message through a counting proxy, and time to the first message
    WireCost {
        /// Payload sizes, comma-separated
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "16,64,256,1024,4096,16384,65536"
        )]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 20)]
        messages: u64,
        /// Added one-way latency, ms
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        #[arg(long, default_value_t = 5)]
        connects: u32,
    },
    /// permessage-deflate offered on every WebSocket: bytes, server CPU, idle memory
    Compression {
        /// The server's process id (CPU time and RSS)
        #[arg(long)]
        pid: u32,
        /// Chat messages posted, and JSON documents echoed for the bytes
        #[arg(long, default_value_t = 200)]
        messages: u64,
        /// JSON documents echoed for the server's CPU time per message
        #[arg(long, default_value_t = 10_000)]
        cpu_messages: u64,
        /// Chat clients receiving every message
        #[arg(long, default_value_t = 100)]
        receivers: u64,
        /// Idle /echo connections for the memory per connection
        #[arg(long, default_value_t = 1000)]
        idle_connections: u64,
        /// Seconds to wait before each memory reading
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
    },
}

fn print(result: Result<impl Serialize, String>) -> ExitCode {
    match result {
        Ok(result) => {
            println!(
                "{}",
                serde_json::to_string(&result).expect("results serialize")
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}

fn transport(name: &str) -> Result<fanout::Transport, String> {
    match name {
        "ws" => Ok(fanout::Transport::Ws),
        "sse" => Ok(fanout::Transport::Sse),
        _ => Err(format!("unknown transport {name:?} (ws or sse)")),
    }
}

async fn run(cli: Cli) -> ExitCode {
    let addr = cli.addr;
    if !addr.ip().is_loopback() {
        eprintln!("loadgen: talks to 127.0.0.1 only, not {addr}");
        return ExitCode::FAILURE;
    }
    let seconds = Duration::from_secs_f64;
    match cli.scenario {
        Scenario::Fanout {
            transport: name,
            clients,
            rate,
            seconds: duration,
            size,
            window,
            settle,
            sender_addr,
            pid,
        } => {
            let transport = match transport(&name) {
                Ok(transport) => transport,
                Err(error) => return print(Err::<(), _>(error)),
            };
            print(
                fanout::run(&fanout::FanoutOptions {
                    addr,
                    transport,
                    clients,
                    rate,
                    duration: seconds(duration),
                    size,
                    window,
                    settle: seconds(settle),
                    sender_addr,
                    server_pids: pid,
                })
                .await,
            )
        }
        Scenario::Echo {
            connections,
            seconds: duration,
            size,
            plain_tcp,
            pid,
        } => print(
            echo::run(&echo::EchoOptions {
                addr,
                connections,
                duration: seconds(duration),
                size,
                plain_tcp,
                server_pid: pid,
            })
            .await,
        ),
        Scenario::TcpEchoServer => print(floor::tcp_echo_server(addr).await),
        Scenario::ReceiveFloor {
            transport: name,
            clients,
            broadcasts,
            size,
        } => {
            let transport = match transport(&name) {
                Ok(transport) => transport,
                Err(error) => return print(Err::<(), _>(error)),
            };
            print(
                floor::receive_cost(&floor::ReceiveCostOptions {
                    transport,
                    clients,
                    broadcasts,
                    size,
                })
                .await,
            )
        }
        Scenario::Idle {
            pid,
            kind,
            connections,
            settle,
        } => {
            let kind = match kind.as_str() {
                "ws" => idle::Kind::Ws,
                "sse" => idle::Kind::Sse,
                _ => return print(Err::<(), _>(format!("unknown kind {kind:?} (ws or sse)"))),
            };
            print(
                idle::run(&idle::IdleOptions {
                    addr,
                    pid,
                    kind,
                    connections,
                    settle: seconds(settle),
                })
                .await,
            )
        }
        Scenario::Tokens {
            pid,
            streams,
            seconds: duration,
            interval_ms,
        } => print(
            tokens::run(&tokens::TokensOptions {
                addr,
                pid,
                streams,
                duration: seconds(duration),
                interval: Duration::from_millis(interval_ms),
            })
            .await,
        ),
        Scenario::WireCost {
            sizes,
            messages,
            latency_ms,
            connects,
        } => print(
            wire_cost::run(&wire_cost::WireCostOptions {
                addr,
                sizes,
                messages,
                latency: Duration::from_millis(latency_ms),
                connects,
            })
            .await,
        ),
        Scenario::Compression {
            pid,
            messages,
            cpu_messages,
            receivers,
            idle_connections,
            settle,
        } => print(
            compression::run(&compression::CompressionOptions {
                addr,
                pid,
                messages,
                cpu_messages,
                receivers,
                idle_connections,
                settle: seconds(settle),
            })
            .await,
        ),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: the load generator gets one core, like the server.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(run(cli))
}
