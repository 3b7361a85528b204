//! The web page and the book in a real browser: Debian's headless Chromium, driven
//! over WebDriver by `wsse-browser`.
//!
//! The page is checked against every server: two pages chatting (names, messages,
//! the online count following joins and leaves), markup in a message shown as text
//! and never run, the token stream shown in order and closed on `[DONE]`, the chat and
//! the `/events` mirror reconnecting through the test kit's [`FlakyProxy`] and ending
//! with no gap and no duplicate, the mirror noticing a connection that went silent
//! (no heartbeat events any more) and resuming, a refused WebSocket reported in
//! words, and with `--auth` the page signing in (the ticket as a subprotocol, the
//! mirror on the cookie), a name one browser holds refused to another, and Sign out
//! closing the chat with 4001. Once, the page fails over: two instances on one Redis behind nginx
//! (`deploy/nginx/wsse.conf`), the instance holding the page's chat killed while
//! messages are posted, and the chat and the mirror end with every message once, in
//! order. The book
//! is checked once: every page loads with no console error and no failed request,
//! every image (the SVG diagrams, the page's screenshots) decodes, and search finds
//! `Sec-WebSocket-Accept`.
//!
//! A missing Chromium fails the tests when `CI` is set (`.ci/run` installs it);
//! otherwise they print that they were skipped and the install command. A check that
//! fails leaves screenshots of its pages in `target/browser/`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use wsse_browser::{AppPage, Chrome, Driver, INSTALL_COMMAND, Session, StaticFiles};
use wsse_testkit::{Faults, FlakyProxy, SERVERS, ServerProcess};

/// How long any one thing the page should do may take.
const WAIT: Duration = Duration::from_secs(10);

/// The two tests take turns: on a machine with two cores, two browsers busy at
/// once make every wait longer.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Chromium and chromedriver, or `None` after printing why the tests are skipped
/// (and failing instead under CI).
fn chrome_or_skip(what: &str) -> Option<Chrome> {
    match Chrome::find() {
        Ok(chrome) => Some(chrome),
        Err(reason) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{reason}: the browser tests need Chromium; install it with: {INSTALL_COMMAND}"
            );
            eprintln!("skipped: {what}: {reason}; install it with: {INSTALL_COMMAND}");
            None
        }
    }
}

