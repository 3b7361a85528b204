//! A tiny server built from the crate's API, and raw-socket helpers for the tests.
//!
//! Each test file uses only some of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsse_scratch::http::{Connection, Request, Response};
use wsse_scratch::sse::{self, SendError};
use wsse_scratch::websocket::{
    self, Limits, Message, ReceiveError, WebSocketReader, WebSocketWriter,
};
use wsse_wire::close::CloseCode;
use wsse_wire::frame::{OpCode, Role, encode_frame};
use wsse_wire::handshake::{client_request, generate_key, validate_server_response};
use wsse_wire::reader::MessageReader;
use wsse_wire::sse::{Event, retry};

/// The message limit of the test server's WebSocket.
pub const MAX_MESSAGE: usize = 4096;

/// Runs `future`, failing the test if it takes more than ten seconds.
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the test took more than ten seconds")
}

/// Starts the test server on a free port of 127.0.0.1.
pub async fn start_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    address
}

/// The connection loop of the crate documentation, with a few routes.
async fn serve(stream: TcpStream) {
    let mut connection = Connection::new(stream);
    loop {
        let request = match connection.next_request().await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(error) => return connection.reject(&error).await,
        };
        match request.path.as_str() {
            "/ws" => {
                let (stream, leftover) = connection.into_parts();
                let limits = Limits {
                    max_message: MAX_MESSAGE,
                    ..Limits::default()
                };
                if let Ok((reader, writer)) =
                    websocket::accept(stream, &request, leftover, limits).await
                {
                    echo(reader, writer).await;
                }
                return;
            }
            "/events" => {
                let (stream, _) = connection.into_parts();
                events(stream).await;
                return;
            }
            _ => {
                let response = route(&request);
                if connection.respond(&request, response).await.is_err() || !request.keep_alive() {
                    return;
                }
            }
        }
    }
}

fn route(request: &Request) -> Response {
    match request.path.as_str() {
        "/" => Response::text(200, "hello"),
        "/body" => Response::text(200, String::from_utf8_lossy(&request.body)),
        "/query" => Response::text(
            200,
            wsse_app::query::query_param(request.query.as_deref(), "name").unwrap_or_default(),
        ),
        "/json" => Response::json(201, r#"{"ok":true}"#).header("X-Test", "yes"),
        _ => Response::text(404, "not found"),
    }
}

/// Echoes messages, answers pings, and finishes the closing handshake. A timer that
/// fires every millisecond cancels `receive` over and over, as a ping timer would.
async fn echo(mut reader: WebSocketReader, mut writer: WebSocketWriter) {
    let mut timer = tokio::time::interval(Duration::from_millis(1));
    let (code, reason) = loop {
        let received = tokio::select! {
            _ = timer.tick() => continue,
            received = reader.receive() => received,
        };
        let sent = match received {
            Ok(Message::Text(text)) => writer.send_text(&text).await,
            Ok(Message::Binary(bytes)) => writer.send_binary(&bytes).await,
            Ok(Message::Ping(payload)) => writer.send_pong(&payload).await,
            Ok(Message::Pong(_)) => Ok(()),
            Ok(Message::Close(frame)) => {
                break (
                    frame.map_or(CloseCode::NORMAL, |frame| frame.code),
                    String::new(),
                );
            }
            Err(ReceiveError::Protocol(error)) => break (error.close_code(), error.to_string()),
            Err(_) => return,
        };
        if sent.is_err() {
            return;
        }
    };
    let _ = websocket::close_and_wait(reader, writer, code, &reason, Duration::from_secs(5)).await;
}

/// An event stream with every kind of chunk, and one event that cannot be encoded.
async fn events(stream: TcpStream) {
    let headers = [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
        ("X-Stream", "test"),
    ];
    let mut events = sse::start(stream, &headers).await.unwrap();
    events.send_raw(&retry(3000)).await.unwrap();
    events.send(&Event::new("hello").id("1")).await.unwrap();
    let refused = events.send(&Event::new("never").id("bad\nid")).await;
    assert!(matches!(refused, Err(SendError::Encode(_))), "{refused:?}");
    // An empty chunk would end the body early; send_raw must skip it.
    events.send_raw("").await.unwrap();
    events
        .send(&Event::new("two\nlines").event("tick"))
        .await
        .unwrap();
    events.send_comment("keep-alive").await.unwrap();
    events.finish().await.unwrap();
}

/// Sends `request` on a new connection and reads until the server closes it.
pub async fn exchange(address: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    received
}

/// A response as the tests see it.
#[derive(Debug)]
pub struct ParsedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ParsedResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Parses the responses in `bytes`, one after the other, by their Content-Length.
pub fn parse_responses(mut bytes: &[u8]) -> Vec<ParsedResponse> {
    let mut responses = Vec::new();
    while !bytes.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut fields);
        let httparse::Status::Complete(head_len) = parsed.parse(bytes).unwrap() else {
            panic!(
                "incomplete response head: {:?}",
                String::from_utf8_lossy(bytes)
            );
        };
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|field| {
                (
                    field.name.to_owned(),
                    String::from_utf8(field.value.to_vec()).unwrap(),
                )
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, value)| value.parse().unwrap());
        let end = (head_len + length).min(bytes.len());
        responses.push(ParsedResponse {
            status: parsed.code.unwrap(),
            headers,
            body: bytes[head_len..end].to_vec(),
        });
        bytes = &bytes[end..];
    }
    responses
}

