//! A tiny HTTP/1.1 client over a plain `TcpStream`, and an SSE reader on top of it.
//!
//! A library client would do, but it would hide exactly what the tests look at: the
//! status line, the headers as sent, the chunks of a streamed body and where the
//! response ends. Every request says `Connection: close`, so one connection carries one
//! request, and a body ends by `Content-Length`, by the last chunk of
//! `Transfer-Encoding: chunked`, or when the server closes the connection.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout, timeout_at};
use wsse_wire::sse::{EventStreamParser, Item, ParsedEvent};

/// How long any single network step may take before a test gives up.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest response head the client accepts.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The status line and headers of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code, like 200.
    pub status: u16,
    /// The reason phrase, like `OK` (may be empty).
    pub reason: String,
    /// The headers in the order received, names as sent.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// Parses a response head: the bytes up to and including the blank line.
    ///
    /// # Errors
    ///
    /// A status line that is not `HTTP/1.x NNN reason`, or a header line without a colon.
    pub fn parse(bytes: &[u8]) -> Result<ResponseHead, String> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| "the response head is not UTF-8".to_owned())?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(format!("not an HTTP/1.x status line: {status_line:?}"));
        }
        let status = parts
            .next()
            .filter(|code| code.len() == 3)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("no status code in {status_line:?}"))?;
        let reason = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        for line in lines.take_while(|line| !line.is_empty()) {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("header line without a colon: {line:?}"))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        Ok(ResponseHead {
            status,
            reason,
            headers,
        })
    }

    /// The value of header `name` (case-insensitive); the first if there are several.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// How many times header `name` occurs.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .count()
    }

    /// How the body of this response ends (for a response to a GET or POST).
    pub fn body_framing(&self) -> Result<BodyFraming, String> {
        if self.status / 100 == 1 || self.status == 204 || self.status == 304 {
            return Ok(BodyFraming::Length(0));
        }
        if let Some(encoding) = self.header("transfer-encoding") {
            let last = encoding.rsplit(',').next().unwrap_or_default().trim();
            if last.eq_ignore_ascii_case("chunked") {
                return Ok(BodyFraming::Chunked);
            }
            return Err(format!("unsupported Transfer-Encoding {encoding:?}"));
        }
        match self.header("content-length") {
            Some(length) => length
                .parse()
                .map(BodyFraming::Length)
                .map_err(|_| format!("bad Content-Length {length:?}")),
            None => Ok(BodyFraming::UntilClose),
        }
    }
}

