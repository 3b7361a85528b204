//! A real `redis-server` run by a test, for the servers' Redis backend
//! (`--redis redis://127.0.0.1:PORT`).
//!
//! [`RedisServer::start`] runs Debian's `redis-server` (version 7) as a child of the
//! test, on a free port of 127.0.0.1, in a folder of its own that is its working
//! directory and holds its log. Persistence is off (`--save ""`, `--appendonly no`):
//! the data lives in memory only, so a restart loses it, as it does for a Redis
//! deployed as a cache or a message bus. It is ready when it answers PING.
//!
//! A test can then fail Redis the ways a backend must survive:
//!
//! - [`RedisServer::restart_empty`]: killed and started again on the same port, with
//!   no data (a crash and a restart: the clients' URL stays valid);
//! - [`RedisServer::pause`] and [`RedisServer::resume`]: frozen (SIGSTOP) and thawed
//!   (SIGCONT). Meanwhile connections open but nothing is answered, like a host that
//!   stalls or a network that drops packets; afterwards its data and its clients'
//!   connections are still there;
//! - [`RedisServer::kill`], also when dropped, so a failing test leaks no process.
//!
//! [`RedisServer::command`] speaks RESP, the Redis protocol, over a plain
//! [`TcpStream`], so neither this module nor a test needs a Redis client library.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::temporary::{TemporaryFolder, free_addr, read_lossy};

/// The program this module runs.
const PROGRAM: &str = "redis-server";

/// What installs [`PROGRAM`] on Debian.
pub const INSTALL_COMMAND: &str =
    "apt-get update && apt-get install -y --no-install-recommends redis-server";

/// How long redis-server may take to answer PING after it starts.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`RedisServer::command`] waits to connect, and then for each read and
/// write. A running Redis answers a test's command within microseconds, so only a
/// paused or dead one takes this long.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// The file in the server's folder that gets its stdout and stderr: its log (Redis
/// logs to stdout without `--logfile`), and a configuration error it reports before
/// it has a log.
const LOG_FILE: &str = "redis.log";

/// The snapshot Redis loads at startup from its working directory, if there is one.
/// Persistence is off, but a test may still send SAVE.
const SNAPSHOT_FILE: &str = "dump.rdb";

/// How many lines of the log an error message ends with.
const LOG_TAIL_LINES: usize = 20;

/// Why redis-server cannot run here, or `None` when it can.
pub fn missing_program() -> Option<String> {
    let runs = Command::new(PROGRAM)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    (!runs).then(|| format!("`{PROGRAM} --version` does not run"))
}

