//! `cargo xtask bench --only compression`: what permessage-deflate saves and costs.
//!
//! The release from-scratch server (the only one of the four that compresses) four
//! times, one compression setting each: declined (`--no-deflate`, the baseline), the
//! RFC's defaults (context takeover, 15-bit windows), without context takeover, and
//! with 9-bit windows. Against each, `loadgen compression` measures bytes per chat
//! message and per echoed JSON document, the server's CPU time per chat delivery and
//! per echo, and its memory per idle connection that has exchanged one message. The
//! tables go to `book/src/generated/bench-compression.md`.

use std::fmt::Write as _;

use wsse_loadgen::compression::{CompressionResult, EchoRow};
use wsse_loadgen::stats::{format_bytes, format_micros};

use super::scenarios::{Plan, loadgen, start, stop, strings};
use super::tables::{measured_by, write};

/// The one server that implements the extension.
const SERVER: &str = "scratch";

/// The settings measured: the flags, and how the tables name them.
const SETTINGS: [(&[&str], &str); 4] = [
    (&["--no-deflate"], "off (`--no-deflate`)"),
    (&[], "on: context takeover, 15-bit windows (the default)"),
    (
        &["--deflate-no-context-takeover"],
        "on: no context takeover (`--deflate-no-context-takeover`)",
    ),
    (
        &["--deflate-window-bits", "9"],
        "on: context takeover, 9-bit windows (`--deflate-window-bits 9`)",
    ),
];

/// Runs the four settings and writes the tables.
pub fn run(plan: &Plan) -> Result<(), String> {
    println!("\n==> compression: {SERVER}, permessage-deflate off and three ways on");
    let mut rows = Vec::new();
    for (flags, label) in SETTINGS {
        let server = start(SERVER, flags)?;
        let args = strings(&[
            "compression",
            "--pid",
            &server.pid().to_string(),
            "--messages",
            &plan.compression_messages.to_string(),
            "--cpu-messages",
            &plan.compression_cpu_messages.to_string(),
            "--receivers",
            &plan.compression_receivers.to_string(),
            "--idle-connections",
            &plan.compression_idle.to_string(),
            "--settle",
            &plan.idle_settle.to_string(),
        ]);
        let name = if flags.is_empty() {
            "the defaults".to_owned()
        } else {
            flags.join(" ")
        };
        let outcome = loadgen::<CompressionResult>(&server, &format!("compression, {name}"), &args);
        stop(server);
        let result = outcome?;
        println!(
            "chat {} per message, idle {} per connection",
            format_bytes(result.chat_bytes),
            format_bytes(result.idle_bytes_per_connection)
        );
        // A setting that should compress and did not (or the reverse) measures nothing.
        if result.agreed.is_some() == flags.contains(&"--no-deflate") {
            return Err(format!(
                "{SERVER} {flags:?} answered the offer with {:?}",
                result.agreed
            ));
        }
        rows.push((label, result));
    }
    write(
        "bench-compression.md",
        &format!("{}\n{}", measured_by(plan), tables(plan, &rows)),
    )
}

/// `bytes` and what share of `of` it is: `22 B (18 %)`.
fn with_share(bytes: f64, of: f64) -> String {
    format!("{} ({:.0} %)", format_bytes(bytes), 100.0 * bytes / of)
}

