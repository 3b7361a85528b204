//! The scenarios: one async function per behaviour of the spec, each run against a
//! live server.
//!
//! A server process (and so its hub) is shared by every scenario with the same
//! [`Scenario::server_args`], and most of them run at the same time. So no scenario
//! relies on absolute numbers: names and contents carry a unique tag, expected seqs
//! are computed from what the server said (a welcome, a `202 {"seq":N}`), and chat
//! streams skip whatever other scenarios cause. The few that need the hub to
//! themselves (exact presence counts, flooding the history) are
//! [`Isolation::Exclusive`] and run alone afterwards; the one that stops the server
//! gets a process of its own.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt, future::join_all};
use serde_json::{Value, json};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message as LibraryMessage;
use wsse_app::query::encode_component;
use wsse_app::tokens::answer_tokens;
use wsse_wire::frame::{FrameHeader, OpCode};
use wsse_wire::mask::random_key;
use wsse_wire::message::Message;
use wsse_wire::sse::{Item, ParsedEvent};

use crate::http::{self, HttpStream, STEP_TIMEOUT, SseStream};
use crate::process::resident_kib;
use crate::target::Target;
use crate::ws::{ChatClient, RawEvent, RawWs, shorten, summarize};

/// What a scenario returns: `Err` carries the reason it failed.
pub type ScenarioResult = Result<(), String>;

/// A running scenario.
pub type ScenarioFuture = Pin<Box<dyn Future<Output = ScenarioResult> + Send>>;

/// How a scenario shares its server with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Runs at the same time as the other shared scenarios on the same process.
    Shared,
    /// Runs on the shared process, but alone, after the shared ones.
    Exclusive,
    /// Gets a fresh process of its own (it stops the server).
    OwnProcess,
}

/// One behaviour to check against a server.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// A short snake_case name.
    pub name: &'static str,
    /// The flags the server needs besides `--addr` (scenarios with the same flags
    /// share a process unless [`Isolation::OwnProcess`]).
    pub server_args: &'static [&'static str],
    /// How it shares the server.
    pub isolation: Isolation,
    /// The check itself.
    pub run: fn(Target) -> ScenarioFuture,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Scenario")
            .field("name", &self.name)
            .field("server_args", &self.server_args)
            .field("isolation", &self.isolation)
            .finish_non_exhaustive()
    }
}

/// The flags of the process most scenarios share: fast tokens, so `/stream` is quick.
pub const DEFAULT_ARGS: &[&str] = &["--token-interval-ms", "5"];
/// One-second pings and SSE heartbeat events.
pub const HEARTBEAT_ARGS: &[&str] = &["--heartbeat", "1"];
/// One more allowed origin.
pub const ALLOW_ORIGIN_ARGS: &[&str] = &["--allow-origin", "http://trusted.example:8080"];
/// A two-second write timeout, so a client that stops reading is dropped quickly.
pub const WRITE_TIMEOUT_ARGS: &[&str] = &["--write-timeout", "2"];
/// Five chat messages at once, then one a second.
pub const RATE_ARGS: &[&str] = &["--message-rate", "1", "--message-burst", "5"];
/// Room for three long connections: the fourth is refused.
pub const CEILING_ARGS: &[&str] = &["--max-connections", "3"];
/// One second for each request head.
pub const HEAD_TIMEOUT_ARGS: &[&str] = &["--request-head-timeout", "1"];
/// Two long connections per client address, the address a proxy reports believed.
pub const PER_ADDRESS_ARGS: &[&str] = &["--max-connections-per-address", "2", "--trust-proxy"];
/// Sign-in required (`POST /session`), fast tokens for `/stream`.
pub const AUTH_ARGS: &[&str] = &["--auth", "--token-interval-ms", "5"];
/// Slow tokens, so a `/stream` is still running when the server is stopped.
pub const SHUTDOWN_ARGS: &[&str] = &["--token-interval-ms", "1000"];

/// The `Sec-WebSocket-Key` of the example in RFC 6455, section 1.3.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` the RFC gives for it.
pub const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The largest chat message in bytes.
const CHAT_LIMIT: usize = 64 * 1024;
/// The largest echo message in bytes.
const ECHO_LIMIT: usize = 16 * 1024 * 1024;
/// How many messages the hub keeps for replay.
const HISTORY: u64 = 1000;

macro_rules! scenario {
    ($name:ident, $args:expr, $isolation:ident) => {
        Scenario {
            name: stringify!($name),
            server_args: $args,
            isolation: Isolation::$isolation,
            run: |target| Box::pin($name(target)),
        }
    };
}

/// Every scenario, in the order the matrix shows them.
pub fn all() -> Vec<Scenario> {
    vec![
        scenario!(page_and_healthz, DEFAULT_ARGS, Shared),
        scenario!(handshake_accept_value, DEFAULT_ARGS, Shared),
        scenario!(handshake_rejections, DEFAULT_ARGS, Shared),
        scenario!(handshake_requires_host, DEFAULT_ARGS, Shared),
        scenario!(refusals_are_the_app_crates, DEFAULT_ARGS, Shared),
        scenario!(origin_forbidden, DEFAULT_ARGS, Shared),
        scenario!(origin_allow_list, ALLOW_ORIGIN_ARGS, Shared),
        scenario!(welcome_and_names, DEFAULT_ARGS, Shared),
        scenario!(broadcast_order_three_clients, DEFAULT_ARGS, Shared),
        scenario!(presence_join_leave, DEFAULT_ARGS, Exclusive),
        scenario!(presence_coalesced, DEFAULT_ARGS, Exclusive),
        scenario!(error_codes_keep_connection, DEFAULT_ARGS, Shared),
        scenario!(since_replay, DEFAULT_ARGS, Shared),
        scenario!(since_reset, DEFAULT_ARGS, Exclusive),
        scenario!(close_1003_binary, DEFAULT_ARGS, Shared),
        scenario!(close_1007_invalid_utf8, DEFAULT_ARGS, Shared),
        scenario!(close_1009_too_big, DEFAULT_ARGS, Shared),
        scenario!(close_1002_protocol, DEFAULT_ARGS, Shared),
        scenario!(ping_pong_echo, DEFAULT_ARGS, Shared),
        scenario!(close_handshake_reply, DEFAULT_ARGS, Shared),
        scenario!(close_registered_codes, DEFAULT_ARGS, Shared),
        scenario!(heartbeat_drop, HEARTBEAT_ARGS, Shared),
        scenario!(stuck_readers_dropped, WRITE_TIMEOUT_ARGS, OwnProcess),
        scenario!(fragment_flood, DEFAULT_ARGS, OwnProcess),
        scenario!(connection_ceiling, CEILING_ARGS, Shared),
        scenario!(connections_per_address, PER_ADDRESS_ARGS, Shared),
        scenario!(slow_request_heads_dropped, HEAD_TIMEOUT_ARGS, Shared),
        scenario!(request_head_too_large, DEFAULT_ARGS, Shared),
        scenario!(message_rate_limited, RATE_ARGS, Shared),
        scenario!(auth_refuses_strangers, AUTH_ARGS, Shared),
        scenario!(auth_sessions_and_tickets, AUTH_ARGS, Shared),
        scenario!(auth_sign_out_ends_connections, AUTH_ARGS, Shared),
        scenario!(session_route_needs_auth, DEFAULT_ARGS, Shared),
        scenario!(echo_route, DEFAULT_ARGS, Shared),
        scenario!(post_messages_codes, DEFAULT_ARGS, Shared),
        scenario!(sse_headers_and_framing, DEFAULT_ARGS, Shared),
        scenario!(events_last_event_id_resume, DEFAULT_ARGS, Shared),
        scenario!(events_reset_on_bad_id, DEFAULT_ARGS, Shared),
        scenario!(events_reset_too_old, DEFAULT_ARGS, Exclusive),
        scenario!(sse_heartbeat_event, HEARTBEAT_ARGS, Shared),
        scenario!(stream_tokens, DEFAULT_ARGS, Shared),
        scenario!(stream_resume, DEFAULT_ARGS, Shared),
        scenario!(clean_shutdown, SHUTDOWN_ARGS, OwnProcess),
    ]
}

// ---------------------------------------------------------------------------------
// Helpers

/// A tag unique within this test process, for names and contents: `PREFIX-N-XXXX`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let number = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = random_key();
    format!("{prefix}-{number}-{:02x}{:02x}", random[0], random[1])
}

/// Fails unless `value` is an object with exactly these keys.
fn expect_keys(value: &Value, keys: &[&str]) -> ScenarioResult {
    let Some(object) = value.as_object() else {
        return Err(format!("{value} is not a JSON object"));
    };
    let got: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = keys.iter().copied().collect();
    ensure!(
        got == expected,
        "{} has the keys {got:?}, expected {expected:?}",
        shorten(&value.to_string())
    );
    Ok(())
}

/// `value[key]` as a u64.
fn number(value: &Value, key: &str) -> Result<u64, String> {
    value[key]
        .as_u64()
        .ok_or_else(|| format!("{key:?} of {} is not a number", shorten(&value.to_string())))
}

/// Checks the shape of a chat message: the keys, the type, a recent `ts`.
fn check_chat_shape(message: &Value) -> ScenarioResult {
    expect_keys(message, &["type", "seq", "from", "content", "ts"])?;
    ensure!(message["type"] == "message", "not a message: {message}");
    ensure!(
        message["from"].is_string() && message["content"].is_string(),
        "from and content must be strings: {}",
        shorten(&message.to_string())
    );
    let ts = number(message, "ts")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64);
    ensure!(
        ts.abs_diff(now) < 5 * 60 * 1000,
        "ts {ts} is not the current time in Unix milliseconds (now {now})"
    );
    Ok(())
}

/// The K of `anon-K`, if `name` is that.
fn anon_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("anon-")?;
    let well_formed = !digits.is_empty()
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && !digits.starts_with('0');
    well_formed.then(|| digits.parse().ok()).flatten()
}

/// Whether a chat message's content starts with `TAG ` (see [`flood`]).
fn has_tag(message: &Value, tag: &str) -> bool {
    message["content"]
        .as_str()
        .and_then(|content| content.strip_prefix(tag))
        .is_some_and(|rest| rest.starts_with(' '))
}

/// Posts `{"content":CONTENT}` and returns the seq of the `202 {"seq":N}` answer.
async fn post_chat(addr: SocketAddr, content: &str) -> Result<u64, String> {
    let body = json!({ "content": content }).to_string();
    let response = http::post_json(addr, "/messages", &body).await?;
    ensure!(
        response.head.status == 202,
        "POST /messages answered {} {:?}, expected 202",
        response.head.status,
        shorten(&response.text())
    );
    number(&response.json()?, "seq")
}

/// Posts `count` messages `TAG 0`, `TAG 1`, ... from four connections at a time and
/// returns the highest seq the server answered.
async fn flood(addr: SocketAddr, count: usize, tag: &str) -> Result<u64, String> {
    const WORKERS: usize = 4;
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let mut highest = 0;
                for index in (worker..count).step_by(WORKERS) {
                    highest = highest.max(post_chat(addr, &format!("{tag} {index}")).await?);
                }
                Ok::<u64, String>(highest)
            })
        })
        .collect();
    let mut highest = 0;
    for worker in join_all(workers).await {
        let worker_highest = worker.map_err(|error| format!("a poster panicked: {error}"))??;
        highest = highest.max(worker_highest);
    }
    Ok(highest)
}

/// Reads `client` until nothing arrives for 300 ms (at most 5 s) and returns the
/// online count it last heard of (from a presence message, else its welcome).
async fn settle(client: &mut ChatClient) -> Result<u64, String> {
    let mut online = number(&client.welcome, "online")?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let messages = client.drain_for(Duration::from_millis(300)).await?;
        if messages.is_empty() {
            return Ok(online);
        }
        for message in &messages {
            if message["type"] == "presence" {
                online = number(message, "online")?;
            }
        }
        ensure!(
            Instant::now() < deadline,
            "the chat never went quiet: {}",
            summarize(&messages)
        );
    }
}

/// Reads `client` until a presence message and checks its count.
async fn expect_presence(client: &mut ChatClient, online: u64) -> ScenarioResult {
    let who = client.name().to_owned();
    let (presence, _) = client
        .recv_until("waiting for a presence message", |message| {
            message["type"] == "presence"
        })
        .await?;
    expect_keys(&presence, &["type", "online"])?;
    ensure!(
        presence["online"] == online,
        "{who} got {presence}, expected online {online}"
    );
    Ok(())
}

/// The events of an SSE body as blocks of lines: split at blank lines, comment and
/// `retry` lines left out.
fn event_blocks(raw: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(raw)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    text.split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter(|line| !line.starts_with(':') && !line.starts_with("retry:"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|block| !block.is_empty())
        .collect()
}

/// Reads SSE events until one for which `wanted` is true.
async fn sse_until(
    stream: &mut SseStream,
    what: &str,
    wanted: impl Fn(&ParsedEvent) -> bool,
) -> Result<ParsedEvent, String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut skipped = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = stream.next_event(left).await.map_err(|error| {
            format!(
                "{what}: {error} (before it: {} events, the last {:?})",
                skipped.len(),
                skipped
                    .last()
                    .map(|event: &ParsedEvent| shorten(&event.data))
            )
        })?;
        if wanted(&event) {
            return Ok(event);
        }
        skipped.push(event);
    }
}

/// The JSON in an SSE event's data.
fn event_json(event: &ParsedEvent) -> Result<Value, String> {
    serde_json::from_str(&event.data)
        .map_err(|error| format!("SSE data {:?} is not JSON: {error}", shorten(&event.data)))
}

/// Runs several named checks and reports every failure, not only the first.
fn all_of(results: Vec<(String, ScenarioResult)>) -> ScenarioResult {
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(name, result)| result.err().map(|error| format!("{name}: {error}")))
        .collect();
    ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

// ---------------------------------------------------------------------------------
// Plain HTTP

