//! HTTP/1.1 by hand: reading requests, writing responses, keeping the connection open.
//!
//! A framework hands the application a parsed request and writes its response back.
//! Underneath it does what this module does: read bytes until the blank line that ends
//! the head, parse the head (here with `httparse`, which does only that), read exactly
//! `Content-Length` bytes of body, refuse what is too big or malformed with the right
//! status, and write the status line, the headers and the body.
//!
//! One TCP connection carries any number of requests, one after the other ("keep-alive",
//! the default of HTTP/1.1). A client may even send the next request before the first
//! answer ("pipelining"). So the bytes read from the socket are not "a request": they
//! are a stream, and whatever was read past the end of one request belongs to the next
//! one, or, after an upgrade, to the WebSocket. [`Connection`] keeps those bytes.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest request head (request line and header fields) this server reads: 16 KiB.
pub const MAX_HEAD_LEN: usize = 16 * 1024;

/// The most header fields a request may carry.
pub const MAX_HEADERS: usize = 64;

/// The longest request body this server accepts: 1 MiB.
pub const MAX_BODY_LEN: usize = 1024 * 1024;

/// How many bytes to make room for before each read from the socket.
const READ_SIZE: usize = 4096;

/// How long a connection that is being closed keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// A parsed HTTP/1.1 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent: `GET`, `POST`...
    pub method: String,
    /// The path of the request target, without the query: `/ws`.
    pub path: String,
    /// The query, the part of the target after `?` (without it), still percent-encoded.
    /// `None` when the target has no `?`. Decoding it is left to the application, as
    /// the servers of this workspace leave it to `wsse_app::query` whatever the
    /// framework, so that all of them read a query the same way.
    pub query: Option<String>,
    /// The HTTP version as (major, minor): (1, 1) or (1, 0).
    pub version: (u8, u8),
    /// The header fields in the order they came, names as sent, values as raw bytes
    /// (HTTP allows bytes that are not UTF-8 in values).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body: `Content-Length` bytes, empty without one.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of the first header field called `name` (compared case-insensitively),
    /// if there is one and it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        let (_, value) = self
            .headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))?;
        std::str::from_utf8(value).ok()
    }

    /// The header fields as (name, raw value) pairs: the shape
    /// [`wsse_wire::handshake::validate_upgrade_request`] takes.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone {
        self.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
    }

    // ANCHOR: keep_alive
    /// Whether the client wants the connection kept open for another request.
    ///
    /// HTTP/1.1 keeps connections open unless a side says `Connection: close`; HTTP/1.0
    /// closes them unless the client says `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.version >= (1, 1) {
            !self.has_connection_token("close")
        } else {
            self.has_connection_token("keep-alive")
        }
    }
    // ANCHOR_END: keep_alive

    /// Whether a `Connection` header lists `token`: `Connection: keep-alive, Upgrade`
    /// lists both.
    fn has_connection_token(&self, token: &str) -> bool {
        self.header_pairs()
            .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
            .filter_map(|(_, value)| std::str::from_utf8(value).ok())
            .flat_map(|value| value.split(','))
            .any(|candidate| candidate.trim().eq_ignore_ascii_case(token))
    }
}

