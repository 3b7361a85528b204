//! The conformance suite: every scenario of `wsse-testkit` against each server.
//!
//! `cargo test` builds the examples before it runs this test; after changing a server
//! and running only this test (`cargo test --test conformance`), rebuild the server
//! first: `cargo build --examples`. `WSSE_EXAMPLES_DIR` points at another folder of
//! binaries. `cargo test --test conformance -- --nocapture` shows the table even when
//! everything passes.

use std::path::Path;

/// All servers in one table, one after the other (the heartbeat and shutdown
/// scenarios measure time, and two servers under test on two cores would slow each
/// other down). `WSSE_SERVERS=axum,scratch` narrows the run to those servers, and
/// `WSSE_SCENARIOS=heartbeat_drop,echo_route` to those scenarios.
#[test]
fn every_server_passes_every_scenario() {
    let chosen = std::env::var("WSSE_SERVERS").unwrap_or_default();
    let servers: Vec<&str> = if chosen.trim().is_empty() {
        wsse_testkit::SERVERS.to_vec()
    } else {
        chosen.split(',').map(str::trim).collect()
    };
    let chosen_scenarios = std::env::var("WSSE_SCENARIOS").unwrap_or_default();
    let chosen_scenarios: Vec<&str> = chosen_scenarios
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    let scenarios: Vec<_> = wsse_testkit::scenarios::all()
        .into_iter()
        .filter(|scenario| chosen_scenarios.is_empty() || chosen_scenarios.contains(&scenario.name))
        .collect();
    assert!(
        !scenarios.is_empty(),
        "no scenario is named {chosen_scenarios:?}"
    );
    for server in &servers {
        warn_if_stale(server);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let matrix = runtime.block_on(wsse_testkit::run_matrix_with(&servers, &scenarios));
    matrix.print();
    assert!(
        matrix.all_passed(),
        "{} of {} cells failed (see the table above)",
        matrix.failed(),
        matrix.cells.len()
    );
}

/// `cargo test --test conformance` does not rebuild the examples: say so when the
/// binary is older than its source, rather than silently test yesterday's server.
fn warn_if_stale(server: &str) {
    let Ok(binary) = wsse_testkit::example_binary(server) else {
        return; // The matrix reports the missing binary with the command to build it.
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{server}.rs"));
    let modified = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified());
    if let (Ok(built), Ok(edited)) = (modified(&binary), modified(&source))
        && edited > built
    {
        eprintln!(
            "warning: {} is older than {}: run `cargo build --example {server}` first \
             (a plain `cargo test` builds the examples itself)",
            binary.display(),
            source.display()
        );
    }
}
