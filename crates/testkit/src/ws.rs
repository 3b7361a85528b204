//! Two WebSocket clients: [`ChatClient`] on `tokio-tungstenite` for the normal chat
//! flows, and [`RawWs`] on a bare `TcpStream` and `wsse_wire` for the cases a library
//! would never produce (unmasked frames, reserved bits, invalid UTF-8, missing pongs).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message as LibraryMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsse_wire::deflate::Deflater;
use wsse_wire::frame::{OpCode, Role, encode_compressed_frame, encode_frame};
use wsse_wire::handshake::{client_request, generate_key, validate_server_response};
use wsse_wire::mask::random_key;
use wsse_wire::message::Message;
use wsse_wire::reader::MessageReader;

use crate::http::{ResponseHead, STEP_TIMEOUT, read_head};

/// The largest frame or message the raw client accepts from a server (the echo route
/// sends back up to 16 MiB).
const RAW_CLIENT_LIMIT: usize = 17 * 1024 * 1024;

/// How many bytes the raw client makes room for before each read.
const READ_SIZE: usize = 64 * 1024;

/// A chat client on `tokio-tungstenite`: connects to `/ws`, reads the welcome, and
/// exchanges JSON text messages.
pub struct ChatClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The first message the server sent, `{"type":"welcome",...}`.
    pub welcome: Value,
}

impl std::fmt::Debug for ChatClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChatClient")
            .field("welcome", &self.welcome)
            .finish_non_exhaustive()
    }
}

impl ChatClient {
    /// Connects to `ws://ADDR/ws?QUERY` (`query` without the `?`, may be empty) and
    /// reads the welcome, which must be the first message.
    ///
    /// # Errors
    ///
    /// A failed handshake, a timeout, or a first message that is not a welcome.
    pub async fn connect(addr: SocketAddr, query: &str) -> Result<ChatClient, String> {
        let url = if query.is_empty() {
            format!("ws://{addr}/ws")
        } else {
            format!("ws://{addr}/ws?{query}")
        };
        let (socket, _response) = timeout(STEP_TIMEOUT, tokio_tungstenite::connect_async(&url))
            .await
            .map_err(|_| format!("connecting to {url} timed out"))?
            .map_err(|error| format!("connecting to {url} failed: {error}"))?;
        let mut client = ChatClient {
            socket,
            welcome: Value::Null,
        };
        let welcome = client.recv().await?;
        if welcome["type"] != "welcome" {
            return Err(format!(
                "the first message on {url} is {welcome}, not a welcome"
            ));
        }
        client.welcome = welcome;
        Ok(client)
    }

    /// The name the welcome gave this client.
    pub fn name(&self) -> &str {
        self.welcome["you"].as_str().unwrap_or_default()
    }

