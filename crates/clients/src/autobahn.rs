//! The Autobahn|Testsuite client loop, on the library the chat client uses
//! (tokio-tungstenite), so `cargo xtask autobahn` holds that library to the suite.
//!
//! `wstest -m fuzzingserver` drives a client through three URLs: `/getCaseCount`
//! answers with the number of cases, `/runCase?case=N&agent=NAME` plays one case
//! (the client echoes every message until the server closes), and
//! `/updateReports?agent=NAME` writes the reports.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

/// How long one case may take; the slowest (16 MiB messages) take seconds.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs every case of the fuzzing server at `base` (`ws://IP:PORT`) under `agent`,
/// then asks it to write the reports. Returns how many cases ran.
pub async fn run_all_cases(base: &str, agent: &str) -> Result<u32, String> {
    let base = base.trim_end_matches('/');
    let count = case_count(base).await?;
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match tokio::time::timeout(CASE_TIMEOUT, echo_case(&url)).await {
            Ok(Ok(())) => {}
            // The report tells what went wrong; the next case still runs.
            Ok(Err(error)) => eprintln!("case {case}: {error}"),
            Err(_) => eprintln!("case {case}: no end after {} s", CASE_TIMEOUT.as_secs()),
        }
    }
    let url = format!("{base}/updateReports?agent={agent}");
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    while let Some(Ok(_)) = socket.next().await {}
    Ok(count)
}

/// `/getCaseCount` sends the number of cases as one text message.
async fn case_count(base: &str) -> Result<u32, String> {
    let url = format!("{base}/getCaseCount");
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    let Some(Ok(Message::Text(text))) = socket.next().await else {
        return Err("getCaseCount sent no text message".to_owned());
    };
    text.as_str()
        .trim()
        .parse()
        .map_err(|_| format!("getCaseCount sent {:?}, not a number", text.as_str()))
}

// ANCHOR: echo_case
/// One case: echo every text and binary message until the connection ends.
/// tungstenite answers pings and close frames by itself (on the next read, which
/// this loop does at once); what it leaves to us is the close frame that answers
/// a protocol error, as in the servers' glue.
async fn echo_case(url: &str) -> Result<(), String> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    while let Some(received) = socket.next().await {
        let answer = match received {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => socket.send(message).await,
            Ok(_) => Ok(()),
            Err(error) => {
                if let Some(code) = close_code_for(&error) {
                    let frame = CloseFrame {
                        code,
                        reason: "".into(),
                    };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    // Read until the server's reply, or until the connection ends.
                    while let Some(Ok(_)) = socket.next().await {}
                }
                return Ok(());
            }
        };
        if answer.is_err() {
            return Ok(()); // the server closed; the next read reports the end
        }
    }
    Ok(())
}
// ANCHOR_END: echo_case

/// The close code that answers an error, if the peer can still hear one.
fn close_code_for(error: &Error) -> Option<CloseCode> {
    match error {
        Error::Capacity(_) => Some(CloseCode::Size),
        Error::Utf8(_) => Some(CloseCode::Invalid),
        Error::Protocol(_) => Some(CloseCode::Protocol),
        _ => None,
    }
}
