//! Fail-over through nginx: two instances on one real `redis-server`, behind nginx
//! configured by the book's `deploy/nginx/wsse.conf`, with this project's own
//! reconnecting clients (`wsse_clients::chat::ChatClient` over WebSocket,
//! `wsse_clients::event_source::EventSource` over SSE) connected through nginx.
//! 300 messages are posted while one instance is killed with SIGKILL in the middle;
//! every client, those that were on the dead instance included, must end with all
//! 300, none twice, in order.
//!
//! nginx hands new connections round-robin, so the clients are opened one by one in
//! an order that puts WebSocket and SSE clients on both instances, and the test
//! checks that some of each kind really did lose their connection and resume.
//!
//! Without `redis-server` or nginx the test says it was skipped and how to install
//! them, and fails when `CI` is set (`.ci/run` installs both).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wsse_app::messages::ServerMessage;
use wsse_clients::backoff::BackoffPolicy;
use wsse_clients::chat::{ChatClient, ChatEvent, ChatOptions};
use wsse_clients::event_source::{EventSource, EventSourceOptions, Update};
use wsse_testkit::ServerProcess;
use wsse_testkit::http::post_json;
use wsse_testkit::nginx::{self, Nginx};
use wsse_testkit::redis::{self, RedisServer};

/// Messages posted during the test.
const MESSAGES: u64 = 300;

/// The message after which one instance is killed.
const KILL_AFTER: u64 = 100;

/// Clients of each kind, half of them on each instance.
const CLIENTS: usize = 4;

/// The longest the whole test may take to deliver everything.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// What one client has received, and how often it (re)connected.
#[derive(Debug, Default)]
struct Received {
    seqs: Vec<u64>,
    contents: Vec<String>,
    connections: usize,
    /// What the client itself reported as wrong: a gap, a duplicate, a reset.
    problems: Vec<String>,
}

enum Report {
    Message {
        client: usize,
        seq: u64,
        content: String,
    },
    Connected {
        client: usize,
    },
    Problem {
        client: usize,
        what: String,
    },
}