    /// The `seq` of the welcome: the newest message when this client connected.
    pub fn welcome_seq(&self) -> u64 {
        self.welcome["seq"].as_u64().unwrap_or_default()
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// When the connection is gone.
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<(), String> {
        timeout(
            STEP_TIMEOUT,
            self.socket.send(LibraryMessage::text(text.into())),
        )
        .await
        .map_err(|_| "sending a text message timed out".to_owned())?
        .map_err(|error| format!("sending a text message failed: {error}"))
    }

    /// Sends `{"type":"message","content":CONTENT}`.
    ///
    /// # Errors
    ///
    /// When the connection is gone.
    pub async fn send_chat(&mut self, content: &str) -> Result<(), String> {
        self.send_text(serde_json::json!({"type": "message", "content": content}).to_string())
            .await
    }

    /// Sends any message (binary, ping, close...).
    ///
    /// # Errors
    ///
    /// When the connection is gone.
    pub async fn send(&mut self, message: LibraryMessage) -> Result<(), String> {
        timeout(STEP_TIMEOUT, self.socket.send(message))
            .await
            .map_err(|_| "sending a message timed out".to_owned())?
            .map_err(|error| format!("sending a message failed: {error}"))
    }

    /// The next message of any kind within `wait`; `Ok(None)` when the connection ended.
    ///
    /// # Errors
    ///
    /// A timeout or a protocol error.
    pub async fn next_message(&mut self, wait: Duration) -> Result<Option<LibraryMessage>, String> {
        match timeout(wait, self.socket.next()).await {
            Err(_) => Err(format!("nothing arrived within {} ms", wait.as_millis())),
            Ok(None) => Ok(None),
            Ok(Some(Err(error))) => Err(format!("the connection failed: {error}")),
            Ok(Some(Ok(message))) => Ok(Some(message)),
        }
    }

    /// The next text message as JSON, within [`STEP_TIMEOUT`]. Pings and pongs are
    /// skipped (the library answers pings itself).
    ///
    /// # Errors
    ///
    /// A timeout, a close, a binary message, or text that is not JSON.
    pub async fn recv(&mut self) -> Result<Value, String> {
        self.recv_within(STEP_TIMEOUT).await
    }

    /// Like [`ChatClient::recv`] with its own time limit.
    ///
    /// # Errors
    ///
    /// As for [`ChatClient::recv`].
    pub async fn recv_within(&mut self, wait: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message(left).await? {
                Some(LibraryMessage::Text(text)) => {
                    return serde_json::from_str(&text)
                        .map_err(|error| format!("the server sent {text:?}, not JSON: {error}"));
                }
                Some(LibraryMessage::Ping(_) | LibraryMessage::Pong(_)) => {}
                Some(LibraryMessage::Close(frame)) => {
                    return Err(format!("the server closed the chat: {frame:?}"));
                }
                Some(other) => return Err(format!("unexpected message {other:?}")),
                None => return Err("the chat connection ended".to_owned()),
            }
        }
    }

    /// Reads until a message for which `wanted` is true, within [`STEP_TIMEOUT`] in all;
    /// returns it and everything skipped before it.
    ///
    /// # Errors
    ///
    /// As for [`ChatClient::recv`]; the error names `what` was awaited.
    pub async fn recv_until(
        &mut self,
        what: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<(Value, Vec<Value>), String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.recv_within(left).await.map_err(|error| {
                format!(
                    "{} {what}: {error} (before it: {})",
                    self.name(),
                    summarize(&skipped)
                )
            })?;
            if wanted(&message) {
                return Ok((message, skipped));
            }
            skipped.push(message);
        }
    }

    /// Reads until a chat message whose content is `content`.
    ///
    /// # Errors
    ///
    /// As for [`ChatClient::recv_until`].
    pub async fn recv_chat(&mut self, content: &str) -> Result<Value, String> {
        let what = format!("waiting for the message {:?}", shorten(content));
        self.recv_until(&what, |message| {
            message["type"] == "message" && message["content"] == content
        })
        .await
        .map(|(message, _)| message)
    }

    /// Reads for `wait` and returns every message that arrived (pings skipped), or
    /// stops early with an error on a close.
    ///
    /// # Errors
    ///
    /// A close, a binary message, or text that is not JSON.
    pub async fn drain_for(&mut self, wait: Duration) -> Result<Vec<Value>, String> {
        let deadline = Instant::now() + wait;
        let mut messages = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(messages);
            }
            match timeout(left, self.socket.next()).await {
                Err(_) => return Ok(messages),
                Ok(Some(Ok(LibraryMessage::Text(text)))) => messages.push(
                    serde_json::from_str(&text)
                        .map_err(|error| format!("the server sent {text:?}, not JSON: {error}"))?,
                ),
                Ok(Some(Ok(LibraryMessage::Ping(_) | LibraryMessage::Pong(_)))) => {}
                Ok(other) => return Err(format!("unexpected {other:?}")),
            }
        }
    }

    /// Reads until the server's close frame (within `wait`) and returns its code;
    /// text, pings and pongs before it are skipped.
    ///
    /// # Errors
    ///
    /// A timeout, or the connection ending without a close frame with a code.
    pub async fn expect_close(&mut self, wait: Duration) -> Result<u16, String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message(left).await {
                Err(error) => return Err(format!("waiting for a close frame: {error}")),
                Ok(Some(LibraryMessage::Close(Some(frame)))) => return Ok(u16::from(frame.code)),
                Ok(Some(LibraryMessage::Close(None))) => {
                    return Err("the close frame carried no code".to_owned());
                }
                Ok(Some(LibraryMessage::Binary(_))) => {
                    return Err("a binary message instead of a close frame".to_owned());
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err("the connection ended without a close frame".to_owned()),
            }
        }
    }

    /// Closes politely (code 1000) and waits briefly for the server's answer.
    ///
    /// Returns once the server's close frame has arrived: when the server then closes
    /// the TCP connection is its own business.
    pub async fn close(mut self) {
        let _ = timeout(Duration::from_secs(1), self.socket.close(None)).await;
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Ok(Some(Ok(message))) = timeout_at(deadline, self.socket.next()).await {
            if message.is_close() {
                break;
            }
        }
    }
}

