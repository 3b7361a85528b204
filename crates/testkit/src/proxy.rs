//! A TCP proxy that misbehaves on purpose, to prove that clients reconnect and resume
//! without losing or repeating a message.
//!
//! [`FlakyProxy`] listens on a port of its own and passes every connection through to
//! an upstream server, byte for byte, except where [`Faults`] say otherwise:
//!
//! - **cut** a connection after a number of bytes, fixed or drawn at random for each
//!   connection: the proxy closes both sides, like a router that reboots;
//! - **delay** every piece of data by some latency, in each direction;
//! - **stall** a connection after a number of bytes: from then on everything sent
//!   either way vanishes and the connection stays open, like a laptop that went to
//!   sleep or a NAT that forgot the mapping. Neither end is told; only a heartbeat
//!   can find out. [`FlakyProxy::stall_all`] does the same to the connections open
//!   at that moment only, so the client's next connection gets through.
//!
//! It works on bytes, below HTTP and WebSocket, so a cut can land anywhere: inside a
//! response head, a WebSocket frame, an SSE event or a UTF-8 character.
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
//! use wsse_testkit::proxy::{Faults, FlakyProxy};
//!
//! let proxy = FlakyProxy::start(server, Faults {
//!     cut_after_bytes: Some(2000),
//!     ..Faults::default()
//! })
//! .await?;
//! // Point a client at proxy.addr() instead of the server...
//! println!("{} connections cut so far", proxy.cuts());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

/// How many pieces of data may wait in the proxy per direction (with latency, they
/// wait there until due).
const QUEUED_CHUNKS: usize = 64;

/// The largest piece the proxy reads at once.
const CHUNK_BYTES: usize = 16 * 1024;

// ANCHOR: faults
/// What the proxy does to every connection. The default is nothing: a plain proxy.
///
/// Byte counts are per connection, from its start, and count **both directions
/// together** (what the client sent plus what the server sent): a cut can then land
/// in a request as well as in a response. When several limits are set, the lowest
/// one acts first.
///
/// [`FlakyProxy::set_faults`] changes them at run time; connections already open
/// follow the new faults from their next piece of data on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Cut each connection once this many bytes went through it: the bytes up to the
    /// limit are delivered, then both sides are closed.
    pub cut_after_bytes: Option<u64>,
    /// Cut each connection after a number of bytes drawn at random, for each
    /// connection, between the two bounds (inclusive).
    pub cut_randomly: Option<(u64, u64)>,
    /// Hold every piece of data this long before passing it on, in each direction.
    pub latency: Option<Duration>,
    /// After this many bytes, pass nothing more in either direction and keep the
    /// connection open until one side closes it.
    pub stall_after_bytes: Option<u64>,
}
// ANCHOR_END: faults

/// Why the proxy cut a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutCause {
    /// [`Faults::cut_after_bytes`].
    Bytes,
    /// [`Faults::cut_randomly`].
    Random,
    /// [`FlakyProxy::cut_all`] or [`FlakyProxy::stop`].
    Requested,
}

/// Something the proxy did to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyEventKind {
    /// A client connected (and the proxy reached the upstream).
    Opened {
        /// The client's address.
        peer: SocketAddr,
    },
    /// The upstream refused the connection; the client's was closed.
    UpstreamUnreachable {
        /// The error.
        error: String,
    },
    /// The proxy cut the connection.
    Cut {
        /// Bytes passed on before the cut, both directions.
        after_bytes: u64,
        /// Which fault did it.
        cause: CutCause,
    },
    /// The connection stalled: nothing passes any more.
    Stalled {
        /// Bytes passed on before the stall, both directions.
        after_bytes: u64,
    },
    /// The connection is over.
    Closed {
        /// Bytes passed from the client to the upstream.
        upstream_bytes: u64,
        /// Bytes passed from the upstream to the client.
        downstream_bytes: u64,
    },
}

/// A [`ProxyEventKind`] and the number of the connection it happened to (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyEvent {
    /// Which connection.
    pub connection: u64,
    /// What happened.
    pub kind: ProxyEventKind,
}

