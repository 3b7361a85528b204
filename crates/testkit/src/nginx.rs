//! nginx in front of the servers, terminating TLS, configured by the repository's
//! own file `deploy/nginx/wsse.conf` (the one the book shows), and a TLS client to
//! talk to it.
//!
//! [`Nginx::start`] writes a self-signed certificate for `localhost` and a small
//! `nginx.conf` into a folder of its own under the system's temporary folder; that
//! `nginx.conf` holds only what a test needs around the file (pid file, logs,
//! temporary paths, `daemon off`) and includes `wsse.conf` with four strings
//! replaced: the listen address, the upstream's `server` line (one per upstream
//! given) and the two certificate paths. Everything else of the file is tested as
//! written. Besides the TLS address, the same server block also listens without TLS
//! on a second port ([`Nginx::plain_addr`]), for clients of this project that speak
//! no TLS (the reconnecting chat and `EventSource` clients) and for a browser that
//! should not be asked to accept a self-signed certificate. nginx runs as one process, a child of the test, and is stopped by its
//! pid when the [`Nginx`] is dropped, also when the test fails.
//!
//! [`TlsConnection`] is `openssl s_client`: bytes written to it go to the server
//! encrypted, and what the server sends comes back in plain text, which is all a
//! test needs to send an HTTP request or WebSocket frames over TLS without a TLS
//! library.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{ResponseHead, find_head_end};
use crate::temporary::{TemporaryFolder, accepts_connections, free_addr, read_lossy};

/// The nginx configuration the book shows, as it is in the repository.
pub const CONFIG_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/nginx/wsse.conf");

/// What installs the programs this module runs, on Debian.
pub const INSTALL_COMMAND: &str =
    "apt-get update && apt-get install -y --no-install-recommends nginx openssl";

/// The host name the certificate is for, and the one requests name.
pub const HOST_NAME: &str = "localhost";

/// The strings of [`CONFIG_FILE`] that [`Nginx::start`] replaces; each must occur
/// exactly once.
const LISTEN_LINE: &str = "listen 443 ssl;";
const UPSTREAM_LINE: &str = "server 127.0.0.1:3001;";
const CERTIFICATE_PATH: &str = "/etc/nginx/tls/wsse.crt";
const KEY_PATH: &str = "/etc/nginx/tls/wsse.key";

/// How long nginx may take to accept connections after it starts.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why nginx or openssl cannot run here, or `None` when both can.
pub fn missing_programs() -> Option<String> {
    for (program, argument) in [("nginx", "-v"), ("openssl", "version")] {
        let runs = Command::new(program)
            .arg(argument)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !runs {
            return Some(format!("`{program} {argument}` does not run"));
        }
    }
    None
}