/// A short description of a few messages, for error texts.
pub fn summarize(messages: &[Value]) -> String {
    let shown: Vec<String> = messages
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(|message| shorten(&message.to_string()))
        .collect();
    if messages.len() > 5 {
        format!(
            "{} messages, the last: {}",
            messages.len(),
            shown.join(", ")
        )
    } else if shown.is_empty() {
        "nothing".to_owned()
    } else {
        shown.join(", ")
    }
}

/// The text cut to 120 characters, for error messages.
pub fn shorten(text: &str) -> String {
    if text.chars().count() <= 120 {
        text.to_owned()
    } else {
        let start: String = text.chars().take(100).collect();
        format!("{start}... ({} bytes)", text.len())
    }
}

/// What a [`RawWs`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    /// A complete message or control frame.
    Message(Message),
    /// The server closed the TCP connection.
    Closed,
}

/// The receiving half of a raw client: the wire crate's reader, fed from a socket.
#[derive(Debug)]
struct FrameReader {
    messages: MessageReader,
}

impl FrameReader {
    /// The next message or control frame from `stream` within `wait`.
    async fn next(
        &mut self,
        stream: &mut (impl AsyncRead + Unpin),
        wait: Duration,
    ) -> Result<RawEvent, String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(message) = self
                .messages
                .next_message()
                .map_err(|error| format!("the server broke the protocol: {error}"))?
            {
                return Ok(RawEvent::Message(message));
            }
            let read =
                match timeout_at(deadline, stream.read_buf(self.messages.buffer_to_fill())).await {
                    Err(_) => {
                        return Err(format!("nothing arrived within {} ms", wait.as_millis()));
                    }
                    // A reset after the server's last frame ends the connection all the same.
                    Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionReset => 0,
                    Ok(Err(error)) => return Err(format!("reading failed: {error}")),
                    Ok(Ok(read)) => read,
                };
            if read == 0 {
                return Ok(RawEvent::Closed);
            }
        }
    }

    /// Reads until a close frame and returns its code, skipping everything before it.
    async fn expect_close(
        &mut self,
        stream: &mut (impl AsyncRead + Unpin),
        wait: Duration,
    ) -> Result<u16, String> {
        let deadline = Instant::now() + wait;
        loop {
            let event = self
                .next(stream, deadline.saturating_duration_since(Instant::now()))
                .await
                .map_err(|error| format!("waiting for a close frame: {error}"))?;
            match event {
                RawEvent::Message(Message::Close(Some(frame))) => return Ok(frame.code.0),
                RawEvent::Message(Message::Close(None)) => {
                    return Err("the close frame carried no code".to_owned());
                }
                RawEvent::Message(_) => {}
                RawEvent::Closed => {
                    return Err("the connection ended without a close frame".to_owned());
                }
            }
        }
    }
}

