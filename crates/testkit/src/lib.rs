//! The conformance suite every server of the book must pass.
//!
//! The book builds the same chat (WebSocket) and token stream (SSE) four times; this
//! crate proves the four behave the same, by running each server as a child process
//! and talking to it over real sockets:
//!
//! - [`process`]: [`ServerProcess`] starts an example binary on a free port, reads its
//!   `listening on http://IP:PORT` line, stops it with SIGTERM, kills it on drop.
//! - [`http`]: a tiny HTTP/1.1 client (chunked bodies included) and an SSE reader.
//! - [`ws`]: a chat client on `tokio-tungstenite`, and [`ws::RawWs`], a client built
//!   on `wsse_wire` that can send what no library would (unmasked frames, invalid
//!   UTF-8, reserved bits) and can refuse to answer pings.
//! - [`scenarios`]: one async function per behaviour of the spec.
//! - [`matrix`]: [`run_matrix`] runs every scenario against every server and prints
//!   the table.
//! - [`proxy`]: [`FlakyProxy`], a TCP proxy that cuts, delays or stalls connections,
//!   to prove that clients reconnect and resume.
//! - [`scripted`]: [`ScriptedServer`], an HTTP server that answers with chosen bytes
//!   and records every request, to hold a client to the rules.
//! - [`program`]: [`ProgramProcess`], a client program run as a child process, its
//!   output read line by line.
//! - [`nginx`]: [`nginx::Nginx`], nginx with TLS in front of servers, configured by the
//!   book's `deploy/nginx/wsse.conf`, and a TLS client for it.
//! - [`redis`]: [`redis::RedisServer`], a real `redis-server` on a free port that a
//!   test can empty, freeze and kill, for the servers' Redis backend.
//! - [`tls`]: rustls, hyper and tokio-tungstenite clients for servers started with
//!   `--tls`: HTTP/1.1 and HTTP/2, `wss://` and WebSockets over HTTP/2 (RFC 8441).
//! - [`peers`]: the article's FastAPI and Node.js servers, installed under
//!   `target/peers/` on first use, to be measured and checked beside ours.
//!
//! ```no_run
//! # fn main() {
//! let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
//! let matrix = runtime.block_on(wsse_testkit::run_matrix(&["axum"]));
//! matrix.print();
//! assert!(matrix.all_passed());
//! # }
//! ```

/// Returns `Err(format!(...))` from the enclosing function unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

pub mod http;
pub mod matrix;
pub mod nginx;
pub mod peers;
pub mod process;
pub mod program;
pub mod proxy;
pub mod redis;
pub mod scenarios;
pub mod scripted;
pub mod target;
mod temporary;
pub mod tls;
pub mod ws;

/// Whether a test that needs programs from outside the workspace can run: `missing`
/// holds, per program, why it cannot run here (`None` when it can) and the command
/// that installs it. With one missing, the test prints `skipped: TEST: WHY; install
/// it with: COMMAND` (which `cargo xtask test` counts as skipped) and returns false,
/// or fails when `CI` is set, since `.ci/run` installs every one of them.
///
/// # Panics
///
/// Under `CI` with a program missing.
pub fn programs_present(test: &str, missing: &[(Option<String>, &str)]) -> bool {
    for (reason, install) in missing {
        if let Some(reason) = reason {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: {reason}; install it with: {install}"
            );
            eprintln!("skipped: {test}: {reason}; install it with: {install}");
            return false;
        }
    }
    true
}

/// Why `program arguments...` cannot run here, as [`programs_present`] takes it: `None`
/// when it runs and succeeds, else `"WHAT is missing"`.
pub fn unless_it_runs(what: &str, program: &str, arguments: &[&str]) -> Option<String> {
    let works = std::process::Command::new(program)
        .args(arguments)
        .output()
        .is_ok_and(|output| output.status.success());
    (!works).then(|| format!("{what} is missing"))
}

/// Every server of the book (an example of the root package each), in the order
/// the matrix shows them.
pub const SERVERS: [&str; 4] = ["axum", "actix", "warp", "scratch"];

pub use matrix::{
    Cell, Matrix, Skipped, run_matrix, run_matrix_at, run_matrix_command, run_matrix_with,
};
pub use process::{ServerProcess, example_binary, parse_listening_line};
pub use program::ProgramProcess;
pub use proxy::{Faults, FlakyProxy};
pub use scenarios::{Isolation, Scenario, ScenarioFuture, ScenarioResult};
pub use scripted::ScriptedServer;
pub use target::Target;
pub use temporary::{accepts_connections, free_addr};
