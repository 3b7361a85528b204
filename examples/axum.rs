//! The chat (WebSocket) and the token stream (SSE) on axum 0.8.
//!
//! ```text
//! cargo run --example axum                       # http://127.0.0.1:3001
//! cargo run --example axum -- --addr 127.0.0.1:0 --heartbeat 5
//! ```
//!
//! Only glue lives here: what a valid message is, how seq and replay work and what
//! the token stream says are in `crates/app`. What axum (through tungstenite) does
//! for us: most of the handshake, answering pings, answering a close, size limits,
//! SSE framing and the keep-alive timer. What we add: the app crate's refusals before
//! axum's own (the Origin check, and the handshake rules axum skips), close codes for errors (tungstenite reports them but sends no close frame), the
//! ping timer, and closing with 1001 on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{Extensions, HeaderMap, Method, StatusCode, Version, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{Stream, StreamExt, stream};
use tokio::net::TcpListener;
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
    let config = Config::parse_with_default("127.0.0.1:3001");
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
    let app = Router::new()
        .route("/", get(|| async { Html(wsse_app::page::INDEX_HTML) }))
        .route("/healthz", get(|| async { "ok" }))
        // GET over HTTP/1.1; over HTTP/2 a WebSocket is a CONNECT (RFC 8441).
        .route("/ws", get(chat_upgrade).connect(chat_upgrade))
        .route("/echo", get(echo_upgrade).connect(echo_upgrade))
        // axum's default body limit is 2 MB; it answers 413 above the app's own.
        .route(
            "/messages",
            post(post_message).layer(DefaultBodyLimit::max(refusals::MAX_POST_BODY_BYTES)),
        )
        .route(
            "/session",
            get(current_session).post(sign_in).delete(sign_out),
        )
        .route("/events", get(events))
        .route("/stream", get(token_stream))
        .with_state(state);
    let graceful_shutdown = {
        let shutdown = shutdown.clone();
        async move {
            stop.await;
            tracing::info!("shutting down");
            // Ends every subscription: chats close with 1001, /events streams end.
            shutdown.trigger();
        }
    };
    // Not `axum::serve`, which gives hyper no timer and so no header read timeout:
    // the app crate's loop around hyper, with the peer's address in every request.
    // hyper takes RFC 8441's extended CONNECT, and axum's `WebSocketUpgrade` answers
    // it, so WebSockets may share an HTTP/2 connection.
    let options = Options {
        head_timeout,
        tls: tls.as_ref(),
        websockets_over_http2: true,
    };
    wsse_app::hyper_server::serve(listener, app, options, graceful_shutdown).await?;
    // The loop waited for plain requests; upgraded sockets are tasks of their own.
    shutdown.connections_closed(Duration::from_secs(1)).await;
    Ok(())
}
// ANCHOR_END: serve

/// `--ws-buffer-bytes`, if given: tungstenite's read and write buffers (128 KiB each
/// by default).
fn buffers(upgrade: WebSocketUpgrade, config: &Config) -> WebSocketUpgrade {
    match config.ws_buffer_bytes {
        Some(bytes) => upgrade
            .read_buffer_size(bytes as usize)
            .write_buffer_size(bytes as usize),
        None => upgrade,
    }
}