/// A WebSocket client that speaks the wire directly: every frame it sends is built by
/// hand, so it can break any rule on purpose.
#[derive(Debug)]
pub struct RawWs {
    stream: TcpStream,
    reader: FrameReader,
    /// The client's compressor, when the server accepted a permessage-deflate offer.
    deflater: Option<Deflater>,
    /// The server's 101 response.
    pub head: ResponseHead,
}

impl RawWs {
    /// Opens a TCP connection, sends the upgrade request for `path_and_query` with the
    /// `extra_headers`, and returns the response head and the bytes after it, whatever
    /// the status.
    ///
    /// # Errors
    ///
    /// A network failure or a timeout.
    pub async fn handshake(
        addr: SocketAddr,
        path_and_query: &str,
        key: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<(TcpStream, ResponseHead, Vec<u8>), String> {
        let request = client_request(&addr.to_string(), path_and_query, key, extra_headers);
        send_raw_request(addr, request.as_bytes()).await
    }

    /// Connects and completes the handshake, checking the 101 and its
    /// `Sec-WebSocket-Accept`.
    ///
    /// # Errors
    ///
    /// A network failure, a timeout, or a response that is not a valid 101.
    pub async fn connect(
        addr: SocketAddr,
        path_and_query: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<RawWs, String> {
        let key = generate_key();
        let (stream, head, rest) =
            RawWs::handshake(addr, path_and_query, &key, extra_headers).await?;
        let headers: Vec<(&str, &[u8])> = head
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        validate_server_response(&key, head.status, headers.iter().copied())
            .map_err(|error| format!("the handshake for {path_and_query} failed: {error}"))?;
        let mut messages = MessageReader::new(Role::Client, RAW_CLIENT_LIMIT, RAW_CLIENT_LIMIT)
            .with_read_size(READ_SIZE);
        // A test that offered permessage-deflate reads what the server compressed.
        let mut deflater = None;
        if let Some(answer) = head.header("Sec-WebSocket-Extensions") {
            let agreement = wsse_wire::deflate::accept_response(answer)
                .map_err(|error| format!("the handshake for {path_and_query}: {error}"))?;
            let (compressor, inflater) = agreement.client_codec();
            messages = messages.with_inflater(inflater);
            deflater = Some(compressor);
        }
        // Frames may have come in the same read as the response head.
        messages.feed(&rest);
        Ok(RawWs {
            stream,
            reader: FrameReader { messages },
            deflater,
            head,
        })
    }

    /// Sends a text message in one frame, compressed when permessage-deflate was
    /// agreed (as a browser would), plain otherwise.
    ///
    /// # Errors
    ///
    /// When the connection is gone.
    pub async fn send_text_as_agreed(&mut self, text: &str) -> Result<(), String> {
        let Some(deflater) = &mut self.deflater else {
            return self.send_text(text).await;
        };
        let mut bytes = Vec::new();
        encode_compressed_frame(
            &mut bytes,
            OpCode::Text,
            Some(random_key()),
            &deflater.compress(text.as_bytes()),
        );
        self.send_bytes(&bytes).await
    }

    /// Sends bytes exactly as given.
    ///
    /// # Errors
    ///
    /// When the connection is gone.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        timeout(STEP_TIMEOUT, self.stream.write_all(bytes))
            .await
            .map_err(|_| "sending timed out".to_owned())?
            .map_err(|error| format!("sending failed: {error}"))
    }

    /// Sends one frame, masked with a random key as a client must.
    ///
    /// # Errors
    ///
    /// When the connection is gone.
    pub async fn send_frame(
        &mut self,
        fin: bool,
        opcode: OpCode,
        payload: &[u8],
    ) -> Result<(), String> {
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, fin, opcode, Some(random_key()), payload);
        self.send_bytes(&bytes).await
    }