/// `target/browser/`: screenshots of failed checks and of each server's chat.
fn artifacts_dir() -> PathBuf {
    // target/debug/deps/browser-HASH -> target
    std::env::current_exe()
        .ok()
        .and_then(|executable| Some(executable.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("browser")
}

/// A check of the page against one server: `Ok` with a short note on what it saw.
type Check = fn(&[Session; 2], &str) -> Result<String, String>;

const CHECKS: &[(&str, Check)] = &[
    ("two pages chat", two_pages_chat),
    ("markup shows as text", markup_is_text),
    ("token stream closes on [DONE]", token_stream),
    ("reconnects through a flaky proxy", flaky_proxy),
    ("notices a silent /events", silent_mirror),
    ("refused WebSocket in words", refused_websocket),
    ("permessage-deflate where offered", compression),
    ("compressed chat across cuts", compressed_reconnect),
    ("signs in with --auth", signs_in),
];

#[test]
fn the_page_works_in_chromium_against_every_server() {
    let Some(chrome) = chrome_or_skip("browser tests of the page") else {
        return;
    };
    let _alone = ONE_AT_A_TIME.lock();
    let driver = Driver::start(&chrome).expect("chromedriver starts");
    // Two browsers for every check (most use one): a check opens the page of its
    // own server in them, which leaves whatever they showed before.
    let browsers =
        [driver.session(), driver.session()].map(|session| session.expect("Chromium starts"));
    let mut failures = Vec::new();
    for server in SERVERS {
        let server_started = Instant::now();
        for (name, check) in CHECKS {
            let started = Instant::now();
            let result = check(&browsers, server);
            let seconds = started.elapsed().as_secs_f64();
            match result {
                Ok(note) => {
                    eprintln!("browser: {server:<8} {name:<34} ok      {seconds:4.1} s  {note}");
                }
                Err(error) => {
                    eprintln!("browser: {server:<8} {name:<34} FAILED  {seconds:4.1} s: {error}");
                    failures.push(format!("{server}: {name}: {error}"));
                }
            }
        }
        eprintln!(
            "browser: {server:<8} {:<34} {:.1} s",
            "(all checks)",
            server_started.elapsed().as_secs_f64()
        );
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Runs `check`; if it fails, saves a screenshot of each page into `target/browser/`
/// and names them in the error.
fn with_screenshots<T>(
    label: &str,
    pages: &[&AppPage],
    check: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    check().map_err(|error| {
        let mut saved = Vec::new();
        for (index, page) in pages.iter().enumerate() {
            let path = artifacts_dir().join(format!("{label}-failed-{index}.png"));
            if page.session.save_screenshot(&path).is_ok() {
                saved.push(path.display().to_string());
            }
        }
        if saved.is_empty() {
            error
        } else {
            format!("{error} (screenshots: {})", saved.join(", "))
        }
    })
}

/// Two pages, ada and bob: each sees the other's messages under the right name, in
/// the chat and in the mirror, and the online count on both follows every join and
/// leave (Disconnect, and a page that navigates away).
fn two_pages_chat(browsers: &[Session; 2], server: &str) -> Result<String, String> {
    let process = ServerProcess::spawn(server, &[])?;
    let ada = AppPage::open(&browsers[0], &process.base_url())?;
    let bob = AppPage::open(&browsers[1], &process.base_url())?;
    with_screenshots(&format!("{server}-chat"), &[&ada, &bob], || {
        ada.join("ada")?;
        ada.wait_online(1, WAIT)?;
        bob.join("bob")?;
        bob.wait_online(2, WAIT)?;
        ada.wait_online(2, WAIT)?;

        ada.send("hello from ada")?;
        let shown = bob.wait_for_message(false, "ada", "hello from ada", WAIT)?;
        ensure(
            shown.seq == 1,
            format!("the first message has seq {}", shown.seq),
        )?;
        ada.wait_for_message(false, "ada", "hello from ada", WAIT)?;
        bob.wait_for_message(true, "ada", "hello from ada", WAIT)?;
        bob.send("hi ada, bob here")?;
        ada.wait_for_message(false, "bob", "hi ada, bob here", WAIT)?;
        ada.wait_for_message(true, "bob", "hi ada, bob here", WAIT)?;
        ada.session
            .save_screenshot(&artifacts_dir().join(format!("{server}-chat.png")))?;

        bob.disconnect()?;
        bob.session
            .wait_for_text("#state", "closed: you disconnected", WAIT)?;
        ada.wait_online(1, WAIT)?;
        bob.join("bob")?;
        bob.wait_online(2, WAIT)?;
        ada.wait_online(2, WAIT)?;
        // Leaving the page closes its WebSocket: a leave like any other.
        bob.session.goto("about:blank")?;
        ada.wait_online(1, WAIT)?;
        Ok(String::new())
    })
}

/// With `--auth`: a page signs in on Connect and opens the chat with its ticket as a
/// subprotocol (answered `wsse`) and the mirror with its cookie, which no script can
/// read; a second browser cannot take the same name; a reloaded page is still signed
/// in; Sign out closes the chat with 4001 and stops the mirror, while the other
/// browser chats on; afterwards the page's own POST /messages is refused with 401.
fn signs_in(browsers: &[Session; 2], server: &str) -> Result<String, String> {
    let process = ServerProcess::spawn(server, &["--auth"])?;
    let ada = AppPage::open_until(&browsers[0], &process.base_url(), "waiting for sign-in")?;
    let bob = AppPage::open_until(&browsers[1], &process.base_url(), "waiting for sign-in")?;
    with_screenshots(&format!("{server}-auth"), &[&ada, &bob], || {
        ensure(
            ada.signed_in_as()? == "nobody",
            format!("before Connect #session shows {:?}", ada.signed_in_as()?),
        )?;
        ada.join("ada")?;
        ada.session.wait_for_text("#session", "ada", WAIT)?;
        ada.session.wait_for_text("#mirror-state", "open", WAIT)?;
        let protocol = ada.session.execute("return chat.socket.protocol;", &[])?;
        ensure(
            protocol == "wsse",
            format!("the chat's WebSocket agreed on the protocol {protocol}, expected \"wsse\""),
        )?;
        let cookies = ada.session.execute("return document.cookie;", &[])?;
        ensure(
            !cookies
                .as_str()
                .unwrap_or_default()
                .contains("wsse_session"),
            format!("a script can read the session cookie: {cookies}"),
        )?;

        // bob's browser cannot be ada; under its own name it chats with her.
        bob.session.clear("#name")?;
        bob.session.type_text("#name", "ada")?;
        bob.session.click("#connect")?;
        bob.session
            .wait_for_text("#state", "closed: not signed in", WAIT)?;
        ensure(
            bob.notes()?
                .iter()
                .any(|note| note.contains("another session has this name")),
            format!("no note of the taken name: {:?}", bob.notes()?),
        )?;
        bob.join("bob")?;
        ada.send("hello from ada")?;
        bob.wait_for_message(false, "ada", "hello from ada", WAIT)?;
        bob.wait_for_message(true, "ada", "hello from ada", WAIT)?;

        // Loaded again, the page asks who it is and opens the mirror with the cookie.
        let ada = AppPage::open(ada.session, &process.base_url())?;
        ada.session.wait_for_text("#session", "ada", WAIT)?;
        ada.join("ada")?;
        bob.wait_online(2, WAIT)?;

        ada.sign_out()?;
        ada.session
            .wait_for_text_where("#state", "the chat closed with 4001", WAIT, |state| {
                state.starts_with("closed: your session ended (4001")
            })?;
        ada.session.wait_for_text("#session", "nobody", WAIT)?;
        ada.session
            .wait_for_text("#mirror-state", "signed out", WAIT)?;
        bob.wait_online(1, WAIT)?;
        bob.send("ada left")?;
        bob.wait_for_message(false, "bob", "ada left", WAIT)?;
        let status = ada.session.execute(
            "return fetch('/messages', { method: 'POST', headers: { 'Content-Type': 'application/json' },
               body: JSON.stringify({ content: 'after signing out' }) }).then((response) => response.status);",
            &[],
        )?;
        ensure(
            status == 401,
            format!("POST /messages after signing out answered {status}, expected 401"),
        )?;
        Ok(String::new())
    })
}

/// A name and messages full of markup show as those characters, in the chat and the
/// mirror of both pages, and nothing runs: no `alert` (the recorder replaces it and
/// counts calls), no `img` or `script` element in the lists, no request for the
/// image `x`.
fn markup_is_text(browsers: &[Session; 2], server: &str) -> Result<String, String> {
    const NAME: &str = "<img src=y onerror=alert(3)>";
    const MESSAGES: [&str; 2] = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script><b>bold?</b>",
    ];
    let process = ServerProcess::spawn(server, &[])?;
    let sender = AppPage::open(&browsers[0], &process.base_url())?;
    let reader = AppPage::open(&browsers[1], &process.base_url())?;
    with_screenshots(&format!("{server}-markup"), &[&sender, &reader], || {
        sender.join(NAME)?;
        reader.join("reader")?;
        let notes = sender.notes()?;
        ensure(
            notes.iter().any(|note| note == &format!("you are {NAME}")),
            format!("the welcome note shows the name as text: {notes:?}"),
        )?;
        for message in MESSAGES {
            sender.send(message)?;
        }
        for page in [&sender, &reader] {
            for mirror in [false, true] {
                for message in MESSAGES {
                    page.wait_for_message(mirror, NAME, message, WAIT)?;
                }
            }
        }
        // An image's error handler runs once its load fails: give it time to.
        std::thread::sleep(Duration::from_millis(500));
        for (who, page) in [("sender", &sender), ("reader", &reader)] {
            let alerts = page.alerts()?;
            ensure(
                alerts.is_empty(),
                format!("the {who}'s page called alert: {alerts:?}"),
            )?;
            let injected = page.session.execute(
                "return {
                   elements: document.querySelectorAll('#messages img, #messages script, #messages i, \
                     #mirror img, #mirror script, #messages li b b, #mirror li b b').length,
                   images: document.images.length,
                   requests: performance.getEntriesByType('resource')
                     .filter((entry) => /\\/[xy]$/.test(new URL(entry.name).pathname)).length,
                 };",
                &[],
            )?;
            ensure(
                injected == json!({ "elements": 0, "images": 0, "requests": 0 }),
                format!("markup became elements or requests in the {who}'s page: {injected}"),
            )?;
        }
        Ok(String::new())
    })
}

