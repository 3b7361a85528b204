//! The chat (WebSocket) and the token stream (SSE) with no web framework: plain
//! Tokio, `httparse`, and this workspace's own protocol code.
//!
//! ```text
//! cargo run --example scratch                    # http://127.0.0.1:3004
//! cargo run --example scratch -- --addr 127.0.0.1:0 --heartbeat 5
//! ```
//!
//! `crates/scratch` plays the framework: it reads requests, performs the upgrade,
//! moves frames and writes chunked event streams. What is left here is what every
//! framework leaves to its user, plus what frameworks do without being asked and
//! nobody does here unless we write it: routing, answering pings, the closing
//! handshake, and closing every connection on shutdown.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use wsse_app::auth::{self, Identity, SessionAnswer};
use wsse_app::burst::BURST_LIMIT;
use wsse_app::connection::{self, Beat, Closing, Heartbeat};
use wsse_app::hub::HubEvent;
use wsse_app::limits::ConnectionSlot;
use wsse_app::refusals::{self, Refusal};
use wsse_app::{AppState, Config, Shutdown, query, sse, tokens};
use wsse_scratch::http::{Connection, Request, Response};
use wsse_scratch::websocket::{
    self, Limits, Message, ReceiveError, WebSocketReader, WebSocketWriter,
};
use wsse_wire::close::CloseCode;

/// How long a closing handshake may take before the connection is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    wsse_app::logging::init();
    let config = Config::parse_with_default("127.0.0.1:3004");
    if config.tls {
        // Not yet: its connections are a `TcpStream` end to end (split in halves,
        // closed with a lingering read), and TLS would put a stream type under them.
        eprintln!(
            "error: --tls: the from-scratch server speaks plain HTTP/1.1 only; \
             for HTTPS and HTTP/2 start axum, actix or warp with --tls"
        );
        std::process::exit(2);
    }
    let listener = TcpListener::bind(config.addr()).await?;
    println!("listening on http://{}", listener.local_addr()?);
    serve(listener, config, wsse_app::shutdown_signal()).await
}

// The scratch crate's bound on a request head is the one the app crate gives hyper.
const _: () = assert!(wsse_scratch::http::MAX_HEAD_LEN == wsse_app::limits::MAX_REQUEST_HEAD_BYTES);

// ANCHOR: serve
/// Serves the app on `listener` until `stop` resolves, then closes every connection.
async fn serve(
    listener: TcpListener,
    config: Config,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    wsse_app::listener::configure(&listener, &config)?;
    let state = AppState::start(config).await?;
    let shutdown = state.shutdown.clone();
    let mut stop = pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let _open = state.shutdown.track();
                        handle_connection(stream, state).await;
                    });
                }
                // Out of file descriptors, say: log, breathe, keep serving.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    tracing::info!("shutting down");
    // Ends every subscription: chats close with 1001, event streams end.
    shutdown.trigger();
    shutdown.connections_closed(Duration::from_secs(1)).await;
    Ok(())
}
// ANCHOR_END: serve

// ANCHOR: routes
/// One TCP connection: HTTP requests, one after the other, until one of them turns
/// the connection into a WebSocket or an event stream, or the client leaves.
async fn handle_connection(stream: TcpStream, state: AppState) {
    let mut connection = Connection::new(stream);
    // Each head in time, counted from the connection's start or the last response: a
    // client that dribbles its head, or idles between requests, gets 408 and goes.
    let head_timeout = state.config.request_head_timeout();
    loop {
        let request = tokio::select! {
            request = connection.next_request_within(head_timeout) => match request {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(error) => return connection.reject(&error).await,
            },
            // An idle keep-alive connection must not hold up the shutdown.
            () = state.shutdown.wait() => return,
        };
        let response = match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/") => Response::html(wsse_app::page::INDEX_HTML),
            ("GET", "/healthz") => Response::text(200, "ok"),
            ("POST", "/messages") => post_message(&state, &request).await,
            ("GET", "/session") => {
                session_answer(state.sessions.current(request.header_pairs()).await)
            }
            ("POST", "/session") => session_answer(
                state
                    .sessions
                    .sign_in(&state.config, request.header_pairs(), &request.body)
                    .await,
            ),
            ("DELETE", "/session") => session_answer(
                state
                    .sessions
                    .sign_out(&state.config, request.header_pairs())
                    .await,
            ),
            ("GET", "/ws") => return chat_upgrade(connection, request, state).await,
            ("GET", "/echo") => return echo_upgrade(connection, request, state).await,
            ("GET", "/events") => return events(connection, request, state).await,
            ("GET", "/stream") => return token_stream(connection, request, state).await,
            _ => Response::text(404, "not found\n"),
        };
        if connection.respond(&request, response).await.is_err() || !request.keep_alive() {
            return;
        }
    }
}
// ANCHOR_END: routes

