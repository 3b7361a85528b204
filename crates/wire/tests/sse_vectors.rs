//! Test vectors for the event stream parser, one or more per rule of the WHATWG
//! "event stream interpretation" algorithm.
//!
//! Every vector goes through [`parse_every_way`]: whole, cut in two at every possible
//! point, and byte by byte. All must give the same result, so every rule is also tested
//! across chunk boundaries.

use wsse_wire::sse::{Event, EventStreamParser, Item, ParsedEvent, comment, retry};

/// Everything a parser reports for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    items: Vec<Item>,
    last_event_id: String,
    reconnection_time: Option<u64>,
}

fn parse_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = EventStreamParser::new();
    let mut items = Vec::new();
    for chunk in chunks {
        items.extend(parser.feed(chunk));
    }
    Outcome {
        items,
        last_event_id: parser.last_event_id().to_string(),
        reconnection_time: parser.reconnection_time(),
    }
}

/// Parses `input` whole, in two chunks at every split point, and byte by byte; asserts
/// all agree and returns the outcome.
fn parse_every_way(input: &[u8]) -> Outcome {
    let whole = parse_chunks([input]);
    for split in 0..=input.len() {
        let (first, second) = input.split_at(split);
        assert_eq!(
            parse_chunks([first, second]),
            whole,
            "split at {split} differs from whole for {:?}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(
        parse_chunks(input.chunks(1)),
        whole,
        "byte by byte differs from whole for {:?}",
        String::from_utf8_lossy(input)
    );
    whole
}

/// Only the items of [`parse_every_way`].
fn items(input: &[u8]) -> Vec<Item> {
    parse_every_way(input).items
}

fn event(event_type: &str, data: &str, last_event_id: &str) -> Item {
    Item::Event(ParsedEvent {
        event_type: event_type.to_string(),
        data: data.to_string(),
        last_event_id: last_event_id.to_string(),
    })
}

fn message(data: &str) -> Item {
    event("message", data, "")
}

fn message_with_id(data: &str, last_event_id: &str) -> Item {
    event("message", data, last_event_id)
}

fn comment_item(text: &str) -> Item {
    Item::Comment(text.to_string())
}

// ----- The examples of the standard -----

#[test]
fn standard_example_stock_ticker() {
    assert_eq!(
        items(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
        [message("YHOO\n+2\n10")]
    );
}

#[test]
fn standard_example_four_blocks() {
    // "The first block has just a comment, and will fire nothing. The second block has
    // two fields with names "data" and "id" respectively; an event will be fired for
    // this block, with the data "first event", and will then set the last event ID to
    // "1" [...]. The third block fires an event with data "second event", and also has
    // an "id" field, this time with no value, which resets the last event ID to the
    // empty string [...]. Finally, the last block just fires an event with the data
    // " third event" (with a single leading space character)."
    let outcome = parse_every_way(
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
    );
    assert_eq!(
        outcome.items,
        [
            comment_item("test stream"),
            message_with_id("first event", "1"),
            message_with_id("second event", ""),
            message_with_id(" third event", ""),
        ]
    );
    assert_eq!(outcome.last_event_id, "");
}

#[test]
fn standard_example_empty_data() {
    // "The first block fires events with the data set to the empty string, as would the
    // last block if it was followed by a blank line. The middle block fires an event
    // with the data set to a single newline character. The last block is discarded
    // because it is not followed by a blank line."
    assert_eq!(
        items(b"data\n\ndata\ndata\n\ndata:"),
        [message(""), message("\n")]
    );
}

#[test]
fn standard_example_space_after_colon_is_optional() {
    assert_eq!(
        items(b"data:test\n\ndata: test\n\n"),
        [message("test"), message("test")]
    );
}

// ----- Byte order mark -----

#[test]
fn byte_order_mark_at_the_start_is_skipped() {
    assert_eq!(items(b"\xEF\xBB\xBFdata: x\n\n"), [message("x")]);
}

#[test]
fn byte_order_mark_split_across_chunks_is_skipped() {
    let expected = Outcome {
        items: vec![message("x")],
        last_event_id: String::new(),
        reconnection_time: None,
    };
    assert_eq!(
        parse_chunks([&b"\xEF"[..], b"\xBB", b"\xBF", b"data: x\n\n"]),
        expected
    );
    assert_eq!(
        parse_chunks([&b"\xEF\xBB"[..], b"", b"\xBFdata: x\n\n"]),
        expected
    );
}

#[test]
fn only_one_byte_order_mark_is_skipped() {
    // The second mark is part of the field name "\u{FEFF}data", an unknown field.
    assert_eq!(items(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"), []);
}

#[test]
fn byte_order_mark_in_the_middle_is_an_ordinary_character() {
    assert_eq!(
        items(b"data: a\n\n\xEF\xBB\xBFdata: b\n\ndata: \xEF\xBB\xBFc\n\n"),
        [message("a"), message("\u{FEFF}c")]
    );
}

#[test]
fn start_of_a_byte_order_mark_is_not_skipped() {
    // EF BB without BF is no mark: those bytes start the first line, which then is
    // the unknown field "\u{FFFD}data".
    assert_eq!(items(b"\xEF\xBBdata: x\n\ndata: y\n\n"), [message("y")]);
}

#[test]
fn byte_order_mark_is_checked_again_after_end_of_stream() {
    let mut parser = EventStreamParser::new();
    assert_eq!(parser.feed(b"\xEF\xBB\xBFdata: a\n\n"), [message("a")]);
    parser.end_of_stream();
    assert_eq!(parser.feed(b"\xEF\xBB"), []);
    assert_eq!(parser.feed(b"\xBFdata: b\n\n"), [message("b")]);
}

// ----- Line ends -----

#[test]
fn crlf_lf_and_cr_line_ends_mixed_in_one_stream() {
    assert_eq!(
        items(b"data: a\r\ndata: b\ndata: c\r\rdata: d\n\r\ndata: e\r\n\n"),
        [message("a\nb\nc"), message("d"), message("e")]
    );
}

#[test]
fn cr_at_chunk_end_and_lf_at_next_chunk_start_are_one_line_end() {
    let mut parser = EventStreamParser::new();
    assert_eq!(parser.feed(b"data: a\r"), []);
    // The LF belongs to the CR before it: no blank line, no dispatch yet.
    assert_eq!(parser.feed(b"\ndata: b\r"), []);
    assert_eq!(parser.feed(b"\n"), []);
    assert_eq!(parser.feed(b"\r"), [message("a\nb")]);
    assert_eq!(parser.feed(b"\n"), []);
    assert_eq!(parser.feed(b"data: c\n\n"), [message("c")]);
}

#[test]
fn cr_at_chunk_end_ends_the_line_at_once() {
    let mut parser = EventStreamParser::new();
    assert_eq!(parser.feed(b"data: a\r"), []);
    // The blank line is a lone CR at the end of the chunk: the event is dispatched
    // without waiting for the next byte.
    assert_eq!(parser.feed(b"\r"), [message("a")]);
}

#[test]
fn cr_at_chunk_end_followed_by_another_byte() {
    let mut parser = EventStreamParser::new();
    assert_eq!(parser.feed(b"data: a\r"), []);
    assert_eq!(parser.feed(b"data: b\r"), []);
    assert_eq!(parser.feed(b"\r"), [message("a\nb")]);
    assert_eq!(items(b"data: a\rdata: b\r\r"), [message("a\nb")]);
}

#[test]
fn empty_chunk_after_cr_keeps_the_cr_pending() {
    let mut parser = EventStreamParser::new();
    assert_eq!(parser.feed(b"data: a\r"), []);
    assert_eq!(parser.feed(b""), []);
    assert_eq!(parser.feed(b"\n"), []);
    assert_eq!(parser.feed(b"\n"), [message("a")]);
}

#[test]
fn lf_then_cr_is_two_line_ends() {
    assert_eq!(items(b"data: a\n\r"), [message("a")]);
}

#[test]
fn blank_lines_without_fields_dispatch_nothing() {
    assert_eq!(items(b"\n\r\n\r\n\n\r"), []);
}

// ----- Fields -----

#[test]
fn field_without_colon_has_an_empty_value() {
    assert_eq!(items(b"data\ndata\ndata: x\n\n"), [message("\n\nx")]);
    assert_eq!(items(b"event\ndata: x\n\n"), [message("x")]);
}

#[test]
fn exactly_one_leading_space_is_stripped() {
    assert_eq!(
        items(b"data:  x\n\ndata:x\n\ndata: \n\ndata:\t x\n\n"),
        [message(" x"), message("x"), message(""), message("\t x")]
    );
    assert_eq!(
        items(b"event:  spaced\ndata: x\n\n"),
        [event(" spaced", "x", "")]
    );
}

#[test]
fn only_the_first_colon_separates_name_and_value() {
    assert_eq!(
        items(b"data: a: b:c\nevent:type:x\n\n"),
        [event("type:x", "a: b:c", "")]
    );
}

#[test]
fn field_names_are_case_sensitive_and_exact() {
    assert_eq!(
        items(b"Data: a\nDATA: b\ndata : c\n data: d\ndata: e\n\n"),
        [message("e")]
    );
}

#[test]
fn unknown_fields_are_ignored() {
    assert_eq!(items(b"foo: bar\ndata: x\nbaz\nx-y: z\n\n"), [message("x")]);
}

#[test]
fn data_lines_are_joined_by_lf_and_the_final_lf_removed() {
    assert_eq!(
        items(b"data: a\ndata: b\ndata: c\n\n"),
        [message("a\nb\nc")]
    );
    assert_eq!(items(b"data: a\ndata:\n\n"), [message("a\n")]);
}

#[test]
fn event_type_defaults_to_message_and_resets_after_dispatch() {
    assert_eq!(
        items(b"event: add\ndata: 1\n\ndata: 2\n\nevent: remove\nevent: update\ndata: 3\n\nevent:\ndata: 4\n\n"),
        [
            event("add", "1", ""),
            message("2"),
            event("update", "3", ""),
            message("4"),
        ]
    );
}

#[test]
fn event_type_of_a_block_without_data_does_not_leak() {
    assert_eq!(items(b"event: add\n\ndata: x\n\n"), [message("x")]);
}

// ----- id -----

#[test]
fn last_event_id_persists_across_events() {
    let outcome = parse_every_way(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\ndata: d\n\n");
    assert_eq!(
        outcome.items,
        [
            message_with_id("a", "1"),
            message_with_id("b", "1"),
            message_with_id("c", "2"),
            message_with_id("d", "2"),
        ]
    );
    assert_eq!(outcome.last_event_id, "2");
}

#[test]
fn id_anywhere_in_the_block_applies_to_its_event() {
    assert_eq!(items(b"data: a\nid: 1\n\n"), [message_with_id("a", "1")]);
    assert_eq!(
        items(b"id: 1\ndata: a\nid: 2\n\n"),
        [message_with_id("a", "2")]
    );
}

#[test]
fn id_containing_null_is_ignored() {
    let outcome = parse_every_way(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n");
    assert_eq!(
        outcome.items,
        [message_with_id("a", "1"), message_with_id("b", "1")]
    );
    assert_eq!(outcome.last_event_id, "1");
}

#[test]
fn empty_id_clears_the_last_event_id() {
    let outcome = parse_every_way(b"id: 1\ndata: a\n\nid:\ndata: b\n\n");
    assert_eq!(
        outcome.items,
        [message_with_id("a", "1"), message_with_id("b", "")]
    );
    assert_eq!(outcome.last_event_id, "");
    // `id` without a colon clears it too.
    assert_eq!(parse_every_way(b"id: 1\n\nid\n\n").last_event_id, "");
}

#[test]
fn id_keeps_spaces_after_the_first() {
    assert_eq!(parse_every_way(b"id:  7 \n\n").last_event_id, " 7 ");
}

#[test]
fn block_without_data_updates_the_last_event_id_but_dispatches_nothing() {
    let outcome = parse_every_way(b"id: 5\n\n");
    assert_eq!(outcome.items, []);
    assert_eq!(outcome.last_event_id, "5");
    // And the next event carries it.
    assert_eq!(items(b"id: 5\n\ndata: x\n\n"), [message_with_id("x", "5")]);
}

#[test]
fn id_is_committed_only_by_the_blank_line() {
    let mut parser = EventStreamParser::new();
    assert_eq!(parser.feed(b"id: 1\ndata: a\n"), []);
    assert_eq!(parser.last_event_id(), "");
    assert_eq!(parser.feed(b"\n"), [message_with_id("a", "1")]);
    assert_eq!(parser.last_event_id(), "1");
}

// ----- retry -----

#[test]
fn retry_with_only_ascii_digits_is_accepted() {
    let outcome = parse_every_way(b"retry: 3000\n");
    assert_eq!(outcome.items, [Item::Retry(3000)]);
    assert_eq!(outcome.reconnection_time, Some(3000));
    assert_eq!(parse_every_way(b"retry: 0\n").reconnection_time, Some(0));
    assert_eq!(parse_every_way(b"retry:007\n").items, [Item::Retry(7)]);
}

#[test]
fn retry_that_is_not_only_ascii_digits_is_ignored() {
    for input in [
        &b"retry: 12a\n"[..],
        b"retry: -1\n",
        b"retry: +1\n",
        b"retry: \n",
        b"retry:\n",
        b"retry\n",
        b"retry:  12\n",
        b"retry: 12 \n",
        b"retry: 1.5\n",
        b"retry: \xD9\xA3\n", // ARABIC-INDIC DIGIT THREE is a digit, but not ASCII
    ] {
        let outcome = parse_every_way(input);
        assert_eq!(outcome.items, [], "{input:?}");
        assert_eq!(outcome.reconnection_time, None, "{input:?}");
    }
}

#[test]
fn invalid_retry_keeps_the_previous_reconnection_time() {
    assert_eq!(
        parse_every_way(b"retry: 100\nretry: x\n").reconnection_time,
        Some(100)
    );
}

#[test]
fn retry_too_large_for_u64_is_ignored() {
    assert_eq!(
        parse_every_way(b"retry: 18446744073709551615\n").reconnection_time,
        Some(u64::MAX)
    );
    let outcome = parse_every_way(b"retry: 5\nretry: 18446744073709551616\n");
    assert_eq!(outcome.items, [Item::Retry(5)]);
    assert_eq!(outcome.reconnection_time, Some(5));
}

#[test]
fn retry_applies_without_a_dispatch_and_in_stream_order() {
    assert_eq!(
        items(b"data: a\nretry: 10\n\nretry: 20\n"),
        [Item::Retry(10), message("a"), Item::Retry(20)]
    );
}

// ----- Comments -----

#[test]
fn comments_are_reported_and_change_nothing() {
    let outcome =
        parse_every_way(b":\n: keep-alive\n:  two spaces\n:no space\ndata: a\n: inside\n\n");
    assert_eq!(
        outcome.items,
        [
            comment_item(""),
            comment_item("keep-alive"),
            comment_item(" two spaces"),
            comment_item("no space"),
            comment_item("inside"),
            message("a"),
        ]
    );
}

#[test]
fn a_comment_does_not_end_an_event() {
    assert_eq!(
        items(b"data: a\n:\ndata: b\n\n"),
        [comment_item(""), message("a\nb")]
    );
}

// ----- UTF-8 -----

#[test]
fn invalid_utf8_becomes_replacement_characters() {
    assert_eq!(
        items(b"data: a\xFFb\n\ndata: \xC3\n\ndata: \xE2\x82\n\n"),
        [
            message("a\u{FFFD}b"),
            message("\u{FFFD}"),
            message("\u{FFFD}")
        ]
    );
    // An invalid byte in a field name makes it an unknown field.
    assert_eq!(items(b"dat\xE1: x\n\n"), []);
}

#[test]
fn multi_byte_characters_survive_any_split() {
    // parse_every_way cuts inside each of these characters.
    assert_eq!(
        items("event: ü\ndata: é€😀\nid: ∞\n\n".as_bytes()),
        [event("ü", "é€😀", "∞")]
    );
}

#[test]
fn multi_byte_character_split_across_two_chunks() {
    let bytes = "data: 😀\n\n".as_bytes();
    let mut parser = EventStreamParser::new();
    assert_eq!(parser.feed(&bytes[..8]), []);
    assert_eq!(parser.feed(&bytes[8..]), [message("😀")]);
}

#[test]
fn null_in_data_and_event_type_is_kept() {
    assert_eq!(
        items(b"event: a\x00b\ndata: c\x00d\n\n"),
        [event("a\0b", "c\0d", "")]
    );
}

// ----- End of stream -----

#[test]
fn incomplete_event_is_discarded_at_end_of_stream() {
    let mut parser = EventStreamParser::new();
    assert_eq!(
        parser.feed(b"data: a\n\nid: 2\nevent: add\ndata: b\n"),
        [message("a")]
    );
    parser.end_of_stream();
    assert_eq!(parser.last_event_id(), "");
    // The new stream starts clean: no "b" data, no "add" type, no id "2".
    assert_eq!(parser.feed(b"data: c\n\n"), [message("c")]);
    assert_eq!(parser.last_event_id(), "");
}

#[test]
fn incomplete_line_is_discarded_at_end_of_stream() {
    let mut parser = EventStreamParser::new();
    assert_eq!(parser.feed(b"data: a\ndat"), []);
    parser.end_of_stream();
    assert_eq!(parser.feed(b"a: b\n\n"), []);
    assert_eq!(parser.feed(b"data: c\n\n"), [message("c")]);
}

#[test]
fn pending_cr_is_forgotten_at_end_of_stream() {
    let mut parser = EventStreamParser::new();
    assert_eq!(parser.feed(b"data: a\r"), []);
    parser.end_of_stream();
    assert_eq!(parser.feed(b"data: b\n"), []);
    // Had the CR been kept pending, this first LF would be swallowed.
    assert_eq!(parser.feed(b"\n"), [message("b")]);
}

#[test]
fn last_event_id_and_reconnection_time_survive_end_of_stream() {
    let mut parser = EventStreamParser::new();
    assert_eq!(
        parser.feed(b"retry: 500\nid: 1\ndata: a\n\nretry: 700\nid: 2\ndata: b\n"),
        [
            Item::Retry(500),
            message_with_id("a", "1"),
            Item::Retry(700)
        ]
    );
    parser.end_of_stream();
    assert_eq!(parser.last_event_id(), "1");
    // A complete `retry` line takes effect at once, even in an event that is discarded.
    assert_eq!(parser.reconnection_time(), Some(700));
    assert_eq!(parser.feed(b"data: c\n\n"), [message_with_id("c", "1")]);
}

// ----- Encoder and parser together -----

#[test]
fn encoded_event_parses_back() {
    let text = Event::new("line1\r\nline2\rline3\n")
        .id("42")
        .event("update")
        .retry(1500)
        .encode()
        .unwrap();
    assert_eq!(
        items(text.as_bytes()),
        [
            Item::Retry(1500),
            event("update", "line1\nline2\nline3\n", "42")
        ]
    );
}

#[test]
fn encoded_empty_data_is_delivered_as_an_empty_message() {
    let text = Event::new("").id("9").encode().unwrap();
    let outcome = parse_every_way(text.as_bytes());
    assert_eq!(outcome.items, [message_with_id("", "9")]);
    assert_eq!(outcome.last_event_id, "9");
}

#[test]
fn encoded_comment_and_retry_parse_back_without_an_event() {
    let text = comment("keep-alive\nsecond line") + &retry(3000);
    let outcome = parse_every_way(text.as_bytes());
    assert_eq!(
        outcome.items,
        [
            comment_item("keep-alive"),
            comment_item("second line"),
            Item::Retry(3000)
        ]
    );
    assert_eq!(outcome.reconnection_time, Some(3000));
    // A retry line in front of an event does not disturb it.
    let text = retry(10) + &Event::new("x").encode().unwrap();
    assert_eq!(items(text.as_bytes()), [Item::Retry(10), message("x")]);
}

#[test]
fn long_line_fed_byte_by_byte() {
    let data = "x".repeat(100_000);
    let text = Event::new(data.clone()).encode().unwrap();
    assert_eq!(
        parse_chunks(text.as_bytes().chunks(1)).items,
        [message(&data)]
    );
}
