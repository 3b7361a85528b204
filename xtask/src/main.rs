//! `cargo xtask <task>`: the workspace's task runner.
//!
//! Written in Rust and run through the cargo alias in `.cargo/config.toml`, so
//! a fresh machine needs nothing but a Rust toolchain (the "xtask" pattern, as
//! used by google/comprehensive-rust). Each task is a clap subcommand.

mod autobahn;
mod bench;
mod book;
mod cluster;
mod conformance;
mod exercises;
mod facts;
mod process;
mod run_all;
mod screenshots;
mod servers;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Tasks for the wsse workspace (WebSocket and SSE side by side)"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Check formatting, run clippy, and run every test in the workspace
    ///
    /// Steps, in order:
    ///   fmt     cargo fmt --all -- --check
    ///   clippy  cargo clippy --workspace --all-targets -- -D warnings
    ///   tests   cargo build -p wsse --examples (the load generator's smoke test
    ///           starts a server), then cargo test --workspace --exclude wsse
    ///           --no-fail-fast (every crate)
    ///   exercises the starter workspace (cargo xtask exercises) compiles and
    ///           every exercise has failing tests; with the solutions kept, all
    ///           pass (own target dir: target/exercises-target)
    ///   book    cargo xtask book (no warnings, includes, anchors and links all resolve)
    ///   servers cargo test -p wsse --no-fail-fast -- --nocapture (the conformance
    ///           matrix of every server, printed, the external clients, and the
    ///           browser tests: the page against every server and the built book
    ///           in headless Chromium; skipped with the install command when no
    ///           Chromium is found, unless CI=true)
    ///   autobahn cargo xtask autobahn, without writing the book's table; skipped
    ///           when no Python 2.7 is found, unless CI=true
    ///
    /// Every step runs even when an earlier one failed, so one run shows every
    /// problem; the exit status is non-zero if any step failed.
    ///
    /// The closing line reads `summary: N passed, M failed`. It counts every
    /// test case that `cargo test` reports in its `test result:` lines
    /// (doc-tests included), plus fmt, clippy and book as one check each, and
    /// one per server or client that Autobahn tested. A failing
    /// `cargo test` that reports no failed test case (for example because the
    /// code does not compile) counts as one failure. Skipped steps count
    /// nothing; their reason is printed.
    #[command(verbatim_doc_comment)]
    Test,

    /// Build the examples and the book, start every server on its default
    /// port (3001 axum, 3002 actix, 3003 warp, 3004 scratch), serve the book on
    /// http://127.0.0.1:3000, and print where everything is. Ctrl-C stops all.
    RunAll,

    /// Run the app as a cluster: two servers sharing one Redis, behind nginx
    ///
    /// Builds the two examples, starts redis-server (no persistence) on a free
    /// port, the two servers on free ports of 127.0.0.1 with `--redis URL
    /// --trust-proxy`, and nginx with TLS in front of both, configured by
    /// deploy/nginx/wsse.conf (a self-signed certificate for localhost). Prints
    /// the https URL to open, which instance is which, and Redis's URL. Ctrl-C
    /// stops all. An instance that exits by itself is reported and the other
    /// keeps serving; when none is left, or nginx or Redis exits, all stops.
    /// Needs redis-server, nginx and openssl.
    #[command(verbatim_doc_comment)]
    Cluster {
        /// The two servers to run, like axum,warp (the same one twice is fine).
        #[arg(
            long,
            value_name = "FIRST,SECOND",
            value_delimiter = ',',
            default_value = cluster::DEFAULT_SERVERS,
            value_parser = clap::builder::PossibleValuesParser::new(wsse_testkit::SERVERS),
        )]
        servers: Vec<String>,
    },

    /// Build the book into target/book with mdBook (as a library: nothing to
    /// install). Fails on any mdBook warning, a missing `{{#include}}` file or
    /// anchor, or a broken internal link or fragment.
    Book,

    /// Run Autobahn|Testsuite against every server and client, print the
    /// results, and write them into book/src/generated/autobahn.md
    ///
    /// Needs CPython 2.7 (found as $WSSE_PYTHON2, under pyenv, or as python2.7 on
    /// the PATH); installs the suite into target/autobahn/python on first use.
    /// Runs cases 1 to 10 (301): `wstest -m fuzzingclient` against /echo of axum,
    /// actix, warp and scratch, and `wstest -m fuzzingserver` against each
    /// client's `--autobahn URL` mode. Then cases 12 and 13 (216, permessage-
    /// deflate) against the two that negotiate it: scratch and `wire_client
    /// --deflate`, side by side. Fails on a FAILED case or a close that is not OK
    /// or INFORMATIONAL; the from-scratch server and the wire client must have
    /// every case OK or INFORMATIONAL.
    #[command(verbatim_doc_comment)]
    Autobahn,

    /// Take screenshots of the web page in headless Chromium, mid-chat and
    /// mid-stream (the axum server, two pages chatting): target/screenshots/chat.png
    /// and stream.png, copied into book/src/generated/ as page-chat.png and
    /// page-stream.png for the book. Needs chromium and chromium-driver.
    #[command(verbatim_doc_comment)]
    Screenshots,

    /// Write the learner's starter workspace: the exercise crate with every
    /// solution replaced by `todo!()`, tests intact, in target/exercises/, and
    /// a zip of it, target/exercises/wsse-exercises.zip.
    Exercises {
        /// Keep the solutions (to check that the generated workspace passes).
        #[arg(long)]
        with_solutions: bool,
        /// Where to write it, instead of target/exercises.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// Instead, run the `exercises` step of `cargo xtask test`: the starter
        /// compiles and fails, the solutions put back pass.
        #[arg(long, conflicts_with_all = ["with_solutions", "out"])]
        check: bool,
    },

    /// Run the conformance suite against your own server and print the matrix.
    ///
    /// With --url, against a server already running (start it with
    /// `--token-interval-ms 5`); the scenarios that need other flags or a
    /// process of their own are reported as skipped. With --command, the
    /// program is started as the tests start the book's servers (with
    /// `--addr 127.0.0.1:0` and the flags each scenario needs; it must print
    /// `listening on http://IP:PORT`), so every scenario runs.
    #[command(verbatim_doc_comment)]
    Conformance {
        /// The server's address, like http://127.0.0.1:8080.
        #[arg(long, conflicts_with = "command", required_unless_present = "command")]
        url: Option<String>,
        /// The program and its arguments, like "target/debug/my-server --quiet".
        #[arg(long)]
        command: Option<String>,
    },

    /// Run the benchmarks and write their tables and charts
    ///
    /// codec      the wire crate's codec next to tungstenite's (criterion), into
    ///            crates/wire/README.md
    /// fanout     64 B chat messages broadcast to 1,000 /ws and 1,000 /events
    ///            clients, at 10/s and at saturation: latency, deliveries/s, losses
    /// echo       /echo round trips: one connection, and 100 in closed loops
    /// memory     server RSS per idle connection, 10,000 WebSocket (default and
    ///            --ws-buffer-bytes 4096) and 10,000 SSE
    /// tokens     one /stream without pauses, and 1,000 at 50 tokens/s (jitter, CPU)
    /// wire-cost  bytes per message through the test kit's proxy, 16 B to 64 KiB,
    ///            and the time to the first message with 20 ms added each way
    /// cluster    axum in memory against two axum instances on one redis-server
    /// compression  permessage-deflate on the scratch server, off and three ways on:
    ///            bytes per chat message and echoed JSON, server CPU, idle memory
    /// peers      fanout, echo, memory and tokens: the four the peers run in
    ///
    /// Every server scenario runs against axum, actix, warp and scratch (release
    /// builds, pinned to core 0; the load generator crates/loadgen on core 1), and
    /// fanout, echo, memory and tokens also against the article's stacks, its
    /// FastAPI app and its Node.js server (crates/loadgen/peers, installed under
    /// target/peers on first use; needs python3 with venv, and npm), with a table
    /// of ratios, ours to theirs.
    /// Writes book/src/generated/bench-*.md and bench-*.svg, stamped with the
    /// machine, date and commit, and prints a summary against the targets.
    #[command(verbatim_doc_comment)]
    Bench {
        /// A reduced run (fewer clients, shorter): under two minutes once built.
        #[arg(long)]
        quick: bool,
        /// Run only these (repeatable): codec, fanout, echo, memory, tokens,
        /// wire-cost, cluster, compression, peers.
        #[arg(long, value_name = "NAME")]
        only: Vec<String>,
        /// Leave the article's stacks (FastAPI, Node.js) out.
        #[arg(long)]
        no_peers: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().task {
        Task::Test => test::run(),
        Task::RunAll => run_all::run(),
        Task::Cluster { servers } => cluster::run(&servers),
        Task::Bench {
            quick,
            only,
            no_peers,
        } => bench::run(quick, &only, !no_peers),
        Task::Book => book::run(),
        Task::Exercises { check: true, .. } => exercises::check(),
        Task::Exercises {
            with_solutions,
            out,
            ..
        } => exercises::run(with_solutions, out),
        Task::Conformance { url, command } => conformance::run(url, command),
        Task::Screenshots => screenshots::run(),
        Task::Autobahn => autobahn::run(),
    }
}
