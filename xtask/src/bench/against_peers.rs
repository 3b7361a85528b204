//! The article's stacks beside ours, as ratios: for each measure, each of our four
//! servers' figure divided by the Node.js peer's and by the FastAPI peer's, from the
//! same run on the same pinning. The tables go to `book/src/generated/bench-peers.md`;
//! the "Choosing" chapter's side-by-side takes three of the measures as ranges.

use std::fmt::Write as _;

use wsse_loadgen::fanout::{FanoutResult, Transport};
use wsse_loadgen::stats::{format_bytes, format_micros, format_rate};
use wsse_testkit::peers::PEERS;

use super::scenarios::{Results, SERVERS};
use super::side_by_side::Better;

/// Reads one figure of the row named so, if the run has it.
type Reading = Box<dyn Fn(&Results, &str) -> Option<f64>>;

/// One figure that every row of a run has (or lacks, when its scenario did not run).
pub(super) struct Measure {
    pub(super) what: String,
    pub(super) better: Better,
    value: Reading,
    format: fn(f64) -> String,
}

impl Measure {
    /// Each of our servers' figure divided by `peer`'s, for the servers measured.
    pub(super) fn ratios(&self, results: &Results, peer: &str) -> Vec<(&'static str, f64)> {
        let Some(theirs) = (self.value)(results, peer).filter(|value| *value > 0.0) else {
            return Vec::new();
        };
        SERVERS
            .iter()
            .filter_map(|server| Some((*server, (self.value)(results, server)? / theirs)))
            .collect()
    }
}

fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Ws => "WebSocket",
        Transport::Sse => "SSE",
    }
}

fn fanout_run<'a>(
    results: &'a Results,
    name: &str,
    transport: Transport,
    saturated: bool,
) -> Option<&'a FanoutResult> {
    results
        .fanout
        .iter()
        .find(|(row, _)| *row == name)?
        .1
        .iter()
        .find(|run| run.transport == transport && (run.rate == 0.0) == saturated)
}

/// Deliveries per second of the fan-out at saturation.
pub(super) fn saturation_rate(transport: Transport) -> Measure {
    Measure {
        what: format!(
            "fan-out over {}, saturation: deliveries/s",
            transport_name(transport)
        ),
        better: Better::Higher,
        value: Box::new(move |results, name| {
            Some(fanout_run(results, name, transport, true)?.deliveries_per_second)
        }),
        format: format_rate,
    }
}

/// The server's CPU time per delivery of the fan-out at saturation.
pub(super) fn saturation_cpu(transport: Transport) -> Measure {
    Measure {
        what: format!(
            "fan-out over {}, saturation: server CPU per delivery",
            transport_name(transport)
        ),
        better: Better::Lower,
        value: Box::new(move |results, name| {
            fanout_run(results, name, transport, true)?.server_micros_per_delivery()
        }),
        format: format_micros,
    }
}

/// Server memory per idle connection, default buffers.
pub(super) fn idle_memory(transport: Transport) -> Measure {
    Measure {
        what: format!(
            "idle {} connection: server memory",
            transport_name(transport)
        ),
        better: Better::Lower,
        value: Box::new(move |results, name| {
            let (_, ws, _, sse) = results.memory.iter().find(|row| row.0 == name)?;
            Some(match transport {
                Transport::Ws => ws.bytes_per_connection,
                Transport::Sse => sse.bytes_per_connection,
            })
        }),
        format: format_bytes,
    }
}

/// Every measure of the ratio tables, in their order.
fn measures() -> Vec<Measure> {
    let mut measures = Vec::new();
    for transport in [Transport::Ws, Transport::Sse] {
        measures.push(saturation_rate(transport));
        measures.push(saturation_cpu(transport));
        measures.push(Measure {
            what: format!(
                "fan-out over {}, 10/s: p99 latency",
                transport_name(transport)
            ),
            better: Better::Lower,
            value: Box::new(move |results, name| {
                Some(fanout_run(results, name, transport, false)?.latency.p99_us)
            }),
            format: format_micros,
        });
    }
    let echo = |results: &Results, name: &str| {
        results
            .echo
            .iter()
            .find(|(row, ..)| *row == name)
            .map(|(_, one, many)| (one.clone(), many.clone()))
    };
    measures.push(Measure {
        what: "echo, 1 connection: p50 round trip".to_owned(),
        better: Better::Lower,
        value: Box::new(move |results, name| Some(echo(results, name)?.0.round_trip.p50_us)),
        format: format_micros,
    });
    measures.push(Measure {
        what: "echo, 100 connections: round trips/s".to_owned(),
        better: Better::Higher,
        value: Box::new(move |results, name| Some(echo(results, name)?.1.messages_per_second)),
        format: format_rate,
    });
    measures.push(Measure {
        what: "echo, 100 connections: server CPU per round trip".to_owned(),
        better: Better::Lower,
        value: Box::new(move |results, name| echo(results, name)?.1.server_micros_per_round_trip()),
        format: format_micros,
    });
    measures.push(idle_memory(Transport::Ws));
    measures.push(idle_memory(Transport::Sse));
    let many_streams = |results: &Results, name: &str| {
        results
            .tokens
            .iter()
            .find(|(row, ..)| *row == name)
            .map(|(.., many)| many.clone())
    };
    measures.push(Measure {
        what: "token streams: server CPU per token".to_owned(),
        better: Better::Lower,
        value: Box::new(move |results, name| {
            many_streams(results, name)?.server_micros_per_token()
        }),
        format: format_micros,
    });
    measures.push(Measure {
        what: "token streams: jitter p99".to_owned(),
        better: Better::Lower,
        value: Box::new(move |results, name| Some(many_streams(results, name)?.jitter.p99_us)),
        format: format_micros,
    });
    measures
}

