//! The article's own Python clients (`crates/loadgen/peers/article_clients/`), as
//! written apart from the URL and a bounded run, against our servers:
//!
//! - its `websockets` client chats with every server;
//! - its line-based SSE client reads every server's token stream, and shows what the
//!   Corrections chapter says it gets wrong: it takes the `event: heartbeat` that
//!   opens the stream for a token, splits one event of several `data:` lines into
//!   several, drops `data:x`, and never reconnects.
//!
//! The clients run in a virtual environment under `target/peers/` with their pinned
//! `requirements.txt`. A missing Python fails the test when `CI` is set (`.ci/run`
//! installs it); otherwise the test says what it skipped.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use wsse_testkit::peers::{Peer, article_clients_python, peers_source_dir};
use wsse_testkit::scripted::{Reply, ScriptedServer};
use wsse_testkit::{SERVERS, ServerProcess};
use wsse_wire::sse::{EventStreamParser, Item};

/// The clients' Python, installed on first use; `None` when the test is skipped.
fn python(test: &str) -> Option<PathBuf> {
    if !wsse_testkit::programs_present(test, &[Peer::FastApi.prerequisite()]) {
        return None;
    }
    Some(article_clients_python().unwrap_or_else(|error| panic!("{test}: {error}")))
}

fn run_client(python: &PathBuf, script: &str, arguments: &[&str]) -> Output {
    Command::new(python)
        .arg(peers_source_dir().join("article_clients").join(script))
        .args(arguments)
        .output()
        .expect("the client runs")
}

fn lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What a conforming parser (the wire crate's) makes of `bytes`: each event's
/// type and data.
fn parsed_events(bytes: &[u8]) -> Vec<(String, String)> {
    let mut parser = EventStreamParser::new();
    let items = parser.feed(bytes);
    parser.end_of_stream();
    items
        .into_iter()
        .filter_map(|item| match item {
            Item::Event(event) => Some((event.event_type, event.data)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_articles_websocket_client_chats_with_every_server() {
    let Some(python) = python("the article's websockets client") else {
        return;
    };
    // The client pauses 2 s after every message it receives, as the article's does:
    // the servers run side by side to keep the test short.
    std::thread::scope(|scope| {
        for server in SERVERS {
            let python = &python;
            scope.spawn(move || {
                let process = ServerProcess::spawn(server, &[]).expect("the server starts");
                let url = format!("ws://{}/ws?name=article", process.addr());
                let output = run_client(python, "ws_client.py", &[&url, "4", "20"]);
                let received = lines(&output);
                assert!(
                    output.status.success(),
                    "{server}: {received:?} {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                assert!(
                    received[0].starts_with("{\"type\":\"welcome\""),
                    "{server}: the first message is the welcome: {received:?}"
                );
                let hello: Vec<_> = received
                    .iter()
                    .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                    .filter(|message| {
                        message["type"] == "message" && message["content"] == "Hello Server"
                    })
                    .collect();
                assert_eq!(
                    hello.len(),
                    1,
                    "{server}: its own message comes back once: {received:?}"
                );
                assert_eq!(hello[0]["from"], "article", "{server}: {received:?}");
            });
        }
    });
}

#[test]
fn the_articles_sse_client_reads_every_token_stream_and_takes_the_heartbeat_for_a_token() {
    let Some(python) = python("the article's SSE client") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
    for server in SERVERS {
        let process =
            ServerProcess::spawn(server, &["--token-interval-ms", "2"]).expect("the server starts");
        let path = "/stream?prompt=the%20article";
        let output = run_client(
            &python,
            "sse_client.py",
            &[&format!("http://{}{path}", process.addr()), "1000", "20"],
        );
        assert!(
            output.status.success(),
            "{server}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed = lines(&output);

        // The same stream, read by a parser that follows the format.
        let response = runtime
            .block_on(wsse_testkit::http::get(process.addr(), path))
            .expect("the stream is read to its end");
        let events = parsed_events(response.text().as_bytes());
        let (first_type, first_data) = &events[0];
        assert_eq!(first_type, "heartbeat", "{server}: {events:?}");
        let tokens: Vec<&str> = events[1..]
            .iter()
            .map(|(event_type, data)| {
                assert_eq!(event_type, "message", "{server}");
                data.as_str()
            })
            .collect();
        assert_eq!(tokens.last(), Some(&"[DONE]"), "{server}");

        // The article's client gets every token, and the heartbeat's data first,
        // as if it were one: it never looks at `event:`.
        let mut expected = vec![first_data.as_str()];
        expected.extend(&tokens);
        assert_eq!(printed, expected, "{server}");
    }
}

#[test]
fn the_articles_sse_client_splits_multi_line_data_drops_data_without_a_space_and_never_reconnects()
{
    let Some(python) = python("the article's SSE client") else {
        return;
    };
    // One event of three `data:` lines (pretty-printed JSON), one `data:x`, and a
    // `retry:` that tells a client to come back after 200 ms when the stream ends.
    let body = "retry: 200\nid: 1\ndata: {\ndata:   \"token\": \"a\"\ndata: }\n\nid: 2\ndata:x\n\n";
    let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
    let server = runtime
        .block_on(ScriptedServer::start(vec![
            Reply::event_stream(body),
            Reply::event_stream("data: came back\n\n"),
        ]))
        .expect("the scripted server starts");

    assert_eq!(
        parsed_events(body.as_bytes()),
        [
            ("message".to_owned(), "{\n  \"token\": \"a\"\n}".to_owned()),
            ("message".to_owned(), "x".to_owned()),
        ],
        "what the stream holds, read by the format's rules"
    );

    let output = run_client(
        &python,
        "sse_client.py",
        &[&server.url("/stream"), "1000", "10"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Three pieces of one event, and no `x`; the stream's end ends the client.
    assert_eq!(lines(&output), ["{", "  \"token\": \"a\"", "}"]);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        server.requests().len(),
        1,
        "an EventSource would have come back with Last-Event-ID: 2 after 200 ms"
    );
}