    /// Sends a masked text message in one frame.
    ///
    /// # Errors
    ///
    /// When the connection is gone.
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.send_frame(true, OpCode::Text, text.as_bytes()).await
    }

    /// The next message or control frame within `wait`, or [`RawEvent::Closed`] when
    /// the server closed the connection.
    ///
    /// # Errors
    ///
    /// A timeout, a read error, or a server frame that breaks RFC 6455.
    pub async fn next(&mut self, wait: Duration) -> Result<RawEvent, String> {
        self.reader.next(&mut self.stream, wait).await
    }

    /// The next text message as JSON, skipping control frames.
    ///
    /// # Errors
    ///
    /// A timeout, a close, or something that is not a JSON text message.
    pub async fn recv_json(&mut self, wait: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + wait;
        loop {
            match self
                .next(deadline.saturating_duration_since(Instant::now()))
                .await?
            {
                RawEvent::Message(Message::Text(text)) => {
                    return serde_json::from_str(&text)
                        .map_err(|error| format!("{text:?} is not JSON: {error}"));
                }
                RawEvent::Message(Message::Ping(_) | Message::Pong(_)) => {}
                other => return Err(format!("expected a text message, got {other:?}")),
            }
        }
    }

    /// Reads until the server's close frame (within `wait`) and returns its code,
    /// skipping data and control frames before it.
    ///
    /// # Errors
    ///
    /// A timeout, a close frame without a code, or the connection ending first.
    pub async fn expect_close(&mut self, wait: Duration) -> Result<u16, String> {
        self.reader.expect_close(&mut self.stream, wait).await
    }

    /// Sends `bytes` while reading, and returns the first message `wanted` picks, or the
    /// close frame, or the end of the connection, whichever comes first (within
    /// `wait`). Write errors are ignored, as in [`RawWs::send_and_expect_close`].
    ///
    /// # Errors
    ///
    /// A timeout, or a server frame that breaks RFC 6455.
    pub async fn send_and_read_until(
        &mut self,
        bytes: Vec<u8>,
        wait: Duration,
        wanted: impl Fn(&Message) -> bool,
    ) -> Result<RawEvent, String> {
        let deadline = Instant::now() + wait;
        let (mut receiving, mut sending) = self.stream.split();
        let write = async move {
            let _ = sending.write_all(&bytes).await;
        };
        let reader = &mut self.reader;
        let read = async move {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let event = reader.next(&mut receiving, left).await?;
                match &event {
                    RawEvent::Message(Message::Close(_)) | RawEvent::Closed => return Ok(event),
                    RawEvent::Message(message) if wanted(message) => return Ok(event),
                    RawEvent::Message(_) => {}
                }
            }
        };
        tokio::pin!(write, read);
        let mut written = false;
        loop {
            tokio::select! {
                () = &mut write, if !written => written = true,
                event = &mut read => return event,
            }
        }
    }

    /// Sends `bytes` while reading, and returns the code of the close frame the server
    /// answers with. Write errors are ignored: a server may close as soon as it has
    /// read enough to refuse (a too-large length), without reading the rest.
    ///
    /// # Errors
    ///
    /// As for [`RawWs::expect_close`].
    pub async fn send_and_expect_close(
        &mut self,
        bytes: Vec<u8>,
        wait: Duration,
    ) -> Result<u16, String> {
        let (mut receiving, mut sending) = self.stream.split();
        let write = async move {
            let _ = sending.write_all(&bytes).await;
        };
        let read = self.reader.expect_close(&mut receiving, wait);
        tokio::pin!(write, read);
        let mut written = false;
        loop {
            tokio::select! {
                () = &mut write, if !written => written = true,
                code = &mut read => return code,
            }
        }
    }
}

/// Opens a TCP connection, sends `request`, and reads the response head.
///
/// # Errors
///
/// A network failure or a timeout.
pub async fn send_raw_request(
    addr: SocketAddr,
    request: &[u8],
) -> Result<(TcpStream, ResponseHead, Vec<u8>), String> {
    let mut stream = timeout(STEP_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    stream
        .write_all(request)
        .await
        .map_err(|error| format!("sending the request failed: {error}"))?;
    let (head, rest) = read_head(&mut stream).await?;
    Ok((stream, head, rest))
}
