//! The socket options every server sets on its listening socket.
//!
//! Linux copies these options from a listening socket to every socket it accepts, so
//! setting them once here covers every connection of every framework, including the
//! ones a framework accepts by itself (warp's acceptor, for one, cannot be reached).

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::SockRef;

use crate::Config;

// ANCHOR: configure
/// Sets the options of `listener` that its accepted connections inherit:
///
/// - `TCP_NODELAY`: no Nagle's algorithm, which would hold a small frame or event back
///   until the previous one is acknowledged.
/// - `TCP_USER_TIMEOUT` of [`Config::write_timeout`]: the kernel drops a connection
///   whose bytes have waited that long, unacknowledged or behind a receive window the
///   peer keeps closed. That is a client that stopped reading (a hung tab, a paused
///   process) or vanished without a FIN; once the socket's send buffer is full, every
///   write to it would wait forever, and with it the task that owns the connection,
///   its heartbeat included. The dropped socket fails the pending write, and the
///   connection ends as it would on any network error.
pub fn configure(listener: &impl AsFd, config: &Config) -> io::Result<()> {
    let socket = SockRef::from(listener);
    socket.set_tcp_nodelay(true)?;
    set_user_timeout(&socket, config.write_timeout())
}
// ANCHOR_END: configure

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_user_timeout(socket: &SockRef<'_>, timeout: Duration) -> io::Result<()> {
    socket.set_tcp_user_timeout(Some(timeout))
}

/// Other systems have no `TCP_USER_TIMEOUT` (macOS has `TCP_CONNECTIONTIMEOUT` and
/// friends, with other meanings): there a client that stops reading holds its
/// connection until the heartbeat or the OS gives up.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_user_timeout(_socket: &SockRef<'_>, _timeout: Duration) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Instant;

    use super::*;

    /// The options reach an accepted socket, and a peer that never reads is dropped:
    /// writes to it fail within a few timeouts instead of blocking forever.
    #[test]
    fn accepted_sockets_inherit_the_options_and_a_stuck_peer_is_dropped() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = Config {
            write_timeout: 1,
            ..Config::default()
        };
        configure(&listener, &config).unwrap();
        let peer =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        peer.set_recv_buffer_size(4096).unwrap();
        peer.connect(&listener.local_addr().unwrap().into())
            .unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        let accepted_options = SockRef::from(&accepted);
        assert!(accepted_options.tcp_nodelay().unwrap());
        assert_eq!(
            accepted_options.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(1))
        );

        // Blocking writes with a generous timeout of their own, so that a kernel that
        // ignored the option fails the test instead of hanging it.
        accepted
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        let chunk = vec![0u8; 64 * 1024];
        let error = loop {
            if let Err(error) = accepted.write_all(&chunk) {
                break error;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never dropped");
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