/// Why no request could be read, and what to answer.
#[derive(Debug)]
pub enum HttpError {
    /// Reading from the socket failed: there is nobody left to answer.
    Io(io::Error),
    /// The client closed the connection in the middle of a request.
    Incomplete,
    /// The request line or a header field is not valid HTTP: 400 Bad Request.
    Malformed(String),
    /// The head is longer than [`MAX_HEAD_LEN`] or has more than [`MAX_HEADERS`] fields:
    /// 431 Request Header Fields Too Large.
    HeadTooLarge,
    /// `Content-Length` is above [`MAX_BODY_LEN`]: 413 Content Too Large.
    BodyTooLarge {
        /// The announced length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The body comes with `Transfer-Encoding` (chunked) instead of `Content-Length`:
    /// 411 Length Required.
    ///
    /// Browsers never send request bodies that way and this server does not decode them;
    /// 411 tells a client exactly what to do instead: send a `Content-Length`.
    LengthRequired,
    /// The head did not arrive within the time the server gives it (a slowloris client
    /// holding connections by sending a byte now and then, or an idle keep-alive
    /// connection): 408 Request Timeout, and the connection is closed.
    HeadTimeout(Duration),
}

impl HttpError {
    /// The status to answer with, or `None` when the connection is already broken.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Io(_) => None,
            HttpError::Incomplete | HttpError::Malformed(_) => Some(400),
            HttpError::HeadTooLarge => Some(431),
            HttpError::BodyTooLarge { .. } => Some(413),
            HttpError::LengthRequired => Some(411),
            HttpError::HeadTimeout(_) => Some(408),
        }
    }

    /// The response to send before closing the connection: the status, the reason as a
    /// short text, and `Connection: close`, since the rest of the stream cannot be trusted
    /// to start at a request boundary.
    pub fn response(&self) -> Option<Response> {
        let status = self.status()?;
        Some(Response::text(status, format!("{self}\n")).header("Connection", "close"))
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Io(error) => write!(formatter, "reading the request failed: {error}"),
            HttpError::Incomplete => write!(formatter, "the connection ended inside a request"),
            HttpError::Malformed(reason) => write!(formatter, "malformed request: {reason}"),
            HttpError::HeadTooLarge => write!(
                formatter,
                "request head above {MAX_HEAD_LEN} bytes or {MAX_HEADERS} header fields"
            ),
            HttpError::BodyTooLarge { length, limit } => {
                write!(formatter, "request body of {length} bytes (limit {limit})")
            }
            HttpError::LengthRequired => write!(
                formatter,
                "request bodies need a Content-Length (Transfer-Encoding is not supported)"
            ),
            HttpError::HeadTimeout(limit) => write!(
                formatter,
                "no complete request head within {} s",
                limit.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<io::Error> for HttpError {
    fn from(error: io::Error) -> Self {
        HttpError::Io(error)
    }
}

// ANCHOR: read_request
/// Reads the next request from `stream`.
///
/// `buffer` holds bytes read from the stream but not used yet; pass the same buffer for
/// every request of a connection. Bytes read past the end of this request stay in it:
/// they are the start of the next request (pipelining) or, after an upgrade, the first
/// WebSocket frames.
///
/// Returns `Ok(None)` when the client closed the connection between two requests, the
/// normal end of a keep-alive connection.
pub async fn read_request<R>(
    stream: &mut R,
    buffer: &mut Vec<u8>,
) -> Result<Option<Request>, HttpError>
where
    R: AsyncRead + Unpin,
{
    read_request_within(stream, buffer, None).await
}

/// [`read_request`], with at most `head_timeout` (if given) for the head, counted from
/// now: [`HttpError::HeadTimeout`] when it is not complete by then. Without such a
/// limit, a client that sends its head one byte a minute (or, between two requests,
/// nothing) holds the connection forever.
pub async fn read_request_within<R>(
    stream: &mut R,
    buffer: &mut Vec<u8>,
    head_timeout: Option<Duration>,
) -> Result<Option<Request>, HttpError>
where
    R: AsyncRead + Unpin,
{
    let deadline = head_timeout.map(|limit| (tokio::time::Instant::now() + limit, limit));
    // 1. The head: read until httparse sees the blank line that ends it.
    let (mut request, head_len, body_len) = loop {
        if let Some(parsed) = parse_head(buffer)? {
            break parsed;
        }
        // Without this limit a client could make the buffer grow forever.
        if buffer.len() >= MAX_HEAD_LEN {
            return Err(HttpError::HeadTooLarge);
        }
        let read = match deadline {
            Some((deadline, limit)) => tokio::time::timeout_at(deadline, read_more(stream, buffer))
                .await
                .map_err(|_| HttpError::HeadTimeout(limit))?,
            None => read_more(stream, buffer).await,
        };
        if read? == 0 {
            return if buffer.is_empty() {
                Ok(None)
            } else {
                Err(HttpError::Incomplete)
            };
        }
    };

    // 2. The body: exactly Content-Length bytes, some of which may be in the buffer already.
    let request_len = head_len + body_len;
    while buffer.len() < request_len {
        if read_more(stream, buffer).await? == 0 {
            return Err(HttpError::Incomplete);
        }
    }
    request.body = buffer[head_len..request_len].to_vec();

    // 3. Whatever follows is not ours: leave it at the front of the buffer.
    buffer.drain(..request_len);
    Ok(Some(request))
}
// ANCHOR_END: read_request

/// Appends what the stream has to `buffer`, without zeroing memory first; 0 means the
/// stream ended.
async fn read_more<R>(stream: &mut R, buffer: &mut Vec<u8>) -> io::Result<usize>
where
    R: AsyncRead + Unpin,
{
    buffer.reserve(READ_SIZE);
    stream.read_buf(buffer).await
}

// ANCHOR: parse_head
/// Parses the head at the front of `buffer`, if it is complete: the request (without
/// its body), the length of the head and the length of the body to read after it.
///
/// httparse keeps no state between calls, so a head that arrives in pieces is parsed
/// again from the start each time; [`MAX_HEAD_LEN`] keeps that cheap.
fn parse_head(buffer: &[u8]) -> Result<Option<(Request, usize, usize)>, HttpError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    let head_len = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(error) => return Err(HttpError::Malformed(error.to_string())),
    };
    // One read may have brought a whole head that is too long.
    if head_len > MAX_HEAD_LEN {
        return Err(HttpError::HeadTooLarge);
    }
    // A complete parse has filled in the method, the target and the version.
    let target = parsed.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (target, None),
    };
    let request = Request {
        method: parsed.method.unwrap_or_default().to_owned(),
        path: path.to_owned(),
        query,
        version: (1, parsed.version.unwrap_or(1)),
        headers: parsed
            .headers
            .iter()
            .map(|field| (field.name.to_owned(), field.value.to_vec()))
            .collect(),
        body: Vec::new(),
    };
    let body_len = body_length(&request)?;
    Ok(Some((request, head_len, body_len)))
}
// ANCHOR_END: parse_head