/// nginx running in front of one or more upstream servers, with TLS on a free port of
/// 127.0.0.1.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    /// Configuration, certificate, logs and pid file; removed after nginx stopped.
    directory: TemporaryFolder,
    addr: SocketAddr,
    plain_addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx with [`CONFIG_FILE`] proxying to `upstreams`.
    ///
    /// # Errors
    ///
    /// A missing program, a configuration nginx refuses (its error log is in the
    /// message), or an nginx that does not accept connections within ten seconds.
    pub fn start(upstreams: &[SocketAddr]) -> Result<Nginx, String> {
        let directory = TemporaryFolder::create("wsse-nginx").map_err(|error| error.to_string())?;
        write_certificate(directory.path())?;
        // A port the kernel just said is free; another process could take it before
        // nginx binds it, so try a few.
        let mut last_error = String::new();
        for _ in 0..3 {
            let addr = free_addr().map_err(|error| error.to_string())?;
            let plain_addr = free_addr().map_err(|error| error.to_string())?;
            write_configuration(directory.path(), addr, plain_addr, upstreams)?;
            match Nginx::spawn(directory.path(), addr) {
                Ok(child) => {
                    return Ok(Nginx {
                        child,
                        directory,
                        addr,
                        plain_addr,
                    });
                }
                Err(error) if error.contains("Address already in use") => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    /// Runs nginx in `directory` and waits until it accepts connections on `addr`.
    fn spawn(directory: &Path, addr: SocketAddr) -> Result<Child, String> {
        let error_log = directory.join("error.log");
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(directory)
            .arg("-c")
            .arg(directory.join("nginx.conf"))
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start nginx: {error}"))?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "nginx exited at startup ({status}):\n{}",
                    read_lossy(&error_log)
                ));
            }
            if accepts_connections(addr) {
                return Ok(child);
            }
            if Instant::now() > deadline {
                stop(&mut child);
                return Err(format!(
                    "nginx accepted no connection on {addr} within {} s:\n{}",
                    STARTUP_TIMEOUT.as_secs(),
                    read_lossy(&error_log)
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where nginx listens (TLS).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the same server block listens without TLS (plain HTTP and `ws://`).
    pub fn plain_addr(&self) -> SocketAddr {
        self.plain_addr
    }

    /// `localhost:PORT`: the `Host` a browser sends to this nginx.
    pub fn host(&self) -> String {
        format!("{HOST_NAME}:{}", self.addr.port())
    }

    /// `https://localhost:PORT`: the `Origin` of a page this nginx served.
    pub fn origin(&self) -> String {
        format!("https://{}", self.host())
    }

    /// The certificate nginx presents (self-signed, so also the one to trust).
    pub fn certificate(&self) -> PathBuf {
        self.directory.path().join("wsse.crt")
    }

    /// The configuration nginx runs: [`CONFIG_FILE`] with the four strings replaced.
    pub fn configuration(&self) -> String {
        read_lossy(&self.directory.path().join("wsse.conf"))
    }

    /// nginx's error log so far, for the message of a failing test.
    pub fn error_log(&self) -> String {
        read_lossy(&self.directory.path().join("error.log"))
    }

    /// nginx's exit status if it has exited (by itself: it runs until dropped),
    /// without waiting; for a program that watches the nginx it started.
    ///
    /// # Errors
    ///
    /// If the status cannot be read.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// A new TLS connection to this nginx.
    ///
    /// # Errors
    ///
    /// When `openssl s_client` cannot be started.
    pub fn connect(&self) -> Result<TlsConnection, String> {
        TlsConnection::connect(None, self.addr, HOST_NAME, &self.certificate())
    }

    /// A new TLS connection to this nginx from the local address `local` (any of
    /// 127.0.0.0/8), so that a test can be several clients.
    ///
    /// # Errors
    ///
    /// As for [`Nginx::connect`].
    pub fn connect_from(&self, local: IpAddr) -> Result<TlsConnection, String> {
        TlsConnection::connect(Some(local), self.addr, HOST_NAME, &self.certificate())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The folder goes after this, with the fields.
        stop(&mut self.child);
    }
}

/// Asks a child to stop with SIGTERM (nginx's fast shutdown), and kills it if it is
/// still there after two seconds; then reaps it.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) only sends a signal. The pid is our own child's, not reaped
        // yet (try_wait said so), so no other process can have it.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `wsse.crt` and `wsse.key` in `directory`: a self-signed certificate for
/// `localhost` and 127.0.0.1, valid for two days.
fn write_certificate(directory: &Path) -> Result<(), String> {
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(directory.join("wsse.key"))
        .arg("-out")
        .arg(directory.join("wsse.crt"))
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run openssl: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl could not make a certificate: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// `wsse.conf` (the repository's file, four strings replaced) and the `nginx.conf`
/// that includes it, in `directory`.
fn write_configuration(
    directory: &Path,
    addr: SocketAddr,
    plain_addr: SocketAddr,
    upstreams: &[SocketAddr],
) -> Result<(), String> {
    let original = std::fs::read_to_string(CONFIG_FILE)
        .map_err(|error| format!("cannot read {CONFIG_FILE}: {error}"))?;
    let upstream_lines: Vec<String> = upstreams
        .iter()
        .map(|upstream| format!("server {upstream};"))
        .collect();
    let directory_text = directory.display();
    let mut configuration = original;
    for (from, to) in [
        (
            LISTEN_LINE,
            format!("listen {addr} ssl;\n    listen {plain_addr};"),
        ),
        (UPSTREAM_LINE, upstream_lines.join("\n    ")),
        (CERTIFICATE_PATH, format!("{directory_text}/wsse.crt")),
        (KEY_PATH, format!("{directory_text}/wsse.key")),
    ] {
        let count = configuration.matches(from).count();
        if count != 1 {
            return Err(format!(
                "{CONFIG_FILE} should hold `{from}` once, to be replaced by the test; \
                 it holds it {count} times"
            ));
        }
        configuration = configuration.replace(from, &to);
    }
    write(&directory.join("wsse.conf"), &configuration)?;
    // One process (no master and workers), in the foreground, everything it writes
    // kept in `directory`.
    let outer = format!(
        "daemon off;\n\
         master_process off;\n\
         pid {directory_text}/nginx.pid;\n\
         error_log {directory_text}/error.log info;\n\
         events {{\n    worker_connections 256;\n}}\n\
         http {{\n\
         \x20   access_log {directory_text}/access.log;\n\
         \x20   client_body_temp_path {directory_text}/client_body;\n\
         \x20   proxy_temp_path {directory_text}/proxy;\n\
         \x20   fastcgi_temp_path {directory_text}/fastcgi;\n\
         \x20   uwsgi_temp_path {directory_text}/uwsgi;\n\
         \x20   scgi_temp_path {directory_text}/scgi;\n\
         \x20   include {directory_text}/wsse.conf;\n\
         }}\n"
    );
    write(&directory.join("nginx.conf"), &outer)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// One TLS connection, through `openssl s_client` running as a child process: what
/// is written goes to the server encrypted, what the server sends is read in plain
/// text. The certificate is verified against the one given, for the host name given.
#[derive(Debug)]
pub struct TlsConnection {
    child: Child,
    stdin: ChildStdin,
    chunks: mpsc::Receiver<Vec<u8>>,
    /// Received bytes not taken yet.
    pub received: Vec<u8>,
    /// Whether the server closed the connection (s_client ended).
    pub closed: bool,
}

impl TlsConnection {
    /// Connects to `addr` (from `local` if given), sending `server_name` (SNI) and
    /// trusting only `certificate`.
    ///
    /// # Errors
    ///
    /// When `openssl` cannot be started; a failed handshake shows as a connection
    /// that is closed at once.
    pub fn connect(
        local: Option<IpAddr>,
        addr: SocketAddr,
        server_name: &str,
        certificate: &Path,
    ) -> Result<TlsConnection, String> {
        let mut command = Command::new("openssl");
        command.args([
            "s_client",
            "-quiet",
            "-verify_quiet",
            "-verify_return_error",
        ]);
        if let Some(local) = local {
            command.args(["-bind", &SocketAddr::new(local, 0).to_string()]);
        }
        let mut child = command
            .args(["-connect", &addr.to_string(), "-servername", server_name])
            .args(["-verify_hostname", server_name, "-CAfile"])
            .arg(certificate)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start openssl s_client: {error}"))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let (sender, chunks) = mpsc::channel();
        thread::spawn(move || {
            let mut buffer = vec![0; 64 * 1024];
            while let Ok(read @ 1..) = stdout.read(&mut buffer) {
                if sender.send(buffer[..read].to_vec()).is_err() {
                    break;
                }
            }
        });
        Ok(TlsConnection {
            child,
            stdin,
            chunks,
            received: Vec::new(),
            closed: false,
        })
    }

    /// Sends `bytes`.
    ///
    /// # Errors
    ///
    /// When s_client has ended.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stdin
            .write_all(bytes)
            .and_then(|()| self.stdin.flush())
            .map_err(|error| format!("sending over TLS failed: {error}"))
    }

    /// Waits at most `wait` for more bytes and appends them to
    /// [`TlsConnection::received`]. `Ok(false)` when the connection has closed.
    ///
    /// # Errors
    ///
    /// When nothing arrived within `wait`.
    pub fn receive(&mut self, wait: Duration) -> Result<bool, String> {
        if self.closed {
            return Ok(false);
        }
        match self.chunks.recv_timeout(wait) {
            Ok(chunk) => {
                self.received.extend_from_slice(&chunk);
                Ok(true)
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                Ok(false)
            }
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "nothing arrived over TLS within {} ms",
                wait.as_millis()
            )),
        }
    }

    /// Reads until a whole response head has arrived, within `wait`, and takes it out
    /// of [`TlsConnection::received`] (what follows it stays there).
    ///
    /// # Errors
    ///
    /// A timeout, a connection closed first, or a malformed head.
    pub fn receive_head(&mut self, wait: Duration) -> Result<ResponseHead, String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(end) = find_head_end(&self.received) {
                let head = ResponseHead::parse(&self.received[..end])?;
                self.received.drain(..end);
                return Ok(head);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.receive(left)? {
                return Err(format!(
                    "the connection closed before a whole response head (got {:?})",
                    String::from_utf8_lossy(&self.received)
                ));
            }
        }
    }
}

impl Drop for TlsConnection {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
