//! The server half of `cargo xtask bench`, running: the five load scenarios against
//! the four servers, one after the other, on this machine.
//!
//! Each server is the release build of its example, started under `taskset -c 0`,
//! and so are the article's stacks, its FastAPI app and its Node.js server
//! ([`Peer`]s, installed under `target/peers/` first), in the scenarios they serve;
//! the load generator (`crates/loadgen`, release) runs under `taskset -c 1`, one
//! scenario per call, and prints its result as a JSON line. The results are
//! collected into [`Results`], which [`super::tables`] turns into the tables
//! `book/src/generated/bench-*.md`, the SVG charts next to them and the summary
//! against the targets of the benchmark issue.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::de::DeserializeOwned;
use wsse_loadgen::echo::EchoResult;
use wsse_loadgen::fanout::FanoutResult;
use wsse_loadgen::floor::ReceiveCostResult;
use wsse_loadgen::idle::IdleResult;
use wsse_loadgen::stats::{format_bytes, format_micros, format_rate};
use wsse_loadgen::tokens::TokensResult;
use wsse_loadgen::wire_cost::WireCostResult;
use wsse_testkit::peers::{PEERS, Peer};
use wsse_testkit::process::{ServerProcess, target_dir};

use crate::process::{cargo, describe, run_streamed};

/// The servers, in the order of every table.
pub const SERVERS: [&str; 4] = ["axum", "actix", "warp", "scratch"];

/// The scenarios `--only` can pick (`peers`: the four the peers run in).
pub const SCENARIOS: [&str; 8] = [
    "fanout",
    "echo",
    "memory",
    "tokens",
    "wire-cost",
    "cluster",
    "compression",
    "peers",
];

/// The scenarios run against each server in turn (the others have their own setups).
const PER_SERVER_SCENARIOS: [&str; 5] = ["fanout", "echo", "memory", "tokens", "wire-cost"];

/// The scenarios the peers serve: not wire-cost (its first message comes from the
/// chat's history, which the article's servers do not keep), not cluster (Redis),
/// not compression (the from-scratch server's own).
const PEER_SCENARIOS: [&str; 4] = ["fanout", "echo", "memory", "tokens"];

/// What one row of the tables measures: one of our servers, or one of the
/// article's stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Server(&'static str),
    Peer(Peer),
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Server(name) => name,
            Contender::Peer(peer) => peer.name(),
        }
    }

    /// Starts it pinned to core 0, like [`start`].
    fn start(self, extra: &[&str]) -> Result<ServerProcess, String> {
        match self {
            Contender::Server(name) => start(name, extra),
            Contender::Peer(peer) => {
                let installed = peer.install()?;
                let mut command = pinned("0", &installed.program);
                command.args(&installed.arguments);
                spawn_quiet(peer.name(), command, extra)
            }
        }
    }

    fn runs(self, scenario: &str) -> bool {
        matches!(self, Contender::Server(_)) || PEER_SCENARIOS.contains(&scenario)
    }
}

/// Whether `name` is one of the article's stacks rather than one of our servers.
pub(crate) fn is_peer(name: &str) -> bool {
    PEERS.iter().any(|peer| peer.name() == name)
}

/// The buffer size the "tuned" idle-memory runs give `--ws-buffer-bytes`.
pub const TUNED_BUFFER: &str = "4096";

/// Sizes of one run: the full one, or `--quick`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    pub fanout_clients: u64,
    fanout_seconds: f64,
    fanout_settle: f64,
    floor_broadcasts: u64,
    echo_seconds: f64,
    echo_connections: u64,
    pub idle_connections: u64,
    pub(super) idle_settle: f64,
    pub token_streams: u64,
    token_seconds: f64,
    pub token_interval_ms: u64,
    unthrottled_seconds: f64,
    wire_messages: u64,
    wire_connects: u32,
    /// Chat messages posted and JSON documents echoed for the bytes of compression.
    pub(super) compression_messages: u64,
    /// Echoes for the server's CPU time per message (10 ms ticks: many).
    pub(super) compression_cpu_messages: u64,
    pub(super) compression_receivers: u64,
    pub(super) compression_idle: u64,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                fanout_clients: 200,
                fanout_seconds: 1.0,
                fanout_settle: 0.3,
                floor_broadcasts: 10,
                echo_seconds: 1.0,
                echo_connections: 100,
                idle_connections: 1000,
                idle_settle: 0.3,
                token_streams: 200,
                token_seconds: 1.5,
                token_interval_ms: 20,
                unthrottled_seconds: 0.5,
                wire_messages: 5,
                wire_connects: 3,
                compression_messages: 50,
                compression_cpu_messages: 1000,
                compression_receivers: 20,
                compression_idle: 100,
            }
        } else {
            Plan {
                quick,
                fanout_clients: 1000,
                fanout_seconds: 10.0,
                fanout_settle: 2.0,
                floor_broadcasts: 50,
                echo_seconds: 5.0,
                echo_connections: 100,
                idle_connections: 10_000,
                idle_settle: 2.0,
                token_streams: 1000,
                token_seconds: 10.0,
                token_interval_ms: 20,
                unthrottled_seconds: 5.0,
                wire_messages: 50,
                wire_connects: 5,
                compression_messages: 500,
                compression_cpu_messages: 20_000,
                compression_receivers: 100,
                compression_idle: 1000,
            }
        }
    }
}