// ANCHOR: body_length
/// How many body bytes follow the head, from `Content-Length`.
fn body_length(request: &Request) -> Result<usize, HttpError> {
    if request
        .header_pairs()
        .any(|(name, _)| name.eq_ignore_ascii_case("transfer-encoding"))
    {
        return Err(HttpError::LengthRequired);
    }
    let mut length = None;
    for (_, value) in request
        .header_pairs()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
    {
        // Digits only: `str::parse` would also accept a leading `+`.
        let parsed = std::str::from_utf8(value)
            .ok()
            .map(str::trim)
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
            .and_then(|digits| digits.parse::<usize>().ok())
            .ok_or_else(|| HttpError::Malformed("invalid Content-Length".into()))?;
        // Two different lengths are how request smuggling attacks start.
        if length.is_some_and(|previous| previous != parsed) {
            return Err(HttpError::Malformed("conflicting Content-Length".into()));
        }
        length = Some(parsed);
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY_LEN {
        return Err(HttpError::BodyTooLarge {
            length,
            limit: MAX_BODY_LEN,
        });
    }
    Ok(length)
}
// ANCHOR_END: body_length

/// A response to write: a status, header fields and a body.
///
/// `Content-Length` is added when it is written; do not set it yourself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields, written in this order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no header fields and an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// An `application/json` response; `body` must already be JSON.
    pub fn json(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .header("Content-Type", "application/json")
            .body(body.into())
    }

    /// A 200 `text/html` response.
    pub fn html(body: impl Into<String>) -> Response {
        Response::new(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .body(body.into())
    }

    /// Adds a header field.
    ///
    /// # Panics
    ///
    /// If the name or the value contains CR or LF: it would end the line early and let
    /// the value smuggle in header fields of its own ("response splitting").
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        let (name, value) = (name.into(), value.into());
        assert!(
            !name.contains(['\r', '\n']) && !value.contains(['\r', '\n']),
            "header field {name:?} contains a line break"
        );
        self.headers.push((name, value));
        self
    }

    /// Replaces the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// Writes the whole response to `stream`.
    pub async fn write_to<W>(&self, stream: &mut W) -> io::Result<()>
    where
        W: AsyncWrite + Unpin,
    {
        stream.write_all(&self.to_bytes(true)).await?;
        stream.flush().await
    }

    // ANCHOR: response_bytes
    /// The response as bytes: status line, header fields, `Content-Length`, blank line,
    /// and the body if `with_body` (a response to `HEAD` has the same head and no body).
    pub fn to_bytes(&self, with_body: bool) -> Vec<u8> {
        let status = self.status;
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        // 1xx and 204 responses never have a body, so they must not announce one.
        let has_body = !(100..200).contains(&status) && status != 204;
        if has_body {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if has_body && with_body {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
    // ANCHOR_END: response_bytes
}

/// The reason phrase for a status code. Clients ignore it, but people read it.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        // The phrase may be empty; the space before it may not.
        _ => "",
    }
}

// ANCHOR: connection
/// One client's TCP connection, read as a sequence of requests.
///
/// The caller loops: read a request, answer it, and go on while the client wants to
/// keep the connection (see the crate documentation for the whole loop). For a
/// WebSocket or an event stream, [`Connection::into_parts`] hands over the socket and
/// the bytes already read past the request.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    /// Bytes read from the socket that belong to no request yet.
    buffer: Vec<u8>,
}

