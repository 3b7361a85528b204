//! A chat client that survives a flaky network, on `tokio-tungstenite`.
//!
//! WebSocket itself has no reconnection and no resumption: when the TCP connection
//! drops, the socket is simply closed, and everything a client needs to carry on is
//! the application's business. This client builds all of it:
//!
//! - **Reconnecting** with exponential backoff and full jitter ([`crate::backoff`]).
//! - **Resuming**: it remembers the highest `seq` it has seen and reconnects with
//!   `since=SEQ`, so the server replays what happened while it was away.
//! - **Exactly once**: a message whose `seq` is not above the last one seen is a
//!   duplicate and is dropped; a `reset` says some messages are gone for good.
//! - **Noticing a dead connection**: a connection can die without either end being
//!   told (a laptop goes to sleep, a NAT forgets the mapping). The client pings every
//!   [`ChatOptions::ping_interval`] and gives the connection up when no pong comes
//!   back within [`ChatOptions::pong_timeout`].
//! - **Not losing what it sends**: a line is "unconfirmed" until the server
//!   broadcasts it back. After a drop, the replay shows which unconfirmed lines the
//!   server did accept; the others are sent again once the replay is over.
//!
//! Compare with [`crate::event_source`], where the event stream format and the
//! `Last-Event-ID` header give an SSE client the first three for free.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsse_app::messages::{ClientMessage, ServerMessage};
use wsse_app::query::encode_component;

use crate::backoff::{Backoff, BackoffPolicy};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How the client connects and when it gives a connection up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatOptions {
    /// The chat's address, `ws://127.0.0.1:3001/ws`; `name` and `since` are added to
    /// its query string.
    pub url: String,
    /// The name to ask for; after the first welcome the client keeps the one the
    /// server gave it (`anon-K` when this is `None`).
    pub name: Option<String>,
    /// Resume after this `seq` on the first connection (0: the whole history the
    /// server still holds). `None`: start with the live messages.
    pub since: Option<u64>,
    /// When to reconnect.
    pub backoff: BackoffPolicy,
    /// How often the client pings.
    pub ping_interval: Duration,
    /// How long after a ping without any pong the connection counts as dead.
    pub pong_timeout: Duration,
    /// How long the TCP connection and the handshake may take.
    pub connect_timeout: Duration,
}

