//! What a scenario gets to work with: where the server listens and, for the scenarios
//! that stop it, the process itself.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::process::ServerProcess;

/// The server under test, as a scenario sees it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The example's name (`axum`, `scratch`, ...).
    pub server: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The process, for scenarios that run on a process of their own.
    process: Option<Arc<Mutex<ServerProcess>>>,
}

impl Target {
    /// A target that scenarios may only talk to (the process is shared).
    pub fn shared(server: &str, addr: SocketAddr) -> Target {
        Target {
            server: server.to_owned(),
            addr,
            process: None,
        }
    }

    /// A target whose process the scenario owns, and may stop.
    pub fn owning(server: &str, process: Arc<Mutex<ServerProcess>>) -> Target {
        let addr = lock(&process).addr();
        Target {
            server: server.to_owned(),
            addr,
            process: Some(process),
        }
    }

    /// `http://IP:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `IP:PORT`, the value of the `Host` header a client sends.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    fn process(&self) -> Result<&Arc<Mutex<ServerProcess>>, String> {
        self.process.as_ref().ok_or_else(|| {
            "this scenario needs a server process of its own (Isolation::OwnProcess)".to_owned()
        })
    }

    /// Sends SIGTERM to the server.
    ///
    /// # Errors
    ///
    /// Without a process of its own, or when the signal cannot be sent.
    pub fn terminate(&self) -> Result<(), String> {
        lock(self.process()?).terminate()
    }

    /// Waits up to `wait` for the server to exit.
    ///
    /// # Errors
    ///
    /// Without a process of its own, or when it is still running after `wait`.
    pub async fn wait_exit(&self, wait: Duration) -> Result<ExitStatus, String> {
        let process = self.process()?;
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = lock(process).try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the server is still running {} ms later",
                    wait.as_millis()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// What the server printed on stdout after its listening line.
    ///
    /// # Errors
    ///
    /// Without a process of its own.
    pub fn later_stdout(&self) -> Result<Vec<String>, String> {
        Ok(lock(self.process()?).later_stdout())
    }

    /// The server's process id.
    ///
    /// # Errors
    ///
    /// Without a process of its own.
    pub fn pid(&self) -> Result<u32, String> {
        Ok(lock(self.process()?).pid())
    }

    /// The last lines of the server's stderr, if the scenario owns the process.
    pub fn stderr_tail(&self) -> Option<String> {
        self.process
            .as_ref()
            .map(|process| lock(process).stderr_tail())
    }
}

fn lock(process: &Mutex<ServerProcess>) -> std::sync::MutexGuard<'_, ServerProcess> {
    process.lock().unwrap_or_else(PoisonError::into_inner)
}