impl Connection {
    /// Starts reading requests from `stream`.
    pub fn new(stream: TcpStream) -> Connection {
        Connection {
            stream,
            buffer: Vec::new(),
        }
    }

    /// The address of the client at the other end, if the socket still knows it.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.stream.peer_addr().ok()
    }

    /// Reads the next request: see [`read_request`].
    pub async fn next_request(&mut self) -> Result<Option<Request>, HttpError> {
        read_request(&mut self.stream, &mut self.buffer).await
    }

    /// Reads the next request, its head within `head_timeout` from now: see
    /// [`read_request_within`].
    pub async fn next_request_within(
        &mut self,
        head_timeout: Duration,
    ) -> Result<Option<Request>, HttpError> {
        read_request_within(&mut self.stream, &mut self.buffer, Some(head_timeout)).await
    }

    /// Writes the response to `request`, telling the client whether the connection
    /// stays open. A response to `HEAD` goes without its body.
    ///
    /// Call [`Request::keep_alive`] afterwards to know whether to read another request.
    pub async fn respond(&mut self, request: &Request, response: Response) -> io::Result<()> {
        let response = match (request.keep_alive(), request.version) {
            (false, _) => response.header("Connection", "close"),
            // An HTTP/1.0 client only keeps the connection if we say so.
            (true, (1, 0)) => response.header("Connection", "keep-alive"),
            (true, _) => response,
        };
        let bytes = response.to_bytes(request.method != "HEAD");
        self.stream.write_all(&bytes).await
    }

    /// Answers a request that could not be read with `error.response()`, then closes
    /// the connection.
    pub async fn reject(mut self, error: &HttpError) {
        tracing::debug!(%error, "rejecting request");
        if let Some(response) = error.response() {
            // The client may be gone already; there is nothing to do about it.
            let _ = response.write_to(&mut self.stream).await;
        }
        lingering_close(self.stream).await;
    }

    /// The socket and the bytes already read from it that belong to no request: the
    /// first WebSocket frames, if the client sent them right after its upgrade request.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buffer)
    }
}
// ANCHOR_END: connection

