//! End to end: every scenario of the load generator, with tiny counts, against the
//! from-scratch server (the debug build of `examples/scratch.rs`, found by
//! `wsse_testkit::process`; `cargo test -p wsse --examples` or `cargo build
//! --examples` builds it), and the echo floor against `loadgen tcp-echo-server`.
//!
//! Structure only: nothing was lost, everything expected arrived, byte counts grow
//! with the payload. No timing is asserted; a debug server on a busy machine is slow.

use std::path::Path;
use std::time::Duration;

use wsse_loadgen::fanout::{FanoutOptions, FanoutResult, Transport};
use wsse_loadgen::{compression, echo, fanout, idle, tokens, wire_cost};
use wsse_testkit::process::ServerProcess;

fn scratch(extra: &[&str]) -> ServerProcess {
    ServerProcess::spawn("scratch", extra).unwrap_or_else(|error| panic!("{error}"))
}

async fn fan_out(server: &ServerProcess, transport: Transport, rate: f64) -> FanoutResult {
    fanout::run(&FanoutOptions {
        addr: server.addr(),
        transport,
        clients: 5,
        rate,
        // At 10/s: ticks at 0, 100 and 200 ms, three messages.
        duration: Duration::from_millis(250),
        size: 64,
        window: 3,
        settle: Duration::from_millis(100),
        sender_addr: None,
        server_pids: vec![server.pid()],
    })
    .await
    .unwrap_or_else(|error| panic!("fan-out over {transport:?} at {rate}/s: {error}"))
}

#[tokio::test]
async fn fanout_delivers_every_message_to_every_client() {
    // At saturation the one sender sends as fast as it can: what the rate limit refuses.
    let server = scratch(&["--message-rate", "0"]);
    for transport in [Transport::Ws, Transport::Sse] {
        for rate in [10.0, 0.0] {
            let result = fan_out(&server, transport, rate).await;
            let what = format!("{transport:?} at {rate}/s: {result:?}");
            if rate > 0.0 {
                assert_eq!(result.sent, 3, "{what}");
            } else {
                assert!(result.sent >= 1, "{what}");
            }
            assert_eq!(result.lost, 0, "{what}");
            assert_eq!(result.out_of_order, 0, "{what}");
            assert_eq!(result.deliveries, result.sent * 5, "{what}");
            assert_eq!(result.latency.count, result.deliveries, "{what}");
            assert!(result.loadgen_cpu_seconds >= 0.0, "{what}");
            assert!(result.server_micros_per_delivery().is_some(), "{what}");
        }
    }
}

async fn echo_run(server: &ServerProcess, connections: u64, plain_tcp: bool) -> echo::EchoResult {
    echo::run(&echo::EchoOptions {
        addr: server.addr(),
        connections,
        duration: Duration::from_millis(300),
        size: 64,
        plain_tcp,
        server_pid: Some(server.pid()),
    })
    .await
    .unwrap_or_else(|error| panic!("echo (plain TCP: {plain_tcp}): {error}"))
}

#[tokio::test]
async fn echo_round_trips_over_websocket_and_over_the_plain_tcp_floor() {
    let server = scratch(&[]);
    let floor = ServerProcess::spawn_binary(
        "floor",
        Path::new(env!("CARGO_BIN_EXE_loadgen")),
        &["tcp-echo-server"],
    )
    .unwrap_or_else(|error| panic!("{error}"));
    for (process, plain_tcp) in [(&server, false), (&floor, true)] {
        for connections in [1, 3] {
            let result = echo_run(process, connections, plain_tcp).await;
            assert_eq!(result.connections, connections, "{result:?}");
            assert!(result.messages > 0, "{result:?}");
            assert!(
                result.server_micros_per_round_trip().is_some(),
                "{result:?}"
            );
            assert_eq!(result.round_trip.count, result.messages, "{result:?}");
        }
    }
    // The floor speaks no WebSocket: a handshake with it must fail, which shows the
    // plain TCP runs above did not go through /echo.
    assert!(
        echo::run(&echo::EchoOptions {
            addr: floor.addr(),
            connections: 1,
            duration: Duration::from_millis(100),
            size: 64,
            plain_tcp: false,
            server_pid: None,
        })
        .await
        .is_err()
    );
}

#[tokio::test]
async fn idle_connections_are_held_and_memory_is_read() {
    let server = scratch(&[]);
    for kind in [idle::Kind::Ws, idle::Kind::Sse] {
        let result = idle::run(&idle::IdleOptions {
            addr: server.addr(),
            pid: server.pid(),
            kind,
            connections: 20,
            settle: Duration::from_millis(50),
        })
        .await
        .unwrap_or_else(|error| panic!("idle {kind:?}: {error}"));
        assert_eq!(result.connections, 20, "{result:?}");
        assert!(result.rss_before > 0, "{result:?}");
        assert!(result.rss_after > 0, "{result:?}");
    }
}

#[tokio::test]
async fn token_streams_are_read_to_their_end() {
    let server = scratch(&["--token-interval-ms", "1"]);
    let result = tokens::run(&tokens::TokensOptions {
        addr: server.addr(),
        pid: Some(server.pid()),
        streams: 3,
        duration: Duration::from_millis(1500),
        interval: Duration::from_millis(1),
    })
    .await
    .unwrap_or_else(|error| panic!("tokens: {error}"));
    assert_eq!(result.streams, 3, "{result:?}");
    assert!(result.completed_streams >= 3, "{result:?}");
    assert!(result.events > result.completed_streams, "{result:?}");
    assert_eq!(
        result.gap.count, result.jitter.count,
        "one jitter per gap: {result:?}"
    );
    assert!(result.gap.count > 0, "{result:?}");
    assert!(result.server_cpu_percent.is_some(), "{result:?}");
    assert!(result.server_micros_per_token().is_some(), "{result:?}");
}