/// A ratio with two significant digits at least.
pub(super) fn format_ratio(ratio: f64) -> String {
    if ratio >= 0.1 {
        format!("{ratio:.2}")
    } else {
        format!("{ratio:.3}")
    }
}

/// Whether `peer` has a row in any scenario of the run.
fn measured(results: &Results, peer: &str) -> bool {
    results.fanout.iter().any(|(name, _)| *name == peer)
        || results.echo.iter().any(|(name, ..)| *name == peer)
        || results.memory.iter().any(|(name, ..)| *name == peer)
        || results.tokens.iter().any(|(name, ..)| *name == peer)
}

/// The ratio tables, one per peer, or `None` when no peer ran.
pub fn table(results: &Results) -> Option<String> {
    let peers: Vec<&str> = PEERS
        .iter()
        .map(|peer| peer.name())
        .filter(|peer| measured(results, peer))
        .collect();
    if peers.is_empty() {
        return None;
    }
    let measures = measures();
    let mut text = String::from(
        "Each cell is one of our servers' figure divided by the peer's, both from this run. \
         Where higher is better (deliveries and round trips per second), a ratio above 1 \
         means our server did better; where lower is better (latency, CPU time, memory), a \
         ratio below 1 does.\n",
    );
    for peer in peers {
        let _ = write!(
            text,
            "\n**Divided by `{peer}`'s figure**\n\n| measure | better | {peer} |"
        );
        for server in SERVERS {
            let _ = write!(text, " {server} |");
        }
        text.push_str("\n|---|---|---:|");
        text.push_str(&"---:|".repeat(SERVERS.len()));
        text.push('\n');
        for measure in &measures {
            let Some(theirs) = (measure.value)(results, peer) else {
                continue;
            };
            let ratios = measure.ratios(results, peer);
            let _ = write!(
                text,
                "| {} | {} | {} |",
                measure.what,
                match measure.better {
                    Better::Higher => "higher",
                    Better::Lower => "lower",
                },
                (measure.format)(theirs)
            );
            for server in SERVERS {
                let cell = ratios.iter().find(|(name, _)| *name == server).map_or_else(
                    || "not measured".to_owned(),
                    |(_, ratio)| format_ratio(*ratio),
                );
                let _ = write!(text, " {cell} |");
            }
            text.push('\n');
        }
        text.push_str(&peer_wins(results, peer, &measures));
    }
    Some(text)
}

/// The measures where `peer` did better than one of our servers or more, in this run.
fn peer_wins(results: &Results, peer: &str, measures: &[Measure]) -> String {
    let wins: Vec<String> = measures
        .iter()
        .filter_map(|measure| {
            let beaten: Vec<&str> = measure
                .ratios(results, peer)
                .into_iter()
                .filter(|(_, ratio)| match measure.better {
                    Better::Higher => *ratio < 1.0,
                    Better::Lower => *ratio > 1.0,
                })
                .map(|(server, _)| server)
                .collect();
            (!beaten.is_empty())
                .then(|| format!("{} (better than {})", measure.what, beaten.join(", ")))
        })
        .collect();
    if wins.is_empty() {
        format!("\nIn this run `{peer}` did better than none of our servers on any measure.\n")
    } else {
        format!(
            "\nWhere `{peer}` did better than one of our servers or more in this run: {}.\n",
            wins.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsse_loadgen::idle::{IdleResult, Kind};

    fn idle(kind: Kind, bytes_per_connection: f64) -> IdleResult {
        IdleResult {
            kind,
            connections: 10,
            rss_before: 1,
            rss_after: 2,
            bytes_per_connection,
        }
    }

    fn with_memory(rows: &[(&'static str, f64, f64)]) -> Results {
        Results {
            memory: rows
                .iter()
                .map(|(name, ws, sse)| (*name, idle(Kind::Ws, *ws), None, idle(Kind::Sse, *sse)))
                .collect(),
            ..Results::default()
        }
    }

    #[test]
    fn ratios_divide_each_server_by_the_peer() {
        let results = with_memory(&[("axum", 4096.0, 2048.0), ("node", 8192.0, 1024.0)]);
        assert_eq!(
            idle_memory(Transport::Ws).ratios(&results, "node"),
            [("axum", 0.5)]
        );
        assert_eq!(
            idle_memory(Transport::Sse).ratios(&results, "node"),
            [("axum", 2.0)]
        );
        assert!(
            idle_memory(Transport::Ws)
                .ratios(&results, "fastapi")
                .is_empty(),
            "no row for the peer: no ratio"
        );
    }

    #[test]
    fn the_table_has_a_section_per_measured_peer_only() {
        assert_eq!(table(&Results::default()), None);
        assert_eq!(table(&with_memory(&[("axum", 1.0, 1.0)])), None);
        let text = table(&with_memory(&[
            ("axum", 4096.0, 2048.0),
            ("node", 8192.0, 1024.0),
        ]))
        .expect("node ran");
        assert!(text.contains("**Divided by `node`'s figure**"), "{text}");
        assert!(!text.contains("fastapi"), "{text}");
        assert!(
            text.contains("| idle WebSocket connection: server memory | lower | 8.0 KiB | 0.50 | not measured |"),
            "{text}"
        );
        assert!(!text.contains("fan-out"), "no fan-out ran: {text}");
        assert!(
            text.contains("Where `node` did better than one of our servers or more in this run: idle SSE connection: server memory (better than axum)."),
            "{text}"
        );
    }

    #[test]
    fn small_ratios_keep_two_significant_digits() {
        assert_eq!(format_ratio(3.456), "3.46");
        assert_eq!(format_ratio(0.0123), "0.012");
    }
}