// ANCHOR: lingering_close
/// Closes a connection without destroying the last response.
///
/// Closing a socket while the client's bytes sit unread in it makes the kernel send a
/// reset (RST), and a reset can discard our response before the client reads it. So:
/// send our FIN, then read and drop whatever still arrives until the client closes too,
/// for a moment at most.
pub(crate) async fn lingering_close(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    // On the heap, and only while lingering: an array here would sit in the state of
    // every connection's future that may reach this point, for its whole life.
    let mut discard = vec![0u8; READ_SIZE];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(read) = stream.read(&mut discard).await
            && read > 0
        {}
    })
    .await;
}
// ANCHOR_END: lingering_close

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lingering_keeps_no_read_buffer_in_its_future() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let future = lingering_close(stream);
        // Every connection's future that may linger holds this one's state for its
        // whole life: a buffer here would cost every idle connection.
        let size = std::mem::size_of_val(&future);
        assert!(
            size < READ_SIZE / 4,
            "lingering_close's future is {size} bytes"
        );
    }

    fn parse(head: &str) -> Result<Option<(Request, usize, usize)>, HttpError> {
        parse_head(head.as_bytes())
    }

    fn request(head: &str) -> Request {
        parse(head).unwrap().expect("a complete head").0
    }

    #[test]
    fn target_is_split_into_path_and_query() {
        let request = request("GET /ws?name=ada%20l&x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/ws");
        assert_eq!(request.query.as_deref(), Some("name=ada%20l&x"));
        assert_eq!(request.version, (1, 1));
        assert_eq!(self::request("GET / HTTP/1.1\r\n\r\n").query, None);
    }

    #[test]
    fn headers_are_found_case_insensitively_first_one_wins() {
        let head = b"GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\nX-B: \xff\r\n\r\n";
        let (request, _, _) = parse_head(head).unwrap().unwrap();
        assert_eq!(request.header("x-A"), Some("1"));
        assert_eq!(request.header("X-B"), None, "not UTF-8");
        assert_eq!(request.header_pairs().count(), 3);
    }

    #[test]
    fn keep_alive_depends_on_version_and_connection() {
        let cases = [
            ("HTTP/1.1", "", true),
            ("HTTP/1.1", "Connection: close\r\n", false),
            ("HTTP/1.1", "Connection: Upgrade, CLOSE\r\n", false),
            ("HTTP/1.0", "", false),
            ("HTTP/1.0", "Connection: keep-alive\r\n", true),
        ];
        for (version, field, expected) in cases {
            let request = request(&format!("GET / {version}\r\n{field}\r\n"));
            assert_eq!(request.keep_alive(), expected, "{version} {field:?}");
        }
    }

    #[test]
    fn content_length_rules() {
        let length = |fields: &str| {
            parse(&format!("POST / HTTP/1.1\r\n{fields}\r\n")).map(|parsed| parsed.unwrap().2)
        };
        assert_eq!(length("").unwrap(), 0);
        assert_eq!(length("Content-Length: 12\r\n").unwrap(), 12);
        assert_eq!(
            length("Content-Length: 12\r\nContent-Length: 12\r\n").unwrap(),
            12
        );
        for fields in [
            "Content-Length: +12\r\n",
            "Content-Length: \r\n",
            "Content-Length: 1, 2\r\n",
            "Content-Length: 12\r\nContent-Length: 13\r\n",
        ] {
            assert!(
                matches!(length(fields), Err(HttpError::Malformed(_))),
                "{fields:?}"
            );
        }
        assert!(matches!(
            length("Content-Length: 1048577\r\n"),
            Err(HttpError::BodyTooLarge {
                length: 1048577,
                ..
            })
        ));
        assert!(matches!(
            length("Transfer-Encoding: chunked\r\n"),
            Err(HttpError::LengthRequired)
        ));
    }

    #[test]
    fn partial_and_malformed_heads() {
        assert!(matches!(parse("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None)));
        assert!(matches!(
            parse("NOT A REQUEST\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        let many = "X: 1\r\n".repeat(MAX_HEADERS + 1);
        assert!(matches!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Err(HttpError::HeadTooLarge)
        ));
    }

    #[test]
    fn response_bytes() {
        let response = Response::text(404, "no such page").header("X-Test", "1");
        assert_eq!(
            String::from_utf8(response.to_bytes(true)).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             X-Test: 1\r\nContent-Length: 12\r\n\r\nno such page"
        );
        let head_only = String::from_utf8(response.to_bytes(false)).unwrap();
        assert!(head_only.ends_with("Content-Length: 12\r\n\r\n"));
        let no_content = String::from_utf8(Response::new(204).to_bytes(true)).unwrap();
        assert_eq!(no_content, "HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(
            String::from_utf8(Response::new(299).to_bytes(true)).unwrap(),
            "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    #[should_panic(expected = "line break")]
    fn header_values_cannot_break_lines() {
        let _ = Response::new(200).header("Location", "/\r\nSet-Cookie: x=1");
    }

    #[test]
    fn errors_have_statuses_and_short_bodies() {
        let error = HttpError::BodyTooLarge {
            length: 5,
            limit: 4,
        };
        assert_eq!(error.status(), Some(413));
        let response = error.response().unwrap();
        assert_eq!(response.status, 413);
        assert!(
            response
                .headers
                .contains(&("Connection".into(), "close".into()))
        );
        assert_eq!(HttpError::Io(io::ErrorKind::Other.into()).status(), None);
        assert!(
            HttpError::Io(io::ErrorKind::Other.into())
                .response()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_head_that_does_not_arrive_in_time_is_a_408() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        let mut buffer = Vec::new();
        let limit = Duration::from_millis(100);
        let error = read_request_within(&mut server, &mut buffer, Some(limit))
            .await
            .expect_err("the head never ends");
        assert!(matches!(error, HttpError::HeadTimeout(_)), "{error:?}");
        assert_eq!(error.status(), Some(408));
        assert!(error.to_string().contains("0.1 s"), "{error}");

        // A head that is complete in time is read, its bytes kept if they came early.
        client.write_all(b"\r\n").await.unwrap();
        let request = read_request_within(&mut server, &mut buffer, Some(limit))
            .await
            .expect("the head, now complete")
            .expect("a request");
        assert_eq!(request.path, "/");
    }
}