#[tokio::test]
async fn wire_cost_grows_with_the_payload_and_covers_it() {
    let server = scratch(&[]);
    let result = wire_cost::run(&wire_cost::WireCostOptions {
        addr: server.addr(),
        sizes: vec![16, 256, 4096, 16384],
        messages: 3,
        latency: Duration::from_millis(5),
        connects: 1,
    })
    .await
    .unwrap_or_else(|error| panic!("wire cost: {error}"));
    let what = format!("{result:?}");
    assert_eq!(result.rows.len(), 4, "{what}");
    for row in &result.rows {
        let size = row.size as f64;
        assert!(row.echo_down_bytes >= size, "{what}");
        // Client frames carry a 4-byte mask on top of the server's header.
        assert!(row.echo_up_bytes >= row.echo_down_bytes + 4.0, "{what}");
        if row.size <= wire_cost::MAX_CHAT_CONTENT {
            let json = row.json_bytes.expect("chat sizes have JSON");
            assert!(json >= size, "{what}");
            assert!(
                row.ws_bytes.expect("chat sizes go over /ws") >= json,
                "{what}"
            );
            assert!(
                row.sse_bytes.expect("chat sizes go over /events") >= json,
                "{what}"
            );
        } else {
            assert!(row.json_bytes.is_none() && row.ws_bytes.is_none(), "{what}");
        }
    }
    for pair in result.rows.windows(2) {
        assert!(pair[1].echo_down_bytes > pair[0].echo_down_bytes, "{what}");
        if let (Some(small), Some(large)) = (pair[0].ws_bytes, pair[1].ws_bytes) {
            assert!(large > small, "{what}");
            assert!(pair[1].sse_bytes > pair[0].sse_bytes, "{what}");
        }
    }
    let transports: Vec<&str> = result
        .first_message
        .iter()
        .map(|first| first.transport.as_str())
        .collect();
    assert_eq!(transports, ["ws", "sse"], "{what}");
    assert!(
        result
            .first_message
            .iter()
            .all(|first| first.median_ms > 0.0),
        "{what}"
    );
}

#[tokio::test]
async fn compression_shrinks_what_it_compresses_and_the_baseline_does_not() {
    let mut results = Vec::new();
    for (flags, answer) in [
        (&["--no-deflate"][..], None),
        (&[][..], Some("permessage-deflate")),
        (
            &["--deflate-no-context-takeover"][..],
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
    ] {
        let server = scratch(flags);
        let result = compression::run(&compression::CompressionOptions {
            addr: server.addr(),
            pid: server.pid(),
            messages: 10,
            cpu_messages: 10,
            receivers: 3,
            idle_connections: 5,
            settle: Duration::from_millis(50),
        })
        .await
        .unwrap_or_else(|error| panic!("compression with {flags:?}: {error}"));
        let what = format!("{flags:?}: {result:?}");
        assert_eq!(result.agreed.as_deref(), answer, "{what}");
        assert_eq!(result.chat_deliveries, 30, "{what}");
        let records: Vec<usize> = result.echo.iter().map(|row| row.records).collect();
        assert_eq!(records, [1, 20], "{what}");
        let twenty = &result.echo[1];
        if answer.is_some() {
            // Twenty orders repeat their field names: smaller even without takeover.
            assert!(twenty.down_bytes < twenty.json_bytes / 2.0, "{what}");
            assert!(twenty.up_bytes < twenty.json_bytes / 2.0, "{what}");
            assert!(result.chat_bytes < result.chat_json_bytes, "{what}");
        } else {
            // Uncompressed: the JSON and a frame header, up and down.
            assert!(result.chat_bytes > result.chat_json_bytes, "{what}");
            assert!(twenty.down_bytes > twenty.json_bytes, "{what}");
            assert!(twenty.up_bytes > twenty.down_bytes, "{what}");
        }
        assert!(result.idle_bytes_per_connection.is_finite(), "{what}");
        results.push(result);
    }
    // Context takeover: each chat message refers back to the ones before it, which
    // a message compressed alone cannot.
    let (with_takeover, without) = (&results[1], &results[2]);
    assert!(
        with_takeover.chat_bytes < without.chat_bytes,
        "{with_takeover:?}\n{without:?}"
    );
}

#[tokio::test]
async fn the_receive_floor_times_every_broadcast_without_a_server() {
    for transport in [Transport::Ws, Transport::Sse] {
        let result = wsse_loadgen::floor::receive_cost(&wsse_loadgen::floor::ReceiveCostOptions {
            transport,
            clients: 5,
            broadcasts: 3,
            size: 64,
        })
        .await
        .unwrap_or_else(|error| panic!("receive floor over {transport:?}: {error}"));
        assert_eq!(result.lost, 0, "{result:?}");
        assert_eq!(result.per_broadcast.count, 3, "{result:?}");
        assert!(result.per_broadcast.max_us > 0.0, "{result:?}");
    }
}
