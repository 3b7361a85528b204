//! Servers the xtask starts as its children and keeps running until told to stop:
//! what `run-all` and `cluster` share.
//!
//! [`stop_on_signal`] turns SIGINT (Ctrl-C) and SIGTERM into messages;
//! [`start_server`] starts one server and reads its `listening on URL` line;
//! [`wait_for_stop`] waits for a stop, reporting what exits by itself; and
//! [`stop_servers`] sends SIGTERM to every server and kills the ones still there
//! after a while. A terminal's Ctrl-C reaches the whole process group, the servers
//! included, but a signal sent to the xtask alone reaches only the xtask:
//! forwarding it is what keeps the servers from outliving it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the servers get to stop after SIGTERM before they are killed: they
/// give their connections one second to close, so this is plenty.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the xtask looks for a server that exited by itself.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long to wait for a stop request after seeing something exit, before calling
/// it an exit by itself: a terminal's Ctrl-C reaches the children as well, and one
/// may exit before the xtask's signal handler has passed the signal on.
const SIGNAL_GRACE: Duration = Duration::from_millis(300);

/// A server to start: the example's name, what the printed table calls it, and the
/// command that starts it (which prints `listening on URL` as its first stdout line).
pub struct Server {
    pub name: String,
    pub title: String,
    pub command: Command,
}

/// A server that started, with the URL it printed.
pub struct Running {
    pub server: Server,
    pub url: String,
    pub child: Child,
}

/// Why [`wait_for_stop`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// SIGINT or SIGTERM arrived.
    BySignal,
    /// Every server exited by itself (there were some).
    NoServerLeft,
    /// Something else the caller watches ended (see [`wait_for_stop`]).
    OtherEnded,
}

