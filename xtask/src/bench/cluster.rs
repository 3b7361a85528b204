//! `cargo xtask bench --only cluster`: what sharing the chat through Redis costs.
//!
//! The same release axum server three ways, in one run: alone with the in-memory hub;
//! two instances on one `redis-server` with the receivers and the sender on the same
//! instance; and the same two with the sender on the other instance. Every fan-out
//! runs at a fixed rate (latency) and at saturation (deliveries per second), over
//! WebSocket and SSE. The servers and Redis share core 0, the load generator has core
//! 1; the server CPU time per delivery adds up the servers' and Redis's CPU time
//! (`/proc/PID/stat`, read by the load generator) over the sending, divided by the
//! copies delivered. The table goes to `book/src/generated/bench-cluster.md`.

use std::fmt::Write as _;
use std::process::Command;

use wsse_loadgen::fanout::{FanoutResult, Transport};
use wsse_loadgen::stats::{format_micros, format_rate};
use wsse_testkit::ServerProcess;
use wsse_testkit::redis::RedisServer;

use super::scenarios::{
    Plan, fanout_args, format_optional_micros, loadgen, print_fanout, rate_label, start, stop,
    strings,
};
use super::tables::{measured_by, write};

/// The framework of every instance: one, so that only the hub differs.
const SERVER: &str = "axum";

/// One measured row.
struct Row {
    setup: &'static str,
    result: FanoutResult,
}

/// Runs the three setups and writes the table.
pub fn run(plan: &Plan) -> Result<(), String> {
    println!("\n==> cluster: {SERVER} in memory, and two {SERVER} instances on one Redis");
    let mut rows = Vec::new();
    let alone = start(SERVER, &[])?;
    let outcome = measure(
        plan,
        "in memory, one instance",
        &alone,
        None,
        &[alone.pid()],
        &mut rows,
    );
    stop(alone);
    outcome?;

    let redis = RedisServer::start().map_err(|error| format!("redis-server: {error}"))?;
    pin_to_servers_core(redis.pid())?;
    let flag = ["--redis", &redis.url()];
    let first = start(SERVER, &flag)?;
    let second = start(SERVER, &flag)?;
    let counted = [first.pid(), second.pid(), redis.pid()];
    let outcome = (|| {
        measure(
            plan,
            "Redis, same instance",
            &first,
            None,
            &counted,
            &mut rows,
        )?;
        measure(
            plan,
            "Redis, across instances",
            &first,
            Some(&second),
            &counted,
            &mut rows,
        )
    })();
    let redis_pid = redis.pid();
    stop(first);
    stop(second);
    drop(redis);
    outcome?;
    write(
        "bench-cluster.md",
        &format!("{}\n{}", measured_by(plan), table(&rows, redis_pid)),
    )
}

/// Redis on core 0 with the servers, so that the load generator keeps core 1.
fn pin_to_servers_core(pid: u32) -> Result<(), String> {
    let status = Command::new("taskset")
        .args(["-p", "-c", "0", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => Ok(()),
        other => Err(format!("taskset -p -c 0 {pid}: {other:?}")),
    }
}

/// Fan-outs to receivers on `receivers`, the sender on `sender` (or the same), at a
/// fixed rate and at saturation, over both transports.
fn measure(
    plan: &Plan,
    setup: &'static str,
    receivers: &ServerProcess,
    sender: Option<&ServerProcess>,
    counted: &[u32],
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    for transport in ["ws", "sse"] {
        for rate in ["10", "0"] {
            let mut args = fanout_args(plan, transport, rate, counted);
            if let Some(sender) = sender {
                args.extend(strings(&["--sender-addr", &sender.addr().to_string()]));
            }
            let label = format!("{setup}: {transport} {}", rate_label(rate));
            let result: FanoutResult = loadgen(receivers, &label, &args)?;
            print_fanout(&result);
            rows.push(Row { setup, result });
        }
    }
    Ok(())
}

fn table(rows: &[Row], redis_pid: u32) -> String {
    let mut text = format!(
        "{SERVER} on every row; Redis (pid {redis_pid} in this run) shares core 0 with the servers. \
         Server CPU per delivery: the servers' CPU time (and Redis's on the Redis rows) from \
         the first message sent to the last copy delivered, per copy delivered.\n\n\
         | setup | transport | rate | p50 | p99 | deliveries/s | server CPU per delivery | lost |\n\
         |---|---|---|---:|---:|---:|---:|---:|\n"
    );
    for row in rows {
        let result = &row.result;
        let per_delivery = format_optional_micros(result.server_micros_per_delivery());
        let rate = if result.rate == 0.0 {
            "saturation".to_owned()
        } else {
            format!("{}/s", result.rate)
        };
        let _ = writeln!(
            text,
            "| {} | {} | {rate} | {} | {} | {} | {per_delivery} | {} |",
            row.setup,
            match result.transport {
                Transport::Ws => "WebSocket",
                Transport::Sse => "SSE",
            },
            format_micros(result.latency.p50_us),
            format_micros(result.latency.p99_us),
            format_rate(result.deliveries_per_second),
            result.lost
        );
    }
    text
}