impl fmt::Display for ProxyEvent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "connection {}: ", self.connection)?;
        match &self.kind {
            ProxyEventKind::Opened { peer } => write!(formatter, "opened by {peer}"),
            ProxyEventKind::UpstreamUnreachable { error } => {
                write!(formatter, "the upstream is unreachable ({error}); closed")
            }
            ProxyEventKind::Cut { after_bytes, cause } => {
                let why = match cause {
                    CutCause::Bytes => "the byte limit",
                    CutCause::Random => "a random byte limit",
                    CutCause::Requested => "request",
                };
                write!(formatter, "CUT after {after_bytes} bytes (by {why})")
            }
            ProxyEventKind::Stalled { after_bytes } => write!(
                formatter,
                "STALLED after {after_bytes} bytes: nothing passes any more"
            ),
            ProxyEventKind::Closed {
                upstream_bytes,
                downstream_bytes,
            } => write!(
                formatter,
                "closed ({upstream_bytes} bytes up, {downstream_bytes} bytes down)"
            ),
        }
    }
}

/// What the proxy and all its connections share.
struct Shared {
    upstream: SocketAddr,
    faults: Mutex<Faults>,
    connections: AtomicU64,
    cuts: AtomicU64,
    stalls: AtomicU64,
    /// Bytes passed on, over all connections: client to upstream, upstream to client.
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    /// Bumped to cut every open connection.
    cut_everything: watch::Sender<u64>,
    /// Bumped to stall every open connection.
    stall_everything: watch::Sender<u64>,
    events: broadcast::Sender<ProxyEvent>,
    random: Mutex<fastrand::Rng>,
}

impl Shared {
    fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn report(&self, connection: u64, kind: ProxyEventKind) {
        // No subscriber is fine: nobody is listening.
        let _ = self.events.send(ProxyEvent { connection, kind });
    }
}

// ANCHOR: flaky_proxy
/// A running proxy. Dropping it stops it and cuts every connection.
pub struct FlakyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl fmt::Debug for FlakyProxy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("FlakyProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("faults", &self.faults())
            .field("connections", &self.connections())
            .field("cuts", &self.cuts())
            .finish()
    }
}

impl FlakyProxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of `upstream`.
    ///
    /// # Errors
    ///
    /// When the port cannot be bound.
    pub async fn start(upstream: SocketAddr, faults: Faults) -> std::io::Result<FlakyProxy> {
        FlakyProxy::bind(SocketAddr::from(([127, 0, 0, 1], 0)), upstream, faults).await
    }

    /// Starts a proxy listening on `listen` in front of `upstream`.
    ///
    /// # Errors
    ///
    /// When `listen` cannot be bound.
    pub async fn bind(
        listen: SocketAddr,
        upstream: SocketAddr,
        faults: Faults,
    ) -> std::io::Result<FlakyProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::new(faults),
            connections: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            cut_everything: watch::Sender::new(0),
            stall_everything: watch::Sender::new(0),
            events: broadcast::Sender::new(1024),
            random: Mutex::new(fastrand::Rng::new()),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FlakyProxy {
            addr,
            shared,
            accept_task,
        })
    }

    /// Where the proxy listens: point clients here.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it passes connections to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Changes the faults; open connections follow them from their next piece of data.
    pub fn set_faults(&self, faults: Faults) {
        *self
            .shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// How many connections the proxy accepted.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many connections it cut (by a fault or on request).
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// How many connections stalled.
    pub fn stalls(&self) -> u64 {
        self.shared.stalls.load(Ordering::SeqCst)
    }

    /// Bytes passed from clients to the upstream so far, over all connections.
    pub fn bytes_up(&self) -> u64 {
        self.shared.bytes_up.load(Ordering::SeqCst)
    }

    /// Bytes passed from the upstream to clients so far, over all connections: what
    /// the benchmarks divide by the number of messages for the wire cost.
    pub fn bytes_down(&self) -> u64 {
        self.shared.bytes_down.load(Ordering::SeqCst)
    }

    /// Cuts every open connection now.
    pub fn cut_all(&self) {
        self.shared
            .cut_everything
            .send_modify(|generation| *generation += 1);
    }

    /// Makes every open connection go silent now: from here on nothing passes in
    /// either direction, and both sockets stay open until one side closes its own.
    /// Connections opened later are not affected, so a client that notices the
    /// silence and reconnects gets through.
    pub fn stall_all(&self) {
        self.shared
            .stall_everything
            .send_modify(|generation| *generation += 1);
    }

    /// What happens to each connection, from now on. A slow reader misses the oldest
    /// events (the channel keeps 1024).
    pub fn events(&self) -> broadcast::Receiver<ProxyEvent> {
        self.shared.events.subscribe()
    }

    /// Stops accepting and cuts every open connection.
    pub fn stop(self) {
        // Drop does it.
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.cut_all();
    }
}
// ANCHOR_END: flaky_proxy

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            // Out of file descriptors, say: wait a little rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let id = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::spawn(serve_connection(Arc::clone(&shared), id, client, peer));
    }
}