/// The stream pane shows the tokens of `/stream`, each one appended in order, and
/// stops on `[DONE]`.
///
/// That the browser does not reconnect afterwards is checked on the `EventSource`
/// itself, through the recorder's wrapper: the page's source must be `CLOSED`
/// (readyState 2) as soon as the pane says "done". A source that was not closed
/// would be `CONNECTING` (0) at that moment: the server ended the response, and the
/// browser waits `retry` (3 s) before asking again. A closed source never reconnects;
/// one more second of watching confirms that no new source was made and the one
/// source opened exactly once.
fn token_stream(browsers: &[Session; 2], server: &str) -> Result<String, String> {
    let prompt = "why do clients mask their frames?";
    let tokens = wsse_app::tokens::answer_tokens(prompt);
    let expected = tokens.concat();
    let process = ServerProcess::spawn(server, &["--token-interval-ms", "5"])?;
    let page = AppPage::open(&browsers[0], &process.base_url())?;
    with_screenshots(&format!("{server}-stream"), &[&page], || {
        // Every text the pane shows on the way, to check that it only ever grows by
        // the next tokens.
        page.session.execute(
            "const tokens = document.getElementById('tokens');
             window.__tokenTexts = [];
             new MutationObserver(() => window.__tokenTexts.push(tokens.textContent))
               .observe(tokens, { childList: true, characterData: true, subtree: true });",
            &[],
        )?;
        page.start_stream(prompt)?;
        page.session.wait_for_text("#stream-state", "done", WAIT)?;
        let shown = page.tokens()?;
        ensure(
            shown == expected,
            format!("the pane shows {shown:?}, the answer is {expected:?}"),
        )?;
        let texts = page.session.execute("return window.__tokenTexts;", &[])?;
        let texts: Vec<&str> = texts
            .as_array()
            .map(|texts| texts.iter().filter_map(|text| text.as_str()).collect())
            .unwrap_or_default();
        let mut length = 0;
        for text in &texts {
            ensure(
                expected.starts_with(text) && text.len() >= length,
                format!("the pane showed {text:?}, not a growing start of the answer"),
            )?;
            length = text.len();
        }
        // One update per token as a rule; the browser may hand over two events in
        // one task on a busy machine, but an answer that shows up at once was not
        // streamed.
        ensure(
            texts.len() >= 2,
            format!("{} tokens arrived in {} update", tokens.len(), texts.len()),
        )?;

        let check_closed = |when: &str| -> Result<(), String> {
            let sources = page.event_sources()?;
            let streams: Vec<_> = sources
                .iter()
                .filter(|source| source["url"].as_str().unwrap_or("").contains("/stream"))
                .collect();
            ensure(
                streams.len() == 1,
                format!(
                    "{when}: the page made {} stream EventSources: {sources:?}",
                    streams.len()
                ),
            )?;
            ensure(
                streams[0]["readyState"] == 2 && streams[0]["opens"] == 1,
                format!(
                    "{when}: the stream's EventSource is not closed after one open: {}",
                    streams[0]
                ),
            )
        };
        check_closed("on [DONE]")?;
        std::thread::sleep(Duration::from_secs(1));
        check_closed("a second later")?;
        let states = page.states_seen("stream-state")?;
        ensure(
            states == ["idle", "connecting", "streaming", "done"],
            format!("the stream pane went through {states:?}"),
        )?;
        ensure(
            page.tokens()? == expected,
            "the tokens changed after [DONE]".to_owned(),
        )?;
        Ok(format!(
            "{} tokens in {} updates",
            tokens.len(),
            texts.len()
        ))
    })
}

