//! Server-Sent Events over real TCP, read the way a client must: head, chunks, events.

mod common;

use common::{exchange, start_server, within};
use wsse_wire::sse::{EventStreamParser, Item, ParsedEvent};

/// Splits a chunked body into its chunks; panics unless it ends with the last chunk,
/// `0\r\n\r\n`, and nothing after it.
fn dechunk(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|window| window == b"\r\n")
            .expect("a chunk size line");
        let size = std::str::from_utf8(&body[..line_end]).unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            assert_eq!(body, b"\r\n", "the last chunk ends the body");
            return chunks;
        }
        chunks.push(body[..size].to_vec());
        assert_eq!(&body[size..size + 2], b"\r\n", "CRLF after the chunk");
        body = &body[size + 2..];
    }
}

#[tokio::test]
async fn an_event_stream_is_a_chunked_response_of_events() {
    within(async {
        let address = start_server().await;
        let raw = exchange(address, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let head_end = raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap();
        let head = std::str::from_utf8(&raw[..head_end]).unwrap();
        let mut lines = head.split("\r\n");
        assert_eq!(lines.next(), Some("HTTP/1.1 200 OK"));
        let fields: Vec<&str> = lines.collect();
        for expected in [
            "Content-Type: text/event-stream",
            "Cache-Control: no-cache",
            "X-Accel-Buffering: no",
            "Transfer-Encoding: chunked",
            "X-Stream: test",
        ] {
            assert!(fields.contains(&expected), "{expected} in {fields:?}");
        }
        assert!(!head.contains("Content-Length"));

        let chunks = dechunk(&raw[head_end + 4..]);
        // One chunk per successful send: the refused event and the empty text wrote nothing.
        assert_eq!(chunks.len(), 4, "{chunks:?}");
        assert_eq!(chunks[0], b"retry: 3000\n");

        let mut parser = EventStreamParser::new();
        let items: Vec<Item> = chunks.iter().flat_map(|chunk| parser.feed(chunk)).collect();
        assert_eq!(
            items,
            [
                Item::Retry(3000),
                Item::Event(ParsedEvent {
                    event_type: "message".into(),
                    data: "hello".into(),
                    last_event_id: "1".into(),
                }),
                Item::Event(ParsedEvent {
                    event_type: "tick".into(),
                    data: "two\nlines".into(),
                    last_event_id: "1".into(),
                }),
                Item::Comment("keep-alive".into()),
            ]
        );
    })
    .await;
}
