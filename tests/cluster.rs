//! Several instances, one chat: every server started with `--redis` against a real
//! `redis-server` (see `wsse_testkit::redis`), paired with a server of another
//! framework, and the faults the "Scaling out" chapter describes, each against real
//! processes:
//!
//! - a message sent over WebSocket to A and one posted to B reach the WebSocket and SSE
//!   clients of both, once each, in one seq order (every server on each side once);
//! - an instance started after the messages were sent replays them;
//! - Redis restarted empty: resuming clients get a `reset`, and new messages flow;
//! - Redis frozen for a few seconds: open connections stay open, new messages get
//!   `unavailable` (503 on POST), delivery resumes after, nothing twice;
//! - presence counts both instances, and forgets a killed one within the documented
//!   time; anonymous clients of two instances get different `anon-K` names;
//! - with `--auth`, a session started on one instance is the other's too: its ticket
//!   (once), its cookie, its name, and signing out closing its connections on both.
//!
//! Fail-over through nginx is `tests/cluster_failover.rs`. Without `redis-server` the
//! tests say they were skipped and how to install it, and fail when `CI` is set
//! (`.ci/run` installs it).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wsse_app::hub::PRESENCE_INTERVAL;
use wsse_app::redis_hub::INSTANCE_TTL;
use wsse_app::redis_sessions::SESSION_CHECK_INTERVAL;
use wsse_testkit::ServerProcess;
use wsse_testkit::http::{self, SseStream};
use wsse_testkit::redis::{self, RedisServer};
use wsse_testkit::ws::{ChatClient, RawWs};

/// How long one step (a message, an event) may take.
const STEP: Duration = Duration::from_secs(5);

/// Each server on each side once, each with a server of another framework.
const PAIRS: [(&str, &str); 4] = [
    ("axum", "actix"),
    ("actix", "warp"),
    ("warp", "scratch"),
    ("scratch", "axum"),
];

/// A Redis for one test, or `None` (with the reason printed) where there is none.
fn redis_or_skip(test: &str) -> Option<RedisServer> {
    wsse_testkit::programs_present(test, &[(redis::missing_program(), redis::INSTALL_COMMAND)])
        .then(|| RedisServer::start().expect("redis-server starts"))
}