/// How many bytes a connection passed on, and whether it stalled.
#[derive(Debug, Default)]
struct Budget {
    /// Both directions together: what the limits are compared with.
    passed: u64,
    upstream: u64,
    downstream: u64,
    /// The random limit and the bounds it was drawn for (drawn again if they change).
    random_limit: Option<((u64, u64), u64)>,
    stalled: bool,
}

/// One proxied connection.
struct Connection {
    id: u64,
    shared: Arc<Shared>,
    budget: Mutex<Budget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client to upstream.
    Up,
    /// Upstream to client.
    Down,
}

/// What may pass of a piece of data.
enum Admission {
    All,
    /// This much, then cut.
    Cut(usize, CutCause),
    /// This much, then stall.
    Stall(usize),
    /// Nothing: the connection has stalled.
    Swallow,
}

/// How one direction of a connection ended.
enum PumpEnd {
    /// The sender closed its side; the proxy closed the other side's writing half.
    Finished,
    /// A fault cut the connection.
    Cut(CutCause),
    /// The connection is broken or abandoned (a write failed, or one side closed a
    /// stalled connection): close everything.
    Over,
}

impl Connection {
    fn budget(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.budget.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stalls the connection from its next piece of data on ([`FlakyProxy::stall_all`]).
    fn stall_now(&self) {
        let after_bytes = {
            let mut budget = self.budget();
            if budget.stalled {
                return;
            }
            budget.stalled = true;
            budget.passed
        };
        self.shared.stalls.fetch_add(1, Ordering::SeqCst);
        self.shared
            .report(self.id, ProxyEventKind::Stalled { after_bytes });
    }

    // ANCHOR: admit
    /// Decides how much of `length` bytes going `direction` may pass, and counts it.
    fn admit(&self, length: usize, direction: Direction) -> Admission {
        let faults = self.shared.faults();
        let mut budget = self.budget();
        if budget.stalled {
            return Admission::Swallow;
        }
        let random_limit = faults.cut_randomly.map(|bounds| {
            let (low, high) = (bounds.0.min(bounds.1), bounds.0.max(bounds.1));
            match budget.random_limit {
                Some((drawn_for, limit)) if drawn_for == bounds => limit,
                _ => {
                    let limit = self
                        .shared
                        .random
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .u64(low..=high);
                    budget.random_limit = Some((bounds, limit));
                    limit
                }
            }
        });
        // The lowest limit acts first.
        let limits = [
            (faults.cut_after_bytes, Some(CutCause::Bytes)),
            (random_limit, Some(CutCause::Random)),
            (faults.stall_after_bytes, None),
        ];
        let nearest = limits
            .into_iter()
            .filter_map(|(limit, cut)| limit.map(|limit| (limit, cut)))
            .min_by_key(|(limit, _)| *limit);
        let after = budget.passed + length as u64;
        let allowed = match nearest {
            Some((limit, _)) if after >= limit => {
                (limit.saturating_sub(budget.passed) as usize).min(length)
            }
            _ => length,
        };
        budget.passed += allowed as u64;
        match direction {
            Direction::Up => {
                budget.upstream += allowed as u64;
                self.shared
                    .bytes_up
                    .fetch_add(allowed as u64, Ordering::SeqCst);
            }
            Direction::Down => {
                budget.downstream += allowed as u64;
                self.shared
                    .bytes_down
                    .fetch_add(allowed as u64, Ordering::SeqCst);
            }
        }
        match nearest {
            Some((limit, Some(cause))) if after >= limit => Admission::Cut(allowed, cause),
            Some((limit, None)) if after >= limit => {
                budget.stalled = true;
                Admission::Stall(allowed)
            }
            _ => Admission::All,
        }
    }
    // ANCHOR_END: admit
}

async fn serve_connection(shared: Arc<Shared>, id: u64, client: TcpStream, peer: SocketAddr) {
    let mut cut_everything = shared.cut_everything.subscribe();
    cut_everything.borrow_and_update();
    let mut stall_everything = shared.stall_everything.subscribe();
    stall_everything.borrow_and_update();
    let upstream = match TcpStream::connect(shared.upstream).await {
        Ok(upstream) => upstream,
        Err(error) => {
            shared.report(
                id,
                ProxyEventKind::UpstreamUnreachable {
                    error: error.to_string(),
                },
            );
            return;
        }
    };
    shared.report(id, ProxyEventKind::Opened { peer });
    // Small pieces (a ping, one event) must not wait for more data to fill a packet.
    client.set_nodelay(true).ok();
    upstream.set_nodelay(true).ok();
    let connection = Connection {
        id,
        shared: Arc::clone(&shared),
        budget: Mutex::new(Budget::default()),
    };
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let up = pump(&connection, client_read, upstream_write, Direction::Up);
    let down = pump(&connection, upstream_read, client_write, Direction::Down);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    let cut = loop {
        tokio::select! {
            end = &mut up, if !up_done => match end {
                PumpEnd::Finished => up_done = true,
                PumpEnd::Cut(cause) => break Some(cause),
                PumpEnd::Over => break None,
            },
            end = &mut down, if !down_done => match end {
                PumpEnd::Finished => down_done = true,
                PumpEnd::Cut(cause) => break Some(cause),
                PumpEnd::Over => break None,
            },
            _ = cut_everything.changed() => break Some(CutCause::Requested),
            _ = stall_everything.changed() => connection.stall_now(),
        }
        if up_done && down_done {
            break None;
        }
    };
    let (passed, upstream_bytes, downstream_bytes) = {
        let budget = connection.budget();
        (budget.passed, budget.upstream, budget.downstream)
    };
    if let Some(cause) = cut {
        shared.cuts.fetch_add(1, Ordering::SeqCst);
        shared.report(
            id,
            ProxyEventKind::Cut {
                after_bytes: passed,
                cause,
            },
        );
    }
    shared.report(
        id,
        ProxyEventKind::Closed {
            upstream_bytes,
            downstream_bytes,
        },
    );
    // Leaving drops all four halves: both sockets close.
}

// ANCHOR: pump
/// Moves bytes one way: a reader puts each piece in a queue stamped with the time it
/// is due (now plus the latency), a writer takes them out when due and passes what
/// the faults allow. Splitting the two keeps latency from slowing the throughput.
async fn pump(
    connection: &Connection,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    direction: Direction,
) -> PumpEnd {
    let (queue, mut queued) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUED_CHUNKS);
    let reading = async move {
        loop {
            let mut buffer = vec![0; CHUNK_BYTES];
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return, // dropping `queue` tells the writer
                Ok(read) => {
                    buffer.truncate(read);
                    let latency = connection.shared.faults().latency.unwrap_or_default();
                    if queue
                        .send((Instant::now() + latency, buffer))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let writing = async {
        while let Some((due, bytes)) = queued.recv().await {
            sleep_until(due).await;
            match connection.admit(bytes.len(), direction) {
                Admission::All => {
                    if to.write_all(&bytes).await.is_err() {
                        return PumpEnd::Over;
                    }
                }
                Admission::Cut(allowed, cause) => {
                    let _ = to.write_all(&bytes[..allowed]).await;
                    return PumpEnd::Cut(cause);
                }
                Admission::Stall(allowed) => {
                    let _ = to.write_all(&bytes[..allowed]).await;
                    connection.shared.stalls.fetch_add(1, Ordering::SeqCst);
                    let after_bytes = connection.budget().passed;
                    connection
                        .shared
                        .report(connection.id, ProxyEventKind::Stalled { after_bytes });
                }
                Admission::Swallow => {}
            }
        }
        if connection.budget().stalled {
            // One side gave up on a stalled connection: nothing sensible can pass any
            // more, so close both.
            return PumpEnd::Over;
        }
        // Pass the half-close on: the other side may still answer.
        let _ = to.shutdown().await;
        PumpEnd::Finished
    };
    tokio::pin!(reading, writing);
    let mut reading_done = false;
    loop {
        tokio::select! {
            () = &mut reading, if !reading_done => reading_done = true,
            end = &mut writing => return end,
        }
    }
}
// ANCHOR_END: pump

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// An upstream that echoes everything back, on a free port.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut reader, mut writer) = socket.split();
                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                });
            }
        });
        addr
    }

    /// Reads until the connection ends or nothing comes for `quiet`; returns the bytes
    /// and whether it ended.
    async fn read_all(socket: &mut TcpStream, quiet: Duration) -> (Vec<u8>, bool) {
        let mut received = Vec::new();
        let mut buffer = [0; 4096];
        loop {
            match tokio::time::timeout(quiet, socket.read(&mut buffer)).await {
                Err(_) => return (received, false),
                Ok(Ok(0) | Err(_)) => return (received, true),
                Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            }
        }
    }

    #[tokio::test]
    async fn without_faults_it_is_a_plain_proxy() {
        let proxy = FlakyProxy::start(echo_server().await, Faults::default())
            .await
            .unwrap();
        let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
        socket.write_all(b"hello").await.unwrap();
        let (echoed, ended) = read_all(&mut socket, Duration::from_millis(200)).await;
        assert_eq!(echoed, b"hello");
        assert!(!ended);
        assert_eq!(proxy.connections(), 1);
        assert_eq!(proxy.cuts(), 0);
    }

    #[tokio::test]
    async fn cuts_after_exactly_the_byte_limit_counting_both_ways() {
        let proxy = FlakyProxy::start(
            echo_server().await,
            Faults {
                cut_after_bytes: Some(15),
                ..Faults::default()
            },
        )
        .await
        .unwrap();
        let mut events = proxy.events();
        let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
        // 10 bytes up, then their echo down: the cut comes 5 bytes into the echo.
        socket.write_all(b"0123456789").await.unwrap();
        let (echoed, ended) = read_all(&mut socket, Duration::from_secs(5)).await;
        assert_eq!(echoed, b"01234");
        assert!(ended, "the proxy closed the connection");
        assert_eq!(proxy.cuts(), 1);
        let cut = loop {
            let event = events.recv().await.unwrap();
            if let ProxyEventKind::Cut { after_bytes, cause } = event.kind {
                break (after_bytes, cause);
            }
        };
        assert_eq!(cut, (15, CutCause::Bytes));
    }

    #[tokio::test]
    async fn random_cuts_land_within_the_bounds() {
        let proxy = FlakyProxy::start(
            echo_server().await,
            Faults {
                cut_randomly: Some((30, 60)),
                ..Faults::default()
            },
        )
        .await
        .unwrap();
        for _ in 0..5 {
            let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
            socket.write_all(&[b'x'; 100]).await.unwrap();
            let (echoed, ended) = read_all(&mut socket, Duration::from_secs(5)).await;
            assert!(ended);
            // Up 100 (or fewer, if cut on the way up), then down what is left.
            let down = echoed.len();
            assert!(down <= 30, "{down} bytes came back");
        }
        assert_eq!(proxy.cuts(), 5);
    }

    #[tokio::test]
    async fn latency_delays_each_direction() {
        let proxy = FlakyProxy::start(
            echo_server().await,
            Faults {
                latency: Some(Duration::from_millis(100)),
                ..Faults::default()
            },
        )
        .await
        .unwrap();
        let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
        let started = std::time::Instant::now();
        socket.write_all(b"ping").await.unwrap();
        let mut buffer = [0; 4];
        socket.read_exact(&mut buffer).await.unwrap();
        let round_trip = started.elapsed();
        assert!(round_trip >= Duration::from_millis(200), "{round_trip:?}");
        assert!(round_trip < Duration::from_secs(3), "{round_trip:?}");
    }

    #[tokio::test]
    async fn a_stalled_connection_stays_open_and_passes_nothing() {
        let proxy = FlakyProxy::start(echo_server().await, Faults::default())
            .await
            .unwrap();
        let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
        socket.write_all(b"before").await.unwrap();
        let (echoed, _) = read_all(&mut socket, Duration::from_millis(200)).await;
        assert_eq!(echoed, b"before");
        // Changed at run time: the open connection stalls at its next byte.
        proxy.set_faults(Faults {
            stall_after_bytes: Some(0),
            ..Faults::default()
        });
        socket.write_all(b"after").await.unwrap();
        let (echoed, ended) = read_all(&mut socket, Duration::from_millis(300)).await;
        assert!(echoed.is_empty(), "{echoed:?}");
        assert!(!ended, "a stall is silent, not a close");
        assert_eq!(proxy.stalls(), 1);
        assert_eq!(proxy.cuts(), 0);
    }

    #[tokio::test]
    async fn stall_all_silences_the_open_connections_only() {
        let proxy = FlakyProxy::start(echo_server().await, Faults::default())
            .await
            .unwrap();
        let mut events = proxy.events();
        let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
        old.write_all(b"before").await.unwrap();
        let (echoed, _) = read_all(&mut old, Duration::from_millis(200)).await;
        assert_eq!(echoed, b"before");
        proxy.stall_all();
        old.write_all(b"after").await.unwrap();
        let (echoed, ended) = read_all(&mut old, Duration::from_millis(300)).await;
        assert!(echoed.is_empty(), "{echoed:?}");
        assert!(!ended, "a stall is silent, not a close");
        assert_eq!((proxy.stalls(), proxy.cuts()), (1, 0));
        let stalled = loop {
            if let ProxyEventKind::Stalled { after_bytes } = events.recv().await.unwrap().kind {
                break after_bytes;
            }
        };
        assert_eq!(stalled, 12, "\"before\" up and back");

        // A connection opened afterwards passes as before.
        let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
        new.write_all(b"fresh").await.unwrap();
        let (echoed, ended) = read_all(&mut new, Duration::from_millis(200)).await;
        assert_eq!(echoed, b"fresh");
        assert!(!ended);
        assert_eq!(proxy.stalls(), 1);

        // The client gives up on the silent one: the proxy closes the upstream too.
        drop(old);
        let closed = loop {
            if let ProxyEventKind::Closed { .. } = events.recv().await.unwrap().kind {
                break true;
            }
        };
        assert!(closed);
    }

    #[tokio::test]
    async fn cut_all_and_drop_close_open_connections() {
        let proxy = FlakyProxy::start(echo_server().await, Faults::default())
            .await
            .unwrap();
        let mut first = TcpStream::connect(proxy.addr()).await.unwrap();
        first.write_all(b"x").await.unwrap();
        read_all(&mut first, Duration::from_millis(100)).await;
        proxy.cut_all();
        let (_, ended) = read_all(&mut first, Duration::from_secs(5)).await;
        assert!(ended);
        assert_eq!(proxy.cuts(), 1);

        let mut second = TcpStream::connect(proxy.addr()).await.unwrap();
        second.write_all(b"y").await.unwrap();
        read_all(&mut second, Duration::from_millis(100)).await;
        let addr = proxy.addr();
        proxy.stop();
        let (_, ended) = read_all(&mut second, Duration::from_secs(5)).await;
        assert!(ended);
        // Give the aborted accept loop a moment to release the port.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn an_unreachable_upstream_closes_the_client() {
        // A port that was free a moment ago: nothing listens there.
        let free = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = FlakyProxy::start(free, Faults::default()).await.unwrap();
        let mut events = proxy.events();
        let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
        let (_, ended) = read_all(&mut socket, Duration::from_secs(5)).await;
        assert!(ended);
        let event = events.recv().await.unwrap();
        assert!(
            matches!(event.kind, ProxyEventKind::UpstreamUnreachable { .. }),
            "{event}"
        );
    }
}