/// Where the index just past the blank line that ends a head is, if the head is complete.
pub fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|position| position + 4)
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Content-Length: N`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body ends when the server closes the connection.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hexadecimal size; `digits` counts the digits seen.
    Size { size: u64, digits: usize },
    /// After the size: a chunk extension, ignored up to the CR.
    Extension { size: u64 },
    /// The CR of the size line was read; the LF must follow.
    SizeLineFeed { size: u64 },
    /// Inside a chunk's data.
    Data { remaining: u64 },
    /// The CR after a chunk's data must follow.
    DataCarriageReturn,
    /// The LF after a chunk's data must follow.
    DataLineFeed,
    /// Reading trailer lines after the last chunk; `length` bytes of the current one.
    Trailer { length: usize },
    /// The CR of a trailer line was read; the LF must follow.
    TrailerLineFeed { empty: bool },
    /// The blank line after the trailers was read: the body is complete.
    Done,
}

/// An incremental decoder for `Transfer-Encoding: chunked` (RFC 9112, section 7.1).
///
/// Feed it bytes as they arrive, cut anywhere; it appends the data to `out` and
/// reports when the last chunk and the trailers have gone by.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size { size: 0, digits: 0 },
        }
    }

    /// Whether the whole body (last chunk and trailers) has been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes `input`, appending the data it carries to `out`. Returns how many bytes
    /// of `input` belong to the body: all of them, unless the body ends inside it.
    ///
    /// # Errors
    ///
    /// When the bytes are not a valid chunked body.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, String> {
        let mut position = 0;
        while position < input.len() {
            let byte = input[position];
            self.state = match self.state {
                ChunkState::Size { size, digits } => match (byte as char).to_digit(16) {
                    Some(digit) => {
                        if digits >= 15 {
                            return Err("chunk size too large".to_owned());
                        }
                        ChunkState::Size {
                            size: size * 16 + u64::from(digit),
                            digits: digits + 1,
                        }
                    }
                    None if digits == 0 => {
                        return Err(format!("expected a chunk size, got byte {byte:#04x}"));
                    }
                    None if byte == b'\r' => ChunkState::SizeLineFeed { size },
                    None if matches!(byte, b';' | b' ' | b'\t') => ChunkState::Extension { size },
                    None => return Err(format!("bad byte {byte:#04x} in a chunk size")),
                },
                ChunkState::Extension { size } => match byte {
                    b'\r' => ChunkState::SizeLineFeed { size },
                    b'\n' => return Err("bare LF in a chunk size line".to_owned()),
                    _ => ChunkState::Extension { size },
                },
                ChunkState::SizeLineFeed { size } => {
                    if byte != b'\n' {
                        return Err("CR without LF after a chunk size".to_owned());
                    }
                    if size == 0 {
                        ChunkState::Trailer { length: 0 }
                    } else {
                        ChunkState::Data { remaining: size }
                    }
                }
                ChunkState::Data { remaining } => {
                    let available = (input.len() - position) as u64;
                    let take = remaining.min(available) as usize;
                    out.extend_from_slice(&input[position..position + take]);
                    position += take;
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        ChunkState::DataCarriageReturn
                    } else {
                        ChunkState::Data { remaining }
                    };
                    continue;
                }
                ChunkState::DataCarriageReturn => {
                    if byte != b'\r' {
                        return Err("chunk data longer than its size".to_owned());
                    }
                    ChunkState::DataLineFeed
                }
                ChunkState::DataLineFeed => {
                    if byte != b'\n' {
                        return Err("CR without LF after chunk data".to_owned());
                    }
                    ChunkState::Size { size: 0, digits: 0 }
                }
                ChunkState::Trailer { length } => match byte {
                    b'\r' => ChunkState::TrailerLineFeed { empty: length == 0 },
                    b'\n' => return Err("bare LF in the trailers".to_owned()),
                    _ => ChunkState::Trailer { length: length + 1 },
                },
                ChunkState::TrailerLineFeed { empty } => {
                    if byte != b'\n' {
                        return Err("CR without LF in the trailers".to_owned());
                    }
                    if empty {
                        position += 1;
                        self.state = ChunkState::Done;
                        return Ok(position);
                    }
                    ChunkState::Trailer { length: 0 }
                }
                ChunkState::Done => return Ok(position),
            };
            position += 1;
        }
        Ok(position)
    }
}

/// A request as bytes: the request line, `Host`, the given headers, `Connection:
/// close`, a `Content-Length` when there is a body or the method is POST, the body.
pub fn request_bytes(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("connection"))
    {
        request.push_str("Connection: close\r\n");
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A response being read: its head, and its body as it arrives.
#[derive(Debug)]
pub struct HttpStream {
    stream: TcpStream,
    /// The status line and headers.
    pub head: ResponseHead,
    /// Bytes read from the socket but not decoded yet.
    unread: Vec<u8>,
    body: BodyState,
}

#[derive(Debug)]
enum BodyState {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
    Finished,
}

impl HttpStream {
    /// Connects to `addr`, sends `request` and reads the response head.
    ///
    /// # Errors
    ///
    /// A connection failure, a timeout ([`STEP_TIMEOUT`]) or a malformed head.
    pub async fn send(addr: SocketAddr, request: &[u8]) -> Result<HttpStream, String> {
        HttpStream::send_from(None, addr, request).await
    }

    /// As [`HttpStream::send`], from the local address `local` if given (any of
    /// 127.0.0.0/8 reaches a server on 127.0.0.1, so a test can be several clients).
    ///
    /// # Errors
    ///
    /// As for [`HttpStream::send`], and a local address that cannot be bound.
    pub async fn send_from(
        local: Option<IpAddr>,
        addr: SocketAddr,
        request: &[u8],
    ) -> Result<HttpStream, String> {
        let connect = async {
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            if let Some(local) = local {
                socket.bind(SocketAddr::new(local, 0))?;
            }
            socket.connect(addr).await
        };
        let from = local
            .map(|local| format!(" from {local}"))
            .unwrap_or_default();
        let mut stream = timeout(STEP_TIMEOUT, connect)
            .await
            .map_err(|_| format!("connecting to {addr}{from} timed out"))?
            .map_err(|error| format!("cannot connect to {addr}{from}: {error}"))?;
        stream
            .write_all(request)
            .await
            .map_err(|error| format!("sending the request failed: {error}"))?;
        let (head, unread) = read_head(&mut stream).await?;
        let body = match head.body_framing()? {
            BodyFraming::Length(0) => BodyState::Finished,
            BodyFraming::Length(remaining) => BodyState::Length { remaining },
            BodyFraming::Chunked => BodyState::Chunked(ChunkedDecoder::new()),
            BodyFraming::UntilClose => BodyState::UntilClose,
        };
        Ok(HttpStream {
            stream,
            head,
            unread,
            body,
        })
    }

    /// The next piece of the body, waiting at most `wait`. `Ok(None)` when the body is
    /// complete: the last chunk, `Content-Length` bytes, or the server closed the
    /// connection (for a body without either).
    ///
    /// # Errors
    ///
    /// A timeout, a read error, a malformed chunked body, or a connection closed before
    /// the body was complete.
    pub async fn next_chunk(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, String> {
        let deadline = Instant::now() + wait;
        loop {
            if !self.unread.is_empty() {
                let input = std::mem::take(&mut self.unread);
                let mut out = Vec::new();
                match &mut self.body {
                    BodyState::Finished => return Ok(None),
                    BodyState::UntilClose => out = input,
                    BodyState::Length { remaining } => {
                        let take = (*remaining).min(input.len() as u64) as usize;
                        out.extend_from_slice(&input[..take]);
                        *remaining -= take as u64;
                        if *remaining == 0 {
                            self.body = BodyState::Finished;
                        }
                    }
                    BodyState::Chunked(decoder) => {
                        decoder.feed(&input, &mut out)?;
                        if decoder.is_done() {
                            self.body = BodyState::Finished;
                        }
                    }
                }
                if !out.is_empty() {
                    return Ok(Some(out));
                }
            }
            if matches!(self.body, BodyState::Finished) {
                return Ok(None);
            }
            let mut buffer = vec![0; 64 * 1024];
            let read = timeout_at(deadline, self.stream.read(&mut buffer))
                .await
                .map_err(|_| {
                    format!(
                        "no data within {} ms while reading a response body",
                        wait.as_millis()
                    )
                })?
                .map_err(|error| format!("reading the response body failed: {error}"))?;
            if read == 0 {
                return match self.body {
                    BodyState::UntilClose => {
                        self.body = BodyState::Finished;
                        Ok(None)
                    }
                    _ => Err("the server closed the connection in the middle of the body".into()),
                };
            }
            buffer.truncate(read);
            self.unread = buffer;
        }
    }

    /// Reads the rest of the body, all of it within `wait`.
    ///
    /// # Errors
    ///
    /// As for [`HttpStream::next_chunk`].
    pub async fn read_to_end(&mut self, wait: Duration) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + wait;
        let mut body = Vec::new();
        while let Some(chunk) = self
            .next_chunk(deadline.saturating_duration_since(Instant::now()))
            .await?
        {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Reads from `stream` until a complete response head; returns it and the bytes that
/// came after it.
///
/// # Errors
///
/// A timeout ([`STEP_TIMEOUT`]), a connection closed early, or a malformed head.
pub async fn read_head(stream: &mut TcpStream) -> Result<(ResponseHead, Vec<u8>), String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut received = Vec::new();
    loop {
        if let Some(end) = find_head_end(&received) {
            let head = ResponseHead::parse(&received[..end])?;
            return Ok((head, received[end..].to_vec()));
        }
        if received.len() > MAX_HEAD_BYTES {
            return Err("the response head is larger than 64 KiB".to_owned());
        }
        let mut buffer = [0; 4096];
        let read = timeout_at(deadline, stream.read(&mut buffer))
            .await
            .map_err(|_| {
                format!(
                    "no complete response head within {} s (got {:?})",
                    STEP_TIMEOUT.as_secs(),
                    String::from_utf8_lossy(&received)
                )
            })?
            .map_err(|error| format!("reading the response head failed: {error}"))?;
        if read == 0 {
            return Err(format!(
                "the server closed the connection before a complete response head (got {:?})",
                String::from_utf8_lossy(&received)
            ));
        }
        received.extend_from_slice(&buffer[..read]);
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status line and headers.
    pub head: ResponseHead,
    /// The whole body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    ///
    /// # Errors
    ///
    /// When it is not JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body)
            .map_err(|error| format!("the body {:?} is not JSON: {error}", self.text()))
    }
}

/// Sends one request and reads the whole response (within [`STEP_TIMEOUT`] per step).
///
/// # Errors
///
/// Any network failure or malformed response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let bytes = request_bytes(method, &addr.to_string(), path, headers, body);
    let mut stream = HttpStream::send(addr, &bytes).await?;
    let body = stream.read_to_end(STEP_TIMEOUT).await?;
    Ok(Response {
        head: stream.head,
        body,
    })
}

/// `GET path`.
///
/// # Errors
///
/// As for [`request`].
pub async fn get(addr: SocketAddr, path: &str) -> Result<Response, String> {
    request(addr, "GET", path, &[], &[]).await
}

/// `POST /messages` with a JSON body; returns the response.
///
/// # Errors
///
/// As for [`request`].
pub async fn post_json(addr: SocketAddr, path: &str, body: &str) -> Result<Response, String> {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
}

/// An open `text/event-stream` response, parsed as it arrives.
#[derive(Debug)]
pub struct SseStream {
    http: HttpStream,
    parser: EventStreamParser,
    pending: VecDeque<Item>,
    /// Every body byte received so far, for checks on the exact text.
    pub raw: Vec<u8>,
    ended: bool,
}

impl SseStream {
    /// `GET path` with `headers`; the response must be 200.
    ///
    /// # Errors
    ///
    /// A network failure or another status.
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<SseStream, String> {
        let mut all_headers = vec![("Accept", "text/event-stream")];
        all_headers.extend_from_slice(headers);
        let request = request_bytes("GET", &addr.to_string(), path, &all_headers, &[]);
        let http = HttpStream::send(addr, &request).await?;
        if http.head.status != 200 {
            return Err(format!(
                "GET {path} answered {} {}, expected 200",
                http.head.status, http.head.reason
            ));
        }
        Ok(SseStream {
            http,
            parser: EventStreamParser::new(),
            pending: VecDeque::new(),
            raw: Vec::new(),
            ended: false,
        })
    }

    /// The response head.
    pub fn head(&self) -> &ResponseHead {
        &self.http.head
    }

    /// The parser's last event ID: what a reconnecting `EventSource` would send.
    pub fn last_event_id(&self) -> &str {
        self.parser.last_event_id()
    }

    /// The next item (event, comment or retry) within `wait`; `Ok(None)` once the
    /// response has ended.
    ///
    /// # Errors
    ///
    /// A timeout or a network failure.
    pub async fn next_item(&mut self, wait: Duration) -> Result<Option<Item>, String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            if self.ended {
                return Ok(None);
            }
            match self
                .http
                .next_chunk(deadline.saturating_duration_since(Instant::now()))
                .await?
            {
                Some(chunk) => {
                    self.raw.extend_from_slice(&chunk);
                    self.pending.extend(self.parser.feed(&chunk));
                }
                None => {
                    self.parser.end_of_stream();
                    self.ended = true;
                }
            }
        }
    }

    /// The next event, skipping comments, `retry` lines and heartbeat events (which
    /// belong to the connection, not to the application: [`next_item`] shows them).
    ///
    /// [`next_item`]: SseStream::next_item
    ///
    /// # Errors
    ///
    /// A timeout, a network failure, or the end of the stream.
    pub async fn next_event(&mut self, wait: Duration) -> Result<ParsedEvent, String> {
        let deadline = Instant::now() + wait;
        loop {
            match self
                .next_item(deadline.saturating_duration_since(Instant::now()))
                .await?
            {
                Some(Item::Event(event)) if event.event_type != wsse_app::sse::HEARTBEAT_EVENT => {
                    return Ok(event);
                }
                Some(_) => {}
                None => return Err("the event stream ended".to_owned()),
            }
        }
    }

    /// Waits up to `wait` for the response to end, skipping whatever still comes.
    ///
    /// # Errors
    ///
    /// When it does not end in time, or ends with an error rather than cleanly.
    pub async fn expect_end(&mut self, wait: Duration) -> Result<Vec<Item>, String> {
        let deadline = Instant::now() + wait;
        let mut items = Vec::new();
        while let Some(item) = self
            .next_item(deadline.saturating_duration_since(Instant::now()))
            .await?
        {
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), String> {
        let mut decoder = ChunkedDecoder::new();
        let mut out = Vec::new();
        let used = decoder.feed(input, &mut out)?;
        Ok((out, used, decoder.is_done()))
    }

    #[test]
    fn chunked_body_in_one_piece() {
        let body = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
        assert_eq!(
            decode_all(body).unwrap(),
            (b"hello, world".to_vec(), body.len(), true)
        );
    }

    #[test]
    fn chunked_body_cut_at_every_byte() {
        let body = b"4;name=value\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut decoder = ChunkedDecoder::new();
        let mut out = Vec::new();
        for (index, byte) in body.iter().enumerate() {
            assert!(!decoder.is_done(), "done too early at byte {index}");
            assert_eq!(decoder.feed(&[*byte], &mut out).unwrap(), 1);
        }
        assert!(decoder.is_done());
        assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
    }

    #[test]
    fn chunked_body_stops_at_its_end() {
        let (out, used, done) = decode_all(b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK").unwrap();
        assert_eq!((out.as_slice(), used, done), (b"a".as_slice(), 11, true));
    }

    #[test]
    fn unfinished_chunked_body_is_not_done() {
        let (out, _, done) = decode_all(b"Ff\r\nabc").unwrap();
        assert_eq!(out, b"abc");
        assert!(!done);
        let (_, _, done) = decode_all(b"0\r\n").unwrap();
        assert!(
            !done,
            "the blank line after the last chunk is still missing"
        );
    }

    #[test]
    fn malformed_chunked_bodies() {
        for bad in [
            b"x\r\n".as_slice(),
            b"\r\n",
            b"3\nabc\r\n",
            b"3\r\nabcd\r\n",
            b"3\r\nabc\n",
            b"1234567890abcdef0\r\n",
            b"0\r\n\n",
        ] {
            assert!(
                decode_all(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn response_heads() {
        let bytes = b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\ncontent-length:  5 \r\n\r\nhello";
        let end = find_head_end(bytes).unwrap();
        assert_eq!(&bytes[end..], b"hello");
        let head = ResponseHead::parse(&bytes[..end]).unwrap();
        assert_eq!(head.status, 426);
        assert_eq!(head.reason, "Upgrade Required");
        assert_eq!(head.header("sec-websocket-version"), Some("13"));
        assert_eq!(head.header("Content-Length"), Some("5"));
        assert_eq!(head.header_count("content-length"), 1);
        assert_eq!(head.body_framing().unwrap(), BodyFraming::Length(5));

        let head =
            ResponseHead::parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(head.body_framing().unwrap(), BodyFraming::Chunked);
        let head = ResponseHead::parse(b"HTTP/1.0 200\r\n\r\n").unwrap();
        assert_eq!((head.status, head.reason.as_str()), (200, ""));
        assert_eq!(head.body_framing().unwrap(), BodyFraming::UntilClose);
        let head = ResponseHead::parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").unwrap();
        assert_eq!(head.body_framing().unwrap(), BodyFraming::Length(0));

        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n"), None);
        assert!(ResponseHead::parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(ResponseHead::parse(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
        assert!(ResponseHead::parse(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n").is_err());
    }

    #[test]
    fn requests() {
        let bytes = request_bytes(
            "POST",
            "127.0.0.1:1",
            "/messages",
            &[("Content-Type", "application/json")],
            b"{}",
        );
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "POST /messages HTTP/1.1\r\nHost: 127.0.0.1:1\r\nContent-Type: application/json\r\n\
             Connection: close\r\nContent-Length: 2\r\n\r\n{}"
        );
        let bytes = request_bytes("GET", "h", "/", &[("Connection", "keep-alive")], b"");
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
        );
    }
}
