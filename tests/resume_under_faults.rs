//! Clients that reconnect and resume, proven under injected faults, against every
//! server: `chat_client` (WebSocket) and `stream_client` (SSE) run as child
//! processes behind `FlakyProxy`, which cuts their connections every couple of
//! thousand bytes, while the test posts messages straight to the server.
//!
//! Each test checks that nothing is lost and nothing repeated: every `seq` exactly
//! once and in order, every token of `/stream` exactly once.
//!
//! `cargo test` builds the examples first; after changing a client and running only
//! this file, rebuild them with `cargo build --examples`. `WSSE_SERVERS=axum,scratch`
//! narrows the run; `-- --nocapture` shows how long each server took.
//!
//! How the waits stay short: the chat client keeps its backoff rule (250 ms start,
//! full jitter) with the cap lowered to 500 ms by a flag, since thirty cuts in a row
//! would otherwise climb to the 10 s cap. The SSE client honours the server's
//! `retry: 3000`, which tests lower with the test-only `--max-retry-delay-ms`;
//! `tests/stream_client_rules.rs` proves separately that `retry:` is honoured.

use std::time::{Duration, Instant};

use serde_json::Value;
use wsse_testkit::http::post_json;
use wsse_testkit::{Faults, FlakyProxy, ProgramProcess, ServerProcess};

/// Messages posted during each chat and `/events` test.
const MESSAGES: u64 = 500;

/// The fewest cuts a test must have gone through to count.
const MINIMUM_CUTS: u64 = 20;

/// Bytes after which the proxy cuts each connection (both directions together):
/// room for the handshake and a dozen messages.
const CUT_EVERY_BYTES: u64 = 2000;

/// The longest a server's whole test may take before it counts as failed.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// The prompt of the `/stream` tests.
const PROMPT: &str = "why do connections drop";

