//! The chat (WebSocket) and the token stream (SSE) on actix-web 4 and actix-ws 0.4.
//!
//! ```text
//! cargo run --example actix                       # http://127.0.0.1:3002
//! cargo run --example actix -- --addr 127.0.0.1:0 --heartbeat 5
//! ```
//!
//! Only glue lives here: what a valid message is, how seq and replay work and what
//! the token stream says are in `crates/app`. What actix-ws (with actix-http's codec)
//! does for us: the handshake and its answers (400, 405, 426), parsing frames
//! (masking, reserved bits, opcodes, control frames, close codes), checking that text
//! is UTF-8, a size limit per frame (`max_frame_size`, checked only once the whole
//! frame has arrived) and, with `aggregate_continuations`, reassembling fragmented
//! messages up to a size per message (`max_continuation_size`). It reports errors
//! and sends nothing by itself: no pong, no reply to a close, no close frame after an
//! error. What we add: the app crate's refusals before actix-ws's own (the Origin
//! check, and the same answers as every server), the pong, the close reply, close codes for
//! errors, the ping timer, and closing with 1001 on shutdown. actix-web has no SSE
//! type: we stream the `text/event-stream` text ourselves, with the encoder and the
//! heartbeat event of the app crate.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::pin::pin;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::http::header::HeaderMap;
use actix_web::middleware::{Next, from_fn};
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseReason, Closed, ProtocolError, Session,
};
use futures_util::{Stream, StreamExt};
use wsse_app::auth::{self, Identity};
use wsse_app::burst::BURST_LIMIT;
use wsse_app::connection::{self, Beat, Closing, Fault, Heartbeat, closing_for};
use wsse_app::limits::{self, ConnectionSlot};
use wsse_app::refusals::{self, Refusal};
use wsse_app::tls::Tls;
use wsse_app::{AppState, Config, HubEvent, Shutdown, query, sse, tokens};

#[actix_web::main]
async fn main() -> io::Result<()> {
    wsse_app::logging::init();
    let config = Config::parse_with_default("127.0.0.1:3002");
    let tls = Tls::from_config(&config)?;
    let listener = TcpListener::bind(config.addr())?;
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
    stop: impl Future<Output = ()> + 'static,
) -> io::Result<()> {
    wsse_app::listener::configure(&listener, &config)?;
    // actix calls the closure below once per worker thread: the hub is made once,
    // here, and every worker gets a clone of the same one.
    let state = AppState::start(config).await?;
    let shutdown = state.shutdown.clone();
    let head_timeout = state.config.request_head_timeout();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            // actix's default (256 KiB) would answer a big body itself before the hub
            // could answer its JSON 413; above the app's limit actix answers 413.
            .app_data(web::PayloadConfig::new(refusals::MAX_POST_BODY_BYTES))
            .wrap(from_fn(bound_request_head))
            .route("/", web::get().to(index))
            .route("/healthz", web::get().to(|| async { "ok" }))
            .route("/ws", web::get().to(chat_upgrade))
            .route("/echo", web::get().to(echo_upgrade))
            .route("/messages", web::post().to(post_message))
            .route("/session", web::get().to(current_session))
            .route("/session", web::post().to(sign_in))
            .route("/session", web::delete().to(sign_out))
            .route("/events", web::get().to(events))
            .route("/stream", web::get().to(token_stream))
    })
    .workers(2)
    // The time for a request head (actix's default is 5 s; then 408), and for the
    // next one on an idle keep-alive connection (also 5 s; then it closes).
    .client_request_timeout(head_timeout)
    .keep_alive(head_timeout)
    // No SIGTERM / SIGINT handlers of actix's own: they would stop the workers without
    // telling the sockets (and on SIGINT without waiting at all). We stop it below.
    .disable_signals()
    // How long a graceful stop waits for open connections (the default is 30 s).
    .shutdown_timeout(1)
    // Close the TCP connection as soon as a WebSocket's last frame is out. By default
    // actix-http lingers up to 1 s reading what the peer still sends, but RFC 6455
    // (section 7.1.1) has the server close first and the client wait for it, so
    // every closing handshake would stall for that second: Autobahn's clients give up
    // after 0.5 to 1 s and mark the close of 144 of its 301 cases FAILED.
    .client_disconnect_timeout(Duration::ZERO);
    let server = match tls {
        None => server.listen(listener)?,
        // actix-web offers `h2` and `http/1.1` in ALPN itself. Its HTTP/2 has no
        // extended CONNECT (RFC 8441), so actix-ws sockets stay on HTTP/1.1.
        Some(tls) => server.listen_rustls_0_23(listener, tls.server_config(&[])?)?,
    }
    .run();
    let handle = server.handle();
    actix_web::rt::spawn({
        let shutdown = shutdown.clone();
        async move {
            stop.await;
            tracing::info!("shutting down");
            // Ends every subscription: chats close with 1001, /events streams end.
            shutdown.trigger();
            // Stops accepting and waits for the connections still open.
            handle.stop(true).await;
        }
    });
    server.await?;
    // actix waited for its connections; the socket tasks we spawned may still be ending.
    shutdown.connections_closed(Duration::from_secs(1)).await;
    Ok(())
}
// ANCHOR_END: serve

