//! `cargo xtask screenshots`: the web page in headless Chromium, mid-chat and
//! mid-stream, for the book.
//!
//! Starts the axum server on a free port, opens the page twice (ada and bob), has
//! them chat, then starts a slow token stream in ada's page, and photographs ada's
//! page at each stage. The pictures go to `target/screenshots/` and are copied into
//! `book/src/generated/`, where `book/src/app/protocol.md` shows them. They carry
//! the time of day, so each run changes them: run it when the page changes, not on
//! every build.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use wsse_browser::{AppPage, Chrome, Driver, INSTALL_COMMAND, SessionOptions};
use wsse_testkit::ServerProcess;

use crate::process::{cargo, describe, run_streamed, workspace_root};

/// The server photographed; every server serves the same page.
const SERVER: &str = "axum";

/// The window: wide enough for the page's three panes side by side.
const WINDOW: SessionOptions = SessionOptions {
    width: 1280,
    height: 720,
};

/// The pause between two tokens: slow enough to catch the stream half-way.
const TOKEN_INTERVAL_MS: &str = "120";

const PROMPT: &str = "When should I pick SSE over WebSocket?";

pub fn run() -> ExitCode {
    match take() {
        Ok(written) => {
            for path in written {
                println!("screenshots: wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("screenshots: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Takes both pictures; returns every file written.
fn take() -> Result<Vec<PathBuf>, String> {
    let chrome =
        Chrome::find().map_err(|reason| format!("{reason}; install it with: {INSTALL_COMMAND}"))?;
    let mut build = cargo(["build", "--example", SERVER]);
    match run_streamed(&mut build) {
        Ok(status) if status.success() => {}
        _ => return Err(format!("`{}` failed", describe(&build))),
    }
    let binary = workspace_root().join(format!("target/debug/examples/{SERVER}"));
    let server =
        ServerProcess::spawn_binary(SERVER, &binary, &["--token-interval-ms", TOKEN_INTERVAL_MS])?;
    let driver = Driver::start(&chrome)?;
    let (ada_browser, bob_browser) = (driver.session_with(&WINDOW)?, driver.session_with(&WINDOW)?);
    let ada = AppPage::open(&ada_browser, &server.base_url())?;
    let bob = AppPage::open(&bob_browser, &server.base_url())?;

    ada.join("ada")?;
    bob.join("bob")?;
    ada.wait_online(2, Duration::from_secs(10))?;
    let conversation = [
        (&ada, "ada", "hi bob! this line went over a WebSocket"),
        (&bob, "bob", "and the mirror on the right got it over SSE"),
        (
            &ada,
            "ada",
            "<b>markup</b> stays text: no HTML from the wire",
        ),
    ];
    for (page, name, text) in conversation {
        page.send(text)?;
        ada.wait_for_message(false, name, text, Duration::from_secs(10))?;
        ada.wait_for_message(true, name, text, Duration::from_secs(10))?;
    }

    let output = workspace_root().join("target/screenshots");
    let chat = output.join("chat.png");
    ada.session.save_screenshot(&chat)?;

    ada.start_stream(PROMPT)?;
    let answer = wsse_app::tokens::answer_tokens(PROMPT).concat();
    let half = answer.len() / 2;
    ada.session.wait_for_text_where(
        "#tokens",
        "half the answer",
        Duration::from_secs(30),
        |shown| shown.len() >= half,
    )?;
    let stream = output.join("stream.png");
    ada.session.save_screenshot(&stream)?;

    let book = workspace_root().join("book/src/generated");
    let copies = [
        (chat.clone(), "page-chat.png"),
        (stream.clone(), "page-stream.png"),
    ];
    let mut written = vec![chat, stream];
    for (source, name) in copies {
        written.push(copy(&source, &book.join(name))?);
    }
    Ok(written)
}

fn copy(source: &Path, destination: &Path) -> Result<PathBuf, String> {
    std::fs::copy(source, destination).map_err(|error| {
        format!(
            "cannot copy {} to {}: {error}",
            source.display(),
            destination.display()
        )
    })?;
    Ok(destination.to_path_buf())
}