/// A channel that receives a message on each SIGINT or SIGTERM to this process.
/// The handlers are installed when this returns; a thread with a small tokio
/// runtime waits for the signals.
pub fn stop_on_signal() -> std::io::Result<mpsc::Receiver<()>> {
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
///
/// `other_ended` is asked at every poll whether something else the caller started
/// and needs (a proxy, a database) has ended: `Some(report)` reports it and ends the
/// wait with [`Stopped::OtherEnded`].
pub fn wait_for_stop(
    running: &mut Vec<Running>,
    stop_requested: &mpsc::Receiver<()>,
    mut report: impl FnMut(String),
    mut other_ended: impl FnMut() -> Option<String>,
) -> Stopped {
    let had_servers = !running.is_empty();
    let signal_came = |wait| {
        matches!(
            stop_requested.recv_timeout(wait),
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected)
        )
    };
    loop {
        if signal_came(POLL_INTERVAL) {
            return Stopped::BySignal;
        }
        let mut exits = Vec::new();
        running.retain_mut(|running| match running.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                exits.push(format!(
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
        let other = other_ended();
        if (!exits.is_empty() || other.is_some()) && signal_came(SIGNAL_GRACE) {
            return Stopped::BySignal;
        }
        exits.into_iter().for_each(&mut report);
        if let Some(other) = other {
            report(other);
            return Stopped::OtherEnded;
        }
        if had_servers && running.is_empty() {
            report("no server is left, stopping".to_owned());
            return Stopped::NoServerLeft;
        }
    }
}

/// Sends SIGTERM to every server, waits for them all up to `timeout`, then kills
/// the ones still running.
pub fn stop_servers(running: &mut [Running], timeout: Duration) {
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
///
/// # Errors
///
/// A program that cannot start, or one that prints something else first or exits
/// before printing anything (its stderr, inherited, says why: an unknown option, a
/// port taken).
pub fn start_server(command: &mut Command) -> std::io::Result<(String, Child)> {
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    if let Ok(Some(url)) = read
        .as_ref()
        .map(|_| line.trim().strip_prefix("listening on "))
    {
        return Ok((url.to_owned(), child));
    }
    // Closed stdout (or an unreadable one) means the server is exiting: its status
    // says more than the empty line.
    let exited = wait_until(&mut child, Instant::now() + Duration::from_secs(2));
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Err(std::io::Error::other(match (read, exited) {
        (Ok(0) | Err(_), Some(status)) => {
            format!("it exited ({status}) before printing its `listening on` line")
        }
        (Err(error), None) => format!("cannot read its stdout: {error}"),
        _ => format!("expected `listening on`, got {line:?} (is the port taken?)"),
    }))
}

/// Stand-in servers and checks on processes, for the tests of the modules that
/// start servers.
#[cfg(test)]
pub mod testing {
    use super::*;
    use std::path::Path;

    /// A stand-in server: `sh` writes its pid to `pid_file`, prints its listening
    /// line, then runs `then` in its place (exec, so the pid stays the same).
    pub fn fake_server(name: &str, pid_file: &Path, before: &str, then: &str) -> Server {
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
            title: format!("The fake {name}"),
            command,
        }
    }

    /// The pid a [`fake_server`] wrote, waiting for it at most five seconds.
    pub fn pid_in(file: &Path) -> libc::pid_t {
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

    pub fn is_alive(pid: libc::pid_t) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    /// A folder of its own for one test, emptied first.
    pub fn test_directory(module: &str, test: &str) -> std::path::PathBuf {
        let directory =
            std::env::temp_dir().join(format!("xtask-{module}-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory).unwrap();
        directory
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn a_server_that_exits_by_itself_is_reported_and_the_others_keep_running() {
        let directory = test_directory("servers", "exits");
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
        let outcome = wait_for_stop(
            &mut running,
            &stop_requested,
            |report| {
                reports.push(report);
                let _ = stop_sender.send(()); // stop at the first report
            },
            || None,
        );
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
        let directory = test_directory("servers", "all-exit");
        let mut server = fake_server("quitter", &directory.join("quitter.pid"), "", "false");
        let (url, child) = start_server(&mut server.command).unwrap();
        let mut running = vec![Running { server, url, child }];
        let (_stop_sender, stop_requested) = mpsc::channel();
        let mut reports = Vec::new();
        let outcome = wait_for_stop(
            &mut running,
            &stop_requested,
            |report| reports.push(report),
            || None,
        );
        assert_eq!(outcome, Stopped::NoServerLeft);
        assert_eq!(reports.len(), 2, "{reports:?}");
        let _ = std::fs::remove_dir_all(directory);
    }

    #[test]
    fn when_something_else_ends_the_wait_ends_with_its_report() {
        let directory = test_directory("servers", "other-ends");
        let mut server = fake_server("stayer", &directory.join("stayer.pid"), "", "sleep 60");
        let (url, child) = start_server(&mut server.command).unwrap();
        let mut running = vec![Running { server, url, child }];
        let (_stop_sender, stop_requested) = mpsc::channel();
        let mut polls = 0;
        let mut reports = Vec::new();
        let outcome = wait_for_stop(
            &mut running,
            &stop_requested,
            |report| reports.push(report),
            || {
                polls += 1;
                (polls == 2).then(|| "the database exited by itself".to_owned())
            },
        );
        assert_eq!(outcome, Stopped::OtherEnded);
        assert_eq!(reports, ["the database exited by itself"]);
        assert_eq!(running.len(), 1, "the server still runs");
        stop_servers(&mut running, Duration::from_secs(2));
        let _ = std::fs::remove_dir_all(directory);
    }

    #[test]
    fn an_exit_that_a_stop_request_follows_closely_is_no_exit_by_itself() {
        // As after a terminal's Ctrl-C: the server dies of the SIGINT it got too, and
        // the xtask's own signal arrives a moment later.
        let directory = test_directory("servers", "ctrl-c");
        let mut server = fake_server("quitter", &directory.join("quitter.pid"), "", "false");
        let (url, child) = start_server(&mut server.command).unwrap();
        let mut running = vec![Running { server, url, child }];
        let (stop_sender, stop_requested) = mpsc::channel();
        let mut reports = Vec::new();
        let outcome = wait_for_stop(
            &mut running,
            &stop_requested,
            |report| reports.push(report),
            || {
                let _ = stop_sender.send(());
                None
            },
        );
        assert_eq!(outcome, Stopped::BySignal);
        assert!(reports.is_empty(), "{reports:?}");
        let _ = std::fs::remove_dir_all(directory);
    }

    #[test]
    fn a_server_that_exits_at_startup_is_reported_with_its_status() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo 'error: unexpected argument --redis' >&2; exit 2",
        ]);
        command.stderr(Stdio::null());
        let error = start_server(&mut command).unwrap_err().to_string();
        assert_eq!(
            error,
            "it exited (exit status: 2) before printing its `listening on` line"
        );

        let mut command = Command::new("sh");
        command.args(["-c", "echo 'bound to nothing'; sleep 60"]);
        let error = start_server(&mut command).unwrap_err().to_string();
        assert!(error.starts_with("expected `listening on`"), "{error}");
    }
}
