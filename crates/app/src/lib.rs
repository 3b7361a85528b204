//! The chat and token-streaming application that every server of the book shares.
//!
//! The book implements the same two apps four times (axum, actix-web, warp, and from
//! scratch on Tokio). Everything that is not framework glue lives here, so the four
//! servers differ only in how they accept connections and move bytes.
//!
//! # How a chat message travels
//!
//! ```text
//! browser ──WebSocket text──▶ glue ──▶ Member::handle_text_at_rate ──▶ Hub::publish
//! curl ─────POST /messages──▶ glue ──▶ Hub::handle_post ─────────────▶ Hub::publish
//!                                                                         │ seq, ring, broadcast
//!                        ┌────────────────────────────────────────────────┤
//!                        ▼                                                ▼
//!      Subscription::next (one per /ws)                    Subscription::next (one per /events)
//!                        │ HubEvent::to_json                              │ sse::hub_event
//!                        ▼                                                ▼
//!      glue ──WebSocket text──▶ browser                    glue ──text/event-stream──▶ browser
//! ```
//!
//! 1. The glue reads a text message and calls [`hub::Member::handle_text_at_rate`]; a
//!    refusal ([`messages::ErrorReply`]: an invalid message, or one over the
//!    connection's [`limits::MessageRate`]) goes back to the sender only.
//! 2. [`hub::Hub::publish`] gives the message its seq, keeps it in the history ring and
//!    broadcasts it.
//! 3. Every [`hub::Subscription`] (one per WebSocket and one per `/events` stream)
//!    yields it; the glue sends it as JSON ([`hub::HubEvent::to_json`]) or as an SSE
//!    event ([`sse::hub_event`]).
//!
//! `/stream` does not touch the hub: [`tokens::token_stream`] computes the answer from
//! the prompt alone, which is why it can resume after a restart.
//!
//! # Modules
//!
//! - [`messages`]: the JSON shapes and the validation rules.
//! - [`hub`]: seq numbering, history, broadcast, presence, resume without gap.
//! - [`tokens`]: the deterministic LLM-style answer and its paced stream.
//! - [`sse`]: hub events as SSE events, the shared headers and lines.
//! - [`query`]: the query strings of `/ws` and `/stream`.
//! - [`config`]: the shared command line and the `Origin` check.
//! - [`connection`]: the chat connection's heartbeat and close codes.
//! - [`closing`]: the end of a closing handshake on a framework's `Sink` + `Stream`.
//! - [`listener`]: the socket options every server sets on its listening socket.
//! - [`refusals`]: what every server answers to a request it refuses.
//! - [`limits`]: the ceiling on the connections a server holds at once, and the
//!   chat messages one WebSocket may send.
//! - [`shutdown`]: Ctrl-C / SIGTERM and the stop flag connections watch.
//! - [`page`]: the single-page client.

#![forbid(unsafe_code)]

pub mod auth;
pub mod burst;
pub mod closing;
pub mod config;
pub mod connection;
pub mod hub;
pub mod hyper_server;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod messages;
pub mod page;
pub mod query;
pub mod redis_hub;
pub mod redis_sessions;
pub mod refusals;
pub mod shutdown;
pub mod sse;
pub mod state;
pub mod tls;
pub mod tokens;

pub use config::Config;
pub use hub::{Hub, HubEvent, HubOptions, Member, Subscription};
pub use shutdown::{ConnectionGuard, Shutdown, shutdown_signal};
pub use state::AppState;
