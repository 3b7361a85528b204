//! The load generator behind `cargo xtask bench`.
//!
//! One module per scenario of the benchmark chapter, each a function that takes
//! bounds (connections, duration, sizes), talks to one server on 127.0.0.1, stops by
//! itself and returns a result that serializes to one JSON line:
//!
//! - [`fanout`]: chat messages broadcast to many WebSocket or `/events` clients, at a
//!   fixed rate or at saturation: delivery latency, deliveries per second, losses;
//! - [`echo`]: round trips on `/echo`, one connection ping-pong and many closed-loop;
//! - [`idle`]: the server's resident memory per idle WebSocket or SSE connection;
//! - [`tokens`]: `/stream` token streams, one unthrottled and many paced;
//! - [`wire_cost`]: bytes on the wire per message through the test kit's proxy, and
//!   the time to the first message with added latency;
//! - [`compression`]: permessage-deflate's bytes on the wire, server CPU per message
//!   and memory per idle connection, for the setting the server was started with;
//! - [`floor`]: a plain TCP echo server, the baseline the echo table compares with.
//!
//! The pure parts (timestamps in messages, percentiles, loss accounting, `/proc`
//! parsing) live in [`bench_message`], [`stats`], [`delivery_count`] and [`procfs`], with unit tests.
//! The `loadgen` binary runs one scenario per call, so that `cargo xtask bench` can
//! pin it to one core and the server to the other.

pub mod bench_message;
pub mod compression;
pub mod delivery_count;
pub mod echo;
pub mod fanout;
pub mod floor;
pub mod idle;
pub mod net;
pub mod procfs;
pub mod stats;
pub mod tokens;
pub mod wire_cost;
