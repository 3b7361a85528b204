//! WebSocket by hand: the upgrade, then frames in both directions.
//!
//! A framework gives the application a socket of messages and hides three jobs that
//! this module leaves in plain sight:
//!
//! - [`accept`] checks the upgrade request, answers `101 Switching Protocols`, and from
//!   then on the TCP connection carries frames.
//! - [`WebSocketReader::receive`] reads bytes and hands them to
//!   [`wsse_wire::reader::MessageReader`], which finds frames in them and joins
//!   fragments into messages, with no I/O of its own. It does **not** answer pings: the
//!   reader cannot write. The caller answers each [`Message::Ping`] with
//!   [`WebSocketWriter::send_pong`], which is what frameworks do for you behind the
//!   scenes.
//! - [`close_and_wait`] runs the closing handshake of RFC 6455 section 7.
//!
//! The socket is split in two halves so that one task can wait for the client's next
//! message and, in the same `tokio::select!`, send it broadcasts and pings.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use wsse_wire::ProtocolError;
use wsse_wire::close::{CloseCode, encode_close_payload};
use wsse_wire::deflate::{self, Deflater, Inflater};
use wsse_wire::frame::{OpCode, Role, encode_compressed_frame, encode_frame};
use wsse_wire::handshake::{
    HandshakeError, switching_protocols_response, validate_upgrade_request,
};
use wsse_wire::reader::MessageReader;

pub use wsse_wire::close::CloseFrame;
pub use wsse_wire::message::Message;

use crate::http::{Request, lingering_close};

/// How many bytes to make room for before each read from the socket.
const READ_SIZE: usize = 8192;

/// The largest payload a control frame (close, ping, pong) may carry.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// How much a peer may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest message, all its fragments together, and so also the longest frame.
    /// Bigger ones fail the connection with 1009 (message too big).
    pub max_message: usize,
    /// The most frames one message may come in; one more fails the connection with
    /// 1009. `usize::MAX`, the default, counts none.
    pub max_fragments: usize,
    /// Room the reader makes in its buffer before each read: while a connection waits
    /// for data, its buffer holds at least this much. Smaller saves memory per idle
    /// connection; larger saves reads for big messages.
    pub read_size: usize,
    /// permessage-deflate, when a client offers it: what this server accepts, or
    /// `None` to decline every offer.
    pub deflate: Option<deflate::ServerConfig>,
}

impl Default for Limits {
    /// 64 KiB messages, 8 KiB reads, permessage-deflate with the RFC's defaults.
    fn default() -> Self {
        Limits {
            max_message: 64 * 1024,
            max_fragments: usize::MAX,
            read_size: READ_SIZE,
            deflate: Some(deflate::ServerConfig::default()),
        }
    }
}

/// Why [`accept`] did not produce a WebSocket.
#[derive(Debug)]
pub enum AcceptError {
    /// The request is not a valid upgrade; the 400 or 426 response was sent and the
    /// connection closed.
    Rejected(HandshakeError),
    /// Writing the 101 response failed.
    Io(io::Error),
}

impl fmt::Display for AcceptError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcceptError::Rejected(error) => write!(formatter, "upgrade rejected: {error}"),
            AcceptError::Io(error) => write!(formatter, "writing the 101 response: {error}"),
        }
    }
}

impl std::error::Error for AcceptError {}

impl From<io::Error> for AcceptError {
    fn from(error: io::Error) -> Self {
        AcceptError::Io(error)
    }
}

// ANCHOR: accept
/// Turns an HTTP connection into a WebSocket.
///
/// `leftover` is what was read from `stream` past the end of `request` (from
/// [`crate::http::Connection::into_parts`]): a client may send its first frame in the
/// same packet as the upgrade request, and those bytes must reach the reader.
///
/// Checks that decide whether *this application* wants the connection, such as the
/// `Origin`, belong to the caller, before this function.
pub async fn accept(
    stream: TcpStream,
    request: &Request,
    leftover: Vec<u8>,
    limits: Limits,
) -> Result<(WebSocketReader, WebSocketWriter), AcceptError> {
    accept_with_protocols(stream, request, leftover, limits, &[]).await
}