/// The app crate's bound on a request head, which actix-web's parser sets at 128 KiB:
/// 431 above it, and the connection closes.
async fn bound_request_head(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> actix_web::Result<ServiceResponse<impl MessageBody>> {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let fields = fields(request.request());
    let head_bytes = limits::request_head_bytes(request.method().as_str(), target, fields);
    if head_bytes > limits::MAX_REQUEST_HEAD_BYTES {
        let mut response = refuse(refusals::request_head_too_large());
        response
            .head_mut()
            .set_connection_type(ConnectionType::Close);
        return Ok(request.into_response(response).map_into_right_body());
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(wsse_app::page::INDEX_HTML)
}

// ANCHOR: chat_upgrade
/// `GET /ws?name=NAME&since=SEQ`: checks Origin, then lets actix-ws answer 101.
async fn chat_upgrade(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let slot = match admit_upgrade(&state, &request) {
        Ok(slot) => slot,
        Err(refusal) => return Ok(refuse(refusal)),
    };
    let identity = match authenticate(&state, &request).await {
        Ok(identity) => identity,
        Err(refusal) => return Ok(refuse(refusal)),
    };
    let chat_query = query::ChatQuery::parse(Some(request.query_string()));
    // Answers the subprotocol only when the client offered it, as RFC 6455 asks.
    let (response, session, messages) =
        actix_ws::handle_with_protocols(&request, body, &[auth::SUBPROTOCOL])?;
    let limit = wsse_app::messages::MAX_WEBSOCKET_MESSAGE_BYTES;
    // One limit per frame, one per reassembled message.
    let messages = messages
        .max_frame_size(limit)
        .aggregate_continuations()
        .max_continuation_size(limit);
    let state = AppState::clone(&state);
    actix_web::rt::spawn(chat(session, messages, state, chat_query, identity, slot));
    Ok(response)
}
// ANCHOR_END: chat_upgrade

/// The app crate's refusals of an upgrade, before actix-ws sees it: actix-ws has
/// rules of its own, with other answers; the wire crate's, which the app crate
/// applies, are the same on every server. Last, a place under the connection ceiling.
fn admit_upgrade(state: &AppState, request: &HttpRequest) -> Result<ConnectionSlot, Refusal> {
    let version = match request.version() {
        actix_web::http::Version::HTTP_09 => (0, 9),
        actix_web::http::Version::HTTP_10 => (1, 0),
        actix_web::http::Version::HTTP_11 => (1, 1),
        _ => (2, 0),
    };
    let peer = request.peer_addr().map(|peer| peer.ip());
    let fields = fields(request);
    state.admit_upgrade(
        request.method().as_str(),
        version,
        peer,
        fields.iter().copied(),
    )
}

/// A place under the connection ceiling for this request's client.
fn admit(state: &AppState, request: &HttpRequest) -> Result<ConnectionSlot, Refusal> {
    state.admit(request.peer_addr().map(|peer| peer.ip()), fields(request))
}

/// The headers as the app crate takes them: (name, raw value) pairs.
fn fields(request: &HttpRequest) -> Vec<(&str, &[u8])> {
    request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect()
}

/// A refusal as actix's response.
fn refuse(refusal: Refusal) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(refusal.status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    let mut response = HttpResponse::build(status);
    response.content_type("text/plain; charset=utf-8");
    for header in refusal.headers {
        response.insert_header(*header);
    }
    response.body(refusal.body)
}

// ANCHOR: chat
/// One chat connection: hub events out, chat messages in, a ping every heartbeat.
/// Its place under the ceiling (`_slot`) is held until it ends.
async fn chat(
    mut session: Session,
    mut messages: AggregatedMessageStream,
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
    if session.text(welcome).await.is_err() {
        return;
    }
    let mut heartbeat = Heartbeat::new(state.config.heartbeat_interval());
    let mut rate = state.config.message_rate();

    let close = loop {
        tokio::select! {
            incoming = messages.recv() => match incoming {
                // A valid message reaches everyone through the hub, this socket included;
                // only an error goes straight back.
                Some(Ok(AggregatedMessage::Text(text))) => {
                    match member.handle_text_at_rate(&mut rate, &text).await {
                        Ok(None) => {}
                        Ok(Some(reply)) => {
                            if session.text(reply.to_json()).await.is_err() {
                                break Close::Gone;
                            }
                        }
                        Err(closing) => break Close::Send(close_reason(closing)),
                    }
                }
                Some(Ok(AggregatedMessage::Binary(_))) => {
                    break Close::Send(close_reason(connection::BINARY_REFUSED));
                }
                // Any pong proves the client is alive. The timer keeps running.
                Some(Ok(AggregatedMessage::Pong(_))) => heartbeat.pong(),
                // actix-ws leaves the pong to us.
                Some(Ok(AggregatedMessage::Ping(payload))) => {
                    if session.pong(&payload).await.is_err() {
                        break Close::Gone;
                    }
                }
                Some(Ok(AggregatedMessage::Close(reason))) => break Close::Reply(reason),
                None => break Close::Gone,
                Some(Err(error)) => break close_for(error),
            },
            event = subscription.next() => match event {
                // What else is waiting goes out with it, in one write.
                Some(event) => {
                    let burst = subscription.take_burst(event, BURST_LIMIT);
                    if send_burst(&mut session, burst).await.is_err() {
                        break Close::Gone;
                    }
                }
                None => break Close::Send(close_reason(connection::SHUTTING_DOWN)),
            },
            () = session_ended.as_mut() => {
                break Close::Send(close_reason(connection::SESSION_ENDED));
            }
            beat = heartbeat.tick() => match beat {
                Beat::Ping => {
                    if session.ping(b"").await.is_err() {
                        break Close::Gone;
                    }
                }
                Beat::Drop => {
                    tracing::info!(name = member.name(), "no pong to the last pings, dropping");
                    break Close::Gone;
                }
            },
        }
    };
    finish(session, close).await;
    tracing::info!(name = member.name(), "left");
}
// ANCHOR_END: chat

/// Queues each event's JSON on the session. actix-ws has no flush of its own: its
/// response body takes every message queued so far and writes them as one chunk,
/// so queueing the burst without a wait between messages is what makes it one write.
async fn send_burst(session: &mut Session, events: Vec<HubEvent>) -> Result<(), Closed> {
    for event in events {
        session.text(event.to_json()).await?;
    }
    Ok(())
}

/// `GET /echo`: every message comes back as it came.
async fn echo_upgrade(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let slot = match admit_upgrade(&state, &request) {
        Ok(slot) => slot,
        Err(refusal) => return Ok(refuse(refusal)),
    };
    let (response, session, messages) = actix_ws::handle(&request, body)?;
    let limit = wsse_app::messages::MAX_ECHO_MESSAGE_BYTES;
    let messages = messages
        .max_frame_size(limit)
        .aggregate_continuations()
        .max_continuation_size(limit);
    actix_web::rt::spawn(echo(session, messages, state.shutdown.clone(), slot));
    Ok(response)
}

async fn echo(
    mut session: Session,
    mut messages: AggregatedMessageStream,
    shutdown: Shutdown,
    _slot: ConnectionSlot,
) {
    let _open = shutdown.track();
    let close = loop {
        tokio::select! {
            incoming = messages.recv() => {
                let sent = match incoming {
                    Some(Ok(AggregatedMessage::Text(text))) => session.text(text).await,
                    Some(Ok(AggregatedMessage::Binary(bytes))) => session.binary(bytes).await,
                    Some(Ok(AggregatedMessage::Ping(payload))) => session.pong(&payload).await,
                    Some(Ok(AggregatedMessage::Pong(_))) => Ok(()),
                    Some(Ok(AggregatedMessage::Close(reason))) => break Close::Reply(reason),
                    None => break Close::Gone,
                    Some(Err(error)) => break close_for(error),
                };
                if sent.is_err() {
                    break Close::Gone;
                }
            },
            _ = shutdown.wait() => break Close::Send(close_reason(connection::SHUTTING_DOWN)),
        }
    };
    finish(session, close).await;
}

/// How a socket loop ended, and what is left to send.
enum Close {
    /// The peer sent a close frame: send it back (RFC 6455 §5.5.1: the reply
    /// typically echoes the status code received).
    Reply(Option<CloseReason>),
    /// We close, with this code.
    Send(CloseReason),
    /// The connection is gone, or there is nothing the peer could still hear.
    Gone,
}

// ANCHOR: close_codes
/// How to end the connection after an error from actix-ws.
///
/// actix-ws has no error type of its own for size and UTF-8: `Overflow` is a frame over
/// `max_frame_size`, but invalid UTF-8, a message over `max_continuation_size`, a frame
/// with reserved bits set, and a failed connection all come as `ProtocolError::Io`,
/// told apart only by their kind and text.
fn close_for(error: ProtocolError) -> Close {
    let fault = match &error {
        ProtocolError::Overflow => Fault::TooBig,
        ProtocolError::Io(io_error) => {
            let text = io_error.to_string();
            match io_error.kind() {
                // actix-http: "Received a frame with non-zero reserved bits".
                io::ErrorKind::InvalidData if text.contains("reserved bits") => Fault::Protocol,
                // A text message that is not UTF-8 (a single frame or reassembled).
                io::ErrorKind::InvalidData => Fault::InvalidUtf8,
                // actix-ws's aggregator: "Exceeded maximum continuation size".
                io::ErrorKind::Other if text.contains("maximum continuation size") => Fault::TooBig,
                // Reading from the connection failed: no one left to tell.
                _ => return Close::Gone,
            }
        }
        // Unmasked frames, bad opcodes, bad close frames, oversized control frames,
        // continuation frames out of order.
        _ => Fault::Protocol,
    };
    tracing::debug!(%error, ?fault, "closing after a protocol error");
    Close::Send(close_reason(closing_for(fault)))
}
// ANCHOR_END: close_codes

fn close_reason(closing: Closing) -> CloseReason {
    CloseReason {
        code: closing.code.0.into(),
        description: Some(closing.reason.to_owned()),
    }
}

/// Sends the close frame the ending calls for.
///
/// Nothing to wait for afterwards: a close frame ends actix-ws's response body, and
/// with `client_disconnect_timeout` at zero (see `serve`) actix-http then closes the
/// TCP connection at once, as RFC 6455 wants the server to.
async fn finish(session: Session, close: Close) {
    let reason = match close {
        Close::Reply(reason) => reason,
        Close::Send(reason) => Some(reason),
        Close::Gone => return,
    };
    let _ = session.close(reason).await;
}

/// `POST /messages`: the chat over plain HTTP, for the SSE + POST pattern.
async fn post_message(
    request: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    match state.post_message(fields(&request), &body).await {
        Ok((status, json)) => json_response(status, json, None),
        Err(refusal) => refuse(refusal),
    }
}

/// `POST /session` (with `--auth`): a session cookie and a ticket.
async fn sign_in(request: HttpRequest, body: Bytes, state: web::Data<AppState>) -> HttpResponse {
    let answer = state
        .sessions
        .sign_in(&state.config, fields(&request), &body)
        .await;
    json_response(answer.status, answer.body, answer.set_cookie)
}

/// `GET /session` (with `--auth`): who is signed in.
async fn current_session(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let answer = state.sessions.current(fields(&request)).await;
    json_response(answer.status, answer.body, answer.set_cookie)
}

/// `DELETE /session` (with `--auth`): the session ends, its chats close with 4001.
async fn sign_out(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let answer = state
        .sessions
        .sign_out(&state.config, fields(&request))
        .await;
    json_response(answer.status, answer.body, answer.set_cookie)
}

/// A JSON answer of the app crate's, with a cookie if it sets one.
fn json_response(status: u16, json: String, set_cookie: Option<String>) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.content_type("application/json");
    if let Some(cookie) = set_cookie {
        response.insert_header((actix_web::http::header::SET_COOKIE, cookie));
    }
    response.body(json)
}

/// Who the request acts as (with `--auth`, its session; [`wsse_app::auth`]).
async fn authenticate(state: &AppState, request: &HttpRequest) -> Result<Identity, Refusal> {
    state
        .sessions
        .authenticate(fields(request), Some(request.query_string()))
        .await
}

// ANCHOR: events
/// `GET /events`: the chat as Server-Sent Events, resuming after `Last-Event-ID`.
async fn events(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let slot = match admit(&state, &request) {
        Ok(slot) => slot,
        Err(refusal) => return refuse(refusal),
    };
    let identity = match authenticate(&state, &request).await {
        Ok(identity) => identity,
        Err(refusal) => return refuse(refusal),
    };
    let last_event_id = query::last_event_id(
        header_text(request.headers(), "last-event-id"),
        Some(request.query_string()),
    );
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
async fn token_stream(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let slot = match admit(&state, &request) {
        Ok(slot) => slot,
        Err(refusal) => return refuse(refusal),
    };
    let prompt = query::prompt(Some(request.query_string()));
    let start = tokens::parse_last_event_id(header_text(request.headers(), "last-event-id"));
    let tokens = tokens::token_stream(&prompt, start, state.config.token_interval())
        .with_shutdown(&state.shutdown)
        .map(|token| token.to_sse());
    sse_response(state.config.heartbeat_interval(), tokens, slot)
}

// ANCHOR: sse_response
/// A `text/event-stream` response: actix-web has no SSE type, so the body is the
/// app crate's event-stream text (`retry:` first, a heartbeat event, the events, a
/// heartbeat event whenever nothing was sent for `heartbeat`), streamed as it comes.
/// The body holds the connection's `slot` under the ceiling until actix drops it.
fn sse_response(
    heartbeat: Duration,
    events: impl Stream<Item = wsse_wire::sse::Event> + Send + 'static,
    slot: ConnectionSlot,
) -> HttpResponse {
    let body = sse::text_stream(events, heartbeat).map(move |text| {
        let _held = &slot;
        Ok::<_, Infallible>(Bytes::from(text))
    });
    let mut response = HttpResponse::Ok();
    for header in sse::headers() {
        response.insert_header(header);
    }
    response.streaming(body)
}
// ANCHOR_END: sse_response

/// A header's value, if present and text.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