fn instance(server: &str, redis: &RedisServer) -> ServerProcess {
    ServerProcess::spawn(server, &["--redis", &redis.url()])
        .unwrap_or_else(|error| panic!("{server} --redis: {error}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `POST /messages` to `addr`; the status and the JSON body.
async fn post(addr: SocketAddr, content: &str) -> Result<(u16, Value), String> {
    let body = json!({ "content": content, "from": "poster" }).to_string();
    let response = http::post_json(addr, "/messages", &body).await?;
    Ok((response.head.status, response.json()?))
}

/// Posts until the chat takes the message (after a Redis restart an instance needs a
/// moment to reconnect); its seq.
async fn post_until_accepted(addr: SocketAddr, content: &str) -> Result<u64, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = post(addr, content).await?;
        if status == 202 {
            return body["seq"]
                .as_u64()
                .ok_or_else(|| format!("202 without a seq: {body}"));
        }
        if Instant::now() > deadline {
            return Err(format!("still {status} {body} after 10 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next chat message (skipping presence) on a WebSocket, as (seq, content).
async fn next_chat(client: &mut ChatClient) -> Result<(u64, String), String> {
    let (message, _) = client
        .recv_until("waiting for a chat message", |message| {
            message["type"] == "message"
        })
        .await?;
    Ok(chat_pair(&message))
}

fn chat_pair(message: &Value) -> (u64, String) {
    (
        message["seq"].as_u64().unwrap_or_default(),
        message["content"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The next event of `kind` on an SSE stream, its data as JSON and its id.
async fn next_sse(stream: &mut SseStream, kind: &str) -> Result<(Value, String), String> {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = stream
            .next_event(left)
            .await
            .map_err(|error| format!("waiting for a {kind} event: {error}"))?;
        if event.event_type == kind {
            let data = serde_json::from_str(&event.data)
                .map_err(|error| format!("{:?} is not JSON: {error}", event.data))?;
            return Ok((data, event.last_event_id));
        }
    }
}

/// Reads `count` chat messages from a WebSocket; fails on a duplicate seq.
async fn chats(client: &mut ChatClient, count: usize) -> Result<Vec<(u64, String)>, String> {
    let mut received = Vec::new();
    while received.len() < count {
        received.push(next_chat(client).await?);
    }
    Ok(received)
}

async fn sse_chats(stream: &mut SseStream, count: usize) -> Result<Vec<(u64, String)>, String> {
    let mut received = Vec::new();
    while received.len() < count {
        let (data, id) = next_sse(stream, "message").await?;
        let pair = chat_pair(&data);
        if id != pair.0.to_string() {
            return Err(format!("event id {id:?} for seq {}", pair.0));
        }
        received.push(pair);
    }
    Ok(received)
}

async fn across_two_instances(
    first: &str,
    second: &str,
    redis: &RedisServer,
) -> Result<(), String> {
    let a = instance(first, redis);
    let b = instance(second, redis);
    let mut ws_a = ChatClient::connect(a.addr(), "name=wa").await?;
    let mut ws_b = ChatClient::connect(b.addr(), "name=wb").await?;
    let mut sse_a = SseStream::open(a.addr(), "/events", &[]).await?;
    let mut sse_b = SseStream::open(b.addr(), "/events", &[]).await?;
    ws_a.send_chat("over the WebSocket to A").await?;
    // Posted only after A's message is numbered, so the order is known.
    let first_seq = next_chat(&mut ws_b).await?.0;
    let (status, body) = post(b.addr(), "posted to B").await?;
    if status != 202 || body["seq"].as_u64() != Some(first_seq + 1) {
        return Err(format!(
            "POST to B answered {status} {body}, expected seq {}",
            first_seq + 1
        ));
    }
    let expected = vec![
        (first_seq, "over the WebSocket to A".to_owned()),
        (first_seq + 1, "posted to B".to_owned()),
    ];
    let mut seen = vec![
        ("WebSocket on A", chats(&mut ws_a, 2).await?),
        ("SSE on A", sse_chats(&mut sse_a, 2).await?),
        ("SSE on B", sse_chats(&mut sse_b, 2).await?),
    ];
    let mut on_b = vec![expected[0].clone()];
    on_b.extend(chats(&mut ws_b, 1).await?);
    seen.push(("WebSocket on B", on_b));
    for (client, messages) in &seen {
        if messages != &expected {
            return Err(format!("{client} got {messages:?}, expected {expected:?}"));
        }
    }
    // Once each: nothing more is coming.
    for (client, extra) in [
        (
            "WebSocket on A",
            ws_a.drain_for(Duration::from_millis(300)).await?,
        ),
        (
            "WebSocket on B",
            ws_b.drain_for(Duration::from_millis(300)).await?,
        ),
    ] {
        if extra.iter().any(|message| message["type"] == "message") {
            return Err(format!("{client} got more: {extra:?}"));
        }
    }
    Ok(())
}

#[test]
fn messages_cross_instances_once_each_in_one_order() {
    let Some(redis) = redis_or_skip("messages across instances") else {
        return;
    };
    let mut failures = Vec::new();
    for (first, second) in PAIRS {
        redis.command(&["FLUSHALL"]).expect("FLUSHALL");
        if let Err(error) = runtime().block_on(across_two_instances(first, second, &redis)) {
            failures.push(format!("{first} with {second}: {error}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_instance_started_later_replays_the_history() {
    let Some(redis) = redis_or_skip("replay on a later instance") else {
        return;
    };
    runtime().block_on(async {
        let a = instance("warp", &redis);
        let mut seqs = Vec::new();
        for number in 0..5 {
            seqs.push(
                post_until_accepted(a.addr(), &format!("early {number}"))
                    .await
                    .unwrap(),
            );
        }
        assert!(
            seqs.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "{seqs:?}"
        );
        let b = instance("actix", &redis);
        let mut replayed = ChatClient::connect(b.addr(), "since=0").await.unwrap();
        assert_eq!(replayed.welcome["seq"].as_u64(), Some(seqs[4]));
        let got = chats(&mut replayed, 5).await.unwrap();
        let expected: Vec<_> = (0..5).map(|n| (seqs[n], format!("early {n}"))).collect();
        assert_eq!(got, expected);
        let first = seqs[0].to_string();
        let mut resumed = SseStream::open(b.addr(), "/events", &[("Last-Event-ID", &first)])
            .await
            .unwrap();
        assert_eq!(sse_chats(&mut resumed, 4).await.unwrap(), expected[1..]);
    });
}

#[test]
fn redis_restarted_empty_means_reset_then_new_messages() {
    let Some(mut redis) = redis_or_skip("Redis restarted empty") else {
        return;
    };
    runtime().block_on(async {
        let a = instance("axum", &redis);
        let b = instance("scratch", &redis);
        let mut last = 0;
        for number in 0..3 {
            last = post_until_accepted(a.addr(), &format!("before {number}"))
                .await
                .unwrap();
        }
        let mut live = ChatClient::connect(b.addr(), "since=0").await.unwrap();
        chats(&mut live, 3).await.unwrap();

        redis.restart_empty().expect("redis restarts");
        let after = post_until_accepted(a.addr(), "after the restart")
            .await
            .unwrap();
        assert!(
            after > last + 1,
            "a new epoch numbers above the old one: {after} after {last}"
        );

        // The client that stayed connected is told before the jump.
        let (reset, _) = live
            .recv_until("waiting for the reset", |message| {
                message["type"] != "presence"
            })
            .await
            .unwrap();
        assert_eq!(reset, json!({"type": "reset", "oldest": after}));
        assert_eq!(
            next_chat(&mut live).await.unwrap(),
            (after, "after the restart".into())
        );

        // Clients resuming from the old epoch, on either instance, get the reset first.
        for addr in [a.addr(), b.addr()] {
            let mut resumed = ChatClient::connect(addr, &format!("since={last}"))
                .await
                .unwrap();
            let (first, _) = resumed
                .recv_until("waiting for the reset", |message| {
                    message["type"] != "presence"
                })
                .await
                .unwrap();
            assert_eq!(
                first,
                json!({"type": "reset", "oldest": after}),
                "on {addr}"
            );
            assert_eq!(next_chat(&mut resumed).await.unwrap().0, after);
            let id = last.to_string();
            let mut events = SseStream::open(addr, "/events", &[("Last-Event-ID", &id)])
                .await
                .unwrap();
            let (data, id) = next_sse(&mut events, "reset").await.unwrap();
            assert_eq!(
                (data, id),
                (json!({"type": "reset", "oldest": after}), String::new())
            );
            assert_eq!(sse_chats(&mut events, 1).await.unwrap()[0].0, after);
        }
    });
}

#[test]
fn redis_frozen_refuses_new_messages_and_keeps_connections() {
    let Some(redis) = redis_or_skip("Redis frozen") else {
        return;
    };
    runtime().block_on(async {
        let a = instance("actix", &redis);
        let b = instance("axum", &redis);
        let mut on_a = ChatClient::connect(a.addr(), "name=ona").await.unwrap();
        let mut events_b = SseStream::open(b.addr(), "/events", &[]).await.unwrap();
        let before = post_until_accepted(b.addr(), "before").await.unwrap();
        assert_eq!(
            next_chat(&mut on_a).await.unwrap(),
            (before, "before".into())
        );

        redis.pause().expect("SIGSTOP");
        let (status, body) = post(b.addr(), "while frozen").await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "unavailable", "{body}");
        on_a.send_chat("while frozen, over the WebSocket")
            .await
            .unwrap();
        let (refusal, _) = on_a
            .recv_until("waiting for the refusal", |message| {
                message["type"] == "error"
            })
            .await
            .unwrap();
        assert_eq!(refusal["code"], "unavailable", "{refusal}");
        // Longer than the stream reader's block and its response timeout.
        tokio::time::sleep(Duration::from_secs(4)).await;
        redis.resume().expect("SIGCONT");

        let after = post_until_accepted(b.addr(), "after").await.unwrap();
        assert_eq!(after, before + 1, "nothing refused was numbered");
        // The same connections, still open: the next message is the new one, once.
        assert_eq!(next_chat(&mut on_a).await.unwrap(), (after, "after".into()));
        let got = sse_chats(&mut events_b, 2).await.unwrap();
        assert_eq!(
            got,
            vec![(before, "before".into()), (after, "after".into())]
        );
        let extra = on_a.drain_for(Duration::from_millis(500)).await.unwrap();
        assert!(
            extra.iter().all(|message| message["type"] == "presence"),
            "{extra:?}"
        );
        for process in [&a, &b] {
            assert!(
                !process.stderr_tail().contains("panicked"),
                "{}",
                process.stderr_tail()
            );
        }
    });
}

#[test]
fn presence_counts_every_instance_and_forgets_a_dead_one() {
    let Some(redis) = redis_or_skip("presence across instances") else {
        return;
    };
    runtime().block_on(async {
        let a = instance("scratch", &redis);
        let mut b = instance("warp", &redis);
        // Anonymous, both: the anon-K numbers are chat-wide too.
        let mut on_a = ChatClient::connect(a.addr(), "").await.unwrap();
        let on_b = ChatClient::connect(b.addr(), "").await.unwrap();
        assert!(
            on_a.name().starts_with("anon-") && on_b.name().starts_with("anon-"),
            "{} and {}",
            on_a.name(),
            on_b.name()
        );
        assert_ne!(on_a.name(), on_b.name(), "two instances gave out one name");
        wait_for_online(&mut on_a, 2, STEP).await.unwrap();

        let killed = Instant::now();
        b.kill();
        // The killed instance's key expires, the next refresh of A drops it, and the
        // next presence interval hands the count on; a second of slack for this machine.
        let bound = INSTANCE_TTL + PRESENCE_INTERVAL * 2 + Duration::from_secs(1);
        wait_for_online(&mut on_a, 1, bound).await.unwrap();
        let took = killed.elapsed();
        assert!(took <= bound, "took {took:?}, documented {bound:?}");
    });
}

/// Reads presence messages until one says `online`, within `bound`.
async fn wait_for_online(
    client: &mut ChatClient,
    online: u64,
    bound: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + bound;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = client
            .recv_within(left)
            .await
            .map_err(|error| format!("online {online} never came ({error}); counts {seen:?}"))?;
        if message["type"] == "presence" {
            seen.push(message["online"].clone());
            if message["online"] == online {
                return Ok(());
            }
        }
    }
}

/// `POST /session` as `name` to `addr`; the status, the `Cookie` value to send back
/// (`wsse_session=ID`) and the ticket, when it signed in.
async fn sign_in(addr: SocketAddr, name: &str) -> Result<(u16, String, String), String> {
    let body = json!({ "name": name }).to_string();
    let response = http::request(
        addr,
        "POST",
        "/session",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await?;
    let cookie = response
        .head
        .header("Set-Cookie")
        .and_then(|cookie| cookie.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let ticket = response
        .json()
        .ok()
        .and_then(|answer| answer["ticket"].as_str().map(str::to_owned));
    Ok((response.head.status, cookie, ticket.unwrap_or_default()))
}

/// A session started on A is B's as well: its ticket works on B, once for both;
/// its cookie works on B; its name is taken on B; and signing out on A closes its
/// WebSocket on A with 4001 and ends its event stream on B within the check interval,
/// after which the name is free on B.
async fn one_session_on_two_instances(
    first: &str,
    second: &str,
    redis: &RedisServer,
) -> Result<(), String> {
    let args = ["--auth", "--redis", &redis.url()];
    let a = ServerProcess::spawn(first, &args)?;
    let b = ServerProcess::spawn(second, &args)?;
    let name = format!("ada-{first}-{second}");
    let (status, cookie, ticket) = sign_in(a.addr(), &name).await?;
    if status != 200 || !cookie.starts_with("wsse_session=") || ticket.is_empty() {
        return Err(format!(
            "signing in on A answered {status}, cookie {cookie:?}"
        ));
    }
    let by_ticket = format!("/ws?ticket={ticket}");
    let mut on_b = RawWs::connect(b.addr(), &by_ticket, &[]).await?;
    let welcome = on_b.recv_json(STEP).await?;
    if welcome["you"] != name.as_str() {
        return Err(format!("A's ticket on B: the welcome is {welcome}"));
    }
    let key = wsse_wire::handshake::generate_key();
    let (_, again, _) = RawWs::handshake(a.addr(), &by_ticket, &key, &[]).await?;
    if again.status != 401 {
        return Err(format!(
            "the ticket used on B, shown to A again, answered {}",
            again.status
        ));
    }
    let (taken, _, _) = sign_in(b.addr(), &name).await?;
    if taken != 409 {
        return Err(format!(
            "the name of A's session, asked for on B, answered {taken}"
        ));
    }
    let with_cookie = [("Cookie", cookie.as_str())];
    let current = http::request(b.addr(), "GET", "/session", &with_cookie, &[]).await?;
    if current.head.status != 200 || current.json()?["name"] != name.as_str() {
        return Err(format!(
            "GET /session on B answered {}",
            current.head.status
        ));
    }
    let mut chat_on_a = RawWs::connect(a.addr(), "/ws", &with_cookie).await?;
    chat_on_a.recv_json(STEP).await?;
    let mut events_on_b = SseStream::open(b.addr(), "/events", &with_cookie).await?;

    let signed_out = http::request(a.addr(), "DELETE", "/session", &with_cookie, &[]).await?;
    if signed_out.head.status != 200 {
        return Err(format!(
            "DELETE /session on A answered {}",
            signed_out.head.status
        ));
    }
    let code = chat_on_a.expect_close(STEP).await?;
    if code != 4001 {
        return Err(format!(
            "signing out closed A's chat with {code}, expected 4001"
        ));
    }
    events_on_b
        .expect_end(STEP + SESSION_CHECK_INTERVAL)
        .await
        .map_err(|error| format!("signing out on A did not end B's /events: {error}"))?;
    let code = on_b.expect_close(STEP + SESSION_CHECK_INTERVAL).await?;
    if code != 4001 {
        return Err(format!(
            "signing out on A closed B's chat with {code}, expected 4001"
        ));
    }
    let after = http::request(b.addr(), "GET", "/session", &with_cookie, &[]).await?;
    if after.head.status != 401 {
        return Err(format!(
            "the cookie on B after signing out: {}",
            after.head.status
        ));
    }
    let (free, _, _) = sign_in(b.addr(), &name).await?;
    if free != 200 {
        return Err(format!(
            "the name on B after signing out on A answered {free}"
        ));
    }
    Ok(())
}

#[test]
fn a_session_is_every_instances() {
    let Some(redis) = redis_or_skip("sessions across instances") else {
        return;
    };
    let runtime = runtime();
    for (first, second) in PAIRS {
        runtime
            .block_on(one_session_on_two_instances(first, second, &redis))
            .unwrap_or_else(|error| panic!("{first} and {second}: {error}"));
    }
}