/// [`accept`], answering the first of `protocols` (the server's, in its order of
/// preference) that the client offered in `Sec-WebSocket-Protocol`, if any: a server
/// answers only a protocol it was offered, or the browser fails the connection.
pub async fn accept_with_protocols(
    mut stream: TcpStream,
    request: &Request,
    leftover: Vec<u8>,
    limits: Limits,
    protocols: &[&str],
) -> Result<(WebSocketReader, WebSocketWriter), AcceptError> {
    let upgrade =
        match validate_upgrade_request(&request.method, request.version, request.header_pairs()) {
            Ok(upgrade) => upgrade,
            Err(error) => {
                tracing::debug!(%error, "rejecting WebSocket upgrade");
                // 400, or 426 with `Sec-WebSocket-Version: 13`; never a 101.
                let _ = stream.write_all(error.response().as_bytes()).await;
                lingering_close(stream).await;
                return Err(AcceptError::Rejected(error));
            }
        };
    // The first permessage-deflate offer this server can honour, if any.
    let agreement = limits.deflate.as_ref().and_then(|config| {
        let offers = request
            .header_pairs()
            .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
            .filter_map(|(_, value)| std::str::from_utf8(value).ok());
        deflate::negotiate(offers, config)
    });
    let extensions = agreement.as_ref().map(deflate::Agreement::response);
    let protocol = protocols
        .iter()
        .find(|protocol| upgrade.protocols.iter().any(|offered| offered == *protocol));
    let response =
        switching_protocols_response(&upgrade.accept(), protocol.copied(), extensions.as_deref());
    stream.write_all(response.as_bytes()).await?;
    // Every frame goes out in one write; without this, Nagle's algorithm may hold a
    // small frame back until the previous one is acknowledged.
    stream.set_nodelay(true)?;
    let (read_half, write_half) = stream.into_split();
    let (deflater, inflater) = agreement.map(|agreement| agreement.server_codec()).unzip();
    Ok((
        WebSocketReader::new(read_half, leftover, limits, inflater),
        WebSocketWriter::new(write_half, deflater),
    ))
}
// ANCHOR_END: accept

/// Why [`WebSocketReader::receive`] returned no message.
#[derive(Debug)]
pub enum ReceiveError {
    /// The peer broke the protocol. Close with [`ProtocolError::close_code`]
    /// (for example through [`close_and_wait`]).
    Protocol(ProtocolError),
    /// Reading from the socket failed.
    Io(io::Error),
    /// The connection ended without a close frame.
    Eof,
}

impl fmt::Display for ReceiveError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiveError::Protocol(error) => write!(formatter, "protocol error: {error}"),
            ReceiveError::Io(error) => write!(formatter, "reading failed: {error}"),
            ReceiveError::Eof => write!(formatter, "the connection ended without a close frame"),
        }
    }
}

impl std::error::Error for ReceiveError {}

impl From<io::Error> for ReceiveError {
    fn from(error: io::Error) -> Self {
        ReceiveError::Io(error)
    }
}

impl From<ProtocolError> for ReceiveError {
    fn from(error: ProtocolError) -> Self {
        ReceiveError::Protocol(error)
    }
}

/// The receiving half of a WebSocket: bytes in, messages out.
#[derive(Debug)]
pub struct WebSocketReader {
    stream: OwnedReadHalf,
    /// The bytes received and not decoded yet, the message in progress, and the
    /// error that broke the connection, if one did: every later call returns it again.
    messages: MessageReader,
    close_received: bool,
    /// Whether permessage-deflate was agreed.
    deflate: bool,
}

impl Drop for WebSocketReader {
    /// Says how many messages came compressed: what a test (or a curious reader of
    /// the log) checks to know the client really used the extension.
    fn drop(&mut self) {
        if self.deflate {
            let compressed = self.messages.compressed_messages();
            tracing::info!(
                compressed,
                "permessage-deflate connection ended: {compressed} message(s) arrived compressed"
            );
        }
    }
}

impl WebSocketReader {
    fn new(
        stream: OwnedReadHalf,
        leftover: Vec<u8>,
        limits: Limits,
        inflater: Option<Inflater>,
    ) -> WebSocketReader {
        let mut messages = MessageReader::new(Role::Server, limits.max_message, limits.max_message)
            .with_read_size(limits.read_size)
            .with_max_fragments(limits.max_fragments);
        let deflate = inflater.is_some();
        if let Some(inflater) = inflater {
            messages = messages.with_inflater(inflater);
        }
        messages.feed(&leftover);
        WebSocketReader {
            stream,
            messages,
            close_received: false,
            deflate,
        }
    }

    /// Whether the peer's close frame has been received.
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    // ANCHOR: receive
    /// Waits for the next message or control frame.
    ///
    /// A [`Message::Ping`] must be answered by the caller with
    /// [`WebSocketWriter::send_pong`] and the same payload. After a
    /// [`Message::Close`], answer with [`close_and_wait`].
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: it can be a branch of `tokio::select!` next to a
    /// timer or a broadcast receiver, and dropping it loses nothing. It awaits only
    /// `readable`, which reads nothing, and `read_buf`, which either appends the bytes
    /// it read to the reader's buffer or, if cancelled, has read nothing; all decoding
    /// happens synchronously after it, and the method never writes.
    pub async fn receive(&mut self) -> Result<Message, ReceiveError> {
        loop {
            if let Some(message) = self.messages.next_message()? {
                self.close_received |= matches!(message, Message::Close(_));
                return Ok(message);
            }
            if !self.messages.has_unread_bytes() {
                // Nothing pending: give the buffer back while the connection waits, so
                // an idle connection holds no read buffer at all.
                self.messages.release_buffer();
                self.stream.readable().await?;
            }
            if self.stream.read_buf(self.messages.buffer_to_fill()).await? == 0 {
                return Err(ReceiveError::Eof);
            }
        }
    }
    // ANCHOR_END: receive

