//! Running a server of the book as a child process, the way a user would.
//!
//! A server is an example binary of the root package (`examples/axum.rs` builds
//! `target/debug/examples/axum`). [`ServerProcess::spawn`] starts it on a free port
//! (`--addr 127.0.0.1:0`), waits for the one line it prints on stdout,
//! `listening on http://IP:PORT`, and from then on knows where to connect.
//!
//! The binary is found on disk rather than built here: a test that ran `cargo` would
//! wait forever on the build lock that the `cargo test` running it holds.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to print its listening line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How many of the last stderr lines are kept for error messages.
const STDERR_TAIL_LINES: usize = 40;

/// The environment variable that overrides where the example binaries are looked up.
pub const EXAMPLES_DIR_VARIABLE: &str = "WSSE_EXAMPLES_DIR";

/// The resident memory of process `pid` in KiB, from `/proc/PID/status`.
///
/// # Errors
///
/// When the file cannot be read or has no `VmRSS` line.
pub fn resident_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|error| format!("reading /proc/{pid}/status: {error}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// `$CARGO_TARGET_DIR`, else the workspace's `target/`: where cargo builds, and
/// where the peers are installed.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    )
}

/// The path of the example binary `name`.
///
/// `$WSSE_EXAMPLES_DIR/NAME` if that variable is set, else `examples/NAME` next to the
/// `deps/` folder the running test lives in (`target/debug/examples/NAME`).
///
/// # Errors
///
/// When the file does not exist, with the command that builds it.
pub fn example_binary(name: &str) -> Result<PathBuf, String> {
    let directory = match std::env::var_os(EXAMPLES_DIR_VARIABLE) {
        Some(directory) => PathBuf::from(directory),
        None => {
            let executable = std::env::current_exe()
                .map_err(|error| format!("cannot find the running executable: {error}"))?;
            // target/debug/deps/conformance-HASH -> target/debug
            let profile_directory = executable
                .parent()
                .and_then(Path::parent)
                .ok_or_else(|| format!("{} has no grandparent folder", executable.display()))?;
            profile_directory.join("examples")
        }
    };
    let binary = directory.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "the server binary {} does not exist: build it with `cargo build --example {name}` \
             (or set {EXAMPLES_DIR_VARIABLE} to the folder that holds it)",
            binary.display()
        ))
    }
}

/// The scheme and address in a server's `listening on http://IP:PORT` line (or
/// `https://` with `--tls`), or `None` if the line is not exactly that (surrounding
/// whitespace aside) or the port is 0.
pub fn parse_listening_line(line: &str) -> Option<(&'static str, SocketAddr)> {
    let rest = line.trim().strip_prefix("listening on ")?;
    let (scheme, address) = if let Some(address) = rest.strip_prefix("http://") {
        ("http", address)
    } else {
        ("https", rest.strip_prefix("https://")?)
    };
    let address: SocketAddr = address.parse().ok()?;
    (address.port() != 0).then_some((scheme, address))
}

/// A server running as a child process. Killed when dropped, so a failing test leaks
/// nothing.
pub struct ServerProcess {
    name: String,
    child: Child,
    addr: SocketAddr,
    /// `http`, or `https` for a server started with `--tls`.
    scheme: &'static str,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// What the server printed on stdout after the listening line.
    later_stdout: Arc<Mutex<Vec<String>>>,
    exit_status: Option<ExitStatus>,
}

impl std::fmt::Debug for ServerProcess {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServerProcess")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ServerProcess {
    /// Starts the example `name` ([`example_binary`]) with `--addr 127.0.0.1:0` and
    /// `extra_args`, and waits (at most [`STARTUP_TIMEOUT`]) for its listening line.
    ///
    /// # Errors
    ///
    /// A missing binary, a process that exits or prints something else first, or a
    /// timeout; the message ends with the tail of the server's stderr.
    pub fn spawn(name: &str, extra_args: &[&str]) -> Result<ServerProcess, String> {
        let binary = example_binary(name)?;
        ServerProcess::spawn_binary(name, &binary, extra_args)
    }

    /// Like [`ServerProcess::spawn`], on a chosen address instead of a free port: to
    /// start a server again where an earlier one listened, as a restart would.
    ///
    /// # Errors
    ///
    /// As for [`ServerProcess::spawn`] (a port still taken makes the server exit).
    pub fn spawn_at(
        name: &str,
        addr: SocketAddr,
        extra_args: &[&str],
    ) -> Result<ServerProcess, String> {
        let binary = example_binary(name)?;
        ServerProcess::start(name, Command::new(binary), &addr.to_string(), extra_args)
    }

