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
    // TODO: yours to write.
}

impl EventParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        EventParser::default()
    }

    /// Parses the next `chunk` of the stream and returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        todo!()
    }

    /// The reconnection time the last valid `retry:` field set, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        todo!()
    }

    // TODO: yours to write.
}
