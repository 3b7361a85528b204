//! The chat (WebSocket) and the token stream (SSE) on warp 0.4.
//!
//! ```text
//! cargo run --example warp                       # http://127.0.0.1:3003
//! cargo run --example warp -- --addr 127.0.0.1:0 --heartbeat 5
//! ```
//!
//! Only glue lives here: what a valid message is, how seq and replay work and what
//! the token stream says are in `crates/app`. What warp (through tokio-tungstenite
//! 0.29, the same tungstenite as axum) does for us: most of the handshake, answering
//! pings, queuing the reply to a close, size limits, and graceful shutdown of HTTP
//! connections. What we add: the app crate's refusals before warp's own (the Origin
//! check, and the handshake rules warp skips, such as the length of
//! `Sec-WebSocket-Key`), close codes for errors
//! (tungstenite reports them but sends no close frame), the ping timer, closing with
//! 1001 on shutdown, a body limit that also works without `Content-Length`, and the
//! SSE text itself (`warp::sse` frames events without the space after the colon).
//! warp wants its response bodies `Sync`, hence the small [`SyncStream`] at the end.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::pin::pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, Stream, StreamExt};
use tokio::net::TcpListener;
use warp::http::header::{self, HeaderName, HeaderValue};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::ws::{Message, WebSocket, Ws};
use warp::{Buf, Filter, Reply};
use wsse_app::auth::{self, Identity};
use wsse_app::burst::{BURST_LIMIT, send_burst};
use wsse_app::closing;
use wsse_app::connection::{self, Beat, Closing, Fault, Heartbeat, closing_for};
use wsse_app::hyper_server::{Options, Peer};
use wsse_app::limits::ConnectionSlot;
use wsse_app::refusals::{self, Refusal};
use wsse_app::tls::Tls;
use wsse_app::{AppState, Config, Shutdown, query, sse, tokens};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    wsse_app::logging::init();
    let config = Config::parse_with_default("127.0.0.1:3003");
    let tls = Tls::from_config(&config)?;
    let listener = TcpListener::bind(config.addr()).await?;
    wsse_app::tls::announce(listener.local_addr()?, tls.as_ref());
    serve(listener, config, tls, wsse_app::shutdown_signal()).await
}