/// The servers to test: all of them, or those named in `WSSE_SERVERS`.
fn servers() -> Vec<String> {
    let chosen = std::env::var("WSSE_SERVERS").unwrap_or_default();
    if chosen.trim().is_empty() {
        wsse_testkit::SERVERS.map(str::to_owned).to_vec()
    } else {
        chosen
            .split(',')
            .map(|name| name.trim().to_owned())
            .collect()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

/// Runs `check` for every server, then fails with every server's problem at once.
fn for_every_server(
    what: &str,
    check: impl Fn(&str, &tokio::runtime::Runtime) -> Result<String, String>,
) {
    let runtime = runtime();
    let mut failures = Vec::new();
    for server in servers() {
        let started = Instant::now();
        match check(&server, &runtime) {
            Ok(summary) => eprintln!(
                "{what}: {server}: {summary} in {:.1} s",
                started.elapsed().as_secs_f64()
            ),
            Err(problem) => failures.push(format!("{server}: {problem}")),
        }
    }
    assert!(failures.is_empty(), "{what}:\n{}", failures.join("\n\n"));
}

/// Posts `count` messages straight to the server (not through the proxy), a little
/// apart, so that the cuts happen while they are being posted.
async fn post_messages(server: std::net::SocketAddr, count: u64) -> Result<(), String> {
    post_numbered(server, 1..=count).await
}

/// Posts `message N` for each N of `numbers`, straight to the server.
async fn post_numbered(
    server: std::net::SocketAddr,
    numbers: std::ops::RangeInclusive<u64>,
) -> Result<(), String> {
    for number in numbers {
        let body = format!(r#"{{"content":"message {number}","from":"poster"}}"#);
        let response = post_json(server, "/messages", &body).await?;
        if response.head.status != 202 {
            return Err(format!(
                "POST /messages answered {}: {}",
                response.head.status,
                response.text()
            ));
        }
        if number % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Whether `seqs` is exactly 1, 2, ... `count`; if not, what is wrong.
fn exactly_once_in_order(seqs: &[u64], count: u64) -> Result<(), String> {
    for (position, seq) in seqs.iter().enumerate() {
        let expected = position as u64 + 1;
        if *seq != expected {
            return Err(format!(
                "received {} seqs; at position {position} came #{seq} instead of #{expected} \
                 (around it: {:?})",
                seqs.len(),
                &seqs[position.saturating_sub(3)..(position + 3).min(seqs.len())]
            ));
        }
    }
    if seqs.len() as u64 != count {
        return Err(format!(
            "received {} of the {count} messages, in order (the last: {:?})",
            seqs.len(),
            seqs.last()
        ));
    }
    Ok(())
}

/// A line of a client's `--json` output.
fn parse_line(line: &str) -> Result<Value, String> {
    serde_json::from_str(line).map_err(|error| format!("not JSON: {line:?}: {error}"))
}

/// Kills nothing: the guards (`ServerProcess`, `ProgramProcess`, `FlakyProxy`) clean
/// up on drop. Adds the client's log to a problem.
fn with_log(problem: String, client: &ProgramProcess) -> String {
    format!(
        "{problem}\n--- last lines of {}'s stderr ---\n{}",
        client.name(),
        client.stderr_tail(25)
    )
}

// ANCHOR: chat_test
#[test]
fn chat_client_gets_every_message_once_through_cuts() {
    for_every_server("chat through cuts", |server, runtime| {
        let process = ServerProcess::spawn(server, &[])?;
        let proxy = runtime
            .block_on(FlakyProxy::start(
                process.addr(),
                Faults {
                    cut_after_bytes: Some(CUT_EVERY_BYTES),
                    ..Faults::default()
                },
            ))
            .map_err(|error| format!("the proxy: {error}"))?;
        let url = format!("ws://{}/ws", proxy.addr());
        let mut client = ProgramProcess::spawn(
            "chat_client",
            &[
                &url,
                "--name",
                "reader",
                "--since",
                "0",
                "--json",
                "--backoff-cap-ms",
                "500",
            ],
        )?;
        let welcome = client
            .next_line(Duration::from_secs(10))?
            .unwrap_or_default();
        if parse_line(&welcome)?["type"] != "welcome" {
            return Err(with_log(format!("the first line is {welcome:?}"), &client));
        }

        // The server numbers the posted messages and the lines the client sends
        // together: 500 + 20 seqs in all, each of which must arrive exactly once.
        let lines_to_send = 20;
        let total = MESSAGES + lines_to_send;
        let posting = runtime.spawn(post_messages(process.addr(), MESSAGES));
        let deadline = Instant::now() + TEST_LIMIT;
        let (mut seqs, mut own_lines, mut sent) = (Vec::new(), Vec::new(), 0);
        while seqs.last() != Some(&total) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = client
                .next_line(left)
                .map_err(|error| with_log(error, &client))?
            else {
                return Err(with_log("the client exited".to_owned(), &client));
            };
            let message = parse_line(&line)?;
            if message["type"] != "message" {
                continue;
            }
            seqs.push(message["seq"].as_u64().unwrap_or_default());
            if message["from"] == "reader" {
                own_lines.push(message["content"].as_str().unwrap_or_default().to_owned());
            }
            // Type a line now and then, so some are sent just before a cut.
            if seqs.len() % 25 == 0 && sent < lines_to_send {
                sent += 1;
                client.send_line(&format!("line {sent} from the reader"))?;
            }
        }
        // A duplicate would come after the last one: give it a moment to show up.
        for line in client.lines_until(Instant::now() + Duration::from_millis(300)) {
            if let Some(seq) = parse_line(&line)?["seq"].as_u64() {
                seqs.push(seq);
            }
        }
        runtime
            .block_on(posting)
            .map_err(|error| format!("posting panicked: {error}"))??;

        exactly_once_in_order(&seqs, total).map_err(|problem| with_log(problem, &client))?;
        let expected_lines: Vec<String> = (1..=lines_to_send)
            .map(|number| format!("line {number} from the reader"))
            .collect();
        if own_lines != expected_lines {
            return Err(with_log(
                format!("the lines sent came back as {own_lines:?}"),
                &client,
            ));
        }
        let cuts = proxy.cuts();
        if cuts < MINIMUM_CUTS {
            return Err(format!("only {cuts} cuts: the test proved too little"));
        }
        // End of input: the client has nothing unconfirmed, so it closes and exits.
        client.close_stdin();
        match client.wait_with_timeout(Duration::from_secs(5)) {
            Some(status) if status.success() => {}
            other => return Err(with_log(format!("at the end of stdin: {other:?}"), &client)),
        }
        Ok(format!("{total} seqs once each through {cuts} cuts"))
    });
}
// ANCHOR_END: chat_test

#[test]
fn chat_client_finds_a_dead_connection_by_its_missing_pong() {
    for_every_server("chat through a stall", |server, runtime| {
        let process = ServerProcess::spawn(server, &[])?;
        let proxy = runtime
            .block_on(FlakyProxy::start(process.addr(), Faults::default()))
            .map_err(|error| format!("the proxy: {error}"))?;
        let url = format!("ws://{}/ws", proxy.addr());
        let client = ProgramProcess::spawn(
            "chat_client",
            &[
                &url,
                "--json",
                "--since",
                "0",
                "--ping-interval-ms",
                "200",
                "--pong-timeout-ms",
                "500",
                "--connect-timeout-ms",
                "1000",
            ],
        )?;
        let post = |content: &str| {
            let body = format!(r#"{{"content":"{content}"}}"#);
            runtime.block_on(post_json(process.addr(), "/messages", &body))
        };
        let next_seq = |client: &ProgramProcess| -> Result<u64, String> {
            loop {
                let line = client
                    .next_line(Duration::from_secs(10))
                    .map_err(|error| with_log(error, client))?
                    .ok_or("the client exited")?;
                if let Some(seq) = parse_line(&line)?["seq"].as_u64()
                    && !line.contains("welcome")
                {
                    return Ok(seq);
                }
            }
        };
        post("before the stall")?;
        let first = next_seq(&client)?;

        // The network goes silent: no FIN, no RST, nothing. Only the pings notice.
        proxy.set_faults(Faults {
            stall_after_bytes: Some(0),
            ..Faults::default()
        });
        if !client.wait_for_stderr("no pong within 500 ms", Duration::from_secs(5)) {
            return Err(with_log("no dead connection noticed".to_owned(), &client));
        }
        proxy.set_faults(Faults::default());
        post("after the stall")?;
        let second = next_seq(&client)?;
        if (first, second) != (1, 2) {
            return Err(with_log(
                format!("received #{first} then #{second}"),
                &client,
            ));
        }
        if proxy.stalls() == 0 || proxy.connections() < 2 {
            return Err(format!(
                "{} stalls, {} connections",
                proxy.stalls(),
                proxy.connections()
            ));
        }
        Ok("the stall was noticed by the pong timeout and resumed after".to_owned())
    });
}

// ANCHOR: events_test
#[test]
fn stream_client_gets_every_chat_event_once_through_cuts() {
    for_every_server("/events through cuts", |server, runtime| {
        let process = ServerProcess::spawn(server, &[])?;
        let proxy = runtime
            .block_on(FlakyProxy::start(
                process.addr(),
                Faults {
                    cut_after_bytes: Some(CUT_EVERY_BYTES),
                    ..Faults::default()
                },
            ))
            .map_err(|error| format!("the proxy: {error}"))?;
        let client = events_client(proxy.addr())?;
        let posting = runtime.spawn(post_messages(process.addr(), MESSAGES));
        let deadline = Instant::now() + TEST_LIMIT;
        let mut seqs = Vec::new();
        while seqs.last() != Some(&MESSAGES) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = client
                .next_line(left)
                .map_err(|error| with_log(error, &client))?
                .ok_or_else(|| with_log("the client exited".to_owned(), &client))?;
            read_chat_event(&line, &mut seqs)?;
        }
        for line in client.lines_until(Instant::now() + Duration::from_millis(300)) {
            read_chat_event(&line, &mut seqs)?;
        }
        runtime
            .block_on(posting)
            .map_err(|error| format!("posting panicked: {error}"))??;
        exactly_once_in_order(&seqs, MESSAGES).map_err(|problem| with_log(problem, &client))?;
        let cuts = proxy.cuts();
        if cuts < MINIMUM_CUTS {
            return Err(format!("only {cuts} cuts: the test proved too little"));
        }
        Ok(format!("{MESSAGES} events once each through {cuts} cuts"))
    });
}
// ANCHOR_END: events_test

// ANCHOR: silent_test
/// With `--heartbeat 1`, the proxy makes the client's connection go silent in the
/// middle of the stream: no FIN, no RST, not one byte either way. The client has
/// learnt the interval from the first heartbeat event; after 2.5 intervals without a
/// byte it drops the connection, reconnects with `Last-Event-ID`, and ends with every
/// message once, in order. The same for `/stream`: the tokens go on after the last
/// one seen.
#[test]
fn stream_client_notices_a_silent_connection_and_resumes() {
    let expected_tokens = wsse_app::tokens::answer_tokens(PROMPT);
    let liveness_timeout = wsse_app::sse::liveness_timeout(Duration::from_secs(1));
    let noticed = format!("no bytes for {} ms", liveness_timeout.as_millis());
    // Up to one heartbeat between the last byte and the stall, so noticing takes at
    // most the timeout after the stall; the rest is room for a loaded machine.
    let notice_limit = liveness_timeout + Duration::from_millis(1500);
    for_every_server("a silent SSE stream", |server, runtime| {
        let process =
            ServerProcess::spawn(server, &["--heartbeat", "1", "--token-interval-ms", "40"])?;
        let proxy = runtime
            .block_on(FlakyProxy::start(process.addr(), Faults::default()))
            .map_err(|error| format!("the proxy: {error}"))?;
        let mut proxy_events = proxy.events();
        let client = events_client(proxy.addr())?;
        let read_until = |seqs: &mut Vec<u64>, last: u64| -> Result<(), String> {
            while seqs.last() != Some(&last) {
                let line = client
                    .next_line(Duration::from_secs(10))
                    .map_err(|error| with_log(error, &client))?
                    .ok_or_else(|| with_log("the client exited".to_owned(), &client))?;
                read_chat_event(&line, seqs)?;
            }
            Ok(())
        };
        let mut seqs = Vec::new();
        runtime.block_on(post_numbered(process.addr(), 1..=3))?;
        read_until(&mut seqs, 3)?;

        let stalled_at = Instant::now();
        proxy.stall_all();
        runtime.block_on(post_numbered(process.addr(), 4..=6))?;
        if !client.wait_for_stderr(&noticed, notice_limit) {
            return Err(with_log(
                format!(
                    "the silence was not noticed within {} ms",
                    notice_limit.as_millis()
                ),
                &client,
            ));
        }
        let noticed_after = stalled_at.elapsed();
        read_until(&mut seqs, 6)?;
        for line in client.lines_until(Instant::now() + Duration::from_millis(300)) {
            read_chat_event(&line, &mut seqs)?;
        }
        exactly_once_in_order(&seqs, 6).map_err(|problem| with_log(problem, &client))?;
        if !client
            .stderr_lines()
            .iter()
            .any(|line| line.contains("with Last-Event-ID: 3"))
        {
            return Err(with_log(
                "no reconnection with Last-Event-ID: 3".to_owned(),
                &client,
            ));
        }
        // The client closed the silent connection rather than leaving it open.
        let mut closed = false;
        while let Ok(event) = proxy_events.try_recv() {
            closed |= event.connection == 1
                && matches!(
                    event.kind,
                    wsse_testkit::proxy::ProxyEventKind::Closed { .. }
                );
        }
        if !closed || proxy.stalls() != 1 {
            return Err(with_log(
                format!(
                    "the stalled connection closed: {closed}; {} stalls",
                    proxy.stalls()
                ),
                &client,
            ));
        }
        drop(client);

        let mut client = tokens_client(proxy.addr(), 50)?;
        let first = read_tokens_while_running(&mut client, 5)?;
        proxy.stall_all();
        if !client.wait_for_stderr(&noticed, notice_limit) {
            return Err(with_log(
                "/stream: the silence was not noticed".to_owned(),
                &client,
            ));
        }
        read_rest_of_answer(&mut client, first, &expected_tokens, "/stream")?;
        Ok(format!(
            "/events: noticed {} ms after the stall, 6 seqs once each; /stream: the answer whole",
            noticed_after.as_millis()
        ))
    });
}
// ANCHOR_END: silent_test

/// Reads the first `count` tokens a `stream_client --json --until-done` run of
/// `/stream` prints, checking their indices.
fn read_tokens_while_running(
    client: &mut ProgramProcess,
    count: usize,
) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    while tokens.len() < count {
        let line = client
            .next_line(Duration::from_secs(10))
            .map_err(|error| with_log(error, client))?
            .ok_or_else(|| with_log("the client exited".to_owned(), client))?;
        let data = parse_line(&line)?["data"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let token = parse_line(&data)?;
        if token["index"] != tokens.len() {
            return Err(with_log(
                format!("{line} came as token {}", tokens.len()),
                client,
            ));
        }
        tokens.push(token["token"].as_str().unwrap_or_default().to_owned());
    }
    Ok(tokens)
}

/// Adds the seq of a `message` event printed by `stream_client --json` to `seqs`,
/// after checking that the event's id is that seq.
fn read_chat_event(line: &str, seqs: &mut Vec<u64>) -> Result<(), String> {
    let event = parse_line(line)?;
    if event["type"] == "message" {
        let data = parse_line(event["data"].as_str().unwrap_or_default())?;
        let seq = data["seq"].as_u64().unwrap_or_default();
        if event["id"] != seq.to_string().as_str() {
            return Err(format!("the id of {line} is not its seq"));
        }
        seqs.push(seq);
    }
    Ok(())
}

/// Reads a `stream_client --json --until-done` run of `/stream` to its end: the
/// tokens in the order printed, after checking that each index from `first_index` on
/// came once, in order.
/// Reads the rest of the answer after the `tokens` already read and checks that the
/// whole is `expected`: every token once, in order, with no gap at the join. Returns
/// how many tokens came after the join.
fn read_rest_of_answer(
    client: &mut ProgramProcess,
    mut tokens: Vec<String>,
    expected: &[String],
    what: &str,
) -> Result<usize, String> {
    let before = tokens.len();
    tokens.extend(read_tokens(client, Instant::now() + TEST_LIMIT, before)?);
    if tokens != expected {
        return Err(with_log(
            format!(
                "{what}: joined {:?}\nexpected: {:?}",
                tokens.concat(),
                expected.concat()
            ),
            client,
        ));
    }
    Ok(tokens.len() - before)
}

fn read_tokens(
    client: &mut ProgramProcess,
    deadline: Instant,
    first_index: usize,
) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut done = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(line) = client
            .next_line(left)
            .map_err(|error| with_log(error, client))?
        else {
            break;
        };
        let event = parse_line(&line)?;
        let data = event["data"].as_str().unwrap_or_default();
        if data == wsse_app::tokens::DONE {
            done = true;
            continue;
        }
        let token = parse_line(data)?;
        let index = token["index"].as_u64().unwrap_or(u64::MAX);
        let due = (first_index + tokens.len()) as u64;
        if index != due {
            return Err(with_log(
                format!("token {index} came when {due} was due"),
                client,
            ));
        }
        tokens.push(token["token"].as_str().unwrap_or_default().to_owned());
    }
    match client.wait_with_timeout(Duration::from_secs(5)) {
        Some(status) if status.success() && done => Ok(tokens),
        other => Err(with_log(
            format!("the client ended with {other:?}, [DONE] seen: {done}"),
            client,
        )),
    }
}

/// `stream_client` on the chat mirror with `--json`, from #1 on: `?lastEventId=0`
/// asks for everything on the first connection, so no message posted before the
/// stream opened is missed; after that the client's own `Last-Event-ID` header
/// takes over. Reconnects after at most 50 ms.
fn events_client(addr: std::net::SocketAddr) -> Result<ProgramProcess, String> {
    let url = format!("http://{addr}/events?lastEventId=0");
    ProgramProcess::spawn(
        "stream_client",
        &[&url, "--json", "--max-retry-delay-ms", "50"],
    )
}

/// `stream_client --json --until-done` on the token stream of [`PROMPT`],
/// reconnecting after at most `max_retry_delay_ms`.
fn tokens_client(
    addr: std::net::SocketAddr,
    max_retry_delay_ms: u64,
) -> Result<ProgramProcess, String> {
    let delay = max_retry_delay_ms.to_string();
    ProgramProcess::spawn(
        "stream_client",
        &[
            &stream_url(addr),
            "--json",
            "--until-done",
            "--max-retry-delay-ms",
            &delay,
        ],
    )
}

fn stream_url(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}/stream?prompt={}", PROMPT.replace(' ', "%20"))
}

#[test]
fn stream_client_gets_the_same_tokens_through_cuts() {
    let expected = wsse_app::tokens::answer_tokens(PROMPT);
    for_every_server("/stream through cuts", |server, runtime| {
        let process = ServerProcess::spawn(server, &["--token-interval-ms", "2"])?;
        let deadline = Instant::now() + TEST_LIMIT;
        let uncut = read_tokens(
            &mut ProgramProcess::spawn(
                "stream_client",
                &[&stream_url(process.addr()), "--json", "--until-done"],
            )?,
            deadline,
            0,
        )?;

        let proxy = runtime
            .block_on(FlakyProxy::start(
                process.addr(),
                Faults {
                    // The request and the response head take about half of it: a few
                    // tokens get through each time.
                    cut_after_bytes: Some(700),
                    ..Faults::default()
                },
            ))
            .map_err(|error| format!("the proxy: {error}"))?;
        let mut client = tokens_client(proxy.addr(), 20)?;
        let cut = read_tokens(&mut client, deadline, 0)?;
        if uncut != expected {
            return Err(format!("the uncut run gave {uncut:?}"));
        }
        if cut != uncut {
            return Err(with_log(
                format!(
                    "through cuts: {:?}\nuncut: {:?}",
                    cut.concat(),
                    uncut.concat()
                ),
                &client,
            ));
        }
        let cuts = proxy.cuts();
        if cuts < 5 {
            return Err(format!("only {cuts} cuts: the test proved too little"));
        }
        Ok(format!(
            "{} tokens once each through {cuts} cuts",
            cut.len()
        ))
    });
}

// ANCHOR: restart_test
#[test]
fn stream_client_resumes_the_tokens_across_a_server_restart() {
    let expected = wsse_app::tokens::answer_tokens(PROMPT);
    for_every_server("/stream across a restart", |server, _runtime| {
        let mut first = ServerProcess::spawn(server, &["--token-interval-ms", "30"])?;
        let addr = first.addr();
        let mut client = tokens_client(addr, 100)?;
        // A few tokens from the first server...
        let tokens = read_tokens_while_running(&mut client, 8)?;
        let before = tokens.len();
        // ...then it stops, and a new process takes its place on the same port.
        first.terminate()?;
        if first.wait_with_timeout(Duration::from_secs(5)).is_none() {
            return Err("the first server did not stop within 5 s".to_owned());
        }
        let _second = spawn_at_with_retries(server, addr)?;
        let after = read_rest_of_answer(&mut client, tokens, &expected, "across the restart")?;
        if !client
            .stderr_lines()
            .iter()
            .any(|line| line.contains("Last-Event-ID: "))
        {
            return Err(with_log(
                "no reconnection with Last-Event-ID".to_owned(),
                &client,
            ));
        }
        Ok(format!(
            "{before} tokens before the restart, {after} after, once each"
        ))
    });
}
// ANCHOR_END: restart_test

/// Starts `server` on `addr` again, retrying for a few seconds while the old
/// process's port is being released.
fn spawn_at_with_retries(
    server: &str,
    addr: std::net::SocketAddr,
) -> Result<ServerProcess, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ServerProcess::spawn_at(server, addr, &["--token-interval-ms", "5"]) {
            Ok(process) => return Ok(process),
            Err(error) if Instant::now() >= deadline => return Err(error),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn the_flaky_proxy_program_cuts_at_random_and_logs_each_cut() {
    let expected = wsse_app::tokens::answer_tokens(PROMPT);
    let server_name = servers().remove(0);
    let server = ServerProcess::spawn(&server_name, &["--token-interval-ms", "2"])
        .expect("the server starts");
    // ServerProcess passes `--addr 127.0.0.1:0`, an alias of `--listen`, and reads
    // the `listening on` line the proxy prints like the servers do.
    let upstream = server.addr().to_string();
    let mut proxy = ServerProcess::spawn(
        "flaky_proxy",
        &["--upstream", &upstream, "--cut-randomly", "500-900"],
    )
    .expect("the proxy starts");
    let mut client = tokens_client(proxy.addr(), 20).expect("the client starts");
    let tokens = read_tokens(&mut client, Instant::now() + TEST_LIMIT, 0).unwrap();
    assert_eq!(tokens, expected);
    let log = proxy.stderr_tail();
    assert!(log.contains("CUT after"), "{log}");
    assert!(log.contains("by a random byte limit"), "{log}");
    proxy.terminate().expect("SIGTERM is sent");
    let status = proxy.wait_with_timeout(Duration::from_secs(5));
    assert!(status.is_some_and(|status| status.success()), "{status:?}");
}
