//! `stream_client` held to the rules of `EventSource` (WHATWG HTML, "Server-sent
//! events") by scripted servers that answer with chosen bytes: when to stop for
//! good, how long to wait before reconnecting, what `Last-Event-ID` to send, what to
//! do with an event cut short, how to read the format, how to follow redirects.
//!
//! Each test starts a `ScriptedServer`, runs the client program against it as a
//! child process (`cargo test` builds it; after a change, `cargo build --examples`),
//! and checks what the client printed and what it asked.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use wsse_testkit::ProgramProcess;
use wsse_testkit::scripted::{RecordedRequest, Reply, ScriptedServer};

/// How long a client run may take.
const RUN_LIMIT: Duration = Duration::from_secs(15);

/// A scripted server on a runtime of its own (dropped with it).
struct Script {
    server: ScriptedServer,
    _runtime: tokio::runtime::Runtime,
}

impl Script {
    fn start(replies: Vec<Reply>) -> Script {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a Tokio runtime");
        let server = runtime
            .block_on(ScriptedServer::start(replies))
            .expect("the scripted server starts");
        Script {
            server,
            _runtime: runtime,
        }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }
}

/// What a run of the client left behind.
struct Run {
    status: ExitStatus,
    lines: Vec<String>,
    client: ProgramProcess,
}

impl Run {
    fn stderr(&self) -> String {
        self.client.stderr_lines().join("\n")
    }
}

/// Runs `stream_client URL ARGUMENTS...` until it exits.
fn run(url: &str, arguments: &[&str]) -> Run {
    let mut all = vec![url];
    all.extend_from_slice(arguments);
    let mut client = ProgramProcess::spawn("stream_client", &all).expect("the client starts");
    let lines = client.lines_until(Instant::now() + RUN_LIMIT);
    let status = client
        .wait_with_timeout(Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "stream_client is still running after {} s; printed {lines:?}; log:\n{}",
                RUN_LIMIT.as_secs(),
                client.stderr_tail(20)
            )
        });
    Run {
        status,
        lines,
        client,
    }
}

/// The `--json` line of one event.
fn event_line(event_type: &str, data: &str, id: &str) -> String {
    let string = |text: &str| serde_json::Value::from(text).to_string();
    format!(
        r#"{{"type":{},"data":{},"id":{}}}"#,
        string(event_type),
        string(data),
        string(id)
    )
}

/// How long the client waited between the end of connection `index` and the start
/// of the next.
fn reconnect_delay(requests: &[RecordedRequest], index: usize) -> Duration {
    let closed = requests[index].closed_at.expect("the server closed it");
    requests[index + 1]
        .accepted_at
        .saturating_duration_since(closed)
}

// ANCHOR: stop_rules
#[test]
fn a_204_stops_the_client_for_good() {
    let script = Script::start(vec![Reply::status("204 No Content", &[])]);
    let run = run(&script.url("/events"), &["--json"]);
    assert!(!run.status.success(), "{:?}", run.status);
    assert!(run.stderr().contains("204 No Content"), "{}", run.stderr());
    assert!(run.lines.is_empty(), "{:?}", run.lines);
    assert_eq!(script.requests().len(), 1, "no reconnection after a 204");
}

#[test]
fn a_status_that_is_not_200_stops_the_client() {
    for status in [
        "500 Internal Server Error",
        "404 Not Found",
        "503 Service Unavailable",
        // Success, but not the 200 the standard asks for: an event stream all the same
        // is not accepted.
        "202 Accepted",
        "206 Partial Content",
    ] {
        let script = Script::start(vec![Reply::status(
            status,
            &[("Content-Type", "text/event-stream")],
        )]);
        let run = run(&script.url("/events"), &[]);
        assert!(!run.status.success(), "{status}");
        let code = &status[..3];
        assert!(
            run.stderr().contains(&format!("answered {code}")),
            "{}",
            run.stderr()
        );
        assert_eq!(script.requests().len(), 1, "{status}: no reconnection");
    }
}

#[test]
fn a_wrong_content_type_stops_the_client_with_an_error() {
    for (content_type, shown) in [
        ("Content-Type: text/plain\r\n", "\"text/plain\""),
        (
            "Content-Type: application/json; charset=utf-8\r\n",
            "application/json",
        ),
        ("", "(none)"),
    ] {
        let script = Script::start(vec![Reply::raw(format!(
            "HTTP/1.1 200 OK\r\n{content_type}Content-Length: 11\r\n\r\ndata: hi\n\n\n"
        ))]);
        let run = run(&script.url("/events"), &["--json"]);
        assert!(!run.status.success(), "{content_type}");
        let log = run.stderr();
        assert!(log.contains("not text/event-stream"), "{log}");
        assert!(log.contains(shown), "{log}");
        assert!(run.lines.is_empty(), "{:?}", run.lines);
        assert_eq!(script.requests().len(), 1);
    }
}
// ANCHOR_END: stop_rules

