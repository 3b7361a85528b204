//! A WebSocket client on the wire crate alone: a plain Tokio `TcpStream`, the
//! handshake of `wsse_wire::handshake`, and its message reader (the frame decoder
//! and message assembler in a receive loop with no I/O) and frame encoder.
//!
//! ```text
//! wstest -m fuzzingserver -s fuzzingserver.json      # Autobahn|Testsuite, port 9001
//! cargo run --example wire_client -- --autobahn ws://127.0.0.1:9001
//! cargo run --example wire_client -- --no-pong 'ws://127.0.0.1:3004/ws?name=silent'
//! cargo run --example wire_client -- --deflate --no-pong 'ws://127.0.0.1:3004/ws?name=small'
//! ```
//!
//! Its main mode is the loop every client under test runs against Autobahn's fuzzing
//! server: ask `/getCaseCount`, then for each case open `/runCase?case=N&agent=NAME`
//! and echo every message until the server closes, then ask `/updateReports` to
//! write the reports. `cargo xtask autobahn` runs it.
//!
//! With `--no-pong` it is the client a heartbeat is for: it connects, prints what
//! arrives, and never answers a ping, until the server gives up on it.
//!
//! What a library would do for us, done here in plain sight: answering pings, the
//! closing handshake (reply to a close, then wait for the server to close TCP first),
//! failing the connection with the close code each protocol error earns, failing
//! fast on invalid UTF-8 while a text frame is still arriving (RFC 6455 section 8.1),
//! and, with `--deflate`, offering permessage-deflate (RFC 7692) and compressing and
//! inflating messages when the server accepts.

use std::io;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsse_wire::ProtocolError;
use wsse_wire::close::{CloseFrame, encode_close_payload};
use wsse_wire::deflate::{self, Deflater};
use wsse_wire::frame::{OpCode, Role, encode_compressed_frame, encode_for_role};
use wsse_wire::handshake::{client_request, generate_key, validate_server_response};
use wsse_wire::mask::random_key;
use wsse_wire::message::Message;
use wsse_wire::reader::MessageReader;

/// The largest message (and frame) accepted: Autobahn's cases 9.x send up to 16 MiB.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How many bytes to make room for before each read.
const READ_SIZE: usize = 64 * 1024;

/// The longest response head accepted from the server.
const MAX_HEAD: usize = 16 * 1024;

/// How long to wait for the server to finish a closing handshake.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one case may take; the slowest of Autobahn's take seconds.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Parser)]
#[command(
    about = "A WebSocket client on wsse_wire alone: Autobahn|Testsuite's client under test, or one that never answers pings"
)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["autobahn", "no_pong"])))]
struct Arguments {
    /// Run every case of the Autobahn fuzzing server at this URL (`ws://IP:PORT`).
    #[arg(long, value_name = "URL")]
    autobahn: Option<String>,

    /// Instead, connect to this URL (`ws://HOST:PORT/PATH?QUERY`), print every
    /// message and ping that arrives, and never answer a ping, until the server
    /// closes or drops the connection: a dead client, as a server's heartbeat sees it.
    #[arg(long, value_name = "URL")]
    no_pong: Option<String>,

    /// With --autobahn, the name the fuzzing server files this client's results under.
    #[arg(long, default_value = "wire_client")]
    agent: String,

    /// Offer permessage-deflate (RFC 7692); when the server accepts, messages are
    /// inflated on the way in and compressed on the way out.
    #[arg(long)]
    deflate: bool,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let arguments = Arguments::parse();
    if let Some(url) = &arguments.no_pong {
        return run_without_pongs(url, arguments.deflate).await;
    }
    let base = arguments
        .autobahn
        .as_deref()
        .expect("clap requires --autobahn without --no-pong")
        .trim_end_matches('/');
    let agent = &arguments.agent;

