//! `cargo xtask run-all`: everything at once, so a reader can open a chapter and
//! try the live demo next to it.
//!
//! Builds the examples and the book, starts every server on its default port,
//! serves the book, prints where everything is, and runs until SIGINT (Ctrl-C) or
//! SIGTERM. Then it sends SIGTERM to every server it started, so each shuts down
//! cleanly, and waits for them. A terminal's Ctrl-C reaches the whole process group,
//! the servers included, but a signal sent to the xtask alone reaches only the
//! xtask: forwarding it is what keeps the servers from outliving it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// How long the servers get to stop after SIGTERM before they are killed: they
/// give their connections one second to close, so this is plenty.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the xtask looks for a server that exited by itself.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A server to start: the example's name, its chapter, and the command that starts
/// it (which prints `listening on URL` as its first stdout line).
pub struct Server {
    pub name: String,
    pub chapter: String,
    pub command: Command,
}

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
            chapter: (*chapter).to_owned(),
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
            server.chapter, server.name
        );
    }
    println!();
    println!("Ctrl-C stops everything.");

    let outcome = wait_for_stop(&mut running, &stop_requested, |report| {
        eprintln!("xtask: {report}");
    });
    stop_servers(&mut running, stop_timeout);
    drop(book);
    match outcome {
        Stopped::BySignal => ExitCode::SUCCESS,
        Stopped::NoServerLeft => ExitCode::FAILURE,
    }
}

/// A server that started, with the URL it printed.
struct Running {
    server: Server,
    url: String,
    child: Child,
}

/// Why [`wait_for_stop`] returned.
#[derive(Debug, PartialEq, Eq)]
enum Stopped {
    /// SIGINT or SIGTERM arrived.
    BySignal,
    /// Every server exited by itself (there were some).
    NoServerLeft,
}

/// A channel that receives a message on each SIGINT or SIGTERM to this process.
/// The handlers are installed when this returns; a thread with a small tokio
/// runtime waits for the signals.
fn stop_on_signal() -> std::io::Result<mpsc::Receiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (mut interrupt, mut terminate) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        runtime.block_on(async {
            loop {
                std::future::poll_fn(|context| {
                    let interrupted = interrupt.poll_recv(context).is_ready();
                    let terminated = terminate.poll_recv(context).is_ready();
                    if interrupted || terminated {
                        std::task::Poll::Ready(())
                    } else {
                        std::task::Poll::Pending
                    }
                })
                .await;
                if sender.send(()).is_err() {
                    break; // nobody waits any more
                }
            }
        });
    });
    Ok(receiver)
}

/// Waits until a stop is requested, reporting each server that exits by itself
/// (and forgetting it). With no server running from the start (only the book),
/// waits for the signal alone.
fn wait_for_stop(
    running: &mut Vec<Running>,
    stop_requested: &mpsc::Receiver<()>,
    mut report: impl FnMut(String),
) -> Stopped {
    let had_servers = !running.is_empty();
    loop {
        match stop_requested.recv_timeout(POLL_INTERVAL) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return Stopped::BySignal,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        running.retain_mut(|running| match running.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                report(format!(
                    "{} ({}) exited by itself ({status})",
                    running.server.name, running.url
                ));
                false
            }
            Err(error) => {
                report(format!(
                    "{} ({}): cannot tell whether it runs: {error}",
                    running.server.name, running.url
                ));
                true
            }
        });
        if had_servers && running.is_empty() {
            report("no server is left, stopping".to_owned());
            return Stopped::NoServerLeft;
        }
    }
}

/// Sends SIGTERM to every server, waits for them all up to `timeout`, then kills
/// the ones still running.
fn stop_servers(running: &mut [Running], timeout: Duration) {
    for Running { child, .. } in running.iter() {
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) with a valid signal number touches no memory of ours; the
            // pid is our unreaped child, so it cannot have been reused by another process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    let deadline = Instant::now() + timeout;
    for Running { server, child, .. } in running.iter_mut() {
        if wait_until(child, deadline).is_none() {
            eprintln!(
                "xtask: {} still runs {} s after SIGTERM; killing it",
                server.name,
                timeout.as_secs_f32()
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The child's exit status, if it exits before `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a server and waits for its `listening on` line.
fn start_server(command: &mut Command) -> std::io::Result<(String, Child)> {
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    match line.trim().strip_prefix("listening on ") {
        Some(url) => Ok((url.to_owned(), child)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(std::io::Error::other(format!(
                "expected `listening on`, got {line:?} (is the port taken?)"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A stand-in server: `sh` writes its pid to `pid_file`, prints its listening
    /// line, then runs `then` in its place (exec, so the pid stays the same).
    fn fake_server(name: &str, pid_file: &Path, before: &str, then: &str) -> Server {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!(
                "{before} echo $$ > '{}'; echo 'listening on http://127.0.0.1:0'; exec {then}",
                pid_file.display()
            ),
        ]);
        Server {
            name: name.to_owned(),
            chapter: format!("The fake {name}"),
            command,
        }
    }

    fn scratch_directory(test: &str) -> PathBuf {
        let directory =
            std::env::temp_dir().join(format!("xtask-run-all-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join("index.html"), "the book").unwrap();
        directory
    }

    fn pid_in(file: &Path) -> libc::pid_t {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(pid) = std::fs::read_to_string(file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                return pid;
            }
            assert!(Instant::now() < deadline, "no pid in {}", file.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn is_alive(pid: libc::pid_t) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
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

    #[test]
    fn a_server_that_exits_by_itself_is_reported_and_the_others_keep_running() {
        let directory = scratch_directory("exits");
        let mut running: Vec<Running> = [
            fake_server("quitter", &directory.join("quitter.pid"), "", "false"),
            fake_server("stayer", &directory.join("stayer.pid"), "", "sleep 60"),
        ]
        .into_iter()
        .map(|mut server| {
            let (url, child) = start_server(&mut server.command).unwrap();
            Running { server, url, child }
        })
        .collect();
        let stayer = pid_in(&directory.join("stayer.pid"));

        let (stop_sender, stop_requested) = mpsc::channel();
        let mut reports = Vec::new();
        let outcome = wait_for_stop(&mut running, &stop_requested, |report| {
            reports.push(report);
            let _ = stop_sender.send(()); // stop at the first report
        });
        assert_eq!(outcome, Stopped::BySignal);
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(
            reports[0].starts_with("quitter (http://127.0.0.1:0) exited by itself"),
            "{reports:?}"
        );
        assert!(is_alive(stayer));

        stop_servers(&mut running, Duration::from_secs(2));
        assert!(!is_alive(stayer));
        let _ = std::fs::remove_dir_all(directory);
    }

    #[test]
    fn when_every_server_has_exited_the_wait_ends() {
        let directory = scratch_directory("all-exit");
        let mut server = fake_server("quitter", &directory.join("quitter.pid"), "", "false");
        let (url, child) = start_server(&mut server.command).unwrap();
        let mut running = vec![Running { server, url, child }];
        let (_stop_sender, stop_requested) = mpsc::channel();
        let mut reports = Vec::new();
        let outcome = wait_for_stop(&mut running, &stop_requested, |report| reports.push(report));
        assert_eq!(outcome, Stopped::NoServerLeft);
        assert_eq!(reports.len(), 2, "{reports:?}");
        let _ = std::fs::remove_dir_all(directory);
    }
}