// ANCHOR: chat_upgrade
/// `GET /ws?name=NAME&since=SEQ`: the app's refusals first, then axum answers 101.
async fn chat_upgrade(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    Extension(Peer(peer)): Extension<Peer>,
    RawQuery(raw_query): RawQuery,
    (method, version, extensions): (Method, Version, Extensions),
    headers: HeaderMap,
) -> Response {
    let slot = match admit_upgrade(&state, peer, (&method, version, &extensions), &headers) {
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
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let chat_query = query::ChatQuery::parse(raw_query.as_deref());
    buffers(upgrade, &state.config)
        .max_message_size(wsse_app::messages::MAX_WEBSOCKET_MESSAGE_BYTES)
        // Answered only when offered, as RFC 6455 asks (and a browser checks).
        .protocols([auth::SUBPROTOCOL])
        .on_upgrade(move |socket| chat(socket, state, chat_query, identity, slot))
}
// ANCHOR_END: chat_upgrade

/// The app crate's refusals of an upgrade, before the extractor's rejection: axum
/// accepts any `Sec-WebSocket-Key` (RFC 6455 wants one that decodes to 16 bytes) and
/// a request without `Host`, and answers a bad `Sec-WebSocket-Version` with 400 and
/// no `Sec-WebSocket-Version: 13` (RFC 6455 asks for 426 with it); the wire crate's
/// rules, which the app crate applies, have them all. The route is GET only; axum
/// serves these over HTTP/1.1. Last, a place under the connection ceiling.
fn admit_upgrade(
    state: &AppState,
    peer: SocketAddr,
    (method, version, extensions): (&Method, Version, &Extensions),
    headers: &HeaderMap,
) -> Result<ConnectionSlot, Refusal> {
    let mut fields = fields(headers);
    let version = if version == Version::HTTP_2 {
        (2, 0)
    } else {
        (1, 1)
    };
    // Over HTTP/2, hyper keeps the `:protocol` pseudo-header in an extension.
    if let Some(protocol) = wsse_app::hyper_server::extended_connect_protocol(extensions) {
        fields.push((":protocol", protocol.as_bytes()));
    }
    state.admit_upgrade(
        method.as_str(),
        version,
        Some(peer.ip()),
        fields.iter().copied(),
    )
}

/// The headers as the app crate takes them: (name, raw value) pairs.
fn fields(headers: &HeaderMap) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect()
}

/// A refusal as axum's response.
fn refuse(refusal: Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, refusal.body).into_response();
    for (name, value) in refusal.headers {
        response
            .headers_mut()
            .insert(*name, header::HeaderValue::from_static(value));
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

    let close = loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                // A valid message reaches everyone through the hub, this socket included;
                // only an error goes straight back.
                Some(Ok(Message::Text(text))) => {
                    match member.handle_text_at_rate(&mut rate, text.as_str()).await {
                        Ok(None) => {}
                        Ok(Some(reply)) => {
                            if socket.send(Message::text(reply.to_json())).await.is_err() {
                                break None;
                            }
                        }
                        Err(closing) => break Some(close_frame(closing)),
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    break Some(close_frame(connection::BINARY_REFUSED));
                }
                // Any pong proves the client is alive. The timer keeps running.
                Some(Ok(Message::Pong(_))) => heartbeat.pong(),
                // tungstenite has already queued the pong.
                Some(Ok(Message::Ping(_))) => {}
                Some(Ok(Message::Close(_))) => break reply_to_close(&mut socket).await,
                None => break None,
                Some(Err(error)) => break close_frame_for(error),
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
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
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
async fn echo_upgrade(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    Extension(Peer(peer)): Extension<Peer>,
    (method, version, extensions): (Method, Version, Extensions),
    headers: HeaderMap,
) -> Response {
    let slot = match admit_upgrade(&state, peer, (&method, version, &extensions), &headers) {
        Ok(slot) => slot,
        Err(refusal) => return refuse(refusal),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    buffers(upgrade, &state.config)
        .max_message_size(wsse_app::messages::MAX_ECHO_MESSAGE_BYTES)
        .max_frame_size(wsse_app::messages::MAX_ECHO_MESSAGE_BYTES)
        .on_upgrade(move |socket| echo(socket, state.shutdown, slot))
}

async fn echo(mut socket: WebSocket, shutdown: Shutdown, _slot: ConnectionSlot) {
    let _open = shutdown.track();
    let close = loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if socket.send(message).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) => break reply_to_close(&mut socket).await,
                None => break None,
                Some(Err(error)) => break close_frame_for(error),
            },
            _ = shutdown.wait() => break Some(close_frame(connection::SHUTTING_DOWN)),
        }
    };
    finish(socket, close).await;
}

// ANCHOR: close_codes
/// The close frame that answers an error from the socket, if the peer can still hear one.
fn close_frame_for(error: axum::Error) -> Option<CloseFrame> {
    let error = error.into_inner().downcast::<tungstenite::Error>().ok()?;
    match *error {
        tungstenite::Error::Capacity(_) => Some(close_frame(closing_for(Fault::TooBig))),
        tungstenite::Error::Utf8(_) => Some(close_frame(closing_for(Fault::InvalidUtf8))),
        tungstenite::Error::Protocol(_) => Some(close_frame(closing_for(Fault::Protocol))),
        _ => None,
    }
}
// ANCHOR_END: close_codes

fn close_frame(closing: Closing) -> CloseFrame {
    CloseFrame {
        code: closing.code.0,
        reason: closing.reason.into(),
    }
}

