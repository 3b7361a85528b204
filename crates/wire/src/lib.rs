//! The bytes of WebSocket (RFC 6455) and Server-Sent Events (the WHATWG
//! `text/event-stream` format), written by hand so the book can teach from them.
//!
//! No I/O and no framework: every function here takes bytes or strings and
//! returns bytes, strings or typed errors. The servers and clients of this
//! workspace do the reading and writing.
//!
//! - [`handshake`]: the opening HTTP exchange, `accept_key` and its checks.
//! - [`frame`]: the frame header codec, the encoder and the decoder.
//! - [`mask`]: XOR masking, a word at a time.
//! - [`message`]: reassembling frames into messages under the RFC's rules.
//! - [`reader`]: the receive loop around both, bytes in and messages out, for either role.
//! - [`close`]: close codes and the close frame payload.
//! - [`deflate`]: permessage-deflate (RFC 7692), its negotiation and its per-message
//!   compression.
//! - [`error`]: every way a peer can break the rules, with the close code it earns.
//! - [`sse`]: encoding events and the incremental event-stream parser.

#![forbid(unsafe_code)]

pub mod close;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod reader;
pub mod sse;

pub use error::ProtocolError;
