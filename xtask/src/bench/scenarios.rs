//! The server half of `cargo xtask bench`: the five load scenarios against the four
//! servers, one after the other, on this machine.
//!
//! Each server is the release build of its example, started under `taskset -c 0`;
//! the load generator (`crates/loadgen`, release) runs under `taskset -c 1`, one
//! scenario per call, and prints its result as a JSON line. The results become the
//! tables `book/src/generated/bench-*.md` and the SVG charts next to them, each
//! stamped with the machine, date and commit, and a summary against the targets of
//! the benchmark issue is printed at the end.

use std::fmt::Write as _;
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
use wsse_testkit::process::ServerProcess;

use crate::charts::{self, Series};
use crate::process::{cargo, command_output, describe, machine, run_streamed, workspace_root};

/// The servers, in the order of every table.
pub const SERVERS: [&str; 4] = ["axum", "actix", "warp", "scratch"];

/// The scenarios `--only` can pick.
pub const SCENARIOS: [&str; 5] = ["fanout", "echo", "memory", "tokens", "wire-cost"];

/// The buffer size the "tuned" idle-memory runs give `--ws-buffer-bytes`.
pub const TUNED_BUFFER: &str = "4096";

/// Sizes of one run: the full one, or `--quick`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    fanout_clients: u64,
    fanout_seconds: f64,
    fanout_settle: f64,
    floor_broadcasts: u64,
    echo_seconds: f64,
    echo_connections: u64,
    idle_connections: u64,
    idle_settle: f64,
    token_streams: u64,
    token_seconds: f64,
    token_interval_ms: u64,
    unthrottled_seconds: f64,
    wire_messages: u64,
    wire_connects: u32,
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
            }
        }
    }
}

