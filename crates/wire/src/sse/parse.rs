//! Reading events: the client side, an incremental parser.
//!
//! The parser follows the WHATWG algorithm "event stream interpretation"
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>).
//! Quotes in the comments below come from it.
//!
//! Bytes arrive in chunks cut anywhere: in the middle of a line, between the CR and the
//! LF of a CRLF, inside a multi-byte UTF-8 character. The parser keeps the unfinished
//! line and reads on. It cuts lines on bytes and decodes each complete line on its own,
//! which is safe because the bytes of CR and LF never occur inside a multi-byte UTF-8
//! sequence.

use std::borrow::Cow;
use std::mem;

/// An event the parser dispatched: what a browser's `EventSource` delivers as a
/// `MessageEvent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    /// The event type: the last `event` field of the event, or `"message"` if there was none.
    pub event_type: String,
    /// The `data` lines of the event, joined by LF.
    pub data: String,
    /// The last event ID at the time of dispatch. IDs persist: an event without an `id`
    /// field carries the ID of an earlier one. Empty if none was ever set.
    pub last_event_id: String,
}

/// Something the parser found in the stream, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete event, dispatched by a blank line.
    Event(ParsedEvent),
    /// A valid `retry` field: the new reconnection time, in milliseconds.
    Retry(u64),
    /// A comment line (one starting with `:`), with the colon and one following space
    /// removed. The standard says to ignore comments; they are reported so that callers
    /// can see keep-alives arrive.
    Comment(String),
}

/// Where the parser stands on the optional byte order mark at the start of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteOrderMark {
    /// At the start of a stream: this many bytes of the mark have matched so far.
    Checking { matched: usize },
    /// Past the start of the stream: a mark now is an ordinary character.
    Done,
}

/// The UTF-8 encoding of U+FEFF, the byte order mark.
const BYTE_ORDER_MARK: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// An incremental event stream parser: feed it bytes as they arrive, get [`Item`]s back.
///
/// One parser can serve a client for its whole life: call
/// [`end_of_stream`](EventStreamParser::end_of_stream) when a connection ends, and
/// feed it the bytes of the next connection. It keeps the last event ID and the
/// reconnection time, which is exactly what the client needs to reconnect.
///
/// ```
/// use wsse_wire::sse::{EventStreamParser, Item};
///
/// let mut parser = EventStreamParser::new();
/// assert!(parser.feed(b"id: 1\ndata: hel").is_empty());
/// let items = parser.feed(b"lo\n\n");
/// let Item::Event(event) = &items[0] else { panic!("expected an event") };
/// assert_eq!(event.event_type, "message");
/// assert_eq!(event.data, "hello");
/// assert_eq!(parser.last_event_id(), "1");
/// ```
#[derive(Debug, Clone)]
pub struct EventStreamParser {
    /// The bytes of the current line, when it started in an earlier chunk.
    line: Vec<u8>,
    /// The previous chunk ended with a CR. If this chunk starts with an LF, that LF is
    /// the second half of a CRLF, not a line of its own.
    after_carriage_return: bool,
    byte_order_mark: ByteOrderMark,
    /// The standard's "data buffer".
    data: String,
    /// The standard's "event type buffer".
    event_type: String,
    /// The standard's "last event ID buffer": set by `id` fields, committed at dispatch.
    last_event_id_buffer: String,
    /// The standard's "last event ID string": what the client sends as `Last-Event-ID`.
    last_event_id: String,
    /// The latest valid `retry`, in milliseconds.
    reconnection_time: Option<u64>,
}

impl Default for EventStreamParser {
    fn default() -> Self {
        EventStreamParser::new()
    }
}

impl EventStreamParser {
    /// A parser at the start of a stream, with no last event ID and no reconnection time.
    pub fn new() -> Self {
        EventStreamParser {
            line: Vec::new(),
            after_carriage_return: false,
            byte_order_mark: ByteOrderMark::Checking { matched: 0 },
            data: String::new(),
            event_type: String::new(),
            last_event_id_buffer: String::new(),
            last_event_id: String::new(),
            reconnection_time: None,
        }
    }