/// With a [`FlakyProxy`] between the page and the server cutting connections after a
/// random number of bytes (so cuts land inside frames and events), the chat says it
/// is reconnecting and opens again, and so does the mirror; both lists end with every
/// message exactly once, in order.
///
/// The messages are posted with `POST /messages` straight to the server, so they are
/// accepted whatever the proxy does. Message 1 goes before the faults start: the
/// mirror then has a `Last-Event-ID` to resume from (a page that lost its first
/// connection before any event could not know where to resume).
fn flaky_proxy(browsers: &[Session; 2], server: &str) -> Result<String, String> {
    const MESSAGES: u64 = 24;
    // The cuts come after a number of bytes chosen for uncompressed frames; with
    // permessage-deflate the chat's frames shrink to a fraction of that, and the
    // WebSocket would rarely be cut. Compression has its own check below.
    let flags: &[&str] = if server == "scratch" {
        &["--no-deflate"]
    } else {
        &[]
    };
    let proxied = ProxiedPage::open(&browsers[0], server, flags)?;
    let (page, proxy, post) = (&proxied.page, &proxied.proxy, |seq| proxied.post(seq));
    with_screenshots(&format!("{server}-proxy"), &[page], || {
        proxied.join_and_see_message_1()?;

        proxy.set_faults(Faults {
            cut_randomly: Some((900, 1500)),
            ..Faults::default()
        });
        for seq in 2..=MESSAGES {
            post(seq)?;
            std::thread::sleep(Duration::from_millis(80));
        }
        // Let the clients come back on clean connections: the chat's backoff grows
        // with every failed attempt, the mirror waits `retry` (3 s) each time.
        proxy.set_faults(Faults::default());
        let cuts = proxy.cuts();
        ensure(cuts >= 2, format!("the proxy cut only {cuts} connections"))?;

        // In memory, the chat's first message is seq 1.
        for (list, first_seq) in shows_every_message(page, MESSAGES)? {
            ensure(first_seq == 1, format!("{list} starts at #{first_seq}"))?;
        }

        let chat_states = page.states_seen("state")?;
        let reconnecting = chat_states
            .iter()
            .position(|state| state.starts_with("reconnecting in "));
        ensure(
            reconnecting.is_some_and(|at| chat_states[at..].iter().any(|state| state == "open")),
            format!("the chat never showed reconnecting then open: {chat_states:?}"),
        )?;
        let notes = page.notes()?;
        ensure(
            notes
                .iter()
                .any(|note| note.starts_with("connection closed: ")),
            format!("no note of the drop in the chat: {notes:?}"),
        )?;
        let mirror_states = page.states_seen("mirror-state")?;
        let reconnecting = mirror_states
            .iter()
            .position(|state| state == "reconnecting");
        ensure(
            reconnecting.is_some_and(|at| mirror_states[at..].iter().any(|state| state == "open")),
            format!("the mirror never showed reconnecting then open: {mirror_states:?}"),
        )?;
        let episodes = |states: &[String], reconnecting: fn(&str) -> bool| {
            states
                .windows(2)
                .filter(|pair| !reconnecting(&pair[0]) && reconnecting(&pair[1]))
                .count()
        };
        Ok(format!(
            "{cuts} cuts; the chat reconnected {} times, the mirror {}",
            episodes(&chat_states, |state| state.starts_with("reconnecting in ")),
            episodes(&mirror_states, |state| state == "reconnecting"),
        ))
    })
}

