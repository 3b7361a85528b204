//! Bytes on the wire for one message, WebSocket next to SSE, computed with this
//! workspace's encoders (no network: the encodings are deterministic).
//!
//! ```text
//! cargo run --example wire_cost            # a Markdown table
//! ```
//!
//! The payload is text of the given size. WebSocket: one frame, as a server sends it
//! (no mask) and as a client sends it (4-byte key). SSE: the event as this book's
//! `/events` sends a chat message (`id`, `event` and `data` lines), and the bare
//! minimum (`data` only); both inside an HTTP/1.1 chunk (hex size, CRLF, CRLF).

use wsse_wire::frame::{FrameHeader, OpCode};
use wsse_wire::sse::Event;

const SIZES: [usize; 6] = [16, 125, 126, 1024, 16 * 1024, 64 * 1024];

// ANCHOR: cost
/// The bytes a chunk of `length` bytes takes in HTTP/1.1 chunked encoding.
fn chunked(length: usize) -> usize {
    format!("{length:x}").len() + 2 + length + 2
}

/// An SSE event's encoded length, inside its chunk.
fn sse_bytes(event: &Event) -> usize {
    chunked(event.encode().expect("a valid event").len())
}

fn websocket_bytes(payload: usize, masked: bool) -> usize {
    let header = FrameHeader {
        mask: masked.then_some([0; 4]),
        ..FrameHeader::new(OpCode::Text, payload as u64)
    };
    header.encoded_len() + payload
}
// ANCHOR_END: cost

fn main() {
    println!(
        "| payload bytes | WebSocket, server to client | WebSocket, client to server | SSE `data` only | SSE as `/events` sends it (`id: 1000`) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for size in SIZES {
        let text = "x".repeat(size);
        let minimal = Event::new(text.clone());
        let chat = Event::new(text).id("1000").event("message");
        println!(
            "| {size} | {} (+{}) | {} (+{}) | {} (+{}) | {} (+{}) |",
            websocket_bytes(size, false),
            websocket_bytes(size, false) - size,
            websocket_bytes(size, true),
            websocket_bytes(size, true) - size,
            sse_bytes(&minimal),
            sse_bytes(&minimal) - size,
            sse_bytes(&chat),
            sse_bytes(&chat) - size,
        );
    }
}
