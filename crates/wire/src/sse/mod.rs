//! Server-Sent Events: the `text/event-stream` format of the WHATWG HTML standard.
//!
//! An event stream is UTF-8 text made of lines. A server writes an event as a few
//! `field: value` lines followed by a blank line; the blank line is what makes the
//! client deliver ("dispatch") the event:
//!
//! ```text
//! id: 5
//! event: message
//! data: line1
//! data: line2
//!
//! ```
//!
//! - [`encode`]: the server side, turning an [`Event`] (or a comment, or a `retry`
//!   line) into that text.
//! - [`parse`]: the client side, an incremental [`EventStreamParser`] that follows the
//!   standard's "event stream interpretation" algorithm step by step:
//!   <https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>

pub mod encode;
pub mod parse;

pub use encode::{EncodeError, Event, comment, retry};
pub use parse::{EventStreamParser, Item, ParsedEvent};