/// A raw WebSocket client: a socket, and the wire crate's reader of what arrives.
pub struct RawClient {
    pub stream: TcpStream,
    pub messages: MessageReader,
}

impl RawClient {
    /// Connects to `/ws` and sends the upgrade request, followed in the same write by
    /// `first_bytes`; checks the 101.
    pub async fn connect(address: SocketAddr, first_bytes: &[u8]) -> RawClient {
        let mut stream = TcpStream::connect(address).await.unwrap();
        // Small writes must leave at once, not wait to be merged (Nagle's algorithm).
        stream.set_nodelay(true).unwrap();
        let key = generate_key();
        let mut request = client_request(&address.to_string(), "/ws", &key, &[]).into_bytes();
        request.extend_from_slice(first_bytes);
        stream.write_all(&request).await.unwrap();

        let mut buffer = Vec::new();
        let head_end = loop {
            if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                break position + 4;
            }
            assert!(
                stream.read_buf(&mut buffer).await.unwrap() > 0,
                "the server closed before its response"
            );
        };
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut fields);
        response.parse(&buffer[..head_end]).unwrap();
        let headers: Vec<(&str, &[u8])> = response
            .headers
            .iter()
            .map(|field| (field.name, field.value))
            .collect();
        validate_server_response(&key, response.code.unwrap(), headers).unwrap();
        let mut messages = MessageReader::new(Role::Client, 1 << 20, 1 << 20);
        messages.feed(&buffer[head_end..]);
        RawClient { stream, messages }
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads the next message or control frame the server sends.
    pub async fn read_message(&mut self) -> Message {
        loop {
            if let Some(message) = self.messages.next_message().unwrap() {
                return message;
            }
            assert!(
                self.stream
                    .read_buf(self.messages.buffer_to_fill())
                    .await
                    .unwrap()
                    > 0,
                "the server closed the connection before sending a message"
            );
        }
    }

    /// Expects a close frame with `code`, then the server closing TCP while this client
    /// still has its side open.
    pub async fn expect_close(&mut self, code: CloseCode) {
        match self.read_message().await {
            Message::Close(Some(frame)) => {
                assert_eq!(frame.code, code, "reason {:?}", frame.reason)
            }
            other => panic!("expected a close frame with {code}, got {other:?}"),
        }
        self.expect_eof().await;
    }

    /// Expects the server to close TCP, with nothing more sent: returns every byte
    /// that arrived and was not read as a message.
    pub async fn expect_eof(&mut self) {
        let rest = self.read_to_end().await;
        assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    }

    /// The bytes not read as messages yet, and everything else until the server closes TCP.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = self.messages.unread().to_vec();
        self.messages.discard_unread();
        self.stream.read_to_end(&mut rest).await.unwrap();
        rest
    }
}

/// A client frame: masked, as a client must send it.
pub fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(
        &mut out,
        fin,
        opcode,
        Some([0x12, 0x34, 0x56, 0x78]),
        payload,
    );
    out
}
