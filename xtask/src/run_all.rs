//! `cargo xtask run-all`: run the book's programs one after another.
//!
//! Only the chapter demos exist so far; servers, clients and the book join
//! this list as they are written.

use std::process::ExitCode;

use crate::process::{cargo, describe, run_streamed};

/// The demos, each with the arguments its chapter uses. The handshake nonce is
/// the sample key from RFC 6455, section 1.3.
const DEMOS: &[&[&str]] = &[
    &[
        "run",
        "--example",
        "handshake",
        "--",
        "dGhlIHNhbXBsZSBub25jZQ==",
    ],
    &["run", "--example", "frames", "--", "Hello"],
];

pub fn run() -> ExitCode {
    let mut failed = Vec::new();
    for args in DEMOS {
        let mut command = cargo(*args);
        match run_streamed(&mut command) {
            Ok(status) if status.success() => {}
            Ok(status) => {
                eprintln!("xtask: `{}` failed ({status})", describe(&command));
                failed.push(describe(&command));
            }
            Err(error) => {
                eprintln!("xtask: could not start `{}`: {error}", describe(&command));
                failed.push(describe(&command));
            }
        }
    }

    println!();
    println!("run-all: the servers and the book will be served here once they exist.");
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!(
            "run-all: {} demo(s) failed: {}",
            failed.len(),
            failed.join("; ")
        );
        ExitCode::FAILURE
    }
}