#[test]
fn content_type_parameters_and_case_are_accepted() {
    let script = Script::start(vec![Reply::raw(
        "HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream; charset=UTF-8\r\n\
         Connection: close\r\n\r\ndata: accepted\n\n",
    )]);
    let run = run(&script.url("/events"), &["--json", "--max-events", "1"]);
    assert!(run.status.success(), "{}", run.stderr());
    assert_eq!(run.lines, [event_line("message", "accepted", "")]);
}

#[test]
fn every_request_asks_for_an_event_stream_without_caching() {
    let script = Script::start(vec![
        Reply::event_stream("retry: 20\ndata: one\n\n"),
        Reply::event_stream("data: two\n\n"),
    ]);
    let run = run(&script.url("/events?x=1"), &["--max-events", "2"]);
    assert!(run.status.success(), "{}", run.stderr());
    assert_eq!(run.lines, ["message: one", "message: two"]);
    let requests = script.requests();
    assert_eq!(requests.len(), 2);
    for request in requests {
        assert_eq!(request.method, "GET");
        assert_eq!(request.target, "/events?x=1");
        assert_eq!(request.header("accept"), Some("text/event-stream"));
        assert_eq!(request.header("cache-control"), Some("no-cache"));
        assert_eq!(
            request.header("host"),
            Some(script.server.addr().to_string().as_str())
        );
    }
}

// ANCHOR: retry_rules
#[test]
fn retry_sets_the_reconnection_delay() {
    let script = Script::start(vec![
        Reply::event_stream("retry: 400\ndata: one\n\n"),
        Reply::event_stream("data: two\n\n"),
    ]);
    let run = run(&script.url("/events"), &["--max-events", "2"]);
    assert!(run.status.success(), "{}", run.stderr());
    let delay = reconnect_delay(&script.requests(), 0);
    // At least what the server asked for; well below the default of 3 s (generous,
    // for a loaded machine).
    assert!(delay >= Duration::from_millis(390), "{delay:?}");
    assert!(delay < Duration::from_millis(2000), "{delay:?}");
    assert!(
        run.stderr().contains("reconnecting in 400 ms"),
        "{}",
        run.stderr()
    );
}

#[test]
fn without_retry_the_client_waits_three_seconds() {
    let script = Script::start(vec![
        Reply::event_stream("data: one\n\n"),
        Reply::event_stream("data: two\n\n"),
    ]);
    let run = run(&script.url("/events"), &["--max-events", "2"]);
    assert!(run.status.success(), "{}", run.stderr());
    let delay = reconnect_delay(&script.requests(), 0);
    assert!(delay >= Duration::from_millis(2990), "{delay:?}");
    assert!(delay < Duration::from_millis(6000), "{delay:?}");
}

#[test]
fn the_test_only_cap_shortens_a_long_retry() {
    let script = Script::start(vec![
        Reply::event_stream("retry: 3000\ndata: one\n\n"),
        Reply::event_stream("data: two\n\n"),
    ]);
    let run = run(
        &script.url("/events"),
        &["--max-events", "2", "--max-retry-delay-ms", "50"],
    );
    assert!(run.status.success(), "{}", run.stderr());
    let delay = reconnect_delay(&script.requests(), 0);
    assert!(delay < Duration::from_millis(1500), "{delay:?}");
}
// ANCHOR_END: retry_rules

// ANCHOR: resume_rules
#[test]
fn last_event_id_is_sent_after_a_drop_and_is_the_last_id_seen() {
    let script = Script::start(vec![
        Reply::event_stream("retry: 20\nid: 1\ndata: a\n\nid: 2\ndata: b\n\n"),
        // The id field may come after the data: it belongs to the same event.
        Reply::event_stream("data: c\nid: 7\n\n"),
        Reply::event_stream("data: d\n\n"),
    ]);
    let run = run(&script.url("/events"), &["--json", "--max-events", "4"]);
    assert!(run.status.success(), "{}", run.stderr());
    assert_eq!(
        run.lines,
        [
            event_line("message", "a", "1"),
            event_line("message", "b", "2"),
            event_line("message", "c", "7"),
            // An event without id keeps the last one.
            event_line("message", "d", "7"),
        ]
    );
    let sent: Vec<Option<String>> = script
        .requests()
        .iter()
        .map(|request| request.header("last-event-id").map(str::to_owned))
        .collect();
    assert_eq!(sent, [None, Some("2".to_owned()), Some("7".to_owned())]);
}

#[test]
fn an_empty_id_clears_the_last_event_id() {
    let script = Script::start(vec![
        Reply::event_stream("retry: 20\nid: 5\ndata: a\n\nid:\ndata: b\n\n"),
        Reply::event_stream("data: c\n\n"),
    ]);
    let run = run(&script.url("/events"), &["--json", "--max-events", "3"]);
    assert!(run.status.success(), "{}", run.stderr());
    assert_eq!(
        run.lines,
        [
            event_line("message", "a", "5"),
            event_line("message", "b", ""),
            event_line("message", "c", ""),
        ]
    );
    let requests = script.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].header("last-event-id"),
        None,
        "no header once cleared"
    );
}

