//! The conformance suite: every scenario of `wsse-testkit` against each server.
//!
//! `cargo test` builds the examples before it runs this test; after changing a server
//! and running only this test (`cargo test --test conformance`), rebuild the server
//! first: `cargo build --examples`. `WSSE_EXAMPLES_DIR` points at another folder of
//! binaries. `cargo test --test conformance -- --nocapture` shows the table even when
//! everything passes.

use std::path::Path;
use std::sync::Mutex;

/// One server at a time: the heartbeat and shutdown scenarios measure time, and two
/// servers under test on two cores would slow each other down.
static ONE_SERVER_AT_A_TIME: Mutex<()> = Mutex::new(());

fn conformance(server: &str) {
    warn_if_stale(server);
    let _one_at_a_time = ONE_SERVER_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let matrix = runtime.block_on(wsse_testkit::run_matrix(&[server]));
    matrix.print();
    assert!(
        matrix.all_passed(),
        "{server}: {} of {} scenarios failed (see the table above)",
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

// One line per server.
#[test]
fn axum() {
    conformance("axum");
}

#[test]
fn scratch() {
    conformance("scratch");
}

#[test]
fn actix() {
    conformance("actix");
}

#[test]
fn warp() {
    conformance("warp");
}