fn tables(plan: &Plan, rows: &[(&str, CompressionResult)]) -> String {
    let echo = |result: &CompressionResult, records: usize| -> Option<EchoRow> {
        result
            .echo
            .iter()
            .find(|row| row.records == records)
            .cloned()
    };
    let Some((_, first)) = rows.first() else {
        return "No setting was measured.\n".to_owned();
    };
    let (one, twenty) = (echo(first, 1), echo(first, 20));
    let json = |row: &Option<EchoRow>| row.as_ref().map_or(0.0, |row| row.json_bytes);
    let mut text = format!(
        "The server is `{SERVER}`; every client offers `permessage-deflate; \
         client_max_window_bits`, as browsers do, and compresses what it sends when the \
         server accepts. Bytes are counted by the test kit's proxy, frame headers \
         included, as a share of the message's JSON: a chat message of {} on average \
         ({} posted, each line different), and JSON documents of orders, {} with one \
         record and {} with twenty ({} of each, each different).\n\n\
         | setting | server's answer | chat message, down | echo, 1 record, down | echo, 20 records, down | echo, 20 records, up |\n\
         |---|---|---:|---:|---:|---:|\n",
        format_bytes(first.chat_json_bytes),
        plan.compression_messages,
        format_bytes(json(&one)),
        format_bytes(json(&twenty)),
        plan.compression_messages,
    );
    for (label, result) in rows {
        let cell = |row: Option<EchoRow>, value: fn(&EchoRow) -> f64| {
            row.map_or_else(
                || "?".to_owned(),
                |row| with_share(value(&row), row.json_bytes),
            )
        };
        let _ = writeln!(
            text,
            "| {label} | {} | {} | {} | {} | {} |",
            result
                .agreed
                .as_deref()
                .map_or_else(|| "(none)".to_owned(), |answer| format!("`{answer}`")),
            with_share(result.chat_bytes, result.chat_json_bytes),
            cell(echo(result, 1), |row| row.down_bytes),
            cell(echo(result, 20), |row| row.down_bytes),
            cell(echo(result, 20), |row| row.up_bytes),
        );
    }
    let _ = write!(
        text,
        "\nThe server's cost. CPU time (user and system, from `/proc/PID/stat` in 10 ms \
         ticks) over the fan-out of the {} chat messages to {} receivers, per copy \
         delivered, and over {} round trips on `/echo`, per message; memory: its resident \
         set growth per `/echo` connection that exchanged one document and went idle \
         ({} connections).\n\n\
         | setting | CPU per chat delivery | CPU per echo, 1 record | CPU per echo, 20 records | memory per idle connection |\n\
         |---|---:|---:|---:|---:|\n",
        plan.compression_messages,
        plan.compression_receivers,
        plan.compression_cpu_messages,
        plan.compression_idle,
    );
    for (label, result) in rows {
        let cpu = |records| {
            echo(result, records)
                .map_or_else(|| "?".to_owned(), |row| format_micros(row.server_cpu_us))
        };
        let _ = writeln!(
            text,
            "| {label} | {} | {} | {} | {} |",
            format_micros(result.chat_cpu_us_per_delivery),
            cpu(1),
            cpu(20),
            format_bytes(result.idle_bytes_per_connection),
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(agreed: Option<&str>, chat_bytes: f64, down: f64) -> CompressionResult {
        let echo = |records, json_bytes: f64| EchoRow {
            records,
            json_bytes,
            up_bytes: down + 4.0,
            down_bytes: down,
            server_cpu_us: 40.0,
        };
        CompressionResult {
            agreed: agreed.map(str::to_owned),
            chat_json_bytes: 120.0,
            chat_bytes,
            chat_deliveries: 100,
            chat_cpu_us_per_delivery: 2.5,
            echo: vec![echo(1, 250.0), echo(20, 4000.0)],
            idle_connections: 10,
            idle_bytes_per_connection: 6144.0,
        }
    }

    #[test]
    fn each_setting_is_a_row_of_both_tables_with_shares_of_the_json() {
        let rows = [
            (SETTINGS[0].1, result(None, 126.0, 4004.0)),
            (
                SETTINGS[1].1,
                result(Some("permessage-deflate"), 18.0, 600.0),
            ),
        ];
        let text = tables(&Plan::new(true), &rows);
        assert_eq!(text.matches(SETTINGS[0].1).count(), 2, "{text}");
        assert_eq!(text.matches(SETTINGS[1].1).count(), 2, "{text}");
        assert!(text.contains("| (none) | 126 B (105 %) |"), "{text}");
        assert!(
            text.contains("| `permessage-deflate` | 18 B (15 %) |"),
            "{text}"
        );
        // The 20-record document: 600 B down of 4000 B, 604 B up.
        assert!(text.contains("| 600 B (15 %) | 604 B (15 %) |"), "{text}");
        assert!(
            text.contains("| 2.5 µs | 40.0 µs | 40.0 µs | 6.0 KiB |"),
            "{text}"
        );
    }
}
