//! The server half of `cargo xtask bench`, rendering: the [`Results`] of a run
//! (measured by [`super::scenarios`]) as the book's tables
//! `book/src/generated/bench-*.md`, the SVG charts next to them, and the summary
//! against the targets of the benchmark issue, each stamped with the machine, date
//! and commit.

use std::fmt::Write as _;
use std::path::PathBuf;

use wsse_loadgen::echo::EchoResult;
use wsse_loadgen::fanout::FanoutResult;
use wsse_loadgen::idle::IdleResult;
use wsse_loadgen::stats::{format_bytes, format_micros, format_rate};

use super::charts::{self, Series};
use super::scenarios::{Plan, Results, TUNED_BUFFER, format_optional_micros};
use crate::process::{measured_on, workspace_root};

/// Which machine, when, which commit, and how big the run was.
pub(super) fn measured_by(plan: &Plan) -> String {
    format!(
        "*Measured by `cargo xtask bench{}` ({} run) {}; each server pinned to core 0, \
         the load generator to core 1.*\n",
        if plan.quick { " --quick" } else { "" },
        if plan.quick { "quick, reduced" } else { "full" },
        measured_on()
    )
}

fn generated() -> PathBuf {
    workspace_root().join("book/src/generated")
}

pub(super) fn write(name: &str, text: &str) -> Result<(), String> {
    let path = generated().join(name);
    std::fs::write(&path, text).map_err(|error| format!("{}: {error}", path.display()))?;
    println!("wrote book/src/generated/{name}");
    Ok(())
}

/// Writes every table and chart the run has results for, and prints the summary.
pub fn write_outputs(plan: &Plan, results: &Results) -> Result<(), String> {
    let measured = measured_by(plan);
    let dir = generated();
    if !results.fanout.is_empty() {
        write(
            "bench-fanout.md",
            &format!("{measured}\n{}", fanout_table(results)),
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
            &format!("{measured}\n{}", echo_table(results)),
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
            &format!("{measured}\n{}", memory_table(plan, results)),
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
                // The peers have no buffer to set: no bar.
                Series::new(
                    "WebSocket, --ws-buffer-bytes 4096",
                    results
                        .memory
                        .iter()
                        .map(|(_, _, tuned, _)| tuned.as_ref().map_or(f64::NAN, kib))
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
            &format!("{measured}\n{}", tokens_table(plan, results)),
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
            &format!("{measured}\n{}", wire_table(results)),
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
    if let Some(table) = super::side_by_side::table(results) {
        write("bench-side-by-side.md", &format!("{measured}\n{table}"))?;
    }
    if let Some(table) = super::against_peers::table(results) {
        write("bench-peers.md", &format!("{measured}\n{table}"))?;
    }
    // A run of other scenarios only (`--only cluster`) leaves the summary as it was.
    // The targets are our servers'.
    let ours = results.without_peers();
    if ours.has_server_rows() {
        let summary = summary_table(plan, &ours);
        write("bench-summary.md", &format!("{measured}\n{summary}"))?;
        println!("\n{summary}");
    }
    Ok(())
}

fn fanout_table(results: &Results) -> String {
    let mut table = String::from(
        "| server | transport | rate | clients | sent | p50 | p99 | max | deliveries/s | lost | server CPU per delivery | load generator CPU per broadcast |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, runs) in &results.fanout {
        for run in runs {
            let _ = writeln!(
                table,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
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
                format_optional_micros(run.server_micros_per_delivery()),
                format_micros(run.loadgen_micros_per_broadcast()),
            );
        }
    }
    table.push_str(
        "\nServer CPU per delivery is the server process's CPU time (user and system, from \
         `/proc/PID/stat`) from the first message sent to the last copy delivered, divided by \
         the copies delivered. At saturation it is what one delivery costs the server; at \
         10/s it also holds the fixed costs of waking up for each broadcast.\n",
    );
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
        "| server | 1 connection: p50 | p99 | round trips/s | server CPU per round trip | 100 connections: messages/s | p50 | p99 | server CPU per round trip |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
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
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
            format_micros(one.round_trip.p50_us),
            format_micros(one.round_trip.p99_us),
            format_rate(one.messages_per_second),
            format_optional_micros(one.server_micros_per_round_trip()),
            format_rate(many.messages_per_second),
            format_micros(many.round_trip.p50_us),
            format_micros(many.round_trip.p99_us),
            format_optional_micros(many.server_micros_per_round_trip()),
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
            tuned.as_ref().map_or_else(
                || "no such option".to_owned(),
                |tuned| format_bytes(tuned.bytes_per_connection)
            ),
            format_bytes(sse.bytes_per_connection),
            format_bytes(ws.rss_before as f64),
        );
    }
    table
}

fn tokens_table(plan: &Plan, results: &Results) -> String {
    let mut table = format!(
        "| server | 1 stream, no pause: events/s | {} streams every {} ms: events/s | gap p50 | gap p99 | jitter p99 | server CPU | server CPU per token | load generator CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        plan.token_streams, plan.token_interval_ms
    );
    for (name, one, many) in &results.tokens {
        let _ = writeln!(
            table,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {:.0}% of a core |",
            format_rate(one.events_per_second),
            format_rate(many.events_per_second),
            format_micros(many.gap.p50_us),
            format_micros(many.gap.p99_us),
            format_micros(many.jitter.p99_us),
            many.server_cpu_percent
                .map_or("?".to_owned(), |cpu| format!("{cpu:.0}% of a core")),
            format_optional_micros(many.server_micros_per_token()),
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
        let best = tuned.as_ref().map_or(ws.bytes_per_connection, |tuned| {
            ws.bytes_per_connection.min(tuned.bytes_per_connection)
        });
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