impl ChatOptions {
    /// Options for `url` with the defaults: no name, live messages only, the default
    /// backoff, a ping every 15 s, 10 s for its pong, 10 s to connect.
    pub fn new(url: impl Into<String>) -> Self {
        ChatOptions {
            url: url.into(),
            name: None,
            since: None,
            backoff: BackoffPolicy::DEFAULT,
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What happened, in order: the messages to show, and the changes of the
/// connection's state to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// Opening a connection to `url`; `attempt` counts the tries since the last healthy
    /// connection.
    Connecting {
        /// The full address, with `name` and `since`.
        url: String,
        /// 0 for the first try.
        attempt: u32,
    },
    /// The server welcomed us.
    Connected {
        /// The name the server settled on.
        you: String,
        /// The newest `seq` on the server: the replay ends there.
        server_seq: u64,
        /// The `since` this connection asked for.
        since: Option<u64>,
    },
    /// A message from the server, after duplicates were dropped, with its JSON exactly
    /// as it came.
    Received {
        /// The message.
        message: ServerMessage,
        /// Its text.
        json: String,
    },
    /// A text message that is not one of the server messages this client knows.
    Unknown {
        /// Its text.
        json: String,
    },
    /// A chat message that was already shown (a replay overlapping what we had).
    DuplicateDropped {
        /// Its seq.
        seq: u64,
    },
    /// A chat message arrived with a `seq` further on than the next one: messages were
    /// lost. The server's resume rules make this impossible; the event is there to make
    /// a bug visible.
    Gap {
        /// The seq that should have come.
        expected: u64,
        /// The seq that came.
        received: u64,
    },
    /// The server no longer holds everything after our `since`: the messages before
    /// `oldest` are lost to this client.
    MissedMessages {
        /// The first seq the replay has.
        oldest: u64,
    },
    /// The server's newest `seq` is below ours: it restarted and lost its history, so
    /// the client counts from the server's number again.
    ServerRestarted {
        /// The highest seq this client had seen.
        last_seq_seen: u64,
        /// The server's newest seq now.
        server_seq: u64,
    },
    /// A line sent before a drop that the server never broadcast: sending it again.
    Resending {
        /// The line.
        content: String,
    },
    /// The connection ended or could not be opened.
    Disconnected {
        /// Why, in words.
        reason: String,
    },
    /// Waiting before the next attempt.
    Reconnecting {
        /// How long.
        delay: Duration,
    },
}

impl fmt::Display for ChatEvent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatEvent::Connecting { url, attempt } => {
                write!(formatter, "connecting to {url} (attempt {})", attempt + 1)
            }
            ChatEvent::Connected {
                you,
                server_seq,
                since,
            } => match since {
                Some(since) => write!(
                    formatter,
                    "connected as {you}; resuming after #{since} (the server is at #{server_seq})"
                ),
                None => write!(formatter, "connected as {you}; live from #{server_seq} on"),
            },
            ChatEvent::Received { json, .. } | ChatEvent::Unknown { json } => {
                write!(formatter, "received {json}")
            }
            ChatEvent::DuplicateDropped { seq } => {
                write!(formatter, "dropped #{seq}: already seen")
            }
            ChatEvent::Gap { expected, received } => write!(
                formatter,
                "messages lost: expected #{expected}, received #{received}"
            ),
            ChatEvent::MissedMessages { oldest } => write!(
                formatter,
                "the server no longer has every message we missed; history resumes at #{oldest}"
            ),
            ChatEvent::ServerRestarted {
                last_seq_seen,
                server_seq,
            } => write!(
                formatter,
                "the server restarted (it is at #{server_seq}, we had seen #{last_seq_seen}); \
                 counting from #{server_seq}"
            ),
            ChatEvent::Resending { content } => {
                write!(formatter, "sending again (never confirmed): {content:?}")
            }
            ChatEvent::Disconnected { reason } => write!(formatter, "disconnected: {reason}"),
            ChatEvent::Reconnecting { delay } => {
                write!(formatter, "reconnecting in {} ms", delay.as_millis())
            }
        }
    }
}

/// Why [`ChatClient::run`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatError {
    /// The address is not a `ws://` URL.
    InvalidUrl {
        /// The address given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for ChatError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatError::InvalidUrl { url, reason } => {
                write!(formatter, "{url:?} is not a chat address: {reason}")
            }
        }
    }
}

impl std::error::Error for ChatError {}

/// How one connection ended.
enum SessionEnd {
    /// The input is closed and every line was confirmed: the client is done.
    Finished,
    /// The connection broke; reconnect.
    Dropped(String),
}

/// The client: its options, its backoff, and what it carries from one connection to
/// the next.
#[derive(Debug)]
pub struct ChatClient {
    options: ChatOptions,
    backoff: Backoff,
    /// The highest seq shown: where to resume from. `None` before the first welcome
    /// when no `since` was given.
    last_seq: Option<u64>,
    /// The name the server gave us, asked for again on each reconnect.
    you: Option<String>,
    /// Lines waiting to be sent.
    to_send: VecDeque<String>,
    /// Lines sent on this connection that the server has not broadcast back yet.
    unconfirmed: VecDeque<String>,
    /// Lines sent on an earlier connection and never confirmed: the replay tells
    /// whether the server got them.
    in_doubt: VecDeque<String>,
    /// The input channel has closed.
    input_closed: bool,
}

impl ChatClient {
    /// A client with a backoff seeded by the operating system.
    pub fn new(options: ChatOptions) -> Self {
        let backoff = Backoff::new(options.backoff);
        ChatClient::with_backoff(options, backoff)
    }

