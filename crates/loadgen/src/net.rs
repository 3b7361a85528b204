//! Connections the scenarios open: plain TCP from a chosen source address,
//! WebSocket clients (tokio-tungstenite), and a small SSE reader (the test kit's
//! chunked decoder feeding the wire crate's event stream parser).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wsse_testkit::http::{BodyFraming, ChunkedDecoder, read_head};
use wsse_wire::sse::{EventStreamParser, Item, ParsedEvent};

/// A WebSocket client over a plain TCP stream.
pub type Ws = WebSocketStream<TcpStream>;

/// How many distinct 127.0.0.x source addresses [`source_for`] spreads connections
/// over (127.0.0.2 to 127.0.0.201).
pub const SOURCE_ADDRESSES: u64 = 200;

/// The source address for connection number `index`: 127.0.0.2, .3, ... in turn, so
/// that tens of thousands of connections (and their TIME_WAIT leftovers across runs)
/// never run out of ephemeral ports on one address.
pub fn source_for(index: u64) -> IpAddr {
    let last = 2 + (index % SOURCE_ADDRESSES) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Connects to `addr` from `source` (port chosen by the kernel), with TCP_NODELAY.
///
/// # Errors
///
/// When binding or connecting fails.
pub async fn connect_from(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, String> {
    let socket = TcpSocket::new_v4().map_err(|error| format!("socket: {error}"))?;
    if let Some(source) = source {
        socket
            .set_reuseaddr(true)
            .map_err(|error| format!("SO_REUSEADDR: {error}"))?;
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|error| format!("bind {source}: {error}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|error| format!("connect {addr}: {error}"))?;
    stream.set_nodelay(true).ok();
    Ok(stream)
}

/// The client configuration: small buffers, so that a thousand clients stay small
/// and the load generator stays fast. tungstenite zero-fills the free part of its
/// read buffer, up to this size, before every read: at 16 KiB that memset was a
/// tenth of the load generator's time in a fan-out.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

/// Opens a WebSocket to `path` (with query) on `addr`, from `source`.
///
/// # Errors
///
/// When the connection or the handshake fails.
pub async fn ws_connect(
    addr: SocketAddr,
    path: &str,
    source: Option<IpAddr>,
) -> Result<Ws, String> {
    let stream = connect_from(addr, source).await?;
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(client_config()))
        .await
        .map_err(|error| format!("WebSocket handshake with {addr}{path}: {error}"))?;
    Ok(ws)
}

/// The next text message of `ws`, skipping pings and pongs; `None` at the end.
pub async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) => return Some(text.as_str().to_owned()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Sends a raw HTTP/1.1 GET for `path` with `headers` and reads the response head.
/// Returns the stream, the status and the bytes read past the head.
///
/// # Errors
///
/// When the connection fails or the head does not arrive.
pub async fn raw_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    source: Option<IpAddr>,
) -> Result<(TcpStream, u16, BodyFraming, Vec<u8>), String> {
    let mut stream = connect_from(addr, source).await?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("sending the request: {error}"))?;
    let (head, leftover) = read_head(&mut stream).await?;
    let framing = head.body_framing().unwrap_or(BodyFraming::UntilClose);
    Ok((stream, head.status, framing, leftover))
}

/// A WebSocket upgrade on a raw socket, done by hand and then left alone: the
/// cheapest idle client there is (no library state at all on our side).
///
/// # Errors
///
/// When the server does not answer 101.
pub async fn raw_ws_upgrade(
    addr: SocketAddr,
    path: &str,
    source: Option<IpAddr>,
) -> Result<TcpStream, String> {
    let headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let (stream, status, _, _) = raw_get(addr, path, &headers, source).await?;
    if status != 101 {
        return Err(format!("{path} answered {status}, not 101"));
    }
    Ok(stream)
}

/// An event stream being read: the response body decoded (chunked or not) and parsed
/// into events.
pub struct SseReader {
    stream: TcpStream,
    chunked: Option<ChunkedDecoder>,
    parser: EventStreamParser,
    items: VecDeque<Item>,
    decoded: Vec<u8>,
    buffer: Vec<u8>,
}

impl SseReader {
    /// Opens `path` on `addr` as an event stream, with extra `headers`.
    ///
    /// # Errors
    ///
    /// When the request fails or the status is not 200.
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        source: Option<IpAddr>,
    ) -> Result<SseReader, String> {
        let mut all = vec![("Accept", "text/event-stream")];
        all.extend_from_slice(headers);
        let (stream, status, framing, leftover) = raw_get(addr, path, &all, source).await?;
        if status != 200 {
            return Err(format!("{path} answered {status}, not 200"));
        }
        let mut reader = SseReader {
            stream,
            chunked: (framing == BodyFraming::Chunked).then(ChunkedDecoder::new),
            parser: EventStreamParser::new(),
            items: VecDeque::new(),
            decoded: Vec::new(),
            buffer: vec![0; 16 * 1024],
        };
        reader.feed(&leftover)?;
        Ok(reader)
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        let body = match &mut self.chunked {
            Some(decoder) => {
                self.decoded.clear();
                decoder.feed(bytes, &mut self.decoded)?;
                &self.decoded[..]
            }
            None => bytes,
        };
        self.items.extend(self.parser.feed(body));
        Ok(())
    }

    /// The next item of the stream (event, retry or comment); `None` at its end.
    ///
    /// # Errors
    ///
    /// A read error or a malformed chunked body.
    pub async fn next_item(&mut self) -> Result<Option<Item>, String> {
        loop {
            if let Some(item) = self.items.pop_front() {
                return Ok(Some(item));
            }
            if self.chunked.as_ref().is_some_and(ChunkedDecoder::is_done) {
                return Ok(None);
            }
            let read = self
                .stream
                .read(&mut self.buffer)
                .await
                .map_err(|error| format!("reading the event stream: {error}"))?;
            if read == 0 {
                return Ok(None);
            }
            let bytes = std::mem::take(&mut self.buffer);
            let fed = self.feed(&bytes[..read]);
            self.buffer = bytes;
            fed?;
        }
    }

    /// The next event, skipping retries and comments; `None` at the end.
    ///
    /// # Errors
    ///
    /// As for [`SseReader::next_item`].
    pub async fn next_event(&mut self) -> Result<Option<ParsedEvent>, String> {
        loop {
            match self.next_item().await? {
                Some(Item::Event(event)) => return Ok(Some(event)),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }
}

/// Connects `count` things at most `parallel` at a time, in index order.
///
/// # Errors
///
/// The first error, with the index of the connection that failed.
pub async fn connect_many<T, F, Fut>(
    count: u64,
    parallel: u64,
    connect: F,
) -> Result<Vec<T>, String>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let mut opened = Vec::with_capacity(count as usize);
    let mut start = 0;
    while start < count {
        let end = (start + parallel).min(count);
        let batch = futures_util::future::join_all((start..end).map(&connect)).await;
        for (offset, result) in batch.into_iter().enumerate() {
            opened.push(
                result.map_err(|error| format!("connection {}: {error}", start + offset as u64))?,
            );
        }
        start = end;
    }
    Ok(opened)
}

/// Posts a chat message over plain HTTP (`POST /messages`), waiting for the 202.
///
/// # Errors
///
/// When the request fails or is not accepted.
pub async fn post_chat(addr: SocketAddr, content: &str) -> Result<(), String> {
    let body = format!("{{\"content\":\"{content}\",\"from\":\"bench\"}}");
    let response = wsse_testkit::http::post_json(addr, "/messages", &body).await?;
    if response.head.status == 202 {
        Ok(())
    } else {
        Err(format!("POST /messages answered {}", response.head.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_cycle_over_loopback_addresses() {
        assert_eq!(source_for(0), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(source_for(1), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(source_for(SOURCE_ADDRESSES), source_for(0));
        assert_eq!(
            source_for(SOURCE_ADDRESSES - 1),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 201))
        );
    }
}