/// Everything one run measured, per server.
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) fanout: Vec<(&'static str, Vec<FanoutResult>)>,
    /// The load generator alone reading broadcasts (`loadgen receive-floor`), per transport.
    /// Measured at the start and at the end of the run (`when`).
    pub(crate) fanout_floor: Vec<(&'static str, ReceiveCostResult)>,
    pub(crate) echo: Vec<(&'static str, EchoResult, EchoResult)>,
    /// The same two echo runs over plain TCP against `loadgen tcp-echo-server`.
    /// Measured at the start and at the end of the run, like the fan-out floor.
    pub(crate) echo_floor: Vec<(&'static str, EchoResult, EchoResult)>,
    pub(crate) memory: Vec<(&'static str, IdleResult, IdleResult, IdleResult)>,
    pub(crate) tokens: Vec<(&'static str, TokensResult, TokensResult)>,
    pub(crate) wire: Vec<(&'static str, WireCostResult)>,
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
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("release")
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

/// Starts `server` pinned to core 0, with a heartbeat too slow to disturb anything.
fn start(server: &str, extra: &[&str]) -> Result<ServerProcess, String> {
    let binary = release_dir().join("examples").join(server);
    let mut args = vec!["--heartbeat", "3600"];
    args.extend_from_slice(extra);
    ServerProcess::spawn_command(server, pinned("0", &binary), &args)
}

/// Runs one loadgen scenario pinned to core 1 and parses its JSON line.
fn loadgen<T: DeserializeOwned>(
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

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

fn stop(mut server: ServerProcess) {
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
            let label = format!(
                "fanout {transport} {}",
                if rate == "0" { "saturation" } else { "10/s" }
            );
            let result: FanoutResult = loadgen(
                server,
                &label,
                &strings(&[
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
                ]),
            )?;
            println!(
                "p50 {:>9}  p99 {:>9}  {:>10}  lost {}",
                format_micros(result.latency.p50_us),
                format_micros(result.latency.p99_us),
                format_rate(result.deliveries_per_second),
                result.lost
            );
            results.push(result);
        }
    }
    Ok(results)
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
            "p50 {:>9}  p99 {:>9}  {:>10}",
            format_micros(result.round_trip.p50_us),
            format_micros(result.round_trip.p99_us),
            format_rate(result.messages_per_second)
        );
        results.push(result);
    }
    let many = results.pop().expect("two results");
    let one = results.pop().expect("two results");
    Ok((one, many))
}

fn run_idle(plan: &Plan, name: &str, kind: &str, extra: &[&str]) -> Result<IdleResult, String> {
    let server = start(name, extra)?;
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
    plan: &Plan,
    name: &str,
    streams: u64,
    interval_ms: u64,
    seconds: f64,
) -> Result<TokensResult, String> {
    let interval = interval_ms.to_string();
    let server = start(name, &["--token-interval-ms", &interval])?;
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
        "{:>10}  jitter p99 {:>9}  cpu {:.0}%",
        format_rate(result.events_per_second),
        format_micros(result.jitter.p99_us),
        result.server_cpu_percent.unwrap_or(0.0)
    );
    let _ = plan;
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

/// Runs the selected scenarios against every server and writes tables and charts.
pub fn run(plan: &Plan, only: &[String]) -> Result<(), String> {
    let selected = |name: &str| only.is_empty() || only.iter().any(|only| only == name);
    build()?;
    let mut results = Results::default();
    run_floors(plan, &selected, &mut results, FLOOR_TIMES[0])?;
    for name in SERVERS {
        println!("\n==> {name} (server on core 0, load generator on core 1)");
        if selected("fanout") || selected("echo") || selected("wire-cost") {
            let server = start(name, &[])?;
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
            let one = run_tokens(plan, name, 1, 0, plan.unthrottled_seconds)?;
            let many = run_tokens(
                plan,
                name,
                plan.token_streams,
                plan.token_interval_ms,
                plan.token_seconds,
            )?;
            results.tokens.push((name, one, many));
        }
        if selected("memory") {
            let ws = run_idle(plan, name, "ws", &[])?;
            let tuned = run_idle(plan, name, "ws", &["--ws-buffer-bytes", TUNED_BUFFER])?;
            let sse = run_idle(plan, name, "sse", &[])?;
            results.memory.push((name, ws, tuned, sse));
        }
    }
    run_floors(plan, &selected, &mut results, FLOOR_TIMES[1])?;
    write_outputs(plan, &results)
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

/// Which machine, when, which commit, and how big the run was.
fn stamp(plan: &Plan) -> String {
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = command_output("git", &["status", "--porcelain", "--untracked-files=no"]);
    let dirty = if dirty.is_empty() || dirty == "unknown" {
        ""
    } else {
        " with uncommitted changes"
    };
    let rustc = command_output("rustc", &["--version"]);
    format!(
        "*Measured by `cargo xtask bench{}` ({} run) on {date}, commit {commit}{dirty}, \
         {rustc}, on {}; each server pinned to core 0, the load generator to core 1.*\n",
        if plan.quick { " --quick" } else { "" },
        if plan.quick { "quick, reduced" } else { "full" },
        machine()
    )
}

fn generated() -> PathBuf {
    workspace_root().join("book/src/generated")
}

fn write(name: &str, text: &str) -> Result<(), String> {
    let path = generated().join(name);
    std::fs::write(&path, text).map_err(|error| format!("{}: {error}", path.display()))?;
    println!("wrote book/src/generated/{name}");
    Ok(())
}

fn write_outputs(plan: &Plan, results: &Results) -> Result<(), String> {
    let stamp = stamp(plan);
    let dir = generated();
    if !results.fanout.is_empty() {
        write(
            "bench-fanout.md",
            &format!("{stamp}\n{}", fanout_table(results)),
        )?;
        let servers: Vec<&str> = results.fanout.iter().map(|(name, _)| *name).collect();
        let pick = |transport: &str, saturated: bool, value: fn(&FanoutResult) -> f64| {
            results
                .fanout
                .iter()
                .map(|(_, runs)| {
                    runs.iter()
                        .find(|run| {
                            run.transport.name() == transport && (run.rate == 0.0) == saturated
                        })
                        .map_or(0.0, value)
                })
                .collect::<Vec<f64>>()
        };
        charts::grouped_bars(
            &dir.join("bench-fanout-latency.svg"),
            &format!(
                "Fan-out at 10 broadcasts/s to {} clients: p99 latency",
                plan.fanout_clients
            ),
            "p99 delivery latency (ms)",
            &servers,
            &[
                Series::new(
                    "WebSocket /ws",
                    pick("ws", false, |run| run.latency.p99_us / 1000.0),
                ),
                Series::new(
                    "SSE /events",
                    pick("sse", false, |run| run.latency.p99_us / 1000.0),
                ),
            ],
        )?;
        charts::grouped_bars(
            &dir.join("bench-fanout-saturation.svg"),
            &format!("Fan-out at saturation to {} clients", plan.fanout_clients),
            "deliveries per second (thousands)",
            &servers,
            &[
                Series::new(
                    "WebSocket /ws",
                    pick("ws", true, |run| run.deliveries_per_second / 1000.0),
                ),
                Series::new(
                    "SSE /events",
                    pick("sse", true, |run| run.deliveries_per_second / 1000.0),
                ),
            ],
        )?;
    }
    if !results.echo.is_empty() {
        write(
            "bench-echo.md",
            &format!("{stamp}\n{}", echo_table(results)),
        )?;
        // The servers, then the plain TCP floor as one more group.
        let ones: Vec<(String, &EchoResult)> = results
            .echo
            .iter()
            .map(|(name, one, _)| ((*name).to_owned(), one))
            .chain(
                results
                    .echo_floor
                    .iter()
                    .map(|(when, one, _)| (format!("TCP floor, {when}"), one)),
            )
            .collect();
        let servers: Vec<&str> = ones.iter().map(|(name, _)| name.as_str()).collect();
        charts::grouped_bars(
            &dir.join("bench-echo.svg"),
            "Echo round trip, one connection",
            "round-trip time (µs)",
            &servers,
            &[
                Series::new(
                    "p50",
                    ones.iter().map(|(_, one)| one.round_trip.p50_us).collect(),
                ),
                Series::new(
                    "p99",
                    ones.iter().map(|(_, one)| one.round_trip.p99_us).collect(),
                ),
            ],
        )?;
    }
    if !results.memory.is_empty() {
        write(
            "bench-memory.md",
            &format!("{stamp}\n{}", memory_table(plan, results)),
        )?;
        let servers: Vec<&str> = results.memory.iter().map(|(name, ..)| *name).collect();
        let kib = |result: &IdleResult| result.bytes_per_connection / 1024.0;
        charts::grouped_bars(
            &dir.join("bench-memory.svg"),
            &format!(
                "Server memory per idle connection ({} connections)",
                plan.idle_connections
            ),
            "RSS growth per connection (KiB)",
            &servers,
            &[
                Series::new(
                    "WebSocket, default buffers",
                    results.memory.iter().map(|(_, ws, ..)| kib(ws)).collect(),
                ),
                Series::new(
                    "WebSocket, --ws-buffer-bytes 4096",
                    results
                        .memory
                        .iter()
                        .map(|(_, _, tuned, _)| kib(tuned))
                        .collect(),
                ),
                Series::new(
                    "SSE",
                    results.memory.iter().map(|(.., sse)| kib(sse)).collect(),
                ),
            ],
        )?;
    }
    if !results.tokens.is_empty() {
        write(
            "bench-tokens.md",
            &format!("{stamp}\n{}", tokens_table(plan, results)),
        )?;
        let servers: Vec<&str> = results.tokens.iter().map(|(name, ..)| *name).collect();
        charts::grouped_bars(
            &dir.join("bench-tokens.svg"),
            &format!(
                "{} token streams, one token every {} ms",
                plan.token_streams, plan.token_interval_ms
            ),
            "deviation from the interval (ms)",
            &servers,
            &[
                Series::new(
                    "jitter p50",
                    results
                        .tokens
                        .iter()
                        .map(|(.., many)| many.jitter.p50_us / 1000.0)
                        .collect(),
                ),
                Series::new(
                    "jitter p99",
                    results
                        .tokens
                        .iter()
                        .map(|(.., many)| many.jitter.p99_us / 1000.0)
                        .collect(),
                ),
            ],
        )?;
    }
    if !results.wire.is_empty() {
        write(
            "bench-wire-cost.md",
            &format!("{stamp}\n{}", wire_table(results)),
        )?;
        let (_, first) = &results.wire[0];
        let chat: Vec<_> = first
            .rows
            .iter()
            .filter(|row| row.json_bytes.is_some())
            .collect();
        let overhead = |value: fn(&wsse_loadgen::wire_cost::WireCostRow) -> Option<f64>| {
            chat.iter()
                .map(|row| {
                    (
                        row.size as f64,
                        value(row).unwrap_or(0.0) - row.json_bytes.unwrap_or(0.0),
                    )
                })
                .collect::<Vec<_>>()
        };
        charts::lines(
            &dir.join("bench-wire-cost.svg"),
            &format!(
                "Bytes on the wire per chat message beyond its JSON ({})",
                results.wire[0].0
            ),
            "content size (bytes)",
            "framing bytes per message",
            &[
                ("WebSocket /ws", overhead(|row| row.ws_bytes)),
                ("SSE /events (chunked)", overhead(|row| row.sse_bytes)),
            ],
        )?;
    }
    if let Some(table) = crate::side_by_side::table(results) {
        write("bench-side-by-side.md", &format!("{stamp}\n{table}"))?;
    }
    let summary = summary_table(plan, results);
    write("bench-summary.md", &format!("{stamp}\n{summary}"))?;
    println!("\n{summary}");
    Ok(())
}

fn fanout_table(results: &Results) -> String {
    let mut table = String::from(
        "| server | transport | rate | clients | sent | p50 | p99 | max | deliveries/s | lost | load generator CPU per broadcast |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, runs) in &results.fanout {
        for run in runs {
            let _ = writeln!(
                table,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                if run.transport.name() == "ws" {
                    "WebSocket"
                } else {
                    "SSE"
                },
                if run.rate == 0.0 {
                    "saturation".to_owned()
                } else {
                    format!("{}/s", run.rate)
                },
                run.clients,
                run.sent,
                format_micros(run.latency.p50_us),
                format_micros(run.latency.p99_us),
                format_micros(run.latency.max_us),
                format_rate(run.deliveries_per_second),
                run.lost,
                format_micros(run.loadgen_micros_per_broadcast()),
            );
        }
    }
    table.push_str(
        "\nThe last column is the load generator's own CPU time divided by the broadcasts \
         sent: how long its one core was busy per broadcast, reading, decoding and timing \
         the copies (and, at a fixed rate, waking up for them as they trickle in).\n",
    );
    if !results.fanout_floor.is_empty() {
        let _ = write!(
            table,
            "\nThe floor, no server at all (`loadgen receive-floor`): the load generator \
             alone on its core, every copy of a broadcast already waiting in its receivers' \
             sockets (written by the load generator itself, one pre-encoded frame or chunk \
             per socket), timed from the moment they are all there to the moment the last \
             one is timed. No fan-out latency it reports can be below this.\n\n\
             It is measured at the start of the run and again at its end.\n\n\
             | floor | measured at | clients | broadcasts | per broadcast p50 | p99 | max |\n\
             |---|---|---:|---:|---:|---:|---:|\n"
        );
        for (when, floor) in &results.fanout_floor {
            let _ = writeln!(
                table,
                "| load generator alone, {} | {when} | {} | {} | {} | {} | {} |",
                if floor.transport.name() == "ws" {
                    "WebSocket"
                } else {
                    "SSE"
                },
                floor.clients,
                floor.broadcasts,
                format_micros(floor.per_broadcast.p50_us),
                format_micros(floor.per_broadcast.p99_us),
                format_micros(floor.per_broadcast.max_us),
            );
        }
    }
    table
}

fn echo_table(results: &Results) -> String {
    let mut table = String::from(
        "| server | 1 connection: p50 | p99 | round trips/s | 100 connections: messages/s | p50 | p99 |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    let floor = results
        .echo_floor
        .iter()
        .map(|(when, one, many)| (format!("floor: plain TCP, run's {when}"), one, many));
    for (name, one, many) in results
        .echo
        .iter()
        .map(|(name, one, many)| ((*name).to_owned(), one, many))
        .chain(floor)
    {
        let _ = writeln!(
            table,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            format_micros(one.round_trip.p50_us),
            format_micros(one.round_trip.p99_us),
            format_rate(one.messages_per_second),
            format_rate(many.messages_per_second),
            format_micros(many.round_trip.p50_us),
            format_micros(many.round_trip.p99_us),
        );
    }
    if !results.echo_floor.is_empty() {
        table.push_str(
            "\nThe floor rows are not servers of the book: `loadgen tcp-echo-server`, plain TCP \
             echoing bytes back, on the same core with the same load generator and the same \
             message size, measured before the servers and again after them. It is what a \
             round trip costs on this machine before any HTTP or WebSocket work; the two rows \
             differ by how much the shared machine drifted during the run.\n",
        );
    }
    table
}

fn memory_table(plan: &Plan, results: &Results) -> String {
    let mut table = format!(
        "Server RSS growth divided by {} idle connections (WebSocket on `/echo`, SSE on \
         `/events`).\n\n\
         | server | WebSocket, default | WebSocket, `--ws-buffer-bytes {TUNED_BUFFER}` | SSE | RSS before |\n\
         |---|---:|---:|---:|---:|\n",
        plan.idle_connections
    );
    for (name, ws, tuned, sse) in &results.memory {
        let _ = writeln!(
            table,
            "| {name} | {} | {} | {} | {} |",
            format_bytes(ws.bytes_per_connection),
            format_bytes(tuned.bytes_per_connection),
            format_bytes(sse.bytes_per_connection),
            format_bytes(ws.rss_before as f64),
        );
    }
    table
}

fn tokens_table(plan: &Plan, results: &Results) -> String {
    let mut table = format!(
        "| server | 1 stream, no pause: events/s | {} streams every {} ms: events/s | gap p50 | gap p99 | jitter p99 | server CPU | load generator CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        plan.token_streams, plan.token_interval_ms
    );
    for (name, one, many) in &results.tokens {
        let _ = writeln!(
            table,
            "| {name} | {} | {} | {} | {} | {} | {} | {:.0}% of a core |",
            format_rate(one.events_per_second),
            format_rate(many.events_per_second),
            format_micros(many.gap.p50_us),
            format_micros(many.gap.p99_us),
            format_micros(many.jitter.p99_us),
            many.server_cpu_percent
                .map_or("?".to_owned(), |cpu| format!("{cpu:.0}% of a core")),
            many.loadgen_cpu_percent,
        );
    }
    table
}

fn wire_table(results: &Results) -> String {
    let names: Vec<&str> = results.wire.iter().map(|(name, _)| *name).collect();
    let mut table = String::from(
        "Chat messages (the same JSON on both transports), bytes per message from server to client:\n\n| content | JSON |",
    );
    for name in &names {
        let _ = write!(table, " WS {name} |");
    }
    for name in &names {
        let _ = write!(table, " SSE {name} |");
    }
    table.push_str("\n|---:|---:|");
    table.push_str(&"---:|".repeat(names.len() * 2));
    table.push('\n');
    let sizes: Vec<usize> = results.wire[0].1.rows.iter().map(|row| row.size).collect();
    for (index, size) in sizes.iter().enumerate() {
        let first = &results.wire[0].1.rows[index];
        let Some(json) = first.json_bytes else {
            continue;
        };
        let _ = write!(table, "| {size} B | {json:.0} |");
        for (_, result) in &results.wire {
            let _ = write!(
                table,
                " {:.0} |",
                result.rows[index].ws_bytes.unwrap_or(0.0)
            );
        }
        for (_, result) in &results.wire {
            let _ = write!(
                table,
                " {:.0} |",
                result.rows[index].sse_bytes.unwrap_or(0.0)
            );
        }
        table.push('\n');
    }
    table.push_str("\n`/echo` (WebSocket only: the chat refuses content over 4096 characters), bytes per message, down (server frames) / up (masked client frames):\n\n| payload |");
    for name in &names {
        let _ = write!(table, " {name} |");
    }
    table.push_str("\n|---:|");
    table.push_str(&"---:|".repeat(names.len()));
    table.push('\n');
    for (index, size) in sizes.iter().enumerate() {
        let _ = write!(table, "| {size} B |");
        for (_, result) in &results.wire {
            let row = &result.rows[index];
            let _ = write!(
                table,
                " {:.0} / {:.0} |",
                row.echo_down_bytes, row.echo_up_bytes
            );
        }
        table.push('\n');
    }
    let latency = results.wire[0].1.latency_ms;
    let _ = write!(
        table,
        "\nTime from connecting to the first chat message (one already in the history) with \
         {latency:.0} ms added each way by the proxy; a round trip is {:.0} ms. The proxy \
         cannot delay the TCP handshake, so a real network adds one more round trip to both.\n\n\
         | server | WebSocket | round trips | SSE | round trips |\n|---|---:|---:|---:|---:|\n",
        latency * 2.0
    );
    for (name, result) in &results.wire {
        let find = |transport: &str| {
            result
                .first_message
                .iter()
                .find(|first| first.transport == transport)
                .map_or((0.0, 0.0), |first| (first.median_ms, first.round_trips))
        };
        let (ws, ws_trips) = find("ws");
        let (sse, sse_trips) = find("sse");
        let _ = writeln!(
            table,
            "| {name} | {ws:.1} ms | {ws_trips:.2} | {sse:.1} ms | {sse_trips:.2} |"
        );
    }
    table
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

fn summary_table(plan: &Plan, results: &Results) -> String {
    let mut table = String::new();
    if plan.quick {
        table.push_str(
            "A quick run: fewer clients, connections and seconds than the targets assume, \
             so the verdicts below are indicative only.\n\n",
        );
    }
    table.push_str("| target | goal | measured | verdict |\n|---|---|---|---|\n");
    for (name, runs) in &results.fanout {
        for run in runs.iter().filter(|run| run.rate > 0.0) {
            let _ = writeln!(
                table,
                "| fan-out p99, {name}, {} | <= 8 ms at 10/s | {} (load generator: {} per broadcast) | {} |",
                run.transport.name(),
                format_micros(run.latency.p99_us),
                format_micros(run.loadgen_micros_per_broadcast()),
                verdict(run.latency.p99_us <= 8000.0)
            );
        }
    }
    for (when, floor) in &results.fanout_floor {
        let _ = writeln!(
            table,
            "| fan-out floor, {}, run's {when}: the load generator alone reading one broadcast to {} clients | the instrument's floor | p50 {}, p99 {} | {} |",
            floor.transport.name(),
            floor.clients,
            format_micros(floor.per_broadcast.p50_us),
            format_micros(floor.per_broadcast.p99_us),
            if floor.per_broadcast.p99_us <= 8000.0 {
                "under the goal"
            } else {
                "**the floor alone is over the goal**"
            }
        );
    }
    if let Some((name, best)) = results
        .fanout
        .iter()
        .flat_map(|(name, runs)| {
            runs.iter()
                .filter(|run| run.rate == 0.0)
                .map(move |run| (name, run))
        })
        .max_by(|a, b| {
            a.1.deliveries_per_second
                .total_cmp(&b.1.deliveries_per_second)
        })
    {
        let _ = writeln!(
            table,
            "| fan-out saturation, best server | >= 250 k deliveries/s | {} ({name}, {}) | {} |",
            format_rate(best.deliveries_per_second),
            best.transport.name(),
            verdict(best.deliveries_per_second >= 250_000.0)
        );
    }
    if !results.fanout.is_empty() {
        let lost: u64 = results
            .fanout
            .iter()
            .flat_map(|(_, runs)| runs)
            .map(|run| run.lost)
            .sum();
        let _ = writeln!(
            table,
            "| fan-out lost messages, all runs | 0 | {lost} | {} |",
            verdict(lost == 0)
        );
    }
    for (name, one, _) in &results.echo {
        let _ = writeln!(
            table,
            "| echo p50, one connection, {name} | <= 20 µs | {} | {} |",
            format_micros(one.round_trip.p50_us),
            verdict(one.round_trip.p50_us <= 20.0)
        );
    }
    for (when, one, _) in &results.echo_floor {
        let _ = writeln!(
            table,
            "| echo p50, one connection, floor: plain TCP, run's {when} (no HTTP, no WebSocket) | the machine's floor | {} | {} |",
            format_micros(one.round_trip.p50_us),
            if one.round_trip.p50_us <= 20.0 {
                "under the goal"
            } else {
                "**the floor alone is over the goal**"
            }
        );
    }
    for (name, ws, tuned, _) in &results.memory {
        let best = ws.bytes_per_connection.min(tuned.bytes_per_connection);
        let goal = match *name {
            "scratch" => Some(4096.0),
            "warp" => None,
            _ => Some(8192.0),
        };
        let _ = writeln!(
            table,
            "| idle WebSocket memory, {name} | {} | {} | {} |",
            goal.map_or("reported as is".to_owned(), |goal| format!(
                "<= {}",
                format_bytes(goal)
            )),
            format_bytes(best),
            goal.map_or("reported", |goal| verdict(best <= goal)),
        );
    }
    for (name, _, many) in &results.tokens {
        let _ = writeln!(
            table,
            "| token streams, inter-token jitter p99, {name} | <= 2 ms | {} (load generator at {:.0}% of its core) | {} |",
            format_micros(many.jitter.p99_us),
            many.loadgen_cpu_percent,
            verdict(many.jitter.p99_us <= 2000.0)
        );
    }
    table
}