    /// A client with the given backoff (a seeded one makes the delays repeatable).
    pub fn with_backoff(options: ChatOptions, backoff: Backoff) -> Self {
        ChatClient {
            last_seq: options.since,
            you: None,
            options,
            backoff,
            to_send: VecDeque::new(),
            unconfirmed: VecDeque::new(),
            in_doubt: VecDeque::new(),
            input_closed: false,
        }
    }

    /// The highest seq this client has shown.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    // ANCHOR: run
    /// Connects, and reconnects after every drop, until `input` is closed and every line
    /// received from it has been confirmed by the server (then it closes with 1000).
    /// Each line of `input` is sent as a chat message; `on_event` hears everything.
    ///
    /// # Errors
    ///
    /// Only for an address that is not a WebSocket URL: every network failure is
    /// answered by reconnecting.
    pub async fn run(
        &mut self,
        mut input: mpsc::Receiver<String>,
        mut on_event: impl FnMut(ChatEvent),
    ) -> Result<(), ChatError> {
        let invalid = |reason: String| ChatError::InvalidUrl {
            url: self.options.url.clone(),
            reason,
        };
        // Only plain ws://: this crate is built without TLS, and retrying an address
        // that can never work would only hide the mistake.
        if !self.options.url.starts_with("ws://") {
            return Err(invalid("only ws:// addresses are supported".to_owned()));
        }
        self.url()
            .into_client_request()
            .map_err(|error| invalid(error.to_string()))?;
        loop {
            if self.is_finished() {
                return Ok(());
            }
            let url = self.url();
            on_event(ChatEvent::Connecting {
                url: url.clone(),
                attempt: self.backoff.attempt(),
            });
            let reason = match timeout(
                self.options.connect_timeout,
                tokio_tungstenite::connect_async(url.as_str()),
            )
            .await
            {
                Err(_) => format!(
                    "no connection within {} ms",
                    self.options.connect_timeout.as_millis()
                ),
                Ok(Err(error)) => format!("cannot connect: {error}"),
                Ok(Ok((socket, _response))) => {
                    let opened = Instant::now();
                    let end = self.session(socket, &mut input, &mut on_event).await;
                    self.backoff.connection_lasted(opened.elapsed());
                    match end {
                        SessionEnd::Finished => return Ok(()),
                        SessionEnd::Dropped(reason) => reason,
                    }
                }
            };
            on_event(ChatEvent::Disconnected { reason });
            let delay = self.backoff.next_delay();
            on_event(ChatEvent::Reconnecting { delay });
            self.wait(delay, &mut input).await;
        }
    }
    // ANCHOR_END: run

    /// The address for the next connection: the base URL plus `name` and `since`.
    fn url(&self) -> String {
        chat_url(
            &self.options.url,
            self.you.as_deref().or(self.options.name.as_deref()),
            self.last_seq,
        )
    }

    /// Nothing more to send and nothing left to confirm, with the input closed.
    fn is_finished(&self) -> bool {
        self.input_closed
            && self.to_send.is_empty()
            && self.unconfirmed.is_empty()
            && self.in_doubt.is_empty()
    }

