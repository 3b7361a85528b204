//! A scripted HTTP server: it answers the n-th connection with the n-th [`Reply`] of
//! its script, byte for byte, and records every request. Tests use it to hold a
//! client to the rules a real server never breaks on purpose: a 204, a wrong content
//! type, a stream that drops in the middle of an event, a redirect, a `retry:`.
//!
//! One request per connection: after its reply the server closes the connection
//! (or holds it open for a while first), which is what an event stream ending looks
//! like to the client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http::find_head_end;

/// The largest request head the server reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The status line and headers of an event stream whose body ends when the
/// connection closes (no length, not chunked): add the body after it.
pub const EVENT_STREAM_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                                     Cache-Control: no-cache\r\nConnection: close\r\n\r\n";

/// What the server sends on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The bytes of the response, head and body.
    pub bytes: Vec<u8>,
    /// Send them in pieces of this many bytes, with this pause after each: the client
    /// must put together what arrives cut anywhere.
    pub pieces: Option<(usize, Duration)>,
    /// Keep the connection open this long after the bytes before closing it.
    pub hold: Duration,
}

impl Reply {
    /// A reply of exactly these bytes, closed right after.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            bytes: bytes.into(),
            pieces: None,
            hold: Duration::ZERO,
        }
    }

    /// An event stream ([`EVENT_STREAM_HEAD`]) with this body, closed right after.
    pub fn event_stream(body: impl AsRef<[u8]>) -> Reply {
        let mut bytes = EVENT_STREAM_HEAD.as_bytes().to_vec();
        bytes.extend_from_slice(body.as_ref());
        Reply::raw(bytes)
    }

    /// A response with this status line (`204 No Content`), headers and no body.
    pub fn status(status_line: &str, headers: &[(&str, &str)]) -> Reply {
        let mut text = format!("HTTP/1.1 {status_line}\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
        Reply::raw(text)
    }

    /// Sends the bytes `size` at a time with `pause` after each piece.
    #[must_use]
    pub fn in_pieces(mut self, size: usize, pause: Duration) -> Reply {
        self.pieces = Some((size.max(1), pause));
        self
    }

    /// Keeps the connection open for `hold` after the bytes.
    #[must_use]
    pub fn then_hold(mut self, hold: Duration) -> Reply {
        self.hold = hold;
        self
    }
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// When the connection was accepted.
    pub accepted_at: Instant,
    /// When the server closed it after its reply (`None` while still open); taken
    /// just before the close, so never later than the client can see it.
    pub closed_at: Option<Instant>,
    /// `GET` and so on.
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// The headers, names as sent.
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The value of header `name` (any case); the first if there are several.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A running scripted server; stops when dropped.
#[derive(Debug)]
pub struct ScriptedServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    task: JoinHandle<()>,
}

impl ScriptedServer {
    /// Starts the server on a free port of 127.0.0.1. Connection n (from 0) gets
    /// `script[n]`; once the script is used up, the last reply repeats.
    ///
    /// # Errors
    ///
    /// When no port can be bound.
    ///
    /// # Panics
    ///
    /// When `script` is empty.
    pub async fn start(script: Vec<Reply>) -> std::io::Result<ScriptedServer> {
        assert!(!script.is_empty(), "a script needs at least one reply");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let accepted = Arc::new(AtomicUsize::new(0));
        let log = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let accepted_at = Instant::now();
                let number = accepted.fetch_add(1, Ordering::SeqCst);
                let reply = script[number.min(script.len() - 1)].clone();
                tokio::spawn(answer(socket, accepted_at, reply, Arc::clone(&log)));
            }
        });
        Ok(ScriptedServer {
            addr,
            requests,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests so far, in the order they arrived.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (blocking the thread, at most `wait`) until `count` requests arrived;
    /// returns the requests then.
    pub fn wait_for_requests(&self, count: usize, wait: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + wait;
        loop {
            let requests = self.requests();
            if requests.len() >= count || Instant::now() >= deadline {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head, records it, sends the reply, holds, closes.
async fn answer(
    mut socket: TcpStream,
    accepted_at: Instant,
    reply: Reply,
    log: Arc<Mutex<Vec<RecordedRequest>>>,
) {
    socket.set_nodelay(true).ok();
    let Some(head) = read_request_head(&mut socket).await else {
        return;
    };
    let index = {
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        log.push(parse_request(&head, accepted_at));
        log.len() - 1
    };
    match reply.pieces {
        None => {
            let _ = socket.write_all(&reply.bytes).await;
        }
        Some((size, pause)) => {
            for piece in reply.bytes.chunks(size) {
                if socket.write_all(piece).await.is_err() {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
    if !reply.hold.is_zero() {
        tokio::time::sleep(reply.hold).await;
    }
    // Noted before the FIN goes out, so that the client cannot see the end of the
    // stream earlier than `closed_at` says: a reconnection delay measured from it is
    // never too short.
    log.lock().unwrap_or_else(PoisonError::into_inner)[index].closed_at = Some(Instant::now());
    let _ = socket.shutdown().await;
}

/// The bytes up to the blank line, or `None` if the client went away first.
async fn read_request_head(socket: &mut TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        if let Some(end) = find_head_end(&received) {
            received.truncate(end);
            return Some(received);
        }
        if received.len() > MAX_HEAD_BYTES {
            return None;
        }
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer))
            .await
            .ok()?
            .ok()?;
        if read == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..read]);
    }
}

fn parse_request(head: &[u8], accepted_at: Instant) -> RecordedRequest {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    RecordedRequest {
        accepted_at,
        closed_at: None,
        method,
        target,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpStream, request_bytes};

    #[tokio::test]
    async fn answers_each_connection_from_the_script_and_records_it() {
        let server = ScriptedServer::start(vec![
            Reply::status("204 No Content", &[]),
            Reply::event_stream("data: hi\n\n").in_pieces(3, Duration::from_millis(1)),
        ])
        .await
        .unwrap();
        let addr = server.addr();
        let host = addr.to_string();
        let request = request_bytes("GET", &host, "/one", &[("Last-Event-ID", "7")], b"");
        let first = HttpStream::send(addr, &request).await.unwrap();
        assert_eq!(first.head.status, 204);
        for _ in 0..2 {
            let request = request_bytes("GET", &host, "/two", &[], b"");
            let mut stream = HttpStream::send(addr, &request).await.unwrap();
            assert_eq!(
                stream.head.header("content-type"),
                Some("text/event-stream")
            );
            let body = stream.read_to_end(Duration::from_secs(5)).await.unwrap();
            assert_eq!(body, b"data: hi\n\n");
        }
        let requests = server.wait_for_requests(3, Duration::from_secs(5));
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].method, "GET");
        assert_eq!(requests[0].target, "/one");
        assert_eq!(requests[0].header("last-event-id"), Some("7"));
        assert_eq!(requests[2].target, "/two");
        assert_eq!(requests[2].header("Last-Event-ID"), None);
        assert!(server.url("/x").ends_with("/x"));
    }
}
