//! What a web framework does for you, done by hand on plain Tokio.
//!
//! With axum, actix-web or warp, the application writes handlers and the framework
//! does the rest. This crate is that rest, small enough to read:
//!
//! - [`http`]: read requests from a TCP stream (the head parsed with `httparse`, the
//!   body by `Content-Length`), refuse what is malformed or too big with the right
//!   status, write responses, and keep the connection open for the next request.
//! - [`websocket`]: the upgrade to WebSocket, then frames in and out with
//!   [`wsse_wire`]'s codec, and the closing handshake. Answering pings is left to the
//!   caller, in plain sight.
//! - [`sse`]: an event stream as one endless response in chunked transfer encoding.
//!
//! Left out on purpose: TLS (put a reverse proxy in front), HTTP/2 and HTTP/3,
//! compression (neither gzip for responses nor permessage-deflate for WebSocket),
//! chunked request bodies, `Expect: 100-continue`, the `Date` header, timeouts for slow
//! or idle clients, and routing: a `match` on the path does that.
//!
//! # The connection loop
//!
//! A framework runs this loop for every connection. Here the application writes it:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use tokio::net::{TcpListener, TcpStream};
//! use wsse_scratch::http::{Connection, Response};
//! use wsse_scratch::websocket::{self, Limits, Message, ReceiveError};
//! use wsse_scratch::sse;
//! use wsse_wire::close::CloseCode;
//! use wsse_wire::sse::Event;
//!
//! async fn serve(stream: TcpStream) {
//!     let mut connection = Connection::new(stream);
//!     loop {
//!         let request = match connection.next_request().await {
//!             Ok(Some(request)) => request,
//!             // The client closed the connection between two requests.
//!             Ok(None) => return,
//!             Err(error) => return connection.reject(&error).await,
//!         };
//!         match request.path.as_str() {
//!             "/echo" => {
//!                 // The bytes read past the request may hold the first frames.
//!                 let (stream, leftover) = connection.into_parts();
//!                 let Ok((reader, writer)) =
//!                     websocket::accept(stream, &request, leftover, Limits::default()).await
//!                 else {
//!                     return;
//!                 };
//!                 return echo(reader, writer).await;
//!             }
//!             "/events" => {
//!                 let (stream, _) = connection.into_parts();
//!                 let headers = [("Content-Type", "text/event-stream")];
//!                 let Ok(mut events) = sse::start(stream, &headers).await else { return };
//!                 let _ = events.send(&Event::new("hello")).await;
//!                 let _ = events.finish().await;
//!                 return;
//!             }
//!             _ => {
//!                 let response = Response::text(404, "not found\n");
//!                 if connection.respond(&request, response).await.is_err()
//!                     || !request.keep_alive()
//!                 {
//!                     return;
//!                 }
//!             }
//!         }
//!     }
//! }
//!
//! async fn echo(mut reader: websocket::WebSocketReader, mut writer: websocket::WebSocketWriter) {
//!     let (code, reason) = loop {
//!         let sent = match reader.receive().await {
//!             Ok(Message::Text(text)) => writer.send_text(&text).await,
//!             Ok(Message::Binary(bytes)) => writer.send_binary(&bytes).await,
//!             // Nobody else answers pings: that is our job.
//!             Ok(Message::Ping(payload)) => writer.send_pong(&payload).await,
//!             Ok(Message::Pong(_)) => Ok(()),
//!             Ok(Message::Close(frame)) => {
//!                 break (frame.map_or(CloseCode::NORMAL, |frame| frame.code), String::new())
//!             }
//!             Err(ReceiveError::Protocol(error)) => break (error.close_code(), error.to_string()),
//!             Err(_) => return,
//!         };
//!         if sent.is_err() {
//!             return;
//!         }
//!     };
//!     let timeout = Duration::from_secs(5);
//!     let _ = websocket::close_and_wait(reader, writer, code, &reason, timeout).await;
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:3004").await?;
//!     loop {
//!         let (stream, _) = listener.accept().await?;
//!         tokio::spawn(serve(stream));
//!     }
//! }
//! ```

#![forbid(unsafe_code)]

pub mod http;
pub mod sse;
pub mod websocket;