// ANCHOR: serve
/// Serves the app on `listener` (with `tls`, HTTPS and HTTP/2) until `stop` resolves,
/// then closes every connection.
async fn serve(
    listener: TcpListener,
    config: Config,
    tls: Option<Tls>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    wsse_app::listener::configure(&listener, &config)?;
    let state = AppState::start(config).await?;
    let shutdown = state.shutdown.clone();
    let head_timeout = state.config.request_head_timeout();
    // A filter that hands every request a clone of the state.
    let state = warp::any().map(move || state.clone());
    // `warp::header::headers_cloned()` extracts the whole `HeaderMap`.
    let headers = warp::header::headers_cloned;
    // The client's address, for the limit per client address: not
    // `warp::addr::remote()`, which only `warp::serve` fills in, but what the app
    // crate's loop puts in every request.
    let peer = warp::ext::get::<Peer>;

    let index = warp::path::end()
        .and(warp::get())
        .map(|| warp::reply::html(wsse_app::page::INDEX_HTML));
    let healthz = warp::path!("healthz").and(warp::get()).map(|| "ok");
    // `warp::ws()` rejects a request that is not an upgrade before any handler runs,
    // with answers of its own (400 for a bad `Sec-WebSocket-Version`, where RFC 6455
    // asks for 426 with `Sec-WebSocket-Version: 13`): optional, so that the app's
    // refusals answer first.
    let upgrade = || warp::ws().map(Some).or(warp::any().map(|| None)).unify();
    let ws = warp::path!("ws")
        .and(warp::get())
        .and(upgrade())
        .and(state.clone())
        .and(peer())
        .and(raw_query())
        .and(headers())
        .then(chat_upgrade);
    let echo = warp::path!("echo")
        .and(warp::get())
        .and(upgrade())
        .and(state.clone())
        .and(peer())
        .and(headers())
        .map(echo_upgrade);
    let messages = warp::path!("messages")
        .and(warp::post())
        .and(state.clone())
        .and(headers())
        .and(warp::body::stream())
        .then(post_message);
    let sign_in = warp::path!("session")
        .and(warp::post())
        .and(state.clone())
        .and(headers())
        .and(warp::body::stream())
        .then(sign_in);
    let current_session = warp::path!("session")
        .and(warp::get())
        .and(state.clone())
        .and(headers())
        .then(current_session);
    let sign_out = warp::path!("session")
        .and(warp::delete())
        .and(state.clone())
        .and(headers())
        .then(sign_out);
    let events = warp::path!("events")
        .and(warp::get())
        .and(state.clone())
        .and(peer())
        .and(raw_query())
        .and(headers())
        .then(events);
    let stream = warp::path!("stream")
        .and(warp::get())
        .and(state)
        .and(peer())
        .and(raw_query())
        .and(headers())
        .map(token_stream);
    let app = index
        .or(healthz)
        .or(ws)
        .or(echo)
        .or(messages)
        .or(current_session)
        .or(sign_in)
        .or(sign_out)
        .or(events)
        .or(stream);

    let graceful_shutdown = {
        let shutdown = shutdown.clone();
        async move {
            stop.await;
            tracing::info!("shutting down");
            // Ends every subscription: chats close with 1001, /events streams end.
            shutdown.trigger();
        }
    };
    // Not `warp::serve`, which gives hyper no timer and so no header read timeout: the
    // app crate's loop around hyper. On the stop it stops accepting, then waits for
    // every HTTP connection to finish its response (a running SSE response included,
    // which is why the trigger above ends them).
    // `warp::ws()` takes only an HTTP/1.1 upgrade (a GET with `Connection: upgrade`),
    // never RFC 8441's CONNECT: over HTTP/2 the server does not offer it, and a
    // browser opens its WebSockets on HTTP/1.1 connections beside the HTTP/2 one.
    let options = Options {
        head_timeout,
        tls: tls.as_ref(),
        websockets_over_http2: false,
    };
    wsse_app::hyper_server::serve(listener, warp::service(app), options, graceful_shutdown).await?;
    // The loop waited for plain requests; upgraded sockets are tasks of their own.
    shutdown.connections_closed(Duration::from_secs(1)).await;
    Ok(())
}
// ANCHOR_END: serve

/// The raw query string, or `None` without one. `warp::query::raw()` alone rejects a
/// request that has no query string, so it falls back to `None`; decoding is left to
/// `wsse_app::query`, the same in every server.
fn raw_query() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

// ANCHOR: chat_upgrade
/// `GET /ws?name=NAME&since=SEQ`: the app's refusals first, then warp answers 101.
async fn chat_upgrade(
    upgrade: Option<Ws>,
    state: AppState,
    Peer(peer): Peer,
    raw_query: Option<String>,
    headers: HeaderMap,
) -> Response {
    let slot = match admit_upgrade(&state, peer, &headers) {
        Ok(slot) => slot,
        Err(refusal) => return refuse(refusal),
    };
    let identity = match state
        .sessions
        .authenticate(fields(&headers), raw_query.as_deref())
        .await
    {
        Ok(identity) => identity,
        Err(refusal) => return refuse(refusal),
    };
    // `warp::ws()` rejects nothing the app crate accepts (its rules are a subset).
    let Some(upgrade) = upgrade else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let chat_query = query::ChatQuery::parse(raw_query.as_deref());
    let mut response = upgrade
        .max_message_size(wsse_app::messages::MAX_WEBSOCKET_MESSAGE_BYTES)
        .on_upgrade(move |socket| chat(socket, state, chat_query, identity, slot))
        .into_response();
    // `Ws` has no subprotocols: the header is ours to add, and only when offered.
    if auth::offers_subprotocol(fields(&headers)) {
        response.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(auth::SUBPROTOCOL),
        );
    }
    response
}
// ANCHOR_END: chat_upgrade