    /// Reads and drops everything until the peer closes its side of the connection.
    async fn discard_until_eof(&mut self) {
        loop {
            self.messages.discard_unread();
            match self.stream.read_buf(self.messages.buffer_to_fill()).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// The sending half of a WebSocket: messages in, frames out.
///
/// Each send is one `write_all` of whole frames. A server never masks its frames.
///
/// Sending is not cancel safe: a send dropped halfway may leave half a frame on the
/// wire. Await sends to completion, for example inside a `select!` branch's body rather
/// than as one of its futures.
#[derive(Debug)]
pub struct WebSocketWriter {
    stream: OwnedWriteHalf,
    /// The frame being written; the allocation is kept between frames.
    frame: Vec<u8>,
    close_sent: bool,
    /// permessage-deflate's compressor, when the client's offer was accepted.
    deflater: Option<Deflater>,
}

impl WebSocketWriter {
    fn new(stream: OwnedWriteHalf, deflater: Option<Deflater>) -> WebSocketWriter {
        WebSocketWriter {
            stream,
            frame: Vec::new(),
            close_sent: false,
            deflater,
        }
    }

    /// Whether a close frame has been sent: no frame may follow it.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Sends a text message in one frame.
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send(OpCode::Text, text.as_bytes()).await
    }

    /// Sends several text messages, a frame each, with one write: a burst costs one
    /// system call instead of one per message.
    pub async fn send_texts<T: AsRef<str>>(
        &mut self,
        texts: impl IntoIterator<Item = T>,
    ) -> io::Result<()> {
        self.frame.clear();
        for text in texts {
            self.queue(OpCode::Text, text.as_ref().as_bytes())?;
        }
        self.stream.write_all(&self.frame).await
    }

    /// Sends a binary message in one frame.
    pub async fn send_binary(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.send(OpCode::Binary, bytes).await
    }

    /// Sends a ping; the peer answers with a pong carrying the same payload (at most 125 bytes).
    pub async fn send_ping(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send(OpCode::Ping, payload).await
    }

    /// Sends a pong: the answer to a ping, with the ping's payload.
    pub async fn send_pong(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send(OpCode::Pong, payload).await
    }

    /// Sends a close frame with `code` and `reason` (cut to 123 bytes). Nothing may be
    /// sent after it; [`close_and_wait`] finishes the handshake.
    pub async fn send_close(&mut self, code: CloseCode, reason: &str) -> io::Result<()> {
        self.send(OpCode::Close, &encode_close_payload(code, reason))
            .await?;
        self.close_sent = true;
        Ok(())
    }

    // ANCHOR: send
    async fn send(&mut self, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        self.frame.clear();
        self.queue(opcode, payload)?;
        self.stream.write_all(&self.frame).await
    }

    /// Appends one frame to the bytes waiting to be written.
    fn queue(&mut self, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        if self.close_sent {
            return Err(io::Error::other(
                "a close frame was sent: no frame may follow",
            ));
        }
        if opcode.is_control() && payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a control frame carries at most 125 bytes",
            ));
        }
        match &mut self.deflater {
            // Control frames are never compressed (RFC 7692 section 6.1).
            Some(deflater) if !opcode.is_control() => {
                let compressed = deflater.compress(payload);
                encode_compressed_frame(&mut self.frame, opcode, None, &compressed);
            }
            _ => encode_frame(&mut self.frame, true, opcode, None, payload),
        }
        Ok(())
    }
    // ANCHOR_END: send
}

// ANCHOR: close_and_wait
/// The closing handshake (RFC 6455 section 7), from whichever side started it.
///
/// 1. Send our close frame with `code` and `reason`, unless one was sent already. When
///    the peer started, echo its code.
/// 2. Wait for the peer's close frame, unless it came already; messages still on their
///    way are dropped. After a protocol error there is nothing more to read.
/// 3. Close TCP: the server closes first (section 7.1.1). The side that closes first
///    holds TCP's TIME_WAIT state; a server is not hurt by it, while a client could
///    not reuse its port for a while.
/// 4. Read until the client closes its side too, so that bytes still arriving cannot
///    turn our close into a reset that destroys the close frame before the client reads it.
///
/// Gives up after `timeout` with [`io::ErrorKind::TimedOut`]; dropping the halves then
/// closes the connection anyway.
pub async fn close_and_wait(
    mut reader: WebSocketReader,
    mut writer: WebSocketWriter,
    code: CloseCode,
    reason: &str,
    timeout: Duration,
) -> io::Result<()> {
    let handshake = async {
        if !writer.close_sent {
            writer.send_close(code, reason).await?;
        }
        while !reader.close_received {
            if reader.receive().await.is_err() {
                break;
            }
        }
        writer.stream.shutdown().await?;
        reader.discard_until_eof().await;
        Ok(())
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}
// ANCHOR_END: close_and_wait