#[test]
fn failover_through_nginx() {
    if !wsse_testkit::programs_present(
        "fail-over through nginx",
        &[
            (redis::missing_program(), redis::INSTALL_COMMAND),
            (nginx::missing_programs(), nginx::INSTALL_COMMAND),
        ],
    ) {
        return;
    }
    let redis = RedisServer::start().expect("redis-server starts");
    let redis_flag = ["--redis", &redis.url()];
    let mut doomed = ServerProcess::spawn("actix", &redis_flag).expect("actix starts");
    let survivor = ServerProcess::spawn("warp", &redis_flag).expect("warp starts");
    let proxy = Nginx::start(&[doomed.addr(), survivor.addr()]).expect("nginx starts");
    let front = proxy.plain_addr();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = runtime.block_on(async {
        let (reports, mut incoming) = mpsc::unbounded_channel();
        let mut inputs = Vec::new();
        let mut received: Vec<Received> = (0..CLIENTS * 2).map(|_| Received::default()).collect();
        // One at a time, WebSocket, WebSocket, SSE, SSE, ...: round-robin puts each
        // kind on both instances.
        for client in 0..CLIENTS * 2 {
            if kind(client) == "WebSocket" {
                inputs.push(spawn_chat(client, &format!("ws://{front}/ws"), &reports));
            } else {
                spawn_event_source(client, &format!("http://{front}/events"), &reports);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while received[client].connections == 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, incoming.recv()).await {
                    Ok(Some(report)) => note(&mut received, report),
                    _ => return Err(format!("client {client} did not connect: {received:?}")),
                }
            }
        }
        let poster = tokio::spawn(async move {
            for number in 1..=MESSAGES {
                let body = format!(r#"{{"content":"failover {number}","from":"poster"}}"#);
                let response = post_json(survivor.addr(), "/messages", &body).await?;
                if response.head.status != 202 {
                    return Err(format!("POST {number} answered {}", response.head.status));
                }
                if number == KILL_AFTER {
                    doomed.kill();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<_, String>(survivor)
        });
        let deadline = Instant::now() + TEST_LIMIT;
        while received
            .iter()
            .any(|client| client.seqs.len() < MESSAGES as usize)
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, incoming.recv()).await {
                Ok(Some(report)) => note(&mut received, report),
                _ => break,
            }
        }
        let survivor = poster.await.map_err(|error| error.to_string())??;
        drop(inputs);
        Ok((received, survivor))
    });
    let (received, survivor) = match outcome {
        Ok(outcome) => outcome,
        Err(error) => panic!("{error}\nnginx's error log:\n{}", proxy.error_log()),
    };

    let expected: Vec<String> = (1..=MESSAGES).map(|n| format!("failover {n}")).collect();
    let mut failures = Vec::new();
    for (client, got) in received.iter().enumerate() {
        let kind = kind(client);
        let contiguous = got.seqs.windows(2).all(|pair| pair[1] == pair[0] + 1);
        if !got.problems.is_empty() {
            failures.push(format!(
                "{kind} client {client} reported {:?}",
                got.problems
            ));
        }
        if got.contents != expected || !contiguous {
            failures.push(format!(
                "{kind} client {client} got {} messages (contiguous seqs: {contiguous}); first {:?}, last {:?}",
                got.contents.len(),
                got.contents.first(),
                got.contents.last()
            ));
        }
    }
    for kind_wanted in ["WebSocket", "SSE"] {
        let resumed = received
            .iter()
            .enumerate()
            .filter(|(client, got)| kind(*client) == kind_wanted && got.connections > 1)
            .count();
        if resumed == 0 {
            failures.push(format!(
                "no {kind_wanted} client lost its connection: none was on the killed instance"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nnginx's error log:\n{}\nthe survivor's stderr:\n{}",
        failures.join("\n"),
        proxy.error_log(),
        survivor.stderr_tail()
    );
}

fn kind(client: usize) -> &'static str {
    if client % 4 < 2 { "WebSocket" } else { "SSE" }
}

fn note(received: &mut [Received], report: Report) {
    match report {
        Report::Connected { client } => received[client].connections += 1,
        Report::Problem { client, what } => received[client].problems.push(what),
        Report::Message {
            client,
            seq,
            content,
        } => {
            received[client].seqs.push(seq);
            received[client].contents.push(content);
        }
    }
}

/// A reconnecting chat client from the start of the history, reporting every message
/// and every connection; it runs until the returned sender is dropped.
fn spawn_chat(
    client: usize,
    url: &str,
    reports: &mpsc::UnboundedSender<Report>,
) -> mpsc::Sender<String> {
    let mut options = ChatOptions::new(url);
    options.since = Some(0);
    options.name = Some(format!("failover-{client}"));
    // A few quick tries: the test is about resuming, not about waiting.
    options.backoff = BackoffPolicy {
        start: Duration::from_millis(100),
        cap: Duration::from_millis(500),
        ..BackoffPolicy::DEFAULT
    };
    let (input, lines) = mpsc::channel(1);
    let reports = reports.clone();
    tokio::spawn(async move {
        let mut chat = ChatClient::new(options);
        let _ = chat
            .run(lines, |event| match event {
                ChatEvent::Connected { .. } => {
                    let _ = reports.send(Report::Connected { client });
                }
                ChatEvent::Received {
                    message: ServerMessage::Message(message),
                    ..
                } => {
                    let _ = reports.send(Report::Message {
                        client,
                        seq: message.seq,
                        content: message.content.clone(),
                    });
                }
                ChatEvent::DuplicateDropped { .. }
                | ChatEvent::Gap { .. }
                | ChatEvent::MissedMessages { .. }
                | ChatEvent::ServerRestarted { .. } => {
                    let _ = reports.send(Report::Problem {
                        client,
                        what: format!("{event:?}"),
                    });
                }
                _ => {}
            })
            .await;
    });
    input
}

/// A reconnecting `EventSource` on `/events`, reporting every chat event and every
/// opened stream.
fn spawn_event_source(client: usize, url: &str, reports: &mpsc::UnboundedSender<Report>) {
    let options = EventSourceOptions {
        max_reconnection_time: Some(Duration::from_millis(200)),
        ..EventSourceOptions::default()
    };
    let mut source = EventSource::new(url, options).expect("a valid URL");
    let reports = reports.clone();
    tokio::spawn(async move {
        while let Ok(update) = source.next().await {
            let report = match update {
                Update::Open { .. } => Report::Connected { client },
                Update::Event(event) if event.event_type == "reset" => Report::Problem {
                    client,
                    what: format!("a reset: {}", event.data),
                },
                Update::Event(event) if event.event_type == "message" => {
                    let Ok(message) = serde_json::from_str::<serde_json::Value>(&event.data) else {
                        continue;
                    };
                    Report::Message {
                        client,
                        seq: message["seq"].as_u64().unwrap_or_default(),
                        content: message["content"].as_str().unwrap_or_default().to_owned(),
                    }
                }
                _ => continue,
            };
            if reports.send(report).is_err() {
                return;
            }
        }
    });
}