    /// Sleeps `delay`, still taking lines from `input` meanwhile (they wait in
    /// `to_send`); returns early if the input closes with nothing left to send.
    async fn wait(&mut self, delay: Duration, input: &mut mpsc::Receiver<String>) {
        let wake = sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => return,
                line = input.recv(), if !self.input_closed => match line {
                    Some(line) => self.queue(line),
                    None => {
                        self.input_closed = true;
                        if self.is_finished() {
                            return;
                        }
                    }
                },
            }
        }
    }

    /// Queues a line to send; empty lines are skipped.
    fn queue(&mut self, line: String) {
        if !line.is_empty() {
            self.to_send.push_back(line);
        }
    }

    // ANCHOR: session
    /// One connection, from the welcome to the drop.
    async fn session(
        &mut self,
        mut socket: Socket,
        input: &mut mpsc::Receiver<String>,
        on_event: &mut impl FnMut(ChatEvent),
    ) -> SessionEnd {
        // Lines sent on the last connection and not confirmed are in doubt until the
        // replay shows whether the server got them.
        self.in_doubt.extend(self.unconfirmed.drain(..));
        let asked_since = self.last_seq;
        let period = self.options.ping_interval;
        let mut pings = interval_at(Instant::now() + period, period);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut pings_sent: u64 = 0;
        // Set when a ping goes out with none outstanding, cleared by any pong.
        let mut pong_deadline: Option<Instant> = None;
        // The seq at which the replay is complete; known from the welcome.
        let mut replay_until: Option<u64> = None;
        let mut replay_done = false;

        loop {
            if replay_done && self.is_finished() {
                close(&mut socket).await;
                return SessionEnd::Finished;
            }
            let far_future = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                incoming = socket.next() => {
                    let text = match incoming {
                        None => return SessionEnd::Dropped("the connection ended".to_owned()),
                        Some(Err(error)) => {
                            return SessionEnd::Dropped(format!("the connection failed: {error}"));
                        }
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Pong(_))) => {
                            pong_deadline = None;
                            continue;
                        }
                        Some(Ok(Message::Close(frame))) => {
                            return SessionEnd::Dropped(match frame {
                                Some(frame) => format!(
                                    "the server closed the connection ({} {:?})",
                                    u16::from(frame.code),
                                    frame.reason.as_str()
                                ),
                                None => "the server closed the connection".to_owned(),
                            });
                        }
                        // The library answers pings itself; binary is not part of the chat.
                        Some(Ok(_)) => continue,
                    };
                    self.handle_text(text.as_str(), asked_since, &mut replay_until, on_event);
                    if !replay_done
                        && let Some(until) = replay_until
                        && self.last_seq.unwrap_or(0) >= until
                    {
                        replay_done = true;
                        self.replay_complete(on_event);
                    }
                }
                _ = pings.tick() => {
                    pings_sent += 1;
                    if pong_deadline.is_none() {
                        pong_deadline = Some(Instant::now() + self.options.pong_timeout);
                    }
                    let ping = Message::Ping(pings_sent.to_be_bytes().to_vec().into());
                    if let Err(reason) = self.send(&mut socket, ping).await {
                        return SessionEnd::Dropped(reason);
                    }
                }
                () = sleep_until(pong_deadline.unwrap_or(far_future)), if pong_deadline.is_some() => {
                    return SessionEnd::Dropped(format!(
                        "no pong within {} ms: the connection is dead",
                        self.options.pong_timeout.as_millis()
                    ));
                }
                line = input.recv(), if !self.input_closed => match line {
                    Some(line) => self.queue(line),
                    None => self.input_closed = true,
                },
            }
            if replay_done && let Err(reason) = self.send_queued(&mut socket).await {
                return SessionEnd::Dropped(reason);
            }
        }
    }
    // ANCHOR_END: session

    // ANCHOR: handle_text
    /// Applies one server message to the resume state and reports it.
    fn handle_text(
        &mut self,
        text: &str,
        asked_since: Option<u64>,
        replay_until: &mut Option<u64>,
        on_event: &mut impl FnMut(ChatEvent),
    ) {
        let Ok(message) = serde_json::from_str::<ServerMessage>(text) else {
            on_event(ChatEvent::Unknown {
                json: text.to_owned(),
            });
            return;
        };
        match &message {
            ServerMessage::Welcome { you, seq, .. } => {
                self.you = Some(you.clone());
                match self.last_seq {
                    // First connection without `since`: live messages from here on.
                    None => self.last_seq = Some(*seq),
                    // The server has fewer messages than we saw: it lost its history.
                    Some(last) if *seq < last => {
                        on_event(ChatEvent::ServerRestarted {
                            last_seq_seen: last,
                            server_seq: *seq,
                        });
                        self.last_seq = Some(*seq);
                    }
                    Some(_) => {}
                }
                *replay_until = Some(*seq);
                on_event(ChatEvent::Connected {
                    you: you.clone(),
                    server_seq: *seq,
                    since: asked_since,
                });
            }
            ServerMessage::Message(chat) => {
                if let Some(last) = self.last_seq {
                    if chat.seq <= last {
                        on_event(ChatEvent::DuplicateDropped { seq: chat.seq });
                        return;
                    }
                    // Seqs are opaque numbers that go up by one: the first one a
                    // chat has need not be 1 (a Redis-backed chat starts its epochs
                    // far above), so `since=0`, "from the first", expects no number.
                    if last != 0 && chat.seq != last + 1 {
                        on_event(ChatEvent::Gap {
                            expected: last + 1,
                            received: chat.seq,
                        });
                    }
                }
                self.last_seq = Some(chat.seq);
                if self.you.as_deref() == Some(chat.from.as_str()) {
                    self.confirm(&chat.content);
                }
            }
            ServerMessage::Reset { oldest } => {
                on_event(ChatEvent::MissedMessages { oldest: *oldest });
                // The replay starts at `oldest`: everything before it counts as seen.
                let before_oldest = oldest.saturating_sub(1);
                self.last_seq = Some(self.last_seq.unwrap_or(0).max(before_oldest));
            }
            ServerMessage::Error { .. } => {
                // The server answers our messages in the order we sent them: the oldest
                // unconfirmed one was refused, and will not be sent again.
                self.unconfirmed.pop_front();
            }
            ServerMessage::Presence { .. } => {}
        }
        on_event(ChatEvent::Received {
            message,
            json: text.to_owned(),
        });
    }

    /// One of our lines came back from the server. The server handles our lines in
    /// order, so any line sent before it that did not come back was refused.
    fn confirm(&mut self, content: &str) {
        for list in [&mut self.in_doubt, &mut self.unconfirmed] {
            if let Some(position) = list.iter().position(|line| line == content) {
                list.drain(..=position);
                return;
            }
        }
    }

    /// The replay is over: lines still in doubt never reached the server, so they go
    /// out again, before the lines typed since.
    fn replay_complete(&mut self, on_event: &mut impl FnMut(ChatEvent)) {
        while let Some(line) = self.in_doubt.pop_back() {
            on_event(ChatEvent::Resending {
                content: line.clone(),
            });
            self.to_send.push_front(line);
        }
    }
    // ANCHOR_END: handle_text

    /// Sends every queued line; each becomes unconfirmed until the server echoes it.
    async fn send_queued(&mut self, socket: &mut Socket) -> Result<(), String> {
        while let Some(content) = self.to_send.pop_front() {
            let json = serde_json::to_string(&ClientMessage::Message {
                content: content.clone(),
            })
            .expect("a string always serializes");
            self.unconfirmed.push_back(content);
            self.send(socket, Message::text(json)).await?;
        }
        Ok(())
    }

    /// Sends one message, giving up after the pong timeout: a send that cannot get
    /// out is as dead as a missing pong.
    async fn send(&self, socket: &mut Socket, message: Message) -> Result<(), String> {
        match timeout(self.options.pong_timeout, socket.send(message)).await {
            Err(_) => Err(format!(
                "sending blocked for {} ms: the connection is dead",
                self.options.pong_timeout.as_millis()
            )),
            Ok(Err(error)) => Err(format!("sending failed: {error}")),
            Ok(Ok(())) => Ok(()),
        }
    }
}