/// The peer sent a close frame. tungstenite queued the reply but sends it only on the
/// next read or write, so read once more; then there is nothing left to send.
async fn reply_to_close(socket: &mut WebSocket) -> Option<CloseFrame> {
    closing::read_once_more(socket).await;
    None
}

/// Sends our close frame, if we have one, and waits for the peer's reply.
async fn finish(socket: WebSocket, close: Option<CloseFrame>) {
    if let Some(close) = close {
        closing::send_close_and_wait(socket, Message::Close(Some(close))).await;
    }
}

/// `POST /messages`: the chat over plain HTTP, for the SSE + POST pattern.
async fn post_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match state.post_message(fields(&headers), &body).await {
        Ok((status, json)) => json_response(status, json, None),
        Err(refusal) => refuse(refusal),
    }
}

/// `POST /session` (with `--auth`): a session cookie and a ticket.
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let answer = state
        .sessions
        .sign_in(&state.config, fields(&headers), &body)
        .await;
    json_response(answer.status, answer.body, answer.set_cookie)
}

/// `GET /session` (with `--auth`): who is signed in.
async fn current_session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let answer = state.sessions.current(fields(&headers)).await;
    json_response(answer.status, answer.body, answer.set_cookie)
}

/// `DELETE /session` (with `--auth`): the session ends, its chats close with 4001.
async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let answer = state
        .sessions
        .sign_out(&state.config, fields(&headers))
        .await;
    json_response(answer.status, answer.body, answer.set_cookie)
}

/// A JSON answer of the app crate's, with a cookie if it sets one.
fn json_response(status: u16, json: String, set_cookie: Option<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], json).into_response();
    if let Some(cookie) = set_cookie.and_then(|cookie| header::HeaderValue::try_from(cookie).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

// ANCHOR: events
/// `GET /events`: the chat as Server-Sent Events, resuming after `Last-Event-ID`.
async fn events(
    State(state): State<AppState>,
    Extension(Peer(peer)): Extension<Peer>,
    RawQuery(raw_query): RawQuery,
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
        .map(|event| to_axum_event(sse::hub_event(&event)));
    sse_response(state.config.heartbeat_interval(), events, slot)
}
// ANCHOR_END: events

/// `GET /stream?prompt=TEXT`: one event per token, then `[DONE]`.
async fn token_stream(
    State(state): State<AppState>,
    Extension(Peer(peer)): Extension<Peer>,
    RawQuery(raw_query): RawQuery,
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
        .map(|token| to_axum_event(token.to_sse()));
    sse_response(state.config.heartbeat_interval(), tokens, slot)
}

// ANCHOR: sse_response
/// Wraps events in axum's SSE response: `retry:` first, then a heartbeat event at
/// once and again whenever nothing was sent for `heartbeat` (axum's `KeepAlive`, with
/// the app's event instead of its default comment), and the headers every SSE route
/// sends. The stream holds the connection's `slot` under the ceiling: it goes when
/// axum drops the body, when the stream ends or the client leaves.
fn sse_response(
    heartbeat: Duration,
    events: impl Stream<Item = Event> + Send + 'static,
    slot: ConnectionSlot,
) -> Response {
    let retry = Event::default().retry(Duration::from_millis(sse::RETRY_MS));
    let heartbeat_event = || to_axum_event(sse::heartbeat_event(heartbeat));
    let events = stream::iter([retry, heartbeat_event()])
        .chain(events)
        .map(move |event| {
            let _held = &slot;
            Ok::<_, std::convert::Infallible>(event)
        });
    let keep_alive = KeepAlive::new()
        .interval(heartbeat)
        .event(heartbeat_event());
    (sse::headers(), Sse::new(events).keep_alive(keep_alive)).into_response()
}
// ANCHOR_END: sse_response

/// Our event (from the app crate) as axum's, its fields in the order the wire crate
/// writes them (`id`, `event`, `data`), so the bytes are those of the other servers.
fn to_axum_event(event: wsse_wire::sse::Event) -> Event {
    let mut axum_event = Event::default();
    if let Some(id) = event.id {
        axum_event = axum_event.id(id);
    }
    if let Some(name) = event.event {
        axum_event = axum_event.event(name);
    }
    axum_event.data(event.data)
}

/// A header's value, if present and text.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