    /// Like [`ServerProcess::spawn`], with the path of the binary given.
    ///
    /// # Errors
    ///
    /// As for [`ServerProcess::spawn`].
    pub fn spawn_binary(
        name: &str,
        binary: &Path,
        extra_args: &[&str],
    ) -> Result<ServerProcess, String> {
        ServerProcess::start(name, Command::new(binary), "127.0.0.1:0", extra_args)
    }

    /// Like [`ServerProcess::spawn`], with the command given: a wrapper such as
    /// `taskset -c 0 BINARY` that ends by running the server (the benchmarks pin
    /// servers to a core this way). `--addr 127.0.0.1:0` and `extra_args` are appended.
    ///
    /// # Errors
    ///
    /// As for [`ServerProcess::spawn`].
    pub fn spawn_command(
        name: &str,
        command: Command,
        extra_args: &[&str],
    ) -> Result<ServerProcess, String> {
        ServerProcess::start(name, command, "127.0.0.1:0", extra_args)
    }

    /// Starts `command` with `--addr ADDR` and `extra_args` appended, and waits for the
    /// listening line.
    fn start(
        name: &str,
        mut command: Command,
        addr: &str,
        extra_args: &[&str],
    ) -> Result<ServerProcess, String> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .args(["--addr", addr])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start {program}: {error}"))?;

        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        keep_last_lines(stderr, Arc::clone(&stderr_tail), STDERR_TAIL_LINES);

