//! Server-Sent Events by hand: one HTTP response that never ends, written in chunks.
//!
//! An event stream is an ordinary `200 OK` whose body keeps coming. Its length is not
//! known in advance, so there is no `Content-Length`; the body goes out with
//! `Transfer-Encoding: chunked`, as frameworks send it: each piece is preceded by its
//! length in hexadecimal and followed by CRLF, and a piece of length zero ends the body.
//!
//! ```text
//! d\r\n                13 bytes follow
//! data: hello\n\n\r\n
//! 0\r\n\r\n            the end
//! ```
//!
//! The server only learns that a client went away when a write fails, which is one
//! reason streams send something every few seconds as a heartbeat (a comment, or, in
//! this workspace's app, a heartbeat event a page can see). A caller that wants to
//! know sooner can keep the read half of the socket and wait for it to reach EOF.

use std::fmt;
use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use wsse_wire::sse::{self as wire, EncodeError, Event};

// ANCHOR: start
/// Starts an event stream on `stream`: writes the response head and returns the writer
/// for the body.
///
/// The head is `200 OK` with `Transfer-Encoding: chunked` (the body has no known
/// length: it is sent in chunks, one per event), then `headers`, which must include
/// `Content-Type: text/event-stream` (the app's `wsse_app::sse::headers()` lists what
/// every SSE route of this workspace sends).
pub async fn start<W>(mut stream: W, headers: &[(&str, &str)]) -> io::Result<SseWriter<W>>
where
    W: AsyncWrite + Unpin,
{
    let mut head = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    // The client's EventSource reports the stream open as soon as the head arrives.
    stream.flush().await?;
    Ok(SseWriter {
        stream,
        chunk: Vec::new(),
    })
}
// ANCHOR_END: start

/// Why [`SseWriter::send`] sent nothing.
#[derive(Debug)]
pub enum SendError {
    /// The event cannot be encoded (a line break in its id or type); nothing was written.
    Encode(EncodeError),
    /// Writing failed: the client is most likely gone.
    Io(io::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Encode(error) => write!(formatter, "cannot encode the event: {error}"),
            SendError::Io(error) => write!(formatter, "writing the event failed: {error}"),
        }
    }
}

impl std::error::Error for SendError {}

impl From<EncodeError> for SendError {
    fn from(error: EncodeError) -> Self {
        SendError::Encode(error)
    }
}

impl From<io::Error> for SendError {
    fn from(error: io::Error) -> Self {
        SendError::Io(error)
    }
}

/// The body of an event stream: each send is one chunk, written and flushed at once.
#[derive(Debug)]
pub struct SseWriter<W> {
    stream: W,
    /// The chunk being written; the allocation is kept between chunks.
    chunk: Vec<u8>,
}

impl<W> SseWriter<W>
where
    W: AsyncWrite + Unpin,
{
    /// Sends one event.
    pub async fn send(&mut self, event: &Event) -> Result<(), SendError> {
        // Encoding first: an event that cannot be encoded writes nothing at all.
        let text = event.encode()?;
        self.send_raw(&text).await?;
        Ok(())
    }

    /// Sends a comment, `: text`: clients ignore it, proxies see traffic.
    pub async fn send_comment(&mut self, text: &str) -> io::Result<()> {
        self.send_raw(&wire::comment(text)).await
    }

    // ANCHOR: send_raw
    /// Sends text that is already in the event stream format, such as
    /// [`wsse_wire::sse::retry`]`(3000)`, which is `retry: 3000\n`.
    pub async fn send_raw(&mut self, text: &str) -> io::Result<()> {
        // A chunk of length zero is the end of the body: never send one by accident.
        if text.is_empty() {
            return Ok(());
        }
        self.chunk.clear();
        encode_chunk(&mut self.chunk, text.as_bytes());
        self.stream.write_all(&self.chunk).await?;
        // An event waiting in a buffer is an event the client does not see.
        self.stream.flush().await
    }
    // ANCHOR_END: send_raw

    /// Ends the body with the last chunk, `0\r\n\r\n`, and gives the stream back.
    pub async fn finish(mut self) -> io::Result<W> {
        self.stream.write_all(b"0\r\n\r\n").await?;
        self.stream.flush().await?;
        Ok(self.stream)
    }
}

// ANCHOR: encode_chunk
/// Appends `data` as one chunk of a chunked body: its length in hexadecimal, CRLF, the
/// bytes, CRLF.
fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}
// ANCHOR_END: encode_chunk

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_carry_their_length_in_hexadecimal() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"data: hello\n\n");
        assert_eq!(out, b"d\r\ndata: hello\n\n\r\n");
        out.clear();
        encode_chunk(&mut out, &[b'x'; 300]);
        assert!(out.starts_with(b"12c\r\nxxx"));
        assert!(out.ends_with(b"x\r\n"));
    }
}
