//! The `text/event-stream` format: what the encoder writes, and what a parser makes
//! of it when the bytes arrive in awkward pieces.
//!
//! ```text
//! cargo run --example event_stream
//! cargo run --example event_stream -- --chunk 1       # one byte at a time
//! ```

use clap::Parser;
use wsse_wire::sse::{Event, EventStreamParser, Item, comment, retry};

/// Encode a few events, then parse them back in chunks of a chosen size.
#[derive(Parser)]
struct Arguments {
    /// Feed the parser this many bytes at a time.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..))]
    chunk: u16,
}

fn main() {
    let arguments = Arguments::parse();

    // ANCHOR: demo
    let mut stream = String::new();
    stream.push_str(&retry(3000));
    stream.push_str(&comment("keep-alive comments start with a colon"));
    for event in [
        Event::new("one line").id("1"),
        Event::new("two\nlines, and a CRLF\r\nbecomes LF").id("2"),
        Event::new(r#"{"online":3}"#).event("presence"),
    ] {
        stream.push_str(&event.encode().expect("ids without CR, LF or NUL"));
    }
    // ANCHOR_END: demo

    println!(
        "On the wire ({} bytes; \\n marks each line end):\n",
        stream.len()
    );
    for line in stream.split_inclusive('\n') {
        println!("  {}", line.replace('\n', "\\n"));
    }

    println!(
        "\nParsed {} bytes at a time, as a network might deliver them:\n",
        arguments.chunk
    );
    let mut parser = EventStreamParser::new();
    for chunk in stream.as_bytes().chunks(usize::from(arguments.chunk)) {
        for item in parser.feed(chunk) {
            match item {
                Item::Retry(milliseconds) => println!("  retry: reconnect after {milliseconds} ms"),
                Item::Comment(text) => println!("  comment: {text:?}"),
                Item::Event(event) => println!(
                    "  event: type {:?}, data {:?}, last event id {:?}",
                    event.event_type, event.data, event.last_event_id
                ),
            }
        }
    }
    println!(
        "\nAfter a drop, a client reconnects with Last-Event-ID: {:?}",
        parser.last_event_id()
    );
}