/// The read size `--ws-buffer-bytes` asks for, else the default (8 KiB), and the
/// permessage-deflate the `--deflate-*` flags allow.
fn limits(state: &AppState) -> Limits {
    let defaults = Limits::default();
    Limits {
        read_size: state
            .config
            .ws_buffer_bytes
            .map_or(defaults.read_size, |bytes| bytes as usize),
        deflate: state.config.deflate(),
        ..defaults
    }
}

// ANCHOR: chat_upgrade
/// `GET /ws?name=NAME&since=SEQ`: the app's refusals (400, 403, 426, and 503 at the
/// ceiling) first, then 101.
async fn chat_upgrade(connection: Connection, request: Request, state: AppState) {
    // Held until the chat ends, when this function returns.
    let _slot = match admit_upgrade(&state, &connection, &request) {
        Ok(slot) => slot,
        Err(refusal) => return refuse_and_close(connection, &request, refusal).await,
    };
    let identity = match authenticate(&state, &request).await {
        Ok(identity) => identity,
        Err(refusal) => return refuse_and_close(connection, &request, refusal).await,
    };
    let chat_query = query::ChatQuery::parse(request.query.as_deref());
    let limits = Limits {
        max_message: wsse_app::messages::MAX_WEBSOCKET_MESSAGE_BYTES,
        max_fragments: wsse_app::limits::MAX_CHAT_FRAGMENTS,
        ..limits(&state)
    };
    // Bytes read past the request may already hold the client's first frames.
    let (stream, leftover) = connection.into_parts();
    let protocols = [auth::SUBPROTOCOL];
    let accepted =
        websocket::accept_with_protocols(stream, &request, leftover, limits, &protocols).await;
    if let Ok((reader, writer)) = accepted {
        chat(reader, writer, state, chat_query, identity).await;
    }
}
// ANCHOR_END: chat_upgrade

/// The app crate's refusals of an upgrade: the same rules and answers as on every
/// server. (`websocket::accept` applies the wire crate's rules again, as any
/// user of the scratch crate needs it to; they pass by then.) Last, a place under
/// the connection ceiling.
fn admit_upgrade(
    state: &AppState,
    connection: &Connection,
    request: &Request,
) -> Result<ConnectionSlot, Refusal> {
    let peer = connection.peer_addr().map(|peer| peer.ip());
    state.admit_upgrade(
        &request.method,
        request.version,
        peer,
        request.header_pairs(),
    )
}

/// A place under the connection ceiling for this request's client.
fn admit(
    state: &AppState,
    connection: &Connection,
    request: &Request,
) -> Result<ConnectionSlot, Refusal> {
    let peer = connection.peer_addr().map(|peer| peer.ip());
    state.admit(peer, request.header_pairs())
}

/// Answers a refused WebSocket or event stream; the connection ends with it.
async fn refuse_and_close(mut connection: Connection, request: &Request, refusal: Refusal) {
    let _ = connection.respond(request, refuse(refusal)).await;
}

/// A refusal as the scratch crate's response.
fn refuse(refusal: Refusal) -> Response {
    let mut response = Response::text(refusal.status, refusal.body);
    for (name, value) in refusal.headers {
        response = response.header(*name, *value);
    }
    response
}

// The scratch crate reads bodies up to its own limit; it must be the app's.
const _: () = assert!(wsse_scratch::http::MAX_BODY_LEN == refusals::MAX_POST_BODY_BYTES);

