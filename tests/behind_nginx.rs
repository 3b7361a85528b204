//! Every server behind nginx with TLS, configured by the book's own
//! `deploy/nginx/wsse.conf` (see `wsse_testkit::nginx`): the browser's `Origin` is
//! `https://localhost:PORT`, which only a server started with `--trust-proxy` can
//! match, from the `X-Forwarded-*` headers nginx sets; forwarded headers a client
//! forges are refused, through nginx and directly; with `--trust-proxy` the limit per
//! client address counts the address nginx saw, not the one a client claims;
//! `/events` streams through nginx without delay; and a chat message makes the round
//! trip over the WebSocket.
//!
//! Without nginx or openssl the test says it was skipped and how to install them,
//! and fails when `CI` is set (`.ci/run` installs nginx).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use wsse_testkit::http::{ChunkedDecoder, ResponseHead, find_head_end, request_bytes};
use wsse_testkit::nginx::{self, Nginx, TlsConnection};
use wsse_testkit::scenarios::{RFC_KEY, unique};
use wsse_testkit::{SERVERS, ServerProcess};
use wsse_wire::frame::{FrameDecoder, OpCode, Role, encode_frame};
use wsse_wire::mask::random_key;
use wsse_wire::sse::{EventStreamParser, Item};

/// How long one step (a response head, an event, a message) may take.
const STEP: Duration = Duration::from_secs(5);

/// How soon an event posted while `/events` is open must arrive through nginx: a
/// buffering proxy would hold it until its buffer filled or the response ended.
const PROMPTLY: Duration = Duration::from_secs(2);

/// The connections per client address the servers with `--trust-proxy` are given.
const SHARE: usize = 3;

/// A host no page of ours is served from.
const EVIL: &str = "evil.example";

