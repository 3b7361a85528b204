//! What a test borrows from the machine and gives back: a folder of its own under
//! the system's temporary folder, and a free port. Shared by the modules that run a
//! real program for a test ([`crate::nginx`], [`crate::redis`]).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A folder of its own, deleted with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct TemporaryFolder(PathBuf);

impl TemporaryFolder {
    /// Creates `PREFIX-PID-RANDOM` under the system's temporary folder: the pid keeps
    /// two test processes apart, the random part two tests of one process.
    pub(crate) fn create(prefix: &str) -> io::Result<TemporaryFolder> {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&path).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot create {}: {error}", path.display()),
            )
        })?;
        Ok(TemporaryFolder(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TemporaryFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free port on 127.0.0.1, as the kernel picks one for port 0. Free when this
/// returns; another process could take it before the caller binds it, so callers
/// retry on "Address already in use".
pub fn free_addr() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|error| io::Error::new(error.kind(), format!("cannot find a free port: {error}")))
}

/// Whether a program started on `addr` accepts connections yet: the probe of a
/// startup loop. A port from [`free_addr`] is in the ephemeral range, so while the
/// program is still starting a probe can connect to itself (TCP simultaneous open:
/// source port = destination port); that is not the program listening.
pub fn accepts_connections(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .is_ok_and(|probe| probe.local_addr().ok() != probe.peer_addr().ok())
}

/// A file's text, or what went wrong reading it: for the message of a failing test.
pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map_or_else(
        |error| format!("({}: {error})", path.display()),
        |bytes| String::from_utf8_lossy(&bytes).into_owned(),
    )
}
