//! The article's own stacks, FastAPI on uvicorn and Node.js on `ws`, installed from
//! their pinned versions and started as the benchmark starts them: each must serve
//! the routes the load generator uses (`crates/loadgen/peers/smoke.py` checks the
//! welcome, a broadcast over `/ws` and `/events`, `/echo`, `/stream` to its
//! `[DONE]`, a thousand open connections) and stop on SIGTERM.
//!
//! A missing interpreter fails the test when `CI` is set (`.ci/run` installs them);
//! otherwise the test says what it skipped.

use std::process::Command;
use std::time::Duration;

use wsse_testkit::ServerProcess;
use wsse_testkit::peers::{Peer, peers_source_dir};

fn smoke(peer: Peer) {
    // The smoke check itself runs in the Python peer's environment (it needs
    // `websockets`), so every peer needs Python too.
    let mut needed = vec![peer];
    if peer != Peer::FastApi {
        needed.push(Peer::FastApi);
    }
    let missing: Vec<_> = needed.iter().map(|needed| needed.prerequisite()).collect();
    if !wsse_testkit::programs_present(peer.name(), &missing) {
        return;
    }
    let command = peer
        .install()
        .unwrap_or_else(|error| panic!("{}: cannot install: {error}", peer.name()));
    let python = Peer::FastApi
        .install()
        .expect("the Python environment the smoke check runs in");
    let mut server = ServerProcess::spawn_command(
        peer.name(),
        command.command(),
        &["--heartbeat", "3600", "--token-interval-ms", "2"],
    )
    .unwrap_or_else(|error| panic!("{}: does not start: {error}", peer.name()));
    let output = Command::new(&python.program)
        .arg(peers_source_dir().join("smoke.py"))
        .arg(format!("http://{}", server.addr()))
        .output()
        .expect("the smoke check runs");
    assert!(
        output.status.success(),
        "{}: the smoke check failed:\n{}{}",
        peer.name(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    server.terminate().expect("SIGTERM is sent");
    let status = server
        .wait_with_timeout(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}: still running 5 s after SIGTERM", peer.name()));
    assert!(
        status.success(),
        "{}: exited with {status} after SIGTERM",
        peer.name()
    );
}

#[test]
fn fastapi_peer_serves_what_the_benchmark_uses() {
    smoke(Peer::FastApi);
}

#[test]
fn node_peer_serves_what_the_benchmark_uses() {
    smoke(Peer::Node);
}
