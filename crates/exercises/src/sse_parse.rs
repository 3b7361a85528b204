//! Exercise 5: the event-stream parser, for a stream that arrives in arbitrary
//! chunks.
//!
//! The rules are the WHATWG HTML standard's, section 9.2.6 "Interpreting an event
//! stream":
//!
//! - The stream is UTF-8; one byte order mark at its very start is skipped.
//! - A line ends with CRLF, a lone LF or a lone CR.
//! - An empty line dispatches the event: if the data buffer is empty, nothing is
//!   delivered; otherwise its last LF is removed and an event is delivered with
//!   that data, the event type (`message` if none was set) and the last event ID.
//!   Either way the data buffer and the event type are cleared (the last event ID
//!   is not).
//! - A line starting with `:` is a comment, ignored.
//! - Otherwise the field name is what comes before the first `:` and the value
//!   what comes after it, without one leading space; a line with no `:` is a
//!   field name with an empty value.
//! - `event` sets the event type; `data` appends the value and an LF to the data
//!   buffer; `id` sets the last event ID, unless the value contains U+0000 NULL;
//!   `retry` sets the reconnection time if the value is ASCII digits only. Other
//!   field names are ignored.
//! - At the end of the stream an event that no empty line ended is dropped.
//!
//! Chunks come from the network: a chunk can end anywhere, in a line, between a
//! CR and its LF, or in the middle of a character's UTF-8 bytes.

// ANCHOR: exercise
/// An event, as `EventSource` delivers it to a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event type, `message` unless an `event:` field said otherwise.
    pub event: String,
    /// The data: the values of the event's `data:` lines, joined by LF.
    pub data: String,
    /// The last event ID when the event was dispatched.
    pub id: String,
}

/// The parser's state between two chunks.
#[derive(Debug, Default)]
pub struct EventParser {
    // ANCHOR: hidden_state
    /// Bytes of a line whose end has not arrived yet.
    line: Vec<u8>,
    /// The last chunk ended with a CR: an LF at the start of the next is its CRLF.
    after_cr: bool,
    /// At least one line was processed (a BOM can only start the first).
    past_first_line: bool,
    data: String,
    event_type: String,
    last_id: String,
    retry: Option<u64>,
    // ANCHOR_END: hidden_state
}

impl EventParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        EventParser::default()
    }

    /// Parses the next `chunk` of the stream and returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        // ANCHOR: solution
        let mut events = Vec::new();
        for &byte in chunk {
            let after_cr = std::mem::take(&mut self.after_cr);
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    events.extend(self.process_line(&line));
                }
                _ => self.line.push(byte),
            }
        }
        events
        // ANCHOR_END: solution
    }

    /// The reconnection time the last valid `retry:` field set, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        // ANCHOR: solution_retry
        self.retry
        // ANCHOR_END: solution_retry
    }

    // ANCHOR: hidden_helpers
    /// One complete line, without its line break.
    fn process_line(&mut self, line: &[u8]) -> Option<Event> {
        let mut line = String::from_utf8_lossy(line).into_owned();
        if !std::mem::replace(&mut self.past_first_line, true) && line.starts_with('\u{feff}') {
            line.remove(0);
        }
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "event" => self.event_type = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.last_id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<Event> {
        let mut data = std::mem::take(&mut self.data);
        let event_type = std::mem::take(&mut self.event_type);
        if data.is_empty() {
            return None;
        }
        data.pop();
        Some(Event {
            event: if event_type.is_empty() {
                "message".to_owned()
            } else {
                event_type
            },
            data,
            id: self.last_id.clone(),
        })
    }
    // ANCHOR_END: hidden_helpers
}
// ANCHOR_END: exercise