/// Closes with 1000 and waits briefly for the server's close frame.
async fn close(socket: &mut Socket) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    if socket.close(Some(frame)).await.is_err() {
        return;
    }
    let _ = timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

// ANCHOR: chat_url
/// `base` with `name=NAME` and `since=SEQ` added to its query string.
///
/// ```
/// use wsse_clients::chat::chat_url;
///
/// assert_eq!(
///     chat_url("ws://127.0.0.1:3001/ws", Some("Ada L"), Some(41)),
///     "ws://127.0.0.1:3001/ws?name=Ada%20L&since=41"
/// );
/// assert_eq!(chat_url("ws://h/ws?x=1", None, Some(0)), "ws://h/ws?x=1&since=0");
/// ```
pub fn chat_url(base: &str, name: Option<&str>, since: Option<u64>) -> String {
    let mut url = base.to_owned();
    let mut separator = if base.contains('?') { '&' } else { '?' };
    if let Some(name) = name {
        url.push(separator);
        url.push_str("name=");
        url.push_str(&encode_component(name));
        separator = '&';
    }
    if let Some(since) = since {
        url.push(separator);
        url.push_str(&format!("since={since}"));
    }
    url
}
// ANCHOR_END: chat_url

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use wsse_app::messages::ChatMessage;

    fn client() -> ChatClient {
        ChatClient::new(ChatOptions::new("ws://127.0.0.1:1/ws"))
    }

    fn message(seq: u64, from: &str, content: &str) -> String {
        ServerMessage::Message(Arc::new(ChatMessage {
            seq,
            from: from.to_owned(),
            content: content.to_owned(),
            ts: 1,
        }))
        .to_json()
    }

    fn welcome(you: &str, seq: u64) -> String {
        ServerMessage::Welcome {
            you: you.to_owned(),
            online: 1,
            seq,
        }
        .to_json()
    }

    /// Feeds the texts to the client as if they came over one connection.
    fn feed(client: &mut ChatClient, texts: &[String]) -> Vec<ChatEvent> {
        let mut events = Vec::new();
        let mut replay_until = None;
        let since = client.last_seq;
        for text in texts {
            client.handle_text(text, since, &mut replay_until, &mut |event| {
                events.push(event);
            });
        }
        events
    }

    fn received_seqs(events: &[ChatEvent]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|event| match event {
                ChatEvent::Received {
                    message: ServerMessage::Message(chat),
                    ..
                } => Some(chat.seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn urls_carry_name_and_since() {
        assert_eq!(chat_url("ws://h/ws", None, None), "ws://h/ws");
        assert_eq!(
            chat_url("ws://h/ws", Some("a&b=c/ü"), None),
            "ws://h/ws?name=a%26b%3Dc%2F%C3%BC"
        );
        assert_eq!(chat_url("ws://h/ws", None, Some(7)), "ws://h/ws?since=7");
    }

    #[test]
    fn the_first_welcome_sets_the_resume_point_and_the_name() {
        let mut client = client();
        let events = feed(&mut client, &[welcome("anon-3", 40)]);
        assert_eq!(client.last_seq(), Some(40));
        assert_eq!(client.url(), "ws://127.0.0.1:1/ws?name=anon-3&since=40");
        assert!(matches!(
            events[0],
            ChatEvent::Connected { server_seq: 40, .. }
        ));
    }

    #[test]
    fn duplicates_are_dropped_by_seq() {
        let mut client = client();
        let mut texts = vec![welcome("ann", 0)];
        texts.extend([1, 2, 3, 2, 3, 4].map(|seq| message(seq, "bob", "x")));
        let events = feed(&mut client, &texts);
        assert_eq!(received_seqs(&events), [1, 2, 3, 4]);
        let dropped: Vec<u64> = events
            .iter()
            .filter_map(|event| match event {
                ChatEvent::DuplicateDropped { seq } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(dropped, [2, 3]);
        assert_eq!(client.last_seq(), Some(4));
    }

    #[test]
    fn from_the_first_message_any_first_seq_is_fine_and_then_they_go_up_by_one() {
        let mut options = ChatOptions::new("ws://127.0.0.1:1/ws");
        options.since = Some(0);
        let mut client = ChatClient::new(options);
        let epoch = 1_796_233_953_547_000;
        let texts = [
            welcome("ann", epoch + 2),
            message(epoch + 1, "bob", "x"),
            message(epoch + 2, "bob", "y"),
            message(epoch + 4, "bob", "z"),
        ];
        let events = feed(&mut client, &texts);
        let gaps: Vec<_> = events
            .iter()
            .filter(|event| matches!(event, ChatEvent::Gap { .. }))
            .collect();
        assert_eq!(
            gaps,
            [&ChatEvent::Gap {
                expected: epoch + 3,
                received: epoch + 4
            }]
        );
    }

    #[test]
    fn a_gap_is_reported_and_a_reset_moves_the_resume_point() {
        let mut client = client();
        let events = feed(
            &mut client,
            &[
                welcome("ann", 0),
                message(1, "bob", "x"),
                message(3, "bob", "x"),
            ],
        );
        assert!(events.contains(&ChatEvent::Gap {
            expected: 2,
            received: 3
        }));

        let mut client = ChatClient::new(ChatOptions {
            since: Some(5),
            ..ChatOptions::new("ws://h/ws")
        });
        let reset = ServerMessage::Reset { oldest: 1042 }.to_json();
        let events = feed(
            &mut client,
            &[welcome("ann", 2000), reset, message(1042, "bob", "x")],
        );
        assert!(events.contains(&ChatEvent::MissedMessages { oldest: 1042 }));
        assert!(
            !events
                .iter()
                .any(|event| matches!(event, ChatEvent::Gap { .. }))
        );
        assert_eq!(received_seqs(&events), [1042]);
    }

    #[test]
    fn a_welcome_below_our_seq_means_the_server_restarted() {
        let mut client = ChatClient::new(ChatOptions {
            since: Some(90),
            ..ChatOptions::new("ws://h/ws")
        });
        let events = feed(&mut client, &[welcome("ann", 3), message(4, "bob", "new")]);
        assert!(events.contains(&ChatEvent::ServerRestarted {
            last_seq_seen: 90,
            server_seq: 3
        }));
        assert_eq!(received_seqs(&events), [4]);
    }

    #[test]
    fn lines_in_doubt_are_confirmed_by_the_replay_or_sent_again() {
        let mut client = client();
        feed(&mut client, &[welcome("ann", 0)]);
        // Three lines went out, then the connection dropped before any echo.
        client
            .unconfirmed
            .extend(["one", "two", "three"].map(String::from));
        client.in_doubt.extend(client.unconfirmed.drain(..));
        // The replay shows the server got "one" and "two" (and someone else's line).
        feed(
            &mut client,
            &[
                welcome("ann", 3),
                message(1, "ann", "one"),
                message(2, "bob", "three"),
                message(3, "ann", "two"),
            ],
        );
        assert_eq!(client.in_doubt, ["three"]);
        let mut events = Vec::new();
        client.to_send.push_back("typed since".to_owned());
        client.replay_complete(&mut |event| events.push(event));
        assert_eq!(client.to_send, ["three", "typed since"]);
        assert_eq!(
            events,
            [ChatEvent::Resending {
                content: "three".into()
            }]
        );
    }

    #[test]
    fn an_error_reply_settles_the_oldest_unconfirmed_line() {
        let mut client = client();
        feed(&mut client, &[welcome("ann", 0)]);
        client
            .unconfirmed
            .extend(["x".repeat(5000), "fine".to_owned()]);
        let error = ServerMessage::Error {
            code: wsse_app::messages::ErrorCode::TooLong,
            message: "too long".into(),
        }
        .to_json();
        feed(&mut client, &[error, message(1, "ann", "fine")]);
        assert!(client.unconfirmed.is_empty());
    }

    #[test]
    fn an_invalid_url_is_refused_at_once() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (_sender, input) = mpsc::channel(1);
        let mut client = ChatClient::new(ChatOptions::new("http://"));
        let result = runtime.block_on(client.run(input, |_| {}));
        assert!(
            matches!(result, Err(ChatError::InvalidUrl { .. })),
            "{result:?}"
        );
    }
}