#[test]
fn an_event_cut_before_its_blank_line_is_discarded() {
    let script = Script::start(vec![
        // The second event has no blank line when the connection ends.
        Reply::event_stream("retry: 20\nid: 1\ndata: whole\n\nid: 2\nevent: partial\ndata: half"),
        Reply::event_stream("data: next\n\n"),
    ]);
    let run = run(&script.url("/events"), &["--json", "--max-events", "2"]);
    assert!(run.status.success(), "{}", run.stderr());
    assert_eq!(
        run.lines,
        [
            event_line("message", "whole", "1"),
            // Neither the data, the type nor the id of the half event survived.
            event_line("message", "next", "1"),
        ]
    );
    assert_eq!(script.requests()[1].header("last-event-id"), Some("1"));
}
// ANCHOR_END: resume_rules

// ANCHOR: parsing_rules
#[test]
fn the_whatwg_parsing_cases() {
    let body: &[u8] = b"\xEF\xBB\xBFdata: after the byte order mark\n\n\
        data: cr\rdata: crlf\r\ndata: lf\n\r\n\
        id: 3\ndata: id 3\n\n\
        id: 4\x005\ndata: an id with NULL is ignored\n\n\
        data:  one space of two is stripped\n\n\
        data:no space\n\n\
        data\n\n\
        colour: red\ndata: unknown fields are ignored\n\n\
        : a comment\ndata: after a comment\n: another\n\n\
        event: custom\ndata: a type\n\n\
        \xEF\xBB\xBFdata: a later mark starts an unknown field\n\n\
        data: first line\ndata:\ndata: third line\n\n";
    // Three bytes at a time: lines, CRLFs and the mark arrive split.
    let script = Script::start(vec![
        Reply::event_stream(body).in_pieces(3, Duration::from_millis(1)),
    ]);
    let run = run(&script.url("/events"), &["--json", "--max-events", "11"]);
    assert!(run.status.success(), "{}", run.stderr());
    assert_eq!(
        run.lines,
        [
            event_line("message", "after the byte order mark", ""),
            event_line("message", "cr\ncrlf\nlf", ""),
            event_line("message", "id 3", "3"),
            event_line("message", "an id with NULL is ignored", "3"),
            event_line("message", " one space of two is stripped", "3"),
            event_line("message", "no space", "3"),
            event_line("message", "", "3"),
            event_line("message", "unknown fields are ignored", "3"),
            event_line("message", "after a comment", "3"),
            event_line("custom", "a type", "3"),
            event_line("message", "first line\n\nthird line", "3"),
        ]
    );
}
// ANCHOR_END: parsing_rules

// ANCHOR: redirect_rules
#[test]
fn redirects_are_followed_and_each_reconnection_starts_over_from_the_url() {
    let script = Script::start(vec![
        Reply::status("302 Found", &[("Location", "/moved")]),
        Reply::event_stream("retry: 20\nid: 1\ndata: one\n\n"),
        Reply::status("307 Temporary Redirect", &[("Location", "again?x=1")]),
        Reply::event_stream("data: two\n\n"),
    ]);
    let run = run(
        &script.url("/stream/events"),
        &["--json", "--max-events", "2"],
    );
    assert!(run.status.success(), "{}", run.stderr());
    assert_eq!(
        run.lines,
        [
            event_line("message", "one", "1"),
            event_line("message", "two", "1")
        ]
    );
    let requests = script.requests();
    let targets: Vec<&str> = requests
        .iter()
        .map(|request| request.target.as_str())
        .collect();
    assert_eq!(
        targets,
        [
            "/stream/events",
            "/moved",
            "/stream/events",
            "/stream/again?x=1"
        ]
    );
    // The reconnection's Last-Event-ID goes through the redirect too.
    assert_eq!(requests[3].header("last-event-id"), Some("1"));
    assert!(
        run.stderr().contains("redirected (302)"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_redirect_loop_stops_after_ten_redirects() {
    let script = Script::start(vec![Reply::status("302 Found", &[("Location", "/loop")])]);
    let run = run(&script.url("/events"), &[]);
    assert!(!run.status.success());
    assert!(
        run.stderr().contains("more than 10 redirects"),
        "{}",
        run.stderr()
    );
    assert_eq!(script.requests().len(), 11, "the request and ten redirects");
}
// ANCHOR_END: redirect_rules

#[test]
fn a_refused_connection_is_retried_not_fatal() {
    // A port nothing listens on (it was free a moment ago): connecting fails, which
    // is a network error, so the client keeps trying after the reconnection time.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let mut client = ProgramProcess::spawn(
        "stream_client",
        &[
            &format!("http://{free}/events"),
            "--max-retry-delay-ms",
            "50",
        ],
    )
    .expect("the client starts");
    let retried = client.wait_for_stderr("connecting to", Duration::from_secs(5)) && {
        std::thread::sleep(Duration::from_millis(400));
        client
            .stderr_lines()
            .iter()
            .filter(|line| line.contains("cannot connect"))
            .count()
            >= 3
    };
    assert!(client.try_wait().is_none(), "the client gave up");
    client.kill();
    assert!(retried, "{}", client.stderr_tail(10));
}
