//! Running a client program (an example binary such as `chat_client`) as a child
//! process: lines go to its stdin, its stdout is read line by line with time
//! limits, and its stderr (the connection log) is kept for assertions and for the
//! message of a failing test.
//!
//! Like [`ServerProcess`](crate::ServerProcess), the binary is found on disk
//! ([`example_binary`]) and killed when dropped.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::{example_binary, keep_last_lines};

/// How many stderr lines are kept (the oldest go first).
const STDERR_LINES_KEPT: usize = 2000;

/// A client program running as a child process.
pub struct ProgramProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::Receiver<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    exit_status: Option<ExitStatus>,
}

impl std::fmt::Debug for ProgramProcess {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProgramProcess")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl ProgramProcess {
    /// Starts the example `name` with `arguments`, stdin piped.
    ///
    /// # Errors
    ///
    /// A missing binary (with the command that builds it) or a failed start.
    pub fn spawn(name: &str, arguments: &[&str]) -> Result<ProgramProcess, String> {
        let binary = example_binary(name)?;
        ProgramProcess::spawn_binary(name, &binary, arguments)
    }

    /// Like [`ProgramProcess::spawn`], with the path of the binary given.
    ///
    /// # Errors
    ///
    /// A failed start.
    pub fn spawn_binary(
        name: &str,
        binary: &Path,
        arguments: &[&str],
    ) -> Result<ProgramProcess, String> {
        let mut child = Command::new(binary)
            .args(arguments)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", binary.display()))?;
        let stdin = child.stdin.take();

        let (lines_sender, stdout) = mpsc::channel();
        let output = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(output).lines() {
                let Ok(line) = line else { break };
                if lines_sender.send(line).is_err() {
                    break;
                }
            }
        });

        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let errors = child.stderr.take().expect("stderr is piped");
        keep_last_lines(errors, Arc::clone(&stderr), STDERR_LINES_KEPT);

        Ok(ProgramProcess {
            name: name.to_owned(),
            child,
            stdin,
            stdout,
            stderr,
            exit_status: None,
        })
    }

    /// The program's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes `line` and a newline to the program's stdin.
    ///
    /// # Errors
    ///
    /// When stdin was closed or the program has exited.
    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("the stdin of {} is closed", self.name))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|error| format!("writing to {}: {error}", self.name))
    }

    /// Closes the program's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next line of stdout within `wait`; `Ok(None)` once stdout is closed.
    ///
    /// # Errors
    ///
    /// When no line came within `wait`.
    pub fn next_line(&self, wait: Duration) -> Result<Option<String>, String> {
        match self.stdout.recv_timeout(wait) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "{} printed no line within {} ms",
                self.name,
                wait.as_millis()
            )),
        }
    }

    /// Every stdout line until stdout closes or `deadline`, whichever comes first.
    pub fn lines_until(&self, deadline: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => return lines,
            }
        }
    }

    /// The lines the program wrote to stderr so far (the last 2000).
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// The last `count` stderr lines, joined: for the message of a failing test.
    pub fn stderr_tail(&self, count: usize) -> String {
        // The reader thread may still be catching up with a process that just died.
        thread::sleep(Duration::from_millis(50));
        let lines = self.stderr_lines();
        lines[lines.len().saturating_sub(count)..].join("\n")
    }

    /// Waits up to `wait` for a stderr line containing `needle`.
    pub fn wait_for_stderr(&self, needle: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if self.stderr_lines().iter().any(|line| line.contains(needle)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status if the program has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            self.exit_status = self.child.try_wait().ok().flatten();
        }
        self.exit_status
    }

    /// Waits up to `wait` for the program to exit; `None` if it is still running.
    pub fn wait_with_timeout(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the program (SIGKILL) and reaps it. Harmless if it has already exited.
    pub fn kill(&mut self) {
        if self.try_wait().is_some() {
            return;
        }
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exit_status = Some(status);
        }
    }
}

impl Drop for ProgramProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> ProgramProcess {
        ProgramProcess::spawn_binary("sh", Path::new("/bin/sh"), &["-c", script]).unwrap()
    }

    #[test]
    fn lines_in_and_out_and_the_exit_status() {
        let mut program = shell("echo started >&2; while read line; do echo \"got $line\"; done");
        program.send_line("one").unwrap();
        assert_eq!(
            program
                .next_line(Duration::from_secs(5))
                .unwrap()
                .as_deref(),
            Some("got one")
        );
        assert!(program.wait_for_stderr("started", Duration::from_secs(5)));
        assert!(program.next_line(Duration::from_millis(50)).is_err());
        program.close_stdin();
        assert_eq!(program.next_line(Duration::from_secs(5)).unwrap(), None);
        let status = program.wait_with_timeout(Duration::from_secs(5)).unwrap();
        assert!(status.success());
        assert!(program.send_line("late").is_err());
    }

    #[test]
    fn a_program_that_runs_on_is_killed() {
        let mut program = shell("sleep 30");
        assert_eq!(program.wait_with_timeout(Duration::from_millis(50)), None);
        program.kill();
        assert!(program.try_wait().is_some());
    }
}