// ANCHOR: chat
/// One chat connection: hub events out, chat messages in, a ping every heartbeat.
async fn chat(
    mut reader: WebSocketReader,
    mut writer: WebSocketWriter,
    state: AppState,
    chat_query: query::ChatQuery,
    identity: Identity,
) {
    let name = identity.name().or(chat_query.name.as_deref());
    let (member, mut subscription) = state.hub.connect(name, chat_query.since);
    let mut session_ended = pin!(identity.ended());
    tracing::info!(name = member.name(), "joined");
    let welcome = subscription.welcome(member.name()).to_json();
    if writer.send_text(&welcome).await.is_err() {
        return;
    }
    let mut heartbeat = Heartbeat::new(state.config.heartbeat_interval());
    let mut rate = state.config.message_rate();

    let closing = loop {
        // `receive` and `next` are cancel-safe: a branch that loses the race
        // loses no bytes and no event.
        let sent = tokio::select! {
            incoming = reader.receive() => match incoming {
                // A valid message reaches everyone through the hub, this socket
                // included; only an error goes straight back.
                Ok(Message::Text(text)) => match member.handle_text_at_rate(&mut rate, &text).await {
                    Ok(None) => Ok(()),
                    Ok(Some(reply)) => writer.send_text(&reply.to_json()).await,
                    Err(closing) => break closing,
                },
                Ok(Message::Binary(_)) => break connection::BINARY_REFUSED,
                // Nobody answers pings for us here.
                Ok(Message::Ping(payload)) => writer.send_pong(&payload).await,
                // Any pong proves the client is alive. The timer keeps running.
                Ok(Message::Pong(_)) => {
                    heartbeat.pong();
                    Ok(())
                }
                Ok(Message::Close(frame)) => break echo_close_code(frame),
                Err(ReceiveError::Protocol(error)) => {
                    tracing::info!(name = member.name(), %error, "protocol error");
                    break protocol_error(&error);
                }
                Err(ReceiveError::Io(_) | ReceiveError::Eof) => return,
            },
            event = subscription.next() => match event {
                // What else is waiting goes out with it, in one write.
                Some(event) => {
                    let burst = subscription.take_burst(event, BURST_LIMIT);
                    writer.send_texts(burst.iter().map(HubEvent::to_json)).await
                }
                None => break connection::SHUTTING_DOWN,
            },
            () = session_ended.as_mut() => break connection::SESSION_ENDED,
            // ANCHOR: heartbeat
            beat = heartbeat.tick() => match beat {
                Beat::Ping => writer.send_ping(b"").await,
                Beat::Drop => {
                    tracing::info!(name = member.name(), "no pong to the last pings, dropping");
                    return;
                }
            },
            // ANCHOR_END: heartbeat
        };
        if sent.is_err() {
            return;
        }
    };
    let _ = websocket::close_and_wait(reader, writer, closing.code, closing.reason, CLOSE_TIMEOUT)
        .await;
    tracing::info!(name = member.name(), "left");
}
// ANCHOR_END: chat

/// The code to answer a close frame with: the peer's own (section 5.5.1), or 1000
/// if it sent none.
fn echo_close_code(frame: Option<wsse_wire::close::CloseFrame>) -> Closing {
    Closing {
        code: frame.map_or(CloseCode::NORMAL, |frame| frame.code),
        reason: "",
    }
}

/// The closing a protocol error earns: its own code (1002, 1007 or 1009).
fn protocol_error(error: &wsse_wire::ProtocolError) -> Closing {
    Closing {
        code: error.close_code(),
        reason: "protocol error",
    }
}

/// `GET /echo`: every message comes back as it came.
async fn echo_upgrade(connection: Connection, request: Request, state: AppState) {
    let _slot = match admit_upgrade(&state, &connection, &request) {
        Ok(slot) => slot,
        Err(refusal) => return refuse_and_close(connection, &request, refusal).await,
    };
    let limits = Limits {
        max_message: wsse_app::messages::MAX_ECHO_MESSAGE_BYTES,
        ..limits(&state)
    };
    let (stream, leftover) = connection.into_parts();
    if let Ok((reader, writer)) = websocket::accept(stream, &request, leftover, limits).await {
        echo(reader, writer, state.shutdown).await;
    }
}