/// With `--heartbeat 1`, the [`FlakyProxy`] makes the mirror's `/events` connection
/// go silent: no FIN, no RST, no byte. `EventSource` alone would wait forever; the
/// page's liveness timer sees no event (not even the heartbeat) for 2.5 s, closes
/// it and opens a new one with `?lastEventId=1`, and the mirror ends with the
/// messages posted meanwhile, each once, in order.
fn silent_mirror(browsers: &[Session; 2], server: &str) -> Result<String, String> {
    const MESSAGES: u64 = 5;
    let proxied = ProxiedPage::open(&browsers[0], server, &["--heartbeat", "1"])?;
    let (page, proxy, post) = (&proxied.page, &proxied.proxy, |seq| proxied.post(seq));
    with_screenshots(&format!("{server}-silent"), &[page], || {
        post(1)?;
        page.wait_for_message(true, "poster", "message 1", WAIT)?;
        let stalled_at = Instant::now();
        proxy.stall_all();
        for seq in 2..=MESSAGES {
            post(seq)?;
        }
        let last = format!("message {MESSAGES}");
        page.wait_for_message(true, "poster", &last, Duration::from_secs(20))?;
        let resumed_after = stalled_at.elapsed();
        let seqs: Vec<u64> = page
            .mirror_messages()?
            .iter()
            .map(|message| message.seq)
            .collect();
        let expected: Vec<u64> = (1..=MESSAGES).collect();
        ensure(seqs == expected, format!("#mirror shows seqs {seqs:?}"))?;
        let states = page.states_seen("mirror-state")?;
        ensure(
            states
                .iter()
                .any(|state| state.starts_with("no event for 2.5s, the stream is dead")),
            format!("the mirror never said the stream was dead: {states:?}"),
        )?;
        let sources = page.event_sources()?;
        ensure(
            sources.iter().any(|source| {
                source["url"]
                    .as_str()
                    .is_some_and(|url| url.ends_with("/events?lastEventId=1"))
                    && source["opens"] == 1
            }),
            format!("no new /events?lastEventId=1 opened: {sources:?}"),
        )?;
        ensure(
            proxy.stalls() >= 1,
            format!("the proxy stalled {} connections", proxy.stalls()),
        )?;
        Ok(format!(
            "resumed {:.1} s after the stall; new EventSources: {}",
            resumed_after.as_secs_f64(),
            sources.len()
        ))
    })
}

/// The server goes away under an open page: the chat says so, then says in words
/// that the reconnection was refused, while it keeps trying; the mirror says it is
/// reconnecting, and the message box is disabled.
/// Chromium offers permessage-deflate on every WebSocket: the from-scratch server
/// accepts it (the page's socket reports it, and the server logs how many messages
/// arrived compressed), the framework servers decline it and the chat works the same.
fn compression(browsers: &[Session; 2], server: &str) -> Result<String, String> {
    let process = ServerProcess::spawn(server, &[])?;
    let page = AppPage::open(&browsers[0], &process.base_url())?;
    with_screenshots(&format!("{server}-deflate"), &[&page], || {
        page.join("ada")?;
        page.wait_online(1, WAIT)?;
        page.send("a message that the browser compresses")?;
        page.wait_for_message(false, "ada", "a message that the browser compresses", WAIT)?;
        let extensions = page
            .session
            .execute("return chat.socket.extensions;", &[])?;
        let expected = if server == "scratch" {
            "permessage-deflate"
        } else {
            ""
        };
        ensure(
            extensions.as_str() == Some(expected),
            format!("the page's socket.extensions is {extensions}, not {expected:?}"),
        )?;
        if server != "scratch" {
            return Ok("declined".to_owned());
        }
        page.disconnect()?;
        let count = compressed_messages_logged(&process)?;
        Ok(format!("{count} message(s) arrived compressed"))
    })
}

