//! `cargo xtask run-all`: everything at once, so a reader can open a chapter and
//! try the live demo next to it.
//!
//! Builds the examples and the book, starts every server on its default port,
//! serves the book, prints where everything is, and runs until Ctrl-C (which the
//! terminal delivers to the servers too, so each shuts down cleanly).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};

use crate::process::{cargo, describe, run_streamed, workspace_root};

/// Where the book is served.
const BOOK_ADDRESS: &str = "127.0.0.1:3000";

/// Every server of the book, with its chapter; each listens on its default port.
const SERVERS: &[(&str, &str)] = &[
    ("axum", "The app on axum"),
    ("actix", "The app on actix-web"),
    ("warp", "The app on warp"),
    ("scratch", "The app from scratch"),
];

pub fn run() -> ExitCode {
    let mut build = cargo(["build", "--examples"]);
    match run_streamed(&mut build) {
        Ok(status) if status.success() => {}
        _ => {
            eprintln!("xtask: `{}` failed", describe(&build));
            return ExitCode::FAILURE;
        }
    }
    let problems = crate::book::build();
    for problem in &problems {
        eprintln!("book: {problem}");
    }

    let examples = workspace_root().join("target/debug/examples");
    let mut running: Vec<(&str, &str, String, Child)> = Vec::new();
    for (name, chapter) in SERVERS {
        let binary = examples.join(name);
        if !binary.exists() {
            continue; // not written yet
        }
        match start_server(&binary) {
            Ok((url, child)) => running.push((name, chapter, url, child)),
            Err(error) => eprintln!("xtask: {name} did not start: {error}"),
        }
    }

    let _book = match wsse_browser::StaticFiles::serve_on(&crate::book::output_dir(), BOOK_ADDRESS)
    {
        Ok(server) => server,
        Err(error) => {
            eprintln!("xtask: cannot serve the book on {BOOK_ADDRESS}: {error}");
            stop(&mut running);
            return ExitCode::FAILURE;
        }
    };
    println!();
    println!("| what | where |");
    println!("|---|---|");
    println!("| the book | http://{BOOK_ADDRESS}/ |");
    for (name, chapter, url, _) in &running {
        println!("| {chapter} (`cargo run --example {name}`) | {url}/ |");
    }
    println!();
    println!("Ctrl-C stops everything.");

    // The servers and the book's file server run until Ctrl-C, which the terminal
    // delivers to the whole process group; until then, wait for the servers.
    if running.is_empty() {
        loop {
            std::thread::park(); // only the book: serve until Ctrl-C
        }
    }
    for (_, _, _, child) in &mut running {
        let _ = child.wait();
    }
    ExitCode::SUCCESS
}

/// Starts a server binary with its default address and waits for its
/// `listening on` line.
fn start_server(binary: &Path) -> std::io::Result<(String, Child)> {
    let mut child = Command::new(binary).stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    match line.trim().strip_prefix("listening on ") {
        Some(url) => Ok((url.to_owned(), child)),
        None => {
            let _ = child.kill();
            Err(std::io::Error::other(format!(
                "expected `listening on`, got {line:?} (is the port taken?)"
            )))
        }
    }
}

fn stop(running: &mut [(&str, &str, String, Child)]) {
    for (_, _, _, child) in running {
        let _ = child.kill();
        let _ = child.wait();
    }
}
