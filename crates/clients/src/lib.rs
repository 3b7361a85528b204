//! Clients that reconnect and resume, one per protocol, to show side by side what
//! each protocol gives for free and what a client must build itself.
//!
//! - [`event_source`]: an `EventSource` outside the browser. Reconnecting after the
//!   server's `retry:`, resuming with `Last-Event-ID` and throwing away a half-received
//!   event are rules of the SSE standard; the client only follows them.
//! - [`chat`]: a WebSocket chat client. The protocol has no reconnection and no
//!   resumption, so everything is built here: backoff, `since=`, duplicates dropped by
//!   `seq`, pings to find dead connections, resending what was never confirmed.
//! - [`backoff`]: exponential backoff with full jitter, the waiting rule of the chat
//!   client (and of the web page).
//! - [`autobahn`]: the Autobahn|Testsuite client loop on the chat client's library.
//!
//! The programs `chat_client` and `stream_client` in `examples/` are thin command
//! lines over these.

#![forbid(unsafe_code)]

pub mod autobahn;
pub mod backoff;
pub mod chat;
pub mod event_source;

pub use backoff::{Backoff, BackoffPolicy};
pub use chat::{ChatClient, ChatError, ChatEvent, ChatOptions};
pub use event_source::{EventSource, EventSourceError, EventSourceOptions, Update};
