//! The measured rows of the "Choosing" chapter's comparison: WebSocket and SSE
//! next to each other, each cell the range over the four servers of one bench run.
//!
//! The chapter's table says what each protocol does; this one says what it cost on
//! this machine, so the reader sees both without a number typed by hand. Its last
//! rows put the same four servers beside the article's stacks, as ratio ranges.

use std::fmt::Write as _;

use wsse_loadgen::fanout::{FanoutResult, Transport};
use wsse_loadgen::stats::{format_bytes, format_micros, format_rate};

use super::against_peers::{self, format_ratio};
use super::scenarios::Results;

/// The content size whose framing the table reports: a short chat line.
const CHAT_SIZE: usize = 64;

/// The table, or `None` when the run left out a scenario it needs (`--only`).
pub fn table(all: &Results) -> Option<String> {
    let results = &all.without_peers();
    if results.fanout.is_empty() || results.memory.is_empty() || results.wire.is_empty() {
        return None;
    }
    let mut table = String::from("| measured | WebSocket | SSE |\n|---|---|---|\n");
    let mut row = |what: &str, ws: String, sse: String| {
        let _ = writeln!(table, "| {what} | {ws} | {sse} |");
    };

    let latency_ms = results.wire[0].1.latency_ms;
    let first = |transport: &str| {
        range(
            results.wire.iter().filter_map(|(server, result)| {
                let first = result
                    .first_message
                    .iter()
                    .find(|first| first.transport == transport)?;
                Some((*server, first.round_trips, first.median_ms))
            }),
            |round_trips, median| format!("{round_trips:.2} ({median:.1} ms)"),
            Better::Lower,
        )
    };
    row(
        &format!(
            "First message after the TCP connection, in round trips ({latency_ms:.0} ms added each way)"
        ),
        first("ws"),
        first("sse"),
    );

    let framing = |bytes: fn(&wsse_loadgen::wire_cost::WireCostRow) -> Option<f64>| {
        range(
            results.wire.iter().filter_map(|(server, result)| {
                let row = result.rows.iter().find(|row| row.size == CHAT_SIZE)?;
                let framing = bytes(row)? - row.json_bytes?;
                Some((*server, framing, framing))
            }),
            |framing, _| format_bytes(framing),
            Better::Lower,
        )
    };
    row(
        &format!("Framing bytes per {CHAT_SIZE}-byte chat message, beyond its JSON"),
        framing(|row| row.ws_bytes),
        framing(|row| row.sse_bytes),
    );

    let memory = |pick: fn(&(&str, _, _, _)) -> f64| {
        range(
            results
                .memory
                .iter()
                .map(|entry| (entry.0, pick(entry), 0.0)),
            |bytes, _| format_bytes(bytes),
            Better::Lower,
        )
    };
    row(
        "Server memory per idle connection, library defaults",
        memory(|(_, ws, _, _)| ws.bytes_per_connection),
        memory(|(_, _, _, sse)| sse.bytes_per_connection),
    );
    row(
        &format!(
            "Server memory per idle connection, `--ws-buffer-bytes {}`",
            super::scenarios::TUNED_BUFFER
        ),
        memory(|(_, _, tuned, _)| {
            tuned
                .as_ref()
                .map_or(f64::NAN, |tuned| tuned.bytes_per_connection)
        }),
        "the same as above (no buffer to set)".to_owned(),
    );

    let fanout = |transport: Transport, saturated: bool, value: fn(&FanoutResult) -> f64| {
        results.fanout.iter().filter_map(move |(server, runs)| {
            let run = runs
                .iter()
                .find(|run| run.transport == transport && (run.rate == 0.0) == saturated)?;
            Some((*server, value(run), 0.0))
        })
    };
    let clients = results.fanout[0].1.first().map_or(0, |run| run.clients);
    for (transport_name, better, saturated, value, format) in [
        (
            "p99 delivery latency",
            Better::Lower,
            false,
            (|run: &FanoutResult| run.latency.p99_us) as fn(&FanoutResult) -> f64,
            (|micros: f64, _: f64| format_micros(micros)) as fn(f64, f64) -> String,
        ),
        (
            "deliveries per second at saturation",
            Better::Higher,
            true,
            |run: &FanoutResult| run.deliveries_per_second,
            |rate: f64, _: f64| format_rate(rate),
        ),
    ] {
        row(
            &format!("Broadcast to {clients} clients: {transport_name}"),
            range(fanout(Transport::Ws, saturated, value), format, better),
            range(fanout(Transport::Sse, saturated, value), format, better),
        );
    }
    let lost: u64 = results
        .fanout
        .iter()
        .flat_map(|(_, runs)| runs.iter().map(|run| run.lost))
        .sum();
    row(
        "Messages lost, every fan-out run",
        lost.to_string(),
        lost.to_string(),
    );
    for peer in wsse_testkit::peers::PEERS.map(|peer| peer.name()) {
        for (what, measure) in [
            (
                "deliveries per second at saturation",
                against_peers::saturation_rate as fn(Transport) -> against_peers::Measure,
            ),
            (
                "server CPU per delivery at saturation",
                against_peers::saturation_cpu,
            ),
            (
                "server memory per idle connection",
                against_peers::idle_memory,
            ),
        ] {
            let cell = |transport| {
                let measure = measure(transport);
                range(
                    measure
                        .ratios(all, peer)
                        .into_iter()
                        .map(|(server, ratio)| (server, ratio, 0.0)),
                    |ratio, _| format!("{}×", format_ratio(ratio)),
                    measure.better,
                )
            };
            row(
                &format!("Our servers ÷ `{peer}` (the article's stack), {what}"),
                cell(Transport::Ws),
                cell(Transport::Sse),
            );
        }
    }
    table.push_str(
        "\nEach cell is the range over the four servers: best (which) to worst (which). \
         The ÷ rows divide each server's figure by the peer's from the same run (\"not \
         measured\" when the peers were left out).\n",
    );
    Some(table)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Better {
    Lower,
    Higher,
}

/// "best (server) to worst (server)", or the one value when they agree.
fn range<'a>(
    values: impl Iterator<Item = (&'a str, f64, f64)>,
    format: fn(f64, f64) -> String,
    better: Better,
) -> String {
    let mut values: Vec<(&str, f64, f64)> = values.collect();
    if values.is_empty() {
        return "not measured".to_owned();
    }
    values.sort_by(|a, b| a.1.total_cmp(&b.1));
    if better == Better::Higher {
        values.reverse();
    }
    let (best_server, best, best_extra) = values[0];
    let (worst_server, worst, worst_extra) = values[values.len() - 1];
    let best_text = format(best, best_extra);
    let worst_text = format(worst, worst_extra);
    if best_text == worst_text {
        format!("{best_text} (all)")
    } else {
        format!("{best_text} ({best_server}) to {worst_text} ({worst_server})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(value: f64, _: f64) -> String {
        format!("{value:.0}")
    }

    #[test]
    fn a_range_names_the_best_and_the_worst_server() {
        let values = [
            ("axum", 30.0, 0.0),
            ("actix", 10.0, 0.0),
            ("warp", 20.0, 0.0),
        ];
        assert_eq!(
            range(values.into_iter(), bytes, Better::Lower),
            "10 (actix) to 30 (axum)"
        );
        assert_eq!(
            range(values.into_iter(), bytes, Better::Higher),
            "30 (axum) to 10 (actix)"
        );
    }

    #[test]
    fn equal_values_are_shown_once_and_none_as_not_measured() {
        let values = [("axum", 4.0, 0.0), ("warp", 4.2, 0.0)];
        assert_eq!(range(values.into_iter(), bytes, Better::Lower), "4 (all)");
        assert_eq!(
            range(std::iter::empty(), bytes, Better::Lower),
            "not measured"
        );
    }

    #[test]
    fn without_every_scenario_there_is_no_table() {
        assert_eq!(table(&Results::default()), None);
    }
}