async fn echo(mut reader: WebSocketReader, mut writer: WebSocketWriter, shutdown: Shutdown) {
    let closing = loop {
        let sent = tokio::select! {
            incoming = reader.receive() => match incoming {
                Ok(Message::Text(text)) => writer.send_text(&text).await,
                Ok(Message::Binary(bytes)) => writer.send_binary(&bytes).await,
                Ok(Message::Ping(payload)) => writer.send_pong(&payload).await,
                Ok(Message::Pong(_)) => Ok(()),
                Ok(Message::Close(frame)) => break echo_close_code(frame),
                Err(ReceiveError::Protocol(error)) => break protocol_error(&error),
                Err(ReceiveError::Io(_) | ReceiveError::Eof) => return,
            },
            () = shutdown.wait() => break connection::SHUTTING_DOWN,
        };
        if sent.is_err() {
            return;
        }
    };
    let _ = websocket::close_and_wait(reader, writer, closing.code, closing.reason, CLOSE_TIMEOUT)
        .await;
}

/// `POST /messages`: the chat over plain HTTP, for the SSE + POST pattern.
async fn post_message(state: &AppState, request: &Request) -> Response {
    match state
        .post_message(request.header_pairs(), &request.body)
        .await
    {
        Ok((status, json)) => Response::json(status, json),
        Err(refusal) => refuse(refusal),
    }
}

/// `POST` or `DELETE /session` (with `--auth`): the app crate's JSON, with a cookie if
/// it sets one.
fn session_answer(answer: SessionAnswer) -> Response {
    let response = Response::json(answer.status, answer.body);
    match answer.set_cookie {
        Some(cookie) => response.header("Set-Cookie", cookie),
        None => response,
    }
}

/// Who the request acts as (with `--auth`, its session; [`wsse_app::auth`]).
async fn authenticate(state: &AppState, request: &Request) -> Result<Identity, Refusal> {
    state
        .sessions
        .authenticate(request.header_pairs(), request.query.as_deref())
        .await
}

// ANCHOR: events
/// `GET /events`: the chat as Server-Sent Events, resuming after `Last-Event-ID`.
async fn events(connection: Connection, request: Request, state: AppState) {
    let _slot = match admit(&state, &connection, &request) {
        Ok(slot) => slot,
        Err(refusal) => return refuse_and_close(connection, &request, refusal).await,
    };
    let identity = match authenticate(&state, &request).await {
        Ok(identity) => identity,
        Err(refusal) => return refuse_and_close(connection, &request, refusal).await,
    };
    let last_event_id =
        query::last_event_id(request.header("last-event-id"), request.query.as_deref());
    let subscription = state
        .hub
        .subscribe_from_last_event_id(last_event_id.as_deref());
    let events = subscription
        .into_stream_until(identity.ended())
        .map(|event| sse::hub_event(&event));
    send_event_stream(connection, events, state.config.heartbeat_interval()).await;
}
// ANCHOR_END: events

/// `GET /stream?prompt=TEXT`: one event per token, then `[DONE]`.
async fn token_stream(connection: Connection, request: Request, state: AppState) {
    let _slot = match admit(&state, &connection, &request) {
        Ok(slot) => slot,
        Err(refusal) => return refuse_and_close(connection, &request, refusal).await,
    };
    let prompt = query::prompt(request.query.as_deref());
    let start = tokens::parse_last_event_id(request.header("last-event-id"));
    let tokens = tokens::token_stream(&prompt, start, state.config.token_interval())
        .with_shutdown(&state.shutdown)
        .map(|token| token.to_sse());
    send_event_stream(connection, tokens, state.config.heartbeat_interval()).await;
}

// ANCHOR: sse_response
/// Writes an event stream: the head, then the app crate's event-stream text
/// (`retry:` first, a heartbeat event, the events, a heartbeat event whenever
/// nothing was sent for `heartbeat`) one chunk at a time, and the last chunk when
/// the events end.
async fn send_event_stream(
    connection: Connection,
    events: impl Stream<Item = wsse_wire::sse::Event> + Send + 'static,
    heartbeat: Duration,
) {
    let (stream, _) = connection.into_parts();
    let Ok(mut writer) = wsse_scratch::sse::start(stream, &sse::headers()).await else {
        return;
    };
    let mut text = pin!(sse::text_stream(events, heartbeat));
    while let Some(piece) = text.next().await {
        if writer.send_raw(&piece).await.is_err() {
            return; // the client is gone
        }
    }
    let _ = writer.finish().await;
}
// ANCHOR_END: sse_response