// ANCHOR: tests
#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: &str, data: &str, id: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
            id: id.into(),
        }
    }

    fn message(data: &str, id: &str) -> Event {
        event("message", data, id)
    }

    fn parse_whole(stream: &str) -> Vec<Event> {
        EventParser::new().feed(stream.as_bytes())
    }

    fn parse_in_pieces(stream: &[u8], pieces: &[&[u8]]) -> Vec<Event> {
        let mut parser = EventParser::new();
        let events: Vec<Event> = pieces.iter().flat_map(|piece| parser.feed(piece)).collect();
        assert_eq!(pieces.concat(), stream);
        events
    }

    #[test]
    fn data_lines_are_joined_by_lf() {
        // The first example of the standard.
        let events = parse_whole("data: YHOO\ndata: +2\ndata: 10\n\n");
        assert_eq!(events, [message("YHOO\n+2\n10", "")]);
    }

    #[test]
    fn comments_ids_and_one_leading_space() {
        // The second example of the standard.
        let stream = ": test stream\n\ndata: first event\nid: 1\n\n\
                      data:second event\nid\n\ndata:  third event\n\n";
        assert_eq!(
            parse_whole(stream),
            [
                message("first event", "1"),
                message("second event", ""),
                message(" third event", ""),
            ]
        );
    }

    #[test]
    fn empty_data_and_an_unfinished_event() {
        // The third example of the standard: the last event never ends.
        let events = parse_whole("data\n\ndata\ndata\n\ndata:");
        assert_eq!(events, [message("", ""), message("\n", "")]);
    }

    #[test]
    fn event_types_and_what_is_reset() {
        let stream = "event: add\ndata: 1\nid: 9\n\ndata: 2\n\nevent: nothing\n\ndata: 3\n\n";
        assert_eq!(
            parse_whole(stream),
            [event("add", "1", "9"), message("2", "9"), message("3", "9")]
        );
    }

    #[test]
    fn all_three_line_breaks() {
        let events = parse_whole("data: a\r\rdata: b\r\n\r\ndata: c\n\r");
        assert_eq!(
            events,
            [message("a", ""), message("b", ""), message("c", "")]
        );
    }

    #[test]
    fn a_crlf_split_between_two_chunks_is_one_line_break() {
        let stream = b"data: a\r\ndata: b\r\n\r\n";
        let events = parse_in_pieces(stream, &[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(events, [message("a\nb", "")]);
    }

    #[test]
    fn every_split_gives_the_same_events() {
        let stream = "\u{feff}: hi\r\nevent: é\rdata:x\r\n\r\nid: 7\ndata\ndata: 😀 z\r\r\
                      retry: 10\nid: a\0b\ndata:\r\n\r\n";
        let expected = [
            event("é", "x", ""),
            message("\n😀 z", "7"),
            message("", "7"),
        ];
        let bytes = stream.as_bytes();
        for first in 0..=bytes.len() {
            for second in first..=bytes.len() {
                let pieces = [&bytes[..first], &bytes[first..second], &bytes[second..]];
                assert_eq!(
                    parse_in_pieces(bytes, &pieces),
                    expected,
                    "split at {first} and {second}"
                );
            }
        }
        let one_byte_at_a_time: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_in_pieces(bytes, &one_byte_at_a_time), expected);
    }

    #[test]
    fn one_byte_order_mark_at_the_start_is_skipped() {
        let events = parse_whole("\u{feff}data: 1\n\n\u{feff}data: 2\n\ndata: 3\n\n");
        // The second BOM is part of a field name that is not `data`: ignored.
        assert_eq!(events, [message("1", ""), message("3", "")]);
    }

    #[test]
    fn retry_takes_digits_only_and_id_no_null() {
        let mut parser = EventParser::new();
        assert_eq!(parser.retry(), None);
        parser.feed(b"retry: 3000\n");
        assert_eq!(parser.retry(), Some(3000));
        parser.feed(b"retry: 5s\nretry\nretry: -1\n");
        assert_eq!(parser.retry(), Some(3000));
        let events = parser.feed(b"id: 1\nid: 2\0\ndata: x\n\n");
        assert_eq!(events, [message("x", "1")]);
    }
}
// ANCHOR_END: tests