        // A thread reads stdout for the whole life of the process (so the pipe never
        // fills up) and hands each line over.
        let (lines_sender, lines) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_sender.send(line).is_err() {
                    break;
                }
            }
        });

        let mut process = ServerProcess {
            name: name.to_owned(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            scheme: "http",
            stderr_tail,
            later_stdout: Arc::new(Mutex::new(Vec::new())),
            exit_status: None,
        };
        let first_line = match lines.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(process.failure(&format!(
                    "printed no line on stdout within {} s",
                    STARTUP_TIMEOUT.as_secs()
                )));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Give the process a moment to be reaped, for a useful exit status.
                let status = process.wait_with_timeout(Duration::from_secs(2));
                return Err(process.failure(&format!(
                    "closed stdout before printing its listening line (exit: {status:?})"
                )));
            }
        };
        let Some((scheme, addr)) = parse_listening_line(&first_line) else {
            return Err(process.failure(&format!(
                "printed {first_line:?} on stdout, expected \"listening on http://IP:PORT\""
            )));
        };
        process.addr = addr;
        process.scheme = scheme;

        let later_stdout = Arc::clone(&process.later_stdout);
        thread::spawn(move || {
            while let Ok(line) = lines.recv() {
                later_stdout
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        Ok(process)
    }

    /// The error message for a process that failed: what happened plus stderr's tail.
    fn failure(&self, what: &str) -> String {
        format!(
            "server {} (pid {}) {what}\n--- last lines of its stderr ---\n{}",
            self.name,
            self.child.id(),
            self.stderr_tail()
        )
    }

    /// The name of the example.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` (`https://` with `--tls`), without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The last lines the server wrote to stderr (its logs), joined by newlines.
    pub fn stderr_tail(&self) -> String {
        // The reader thread may still be catching up with a process that just died.
        thread::sleep(Duration::from_millis(50));
        let tail = self
            .stderr_tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// The lines the server printed on stdout after its listening line (there should
    /// be none).
    pub fn later_stdout(&self) -> Vec<String> {
        self.later_stdout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends SIGTERM, the polite "please stop" of `docker stop` and systemd.
    ///
    /// # Errors
    ///
    /// If the signal cannot be sent (the process is already gone and reaped).
    pub fn terminate(&mut self) -> Result<(), String> {
        if self.try_wait()?.is_some() {
            return Err(format!("server {} has already exited", self.name));
        }
        let pid = libc::pid_t::try_from(self.child.id())
            .map_err(|_| format!("pid {} does not fit in pid_t", self.child.id()))?;
        // SAFETY: kill(2) only sends a signal; it touches no memory of ours. The pid is
        // that of our own child, which has not been reaped yet (try_wait said so), so
        // it cannot have been reused by another process.
        let result = unsafe { libc::kill(pid, libc::SIGTERM) };
        if result == 0 {
            Ok(())
        } else {
            Err(format!(
                "kill -TERM {pid} failed: {}",
                std::io::Error::last_os_error()
            ))
        }
    }

    /// The exit status if the process has exited, without waiting.
    ///
    /// # Errors
    ///
    /// If the status cannot be read.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, String> {
        if self.exit_status.is_none() {
            self.exit_status = self
                .child
                .try_wait()
                .map_err(|error| format!("cannot check on server {}: {error}", self.name))?;
        }
        Ok(self.exit_status)
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_with_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    /// Kills the process (SIGKILL) and reaps it. Harmless if it has already exited.
    pub fn kill(&mut self) {
        if matches!(self.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exit_status = Some(status);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Keeps the last `keep` lines of `stream` in `lines`, on a thread of its own, until
/// the stream closes (a child's stderr, for error messages and tests).
pub(crate) fn keep_last_lines(
    stream: impl Read + Send + 'static,
    lines: Arc<Mutex<VecDeque<String>>>,
    keep: usize,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                    let mut lines = lines.lock().unwrap_or_else(PoisonError::into_inner);
                    if lines.len() == keep {
                        lines.pop_front();
                    }
                    lines.push_back(text);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines() {
        assert_eq!(
            parse_listening_line("listening on http://127.0.0.1:41234"),
            Some(("http", "127.0.0.1:41234".parse().unwrap()))
        );
        assert_eq!(
            parse_listening_line("listening on http://[::1]:8080\r\n"),
            Some(("http", "[::1]:8080".parse().unwrap()))
        );
        assert_eq!(
            parse_listening_line("listening on https://127.0.0.1:3000"),
            Some(("https", "127.0.0.1:3000".parse().unwrap()))
        );
        for wrong in [
            "",
            "listening on 127.0.0.1:3000",
            "listening on ftp://127.0.0.1:3000",
            "listening on https://127.0.0.1:0",
            "Listening on http://127.0.0.1:3000",
            "listening on http://127.0.0.1",
            "listening on http://127.0.0.1:0",
            "listening on http://localhost:3000",
            "listening on http://127.0.0.1:3000/",
            "INFO listening on http://127.0.0.1:3000",
        ] {
            assert_eq!(parse_listening_line(wrong), None, "{wrong:?}");
        }
    }

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let error =
            ServerProcess::spawn_binary("nope", Path::new("/nonexistent/wsse-testkit/nope"), &[])
                .unwrap_err();
        assert!(error.contains("cannot start"), "{error}");
    }

    #[test]
    fn example_binary_names_the_build_command() {
        let error = example_binary("no-such-example-wsse").unwrap_err();
        assert!(
            error.contains("cargo build --example no-such-example-wsse"),
            "{error}"
        );
    }

    /// `sh -c SCRIPT sh --addr 127.0.0.1:0`: the flags become `$1` and `$2`.
    fn fake_server(script: &str) -> Result<ServerProcess, String> {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", script, "sh"]);
        ServerProcess::start("fake", command, "127.0.0.1:0", &[])
    }

    #[test]
    fn a_process_that_prints_something_else_is_refused_with_its_stderr() {
        let error = fake_server("echo booting >&2; echo hello; sleep 5").unwrap_err();
        assert!(error.contains("\"hello\""), "{error}");
        assert!(error.contains("booting"), "{error}");
    }

    #[test]
    fn a_process_that_dies_is_reported() {
        let error = fake_server("echo 'no port for me' >&2; exit 3").unwrap_err();
        assert!(error.contains("closed stdout"), "{error}");
        assert!(error.contains("no port for me"), "{error}");
    }

    #[test]
    fn a_fake_server_gets_its_flags_and_is_terminated_and_reaped() {
        let mut process = fake_server(
            "[ \"$1 $2\" = '--addr 127.0.0.1:0' ] || exit 1; trap 'exit 0' TERM; \
             echo 'listening on http://127.0.0.1:5555'; while :; do sleep 0.05; done",
        )
        .unwrap();
        assert_eq!(process.addr(), "127.0.0.1:5555".parse().unwrap());
        assert_eq!(process.base_url(), "http://127.0.0.1:5555");
        assert_eq!(process.try_wait().unwrap(), None);
        process.terminate().unwrap();
        let status = process
            .wait_with_timeout(Duration::from_secs(5))
            .expect("exited after SIGTERM");
        assert!(status.success(), "{status:?}");
        assert!(process.terminate().is_err());
    }
}
