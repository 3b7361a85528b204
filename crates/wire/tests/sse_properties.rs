//! Property tests for the event stream encoder and parser.
//!
//! - Any event the encoder accepts comes back from the parser, whatever the chunking,
//!   with CRLF and lone CR in the data turned into LF (the format cannot carry a CR).
//! - The parser never panics on arbitrary bytes, and the chunking never changes what it
//!   reports.

mod common;

use common::split_at_points;
use proptest::prelude::*;
use proptest::sample::Index;
use wsse_wire::sse::{Event, EventStreamParser, Item, ParsedEvent};

/// Feeds the chunks, then ends the stream. Returns the items, the last event ID and the
/// reconnection time.
fn parse(chunks: &[&[u8]]) -> (Vec<Item>, String, Option<u64>) {
    let mut parser = EventStreamParser::new();
    let mut items = Vec::new();
    for chunk in chunks {
        items.extend(parser.feed(chunk));
    }
    parser.end_of_stream();
    (
        items,
        parser.last_event_id().to_string(),
        parser.reconnection_time(),
    )
}

/// Text that mixes every kind of line break with ordinary and multi-byte characters.
fn text_with_line_breaks() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("\r\n".to_string()),
            Just("\r".to_string()),
            Just("\n".to_string()),
            Just(" ".to_string()),
            Just(":".to_string()),
            Just("\u{FEFF}".to_string()),
            Just("\0".to_string()),
            "[a-z]{1,3}",
            "[é€😀]{1,2}",
            any::<String>(),
        ],
        0..8,
    )
    .prop_map(|pieces| pieces.concat())
}

/// An id the encoder accepts: no CR, LF or NULL.
fn valid_id() -> impl Strategy<Value = String> {
    prop_oneof!["[ a-z0-9:]{0,5}", "[^\r\n\u{0}]{0,5}"]
}

/// An event type the encoder accepts: no CR or LF.
fn valid_event_type() -> impl Strategy<Value = String> {
    prop_oneof!["[ a-z:]{0,5}", "[^\r\n]{0,5}"]
}

fn valid_event() -> impl Strategy<Value = Event> {
    (
        prop::option::of(valid_id()),
        prop::option::of(valid_event_type()),
        text_with_line_breaks(),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(id, event, data, retry)| Event {
            id,
            event,
            data,
            retry,
        })
}

/// Bytes that often look like an event stream, with invalid UTF-8 and byte order marks
/// mixed in.
fn stream_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            any::<u8>().prop_map(|byte| vec![byte]),
            prop::sample::select(vec![
                &b"data"[..],
                b"id",
                b"event",
                b"retry",
                b":",
                b" ",
                b"\r",
                b"\n",
                b"\r\n",
                b"\0",
                b"12",
                b"\xEF\xBB\xBF",
                b"\xEF\xBB",
                b"\xF0\x9F\x98",
                b"\xFF",
            ])
            .prop_map(|bytes| bytes.to_vec()),
        ],
        0..60,
    )
    .prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encoded_events_parse_back(
        events in prop::collection::vec(valid_event(), 1..4),
        points in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let mut text = String::new();
        let mut expected = Vec::new();
        let mut last_event_id = String::new();
        let mut reconnection_time = None;
        for event in &events {
            event.encode_into(&mut text).expect("valid event");
            if let Some(id) = &event.id {
                last_event_id = id.clone();
            }
            if let Some(retry) = event.retry {
                expected.push(Item::Retry(retry));
                reconnection_time = Some(retry);
            }
            let event_type = match event.event.as_deref() {
                None | Some("") => "message".to_string(),
                Some(event_type) => event_type.to_string(),
            };
            expected.push(Item::Event(ParsedEvent {
                event_type,
                data: event.data.replace("\r\n", "\n").replace('\r', "\n"),
                last_event_id: last_event_id.clone(),
            }));
        }

        let chunks = split_at_points(text.as_bytes(), &points);
        prop_assert_eq!(parse(&chunks), (expected, last_event_id, reconnection_time));
    }

    #[test]
    fn chunking_never_changes_the_result(
        bytes in stream_like_bytes(),
        points in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let whole = parse(&[&bytes]);
        let chunks = split_at_points(&bytes, &points);
        prop_assert_eq!(parse(&chunks), whole.clone());
        let byte_by_byte: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(parse(&byte_by_byte), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        points in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let whole = parse(&[&bytes]);
        let chunks = split_at_points(&bytes, &points);
        prop_assert_eq!(parse(&chunks), whole);
    }
}
