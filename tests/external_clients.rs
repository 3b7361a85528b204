//! Clients this project did not write, against every server: Python's `websockets`
//! library for the chat, curl for an event stream. If they agree with our servers,
//! so do real clients, not only the test kit that shares our reading of the RFCs.
//!
//! A missing tool fails the test when `CI` is set (`.ci/run` installs both);
//! otherwise the test says what it skipped and how to install it.

use std::path::Path;
use std::process::Command;

use wsse_testkit::{SERVERS, ServerProcess, programs_present, unless_it_runs};

/// Whether `program arguments...` runs successfully; if not, fail under CI or skip.
fn tool_available(what: &str, program: &str, arguments: &[&str], install: &str) -> bool {
    programs_present(what, &[(unless_it_runs(what, program, arguments), install)])
}

#[test]
fn python_websockets_chat_round_trip() {
    if !tool_available(
        "Python's websockets library",
        "python3",
        &["-c", "import websockets"],
        "pip install websockets==17.4",
    ) {
        return;
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/testkit/external/websockets_client.py");
    for server in SERVERS {
        let process = ServerProcess::spawn(server, &[]).expect("the server starts");
        let url = format!("ws://{}/ws", process.addr());
        let output = Command::new("python3")
            .arg(&script)
            .arg(&url)
            .output()
            .expect("python3 runs");
        let report = String::from_utf8_lossy(&output.stdout);
        // The script checks welcome, broadcast, ping/pong and close 1000 itself and
        // exits non-zero with its reason on the first check that fails.
        assert!(
            output.status.success(),
            "{server}: websockets client failed: {report}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            report.contains("\"close_code\": 1000"),
            "{server}: {report}"
        );
    }
}

#[test]
fn curl_reads_the_whole_token_stream() {
    if !tool_available("curl", "curl", &["--version"], "apt-get install curl") {
        return;
    }
    let prompt = "why do clients mask";
    let expected = wsse_app::tokens::answer_tokens(prompt);
    for server in SERVERS {
        let process =
            ServerProcess::spawn(server, &["--token-interval-ms", "1"]).expect("the server starts");
        let url = format!(
            "{}/stream?prompt=why%20do%20clients%20mask",
            process.base_url()
        );
        // -N: no buffering; curl exits when the server ends the response after [DONE].
        let output = Command::new("curl")
            .args([
                "-sSN",
                "--max-time",
                "20",
                "-H",
                "Accept: text/event-stream",
                &url,
            ])
            .output()
            .expect("curl runs");
        assert!(
            output.status.success(),
            "{server}: curl failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut parser = wsse_wire::sse::EventStreamParser::new();
        let events: Vec<String> = parser
            .feed(&output.stdout)
            .into_iter()
            .filter_map(|item| match item {
                // The heartbeat event is the connection's, not one of the answer's.
                wsse_wire::sse::Item::Event(event)
                    if event.event_type != wsse_app::sse::HEARTBEAT_EVENT =>
                {
                    Some(event.data)
                }
                _ => None,
            })
            .collect();
        let (done, tokens) = events.split_last().expect("at least [DONE]");
        assert_eq!(done, wsse_app::tokens::DONE, "{server}: the last event");
        let tokens: Vec<String> = tokens
            .iter()
            .map(|data| {
                let value: serde_json::Value = serde_json::from_str(data).expect("JSON data");
                value["token"].as_str().expect("a token").to_owned()
            })
            .collect();
        assert_eq!(tokens, expected, "{server}: the tokens curl received");
    }
}
