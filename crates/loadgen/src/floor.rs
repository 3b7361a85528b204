//! Baselines that measure the machine instead of a server.
//!
//! [`tcp_echo_server`] is the cheapest echo server there is: plain TCP, no HTTP and no
//! WebSocket, one read and one write per message, on a single-threaded Tokio runtime
//! like the load generator's. `cargo xtask bench` starts it pinned to the servers'
//! core and runs the echo scenario against it with [`crate::echo::EchoOptions::plain_tcp`],
//! so its round trip is what the kernel, the loopback device, the wake-ups across two
//! cores and Tokio cost before any framework does anything.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Listens on `addr`, prints `listening on http://IP:PORT` (the line
/// `wsse_testkit::process::ServerProcess` waits for) and echoes every byte of every
/// connection back, until the process is stopped.
///
/// # Errors
///
/// When the address cannot be bound.
pub async fn tcp_echo_server(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| format!("bind {addr}: {error}"))?;
    let local = listener
        .local_addr()
        .map_err(|error| format!("local address: {error}"))?;
    println!("listening on http://{local}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Like every client socket of the load generator, and like a server should.
        stream.set_nodelay(true).ok();
        tokio::spawn(echo(stream));
    }
}

async fn echo(mut stream: TcpStream) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                if stream.write_all(&buffer[..read]).await.is_err() {
                    return;
                }
            }
        }
    }
}