/// redis-server running as a child of this process on a port of 127.0.0.1, with no
/// persistence. Killed, and its folder removed, when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    addr: SocketAddr,
    /// Working directory and log; `None` once [`RedisServer::kill`] removed it.
    folder: Option<TemporaryFolder>,
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it answers PING.
    ///
    /// # Errors
    ///
    /// A missing program, a process that exits at startup, or one that does not
    /// answer PING within ten seconds; the message ends with the tail of its log.
    pub fn start() -> io::Result<RedisServer> {
        let folder = TemporaryFolder::create("wsse-redis")?;
        // A port the kernel just said is free; another process could take it before
        // redis-server binds it, so try a few.
        let mut last_error = None;
        for _ in 0..3 {
            let addr = free_addr()?;
            match spawn(folder.path(), addr) {
                Ok(child) => {
                    return Ok(RedisServer {
                        child,
                        addr,
                        folder: Some(folder),
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.expect("the loop ran and every attempt failed"))
    }

    /// `redis://127.0.0.1:PORT`, what the servers take as `--redis`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Where redis-server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id of the redis-server running now (a new one after
    /// [`RedisServer::restart_empty`]).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills redis-server (SIGKILL: no chance to save or say goodbye, as in a crash),
    /// waits for it, and starts a new one on the same port with no data, waiting until
    /// it answers PING. Clients that reconnect to [`RedisServer::url`] find it there.
    ///
    /// # Errors
    ///
    /// As for [`RedisServer::start`], with the port fixed: a process that took the
    /// port meanwhile makes this fail. Also after [`RedisServer::kill`].
    pub fn restart_empty(&mut self) -> io::Result<()> {
        let Some(folder) = &self.folder else {
            return Err(io::Error::other("this redis-server was killed for good"));
        };
        kill_and_reap(&mut self.child);
        match std::fs::remove_file(folder.path().join(SNAPSHOT_FILE)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        self.child = spawn(folder.path(), self.addr)?;
        Ok(())
    }

    /// Freezes redis-server with SIGSTOP, and returns once the kernel reports it
    /// stopped: from then on the kernel still accepts connections for it, but
    /// nothing is read or answered until [`RedisServer::resume`].
    ///
    /// # Errors
    ///
    /// If the signal cannot be sent, or the process does not stop within a second.
    pub fn pause(&self) -> io::Result<()> {
        self.signal(libc::SIGSTOP)?;
        self.wait_until_stopped(true)
    }

    /// Lets a paused redis-server run again (SIGCONT), with its data and connections
    /// as they were; returns once the kernel reports it running.
    ///
    /// # Errors
    ///
    /// If the signal cannot be sent, or the process is still stopped after a second.
    pub fn resume(&self) -> io::Result<()> {
        self.signal(libc::SIGCONT)?;
        self.wait_until_stopped(false)
    }

    /// Kills redis-server (SIGKILL), waits for it, and removes its folder. Harmless
    /// when done before; [`Drop`] does it too.
    pub fn kill(&mut self) {
        kill_and_reap(&mut self.child);
        self.folder = None;
    }

    /// The exit status if redis-server has exited (by itself, or killed), without
    /// waiting; for a program that watches the redis-server it started.
    ///
    /// # Errors
    ///
    /// If the status cannot be read.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// redis-server's log so far, across restarts, for the message of a failing test.
    pub fn log(&self) -> String {
        match &self.folder {
            Some(folder) => read_lossy(&folder.path().join(LOG_FILE)),
            None => "(killed: its log was removed with its folder)".to_owned(),
        }
    }

    /// Sends one command and returns the reply as Redis wrote it, CRLFs included:
    /// `+OK\r\n`, `:3\r\n`, `$5\r\nhello\r\n`, `$-1\r\n` (no such key), `*2\r\n...`
    /// (an array, each element read the same way) or `-ERR ...\r\n`: an error reply
    /// is a reply like the others, not an `Err`. Each call opens a connection of its
    /// own and closes it.
    ///
    /// # Errors
    ///
    /// No connection, no whole reply within [`COMMAND_TIMEOUT`] per read (a paused
    /// or dead Redis), or bytes that are not a RESP2 reply.
    pub fn command(&self, arguments: &[&str]) -> io::Result<String> {
        command_at(self.addr, arguments, COMMAND_TIMEOUT)
    }

    fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: kill(2) only sends a signal; it touches no memory of ours. The pid is
        // our own child's, and only methods that take `&mut self` reap it, so it has
        // not been reaped (at worst it is a zombie) and no other process can have it.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits (at most a second) until the process is stopped, or is no longer, as
    /// `/proc/PID/stat` tells: a signal is delivered a moment after kill(2) returns.
    fn wait_until_stopped(&self, stopped: bool) -> io::Result<()> {
        let stat = format!("/proc/{}/stat", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let text = std::fs::read_to_string(&stat)?;
            // "PID (COMMAND) STATE ...": the command may hold spaces and parentheses.
            let state = text
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            if (state == Some('T')) == stopped {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "redis-server (pid {}) is in state {state:?} a second after the signal",
                        self.child.id()
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs redis-server in `folder` on `addr`'s port and waits until it answers PING.
/// Its output is appended to the log, so the log tells the story of every restart;
/// an error message shows only what this start wrote.
fn spawn(folder: &Path, addr: SocketAddr) -> io::Result<Child> {
    let log_path = folder.join(LOG_FILE);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let log_start = log.seek(SeekFrom::End(0))?;
    let mut child = Command::new(PROGRAM)
        .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(folder)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|error| {
            io::Error::new(error.kind(), format!("cannot start {PROGRAM}: {error}"))
        })?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            let log = log_tail(&log_path, log_start);
            let kind = if log.contains("Address already in use") {
                io::ErrorKind::AddrInUse
            } else {
                io::ErrorKind::Other
            };
            return Err(io::Error::new(
                kind,
                format!(
                    "{PROGRAM} on port {} exited at startup ({status}):\n{log}",
                    addr.port()
                ),
            ));
        }
        let ping = command_at(addr, &["PING"], Duration::from_millis(200));
        if ping.is_ok_and(|reply| reply == "+PONG\r\n") {
            return Ok(child);
        }
        if Instant::now() > deadline {
            kill_and_reap(&mut child);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{PROGRAM} did not answer PING on {addr} within {} s:\n{}",
                    STARTUP_TIMEOUT.as_secs(),
                    log_tail(&log_path, log_start)
                ),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The last [`LOG_TAIL_LINES`] lines of the log after byte `start`.
fn log_tail(log_path: &Path, start: u64) -> String {
    let mut bytes = Vec::new();
    let read = File::open(log_path)
        .and_then(|mut file| {
            file.seek(SeekFrom::Start(start))?;
            file.read_to_end(&mut bytes)
        })
        .map_err(|error| format!("({}: {error})", log_path.display()));
    if let Err(error) = read {
        return error;
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// SIGKILL, then reap. Harmless on a process that has exited (or been reaped).
fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// One command to the Redis at `addr`, on a new connection: the reply as written.
fn command_at(addr: SocketAddr, arguments: &[&str], timeout: Duration) -> io::Result<String> {
    let exchange = || -> io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(&encode_command(arguments))?;
        let mut reply = Vec::new();
        read_reply(&mut BufReader::new(stream), &mut reply)?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    };
    exchange().map_err(|error| {
        // A read that times out says "Resource temporarily unavailable" on Linux.
        let what = match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
                "no reply within {} ms (is it paused or gone?)",
                timeout.as_millis()
            ),
            _ => error.to_string(),
        };
        io::Error::new(
            error.kind(),
            format!("redis at {addr}, {arguments:?}: {what}"),
        )
    })
}

/// A command as a client sends it: an array of bulk strings,
/// `*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n`.
fn encode_command(arguments: &[&str]) -> Vec<u8> {
    let mut bytes = format!("*{}\r\n", arguments.len()).into_bytes();
    for argument in arguments {
        bytes.extend_from_slice(format!("${}\r\n", argument.len()).as_bytes());
        bytes.extend_from_slice(argument.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes
}

/// Reads one whole RESP2 reply and appends it, as it arrived, to `reply`. A bulk
/// string is read by its length, since its value may hold CRLF; an array is read
/// element by element.
fn read_reply(reader: &mut impl BufRead, reply: &mut Vec<u8>) -> io::Result<()> {
    let line_start = reply.len();
    read_line(reader, reply)?;
    let line = &reply[line_start..reply.len() - 2];
    let kind = line.first().copied();
    let length = || -> io::Result<i64> {
        std::str::from_utf8(&line[1..])
            .ok()
            .and_then(|digits| digits.parse().ok())
            .ok_or_else(|| invalid_reply(line))
    };
    match kind {
        Some(b'+' | b'-' | b':') => Ok(()),
        Some(b'$') => {
            // -1 is the null bulk string: nothing follows.
            if let Ok(length @ 0..) = usize::try_from(length()?) {
                let value_start = reply.len();
                reply.resize(value_start + length + 2, 0);
                reader.read_exact(&mut reply[value_start..])?;
                if !reply.ends_with(b"\r\n") {
                    return Err(invalid_reply(&reply[line_start..]));
                }
            }
            Ok(())
        }
        Some(b'*') => {
            // -1 is the null array: nothing follows.
            for _ in 0..length()?.max(0) {
                read_reply(reader, reply)?;
            }
            Ok(())
        }
        _ => Err(invalid_reply(line)),
    }
}

/// Reads up to and including the next LF, which must follow a CR.
fn read_line(reader: &mut impl BufRead, reply: &mut Vec<u8>) -> io::Result<()> {
    let start = reply.len();
    if reader.read_until(b'\n', reply)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed before a whole reply",
        ));
    }
    if reply.ends_with(b"\r\n") {
        Ok(())
    } else {
        Err(invalid_reply(&reply[start..]))
    }
}

fn invalid_reply(bytes: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a RESP2 reply: {:?}", String::from_utf8_lossy(bytes)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A started redis-server, or `None` (with a message) when the program is
    /// missing; under `CI=true` a missing program fails the test instead.
    fn start_or_skip(test: &str) -> Option<RedisServer> {
        if let Some(reason) = missing_program() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{reason}; install it with: {INSTALL_COMMAND}"
            );
            eprintln!("skipped: {test}: {reason}; install it with: {INSTALL_COMMAND}");
            return None;
        }
        Some(RedisServer::start().expect("redis-server starts"))
    }

    fn process_exists(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn replies_are_read_whole_by_their_lengths() {
        let mut reply = Vec::new();
        let mut input: &[u8] = b"*3\r\n$4\r\na\r\nb\r\n$-1\r\n:7\r\n+NEXT\r\n";
        read_reply(&mut input, &mut reply).unwrap();
        assert_eq!(reply, b"*3\r\n$4\r\na\r\nb\r\n$-1\r\n:7\r\n");
        assert_eq!(input, b"+NEXT\r\n");

        for broken in [&b"$5\r\nab\r\n"[..], b"+OK\n", b"!3\r\n", b"$x\r\n", b""] {
            let mut reply = Vec::new();
            let mut input = broken;
            assert!(
                read_reply(&mut input, &mut reply).is_err(),
                "{:?}",
                String::from_utf8_lossy(broken)
            );
        }
        assert_eq!(
            encode_command(&["SET", "key", ""]),
            b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn redis_answers_ping_and_keeps_what_is_set() {
        let Some(redis) = start_or_skip("redis_answers_ping_and_keeps_what_is_set") else {
            return;
        };
        assert_eq!(
            redis.url(),
            format!("redis://127.0.0.1:{}", redis.addr().port())
        );
        assert_eq!(redis.command(&["PING"]).unwrap(), "+PONG\r\n");
        assert_eq!(
            redis.command(&["SET", "greeting", "hello"]).unwrap(),
            "+OK\r\n"
        );
        assert_eq!(
            redis.command(&["GET", "greeting"]).unwrap(),
            "$5\r\nhello\r\n"
        );
        assert_eq!(redis.command(&["GET", "nothing"]).unwrap(), "$-1\r\n");
        assert_eq!(redis.command(&["DBSIZE"]).unwrap(), ":1\r\n");
        assert_eq!(
            redis.command(&["KEYS", "*"]).unwrap(),
            "*1\r\n$8\r\ngreeting\r\n"
        );
        let error = redis.command(&["NO-SUCH-COMMAND"]).unwrap();
        assert!(error.starts_with("-ERR "), "{error:?}");
        // Persistence off, as asked on the command line.
        assert_eq!(
            redis.command(&["CONFIG", "GET", "save"]).unwrap(),
            "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
        );
        assert_eq!(
            redis.command(&["CONFIG", "GET", "appendonly"]).unwrap(),
            "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
        );
    }

    #[test]
    fn restart_empty_loses_the_data_and_keeps_the_port() {
        let Some(mut redis) = start_or_skip("restart_empty_loses_the_data_and_keeps_the_port")
        else {
            return;
        };
        let url = redis.url();
        let old_pid = redis.pid();
        assert_eq!(
            redis.command(&["SET", "greeting", "hello"]).unwrap(),
            "+OK\r\n"
        );
        // A snapshot on disk would come back at startup: restart_empty removes it.
        assert_eq!(redis.command(&["SAVE"]).unwrap(), "+OK\r\n");

        redis.restart_empty().unwrap();
        assert_eq!(redis.url(), url);
        assert_ne!(redis.pid(), old_pid);
        assert!(
            !process_exists(old_pid),
            "the old redis-server {old_pid} still runs"
        );
        assert_eq!(
            redis.command(&["DBSIZE"]).unwrap(),
            ":0\r\n",
            "{}",
            redis.log()
        );
        assert_eq!(redis.command(&["GET", "greeting"]).unwrap(), "$-1\r\n");
    }

    #[test]
    fn a_paused_redis_answers_nothing_and_a_resumed_one_answers_with_its_data() {
        let Some(redis) = start_or_skip("a_paused_redis_answers_nothing") else {
            return;
        };
        assert_eq!(
            redis.command(&["SET", "greeting", "hello"]).unwrap(),
            "+OK\r\n"
        );
        redis.pause().unwrap();
        let started = Instant::now();
        let error = redis.command(&["PING"]).unwrap_err();
        assert!(started.elapsed() >= COMMAND_TIMEOUT, "{error}");
        assert!(error.to_string().contains("no reply within"), "{error}");

        redis.resume().unwrap();
        assert_eq!(redis.command(&["PING"]).unwrap(), "+PONG\r\n");
        assert_eq!(
            redis.command(&["GET", "greeting"]).unwrap(),
            "$5\r\nhello\r\n"
        );
    }

    #[test]
    fn drop_leaves_no_process_and_no_folder_even_a_paused_one() {
        let Some(redis) = start_or_skip("drop_leaves_no_process_and_no_folder") else {
            return;
        };
        let pid = redis.pid();
        let folder = redis.folder.as_ref().unwrap().path().to_path_buf();
        assert!(process_exists(pid) && folder.is_dir());
        redis.pause().unwrap();
        drop(redis);
        assert!(!process_exists(pid), "redis-server {pid} still runs");
        assert!(!folder.exists(), "{} is still there", folder.display());
    }

    #[test]
    fn a_test_that_panics_leaves_no_process() {
        let Some(redis) = start_or_skip("a_test_that_panics_leaves_no_process") else {
            return;
        };
        let pid = redis.pid();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _redis = redis;
            panic!("a test failing while its redis-server runs");
        }));
        assert!(outcome.is_err());
        assert!(!process_exists(pid), "redis-server {pid} still runs");
    }

    #[test]
    fn kill_is_final_and_harmless_twice() {
        let Some(mut redis) = start_or_skip("kill_is_final_and_harmless_twice") else {
            return;
        };
        let pid = redis.pid();
        redis.kill();
        redis.kill();
        assert!(!process_exists(pid), "redis-server {pid} still runs");
        assert!(redis.try_wait().unwrap().is_some());
        assert!(redis.command(&["PING"]).is_err());
        assert!(redis.restart_empty().is_err());
    }
}