    /// The last event ID string: what a client sends in the `Last-Event-ID` header when
    /// it reconnects (if not empty).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time set by the latest valid `retry` field, in milliseconds.
    /// `None` if the server never sent one; the client then picks its own.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.reconnection_time
    }

    // ANCHOR: feed
    /// Parses the next chunk of the stream and returns what it completed.
    ///
    /// The chunk can be cut anywhere; an unfinished line waits for the next chunk.
    #[must_use = "the items are what the chunk completed; dropping them loses events"]
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Item> {
        let mut items = Vec::new();
        let mut rest = self.skip_byte_order_mark(chunk);

        // "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE FEED
        // (CRLF) character pair, a single U+000A LINE FEED (LF) character, or a single
        // U+000D CARRIAGE RETURN (CR) character."
        // A CR ends its line at once (waiting to see whether an LF follows would delay
        // the event), so an LF right after it must not end a second, empty line.
        if self.after_carriage_return && !rest.is_empty() {
            self.after_carriage_return = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }

        while let Some(position) = rest.iter().position(|&byte| byte == b'\r' || byte == b'\n') {
            let line_end = rest[position];
            if self.line.is_empty() {
                // The whole line is in this chunk: no copy needed.
                self.process_line(&rest[..position], &mut items);
            } else {
                let mut line = mem::take(&mut self.line);
                line.extend_from_slice(&rest[..position]);
                self.process_line(&line, &mut items);
                line.clear();
                self.line = line; // keep the allocation for the next unfinished line
            }
            rest = &rest[position + 1..];

            if line_end == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_carriage_return = true,
                }
            }
        }
        // No line end left: keep the start of the next line for the next chunk.
        self.line.extend_from_slice(rest);
        items
    }
    // ANCHOR_END: feed

    // ANCHOR: end_of_stream
    /// The connection ended: discards the incomplete event and gets ready for a new
    /// stream.
    ///
    /// "If the file ends in the middle of an event, before the final empty line, the
    /// incomplete event is not dispatched." Its unfinished line, data, event type and
    /// `id` are dropped; the last event ID string and the reconnection time are kept,
    /// because the client reconnects with them. The next stream may start with its own
    /// byte order mark.
    pub fn end_of_stream(&mut self) {
        self.line.clear();
        self.after_carriage_return = false;
        self.byte_order_mark = ByteOrderMark::Checking { matched: 0 };
        self.data.clear();
        self.event_type.clear();
        // An `id` of the incomplete event must not reach the next connection's events.
        self.last_event_id_buffer.clone_from(&self.last_event_id);
    }
    // ANCHOR_END: end_of_stream

    // ANCHOR: byte_order_mark
    /// Skips the optional byte order mark at the very start of a stream, even when it
    /// arrives split over several chunks. Returns the rest of `chunk` to parse.
    ///
    /// The standard decodes the stream with "UTF-8 decode", which drops one leading
    /// U+FEFF. Only one, and only at the start: later ones are ordinary characters.
    fn skip_byte_order_mark<'chunk>(&mut self, mut chunk: &'chunk [u8]) -> &'chunk [u8] {
        while let ByteOrderMark::Checking { matched } = self.byte_order_mark {
            let Some(&byte) = chunk.first() else {
                break; // wait for more bytes to decide
            };
            if byte == BYTE_ORDER_MARK[matched] {
                chunk = &chunk[1..];
                self.byte_order_mark = if matched + 1 == BYTE_ORDER_MARK.len() {
                    ByteOrderMark::Done
                } else {
                    ByteOrderMark::Checking {
                        matched: matched + 1,
                    }
                };
            } else {
                // Not a mark after all: the bytes held back are the start of the first
                // line (none of them is a CR or LF).
                self.line.extend_from_slice(&BYTE_ORDER_MARK[..matched]);
                self.byte_order_mark = ByteOrderMark::Done;
            }
        }
        chunk
    }
    // ANCHOR_END: byte_order_mark

    // ANCHOR: parse_line
    /// Interprets one complete line (without its line end).
    fn process_line(&mut self, bytes: &[u8], items: &mut Vec<Item>) {
        // Invalid UTF-8 becomes U+FFFD, as the standard's UTF-8 decode does.
        let line: Cow<str> = String::from_utf8_lossy(bytes);

        // "If the line is empty (a blank line): Dispatch the event."
        if line.is_empty() {
            if let Some(event) = self.dispatch() {
                items.push(Item::Event(event));
            }
            return;
        }
        // "If the line starts with a U+003A COLON character (:): Ignore the line."
        // It changes nothing; we only report it, so that keep-alives can be seen.
        if let Some(text) = line.strip_prefix(':') {
            let text = text.strip_prefix(' ').unwrap_or(text);
            items.push(Item::Comment(text.to_string()));
            return;
        }
        // "If the line contains a U+003A COLON character (:): Collect the characters on
        // the line before the first U+003A COLON character (:), and let field be that
        // string. Collect the characters on the line after the first U+003A COLON
        // character (:), and let value be that string. If value starts with a U+0020
        // SPACE character, remove it from value."
        // "Otherwise, the string is not empty but does not contain a U+003A COLON
        // character (:): Process the field using the whole line as the field name, and
        // the empty string as the field value."
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        self.process_field(field, value, items);
    }
    // ANCHOR_END: parse_line

    // ANCHOR: process_field
    /// Applies one field to the buffers.
    fn process_field(&mut self, field: &str, value: &str, items: &mut Vec<Item>) {
        match field {
            // "Set the event type buffer to field value."
            "event" => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            // "Append the field value to the data buffer, then append a single U+000A
            // LINE FEED (LF) character to the data buffer."
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // "If the field value does not contain U+0000 NULL, then set the last event
            // ID buffer to the field value. Otherwise, ignore the field."
            // An empty value is allowed: it clears the last event ID.
            "id" if !value.contains('\0') => {
                self.last_event_id_buffer.clear();
                self.last_event_id_buffer.push_str(value);
            }
            // "If the field value consists of only ASCII digits, then interpret the field
            // value as an integer in base ten, and set the event stream's reconnection
            // time to that integer. Otherwise, ignore the field."
            // It takes effect at once, not at dispatch.
            "retry" => {
                if let Some(milliseconds) = parse_retry(value) {
                    self.reconnection_time = Some(milliseconds);
                    items.push(Item::Retry(milliseconds));
                }
            }
            // "Otherwise: The field is ignored."
            _ => {}
        }
    }
    // ANCHOR_END: process_field

    // ANCHOR: dispatch
    /// "Dispatch the event": called on every blank line.
    fn dispatch(&mut self) -> Option<ParsedEvent> {
        // 1. "Set the last event ID string of the event source to the value of the last
        //    event ID buffer. The buffer does not get reset." This happens even when no
        //    event is delivered below: `id: 5` and a blank line update the ID alone.
        self.last_event_id.clone_from(&self.last_event_id_buffer);

        // 2. "If the data buffer is an empty string, set the data buffer and the event
        //    type buffer to the empty string and return." Empty means no `data` field at
        //    all: a `data:` line with an empty value leaves an LF in the buffer.
        if self.data.is_empty() {
            self.event_type.clear();
            return None;
        }

        // 3. "If the data buffer's last character is a U+000A LINE FEED (LF) character,
        //    then remove the last character from the data buffer." (Every `data` field
        //    appended one, so the lines end up joined by LF.)
        if self.data.ends_with('\n') {
            self.data.pop();
        }

        // 4. The event type defaults to "message". Taking the buffers leaves them empty,
        //    which is the last step: "Set the data buffer and the event type buffer to
        //    the empty string."
        let mut event_type = mem::take(&mut self.event_type);
        if event_type.is_empty() {
            event_type.push_str("message");
        }
        Some(ParsedEvent {
            event_type,
            data: mem::take(&mut self.data),
            last_event_id: self.last_event_id.clone(),
        })
    }
    // ANCHOR_END: dispatch
}

