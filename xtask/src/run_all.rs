//! `cargo xtask run-all`: everything at once, so a reader can open a chapter and
//! try the live demo next to it.
//!
//! Builds the examples and the book, starts every server on its default port,
//! serves the book, prints where everything is, and runs until SIGINT (Ctrl-C) or
//! SIGTERM. Then it sends SIGTERM to every server it started, so each shuts down
//! cleanly, and waits for them (see [`crate::servers`]).

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use crate::process::{cargo, describe, run_streamed, workspace_root};
use crate::servers::{
    Running, STOP_TIMEOUT, Server, Stopped, start_server, stop_on_signal, stop_servers,
    wait_for_stop,
};

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
    let servers = SERVERS
        .iter()
        .map(|(name, chapter)| (name, chapter, examples.join(name)))
        .filter(|(_, _, binary)| binary.exists()) // not written yet
        .map(|(name, chapter, binary)| Server {
            name: (*name).to_owned(),
            title: (*chapter).to_owned(),
            command: Command::new(binary),
        })
        .collect();
    serve(
        &crate::book::output_dir(),
        BOOK_ADDRESS,
        servers,
        STOP_TIMEOUT,
    )
}

/// Starts `servers`, serves the book from `book_dir` on `book_address`, and runs
/// until SIGINT or SIGTERM; then stops every server (SIGTERM, then SIGKILL after
/// `stop_timeout`) and the book's file server, and exits 0. A server that exits
/// by itself is reported; when none is left, everything stops with a failure.
pub fn serve(
    book_dir: &Path,
    book_address: &str,
    servers: Vec<Server>,
    stop_timeout: Duration,
) -> ExitCode {
    // Before any server starts, so that no signal can come too early to be forwarded.
    let stop_requested = match stop_on_signal() {
        Ok(receiver) => receiver,
        Err(error) => {
            eprintln!("xtask: cannot listen for SIGINT and SIGTERM: {error}");
            return ExitCode::FAILURE;
        }
    };

    let mut running = Vec::new();
    for mut server in servers {
        match start_server(&mut server.command) {
            Ok((url, child)) => running.push(Running { server, url, child }),
            Err(error) => eprintln!("xtask: {} did not start: {error}", server.name),
        }
    }

    let book = match wsse_browser::StaticFiles::serve_on(book_dir, book_address) {
        Ok(book) => book,
        Err(error) => {
            eprintln!("xtask: cannot serve the book on {book_address}: {error}");
            stop_servers(&mut running, stop_timeout);
            return ExitCode::FAILURE;
        }
    };
    println!();
    println!("| what | where |");
    println!("|---|---|");
    println!("| the book | {}/ |", book.base_url());
    for Running { server, url, .. } in &running {
        println!(
            "| {} (`cargo run --example {}`) | {url}/ |",
            server.title, server.name
        );
    }
    println!();
    println!("Ctrl-C stops everything.");

    let outcome = wait_for_stop(
        &mut running,
        &stop_requested,
        |report| eprintln!("xtask: {report}"),
        || None,
    );
    stop_servers(&mut running, stop_timeout);
    drop(book);
    match outcome {
        Stopped::BySignal => ExitCode::SUCCESS,
        Stopped::NoServerLeft | Stopped::OtherEnded => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::testing::{fake_server, is_alive, pid_in, test_directory};
    use std::path::PathBuf;
    use std::sync::mpsc;

    fn scratch_directory(test: &str) -> PathBuf {
        let directory = test_directory("run-all", test);
        std::fs::write(directory.join("index.html"), "the book").unwrap();
        directory
    }

    #[test]
    fn a_sigterm_to_the_xtask_alone_stops_every_server() {
        let directory = scratch_directory("sigterm");
        let pid_files: Vec<PathBuf> = ["polite", "also_polite", "deaf"]
            .iter()
            .map(|name| directory.join(format!("{name}.pid")))
            .collect();
        let servers = vec![
            fake_server("polite", &pid_files[0], "", "sleep 60"),
            fake_server("also_polite", &pid_files[1], "", "sleep 60"),
            // Ignores SIGTERM (an ignored signal stays ignored across exec): must be killed.
            fake_server("deaf", &pid_files[2], "trap '' TERM;", "sleep 60"),
        ];

        let (done_sender, done) = mpsc::channel();
        let book = directory.clone();
        std::thread::spawn(move || {
            let code = serve(&book, "127.0.0.1:0", servers, Duration::from_millis(500));
            let _ = done_sender.send(code);
        });
        let pids: Vec<_> = pid_files.iter().map(|file| pid_in(file)).collect();
        assert!(pids.iter().all(|&pid| is_alive(pid)));

        // The signal goes to this process alone, not to its process group. Its handler
        // is installed before any server starts, and the servers have started.
        // SAFETY: kill(2) on our own pid with a valid signal number.
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
        let code = done
            .recv_timeout(Duration::from_secs(10))
            .expect("serve returns after SIGTERM");
        assert_eq!(code, ExitCode::SUCCESS);
        for pid in pids {
            assert!(!is_alive(pid), "server {pid} still runs");
        }
        let _ = std::fs::remove_dir_all(directory);
    }
}