/// `GET /` is the shared page, byte for byte; `GET /healthz` is `200 ok`.
async fn page_and_healthz(target: Target) -> ScenarioResult {
    let page = http::get(target.addr, "/").await?;
    ensure!(
        page.head.status == 200,
        "GET / answered {}",
        page.head.status
    );
    let content_type = page.head.header("content-type").unwrap_or_default();
    ensure!(
        content_type.starts_with("text/html"),
        "GET / has Content-Type {content_type:?}, expected text/html"
    );
    ensure!(
        page.body == wsse_app::page::INDEX_HTML.as_bytes(),
        "GET / sent {} bytes that differ from wsse_app::page::INDEX_HTML ({} bytes)",
        page.body.len(),
        wsse_app::page::INDEX_HTML.len()
    );
    let health = http::get(target.addr, "/healthz").await?;
    ensure!(
        health.head.status == 200 && health.body == b"ok",
        "GET /healthz answered {} {:?}, expected 200 \"ok\"",
        health.head.status,
        health.text()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------
// The WebSocket handshake

/// The RFC's sample key gets the RFC's sample accept value, on both routes.
async fn handshake_accept_value(target: Target) -> ScenarioResult {
    for path in ["/ws?name=rfc", "/echo"] {
        let (_stream, head, _) = RawWs::handshake(target.addr, path, RFC_KEY, &[]).await?;
        ensure!(
            head.status == 101,
            "{path}: the upgrade answered {} {}",
            head.status,
            head.reason
        );
        let accept = head.header("sec-websocket-accept");
        ensure!(
            accept == Some(RFC_ACCEPT),
            "{path}: Sec-WebSocket-Accept is {accept:?}, expected {RFC_ACCEPT:?}"
        );
        let upgrade = head.header("upgrade").unwrap_or_default();
        ensure!(
            upgrade.eq_ignore_ascii_case("websocket"),
            "{path}: Upgrade is {upgrade:?}"
        );
        let connection = head.header("connection").unwrap_or_default();
        ensure!(
            connection
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade")),
            "{path}: Connection is {connection:?}"
        );
    }
    Ok(())
}

/// A GET with the given header lines (plus Host), as raw text.
fn raw_request(method: &str, path: &str, host: &str, lines: &[&str]) -> String {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for line in lines {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

/// Requests that are not valid upgrades get a 4xx (never 101); a wrong version gets
/// 400, or 426 with `Sec-WebSocket-Version: 13`.
async fn handshake_rejections(target: Target) -> ScenarioResult {
    let key = format!("Sec-WebSocket-Key: {RFC_KEY}");
    let upgrade = "Upgrade: websocket";
    let connection = "Connection: Upgrade";
    let version = "Sec-WebSocket-Version: 13";
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        ("a plain GET", "GET", vec!["Connection: close"]),
        ("no Upgrade header", "GET", vec![connection, &key, version]),
        (
            "Upgrade: h2c",
            "GET",
            vec!["Upgrade: h2c", connection, &key, version],
        ),
        (
            "no Connection: upgrade",
            "GET",
            vec![upgrade, &key, version],
        ),
        (
            "Sec-WebSocket-Version: 8",
            "GET",
            vec![upgrade, connection, &key, "Sec-WebSocket-Version: 8"],
        ),
        (
            "no Sec-WebSocket-Version",
            "GET",
            vec![upgrade, connection, &key],
        ),
        (
            "no Sec-WebSocket-Key",
            "GET",
            vec![upgrade, connection, version],
        ),
        (
            "a key of 10 bytes",
            "GET",
            vec![
                upgrade,
                connection,
                "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==",
                version,
            ],
        ),
        (
            "a key that is not base64",
            "GET",
            vec![
                upgrade,
                connection,
                "Sec-WebSocket-Key: not a key!",
                version,
            ],
        ),
        (
            "POST",
            "POST",
            vec![upgrade, connection, &key, version, "Content-Length: 0"],
        ),
    ];
    let mut results = Vec::new();
    for path in ["/ws?name=rejected", "/echo"] {
        for (what, method, lines) in &cases {
            let request = raw_request(method, path, &target.host(), lines);
            let outcome = async {
                let (_stream, head, _) =
                    crate::ws::send_raw_request(target.addr, request.as_bytes()).await?;
                ensure!(
                    (400..500).contains(&head.status),
                    "answered {} {}, expected 4xx",
                    head.status,
                    head.reason
                );
                if head.status == 426 {
                    let advertised = head.header("sec-websocket-version");
                    ensure!(
                        advertised == Some("13"),
                        "426 with Sec-WebSocket-Version {advertised:?}, expected \"13\""
                    );
                }
                Ok(())
            }
            .await;
            results.push((format!("{path} {what}"), outcome));
        }
    }
    all_of(results)
}

/// An upgrade without a `Host` header, or with two, is a malformed HTTP/1.1 request
/// and not a valid handshake (RFC 6455 section 4.2.1): 400.
async fn handshake_requires_host(target: Target) -> ScenarioResult {
    let upgrade = format!(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {RFC_KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n"
    );
    let host = format!("Host: {}\r\n", target.host());
    let cases = [
        ("no Host", String::new()),
        ("two Host headers", format!("{host}Host: other.example\r\n")),
    ];
    let mut results = Vec::new();
    for path in ["/ws?name=hostless", "/echo"] {
        for (what, hosts) in &cases {
            let request = format!("GET {path} HTTP/1.1\r\n{hosts}{upgrade}\r\n");
            let outcome = async {
                let (_stream, head, _) =
                    crate::ws::send_raw_request(target.addr, request.as_bytes()).await?;
                ensure!(
                    head.status == 400,
                    "answered {} {}, expected 400",
                    head.status,
                    head.reason
                );
                Ok(())
            }
            .await;
            results.push((format!("{path} {what}"), outcome));
        }
    }
    all_of(results)
}

/// Every server refuses with the app crate's answer, status and body alike: a key
/// that is not 16 bytes, a version other than 13 (with `Sec-WebSocket-Version: 13`),
/// a foreign `Origin`, and a `POST /messages` that is not JSON.
async fn refusals_are_the_app_crates(target: Target) -> ScenarioResult {
    use wsse_app::refusals;
    let config = wsse_app::Config::default();
    let host = target.host();
    let upgrade = |key: &'static str, version: &'static str, origin: Option<&'static str>| {
        let mut headers = vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", version),
            ("Sec-WebSocket-Key", key),
        ];
        headers.extend(origin.map(|origin| ("Origin", origin)));
        headers
    };
    let cases = [
        ("a 10-byte key", upgrade("dGhlIHNhbXBsZQ==", "13", None)),
        ("version 8", upgrade(RFC_KEY, "8", None)),
        (
            "a foreign origin",
            upgrade(RFC_KEY, "13", Some("http://evil.example")),
        ),
    ];
    let mut results = Vec::new();
    for path in ["/ws?name=refused", "/echo"] {
        for (what, headers) in &cases {
            let outcome = async {
                let mut fields: Vec<(&str, &[u8])> = headers
                    .iter()
                    .map(|(name, value)| (*name, value.as_bytes()))
                    .collect();
                fields.push(("Host", host.as_bytes()));
                let expected = refusals::websocket_upgrade(&config, "GET", (1, 1), fields)
                    .ok_or("the app crate accepts this request")?;
                let response = http::request(target.addr, "GET", path, headers, b"").await?;
                expect_refusal(&response, &expected)
            }
            .await;
            results.push((format!("{path} {what}"), outcome));
        }
    }
    let outcome = async {
        let expected = refusals::post_content_type(Some("text/plain"))
            .ok_or("the app crate accepts text/plain")?;
        let response = http::request(
            target.addr,
            "POST",
            "/messages",
            &[("Content-Type", "text/plain")],
            br#"{"content":"hi"}"#,
        )
        .await?;
        expect_refusal(&response, &expected)
    }
    .await;
    results.push(("POST /messages as text/plain".to_owned(), outcome));
    all_of(results)
}

/// Fails unless `response` is `expected`: its status, body and headers.
fn expect_refusal(
    response: &http::Response,
    expected: &wsse_app::refusals::Refusal,
) -> ScenarioResult {
    ensure!(
        response.head.status == expected.status && response.text() == expected.body,
        "answered {} {:?}, expected {} {:?}",
        response.head.status,
        response.text(),
        expected.status,
        expected.body
    );
    for (name, value) in expected.headers {
        ensure!(
            response.head.header(name) == Some(*value),
            "{name}: {:?}, expected {value:?}",
            response.head.header(name)
        );
    }
    Ok(())
}

/// The status of an upgrade of `/ws` with these headers.
async fn upgrade_status(target: &Target, headers: &[(&str, &str)]) -> Result<u16, String> {
    let key = wsse_wire::handshake::generate_key();
    let (_stream, head, _) =
        RawWs::handshake(target.addr, "/ws?name=origin", &key, headers).await?;
    Ok(head.status)
}

/// A foreign `Origin` gets 403, also with forwarded headers that claim the server is
/// that origin (the server was not told to trust a proxy); the server's own origin,
/// over http or https (a TLS proxy in front keeps the host), and no origin get 101.
async fn origin_forbidden(target: Target) -> ScenarioResult {
    let own = format!("http://{}", target.host());
    let own_https = format!("https://{}", target.host());
    let other_port = format!(
        "http://{}:{}",
        target.addr.ip(),
        target.addr.port().wrapping_add(1).max(1)
    );
    let forged_x_forwarded = [
        ("Origin", "https://evil.example"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
    ];
    let forged_forwarded = [
        ("Origin", "https://evil.example"),
        ("Forwarded", "proto=https;host=evil.example"),
    ];
    let cases: [(&[(&str, &str)], u16); 8] = [
        (&[("Origin", "http://evil.example")], 403),
        (&[("Origin", "null")], 403),
        (&[("Origin", other_port.as_str())], 403),
        (&forged_x_forwarded, 403),
        (&forged_forwarded, 403),
        (&[("Origin", own.as_str())], 101),
        (&[("Origin", own_https.as_str())], 101),
        (&[], 101),
    ];
    let mut results = Vec::new();
    for (headers, expected) in cases {
        let outcome = async {
            let status = upgrade_status(&target, headers).await?;
            ensure!(status == expected, "answered {status}, expected {expected}");
            Ok(())
        }
        .await;
        let what = if headers.is_empty() {
            "no Origin".to_owned()
        } else {
            headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        results.push((what, outcome));
    }
    all_of(results)
}

/// `--allow-origin` adds exactly that origin, scheme and port included.
async fn origin_allow_list(target: Target) -> ScenarioResult {
    let own = format!("http://{}", target.host());
    let cases = [
        ("http://trusted.example:8080", 101),
        ("http://trusted.example:8081", 403),
        // The scheme is part of the origin: an https page is another one.
        ("https://trusted.example:8080", 403),
        ("http://evil.example", 403),
        (own.as_str(), 101),
    ];
    let mut results = Vec::new();
    for (origin, expected) in cases {
        let outcome = async {
            let status = upgrade_status(&target, &[("Origin", origin)]).await?;
            ensure!(status == expected, "answered {status}, expected {expected}");
            Ok(())
        }
        .await;
        results.push((format!("Origin: {origin}"), outcome));
    }
    all_of(results)
}

// ---------------------------------------------------------------------------------
// The chat

/// The welcome's fields, valid names kept, invalid ones replaced by `anon-K`.
async fn welcome_and_names(target: Target) -> ScenarioResult {
    let tag = unique("wel");
    let posted = post_chat(target.addr, &format!("{tag} before")).await?;
    let name = format!("ada-{tag}");
    let client =
        ChatClient::connect(target.addr, &format!("name={}", encode_component(&name))).await?;
    let welcome = client.welcome.clone();
    client.close().await;
    expect_keys(&welcome, &["type", "you", "online", "seq"])?;
    ensure!(
        welcome["you"] == name.as_str(),
        "welcome {welcome} for name {name:?}"
    );
    ensure!(
        number(&welcome, "online")? >= 1,
        "welcome {welcome}: online must count this client"
    );
    ensure!(
        number(&welcome, "seq")? >= posted,
        "welcome {welcome}: seq must be the newest message, which is at least {posted}"
    );

    let mut results = Vec::new();
    let longest = "y".repeat(32);
    let kept = [
        ("name=J%C3%BCrgen+K".to_owned(), "Jürgen K"),
        // The first `name` counts; a `since` that is not a number is ignored.
        ("since=x&name=Zo%C3%AB&name=second".to_owned(), "Zoë"),
        (format!("name={longest}"), longest.as_str()),
    ];
    for (query, expected) in kept {
        let outcome = async {
            let client = ChatClient::connect(target.addr, &query).await?;
            let you = client.name().to_owned();
            client.close().await;
            ensure!(
                you == expected,
                "got the name {you:?}, expected {expected:?}"
            );
            Ok(())
        }
        .await;
        results.push((format!("?{query}"), outcome));
    }

    let too_long = format!("name={}", "x".repeat(33));
    let invalid = [
        "",
        "name=",
        "name=a%0Ab",
        "name=tab%09",
        "name=%7F",
        too_long.as_str(),
    ];
    let mut previous = 0;
    for query in invalid {
        let outcome = async {
            let client = ChatClient::connect(target.addr, query).await?;
            let you = client.name().to_owned();
            client.close().await;
            let number = anon_number(&you)
                .ok_or_else(|| format!("got the name {you:?}, expected anon-K"))?;
            ensure!(
                number > previous,
                "got {you:?} after anon-{previous}: K must grow with each anonymous client"
            );
            previous = number;
            Ok(())
        }
        .await;
        let shown = if query.len() > 20 { "name=x*33" } else { query };
        results.push((format!("?{shown}"), outcome));
    }
    all_of(results)
}

/// Three clients sending at once all see every message, in the same order, with
/// seqs that grow by one per message overall.
async fn broadcast_order_three_clients(target: Target) -> ScenarioResult {
    const PER_CLIENT: usize = 5;
    let tag = unique("bc");
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|x| format!("{tag}{x}"))
        .collect();
    let mut clients = Vec::new();
    for name in &names {
        clients.push(ChatClient::connect(target.addr, &format!("name={name}")).await?);
    }
    let runs = clients.into_iter().map(|mut client| {
        let tag = tag.clone();
        async move {
            for index in 0..PER_CLIENT {
                client
                    .send_chat(&format!("{tag} {} {index}", client.name()))
                    .await?;
            }
            let mut seen = Vec::new();
            while seen.len() < PER_CLIENT * 3 {
                let (message, _) = client
                    .recv_until("waiting for the tagged messages", |message| {
                        message["type"] == "message"
                            && message["content"]
                                .as_str()
                                .is_some_and(|content| content.starts_with(&format!("{tag} ")))
                    })
                    .await
                    .map_err(|error| format!("after {} tagged messages: {error}", seen.len()))?;
                seen.push(message);
            }
            client.close().await;
            Ok::<Vec<Value>, String>(seen)
        }
    });
    let lists: Vec<Vec<Value>> = join_all(runs).await.into_iter().collect::<Result<_, _>>()?;
    for (name, list) in names.iter().zip(&lists) {
        ensure!(
            list == &lists[0],
            "{name} saw the messages differently from {}: {} vs {}",
            names[0],
            summarize(list),
            summarize(&lists[0])
        );
    }
    let mut previous_seq = 0;
    let mut next_index = vec![0; names.len()];
    for message in &lists[0] {
        check_chat_shape(message)?;
        let seq = number(message, "seq")?;
        ensure!(
            seq > previous_seq,
            "seq {seq} after {previous_seq}: not increasing"
        );
        previous_seq = seq;
        let from = message["from"].as_str().unwrap_or_default();
        let sender = names
            .iter()
            .position(|name| name == from)
            .ok_or_else(|| format!("{message} is from {from:?}, not one of {names:?}"))?;
        let expected = format!("{tag} {from} {}", next_index[sender]);
        ensure!(
            message["content"] == expected.as_str(),
            "{from}'s messages out of order: got {}, expected {expected:?}",
            message["content"]
        );
        next_index[sender] += 1;
    }
    Ok(())
}

/// Joining and leaving (politely or by dropping the connection) tell everyone,
/// including the newcomer and the `/events` listeners, the new count. Presence is
/// coalesced (at most one count per client per `PRESENCE_INTERVAL`, the latest), so a
/// listener may miss a count that lasted less than that, but never the last one, and
/// never hears a count the chat did not have.
async fn presence_join_leave(target: Target) -> ScenarioResult {
    let tag = unique("pr");
    let mut events = SseStream::open(target.addr, "/events", &[]).await?;
    let mut a = ChatClient::connect(target.addr, &format!("name={tag}a")).await?;
    let n = settle(&mut a).await?;

    let mut b = ChatClient::connect(target.addr, &format!("name={tag}b")).await?;
    ensure!(
        number(&b.welcome, "online")? == n + 1,
        "with {n} online before, the newcomer's welcome says {}",
        b.welcome
    );
    expect_presence(&mut a, n + 1).await?;
    expect_presence(&mut b, n + 1)
        .await
        .map_err(|error| format!("the newcomer must hear of its own arrival: {error}"))?;

    let mut c = ChatClient::connect(target.addr, &format!("name={tag}c")).await?;
    ensure!(
        number(&c.welcome, "online")? == n + 2,
        "the third client's welcome says {}, expected online {}",
        c.welcome,
        n + 2
    );
    expect_presence(&mut a, n + 2).await?;
    expect_presence(&mut b, n + 2).await?;
    expect_presence(&mut c, n + 2).await?;

    c.close().await;
    expect_presence(&mut a, n + 1)
        .await
        .map_err(|error| format!("after a polite close: {error}"))?;
    expect_presence(&mut b, n + 1).await?;

    drop(b);
    expect_presence(&mut a, n)
        .await
        .map_err(|error| format!("after a dropped connection: {error}"))?;

    // The listener's counts: each one the chat had, none twice in a row, the last n.
    let mut counts = Vec::new();
    while counts.last() != Some(&n) {
        let event = sse_until(&mut events, "the presence events on /events", |event| {
            event.event_type == "presence"
        })
        .await
        .map_err(|error| format!("{error}; counts so far {counts:?}, expected to end at {n}"))?;
        let data = event_json(&event)?;
        expect_keys(&data, &["type", "online"])?;
        let online = number(&data, "online")?;
        ensure!(
            (n..=n + 2).contains(&online) && counts.last() != Some(&online),
            "the /events listener heard {online} after {counts:?}; the chat had {n} to {}",
            n + 2
        );
        counts.push(online);
    }
    a.close().await;
    Ok(())
}

/// Many clients joining at once cost each listener a few presence frames, not one per
/// join: at most one per `PRESENCE_INTERVAL` (plus the one that may go out at once),
/// and the last one carries the final count. An upper bound, so a slow machine can
/// only make it easier.
async fn presence_coalesced(target: Target) -> ScenarioResult {
    const JOINS: usize = 60;
    let mut watcher = ChatClient::connect(target.addr, &format!("name={}", unique("pw"))).await?;
    let before = settle(&mut watcher).await?;
    let started = Instant::now();
    let joined = join_all((0..JOINS).map(|_| ChatClient::connect(target.addr, "")))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let expected = before + JOINS as u64;
    let mut frames = 0_u64;
    loop {
        let (presence, _) = watcher
            .recv_until("waiting for the final count", |message| {
                message["type"] == "presence"
            })
            .await?;
        frames += 1;
        if number(&presence, "online")? == expected {
            break;
        }
    }
    let interval = wsse_app::hub::PRESENCE_INTERVAL;
    let allowed = started.elapsed().as_millis() / interval.as_millis() + 2;
    ensure!(
        u128::from(frames) <= allowed,
        "{JOINS} joins cost the watcher {frames} presence frames in {} ms; at most one per {} ms allows {allowed}",
        started.elapsed().as_millis(),
        interval.as_millis()
    );
    drop(joined);
    Ok(())
}

/// Each kind of bad input gets its error code, only to the sender, and the
/// connection stays usable; 4096 characters (not bytes) is still fine.
async fn error_codes_keep_connection(target: Target) -> ScenarioResult {
    let tag = unique("err");
    let mut sender = ChatClient::connect(target.addr, &format!("name={tag}s")).await?;
    let mut observer = ChatClient::connect(target.addr, &format!("name={tag}o")).await?;
    let sender_name = sender.name().to_owned();
    let cases = [
        ("not JSON".to_owned(), "bad_json"),
        ("[1,2]".to_owned(), "bad_json"),
        (r#"{"content":"no type"}"#.to_owned(), "bad_json"),
        (r#"{"type":"dance"}"#.to_owned(), "bad_type"),
        (r#"{"type":"message"}"#.to_owned(), "bad_type"),
        (r#"{"type":"message","content":5}"#.to_owned(), "bad_type"),
        (
            json!({"type": "message", "content": ""}).to_string(),
            "empty",
        ),
        (
            json!({"type": "message", "content": "é".repeat(4097)}).to_string(),
            "too_long",
        ),
    ];
    for (text, code) in &cases {
        sender.send_text(text.clone()).await?;
        let (reply, _) = sender
            .recv_until("waiting for an error", |message| {
                message["type"] == "error"
                    || (message["type"] == "message" && message["from"] == sender_name.as_str())
            })
            .await?;
        expect_keys(&reply, &["type", "code", "message"])?;
        ensure!(
            reply["code"] == *code,
            "sending {} got {}, expected the code {code:?}",
            shorten(text),
            shorten(&reply.to_string())
        );
        ensure!(
            reply["message"]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
            "the error {reply} needs a message for people"
        );
    }
    let content = format!("{tag} {}", "é".repeat(4096 - tag.chars().count() - 1));
    sender.send_chat(&content).await?;
    let echoed = sender.recv_chat(&content).await?;
    check_chat_shape(&echoed)?;
    let (seen, before) = observer
        .recv_until("waiting for the valid message", |message| {
            message["type"] == "message" && message["content"] == content.as_str()
        })
        .await?;
    ensure!(
        seen == echoed,
        "the observer got {seen}, the sender {echoed}"
    );
    ensure!(
        before.iter().all(|message| message["type"] != "error"),
        "another client received the sender's errors: {}",
        summarize(&before)
    );
    sender.close().await;
    observer.close().await;
    Ok(())
}

/// Reads chat messages from `client` and checks they are exactly seq `from`,
/// `from + 1`, ... up to `until`; `expected` gives contents to check on the way.
async fn expect_contiguous(
    client: &mut ChatClient,
    from: u64,
    until: u64,
    expected: &[(u64, String)],
) -> ScenarioResult {
    let mut next = from;
    while next <= until {
        let message = client.recv().await.map_err(|error| {
            format!("waiting for seq {next} (replaying {from}..={until}): {error}")
        })?;
        match message["type"].as_str() {
            Some("presence") => continue,
            Some("message") => {}
            _ => return Err(format!("expected seq {next}, got {message}")),
        }
        let seq = number(&message, "seq")?;
        ensure!(
            seq == next,
            "expected seq {next}, got {seq} ({}): a gap or a duplicate",
            shorten(&message.to_string())
        );
        if let Some((_, content)) = expected.iter().find(|(at, _)| *at == seq) {
            ensure!(
                message["content"] == content.as_str(),
                "seq {seq} is {}, expected the content {content:?}",
                shorten(&message.to_string())
            );
        }
        next += 1;
    }
    Ok(())
}

/// `since=SEQ` replays what came after SEQ, then goes live, with no gap or duplicate.
async fn since_replay(target: Target) -> ScenarioResult {
    let tag = unique("since");
    let mut writer = ChatClient::connect(target.addr, &format!("name={tag}w")).await?;
    let mut sent = Vec::new();
    for index in 1..=3 {
        let content = format!("{tag} {index}");
        writer.send_chat(&content).await?;
        let seq = number(&writer.recv_chat(&content).await?, "seq")?;
        sent.push((seq, content));
    }
    let first = sent[0].0;
    let mut reader =
        ChatClient::connect(target.addr, &format!("name={tag}r&since={first}")).await?;
    ensure!(
        reader.welcome_seq() >= sent[2].0,
        "the welcome {} comes after seq {}",
        reader.welcome,
        sent[2].0
    );
    expect_contiguous(&mut reader, first + 1, sent[2].0, &sent).await?;

    let content = format!("{tag} live");
    writer.send_chat(&content).await?;
    let live = number(&writer.recv_chat(&content).await?, "seq")?;
    expect_contiguous(&mut reader, sent[2].0 + 1, live, &[(live, content)])
        .await
        .map_err(|error| format!("going live after the replay: {error}"))?;
    writer.close().await;
    reader.close().await;
    Ok(())
}

/// A `since` older than the history: `reset` with the oldest seq first, then exactly
/// the 1000 retained messages.
async fn since_reset(target: Target) -> ScenarioResult {
    let tag = unique("reset");
    let highest = flood(target.addr, HISTORY as usize + 1, &tag).await?;
    let mut client = ChatClient::connect(target.addr, &format!("name={tag}&since=0")).await?;
    let last = client.welcome_seq();
    ensure!(
        last >= highest,
        "the welcome {} is older than the last post ({highest})",
        client.welcome
    );
    let oldest = last - (HISTORY - 1);
    let reset = client.recv().await?;
    ensure!(
        reset == json!({"type": "reset", "oldest": oldest}),
        "after the welcome (seq {last}) came {reset}, expected {{\"type\":\"reset\",\"oldest\":{oldest}}}"
    );
    for expected in oldest..=last {
        let message = client.recv().await?;
        ensure!(
            message["type"] == "message" && message["seq"] == expected,
            "replay: expected seq {expected}, got {}",
            shorten(&message.to_string())
        );
        ensure!(
            has_tag(&message, &tag),
            "replay: seq {expected} is not among the 1001 messages just posted: {}",
            shorten(&message.to_string())
        );
    }
    let after = client.drain_for(Duration::from_millis(300)).await?;
    ensure!(
        after.iter().all(|message| message["type"] == "presence"),
        "more than the 1000 retained messages were replayed: {}",
        summarize(&after)
    );
    client.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------
// WebSocket close codes and control frames

/// A binary message on the chat is closed with 1003.
async fn close_1003_binary(target: Target) -> ScenarioResult {
    let mut client = ChatClient::connect(target.addr, "name=binary").await?;
    client
        .send(LibraryMessage::binary(vec![1_u8, 2, 3]))
        .await?;
    let code = client.expect_close(STEP_TIMEOUT).await?;
    ensure!(
        code == 1003,
        "a binary message got close code {code}, expected 1003"
    );
    Ok(())
}

/// Opens a raw connection to `path`, lets `send` misbehave, and checks the close code.
async fn expect_close_after(
    target: &Target,
    path: &str,
    expected: u16,
    frames: Vec<Vec<u8>>,
) -> ScenarioResult {
    let mut socket = RawWs::connect(target.addr, path, &[]).await?;
    let bytes: Vec<u8> = frames.concat();
    let code = socket.send_and_expect_close(bytes, STEP_TIMEOUT).await?;
    ensure!(
        code == expected,
        "got close code {code}, expected {expected}"
    );
    Ok(())
}

/// One masked frame.
fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    wsse_wire::frame::encode_frame(&mut bytes, fin, opcode, Some(random_key()), payload);
    bytes
}

/// A frame with any header.
fn custom_frame(header: FrameHeader, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    header.encode(&mut bytes);
    let start = bytes.len();
    bytes.extend_from_slice(payload);
    if let Some(key) = header.mask {
        wsse_wire::mask::apply_mask(&mut bytes[start..], key, 0);
    }
    bytes
}

/// Text that is not UTF-8 is closed with 1007, in one frame or across fragments.
async fn close_1007_invalid_utf8(target: Target) -> ScenarioResult {
    let mut results = Vec::new();
    for path in ["/ws?name=utf8", "/echo"] {
        let cases = [
            (
                "one frame",
                vec![frame(true, OpCode::Text, &[b'o', b'k', 0xff, 0xfe])],
            ),
            (
                "a fragmented message",
                vec![
                    frame(false, OpCode::Text, &[b'a', 0xce]),
                    frame(true, OpCode::Continuation, &[0x28]),
                ],
            ),
        ];
        for (what, frames) in cases {
            let outcome = expect_close_after(&target, path, 1007, frames).await;
            results.push((format!("{path} {what}"), outcome));
        }
    }
    all_of(results)
}

/// Above the limit (64 KiB on the chat, 16 MiB on the echo) is closed with 1009;
/// exactly the limit is not.
async fn close_1009_too_big(target: Target) -> ScenarioResult {
    let mut results = Vec::new();
    let chat_over = vec![frame(true, OpCode::Text, &vec![b'a'; CHAT_LIMIT + 1])];
    results.push((
        "/ws one frame of 64 KiB + 1".to_owned(),
        expect_close_after(&target, "/ws?name=big", 1009, chat_over).await,
    ));
    let half = vec![b'a'; CHAT_LIMIT / 2 + 8];
    let fragments = vec![
        frame(false, OpCode::Text, &half),
        frame(true, OpCode::Continuation, &half),
    ];
    results.push((
        "/ws two fragments of 32 KiB + 8".to_owned(),
        expect_close_after(&target, "/ws?name=big", 1009, fragments).await,
    ));
    let echo_over = vec![frame(true, OpCode::Binary, &vec![7; ECHO_LIMIT + 1])];
    results.push((
        "/echo one frame of 16 MiB + 1".to_owned(),
        expect_close_after(&target, "/echo", 1009, echo_over).await,
    ));
    let at_limit = async {
        let mut socket = RawWs::connect(target.addr, "/ws?name=limit", &[]).await?;
        socket.send_text(&"a".repeat(CHAT_LIMIT)).await?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let reply = socket
                .recv_json(deadline.saturating_duration_since(Instant::now()))
                .await?;
            if reply["type"] == "error" {
                ensure!(
                    reply["code"] == "bad_json",
                    "got {reply}, expected bad_json"
                );
                return Ok(());
            }
        }
    }
    .await;
    results.push((
        "/ws exactly 64 KiB of not-JSON (an error reply, not a close)".to_owned(),
        at_limit,
    ));
    all_of(results)
}

/// Breaking RFC 6455 is closed with 1002.
async fn close_1002_protocol(target: Target) -> ScenarioResult {
    let unmasked = custom_frame(FrameHeader::new(OpCode::Text, 2), b"hi");
    let reserved_opcode = frame(true, OpCode::Reserved(3), b"x");
    let rsv1 = custom_frame(
        FrameHeader {
            rsv1: true,
            mask: Some(random_key()),
            ..FrameHeader::new(OpCode::Text, 2)
        },
        b"hi",
    );
    let lone_continuation = frame(true, OpCode::Continuation, b"x");
    let long_ping = frame(true, OpCode::Ping, &[0; 126]);
    let fragmented_ping = frame(false, OpCode::Ping, b"x");
    let cases = [
        ("an unmasked frame", unmasked),
        ("reserved opcode 3", reserved_opcode),
        ("RSV1 set", rsv1),
        ("a continuation with nothing to continue", lone_continuation),
        ("a ping of 126 bytes", long_ping),
        ("a fragmented ping", fragmented_ping),
    ];
    let mut results = Vec::new();
    for path in ["/ws?name=rfc6455", "/echo"] {
        for (what, bytes) in &cases {
            let outcome = expect_close_after(&target, path, 1002, vec![bytes.clone()]).await;
            results.push((format!("{path} {what}"), outcome));
        }
    }
    all_of(results)
}

/// A ping gets a pong with the same payload, on both routes.
async fn ping_pong_echo(target: Target) -> ScenarioResult {
    let tag = unique("ping");
    let payloads = [tag.into_bytes(), Vec::new(), vec![0xab; 125]];
    for path in ["/ws?name=pinger", "/echo"] {
        let mut socket = RawWs::connect(target.addr, path, &[]).await?;
        for payload in &payloads {
            socket.send_frame(true, OpCode::Ping, payload).await?;
            let deadline = Instant::now() + STEP_TIMEOUT;
            loop {
                let event = socket
                    .next(deadline.saturating_duration_since(Instant::now()))
                    .await
                    .map_err(|error| {
                        format!(
                            "{path}: waiting for the pong of a {}-byte ping: {error}",
                            payload.len()
                        )
                    })?;
                match event {
                    RawEvent::Message(Message::Pong(got)) => {
                        ensure!(
                            &got == payload,
                            "{path}: the pong carries {got:?}, expected {payload:?}"
                        );
                        break;
                    }
                    RawEvent::Message(Message::Text(_) | Message::Ping(_)) => {}
                    other => return Err(format!("{path}: expected a pong, got {other:?}")),
                }
            }
        }
    }
    Ok(())
}

/// A client's close frame is answered with a close frame carrying the same code.
async fn close_handshake_reply(target: Target) -> ScenarioResult {
    let mut results = Vec::new();
    for path in ["/ws?name=closer", "/echo"] {
        let payload =
            wsse_wire::close::encode_close_payload(wsse_wire::close::CloseCode::NORMAL, "bye");
        let outcome = expect_close_after(
            &target,
            path,
            1000,
            vec![frame(true, OpCode::Close, &payload)],
        )
        .await;
        results.push((path.to_owned(), outcome));
    }
    all_of(results)
}

/// 1012 (Service Restart) and 1013 (Try Again Later), registered with IANA after RFC
/// 6455, are valid codes: the server echoes them, as it does 1000, instead of
/// answering 1002. (1014, Bad Gateway, is valid too, but tungstenite, under axum and
/// warp, still refuses it; the wire crate's differential tests show that.)
async fn close_registered_codes(target: Target) -> ScenarioResult {
    let mut results = Vec::new();
    for path in ["/ws?name=restarting", "/echo"] {
        for code in [1012, 1013] {
            let payload = wsse_wire::close::encode_close_payload(
                wsse_wire::close::CloseCode(code),
                "restarting",
            );
            let outcome = expect_close_after(
                &target,
                path,
                code,
                vec![frame(true, OpCode::Close, &payload)],
            )
            .await;
            results.push((format!("{path} {code}"), outcome));
        }
    }
    all_of(results)
}

/// With `--heartbeat 1`, a client that never answers pings is dropped after about two
/// intervals, while one that answers stays.
///
/// The first ping comes one interval after the connection, so the silent client has
/// had two intervals to answer at about 3 s; the bound adds a half interval of slack
/// for scheduling and for the connection to close.
async fn heartbeat_drop(target: Target) -> ScenarioResult {
    const DROPPED_WITHIN: Duration = Duration::from_millis(4500);
    let silent = async {
        let started = Instant::now();
        let mut socket = RawWs::connect(target.addr, "/ws?name=silent", &[]).await?;
        let mut pings = 0;
        let deadline = started + DROPPED_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = socket.next(left).await.map_err(|error| {
                format!(
                    "the silent client was not dropped within {} ms ({pings} pings): {error}",
                    DROPPED_WITHIN.as_millis()
                )
            })?;
            match event {
                RawEvent::Message(Message::Ping(_)) => pings += 1,
                RawEvent::Message(Message::Close(_)) | RawEvent::Closed => break,
                RawEvent::Message(_) => {}
            }
        }
        let dropped_after = started.elapsed();
        ensure!(
            pings >= 1,
            "the server dropped the silent client without pinging it"
        );
        ensure!(
            dropped_after >= Duration::from_millis(1500),
            "the silent client was dropped after {} ms: it must get two intervals",
            dropped_after.as_millis()
        );
        Ok::<Duration, String>(dropped_after)
    };
    let answering = async {
        let started = Instant::now();
        let mut socket = RawWs::connect(target.addr, "/ws?name=answering", &[]).await?;
        let mut pings = 0;
        let stay_until = started + DROPPED_WITHIN + Duration::from_millis(500);
        while Instant::now() < stay_until {
            let left = stay_until.saturating_duration_since(Instant::now());
            match socket.next(left).await {
                Err(_) => break,
                Ok(RawEvent::Message(Message::Ping(payload))) => {
                    pings += 1;
                    socket.send_frame(true, OpCode::Pong, &payload).await?;
                }
                Ok(RawEvent::Message(Message::Close(frame))) => {
                    return Err(format!(
                        "the answering client was closed after {} ms: {frame:?}",
                        started.elapsed().as_millis()
                    ));
                }
                Ok(RawEvent::Closed) => {
                    return Err(format!(
                        "the answering client was dropped after {} ms",
                        started.elapsed().as_millis()
                    ));
                }
                Ok(RawEvent::Message(_)) => {}
            }
        }
        ensure!(pings >= 3, "only {pings} pings in 5 s with --heartbeat 1");
        let content = unique("still-here");
        socket
            .send_text(&json!({"type": "message", "content": content}).to_string())
            .await?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            match socket
                .next(deadline.saturating_duration_since(Instant::now()))
                .await?
            {
                RawEvent::Message(Message::Ping(payload)) => {
                    socket.send_frame(true, OpCode::Pong, &payload).await?;
                }
                RawEvent::Message(Message::Text(text)) if text.contains(&content) => break,
                RawEvent::Message(_) => {}
                RawEvent::Closed => return Err("the answering client was dropped".into()),
            }
        }
        Ok(())
    };
    let (silent, answering) = tokio::join!(silent, answering);
    all_of(vec![
        ("the silent client".to_owned(), silent.map(|_| ())),
        ("the answering client".to_owned(), answering),
    ])
}

/// With `--write-timeout 2`, a client that opens `/ws` and one that opens `/events`
/// and then never read are dropped about two seconds after their sockets stop taking
/// bytes, while a chat client and an `/events` client that do read get every message
/// of a flood that fills the stuck ones' buffers, and the server's memory stays
/// bounded.
///
/// The flood is twice what the stuck clients' receive buffers and the server's send
/// buffers hold on loopback (about 4 MB). The stuck clients keep the system's
/// default receive buffer: one much smaller than the packets loopback sends makes
/// the kernel drop data it had room for, and the retransmissions that follow are
/// timed out later and less exactly. "Dropped" is seen from outside twice: the
/// readers' chat hears `online` fall back to 1, and the stuck sockets, once
/// drained, end instead of streaming on.
async fn stuck_readers_dropped(target: Target) -> ScenarioResult {
    /// Messages in the flood, each of about 4 KiB: 8 MB in all.
    const FLOOD: u64 = 2000;
    /// The write timeout the scenario starts the server with.
    const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
    /// The kernel checks the timeout when it probes the closed window, so it drops a
    /// little after the timeout; the rest is slack for scheduling.
    const DROPPED_WITHIN: Duration = Duration::from_secs(5);
    /// What the server may grow by while it serves the flood (it keeps 1000 of its
    /// messages in the history, about 4 MB).
    const MEMORY_GROWTH_LIMIT_KIB: u64 = 64 * 1024;

    let tag = unique("stuck");
    let stuck_chat = open_stuck(target.addr, &format!("/ws?name={tag}"), true).await?;
    let stuck_events = open_stuck(target.addr, "/events", false).await?;

    let mut watcher = ChatClient::connect(target.addr, &format!("name={tag}w")).await?;
    let first = watcher.welcome_seq() + 1;
    let last = first + FLOOD - 1;
    let mut online = number(&watcher.welcome, "online")?;
    while online < 2 {
        let message = watcher
            .recv()
            .await
            .map_err(|error| format!("waiting for the stuck client to be online: {error}"))?;
        if message["type"] == "presence" {
            online = number(&message, "online")?;
        }
    }
    let mut events = SseStream::open(target.addr, "/events", &[]).await?;
    let pid = target.pid()?;
    let memory_before = resident_kib(pid)?;

    // The readers read while the flood goes on; the chat reader notes when it hears
    // that the stuck chat client is gone.
    let chat_reader = tokio::spawn(async move {
        let mut next = first;
        let mut dropped_at = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while next <= last || dropped_at.is_none() {
            ensure!(
                Instant::now() < deadline,
                "after 60 s: next seq {next}, stuck client dropped: {}",
                dropped_at.is_some()
            );
            let message = watcher.recv().await.map_err(|error| {
                if next > last {
                    format!(
                        "every message arrived, but online never fell back to 1: the \
                         stuck chat client was not dropped ({error})"
                    )
                } else {
                    format!("waiting for seq {next} of {first}..={last}: {error}")
                }
            })?;
            match message["type"].as_str() {
                Some("presence") => {
                    if number(&message, "online")? == 1 {
                        dropped_at.get_or_insert_with(Instant::now);
                    }
                }
                Some("message") => {
                    let seq = number(&message, "seq")?;
                    ensure!(seq == next, "expected seq {next}, got {seq}");
                    next += 1;
                }
                _ => return Err(format!("unexpected {}", shorten(&message.to_string()))),
            }
        }
        watcher.close().await;
        Ok::<Instant, String>(dropped_at.unwrap_or_else(Instant::now))
    });
    let events_reader = tokio::spawn(async move {
        expect_sse_contiguous(&mut events, first, last, &[])
            .await
            .map(|_| ())
    });

    let filler = "x".repeat(4000);
    let highest = flood(target.addr, FLOOD as usize, &format!("{tag} {filler}")).await?;
    let flood_done = Instant::now();
    ensure!(
        highest == last,
        "the flood ended at seq {highest}, expected {last}"
    );

    let dropped_at = chat_reader
        .await
        .map_err(|error| format!("the chat reader panicked: {error}"))?
        .map_err(|error| {
            format!(
                "the reading chat client: {error}; the server's log ends with: {}",
                target.stderr_tail().unwrap_or_default()
            )
        })?;
    events_reader
        .await
        .map_err(|error| format!("the /events reader panicked: {error}"))?
        .map_err(|error| format!("the reading /events client: {error}"))?;
    let late = dropped_at.saturating_duration_since(flood_done);
    ensure!(
        late <= DROPPED_WITHIN,
        "the stuck chat client was dropped {} ms after the flood, more than {} ms",
        late.as_millis(),
        DROPPED_WITHIN.as_millis()
    );

    let memory_after = resident_kib(pid)?;
    ensure!(
        memory_after.saturating_sub(memory_before) <= MEMORY_GROWTH_LIMIT_KIB,
        "the server grew from {memory_before} KiB to {memory_after} KiB"
    );

    // By now the stuck /events socket has had its time too: drained, it must end.
    tokio::time::sleep_until(flood_done + DROPPED_WITHIN).await;
    for (what, socket) in [("/ws", stuck_chat), ("/events", stuck_events)] {
        expect_ends_when_drained(socket, WRITE_TIMEOUT)
            .await
            .map_err(|error| format!("the stuck {what} client: {error}"))?;
    }
    Ok(())
}

/// Opens `path`, reads the response head (101 for a WebSocket, 200 for a stream),
/// and returns the socket unread from then on.
async fn open_stuck(
    addr: SocketAddr,
    path: &str,
    websocket: bool,
) -> Result<tokio::net::TcpStream, String> {
    // A small receive buffer, set before connecting so that the kernel does not grow
    // it: the window closes after a few KiB whatever the machine's autotuning, and
    // the server's writes are refused soon into the flood.
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .and_then(|socket| socket.set_recv_buffer_size(4096).map(|()| socket))
    .map_err(|error| format!("a socket with a small receive buffer: {error}"))?;
    let mut stream = socket
        .connect(addr)
        .await
        .map_err(|error| format!("connecting to {addr}: {error}"))?;
    let upgrade = if websocket {
        format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {RFC_KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n"
        )
    } else {
        String::new()
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{upgrade}\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .map_err(|error| format!("sending the request for {path}: {error}"))?;
    let (head, _) = http::read_head(&mut stream).await?;
    let expected = if websocket { 101 } else { 200 };
    ensure!(
        head.status == expected,
        "{path} answered {}, expected {expected}",
        head.status
    );
    Ok(stream)
}

/// Reads `socket` until it ends (EOF, or a reset because the server dropped it) and
/// fails if bytes still flow, or it stays open, for `patience` after the last byte.
async fn expect_ends_when_drained(
    mut socket: tokio::net::TcpStream,
    patience: Duration,
) -> ScenarioResult {
    let mut drained = 0usize;
    let mut buffer = vec![0; 64 * 1024];
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let read = timeout(
            patience,
            tokio::io::AsyncReadExt::read(&mut socket, &mut buffer),
        )
        .await;
        match read {
            Ok(Ok(0) | Err(_)) => return Ok(()),
            Ok(Ok(count)) => drained += count,
            Err(_) => {
                return Err(format!(
                    "still open after {drained} bytes: the server never dropped it"
                ));
            }
        }
        ensure!(
            Instant::now() < deadline,
            "still streaming after {drained} bytes: the server never dropped it"
        );
    }
}

// ---------------------------------------------------------------------------------
// The echo route

/// `/echo` sends back text and binary messages as they came, up to 16 MiB.
async fn echo_route(target: Target) -> ScenarioResult {
    let url = format!("ws://{}/echo", target.addr);
    let (mut socket, _) = timeout(STEP_TIMEOUT, tokio_tungstenite::connect_async(&url))
        .await
        .map_err(|_| format!("connecting to {url} timed out"))?
        .map_err(|error| format!("connecting to {url} failed: {error}"))?;
    let big_binary: Vec<u8> = (0..ECHO_LIMIT).map(|index| (index % 251) as u8).collect();
    let messages = [
        LibraryMessage::text("hello échø 🦀"),
        LibraryMessage::text(""),
        LibraryMessage::binary((0..=255_u8).collect::<Vec<_>>()),
        LibraryMessage::binary(Vec::new()),
        LibraryMessage::text("z".repeat(1024 * 1024)),
        LibraryMessage::binary(big_binary[..1024 * 1024].to_vec()),
        LibraryMessage::binary(big_binary),
    ];
    for message in messages {
        let describe = match &message {
            LibraryMessage::Text(text) => format!("a text message of {} bytes", text.len()),
            LibraryMessage::Binary(bytes) => format!("a binary message of {} bytes", bytes.len()),
            other => format!("{other:?}"),
        };
        timeout(Duration::from_secs(20), socket.send(message.clone()))
            .await
            .map_err(|_| format!("sending {describe} timed out"))?
            .map_err(|error| format!("sending {describe} failed: {error}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let reply = loop {
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Err(_) => return Err(format!("no echo of {describe}")),
                Ok(None) => return Err(format!("the connection ended after {describe}")),
                Ok(Some(Err(error))) => return Err(format!("after {describe}: {error}")),
                Ok(Some(Ok(LibraryMessage::Ping(_) | LibraryMessage::Pong(_)))) => {}
                Ok(Some(Ok(reply))) => break reply,
            }
        };
        ensure!(
            reply == message,
            "{describe} came back as {}",
            match &reply {
                LibraryMessage::Text(text) => format!("text of {} bytes", text.len()),
                LibraryMessage::Binary(bytes) => format!("binary of {} bytes", bytes.len()),
                other => format!("{other:?}"),
            }
        );
    }
    let _ = timeout(Duration::from_secs(1), socket.close(None)).await;
    Ok(())
}

// ---------------------------------------------------------------------------------
// POST /messages

/// 202 with the seq (and the message reaches the chat), 400 for bad JSON or empty
/// content, 413 for too long, 415 for a body that is not JSON.
async fn post_messages_codes(target: Target) -> ScenarioResult {
    let tag = unique("post");
    let mut observer = ChatClient::connect(target.addr, &format!("name={tag}o")).await?;
    let addr = target.addr;

    let named = format!("{tag} named");
    let response = http::post_json(
        addr,
        "/messages",
        &json!({"content": named, "from": "poster"}).to_string(),
    )
    .await?;
    ensure!(
        response.head.status == 202,
        "a valid POST answered {} {:?}",
        response.head.status,
        response.text()
    );
    let body = response.json()?;
    expect_keys(&body, &["seq"])?;
    let seq = number(&body, "seq")?;
    let seen = observer.recv_chat(&named).await?;
    check_chat_shape(&seen)?;
    ensure!(
        seen["seq"] == seq && seen["from"] == "poster",
        "POST answered seq {seq} for {{from: poster}}, the chat got {seen}"
    );

    let anonymous = format!("{tag} anonymous");
    let response = http::request(
        addr,
        "POST",
        "/messages",
        &[("Content-Type", "application/json; charset=utf-8")],
        json!({"content": anonymous, "from": "x".repeat(33)})
            .to_string()
            .as_bytes(),
    )
    .await?;
    ensure!(
        response.head.status == 202,
        "a POST with Content-Type application/json; charset=utf-8 answered {}",
        response.head.status
    );
    let seen = observer.recv_chat(&anonymous).await?;
    ensure!(
        seen["from"].as_str().and_then(anon_number).is_some(),
        "a POST with an invalid \"from\" must be from anon-K, the chat got {seen}"
    );

    let errors = [
        ("{not json".to_owned(), 400, "bad_json"),
        (r#"{"from":"x"}"#.to_owned(), 400, "bad_json"),
        (r#"{"content":""}"#.to_owned(), 400, "empty"),
        (
            json!({"content": "é".repeat(4097)}).to_string(),
            413,
            "too_long",
        ),
    ];
    let mut results = Vec::new();
    for (body, status, code) in errors {
        let outcome = async {
            let response = http::post_json(addr, "/messages", &body).await?;
            ensure!(
                response.head.status == status,
                "answered {}, expected {status}",
                response.head.status
            );
            let reply = response.json()?;
            expect_keys(&reply, &["type", "code", "message"])?;
            ensure!(
                reply["type"] == "error" && reply["code"] == code,
                "the body is {reply}, expected type error and code {code:?}"
            );
            Ok(())
        }
        .await;
        results.push((format!("POST {}", shorten(&body)), outcome));
    }
    let wrong_type = http::request(
        addr,
        "POST",
        "/messages",
        &[("Content-Type", "text/plain")],
        json!({"content": format!("{tag} plain")})
            .to_string()
            .as_bytes(),
    )
    .await;
    results.push((
        "POST with Content-Type: text/plain".to_owned(),
        wrong_type.and_then(|response| {
            ensure!(
                response.head.status == 415,
                "answered {}, expected 415",
                response.head.status
            );
            Ok(())
        }),
    ));
    observer.close().await;
    all_of(results)
}

// ---------------------------------------------------------------------------------
// GET /events

/// Checks the three SSE headers.
fn check_sse_headers(stream: &SseStream, route: &str) -> ScenarioResult {
    let head = stream.head();
    let content_type = head.header("content-type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    ensure!(
        media_type.eq_ignore_ascii_case("text/event-stream"),
        "{route}: Content-Type is {content_type:?}"
    );
    for (name, value) in [("cache-control", "no-cache"), ("x-accel-buffering", "no")] {
        let got = head.header(name);
        ensure!(
            got == Some(value),
            "{route}: {name} is {got:?}, expected {value:?}"
        );
    }
    Ok(())
}

/// What every SSE response starts with, to the byte: `retry: 3000`, a blank line,
/// and a heartbeat event announcing the interval in milliseconds.
fn sse_prelude(heartbeat_ms: u64) -> String {
    format!("retry: 3000\n\nevent: heartbeat\ndata: {heartbeat_ms}\n\n")
}

/// Reads `stream` until it holds as many bytes as [`sse_prelude`] and checks that it
/// starts with them.
async fn expect_sse_prelude(
    stream: &mut SseStream,
    route: &str,
    heartbeat_ms: u64,
) -> ScenarioResult {
    let prelude = sse_prelude(heartbeat_ms);
    let deadline = Instant::now() + STEP_TIMEOUT;
    while stream.raw.len() < prelude.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if stream.next_item(left).await?.is_none() {
            break;
        }
    }
    ensure!(
        stream.raw.starts_with(prelude.as_bytes()),
        "{route} starts with {:?}, expected {prelude:?}",
        shorten(&String::from_utf8_lossy(&stream.raw))
    );
    Ok(())
}

/// The headers, `retry: 3000` and the first heartbeat first, a chat message as `id`
/// + `event: message` + the WebSocket JSON, and presence without an id.
async fn sse_headers_and_framing(target: Target) -> ScenarioResult {
    let tag = unique("sse");
    let mut events = SseStream::open(target.addr, "/events", &[]).await?;
    check_sse_headers(&events, "/events")?;
    let first = events.next_item(STEP_TIMEOUT).await?;
    ensure!(
        first == Some(Item::Retry(3000)),
        "the stream starts with {first:?}, expected retry: 3000"
    );
    // The default --heartbeat: 15 s.
    expect_sse_prelude(&mut events, "/events", 15_000).await?;

    let mut client = ChatClient::connect(target.addr, &format!("name={tag}")).await?;
    let presence = sse_until(&mut events, "waiting for a presence event", |event| {
        event.event_type == "presence"
    })
    .await?;
    let data = event_json(&presence)?;
    expect_keys(&data, &["type", "online"])?;
    ensure!(
        data["type"] == "presence",
        "a presence event carries {data}"
    );

    let content = format!("{tag} over both");
    client.send_chat(&content).await?;
    let over_websocket = client.recv_chat(&content).await?;
    let seq = number(&over_websocket, "seq")?;
    let event = sse_until(&mut events, "waiting for the chat message", |event| {
        event.data.contains(&content)
    })
    .await?;
    ensure!(
        event.event_type == "message",
        "the chat message came as event type {:?}",
        event.event_type
    );
    ensure!(
        event.last_event_id == seq.to_string(),
        "the chat message with seq {seq} has the id {:?}",
        event.last_event_id
    );
    let over_sse = event_json(&event)?;
    ensure!(
        over_sse == over_websocket,
        "SSE data {over_sse} differs from the WebSocket message {over_websocket}"
    );

    let blocks = event_blocks(&events.raw);
    for block in &blocks {
        if block.iter().any(|line| line == "event: presence") {
            ensure!(
                !block.iter().any(|line| line.starts_with("id")),
                "a presence event carries an id: {block:?}"
            );
        }
    }
    let message_block = blocks
        .iter()
        .find(|block| block.iter().any(|line| line.contains(&content)))
        .ok_or("the chat message is not in the raw stream")?;
    let mut lines = message_block.clone();
    lines.sort();
    let mut expected = vec![
        format!("data: {}", event.data),
        "event: message".to_owned(),
        format!("id: {seq}"),
    ];
    expected.sort();
    ensure!(
        lines == expected,
        "the chat message is sent as {message_block:?}, expected the lines {expected:?}"
    );
    client.close().await;
    Ok(())
}

/// Reads SSE chat events and checks they are exactly seq `from`, `from + 1`, ... up to
/// `until`, each with its seq as the event id; returns their data.
async fn expect_sse_contiguous(
    events: &mut SseStream,
    from: u64,
    until: u64,
    expected: &[(u64, String)],
) -> Result<Vec<Value>, String> {
    let mut received = Vec::new();
    let mut next = from;
    while next <= until {
        let event = events
            .next_event(STEP_TIMEOUT)
            .await
            .map_err(|error| format!("waiting for seq {next}: {error}"))?;
        if event.event_type == "presence" {
            continue;
        }
        ensure!(
            event.event_type == "message",
            "expected seq {next}, got an event of type {:?}: {}",
            event.event_type,
            shorten(&event.data)
        );
        let data = event_json(&event)?;
        let seq = number(&data, "seq")?;
        ensure!(
            seq == next,
            "expected seq {next}, got {seq}: a gap or a duplicate"
        );
        ensure!(
            event.last_event_id == seq.to_string(),
            "seq {seq} has the id {:?}",
            event.last_event_id
        );
        if let Some((_, content)) = expected.iter().find(|(at, _)| *at == seq) {
            ensure!(
                data["content"] == content.as_str(),
                "seq {seq} is {}, expected {content:?}",
                shorten(&data.to_string())
            );
        }
        received.push(data);
        next += 1;
    }
    Ok(received)
}

/// `Last-Event-ID: N` (or `?lastEventId=N`) resumes right after N, then goes live.
async fn events_last_event_id_resume(target: Target) -> ScenarioResult {
    let tag = unique("resume");
    let mut sent = Vec::new();
    for index in 1..=3 {
        let content = format!("{tag} {index}");
        sent.push((post_chat(target.addr, &content).await?, content));
    }
    let first = sent[0].0;
    let last = sent[2].0;

    let first_text = first.to_string();
    let mut events = SseStream::open(
        target.addr,
        "/events",
        &[("Last-Event-ID", first_text.as_str())],
    )
    .await?;
    expect_sse_contiguous(&mut events, first + 1, last, &sent)
        .await
        .map_err(|error| format!("Last-Event-ID: {first}: {error}"))?;
    let content = format!("{tag} live");
    let live = post_chat(target.addr, &content).await?;
    expect_sse_contiguous(&mut events, last + 1, live, &[(live, content)])
        .await
        .map_err(|error| format!("Last-Event-ID: {first}, going live: {error}"))?;

    let second = sent[1].0;
    let mut events =
        SseStream::open(target.addr, &format!("/events?lastEventId={second}"), &[]).await?;
    expect_sse_contiguous(&mut events, second + 1, live, &sent)
        .await
        .map_err(|error| format!("?lastEventId={second}: {error}"))?;
    Ok(())
}

/// A `Last-Event-ID` that is not a number gets a reset, then live events only.
async fn events_reset_on_bad_id(target: Target) -> ScenarioResult {
    let tag = unique("badid");
    let before = post_chat(target.addr, &format!("{tag} before")).await?;
    let mut events = SseStream::open(target.addr, "/events", &[("Last-Event-ID", "abc")]).await?;
    let reset = events.next_event(STEP_TIMEOUT).await?;
    ensure!(
        reset.event_type == "reset",
        "Last-Event-ID: abc began with an event of type {:?} ({}), expected reset",
        reset.event_type,
        shorten(&reset.data)
    );
    ensure!(
        reset.last_event_id.is_empty(),
        "the reset event carries the id {:?}",
        reset.last_event_id
    );
    let data = event_json(&reset)?;
    expect_keys(&data, &["type", "oldest"])?;
    let oldest = number(&data, "oldest")?;
    ensure!(
        data["type"] == "reset" && (1..=before).contains(&oldest),
        "the reset is {data}; oldest must be a retained seq (1..={before})"
    );
    let content = format!("{tag} after");
    let after = post_chat(target.addr, &content).await?;
    loop {
        let event = events.next_event(STEP_TIMEOUT).await?;
        if event.event_type != "message" {
            continue;
        }
        let data = event_json(&event)?;
        let seq = number(&data, "seq")?;
        ensure!(
            seq > before,
            "after the reset came seq {seq}, which is older than the stream: nothing must be replayed"
        );
        if seq == after {
            ensure!(data["content"] == content.as_str(), "seq {after} is {data}");
            return Ok(());
        }
    }
}

/// A `Last-Event-ID` older than the history: `reset` with the oldest seq, then the
/// 1000 retained messages.
async fn events_reset_too_old(target: Target) -> ScenarioResult {
    let tag = unique("old");
    let highest = flood(target.addr, HISTORY as usize + 1, &tag).await?;
    let oldest = highest - (HISTORY - 1);
    let mut events = SseStream::open(target.addr, "/events", &[("Last-Event-ID", "0")]).await?;
    let reset = events.next_event(STEP_TIMEOUT).await?;
    ensure!(
        reset.event_type == "reset",
        "Last-Event-ID: 0 after {highest} messages began with an event of type {:?}, expected reset",
        reset.event_type
    );
    let data = event_json(&reset)?;
    ensure!(
        data == json!({"type": "reset", "oldest": oldest}),
        "the reset is {data}, expected oldest {oldest}"
    );
    let replayed = expect_sse_contiguous(&mut events, oldest, highest, &[]).await?;
    let foreign: Vec<Value> = replayed
        .into_iter()
        .filter(|data| !has_tag(data, &tag))
        .collect();
    ensure!(
        foreign.is_empty(),
        "the replay holds messages that are not among the 1001 just posted: {}",
        summarize(&foreign)
    );
    Ok(())
}

/// With `--heartbeat 1`: `/events` and `/stream` start with the heartbeat event
/// that announces the interval (`data: 1000`), and a quiet `/events` then gets one
/// about every second, each exactly `event: heartbeat` and `data: 1000`, no id.
///
/// An event, not a comment: `EventSource` never shows comments to a page, and the
/// page needs something it can see to notice a connection that died silently.
async fn sse_heartbeat_event(target: Target) -> ScenarioResult {
    let mut tokens = SseStream::open(target.addr, "/stream?prompt=heartbeat", &[]).await?;
    let mut events = SseStream::open(target.addr, "/events", &[]).await?;
    let (tokens_prelude, events_prelude) = tokio::join!(
        expect_sse_prelude(&mut tokens, "/stream", 1000),
        expect_sse_prelude(&mut events, "/events", 1000)
    );
    drop(tokens);
    tokens_prelude?;
    events_prelude?;
    let heartbeat_blocks = |raw: &[u8]| -> Vec<Vec<String>> {
        event_blocks(raw)
            .into_iter()
            .filter(|block| block.iter().any(|line| line.contains("heartbeat")))
            .collect()
    };
    // The first came with the prelude; the next ones must follow about a second
    // apart (a presence event caused by another scenario may delay one by a second).
    for (count, which, wait) in [(2, "second", 2500), (3, "third", 2000)] {
        let deadline = Instant::now() + Duration::from_millis(wait);
        while heartbeat_blocks(&events.raw).len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.next_item(left).await {
                Ok(Some(_)) => {}
                Ok(None) => return Err("the stream ended".to_owned()),
                Err(error) => {
                    return Err(format!(
                        "no {which} heartbeat event within {wait} ms with --heartbeat 1: {error}"
                    ));
                }
            }
        }
    }
    for block in heartbeat_blocks(&events.raw) {
        ensure!(
            block == ["event: heartbeat", "data: 1000"],
            "a heartbeat is sent as {block:?}, expected the lines event: heartbeat, data: 1000"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// GET /stream

/// Reads a token stream to its end and checks it against `answer_tokens(prompt)`
/// from `start` on.
async fn check_token_stream(
    target: &Target,
    prompt: &str,
    headers: &[(&str, &str)],
    start: usize,
) -> ScenarioResult {
    let path = if prompt.is_empty() {
        "/stream".to_owned()
    } else {
        format!("/stream?prompt={}", encode_component(prompt))
    };
    let mut stream = SseStream::open(target.addr, &path, headers).await?;
    check_sse_headers(&stream, &path)?;
    let tokens = answer_tokens(prompt);
    ensure!(tokens.len() >= 40, "answer_tokens({prompt:?}) is too short");
    for (index, token) in tokens.iter().enumerate().skip(start) {
        let event = stream
            .next_event(STEP_TIMEOUT)
            .await
            .map_err(|error| format!("{path}: waiting for token {index}: {error}"))?;
        let data = event_json(&event)?;
        ensure!(
            data == json!({"index": index, "token": token}) && event.event_type == "message",
            "{path}: expected token {index} {token:?}, got {:?} {}",
            event.event_type,
            shorten(&event.data)
        );
        ensure!(
            event.last_event_id == index.to_string(),
            "{path}: token {index} has the id {:?}",
            event.last_event_id
        );
    }
    let done = stream
        .next_event(STEP_TIMEOUT)
        .await
        .map_err(|error| format!("{path}: waiting for [DONE]: {error}"))?;
    ensure!(
        done.data == "[DONE]",
        "{path}: after the last token came {:?}, expected [DONE]",
        shorten(&done.data)
    );
    // The id of the last token, or none if this response sent no token.
    let expected_id = if tokens.len() > start {
        (tokens.len() - 1).to_string()
    } else {
        String::new()
    };
    ensure!(
        stream.last_event_id() == expected_id,
        "{path}: [DONE] changed the last event id to {:?}: it must carry no id",
        stream.last_event_id()
    );
    let rest = stream
        .expect_end(Duration::from_secs(2))
        .await
        .map_err(|error| format!("{path}: the response must end after [DONE]: {error}"))?;
    ensure!(
        !rest.iter().any(|item| matches!(item, Item::Event(_))),
        "{path}: events after [DONE]: {rest:?}"
    );
    Ok(())
}

/// The tokens are `answer_tokens(prompt)`, ids from 0, then `[DONE]`, then the end.
async fn stream_tokens(target: Target) -> ScenarioResult {
    let mut results = Vec::new();
    for prompt in ["What is SSE?", "héllo wörld 🦀 & friends", ""] {
        results.push((
            format!("prompt {prompt:?}"),
            check_token_stream(&target, prompt, &[], 0).await,
        ));
    }
    all_of(results)
}

/// `Last-Event-ID: K` continues at token K + 1.
async fn stream_resume(target: Target) -> ScenarioResult {
    let prompt = "resume me";
    let last = answer_tokens(prompt).len() - 1;
    let mut results = Vec::new();
    for resume_after in [0, 10, last - 1, last] {
        let header = resume_after.to_string();
        results.push((
            format!("Last-Event-ID: {resume_after}"),
            check_token_stream(
                &target,
                prompt,
                &[("Last-Event-ID", header.as_str())],
                resume_after + 1,
            )
            .await,
        ));
    }
    all_of(results)
}

// ---------------------------------------------------------------------------------
// Shutdown

/// SIGTERM: WebSockets get 1001, SSE streams end, the process exits 0 within 2 s.
async fn clean_shutdown(target: Target) -> ScenarioResult {
    let mut chat = ChatClient::connect(target.addr, "name=leaving").await?;
    let mut echo = RawWs::connect(target.addr, "/echo", &[]).await?;
    let mut events = SseStream::open(target.addr, "/events", &[]).await?;
    ensure!(
        events.next_item(STEP_TIMEOUT).await? == Some(Item::Retry(3000)),
        "/events did not start"
    );
    let mut tokens = SseStream::open(target.addr, "/stream?prompt=stop", &[]).await?;
    tokens.next_event(STEP_TIMEOUT).await?;

    let signalled = Instant::now();
    target.terminate()?;
    let limit = Duration::from_millis(2500);
    let exit = async {
        let status = target.wait_exit(Duration::from_secs(4)).await?;
        Ok::<_, String>((status, signalled.elapsed()))
    };
    let (chat_code, echo_code, events_end, tokens_end, exit) = tokio::join!(
        chat.expect_close(limit),
        echo.expect_close(limit),
        events.expect_end(limit),
        tokens.expect_end(limit),
        exit
    );
    let code_is = |code: Result<u16, String>| {
        let code = code?;
        ensure!(code == 1001, "got close code {code}, expected 1001");
        Ok(())
    };
    let exited = exit.and_then(|(status, elapsed)| {
        ensure!(status.success(), "the server exited with {status}");
        ensure!(
            elapsed <= Duration::from_millis(2100),
            "the server took {} ms to exit, more than 2 s",
            elapsed.as_millis()
        );
        Ok(())
    });
    let stdout = target.later_stdout().and_then(|lines| {
        ensure!(
            lines.is_empty(),
            "stdout must hold only the listening line, it also has {lines:?}"
        );
        Ok(())
    });
    all_of(vec![
        ("/ws".to_owned(), code_is(chat_code)),
        ("/echo".to_owned(), code_is(echo_code)),
        ("/events".to_owned(), events_end.map(|_| ())),
        ("/stream".to_owned(), tokens_end.map(|_| ())),
        ("the process".to_owned(), exited),
        ("stdout".to_owned(), stdout),
    ])
}

/// With `--max-connections 3`, two chat WebSockets and one `/events` stream take
/// every place; one more on each long route (`/ws`, `/echo`, `/events`, `/stream`) is
/// refused with 503, `Retry-After` and a body that says why, before any upgrade or
/// stream. Nothing is lost meanwhile: `POST /messages` (not a long connection) is
/// accepted and reaches the three held connections. When one of them leaves, its
/// place comes back.
async fn connection_ceiling(target: Target) -> ScenarioResult {
    let tag = unique("ceiling");
    let mut first = ChatClient::connect(target.addr, &format!("name={tag}a")).await?;
    let second = ChatClient::connect(target.addr, &format!("name={tag}b")).await?;
    let mut events = SseStream::open(target.addr, "/events", &[]).await?;

    let upgrade: &[(&str, &str)] = &[
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", RFC_KEY),
    ];
    let stream: &[(&str, &str)] = &[("Accept", "text/event-stream")];
    for (path, headers) in [
        ("/ws?name=fourth", upgrade),
        ("/echo", upgrade),
        ("/events", stream),
        ("/stream?prompt=hi", stream),
    ] {
        let response = http::request(target.addr, "GET", path, headers, &[]).await?;
        let text = response.text();
        ensure!(
            response.head.status == 503,
            "GET {path} at the ceiling answered {} {:?}, expected 503",
            response.head.status,
            shorten(&text)
        );
        ensure!(
            response.head.header("Retry-After") == Some("5"),
            "GET {path}: the 503 has no Retry-After: 5 ({:?})",
            response.head.headers
        );
        ensure!(
            text.contains("maximum of 3 connections"),
            "GET {path}: the 503 says {text:?}"
        );
    }

    let content = format!("{tag} posted at the ceiling");
    post_chat(target.addr, &content).await?;
    first.recv_chat(&content).await?;
    loop {
        let event = events.next_event(STEP_TIMEOUT).await?;
        if event.data.contains(&content) {
            break;
        }
    }

    second.close().await;
    // The server notices the close and gives the place back: a moment, not a rule.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ChatClient::connect(target.addr, &format!("name={tag}c")).await {
            Ok(third) => {
                third.close().await;
                break;
            }
            Err(error) if Instant::now() < deadline => {
                ensure!(
                    error.contains("503"),
                    "the fourth chat failed otherwise: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => {
                return Err(format!(
                    "5 s after a chat left, a new one is still refused: {error}"
                ));
            }
        }
    }
    first.close().await;
    Ok(())
}

/// How many empty continuation frames [`fragment_flood`] puts in one message.
const FLOOD_FRAGMENTS: usize = 1_000_000;
/// How much the server may grow while it reads them.
const FLOOD_MEMORY_GROWTH_LIMIT_KIB: u64 = 16 * 1024;

/// One chat message in a million frames, all but two of them empty continuations
/// (6 MB of frames): the server refuses it with 1009 once it holds more frames than it
/// allows, or delivers it whole, and either way grows by less than 16 MiB meanwhile
/// and chats on with the next client.
async fn fragment_flood(target: Target) -> ScenarioResult {
    let pid = target.pid()?;
    let tag = unique("fragments");
    let mut flooder = RawWs::connect(target.addr, &format!("/ws?name={tag}"), &[]).await?;
    flooder.recv_json(STEP_TIMEOUT).await?;
    let memory_before = resident_kib(pid)?;

    let content = format!("{tag} in a million frames");
    let first = format!(r#"{{"type":"message","content":"{content}"#);
    // Empty frames carry nothing to mask: one key does for all of them.
    let mask = Some(random_key());
    let mut bytes = Vec::with_capacity(FLOOD_FRAGMENTS * 6 + first.len() + 16);
    wsse_wire::frame::encode_frame(&mut bytes, false, OpCode::Text, mask, first.as_bytes());
    for _ in 0..FLOOD_FRAGMENTS {
        wsse_wire::frame::encode_frame(&mut bytes, false, OpCode::Continuation, mask, b"");
    }
    wsse_wire::frame::encode_frame(&mut bytes, true, OpCode::Continuation, mask, br#""}"#);
    let event = flooder
        .send_and_read_until(
            bytes,
            Duration::from_secs(60),
            |message| matches!(message, Message::Text(text) if text.contains(&content)),
        )
        .await?;
    let outcome = match event {
        RawEvent::Message(Message::Close(Some(frame))) => {
            ensure!(
                frame.code.0 == 1009,
                "the flood was answered with close {}, expected 1009 or the message",
                frame.code.0
            );
            "refused with 1009"
        }
        RawEvent::Message(Message::Text(_)) => "delivered",
        other => {
            return Err(format!(
                "the flood ended with {other:?}, expected the message or a close 1009"
            ));
        }
    };
    let memory_after = resident_kib(pid)?;
    ensure!(
        memory_after.saturating_sub(memory_before) <= FLOOD_MEMORY_GROWTH_LIMIT_KIB,
        "a message in {FLOOD_FRAGMENTS} frames ({outcome}) grew the server from \
         {memory_before} KiB to {memory_after} KiB"
    );
    let mut next = ChatClient::connect(target.addr, &format!("name={tag}-next")).await?;
    let after = format!("{tag} after the flood");
    next.send_chat(&after).await?;
    next.recv_chat(&after).await?;
    next.close().await;
    Ok(())
}

/// Reads `stream` (writing `dribble` every 200 ms, if given, as a slowloris client
/// does) until the server closes it, at most `wait`; returns what the server sent.
async fn until_closed(
    stream: &mut tokio::net::TcpStream,
    dribble: Option<&[u8]>,
    wait: Duration,
) -> Result<Vec<u8>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + wait;
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return Ok(received),
                Ok(count) => received.extend_from_slice(&buffer[..count]),
            },
            _ = ticks.tick(), if dribble.is_some() => {
                if stream.write_all(dribble.unwrap_or_default()).await.is_err() {
                    return Ok(received);
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                return Err(format!(
                    "still open after {wait:?}, having sent {:?}",
                    shorten(&String::from_utf8_lossy(&received))
                ));
            }
        }
    }
}

/// With one second for each request head: a client that dribbles its head, one that
/// connects and sends nothing, and one that idles after its first request are all
/// disconnected soon after that second (with a 408 or without a word), while a client
/// that takes a moment and then sends its head whole is served.
async fn slow_request_heads_dropped(target: Target) -> ScenarioResult {
    use tokio::io::AsyncWriteExt;
    let wait = Duration::from_secs(4);
    let connect = || async {
        tokio::net::TcpStream::connect(target.addr)
            .await
            .map_err(|error| format!("cannot connect: {error}"))
    };
    let healthz = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", target.addr);
    let dribbler = async {
        let mut stream = connect().await?;
        let start = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n", target.addr);
        stream
            .write_all(start.as_bytes())
            .await
            .map_err(|error| error.to_string())?;
        until_closed(&mut stream, Some(b"X-Slow: 1\r\n"), wait).await
    };
    let silent = async { until_closed(&mut connect().await?, None, wait).await };
    let idle = async {
        let mut stream = connect().await?;
        stream
            .write_all(healthz.as_bytes())
            .await
            .map_err(|error| error.to_string())?;
        until_closed(&mut stream, None, wait).await
    };
    let patient = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        http::get(target.addr, "/healthz").await
    };
    let (dribbled, silent, idle, patient) = tokio::join!(dribbler, silent, idle, patient);
    let only_a_408 = |what: &str, received: &[u8]| -> ScenarioResult {
        let text = String::from_utf8_lossy(received);
        ensure!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{what}: the server sent {:?} before closing",
            shorten(&text)
        );
        Ok(())
    };
    only_a_408(
        "a dribbled head",
        &dribbled.map_err(|error| format!("a dribbled head: {error}"))?,
    )?;
    only_a_408(
        "a silent connection",
        &silent.map_err(|error| format!("a silent connection: {error}"))?,
    )?;
    let idle = idle.map_err(|error| format!("an idle keep-alive connection: {error}"))?;
    let idle = String::from_utf8_lossy(&idle);
    ensure!(
        idle.starts_with("HTTP/1.1 200"),
        "an idle keep-alive connection got {:?}, expected its 200 first",
        shorten(&idle)
    );
    let patient = patient?;
    ensure!(
        patient.head.status == 200,
        "a head sent whole after 200 ms answered {}",
        patient.head.status
    );
    Ok(())
}

/// A request head over the bound (16 KiB) is answered with 431 on every server; one
/// well under it (12 KB of header) is served.
async fn request_head_too_large(target: Target) -> ScenarioResult {
    for (size, expected) in [(12_000, 200), (20_000, 431)] {
        let value = "a".repeat(size);
        let response = http::request(target.addr, "GET", "/healthz", &[("X-Big", &value)], &[])
            .await
            .map_err(|error| format!("a {size}-byte header: {error}"))?;
        ensure!(
            response.head.status == expected,
            "a {size}-byte header answered {}, expected {expected}",
            response.head.status
        );
    }
    Ok(())
}

/// `GET path` from the local address `from` with `headers`; its response head, and
/// the body too unless the response is a stream (200) or a WebSocket (101).
async fn get_from(
    target: &Target,
    from: Ipv4Addr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(HttpStream, String), String> {
    let request = http::request_bytes("GET", &target.addr.to_string(), path, headers, &[]);
    let mut stream = HttpStream::send_from(Some(IpAddr::V4(from)), target.addr, &request).await?;
    let body = match stream.head.status {
        101 | 200 => String::new(),
        _ => String::from_utf8_lossy(&stream.read_to_end(STEP_TIMEOUT).await?).into_owned(),
    };
    Ok((stream, body))
}

/// The limit per client address (two here): the third connection from one address
/// is refused with 429 on every long route, while other addresses still come in,
/// whether the address is the TCP peer's or, behind a trusted proxy, the one the proxy
/// reports; and a place given back can be taken again.
async fn connections_per_address(target: Target) -> ScenarioResult {
    let upgrade: &[(&str, &str)] = &[
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", RFC_KEY),
    ];
    let routes = [
        ("/ws?name=third", upgrade),
        ("/echo", upgrade),
        ("/events", &[][..]),
        ("/stream?prompt=hi", &[][..]),
    ];
    let expect_refused = |what: &str, response: &(HttpStream, String)| -> ScenarioResult {
        let (stream, body) = response;
        ensure!(
            stream.head.status == 429,
            "{what} answered {} {:?}, expected 429",
            stream.head.status,
            shorten(body)
        );
        ensure!(
            stream.head.header("Retry-After") == Some("5"),
            "{what}: the 429 has no Retry-After: 5 ({:?})",
            stream.head.headers
        );
        ensure!(
            body.contains("maximum of 2"),
            "{what}: the 429 says {body:?}"
        );
        Ok(())
    };
    let expect_admitted = |what: &str, response: &(HttpStream, String)| -> ScenarioResult {
        let status = response.0.head.status;
        ensure!(
            status == 101 || status == 200,
            "{what} answered {status} {:?}, expected to be let in",
            shorten(&response.1)
        );
        Ok(())
    };

    // 127.0.0.2 holds a chat and an event stream: its share.
    let first_address = Ipv4Addr::new(127, 0, 0, 2);
    let chat = get_from(&target, first_address, "/ws?name=first", upgrade).await?;
    expect_admitted("the first chat", &chat)?;
    let events = get_from(&target, first_address, "/events", &[]).await?;
    expect_admitted("the first event stream", &events)?;
    for (path, headers) in routes {
        let response = get_from(&target, first_address, path, headers).await?;
        expect_refused(
            &format!("a third GET {path} from {first_address}"),
            &response,
        )?;
    }

    // Another address has a share of its own.
    let second_address = Ipv4Addr::new(127, 0, 0, 3);
    let other = get_from(&target, second_address, "/stream?prompt=hi", &[]).await?;
    expect_admitted(&format!("GET /stream from {second_address}"), &other)?;

    // Behind the (trusted) proxy every connection comes from one peer: the address
    // it reports is what counts, in either header.
    let proxied: &[(&str, &str)] = &[("X-Forwarded-For", "203.0.113.50, 198.51.100.7")];
    let forwarded: &[(&str, &str)] = &[("Forwarded", "for=198.51.100.7;proto=http")];
    let mut held = Vec::new();
    for headers in [proxied, forwarded] {
        let response = get_from(&target, first_address, "/events", headers).await?;
        expect_admitted(
            &format!("GET /events from {first_address} with {headers:?}"),
            &response,
        )?;
        held.push(response);
    }
    let response = get_from(&target, first_address, "/events", proxied).await?;
    expect_refused("a third GET /events for 198.51.100.7", &response)?;
    let someone_else: &[(&str, &str)] = &[("X-Forwarded-For", "198.51.100.8")];
    let response = get_from(&target, first_address, "/events", someone_else).await?;
    expect_admitted("GET /events for 198.51.100.8", &response)?;

    // A place given back: the server reads the chat's end in a moment, not at once.
    // (An event stream's end it learns only when it next writes.)
    drop(chat);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = get_from(&target, first_address, "/events", &[]).await?;
        match response.0.head.status {
            200 => break,
            429 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            status => {
                return Err(format!(
                    "after a chat from {first_address} ended, an event stream answered \
                     {status} {:?}",
                    shorten(&response.1)
                ));
            }
        }
    }
    drop((events, other, held));
    Ok(())
}

/// With `--message-rate 1 --message-burst 5`: ten chat messages sent at once are
/// five published and the rest answered `rate_limited`, to the sender only (a
/// second client sees only the published ones); the connection stays open, and a
/// second later one more is published. A sender that keeps on regardless is closed
/// with 1008.
async fn message_rate_limited(target: Target) -> ScenarioResult {
    const BURST: usize = 5;
    let tag = unique("rate");
    let mut sender = ChatClient::connect(target.addr, &format!("name={tag}s")).await?;
    let mut watcher = ChatClient::connect(target.addr, &format!("name={tag}w")).await?;
    let started = Instant::now();
    for index in 0..2 * BURST {
        sender.send_chat(&format!("{tag} {index}")).await?;
    }
    let (mut published, mut refused) = (Vec::new(), 0);
    while published.len() + refused < 2 * BURST {
        let (message, _) = sender
            .recv_until("waiting for a message or a refusal", |message| {
                message["type"] == "error" || has_tag(message, &tag)
            })
            .await?;
        if message["type"] == "error" {
            ensure!(
                message["code"] == "rate_limited",
                "expected rate_limited, got {message}"
            );
            refused += 1;
        } else {
            published.push(message["content"].as_str().unwrap_or_default().to_owned());
        }
    }
    // One more may have been earned while sending, on a slow machine.
    let earned = started.elapsed().as_secs() as usize;
    ensure!(
        (BURST..=BURST + earned).contains(&published.len()) && refused > 0,
        "of {} messages sent at once, {} published and {refused} refused; expected \
         {BURST} published (plus {earned} earned while sending)",
        2 * BURST,
        published.len()
    );
    for content in &published {
        watcher.recv_chat(content).await?;
    }

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = format!("{tag} a second later");
    sender.send_chat(&later).await?;
    sender.recv_chat(&later).await?;
    watcher.recv_chat(&later).await?;

    for index in 0..4 * BURST {
        // The server may close before the last ones are written.
        if sender
            .send_chat(&format!("{tag} flood {index}"))
            .await
            .is_err()
        {
            break;
        }
    }
    let code = sender.expect_close(STEP_TIMEOUT).await?;
    ensure!(
        code == 1008,
        "a sender that kept on was closed with {code}, not 1008"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------
// Sign-in (--auth)

/// A signed-in session: its cookie (`wsse_session=ID`, ready for a `Cookie` header)
/// and the ticket of the sign-in that made it.
struct SignedIn {
    cookie: String,
    ticket: String,
}

/// `POST /session` with `{"name":NAME}` (and `cookie`, if given); the session, after
/// checking the answer's cookie keeps away from scripts and other sites.
async fn sign_in(target: &Target, name: &str, cookie: Option<&str>) -> Result<SignedIn, String> {
    let body = json!({ "name": name }).to_string();
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(cookie) = cookie {
        headers.push(("Cookie", cookie));
    }
    let response =
        http::request(target.addr, "POST", "/session", &headers, body.as_bytes()).await?;
    ensure!(
        response.head.status == 200,
        "POST /session as {name} answered {} {:?}, expected 200",
        response.head.status,
        shorten(&response.text())
    );
    let set_cookie = response
        .head
        .header("Set-Cookie")
        .ok_or("POST /session set no cookie")?;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        ensure!(
            set_cookie.contains(attribute),
            "the session cookie {set_cookie:?} is not {attribute}"
        );
    }
    let cookie = set_cookie
        .split(';')
        .next()
        .filter(|pair| pair.starts_with("wsse_session="))
        .ok_or_else(|| format!("the cookie {set_cookie:?} is not wsse_session"))?
        .to_owned();
    let answer = response.json()?;
    expect_keys(&answer, &["name", "ticket", "ticket_expires_in_ms"])?;
    ensure!(answer["name"] == name, "signed in as {answer}, not {name}");
    let ticket = answer["ticket"]
        .as_str()
        .filter(|ticket| !ticket.is_empty())
        .ok_or_else(|| format!("no ticket in {answer}"))?
        .to_owned();
    Ok(SignedIn { cookie, ticket })
}

/// Fails unless `response` is a 401 with the challenge every refusal of `--auth` has.
fn expect_unauthorized(what: &str, status: u16, head: &http::ResponseHead) -> ScenarioResult {
    ensure!(status == 401, "{what} answered {status}, expected 401");
    ensure!(
        head.header("WWW-Authenticate")
            .is_some_and(|challenge| challenge.starts_with("Session")),
        "{what}: the 401 has no WWW-Authenticate: Session ({:?})",
        head.headers
    );
    Ok(())
}

/// With `--auth`, nobody gets at the chat without a session: the WebSocket, the event
/// stream and posting answer 401 with a challenge, before any upgrade or stream, also
/// for a made-up cookie or ticket. The page, `/healthz` and the chapter demos (`/echo`,
/// `/stream`) stay open; a name is needed to sign in, and JSON.
async fn auth_refuses_strangers(target: Target) -> ScenarioResult {
    let upgrade = |extra: (&'static str, &'static str)| {
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", RFC_KEY),
            extra,
        ]
    };
    let made_up = ("Cookie", "wsse_session=made-up");
    let nothing = ("X-Nothing", "1");
    for (path, headers) in [
        ("/ws?name=stranger", upgrade(nothing)),
        ("/ws?name=stranger", upgrade(made_up)),
        ("/ws?ticket=made-up", upgrade(nothing)),
        (
            "/ws",
            upgrade(("Sec-WebSocket-Protocol", "wsse, ticket.made-up")),
        ),
    ] {
        let response = http::request(target.addr, "GET", path, &headers, &[]).await?;
        expect_unauthorized(&format!("GET {path}"), response.head.status, &response.head)?;
    }
    for (path, headers) in [
        ("/events", &[][..]),
        ("/events?ticket=made-up", &[made_up][..]),
    ] {
        let response = http::request(target.addr, "GET", path, headers, &[]).await?;
        expect_unauthorized(&format!("GET {path}"), response.head.status, &response.head)?;
    }
    let body = br#"{"content":"from nobody"}"#;
    for headers in [
        &[("Content-Type", "application/json")][..],
        &[("Content-Type", "application/json"), made_up][..],
    ] {
        let response = http::request(target.addr, "POST", "/messages", headers, body).await?;
        expect_unauthorized("POST /messages", response.head.status, &response.head)?;
    }
    for path in ["/", "/healthz"] {
        let status = http::get(target.addr, path).await?.head.status;
        ensure!(status == 200, "GET {path} answered {status} with --auth");
    }
    let current = http::request(target.addr, "GET", "/session", &[made_up], &[]).await?;
    ensure!(
        current.head.status == 401,
        "GET /session with a made-up cookie answered {}, expected 401",
        current.head.status
    );
    let mut echo = RawWs::connect(target.addr, "/echo", &[]).await?;
    echo.send_text("still open").await?;
    match echo.next(STEP_TIMEOUT).await? {
        RawEvent::Message(Message::Text(text)) if text == "still open" => {}
        other => return Err(format!("/echo with --auth answered {other:?}")),
    }
    SseStream::open(target.addr, "/stream?prompt=hi", &[]).await?;
    for (headers, body, expected) in [
        (&[][..], &br#"{"name":"plain"}"#[..], 415),
        (&[("Content-Type", "application/json")][..], b"{}", 400),
        (
            &[("Content-Type", "application/json")][..],
            br#"{"name":""}"#,
            400,
        ),
    ] {
        let response = http::request(target.addr, "POST", "/session", headers, body).await?;
        ensure!(
            response.head.status == expected && response.head.header("Set-Cookie").is_none(),
            "POST /session {:?} answered {} (cookie {:?}), expected {expected} and no cookie",
            String::from_utf8_lossy(body),
            response.head.status,
            response.head.header("Set-Cookie")
        );
    }
    Ok(())
}

/// A session's ways in: its ticket, once, in the URL or as a subprotocol (answered
/// with `wsse`, never the ticket), its cookie, and for a program the session as a
/// bearer token; in each the name is the session's,
/// whatever the URL or the post claims. A name another session holds is refused with
/// 409; posting from another origin, even with the cookie, with 403.
async fn auth_sessions_and_tickets(target: Target) -> ScenarioResult {
    let name = unique("ada");
    let session = sign_in(&target, &name, None).await?;
    let by_url = format!("/ws?ticket={}&name=mallory", session.ticket);
    let mut chat = RawWs::connect(target.addr, &by_url, &[]).await?;
    let welcome = chat.recv_json(STEP_TIMEOUT).await?;
    ensure!(
        welcome["you"] == name.as_str(),
        "with a ticket and ?name=mallory the welcome says {welcome}, expected {name}"
    );
    let again = http::request(
        target.addr,
        "GET",
        &by_url,
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", RFC_KEY),
        ],
        &[],
    )
    .await?;
    expect_unauthorized("a ticket used twice", again.head.status, &again.head)?;

    let current = http::request(
        target.addr,
        "GET",
        "/session",
        &[("Cookie", session.cookie.as_str())],
        &[],
    )
    .await?;
    ensure!(
        current.head.status == 200 && current.json()?["name"] == name.as_str(),
        "GET /session with the cookie answered {} {:?}, expected 200 and {name}",
        current.head.status,
        shorten(&current.text())
    );

    // Asking again with the cookie: the same name, a fresh ticket.
    let fresh = sign_in(&target, &name, Some(&session.cookie)).await?;
    ensure!(
        fresh.cookie == session.cookie && fresh.ticket != session.ticket,
        "a second sign-in with the cookie gave another session or the same ticket"
    );
    let offered = format!("wsse, ticket.{}", fresh.ticket);
    let by_protocol = RawWs::connect(
        target.addr,
        "/ws",
        &[("Sec-WebSocket-Protocol", offered.as_str())],
    )
    .await?;
    ensure!(
        by_protocol.head.header("Sec-WebSocket-Protocol") == Some("wsse"),
        "offered {offered:?}, the server answered the protocol {:?}, expected \"wsse\"",
        by_protocol.head.header("Sec-WebSocket-Protocol")
    );
    let mut by_cookie =
        RawWs::connect(target.addr, "/ws", &[("Cookie", session.cookie.as_str())]).await?;
    let welcome = by_cookie.recv_json(STEP_TIMEOUT).await?;
    ensure!(
        welcome["you"] == name.as_str(),
        "with the cookie the welcome says {welcome}, expected {name}"
    );
    ensure!(
        by_cookie.head.header("Sec-WebSocket-Protocol").is_none(),
        "a protocol answered that nobody offered: {:?}",
        by_cookie.head.header("Sec-WebSocket-Protocol")
    );

    let mut events = SseStream::open(
        target.addr,
        "/events",
        &[("Cookie", session.cookie.as_str())],
    )
    .await?;
    // A program sends the session as a bearer token.
    let bearer = format!(
        "Bearer {}",
        session.cookie.trim_start_matches("wsse_session=")
    );
    let mut by_bearer =
        RawWs::connect(target.addr, "/ws", &[("Authorization", bearer.as_str())]).await?;
    let welcome = by_bearer.recv_json(STEP_TIMEOUT).await?;
    ensure!(
        welcome["you"] == name.as_str(),
        "with Authorization: Bearer the welcome says {welcome}, expected {name}"
    );

    let content = format!("{name} posts as mallory");
    let body = json!({ "from": "mallory", "content": content }).to_string();
    let own = http::request(
        target.addr,
        "POST",
        "/messages",
        &[
            ("Content-Type", "application/json"),
            ("Cookie", session.cookie.as_str()),
        ],
        body.as_bytes(),
    )
    .await?;
    ensure!(
        own.head.status == 202,
        "POST /messages with the cookie answered {} {:?}",
        own.head.status,
        shorten(&own.text())
    );
    loop {
        let message = chat.recv_json(STEP_TIMEOUT).await?;
        if message["content"] == content.as_str() {
            ensure!(
                message["from"] == name.as_str(),
                "a post claiming to be from mallory arrived as {message}, expected from {name}"
            );
            break;
        }
    }
    loop {
        let event = events.next_event(STEP_TIMEOUT).await?;
        if event.data.contains(&content) {
            ensure!(
                event.data.contains(&format!("\"from\":\"{name}\"")),
                "on /events the post claiming to be from mallory is {:?}",
                event.data
            );
            break;
        }
    }
    let foreign = http::request(
        target.addr,
        "POST",
        "/messages",
        &[
            ("Content-Type", "application/json"),
            ("Cookie", session.cookie.as_str()),
            ("Origin", "https://evil.example"),
        ],
        body.as_bytes(),
    )
    .await?;
    ensure!(
        foreign.head.status == 403,
        "a cross-origin POST /messages with the cookie answered {}, expected 403",
        foreign.head.status
    );

    let body = json!({ "name": name }).to_string();
    let taken = http::request(
        target.addr,
        "POST",
        "/session",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await?;
    ensure!(
        taken.head.status == 409 && taken.text().contains("name_taken"),
        "signing in under a name another session holds answered {} {:?}, expected 409",
        taken.head.status,
        shorten(&taken.text())
    );
    Ok(())
}

/// `DELETE /session` ends the session everywhere at once: its WebSockets close with
/// 4001, its event streams end, its cookie is cleared and no longer works, and its
/// name is free for the next one; another session's chat stays open.
async fn auth_sign_out_ends_connections(target: Target) -> ScenarioResult {
    let name = unique("grace");
    let session = sign_in(&target, &name, None).await?;
    let other = sign_in(&target, &unique("other"), None).await?;
    let cookie = [("Cookie", session.cookie.as_str())];
    let mut chat = RawWs::connect(target.addr, "/ws", &cookie).await?;
    chat.recv_json(STEP_TIMEOUT).await?;
    let mut events = SseStream::open(target.addr, "/events", &cookie).await?;
    events.next_event(STEP_TIMEOUT).await?;
    let mut bystander =
        RawWs::connect(target.addr, "/ws", &[("Cookie", other.cookie.as_str())]).await?;
    bystander.recv_json(STEP_TIMEOUT).await?;

    let response = http::request(target.addr, "DELETE", "/session", &cookie, &[]).await?;
    ensure!(
        response.head.status == 200,
        "DELETE /session answered {} {:?}",
        response.head.status,
        shorten(&response.text())
    );
    ensure!(
        response
            .head
            .header("Set-Cookie")
            .is_some_and(|cleared| cleared.contains("Max-Age=0")),
        "DELETE /session did not clear the cookie: {:?}",
        response.head.header("Set-Cookie")
    );
    let code = chat.expect_close(STEP_TIMEOUT).await?;
    ensure!(
        code == 4001,
        "signing out closed the chat with {code}, expected 4001"
    );
    events
        .expect_end(STEP_TIMEOUT)
        .await
        .map_err(|error| format!("signing out did not end /events: {error}"))?;
    let after = http::request(target.addr, "GET", "/events", &cookie, &[]).await?;
    expect_unauthorized(
        "the cookie after signing out",
        after.head.status,
        &after.head,
    )?;
    sign_in(&target, &name, None)
        .await
        .map_err(|error| format!("the name is not free after signing out: {error}"))?;

    let content = format!("{name} signed out, the others talk on");
    let body = json!({ "content": content }).to_string();
    let posted = http::request(
        target.addr,
        "POST",
        "/messages",
        &[
            ("Content-Type", "application/json"),
            ("Cookie", other.cookie.as_str()),
        ],
        body.as_bytes(),
    )
    .await?;
    ensure!(
        posted.head.status == 202,
        "POST /messages answered {}",
        posted.head.status
    );
    loop {
        let message = bystander.recv_json(STEP_TIMEOUT).await?;
        if message["content"] == content.as_str() {
            return Ok(());
        }
    }
}

/// Without `--auth` there is no session to start: `POST /session` and `GET /session`
/// answer 404 and set no cookie (and the chat is open, as every other scenario shows).
async fn session_route_needs_auth(target: Target) -> ScenarioResult {
    let response = http::post_json(target.addr, "/session", r#"{"name":"ada"}"#).await?;
    ensure!(
        response.head.status == 404 && response.head.header("Set-Cookie").is_none(),
        "POST /session without --auth answered {} (cookie {:?}), expected 404 and none",
        response.head.status,
        response.head.header("Set-Cookie")
    );
    // How the page learns the mode.
    let current = http::get(target.addr, "/session").await?;
    ensure!(
        current.head.status == 404,
        "GET /session without --auth answered {}, expected 404",
        current.head.status
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_a_distinct_name() {
        let scenarios = all();
        let names: BTreeSet<&str> = scenarios.iter().map(|scenario| scenario.name).collect();
        assert_eq!(names.len(), scenarios.len());
        assert!(names.contains("clean_shutdown"));
        // A process per scenario costs a server start each: only the one that stops
        // its server and the two that measure its memory get one.
        let own_process: Vec<&str> = scenarios
            .iter()
            .filter(|scenario| scenario.isolation == Isolation::OwnProcess)
            .map(|scenario| scenario.name)
            .collect();
        assert_eq!(
            own_process,
            ["stuck_readers_dropped", "fragment_flood", "clean_shutdown"]
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(anon_number("anon-12"), Some(12));
        for wrong in ["anon-", "anon-0", "anon-01", "anon-1x", "Anon-1", "anon--1"] {
            assert_eq!(anon_number(wrong), None, "{wrong}");
        }
        assert_ne!(unique("x"), unique("x"));
        assert!(expect_keys(&json!({"a": 1, "b": 2}), &["b", "a"]).is_ok());
        assert!(expect_keys(&json!({"a": 1}), &["a", "b"]).is_err());
        assert!(expect_keys(&json!([1]), &[]).is_err());
        assert_eq!(
            event_blocks(
                b"retry: 3000\n: hi\nid: 1\r\ndata: x\r\n\r\nevent: presence\ndata: y\n\n"
            ),
            vec![
                vec!["id: 1".to_owned(), "data: x".to_owned()],
                vec!["event: presence".to_owned(), "data: y".to_owned()]
            ]
        );
    }
}