// ANCHOR: parse_retry
/// The value of a `retry` field, if it is one: only ASCII digits, at least one.
///
/// `u64::from_str` alone would not do: it accepts a leading `+`. A number too large for
/// a `u64` is ignored like any other value we cannot use.
fn parse_retry(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}
// ANCHOR_END: parse_retry

#[cfg(test)]
mod tests {
    use super::*;

    fn message(data: &str, last_event_id: &str) -> Item {
        Item::Event(ParsedEvent {
            event_type: "message".to_string(),
            data: data.to_string(),
            last_event_id: last_event_id.to_string(),
        })
    }

    #[test]
    fn one_event() {
        let mut parser = EventStreamParser::new();
        assert_eq!(parser.feed(b"data: hello\n\n"), [message("hello", "")]);
    }

    #[test]
    fn unfinished_line_waits_for_the_next_chunk() {
        let mut parser = EventStreamParser::new();
        assert_eq!(parser.feed(b"da"), []);
        assert_eq!(parser.feed(b"ta: x"), []);
        assert_eq!(parser.feed(b"\n"), []);
        assert_eq!(parser.feed(b"\n"), [message("x", "")]);
    }

    #[test]
    fn bytes_held_back_as_a_possible_byte_order_mark_are_kept_when_it_is_not_one() {
        let mut parser = EventStreamParser::new();
        assert_eq!(parser.feed(b"\xEF"), []);
        assert_eq!(parser.feed(b"\xBB"), []);
        assert_eq!(parser.line, b"");
        assert_eq!(parser.feed(b"x"), []);
        assert_eq!(parser.line, b"\xEF\xBBx");
        assert_eq!(parser.byte_order_mark, ByteOrderMark::Done);
    }

    #[test]
    fn end_of_stream_restores_the_id_buffer() {
        let mut parser = EventStreamParser::new();
        assert_eq!(
            parser.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n"),
            [message("a", "1")]
        );
        parser.end_of_stream();
        assert_eq!(parser.last_event_id_buffer, "1");
        assert_eq!(parser.feed(b"data: c\n\n"), [message("c", "1")]);
    }
}