    let count = case_count(base).await?;
    println!("running {count} cases as {agent}");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match tokio::time::timeout(CASE_TIMEOUT, run_case(&url, arguments.deflate)).await {
            Ok(Ok(())) => {}
            // The report tells what went wrong; the next case still runs.
            Ok(Err(error)) => eprintln!("case {case}: {error}"),
            Err(_) => eprintln!("case {case}: no end after {} s", CASE_TIMEOUT.as_secs()),
        }
    }
    service(&format!("{base}/updateReports?agent={agent}")).await?;
    println!("ran {count} cases; reports updated");
    Ok(())
}

/// `/getCaseCount` sends the number of cases as one text message, then closes.
async fn case_count(base: &str) -> Result<u32, String> {
    let texts = service(&format!("{base}/getCaseCount")).await?;
    let text = texts.first().ok_or("getCaseCount sent no message")?;
    text.trim()
        .parse()
        .map_err(|_| format!("getCaseCount sent {text:?}, not a number"))
}

/// The text messages of one of the fuzzing server's service URLs. They change nothing
/// when asked again, so a failed attempt is logged and tried again, twice.
async fn service(url: &str) -> Result<Vec<String>, String> {
    let mut attempt = 1;
    loop {
        let outcome = match Connection::open(url, false).await {
            Ok(mut connection) => connection.receive_until_close().await,
            Err(error) => Err(error),
        };
        match outcome {
            Ok(texts) => return Ok(texts),
            Err(error) if attempt < 3 => {
                eprintln!("{url}, attempt {attempt}: {error}; trying again in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                attempt += 1;
            }
            Err(error) => return Err(format!("{url}, attempt {attempt}: {error}")),
        }
    }
}

/// One case: echo every text and binary message until the connection ends.
async fn run_case(url: &str, deflate: bool) -> Result<(), String> {
    let mut connection = Connection::open(url, deflate).await?;
    loop {
        let sent = match connection.receive().await {
            Ok(Message::Text(text)) => connection.send(OpCode::Text, text.as_bytes()).await,
            Ok(Message::Binary(bytes)) => connection.send(OpCode::Binary, &bytes).await,
            Ok(Message::Ping(payload)) => connection.send(OpCode::Pong, &payload).await,
            Ok(Message::Pong(_)) => Ok(()),
            Ok(Message::Close(frame)) => return connection.answer_close(frame).await,
            Err(ReceiveError::Protocol(error)) => return connection.fail(&error).await,
            // The server dropped the connection: some cases end that way on purpose.
            Err(ReceiveError::Eof) => return Ok(()),
            Err(ReceiveError::Io(error)) => return Err(format!("reading: {error}")),
        };
        sent.map_err(|error| format!("sending: {error}"))?;
    }
}

/// `--no-pong`: prints what arrives, answers no ping, and returns when the server
/// ends the connection.
async fn run_without_pongs(url: &str, deflate: bool) -> Result<(), String> {
    let mut connection = Connection::open(url, deflate).await?;
    let opened = Instant::now();
    println!(
        "connected to {url}{}; no ping will be answered",
        if connection.deflater.is_some() {
            ", with permessage-deflate"
        } else {
            ""
        }
    );
    let mut pings = 0;
    loop {
        let received = connection.receive().await;
        let at = format!("{:6.1} s", opened.elapsed().as_secs_f64());
        match received {
            Ok(Message::Text(text)) => println!("{at}  message: {text}"),
            Ok(Message::Binary(bytes)) => println!("{at}  binary message, {} bytes", bytes.len()),
            Ok(Message::Ping(_)) => {
                pings += 1;
                println!("{at}  ping {pings}, not answered");
            }
            Ok(Message::Pong(_)) => println!("{at}  pong"),
            Ok(Message::Close(frame)) => {
                match &frame {
                    Some(frame) => println!(
                        "{at}  the server closed with {} {:?} after {pings} unanswered ping(s)",
                        frame.code, frame.reason
                    ),
                    None => println!(
                        "{at}  the server closed with no code after {pings} unanswered ping(s)"
                    ),
                }
                return connection.answer_close(frame).await;
            }
            Err(ReceiveError::Eof) => {
                println!(
                    "{at}  the server dropped the connection, without a close frame, after {pings} unanswered ping(s)"
                );
                return Ok(());
            }
            Err(ReceiveError::Io(error)) => {
                println!("{at}  the connection ended ({error}) after {pings} unanswered ping(s)");
                return Ok(());
            }
            Err(ReceiveError::Protocol(error)) => {
                println!("{at}  the server broke the protocol: {error}");
                return connection.fail(&error).await;
            }
        }
    }
}

/// Why [`Connection::receive`] returned no message.
#[derive(Debug)]
enum ReceiveError {
    /// The server broke the protocol; close with [`ProtocolError::close_code`].
    Protocol(ProtocolError),
    Io(io::Error),
    /// The server closed TCP without a close frame.
    Eof,
}

/// One WebSocket connection, client side.
struct Connection {
    stream: TcpStream,
    /// Bytes received in, messages out; fails fast on invalid UTF-8 in a text frame
    /// still arriving.
    messages: MessageReader,
    /// The frame being sent; the allocation is kept between frames.
    outgoing: Vec<u8>,
    /// permessage-deflate's compressor, when the server accepted the offer.
    deflater: Option<Deflater>,
}

impl Connection {
    /// Connects to `ws://HOST:PORT/PATH?QUERY` and runs the opening handshake,
    /// offering permessage-deflate when `offer_deflate`.
    async fn open(url: &str, offer_deflate: bool) -> Result<Connection, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("{url} does not start with ws://"))?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        };
        let mut stream = TcpStream::connect(authority)
            .await
            .map_err(|error| format!("connecting to {authority}: {error}"))?;
        // Each frame goes out in one write; Nagle's algorithm would hold small ones back.
        stream
            .set_nodelay(true)
            .map_err(|error| format!("setting TCP_NODELAY: {error}"))?;
        let key = generate_key();
        let offer: &[(&str, &str)] = if offer_deflate {
            &[("Sec-WebSocket-Extensions", deflate::CLIENT_OFFER)]
        } else {
            &[]
        };
        let request = client_request(authority, path, &key, offer);
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|error| format!("sending the upgrade request: {error}"))?;

        let mut buffer = Vec::with_capacity(READ_SIZE);
        let (head_len, extensions) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&buffer) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = response.code.unwrap_or(0);
                    let fields = response
                        .headers
                        .iter()
                        .map(|field| (field.name, field.value));
                    validate_server_response(&key, status, fields)
                        .map_err(|error| format!("handshake with {url}: {error}"))?;
                    let extensions = response
                        .headers
                        .iter()
                        .find(|field| field.name.eq_ignore_ascii_case("sec-websocket-extensions"))
                        .map(|field| String::from_utf8_lossy(field.value).into_owned());
                    break (head_len, extensions);
                }
                Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => {
                    return Err(format!("the response head is over {MAX_HEAD} bytes"));
                }
                Err(error) => return Err(format!("malformed response head: {error}")),
            }
            buffer.reserve(READ_SIZE);
            match stream.read_buf(&mut buffer).await {
                Ok(0) => return Err(format!("{url} closed the connection during the handshake")),
                Ok(_) => {}
                Err(error) => return Err(format!("reading the handshake response: {error}")),
            }
        };
        let mut messages =
            MessageReader::new(Role::Client, MAX_MESSAGE, MAX_MESSAGE).with_read_size(READ_SIZE);
        // An extension this client did not offer, or an answer it cannot keep to,
        // fails the connection (RFC 6455 section 4.1, RFC 7692 section 5).
        let deflater = match extensions {
            None => None,
            Some(answer) if !offer_deflate => {
                return Err(format!(
                    "{url} answered the extension {answer:?}, never offered"
                ));
            }
            Some(answer) => {
                let agreement = deflate::accept_response(&answer)
                    .map_err(|error| format!("handshake with {url}: {error}"))?;
                let (deflater, inflater) = agreement.client_codec();
                messages = messages.with_inflater(inflater);
                Some(deflater)
            }
        };
        // Frames may have arrived in the same packet as the 101 response.
        messages.feed(&buffer[head_len..]);
        Ok(Connection {
            stream,
            messages,
            outgoing: Vec::new(),
            deflater,
        })
    }

    /// Sends one whole message as one frame, masked with a fresh key as a client must,
    /// and compressed if permessage-deflate was agreed (never a control frame).
    async fn send(&mut self, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        self.outgoing.clear();
        match &mut self.deflater {
            Some(deflater) if !opcode.is_control() => {
                let compressed = deflater.compress(payload);
                encode_compressed_frame(
                    &mut self.outgoing,
                    opcode,
                    Some(random_key()),
                    &compressed,
                );
            }
            _ => encode_for_role(&mut self.outgoing, Role::Client, opcode, payload),
        }
        self.stream.write_all(&self.outgoing).await
    }

    /// Waits for the next message or control frame.
    async fn receive(&mut self) -> Result<Message, ReceiveError> {
        loop {
            if let Some(message) = self
                .messages
                .next_message()
                .map_err(ReceiveError::Protocol)?
            {
                return Ok(message);
            }
            match self.stream.read_buf(self.messages.buffer_to_fill()).await {
                Ok(0) => return Err(ReceiveError::Eof),
                Ok(_) => {}
                Err(error) => return Err(ReceiveError::Io(error)),
            }
        }
    }

    /// The server closed first: echo its code (section 5.5.1), or send an empty close
    /// frame if it gave none, then wait for it to close TCP.
    async fn answer_close(&mut self, frame: Option<CloseFrame>) -> Result<(), String> {
        let payload = match frame {
            Some(frame) => encode_close_payload(frame.code, ""),
            None => Vec::new(),
        };
        self.send(OpCode::Close, &payload)
            .await
            .map_err(|error| format!("sending the close reply: {error}"))?;
        self.wait_for_server_to_close().await;
        Ok(())
    }

    /// The server broke the protocol: close with the code the error earns, then wait
    /// for the server's close frame and TCP close (section 7.1.7).
    async fn fail(mut self, error: &ProtocolError) -> Result<(), String> {
        let payload = encode_close_payload(error.close_code(), &error.to_string());
        // The server may already be gone; its report tells.
        let _ = self.send(OpCode::Close, &payload).await;
        self.wait_for_server_to_close().await;
        Ok(())
    }

    /// Reads and drops everything until the server closes TCP. The server closes
    /// first (section 7.1.1), so that it, not the client, keeps no TIME_WAIT state.
    async fn wait_for_server_to_close(&mut self) {
        let drain = async {
            loop {
                self.messages.discard_unread();
                match self.stream.read_buf(self.messages.buffer_to_fill()).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        // After the timeout, dropping the stream closes it from our side.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
    }

    /// For the service URLs: collects the text messages until the server closes,
    /// answering pings and the close.
    async fn receive_until_close(&mut self) -> Result<Vec<String>, String> {
        let mut texts = Vec::new();
        loop {
            match self.receive().await {
                Ok(Message::Text(text)) => texts.push(text),
                Ok(Message::Ping(payload)) => self
                    .send(OpCode::Pong, &payload)
                    .await
                    .map_err(|error| format!("sending a pong: {error}"))?,
                Ok(Message::Binary(_) | Message::Pong(_)) => {}
                Ok(Message::Close(frame)) => {
                    // The answer is in (the reports are written before the close): a
                    // server that drops the connection before our reply loses nothing.
                    if let Err(error) = self.answer_close(frame).await {
                        eprintln!("after the service's close: {error}");
                    }
                    return Ok(texts);
                }
                Err(ReceiveError::Eof) => return Ok(texts),
                Err(ReceiveError::Protocol(error)) => {
                    return Err(format!("protocol error: {error}"));
                }
                Err(ReceiveError::Io(error)) => return Err(format!("reading: {error}")),
            }
        }
    }
}