/// Waits for the from-scratch server to log that a permessage-deflate connection
/// ended with at least one message that arrived compressed; returns the count. The
/// server logs it when the connection's reader goes.
fn compressed_messages_logged(process: &ServerProcess) -> Result<u64, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let tail = process.stderr_tail();
        let compressed = tail
            .lines()
            // The message's own words, not the field (which may come in colour).
            .filter_map(|line| line.split("permessage-deflate connection ended: ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .max();
        match compressed {
            Some(count) if count >= 1 => return Ok(count),
            _ if Instant::now() > deadline => {
                return Err(format!(
                    "the server never logged a compressed message; its log ends:\n{tail}"
                ));
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The compressed chat across cuts: on the from-scratch server, with
/// permessage-deflate on, the [`FlakyProxy`] cuts every connection three times while
/// messages are posted. Each reconnection starts a new compression context on both
/// sides (the old window is gone with the old connection), the messages missed are
/// replayed in it, and both lists end with every message once, in order; the socket
/// still reports the extension, and what the page types afterwards arrives compressed.
/// (The random cuts of [`flaky_proxy`] are sized for uncompressed frames.) The
/// framework servers decline the extension, so there is nothing to check on them.
fn compressed_reconnect(browsers: &[Session; 2], server: &str) -> Result<String, String> {
    const CUTS: u64 = 3;
    if server != "scratch" {
        return Ok("no compression to reconnect with".to_owned());
    }
    let proxied = ProxiedPage::open(&browsers[0], server, &[])?;
    let (page, proxy, post) = (&proxied.page, &proxied.proxy, |seq| proxied.post(seq));
    with_screenshots(&format!("{server}-deflate-cuts"), &[page], || {
        proxied.join_and_see_message_1()?;
        let mut seq = 1;
        for _ in 0..CUTS {
            proxy.cut_all();
            // Posted while the chat is away or coming back: replayed, or live.
            for _ in 0..2 {
                seq += 1;
                post(seq)?;
            }
            page.wait_for_message(false, "poster", &format!("message {seq}"), WAIT)?;
        }
        shows_every_message(page, seq)?;
        let extensions = page
            .session
            .execute("return chat.socket.extensions;", &[])?;
        ensure(
            extensions.as_str() == Some("permessage-deflate"),
            format!("after the cuts the socket's extensions are {extensions}"),
        )?;
        page.send("typed after the cuts")?;
        page.wait_for_message(false, "ada", "typed after the cuts", WAIT)?;
        let reconnects = page
            .states_seen("state")?
            .windows(2)
            .filter(|pair| pair[0] != "open" && pair[1] == "open")
            .count();
        // Once at the start, then once after each cut.
        ensure(
            reconnects as u64 > CUTS,
            format!("the chat opened {reconnects} time(s) with {CUTS} cuts"),
        )?;
        page.disconnect()?;
        let count = compressed_messages_logged(&proxied.process)?;
        Ok(format!(
            "{} connections cut, the chat opened {reconnects} times; {count} message(s) \
             arrived compressed on its last connection",
            proxy.cuts()
        ))
    })
}

fn refused_websocket(browsers: &[Session; 2], server: &str) -> Result<String, String> {
    let mut process = ServerProcess::spawn(server, &[])?;
    let page = AppPage::open(&browsers[0], &process.base_url())?;
    with_screenshots(&format!("{server}-refused"), &[&page], || {
        page.join("ada")?;
        process.terminate()?;
        page.session.wait_for_text_where(
            "#state",
            "a reconnect countdown after a refused connection",
            WAIT,
            |state| {
                state.starts_with("reconnecting in ") && state.contains("refused by the server")
            },
        )?;
        let states = page.states_seen("state")?;
        ensure(
            states
                .iter()
                .any(|state| state.contains("the server is going away (1001")),
            format!("the chat did not say the server went away (close 1001): {states:?}"),
        )?;
        let notes = page.notes()?;
        ensure(
            notes.iter().any(|note| {
                note == "connection closed: the connection failed or was refused by the server"
            }),
            format!("no note of the refused connection: {notes:?}"),
        )?;
        page.session
            .wait_for_text("#mirror-state", "reconnecting", WAIT)?;
        let disabled = page
            .session
            .execute("return document.getElementById('message').disabled;", &[])?;
        ensure(
            disabled == true,
            "the message box is still enabled".to_owned(),
        )?;
        Ok(String::new())
    })
}

/// A server behind a [`FlakyProxy`] and the page opened through the proxy. Messages
/// are posted straight to the server, so they are accepted whatever the proxy does.
///
/// The fields drop in this order: the page, then the proxy, the server and last
/// the runtime the proxy runs on.
struct ProxiedPage<'session> {
    page: AppPage<'session>,
    proxy: FlakyProxy,
    process: ServerProcess,
    runtime: tokio::runtime::Runtime,
}

impl<'session> ProxiedPage<'session> {
    fn open(
        browser: &'session Session,
        server: &str,
        server_args: &[&str],
    ) -> Result<ProxiedPage<'session>, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        let process = ServerProcess::spawn(server, server_args)?;
        let proxy = runtime
            .block_on(FlakyProxy::start(process.addr(), Faults::default()))
            .map_err(|error| format!("the proxy does not start: {error}"))?;
        let page = AppPage::open(browser, &format!("http://{}", proxy.addr()))?;
        Ok(ProxiedPage {
            page,
            proxy,
            process,
            runtime,
        })
    }

    /// Joins the chat as ada, posts message 1 and waits until both the chat and the
    /// mirror show it: from then on the mirror has a `Last-Event-ID` to resume from.
    fn join_and_see_message_1(&self) -> Result<(), String> {
        self.page.join("ada")?;
        self.post(1)?;
        self.page
            .wait_for_message(false, "poster", "message 1", WAIT)?;
        self.page
            .wait_for_message(true, "poster", "message 1", WAIT)?;
        Ok(())
    }

    /// Posts `message SEQ` from `poster` to the server itself.
    fn post(&self, seq: u64) -> Result<(), String> {
        let body = json!({ "from": "poster", "content": format!("message {seq}") }).to_string();
        let response = self.runtime.block_on(wsse_testkit::http::post_json(
            self.process.addr(),
            "/messages",
            &body,
        ))?;
        ensure(
            response.head.status == 202,
            format!("POST /messages answered {}", response.head.status),
        )
    }
}

/// Waits until the chat and the mirror both show `message COUNT` from `poster`, then
/// checks that each shows `poster: message 1` to `COUNT`, once each, in order, with
/// seqs one apart; returns each list's first seq.
fn shows_every_message(page: &AppPage, count: u64) -> Result<Vec<(&'static str, u64)>, String> {
    let last = format!("message {count}");
    page.wait_for_message(false, "poster", &last, Duration::from_secs(25))?;
    page.wait_for_message(true, "poster", &last, Duration::from_secs(25))?;
    let mut first_seqs = Vec::new();
    for (list, shown) in [
        ("#messages", page.chat_messages()?),
        ("#mirror", page.mirror_messages()?),
    ] {
        ensure(
            shown.len() as u64 == count,
            format!("{list} shows {} messages, not {count}", shown.len()),
        )?;
        let first_seq = shown.first().map_or(0, |message| message.seq);
        for (index, message) in shown.iter().enumerate() {
            let content = format!("poster: message {}", index + 1);
            ensure(
                message.seq == first_seq + index as u64 && message.text.ends_with(&content),
                format!(
                    "{list}: #{} reads {:?}, expected {content:?}",
                    message.seq, message.text
                ),
            )?;
        }
        first_seqs.push((list, first_seq));
    }
    Ok(first_seqs)
}

fn ensure(condition: bool, message: String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(message) }
}

/// The page through nginx in front of two instances sharing one Redis (actix and
/// scratch): the instance that holds the page's chat is killed with SIGKILL in the
/// middle of the posts, and the chat (resuming with `since=`) and the mirror (with
/// `lastEventId`) end with every message, once, in order, on the other instance.
#[test]
fn the_page_fails_over_between_instances() {
    const MESSAGES: u64 = 30;
    const KILL_AFTER: u64 = 10;
    let Some(chrome) = chrome_or_skip("the page failing over") else {
        return;
    };
    if !wsse_testkit::programs_present(
        "the page failing over",
        &[
            (
                wsse_testkit::redis::missing_program(),
                wsse_testkit::redis::INSTALL_COMMAND,
            ),
            (
                wsse_testkit::nginx::missing_programs(),
                wsse_testkit::nginx::INSTALL_COMMAND,
            ),
        ],
    ) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock();
    let redis = wsse_testkit::redis::RedisServer::start().expect("redis-server starts");
    let flags = ["--redis", &redis.url(), "--trust-proxy"];
    let mut instances = ["actix", "scratch"]
        .map(|server| ServerProcess::spawn(server, &flags).expect("an instance starts"));
    let proxy = wsse_testkit::nginx::Nginx::start(&[instances[0].addr(), instances[1].addr()])
        .expect("nginx starts");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let driver = Driver::start(&chrome).expect("chromedriver starts");
    let session = driver.session().expect("Chromium starts");
    let page = AppPage::open(&session, &format!("http://{}", proxy.plain_addr()))
        .expect("the page opens through nginx");
    let result = with_screenshots("failover", &[&page], || {
        page.join("ada")?;
        page.wait_online(1, WAIT)?;
        // The instance that logged ada's join holds the chat: that one dies.
        let doomed = instances
            .iter()
            .position(|instance| instance.stderr_tail().contains("ada"))
            .ok_or("neither instance logged the page's join")?;
        let survivor = instances[1 - doomed].addr();
        for number in 1..=MESSAGES {
            let body = json!({ "from": "poster", "content": format!("message {number}") });
            let response = runtime.block_on(wsse_testkit::http::post_json(
                survivor,
                "/messages",
                &body.to_string(),
            ))?;
            ensure(
                response.head.status == 202,
                format!("POST {number} answered {}", response.head.status),
            )?;
            if number == KILL_AFTER {
                instances[doomed].kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        shows_every_message(&page, MESSAGES)?;
        let chat_states = page.states_seen("state")?;
        ensure(
            chat_states
                .iter()
                .any(|state| state.starts_with("reconnecting in ")),
            format!("the chat never reconnected: {chat_states:?}"),
        )?;
        Ok(())
    });
    if let Err(error) = result {
        panic!(
            "{error}
nginx's error log:
{}",
            proxy.error_log()
        );
    }
}

/// Every page of the built book (`cargo xtask book`), served over HTTP: no console
/// error, no failed request, every image loaded (the SVG diagrams, the screenshots
/// of the page); and the search box finds `Sec-WebSocket-Accept`.
#[test]
fn the_book_works_in_chromium() {
    let Some(chrome) = chrome_or_skip("browser tests of the book") else {
        return;
    };
    let book = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/book");
    if !book.join("index.html").is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} has no book: `cargo xtask test` builds it before these tests",
            book.display()
        );
        eprintln!(
            "skipped: browser tests of the book: it is not built; build it with: cargo xtask book"
        );
        return;
    }
    let _alone = ONE_AT_A_TIME.lock();
    let started = Instant::now();
    let files = StaticFiles::serve(&book).expect("the book is served");
    let driver = Driver::start(&chrome).expect("chromedriver starts");
    let session = driver.session().expect("Chromium starts");
    let mut problems = Vec::new();
    let (mut svg_images, mut png_images) = (0, 0);
    let pages = html_pages(&book);
    for page in &pages {
        let url = format!("{}/{page}", files.base_url());
        if let Err(error) = session.goto(&url) {
            problems.push(error);
            continue;
        }
        let images = session.wait_for(
            &format!("{page} and its images to load"),
            WAIT,
            "if (document.readyState !== 'complete') return null;
             const images = [...document.images];
             if (images.some((image) => !image.complete)) return null;
             return images.map((image) => [image.getAttribute('src'), image.naturalWidth]);",
            &[],
        );
        match images {
            Ok(images) => {
                for image in images.as_array().into_iter().flatten() {
                    let source = image[0].as_str().unwrap_or_default();
                    if source.ends_with(".svg") {
                        svg_images += 1;
                    } else if source.ends_with(".png") {
                        png_images += 1;
                    }
                    if image[1].as_u64().unwrap_or(0) == 0 {
                        problems.push(format!("{page}: the image {source} did not load"));
                    }
                }
            }
            Err(error) => problems.push(error),
        }
        match session.browser_log() {
            Ok(entries) => problems.extend(
                entries
                    .iter()
                    .filter(|entry| entry.is_severe())
                    .map(|entry| format!("{page}: console: {entry}")),
            ),
            Err(error) => problems.push(format!("{page}: reading the console: {error}")),
        }
    }
    problems.extend(
        files
            .served()
            .iter()
            .filter(|served| served.status != 200)
            .map(|served| {
                format!(
                    "a failed request: {} answered {}",
                    served.path, served.status
                )
            }),
    );
    if svg_images == 0 {
        problems.push("no page shows an SVG diagram".to_owned());
    }

    // Search, as a reader would: the toolbar's search button, then type.
    let search = (|| -> Result<String, String> {
        session.goto(&format!("{}/index.html", files.base_url()))?;
        session.click("#mdbook-search-toggle")?;
        session.type_text("#mdbook-searchbar", "Sec-WebSocket-Accept")?;
        let results = session.wait_for(
            "search results for Sec-WebSocket-Accept",
            WAIT,
            "const links = [...document.querySelectorAll('#mdbook-searchresults li a')];
             return links.length > 0 ? links.map((link) => link.getAttribute('href')) : null;",
            &[],
        )?;
        let hrefs: Vec<&str> = results
            .as_array()
            .map(|links| links.iter().filter_map(|link| link.as_str()).collect())
            .unwrap_or_default();
        ensure(
            hrefs
                .iter()
                .any(|href| href.starts_with("websocket/handshake.html")),
            format!("the handshake chapter is not among the results: {hrefs:?}"),
        )?;
        Ok(format!("{} results", hrefs.len()))
    })();
    match search {
        Ok(found) => eprintln!("browser: book search for Sec-WebSocket-Accept: {found}"),
        Err(error) => problems.push(format!("search: {error}")),
    }
    eprintln!(
        "browser: book: {} pages, {svg_images} SVG and {png_images} PNG images, {} requests, {:.1} s",
        pages.len(),
        files.served().len(),
        started.elapsed().as_secs_f64()
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The HTML files under `root`, as paths relative to it with `/`, sorted; without
/// `toc.html`, the sidebar mdBook loads into a frame when scripts are off, which is
/// not a page of its own (opened alone, it has no icon and the browser asks for
/// `/favicon.ico`).
fn html_pages(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory)
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "html")
                && path.file_name().is_some_and(|name| name != "toc.html")
                && let Ok(relative) = path.strip_prefix(root)
            {
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}