/// Everything one run measured, per server.
#[derive(Debug, Default, Clone)]
pub(crate) struct Results {
    pub(crate) fanout: Vec<(&'static str, Vec<FanoutResult>)>,
    /// The load generator alone reading broadcasts (`loadgen receive-floor`), per transport.
    /// Measured at the start and at the end of the run (`when`).
    pub(crate) fanout_floor: Vec<(&'static str, ReceiveCostResult)>,
    pub(crate) echo: Vec<(&'static str, EchoResult, EchoResult)>,
    /// The same two echo runs over plain TCP against `loadgen tcp-echo-server`.
    /// Measured at the start and at the end of the run, like the fan-out floor.
    pub(crate) echo_floor: Vec<(&'static str, EchoResult, EchoResult)>,
    /// WebSocket with default buffers, with `--ws-buffer-bytes` (our servers only),
    /// and SSE.
    pub(crate) memory: Vec<(&'static str, IdleResult, Option<IdleResult>, IdleResult)>,
    pub(crate) tokens: Vec<(&'static str, TokensResult, TokensResult)>,
    pub(crate) wire: Vec<(&'static str, WireCostResult)>,
}

impl Results {
    /// The rows of our four servers only: the summary against the targets and the
    /// WebSocket-against-SSE ranges are about them.
    pub(crate) fn without_peers(&self) -> Results {
        let mut ours = self.clone();
        ours.fanout.retain(|(name, _)| !is_peer(name));
        ours.echo.retain(|(name, ..)| !is_peer(name));
        ours.memory.retain(|(name, ..)| !is_peer(name));
        ours.tokens.retain(|(name, ..)| !is_peer(name));
        ours.wire.retain(|(name, _)| !is_peer(name));
        ours
    }

    /// Whether any of the per-server scenarios ran (the summary is made of them).
    pub(crate) fn has_server_rows(&self) -> bool {
        !(self.fanout.is_empty()
            && self.echo.is_empty()
            && self.memory.is_empty()
            && self.tokens.is_empty()
            && self.wire.is_empty())
    }
}

fn pinned(core: &str, program: &Path) -> Command {
    if Path::new("/usr/bin/taskset").exists() {
        let mut command = Command::new("/usr/bin/taskset");
        command.args(["-c", core]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn release_dir() -> PathBuf {
    target_dir().join("release")
}

/// Builds the four servers and the load generator in release mode.
fn build() -> Result<(), String> {
    let mut servers = cargo(["build", "--release", "-p", "wsse"]);
    for server in SERVERS {
        servers.args(["--example", server]);
    }
    let mut loadgen = cargo([
        "build",
        "--release",
        "-p",
        "wsse-loadgen",
        "--bin",
        "loadgen",
    ]);
    for command in [&mut servers, &mut loadgen] {
        let status = run_streamed(command).map_err(|error| error.to_string())?;
        if !status.success() {
            return Err(format!("`{}` failed", describe(command)));
        }
    }
    Ok(())
}

/// Installs the peers (a virtual environment, `npm ci`) before anything is measured,
/// so that an install neither runs during a scenario nor fails halfway through a run.
fn install_peers() -> Result<(), String> {
    for peer in PEERS {
        println!(
            "==> installing the {} peer under target/peers/",
            peer.name()
        );
        if let (Some(missing), install) = peer.prerequisite() {
            return Err(format!(
                "the {} peer cannot be installed: {missing} (`{install}`), or leave the \
                 peers out with --no-peers",
                peer.name()
            ));
        }
        peer.install()?;
    }
    Ok(())
}

/// Starts `server` pinned to core 0, with a heartbeat too slow to disturb anything
/// and without two limits that would refuse the load generator: the message rate
/// (the fan-out's one sender sends as fast as the server takes) and the connections
/// per client address (every client of the benchmarks comes from 127.0.0.1).
pub(super) fn start(server: &str, extra: &[&str]) -> Result<ServerProcess, String> {
    let binary = release_dir().join("examples").join(server);
    let mut args = vec!["--message-rate", "0", "--max-connections-per-address", "0"];
    args.extend_from_slice(extra);
    spawn_quiet(server, pinned("0", &binary), &args)
}

/// Spawns `command` with `extra` and a heartbeat too slow to disturb anything.
fn spawn_quiet(name: &str, command: Command, extra: &[&str]) -> Result<ServerProcess, String> {
    let mut args = vec!["--heartbeat", "3600"];
    args.extend_from_slice(extra);
    ServerProcess::spawn_command(name, command, &args)
}

/// Runs one loadgen scenario pinned to core 1 and parses its JSON line.
pub(super) fn loadgen<T: DeserializeOwned>(
    server: &ServerProcess,
    label: &str,
    args: &[String],
) -> Result<T, String> {
    run_loadgen(Some(server), label, args)
}

/// Runs the load generator pinned to core 1, against `server` if there is one.
fn run_loadgen<T: DeserializeOwned>(
    server: Option<&ServerProcess>,
    label: &str,
    args: &[String],
) -> Result<T, String> {
    let mut command = pinned("1", &release_dir().join("loadgen"));
    if let Some(server) = server {
        command.arg("--addr").arg(server.addr().to_string());
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    print!(
        "  {:<8} {label:<38}",
        server.map_or("floor", ServerProcess::name)
    );
    let output = command
        .output()
        .map_err(|error| format!("cannot run the load generator: {error}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        println!("FAILED");
        return Err(format!(
            "`{}` failed ({}){}",
            describe(&command),
            output.status,
            server.map(server_tail).unwrap_or_default()
        ));
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .map_err(|error| format!("the load generator printed {line:?}: {error}"))
}

fn server_tail(server: &ServerProcess) -> String {
    let tail = server.stderr_tail();
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- the server's last stderr lines ---\n{tail}")
    }
}

pub(super) fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

pub(super) fn stop(mut server: ServerProcess) {
    let _ = server.terminate();
    if server
        .wait_with_timeout(std::time::Duration::from_secs(3))
        .is_none()
    {
        server.kill();
    }
}

fn run_fanout(plan: &Plan, server: &ServerProcess) -> Result<Vec<FanoutResult>, String> {
    let mut results = Vec::new();
    for transport in ["ws", "sse"] {
        for rate in ["10", "0"] {
            let label = format!("fanout {transport} {}", rate_label(rate));
            let result: FanoutResult = loadgen(
                server,
                &label,
                &fanout_args(plan, transport, rate, &[server.pid()]),
            )?;
            print_fanout(&result);
            results.push(result);
        }
    }
    Ok(results)
}

/// `10/s` or `saturation`, for a `--rate` of the fan-out.
pub(super) fn rate_label(rate: &str) -> &'static str {
    if rate == "0" { "saturation" } else { "10/s" }
}

/// The load generator's fan-out at the plan's size, over `transport` at `rate`,
/// counting the CPU time of `server_pids`.
pub(super) fn fanout_args(
    plan: &Plan,
    transport: &str,
    rate: &str,
    server_pids: &[u32],
) -> Vec<String> {
    let mut args = strings(&[
        "fanout",
        "--transport",
        transport,
        "--rate",
        rate,
        "--clients",
        &plan.fanout_clients.to_string(),
        "--seconds",
        &plan.fanout_seconds.to_string(),
        "--settle",
        &plan.fanout_settle.to_string(),
    ]);
    for pid in server_pids {
        args.extend(["--pid".to_owned(), pid.to_string()]);
    }
    args
}

/// The rest of the progress line of a fan-out.
pub(super) fn print_fanout(result: &FanoutResult) {
    println!(
        "p50 {:>9}  p99 {:>9}  {:>10}  cpu/delivery {:>9}  lost {}",
        format_micros(result.latency.p50_us),
        format_micros(result.latency.p99_us),
        format_rate(result.deliveries_per_second),
        format_optional_micros(result.server_micros_per_delivery()),
        result.lost
    );
}

/// A CPU time per unit, or `?` when it was not measured.
pub(super) fn format_optional_micros(micros: Option<f64>) -> String {
    micros.map_or_else(|| "?".to_owned(), format_micros)
}

/// When the floors are measured: before the servers and after them, so that a drift
/// of the shared machine over the run shows.
const FLOOR_TIMES: [&str; 2] = ["start", "end"];

/// Starts `loadgen tcp-echo-server` pinned to core 0, where the servers run.
fn start_floor() -> Result<ServerProcess, String> {
    ServerProcess::spawn_command(
        "floor",
        pinned("0", &release_dir().join("loadgen")),
        &["tcp-echo-server"],
    )
}

fn run_echo(
    plan: &Plan,
    server: &ServerProcess,
    plain_tcp: bool,
) -> Result<(EchoResult, EchoResult), String> {
    let mut results = Vec::new();
    for connections in [1, plan.echo_connections] {
        let mut args = strings(&[
            "echo",
            "--connections",
            &connections.to_string(),
            "--seconds",
            &plan.echo_seconds.to_string(),
            "--pid",
            &server.pid().to_string(),
        ]);
        if plain_tcp {
            args.push("--plain-tcp".to_owned());
        }
        let result: EchoResult = loadgen(
            server,
            &format!(
                "echo{}, {connections} connection(s)",
                if plain_tcp { " (plain TCP)" } else { "" }
            ),
            &args,
        )?;
        println!(
            "p50 {:>9}  p99 {:>9}  {:>10}  cpu/round trip {:>9}",
            format_micros(result.round_trip.p50_us),
            format_micros(result.round_trip.p99_us),
            format_rate(result.messages_per_second),
            format_optional_micros(result.server_micros_per_round_trip())
        );
        results.push(result);
    }
    let many = results.pop().expect("two results");
    let one = results.pop().expect("two results");
    Ok((one, many))
}

fn run_idle(
    plan: &Plan,
    contender: Contender,
    kind: &str,
    extra: &[&str],
) -> Result<IdleResult, String> {
    let server = contender.start(extra)?;
    let label = format!(
        "idle {kind}{}, {} connections",
        if extra.is_empty() { "" } else { " tuned" },
        plan.idle_connections
    );
    let result: Result<IdleResult, String> = loadgen(
        &server,
        &label,
        &strings(&[
            "idle",
            "--pid",
            &server.pid().to_string(),
            "--kind",
            kind,
            "--connections",
            &plan.idle_connections.to_string(),
            "--settle",
            &plan.idle_settle.to_string(),
        ]),
    );
    stop(server);
    let result = result?;
    println!(
        "{:>10} per connection",
        format_bytes(result.bytes_per_connection)
    );
    Ok(result)
}

fn run_tokens(
    contender: Contender,
    streams: u64,
    interval_ms: u64,
    seconds: f64,
) -> Result<TokensResult, String> {
    let interval = interval_ms.to_string();
    let server = contender.start(&["--token-interval-ms", &interval])?;
    let result: Result<TokensResult, String> = loadgen(
        &server,
        &format!("tokens {streams} x every {interval_ms} ms"),
        &strings(&[
            "tokens",
            "--pid",
            &server.pid().to_string(),
            "--streams",
            &streams.to_string(),
            "--seconds",
            &seconds.to_string(),
            "--interval-ms",
            &interval,
        ]),
    );
    stop(server);
    let result = result?;
    println!(
        "{:>10}  jitter p99 {:>9}  cpu {:.0}%, {} per token",
        format_rate(result.events_per_second),
        format_micros(result.jitter.p99_us),
        result.server_cpu_percent.unwrap_or(0.0),
        format_optional_micros(result.server_micros_per_token())
    );
    Ok(result)
}

fn run_wire(plan: &Plan, server: &ServerProcess) -> Result<WireCostResult, String> {
    let result: WireCostResult = loadgen(
        server,
        "wire cost",
        &strings(&[
            "wire-cost",
            "--messages",
            &plan.wire_messages.to_string(),
            "--connects",
            &plan.wire_connects.to_string(),
        ]),
    )?;
    let first: Vec<String> = result
        .first_message
        .iter()
        .map(|first| {
            format!(
                "{} first message {:.0} ms",
                first.transport, first.median_ms
            )
        })
        .collect();
    println!("{}", first.join(", "));
    Ok(result)
}

/// Runs the selected scenarios against every server (and, unless `with_peers` is
/// false, every peer in the scenarios it serves), then has [`super::tables`] write
/// their tables and charts.
pub fn run(plan: &Plan, only: &[String], with_peers: bool) -> Result<(), String> {
    let selected = |name: &str| {
        only.is_empty()
            || only.iter().any(|only| only == name)
            || (PEER_SCENARIOS.contains(&name) && only.iter().any(|only| only == "peers"))
    };
    build()?;
    let mut contenders: Vec<Contender> = SERVERS.into_iter().map(Contender::Server).collect();
    if with_peers && PEER_SCENARIOS.iter().any(|scenario| selected(scenario)) {
        install_peers()?;
        contenders.extend(PEERS.map(Contender::Peer));
    }
    let mut results = Results::default();
    run_floors(plan, &selected, &mut results, FLOOR_TIMES[0])?;
    for contender in contenders {
        let name = contender.name();
        let selected = |scenario: &str| selected(scenario) && contender.runs(scenario);
        if !PER_SERVER_SCENARIOS
            .iter()
            .any(|scenario| selected(scenario))
        {
            continue;
        }
        println!("\n==> {name} (server on core 0, load generator on core 1)");
        if selected("fanout") || selected("echo") || selected("wire-cost") {
            let server = contender.start(&[])?;
            let outcome = (|| {
                if selected("fanout") {
                    results.fanout.push((name, run_fanout(plan, &server)?));
                }
                if selected("echo") {
                    let (one, many) = run_echo(plan, &server, false)?;
                    results.echo.push((name, one, many));
                }
                if selected("wire-cost") {
                    results.wire.push((name, run_wire(plan, &server)?));
                }
                Ok::<(), String>(())
            })();
            stop(server);
            outcome?;
        }
        if selected("tokens") {
            let one = run_tokens(contender, 1, 0, plan.unthrottled_seconds)?;
            let many = run_tokens(
                contender,
                plan.token_streams,
                plan.token_interval_ms,
                plan.token_seconds,
            )?;
            results.tokens.push((name, one, many));
        }
        if selected("memory") {
            let ws = run_idle(plan, contender, "ws", &[])?;
            // The peers have no buffer option to tune.
            let tuned = match contender {
                Contender::Server(_) => Some(run_idle(
                    plan,
                    contender,
                    "ws",
                    &["--ws-buffer-bytes", TUNED_BUFFER],
                )?),
                Contender::Peer(_) => None,
            };
            let sse = run_idle(plan, contender, "sse", &[])?;
            results.memory.push((name, ws, tuned, sse));
        }
    }
    run_floors(plan, &selected, &mut results, FLOOR_TIMES[1])?;
    if selected("cluster") {
        super::cluster::run(plan)?;
    }
    if selected("compression") {
        super::compression::run(plan)?;
    }
    super::tables::write_outputs(plan, &results)
}

/// The floors of the fan-out and echo tables, measured `when` (start or end).
fn run_floors(
    plan: &Plan,
    selected: &dyn Fn(&str) -> bool,
    results: &mut Results,
    when: &'static str,
) -> Result<(), String> {
    if selected("fanout") {
        println!(
            "\n==> floor at the {when}: the load generator alone reading broadcasts (core 1, no server)"
        );
        for transport in ["ws", "sse"] {
            let result: ReceiveCostResult = run_loadgen(
                None,
                &format!("receive {transport}, {} clients", plan.fanout_clients),
                &strings(&[
                    "receive-floor",
                    "--transport",
                    transport,
                    "--clients",
                    &plan.fanout_clients.to_string(),
                    "--broadcasts",
                    &plan.floor_broadcasts.to_string(),
                ]),
            )?;
            println!(
                "p50 {:>9}  p99 {:>9}  per broadcast",
                format_micros(result.per_broadcast.p50_us),
                format_micros(result.per_broadcast.p99_us),
            );
            results.fanout_floor.push((when, result));
        }
    }
    if selected("echo") {
        println!("\n==> floor at the {when}: a plain TCP echo (loadgen tcp-echo-server on core 0)");
        let floor = start_floor()?;
        let outcome = run_echo(plan, &floor, true);
        stop(floor);
        let (one, many) = outcome?;
        results.echo_floor.push((when, one, many));
    }
    Ok(())
}