/// The app crate's refusals of an upgrade: `warp::ws()` checks the method,
/// `Upgrade`, `Connection` and `Sec-WebSocket-Version`, and that there is a key, but
/// not what the key looks like, nor `Host`; the wire crate's rules, which the app
/// crate applies, have them all. Last, a place under the connection ceiling.
fn admit_upgrade(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<ConnectionSlot, Refusal> {
    let fields = fields(headers);
    state.admit_upgrade("GET", (1, 1), Some(peer.ip()), fields.iter().copied())
}

/// The headers as the app crate takes them: (name, raw value) pairs.
fn fields(headers: &HeaderMap) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect()
}

/// A refusal as warp's response.
fn refuse(refusal: Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = warp::reply::with_status(refusal.body, status).into_response();
    for (name, value) in refusal.headers {
        response
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    response
}

// ANCHOR: chat
/// One chat connection: hub events out, chat messages in, a ping every heartbeat.
/// Its place under the ceiling (`_slot`) is held until it ends.
async fn chat(
    mut socket: WebSocket,
    state: AppState,
    chat_query: query::ChatQuery,
    identity: Identity,
    _slot: ConnectionSlot,
) {
    let _open = state.shutdown.track();
    let name = identity.name().or(chat_query.name.as_deref());
    let (member, mut subscription) = state.hub.connect(name, chat_query.since);
    let mut session_ended = pin!(identity.ended());
    tracing::info!(name = member.name(), "joined");
    let welcome = subscription.welcome(member.name()).to_json();
    if socket.send(Message::text(welcome)).await.is_err() {
        return;
    }
    let mut heartbeat = Heartbeat::new(state.config.heartbeat_interval());
    let mut rate = state.config.message_rate();

    // warp's `Message` is opaque (no enum to match on), so the arms ask it what it is.
    let close = loop {
        tokio::select! {
            incoming = socket.next() => match incoming {
                Some(Ok(message)) if message.is_binary() => {
                    break Some(close_frame(connection::BINARY_REFUSED));
                }
                // Any pong proves the client is alive. The timer keeps running.
                Some(Ok(message)) if message.is_pong() => heartbeat.pong(),
                // tungstenite has already queued the pong.
                Some(Ok(message)) if message.is_ping() => {}
                Some(Ok(message)) if message.is_close() => break reply_to_close(&mut socket).await,
                // What is left is text. A valid message reaches everyone through the
                // hub, this socket included; only an error goes straight back.
                Some(Ok(message)) => {
                    let Ok(text) = message.to_str() else { continue };
                    match member.handle_text_at_rate(&mut rate, text).await {
                        Ok(None) => {}
                        Ok(Some(reply)) => {
                            if socket.send(Message::text(reply.to_json())).await.is_err() {
                                break None;
                            }
                        }
                        Err(closing) => break Some(close_frame(closing)),
                    }
                }
                None => break None,
                Some(Err(error)) => break close_frame_for(&error),
            },
            event = subscription.next() => match event {
                // What else is waiting goes out with it, flushed once.
                Some(event) => {
                    let burst = subscription.take_burst(event, BURST_LIMIT);
                    if send_burst(&mut socket, burst, Message::text).await.is_err() {
                        break None;
                    }
                }
                None => break Some(close_frame(connection::SHUTTING_DOWN)),
            },
            () = session_ended.as_mut() => break Some(close_frame(connection::SESSION_ENDED)),
            beat = heartbeat.tick() => match beat {
                Beat::Ping => {
                    if socket.send(Message::ping(Vec::<u8>::new())).await.is_err() {
                        break None;
                    }
                }
                Beat::Drop => {
                    tracing::info!(name = member.name(), "no pong to the last pings, dropping");
                    break None;
                }
            },
        }
    };
    finish(socket, close).await;
    tracing::info!(name = member.name(), "left");
}
// ANCHOR_END: chat

/// `GET /echo`: every message comes back as it came.
fn echo_upgrade(
    upgrade: Option<Ws>,
    state: AppState,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Response {
    let slot = match admit_upgrade(&state, peer, &headers) {
        Ok(slot) => slot,
        Err(refusal) => return refuse(refusal),
    };
    // `warp::ws()` rejects nothing the app crate accepts (its rules are a subset).
    let Some(upgrade) = upgrade else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    upgrade
        .max_message_size(wsse_app::messages::MAX_ECHO_MESSAGE_BYTES)
        .max_frame_size(wsse_app::messages::MAX_ECHO_MESSAGE_BYTES)
        .on_upgrade(move |socket| echo(socket, state.shutdown, slot))
        .into_response()
}

async fn echo(mut socket: WebSocket, shutdown: Shutdown, _slot: ConnectionSlot) {
    let _open = shutdown.track();
    let close = loop {
        tokio::select! {
            incoming = socket.next() => match incoming {
                // Sending the same `Message` keeps its opcode: text stays text.
                Some(Ok(message)) if message.is_text() || message.is_binary() => {
                    if socket.send(message).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(message)) if message.is_close() => break reply_to_close(&mut socket).await,
                Some(Ok(_ping_or_pong)) => {}
                None => break None,
                Some(Err(error)) => break close_frame_for(&error),
            },
            _ = shutdown.wait() => break Some(close_frame(connection::SHUTTING_DOWN)),
        }
    };
    finish(socket, close).await;
}

// ANCHOR: close_codes
/// The close frame that answers an error from the socket, if the peer can still hear one.
///
/// `warp::Error` wraps the error of warp's tokio-tungstenite 0.29, which is
/// `tungstenite::Error` of tungstenite 0.29 (our own dependency, so the same type);
/// `source()` hands it out.
fn close_frame_for(error: &warp::Error) -> Option<Message> {
    let error = std::error::Error::source(error)?.downcast_ref::<tungstenite::Error>()?;
    match error {
        tungstenite::Error::Capacity(_) => Some(close_frame(closing_for(Fault::TooBig))),
        tungstenite::Error::Utf8(_) => Some(close_frame(closing_for(Fault::InvalidUtf8))),
        tungstenite::Error::Protocol(_) => Some(close_frame(closing_for(Fault::Protocol))),
        _ => None,
    }
}
// ANCHOR_END: close_codes

fn close_frame(closing: Closing) -> Message {
    Message::close_with(closing.code.0, closing.reason)
}

/// The peer sent a close frame. tungstenite queued the reply but sends it only on the
/// next read or write, so read once more; then there is nothing left to send.
async fn reply_to_close(socket: &mut WebSocket) -> Option<Message> {
    closing::read_once_more(socket).await;
    None
}

/// Sends our close frame, if we have one, and waits for the peer's reply.
async fn finish(socket: WebSocket, close: Option<Message>) {
    if let Some(close) = close {
        closing::send_close_and_wait(socket, close).await;
    }
}

/// `POST /messages`: the chat over plain HTTP, for the SSE + POST pattern.
async fn post_message(
    state: AppState,
    headers: HeaderMap,
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
) -> Response {
    let body = match read_body(body, refusals::MAX_POST_BODY_BYTES).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    match state.post_message(fields(&headers), &body).await {
        Ok((status, json)) => json_response(status, json, None),
        Err(refusal) => refuse(refusal),
    }
}

/// `POST /session` (with `--auth`): a session cookie and a ticket.
async fn sign_in(
    state: AppState,
    headers: HeaderMap,
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
) -> Response {
    let body = match read_body(body, refusals::MAX_POST_BODY_BYTES).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let answer = state
        .sessions
        .sign_in(&state.config, fields(&headers), &body)
        .await;
    json_response(answer.status, answer.body, answer.set_cookie)
}

/// `GET /session` (with `--auth`): who is signed in.
async fn current_session(state: AppState, headers: HeaderMap) -> Response {
    let answer = state.sessions.current(fields(&headers)).await;
    json_response(answer.status, answer.body, answer.set_cookie)
}

/// `DELETE /session` (with `--auth`): the session ends, its chats close with 4001.
async fn sign_out(state: AppState, headers: HeaderMap) -> Response {
    let answer = state
        .sessions
        .sign_out(&state.config, fields(&headers))
        .await;
    json_response(answer.status, answer.body, answer.set_cookie)
}

/// A JSON answer of the app crate's, with a cookie if it sets one.
fn json_response(status: u16, json: String, set_cookie: Option<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let json = warp::reply::with_header(json, header::CONTENT_TYPE, "application/json");
    let mut response = warp::reply::with_status(json, status).into_response();
    if let Some(cookie) = set_cookie.and_then(|cookie| HeaderValue::try_from(cookie).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Collects a request body of at most `limit` bytes; above it, the app's 413.
///
/// warp's own limit, `warp::body::content_length_limit`, only reads the
/// `Content-Length` header and answers 411 to a chunked body; this one counts bytes.
async fn read_body(
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
    limit: usize,
) -> Result<Vec<u8>, Response> {
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST.into_response())?;
        if bytes.len() + chunk.remaining() > limit {
            return Err(refuse(refusals::post_body_too_large()));
        }
        bytes.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    Ok(bytes)
}

// ANCHOR: events
/// `GET /events`: the chat as Server-Sent Events, resuming after `Last-Event-ID`.
async fn events(
    state: AppState,
    Peer(peer): Peer,
    raw_query: Option<String>,
    headers: HeaderMap,
) -> Response {
    let slot = match state.admit(Some(peer.ip()), fields(&headers)) {
        Ok(slot) => slot,
        Err(refusal) => return refuse(refusal),
    };
    let identity = match state
        .sessions
        .authenticate(fields(&headers), raw_query.as_deref())
        .await
    {
        Ok(identity) => identity,
        Err(refusal) => return refuse(refusal),
    };
    let last_event_id =
        query::last_event_id(header_text(&headers, "last-event-id"), raw_query.as_deref());
    let subscription = state
        .hub
        .subscribe_from_last_event_id(last_event_id.as_deref());
    let events = subscription
        .into_stream_until(identity.ended())
        .map(|event| sse::hub_event(&event));
    sse_response(state.config.heartbeat_interval(), events, slot)
}
// ANCHOR_END: events

/// `GET /stream?prompt=TEXT`: one event per token, then `[DONE]`.
fn token_stream(
    state: AppState,
    Peer(peer): Peer,
    raw_query: Option<String>,
    headers: HeaderMap,
) -> Response {
    let slot = match state.admit(Some(peer.ip()), fields(&headers)) {
        Ok(slot) => slot,
        Err(refusal) => return refuse(refusal),
    };
    let prompt = query::prompt(raw_query.as_deref());
    let start = tokens::parse_last_event_id(header_text(&headers, "last-event-id"));
    let tokens = tokens::token_stream(&prompt, start, state.config.token_interval())
        .with_shutdown(&state.shutdown)
        .map(|token| token.to_sse());
    sse_response(state.config.heartbeat_interval(), tokens, slot)
}

// ANCHOR: sse_response
/// A `text/event-stream` response: the app crate's event-stream text (`retry:`
/// first, a heartbeat event, the events, and a heartbeat event whenever nothing
/// was sent for `heartbeat`), streamed as it comes.
///
/// `warp::sse` would frame the events itself, but it writes `retry:3000` and
/// `data:{...}` without the space after the colon (valid SSE, yet not the bytes the
/// other servers send), so the text is ours and warp only streams it. The body holds
/// the connection's `slot` under the ceiling until warp drops it.
fn sse_response(
    heartbeat: Duration,
    events: impl Stream<Item = wsse_wire::sse::Event> + Send + 'static,
    slot: ConnectionSlot,
) -> Response {
    let body = sse::text_stream(events, heartbeat).map(move |text| {
        let _held = &slot;
        Ok::<_, Infallible>(text)
    });
    let mut response = warp::reply::stream(SyncStream::new(body)).into_response();
    for (name, value) in sse::headers() {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}
// ANCHOR_END: sse_response

/// A `Send` stream made `Sync`.
///
/// `warp::reply::stream` (like `warp::sse::reply`) wants a `Sync` stream, because its
/// body type is `Sync`, but ours hold `Send`-only futures (the shutdown wait, the
/// timeout). A stream is only ever polled through `&mut`, so a `Mutex` around it is
/// never contended: `get_mut` reaches it without locking.
struct SyncStream<S>(Mutex<Pin<Box<S>>>);

impl<S: Stream> SyncStream<S> {
    fn new(stream: S) -> Self {
        SyncStream(Mutex::new(Box::pin(stream)))
    }
}

impl<S: Stream> Stream for SyncStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let stream = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        stream.as_mut().poll_next(context)
    }
}

/// A header's value, if present and text.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