#[test]
fn every_server_behind_nginx_with_tls() {
    if !wsse_testkit::programs_present(
        "the servers behind nginx",
        &[(nginx::missing_programs(), nginx::INSTALL_COMMAND)],
    ) {
        return;
    }
    let mut failures = Vec::new();
    for server in SERVERS {
        for trust_proxy in [false, true] {
            let share = SHARE.to_string();
            let flags: &[&str] = if trust_proxy {
                &["--trust-proxy", "--max-connections-per-address", &share]
            } else {
                &[]
            };
            let label = format!(
                "{server}{}",
                if trust_proxy { " --trust-proxy" } else { "" }
            );
            let failures_before = failures.len();
            let process = match ServerProcess::spawn(server, flags) {
                Ok(process) => process,
                Err(error) => {
                    failures.push(format!("{label}: {error}"));
                    continue;
                }
            };
            let proxy = match Nginx::start(&[process.addr()]) {
                Ok(proxy) => proxy,
                Err(error) => {
                    failures.push(format!("{label}: nginx: {error}"));
                    continue;
                }
            };
            for (what, outcome) in checks(&proxy, &process, trust_proxy) {
                if let Err(error) = outcome {
                    failures.push(format!("{label}: {what}: {error}"));
                }
            }
            if failures.len() > failures_before {
                failures.push(format!(
                    "{label}: nginx's error log:\n{}\n{label}: the server's stderr:\n{}",
                    proxy.error_log(),
                    process.stderr_tail()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every check against one server behind `proxy`, each with what it checks.
fn checks(
    proxy: &Nginx,
    process: &ServerProcess,
    trust_proxy: bool,
) -> Vec<(String, Result<(), String>)> {
    let browser_origin = proxy.origin();
    let evil_origin = format!("https://{EVIL}");
    // The page nginx serves: its origin is https:// and nginx's port, which the
    // server learns only from the forwarded headers it trusts.
    let own_expected = if trust_proxy { 101 } else { 403 };
    let forged_forwarded = format!("proto=https;host={EVIL}");
    let mut results = Vec::new();
    if trust_proxy {
        // First, while no other check holds a place.
        results.push((
            format!("through nginx, {SHARE} streams per client address, whatever it claims"),
            share_per_address_is_the_clients(proxy),
        ));
    }
    results.extend([
        (
            format!("through nginx, Origin: {browser_origin} gets {own_expected}"),
            expect_status(
                tls_upgrade_status(proxy, &[("Origin", &browser_origin)]),
                own_expected,
            ),
        ),
        (
            "through nginx, no Origin (not a browser) gets 101".to_owned(),
            expect_status(tls_upgrade_status(proxy, &[]), 101),
        ),
        (
            format!("through nginx, a forged Forwarded: {forged_forwarded} gets 403"),
            expect_status(
                tls_upgrade_status(
                    proxy,
                    &[("Origin", &evil_origin), ("Forwarded", &forged_forwarded)],
                ),
                403,
            ),
        ),
        (
            format!("through nginx, a forged X-Forwarded-Host: {EVIL} gets 403"),
            expect_status(
                tls_upgrade_status(
                    proxy,
                    &[
                        ("Origin", &evil_origin),
                        ("X-Forwarded-Proto", "https"),
                        ("X-Forwarded-Host", EVIL),
                    ],
                ),
                403,
            ),
        ),
    ]);
    // Straight to the server, nothing in between to overwrite what the client says:
    // the flag makes the server believe anyone, which is why it is for servers that
    // only a proxy can reach.
    let direct_expected = if trust_proxy { 101 } else { 403 };
    results.push((
        format!(
            "directly, forged X-Forwarded-Proto: https and X-Forwarded-Host: {EVIL} get \
             {direct_expected}"
        ),
        expect_status(
            direct_upgrade_status(
                process.addr(),
                &[
                    ("Origin", &evil_origin),
                    ("X-Forwarded-Proto", "https"),
                    ("X-Forwarded-Host", EVIL),
                ],
            ),
            direct_expected,
        ),
    ));
    results.push((
        "through nginx, /events delivers a message posted after it opened".to_owned(),
        events_stream_promptly(proxy),
    ));
    // A browser's chat when the server can recognise its page; otherwise a client
    // that sends no Origin.
    let chat_headers: Vec<(&str, &str)> = if trust_proxy {
        vec![("Origin", &browser_origin)]
    } else {
        Vec::new()
    };
    results.push((
        "through nginx, a chat message over the WebSocket comes back".to_owned(),
        chat_round_trip(proxy, &chat_headers),
    ));
    results
}

fn expect_status(status: Result<u16, String>, expected: u16) -> Result<(), String> {
    let status = status?;
    if status == expected {
        Ok(())
    } else {
        Err(format!("answered {status}, expected {expected}"))
    }
}

/// A WebSocket upgrade request for `path` as a browser at nginx's origin sends it.
fn upgrade_request(host: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut all = vec![
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", RFC_KEY),
    ];
    all.extend_from_slice(headers);
    request_bytes("GET", host, path, &all, b"")
}

/// The status nginx answers a `/ws` upgrade with these headers.
fn tls_upgrade_status(proxy: &Nginx, headers: &[(&str, &str)]) -> Result<u16, String> {
    let mut connection = proxy.connect()?;
    connection.send(&upgrade_request(&proxy.host(), "/ws?name=origin", headers))?;
    Ok(connection.receive_head(STEP)?.status)
}

/// The status the server itself answers a `/ws` upgrade with these headers, over
/// plain TCP with no proxy in between.
fn direct_upgrade_status(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<u16, String> {
    let mut stream = TcpStream::connect_timeout(&addr, STEP)
        .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    stream
        .set_read_timeout(Some(STEP))
        .map_err(|error| error.to_string())?;
    let request = upgrade_request(&addr.to_string(), "/ws?name=origin", headers);
    stream
        .write_all(&request)
        .map_err(|error| format!("sending failed: {error}"))?;
    let mut received = Vec::new();
    loop {
        if let Some(end) = find_head_end(&received) {
            return Ok(ResponseHead::parse(&received[..end])?.status);
        }
        let mut buffer = [0; 4096];
        let read = stream
            .read(&mut buffer)
            .map_err(|error| format!("reading the response failed: {error}"))?;
        if read == 0 {
            return Err("the server closed the connection before answering".to_owned());
        }
        received.extend_from_slice(&buffer[..read]);
    }
}

/// With `--trust-proxy`, what counts against a client's share of the connections is
/// the address nginx saw, though every connection reaches the server from nginx, and
/// whatever the client wrote in its own `X-Forwarded-For` (nginx replaces it): three
/// event streams from 127.0.0.2, each claiming another address, take its share and a
/// fourth is refused with 429, while 127.0.0.3 still gets in.
fn share_per_address_is_the_clients(proxy: &Nginx) -> Result<(), String> {
    let open = |local: Ipv4Addr, claimed: &str| {
        let mut connection = proxy.connect_from(IpAddr::V4(local))?;
        connection.send(&request_bytes(
            "GET",
            &proxy.host(),
            "/events",
            &[
                ("Accept", "text/event-stream"),
                ("X-Forwarded-For", claimed),
            ],
            b"",
        ))?;
        let status = connection.receive_head(STEP)?.status;
        Ok::<_, String>((status, connection))
    };
    let expect = |what: String, status: u16, expected: u16| {
        if status == expected {
            Ok(())
        } else {
            Err(format!("{what} answered {status}, expected {expected}"))
        }
    };
    let (client, other_client) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
    let mut held = Vec::new();
    for number in 1..=SHARE {
        let claimed = format!("198.51.100.{number}");
        let (status, connection) = open(client, &claimed)?;
        expect(
            format!("/events {number} from {client} as {claimed}"),
            status,
            200,
        )?;
        held.push(connection);
    }
    let (status, _refused) = open(client, "198.51.100.99")?;
    expect(format!("/events {} from {client}", SHARE + 1), status, 429)?;
    let (status, _other) = open(other_client, "198.51.100.1")?;
    expect(format!("/events from {other_client}"), status, 200)
}

/// Opens `/events` through nginx, then posts a chat message through nginx, and
/// expects the message on the open stream within [`PROMPTLY`].
fn events_stream_promptly(proxy: &Nginx) -> Result<(), String> {
    let mut events = proxy.connect()?;
    events.send(&request_bytes(
        "GET",
        &proxy.host(),
        "/events",
        &[("Accept", "text/event-stream")],
        b"",
    ))?;
    let head = events.receive_head(STEP)?;
    if head.status != 200 {
        return Err(format!("/events answered {}", head.status));
    }
    let content_type = head.header("content-type").unwrap_or_default();
    if !content_type.starts_with("text/event-stream") {
        return Err(format!("/events has Content-Type {content_type:?}"));
    }
    if !head
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        return Err(format!("/events through nginx is not chunked: {head:?}"));
    }

    let content = unique("through nginx");
    let body = format!(r#"{{"content":"{content}","from":"nginx"}}"#);
    let mut post = proxy.connect()?;
    post.send(&request_bytes(
        "POST",
        &proxy.host(),
        "/messages",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    ))?;
    let posted = post.receive_head(STEP)?;
    if posted.status != 202 {
        return Err(format!("POST /messages answered {}", posted.status));
    }
    let posted_at = Instant::now();

    let mut decoder = ChunkedDecoder::new();
    let mut parser = EventStreamParser::new();
    loop {
        let mut data = Vec::new();
        decoder.feed(&std::mem::take(&mut events.received), &mut data)?;
        for item in parser.feed(&data) {
            if let Item::Event(event) = item
                && event.data.contains(&content)
            {
                return Ok(());
            }
        }
        let left = PROMPTLY.saturating_sub(posted_at.elapsed());
        match events.receive(left) {
            Ok(true) => {}
            Ok(false) => return Err("/events ended before the message arrived".to_owned()),
            Err(_) => {
                return Err(format!(
                    "the message posted through nginx did not arrive on /events within {} ms",
                    PROMPTLY.as_millis()
                ));
            }
        }
    }
}

/// Opens the chat through nginx with `headers`, sends a message and expects it back,
/// as every sender receives its own accepted message.
fn chat_round_trip(proxy: &Nginx, headers: &[(&str, &str)]) -> Result<(), String> {
    let mut connection = proxy.connect()?;
    connection.send(&upgrade_request(&proxy.host(), "/ws?name=ada", headers))?;
    let head = connection.receive_head(STEP)?;
    let fields: Vec<(&str, &[u8])> = head
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    wsse_wire::handshake::validate_server_response(RFC_KEY, head.status, fields)
        .map_err(|error| format!("the handshake through nginx failed: {error}"))?;
    let welcome = next_text(&mut connection)?;
    if !welcome.contains(r#""type":"welcome""#) {
        return Err(format!("the first message is not the welcome: {welcome}"));
    }
    let content = unique("over TLS");
    let mut frame = Vec::new();
    let message = format!(r#"{{"type":"message","content":"{content}"}}"#);
    encode_frame(
        &mut frame,
        true,
        OpCode::Text,
        Some(random_key()),
        message.as_bytes(),
    );
    connection.send(&frame)?;
    let deadline = Instant::now() + STEP;
    while Instant::now() < deadline {
        let text = next_text(&mut connection)?;
        if text.contains(r#""type":"message""#) && text.contains(&content) {
            return Ok(());
        }
    }
    Err("the chat message did not come back".to_owned())
}

/// The next text message from the server, skipping control frames.
fn next_text(connection: &mut TlsConnection) -> Result<String, String> {
    let decoder = FrameDecoder::new(Role::Client, 1 << 20);
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(frame) = decoder
            .decode(&mut connection.received)
            .map_err(|error| format!("a bad frame through nginx: {error}"))?
        {
            let (opcode, payload, consumed) =
                (frame.header.opcode, frame.payload.to_vec(), frame.consumed);
            connection.received.drain(..consumed);
            match opcode {
                OpCode::Text => {
                    return String::from_utf8(payload)
                        .map_err(|_| "a text message that is not UTF-8".to_owned());
                }
                OpCode::Close => return Err("the server closed the WebSocket".to_owned()),
                _ => continue,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if !connection.receive(left)? {
            return Err("the connection closed".to_owned());
        }
    }
}
