//! The hub: the one place where chat messages get their seq, are kept for replay and
//! are handed to every connected client.
//!
//! - [`Hub::publish`] numbers a message, keeps it in a ring of the last
//!   [`HubOptions::history_capacity`] messages and broadcasts it.
//! - [`Hub::subscribe`] (and [`Hub::connect`], [`Hub::subscribe_from_last_event_id`])
//!   return a [`Subscription`] that yields the replay a client asked for, then the live
//!   events, with no gap and no duplicate.
//! - [`Hub::join`] returns a [`Member`], a guard that counts the client as online
//!   until it is dropped.
//!
//! Live messages go through one `tokio::sync::broadcast` channel: a bounded buffer
//! that all subscribers share. A slow subscriber therefore never blocks the hub or the
//! others; if it falls more than the buffer behind, it gets `Lagged` and its
//! [`Subscription`] catches up from the ring (see [`Subscription::next`]).
//!
//! Presence goes through a `tokio::sync::watch` channel instead: it holds only the
//! latest count, and each subscriber hands on at most one count per
//! [`PRESENCE_INTERVAL`], so N clients joining at once cost each subscriber a few
//! frames, not N (see [`Subscription::next`]).
//!
//! With `--redis` ([`Hub::start`]) the numbering and the history move to Redis, so
//! that several instances share one chat: [`Hub::publish`] asks Redis for the seq,
//! and every instance's copy of the history is fed from Redis's stream by
//! [`crate::redis_hub`], in the same order everywhere. Everything below the
//! numbering (the ring, the broadcast, the subscriptions and their rules) is the
//! same in both modes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_core::Stream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::config::Config;
use crate::connection::Closing;
use crate::limits::{MessageRate, Verdict};
use crate::messages::{
    ChatMessage, ErrorReply, PostAccepted, ServerMessage, parse_client_message, parse_post_message,
    valid_name,
};
use crate::redis_hub::RedisHub;
use crate::shutdown::Shutdown;

// ANCHOR: presence_interval
/// The shortest time between two presence events to one subscriber. A count that
/// changes faster is coalesced: the subscriber gets the latest count once the
/// interval since its last one has passed, and may never see the counts in between.
pub const PRESENCE_INTERVAL: Duration = Duration::from_millis(250);
// ANCHOR_END: presence_interval

/// Sizes of the hub's two buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubOptions {
    /// How many of the newest messages are kept for replay (`since=`, `Last-Event-ID`).
    pub history_capacity: usize,
    /// How many live events the broadcast channel buffers for the slowest subscriber
    /// before that subscriber lags and has to catch up from the history.
    pub broadcast_capacity: usize,
}

impl HubOptions {
    /// The history the servers keep: the last 1000 messages.
    pub const DEFAULT_HISTORY_CAPACITY: usize = 1000;
    /// The live buffer the servers use: 1024 events.
    pub const DEFAULT_BROADCAST_CAPACITY: usize = 1024;
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            history_capacity: Self::DEFAULT_HISTORY_CAPACITY,
            broadcast_capacity: Self::DEFAULT_BROADCAST_CAPACITY,
        }
    }
}

/// What a [`Subscription`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    /// The client asked to resume from messages the hub no longer has; what follows
    /// starts at `oldest`. Comes first, before the replay.
    Reset {
        /// The oldest seq still retained.
        oldest: u64,
    },
    /// A chat message, replayed or live.
    Message(Arc<ChatMessage>),
    /// Someone joined or left; `online` is the latest count (see [`PRESENCE_INTERVAL`]).
    Presence {
        /// How many chat clients are connected now.
        online: usize,
    },
}

impl HubEvent {
    /// The event as the message a WebSocket client gets.
    pub fn to_server_message(&self) -> ServerMessage {
        match self {
            HubEvent::Reset { oldest } => ServerMessage::Reset { oldest: *oldest },
            HubEvent::Message(message) => ServerMessage::Message(Arc::clone(message)),
            HubEvent::Presence { online } => ServerMessage::Presence { online: *online },
        }
    }

    /// The event as JSON, the same text on the WebSocket and in the SSE `data:`.
    pub fn to_json(&self) -> String {
        self.to_server_message().to_json()
    }
}

/// The chat's shared state. Cheap to clone: every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    // A summary: the derived form would print the whole history. `try_lock`, so that
    // printing a hub never waits or deadlocks.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = formatter.debug_struct("Hub");
        if let Ok(state) = self.inner.state.try_lock() {
            debug
                .field("last_seq", &state.last_seq)
                .field("retained", &state.history.len())
                .field("online", &state.online);
        }
        debug.finish_non_exhaustive()
    }
}

struct Inner {
    /// Everything that must change together: see [`Hub::publish`] and [`Hub::subscribe`].
    state: Mutex<State>,
    /// Live messages (and, with Redis, resets) for every subscriber. Sent to only
    /// while `state` is locked.
    live: broadcast::Sender<HubEvent>,
    /// The online count of the whole chat, every instance's clients. Sent to only while
    /// `state` is locked.
    presence: watch::Sender<usize>,
    /// The K of the next `anon-K` minus one. Server-wide, never reused.
    anonymous_names: AtomicU64,
    history_capacity: usize,
    shutdown: Shutdown,
    /// Where seqs come from with `--redis`; `None`: this process numbers them itself.
    redis: Option<RedisHub>,
}

struct State {
    /// The newest messages, oldest first; their seqs are consecutive.
    history: VecDeque<Arc<ChatMessage>>,
    /// The seq of the newest message, 0 before the first.
    last_seq: u64,
    /// The seq the chat's first message has (or will have): 1 in memory; with Redis,
    /// the first of the current epoch. A client resuming from 0 has missed nothing
    /// while this message is still retained.
    first_seq: u64,
    /// How many [`Member`]s exist in this process.
    online: usize,
    /// How many clients the other instances have (with Redis; 0 otherwise), as last
    /// read from Redis.
    remote_online: usize,
}

impl State {
    /// The oldest seq a client can still get: the front of the ring, or the next seq
    /// when the ring is empty.
    fn oldest_retained(&self) -> u64 {
        self.history
            .front()
            .map_or(self.last_seq + 1, |message| message.seq)
    }

    /// What a client that has seen every message up to `after` must get first: a reset
    /// if some of the messages after `after` are gone, then those still retained.
    fn replay_after(&self, after: u64) -> Vec<HubEvent> {
        let mut events = Vec::new();
        let oldest = self.oldest_retained();
        // `since + 1 < oldest`: the next message the client needs has left the ring;
        // unless the client starts from nothing and nothing has left it yet.
        let from_the_first = after == 0 && oldest == self.first_seq;
        if after.saturating_add(1) < oldest && !from_the_first {
            events.push(HubEvent::Reset { oldest });
        }
        let start = self.history.partition_point(|message| message.seq <= after);
        events.extend(
            self.history
                .range(start..)
                .map(|message| HubEvent::Message(Arc::clone(message))),
        );
        events
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// A hub with the default sizes (history of 1000, live buffer of 1024).
    pub fn new() -> Self {
        Hub::with_options(HubOptions::default())
    }

    /// A hub with the given sizes (tests use tiny ones).
    ///
    /// # Panics
    ///
    /// If either capacity is 0.
    pub fn with_options(options: HubOptions) -> Self {
        Hub::with_backend(options, None)
    }

    fn with_backend(options: HubOptions, redis: Option<RedisHub>) -> Self {
        assert!(options.history_capacity > 0, "history capacity must be > 0");
        assert!(
            options.broadcast_capacity > 0,
            "broadcast capacity must be > 0"
        );
        let (live, _) = broadcast::channel(options.broadcast_capacity);
        let (presence, _) = watch::channel(0);
        Hub {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    history: VecDeque::with_capacity(options.history_capacity),
                    last_seq: 0,
                    first_seq: 1,
                    online: 0,
                    remote_online: 0,
                }),
                live,
                presence,
                anonymous_names: AtomicU64::new(0),
                history_capacity: options.history_capacity,
                shutdown: Shutdown::new(),
                redis,
            }),
        }
    }

    // ANCHOR: start
    /// The hub a server runs: in this process's memory, or with `--redis URL` shared
    /// with every other instance started with the same URL.
    ///
    /// With Redis it connects (waiting a few seconds for Redis to answer), loads the
    /// newest messages into this instance's history and starts the two tasks that keep
    /// it current (the stream reader and the presence heartbeat, see
    /// [`crate::redis_hub`]); they stop when the hub shuts down.
    ///
    /// # Errors
    ///
    /// With `--redis`, a Redis that does not answer within
    /// [`crate::redis_hub::STARTUP_WAIT`], or answers with an error.
    pub async fn start(config: &Config) -> std::io::Result<Hub> {
        match &config.redis {
            None => Ok(Hub::new()),
            Some(url) => {
                let redis = RedisHub::connect(url).await.inspect_err(|error| {
                    tracing::error!(%error, "the chat cannot start without its Redis");
                })?;
                let hub = Hub::with_backend(HubOptions::default(), Some(redis.clone()));
                redis.load_into(&hub).await?;
                redis.spawn_tasks(&hub);
                Ok(hub)
            }
        }
    }
    // ANCHOR_END: start

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot leave `State` half-changed in a way
        // that matters more than stopping the whole chat would, so keep going.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts a message: gives it the next seq, keeps it in the history and sends it
    /// to every subscriber (of every instance, with Redis). The content must already be
    /// valid ([`parse_client_message`] or [`parse_post_message`]).
    ///
    /// # Errors
    ///
    /// With Redis, an `unavailable` [`ErrorReply`] when Redis cannot be reached in
    /// time; the message was not published then. In memory, never.
    pub async fn publish(
        &self,
        from: &str,
        content: String,
    ) -> Result<Arc<ChatMessage>, ErrorReply> {
        match &self.inner.redis {
            None => Ok(self.publish_here(from, content)),
            // The message comes back through the stream reader, like everyone's.
            Some(redis) => redis.publish(from, content, unix_millis()).await,
        }
    }

    // ANCHOR: publish
    /// The in-memory [`Hub::publish`]: numbers the message itself.
    fn publish_here(&self, from: &str, content: String) -> Arc<ChatMessage> {
        let mut state = self.lock();
        let message = Arc::new(ChatMessage {
            seq: state.last_seq + 1,
            from: from.to_owned(),
            content,
            ts: unix_millis(),
        });
        self.append_locked(&mut state, Arc::clone(&message));
        message
    }

    /// Keeps `message` (numbered `last_seq + 1`) in the history and sends it live.
    fn append_locked(&self, state: &mut State, message: Arc<ChatMessage>) {
        if state.history.len() == self.inner.history_capacity {
            state.history.pop_front();
        }
        state.last_seq = message.seq;
        state.history.push_back(Arc::clone(&message));
        // Still under the lock: a subscriber created under the same lock either saw
        // this message in the history or will receive it live, never both, never neither.
        // `send` fails only when no one is subscribed, which is fine.
        let _ = self.inner.live.send(HubEvent::Message(message));
    }
    // ANCHOR_END: publish

    // ANCHOR: apply
    /// A message numbered by Redis, as this instance's stream reader received it, in
    /// seq order. One that follows the last seq is appended like a local one; one at or
    /// below it was applied already. One that skips seqs means history this instance
    /// can no longer get: Redis lost its data and started a new epoch, or trimmed
    /// messages while this instance could not read. Then the history is emptied and
    /// every subscriber gets a reset before the message, so no client takes the jump
    /// for a continuation.
    pub(crate) fn apply(&self, message: ChatMessage) {
        let mut state = self.lock();
        if message.seq <= state.last_seq {
            return;
        }
        if state.last_seq != 0 && message.seq != state.last_seq + 1 {
            tracing::warn!(
                last_seq = state.last_seq,
                next = message.seq,
                "messages missing from the shared history; subscribers get a reset"
            );
            state.history.clear();
            state.first_seq = message.seq;
            let _ = self.inner.live.send(HubEvent::Reset {
                oldest: message.seq,
            });
        }
        self.append_locked(&mut state, Arc::new(message));
    }
    // ANCHOR_END: apply

    /// The epoch this instance loaded from Redis: the seq of its first message, and of
    /// the newest one numbered (kept or not, for a history that is empty).
    pub(crate) fn set_epoch(&self, first_seq: u64, last_seq: u64) {
        let mut state = self.lock();
        state.first_seq = first_seq;
        if state.history.is_empty() {
            state.last_seq = state.last_seq.max(last_seq);
        }
    }

    /// The other instances' clients, as the presence heartbeat read them from Redis.
    pub(crate) fn set_remote_online(&self, remote_online: usize) {
        let mut state = self.lock();
        if state.remote_online != remote_online {
            state.remote_online = remote_online;
            self.announce_presence_locked(&state);
        }
    }

    /// This process's clients, for the presence heartbeat.
    pub(crate) fn local_online(&self) -> usize {
        self.lock().online
    }

    // ANCHOR: subscribe
    /// A subscription that first replays every retained message with a seq above
    /// `since` (preceded by a reset if some are gone), then yields live events.
    /// `None` means live events only.
    ///
    /// # Subscribe before replay
    ///
    /// Replay comes from the history, live events from the broadcast channel, and a
    /// message published between the two reads could fall between them:
    ///
    /// - replay first, subscribe after: a message published in between is in neither,
    ///   a gap;
    /// - subscribe first, replay after: a message published in between is in both, a
    ///   duplicate.
    ///
    /// So both happen under the lock that [`Hub::publish`] holds while it numbers,
    /// stores and sends: the receiver is created and the history read at one cut, with
    /// every message up to the cut in the replay and every later one in the receiver.
    /// On top of that the subscription drops any live message whose seq is not above
    /// the last one it delivered, which keeps the rule true when it has to catch up
    /// after lagging.
    pub fn subscribe(&self, since: Option<u64>) -> Subscription {
        let state = self.lock();
        self.subscribe_locked(&state, since)
    }

    fn subscribe_locked(&self, state: &State, since: Option<u64>) -> Subscription {
        let receiver = self.inner.live.subscribe();
        let pending = since
            .map(|since| state.replay_after(since))
            .unwrap_or_default();
        Subscription {
            hub: self.clone(),
            receiver,
            pending: pending.into(),
            // Everything up to the cut is either in `pending` or was not asked for; a
            // `since` beyond the cut (say, from before a restart) must not hide new messages.
            delivered: state.last_seq,
            last_seq_at_start: state.last_seq,
            online_at_start: state.total_online(),
            presence: self.inner.presence.subscribe(),
            presence_sent: state.total_online(),
            next_presence_at: Instant::now(),
        }
    }
    // ANCHOR_END: subscribe

    /// The subscription an SSE `/events` request gets, from its `Last-Event-ID` header:
    ///
    /// - missing (or empty): live events only, no reset;
    /// - a number: like [`Hub::subscribe`] with `since` = that number;
    /// - anything else: a reset with the oldest retained seq, then live events only
    ///   (the client's position is unknown, so it starts over from now).
    pub fn subscribe_from_last_event_id(&self, header: Option<&str>) -> Subscription {
        match header {
            None | Some("") => self.subscribe(None),
            Some(text) => match parse_seq(text) {
                Some(since) => self.subscribe(Some(since)),
                None => {
                    let state = self.lock();
                    let mut subscription = self.subscribe_locked(&state, None);
                    subscription.pending.push_front(HubEvent::Reset {
                        oldest: state.oldest_retained(),
                    });
                    subscription
                }
            },
        }
    }

    // ANCHOR: join
    /// Counts a chat client as online until the returned guard is dropped, and tells
    /// every subscriber the new count. The name is `name` if [`valid_name`] accepts it,
    /// else `anon-K`.
    pub fn join(&self, name: Option<&str>) -> Member {
        let name = self.resolve_name(name);
        let mut state = self.lock();
        self.enter_locked(&mut state);
        Member {
            hub: self.clone(),
            name,
        }
    }
    // ANCHOR_END: join

    /// What a WebSocket connection needs, taken at one cut: the [`Member`] and a
    /// [`Subscription`] from `since`.
    ///
    /// The subscription starts before the join, so the new client, like everyone, gets
    /// the presence event of its own arrival (after its replay). Its
    /// [`Subscription::welcome`] counts it as online.
    pub fn connect(&self, name: Option<&str>, since: Option<u64>) -> (Member, Subscription) {
        let name = self.resolve_name(name);
        let mut state = self.lock();
        let mut subscription = self.subscribe_locked(&state, since);
        self.enter_locked(&mut state);
        subscription.online_at_start = state.total_online();
        let member = Member {
            hub: self.clone(),
            name,
        };
        (member, subscription)
    }

    fn enter_locked(&self, state: &mut State) {
        state.online += 1;
        self.announce_presence_locked(state);
    }

    fn leave(&self) {
        let mut state = self.lock();
        state.online -= 1;
        self.announce_presence_locked(&state);
    }

    // ANCHOR: announce_presence
    /// The new count for every subscriber; each takes it when its
    /// [`PRESENCE_INTERVAL`] allows.
    fn announce_presence_locked(&self, state: &State) {
        self.inner.presence.send_replace(state.total_online());
    }
    // ANCHOR_END: announce_presence

    /// `name` if it is valid, else the next `anon-K` (K = 1, 2, ... server-wide).
    ///
    /// With Redis, K is chat-wide too: it comes from blocks of numbers each instance
    /// reserves in Redis ([`RedisHub::next_anonymous`]). An instance that has used up
    /// its numbers while Redis is unreachable names the client `anon-PID-K`, with its
    /// own process id, so that two instances still never give out the same name.
    pub fn resolve_name(&self, name: Option<&str>) -> String {
        valid_name(name).unwrap_or_else(|| {
            let local = || self.inner.anonymous_names.fetch_add(1, Ordering::Relaxed) + 1;
            match self.inner.redis.as_ref().map(RedisHub::next_anonymous) {
                Some(Some(number)) => format!("anon-{number}"),
                Some(None) => format!("anon-{}-{}", std::process::id(), local()),
                None => format!("anon-{}", local()),
            }
        })
    }

    /// Handles the body of `POST /messages`: validates it, names the sender and
    /// publishes. Answers `202 {"seq":N}` on success (see [`Hub::handle_post`]).
    ///
    /// # Errors
    ///
    /// The [`ErrorReply`] of [`parse_post_message`]; nothing is published then.
    pub async fn post_message(&self, body: &[u8]) -> Result<PostAccepted, ErrorReply> {
        self.post_message_as(body, None).await
    }

    /// [`Hub::post_message`], from `name` if given (a session's, with `--auth`),
    /// whatever the body's `"from"` claims.
    ///
    /// # Errors
    ///
    /// As for [`Hub::post_message`].
    pub async fn post_message_as(
        &self,
        body: &[u8],
        name: Option<&str>,
    ) -> Result<PostAccepted, ErrorReply> {
        let post = parse_post_message(body)?;
        // Named only after validation, so a refused post does not use up an anon-K.
        let from = self.resolve_name(name.or(post.from.as_deref()));
        let message = self.publish(&from, post.content).await?;
        Ok(PostAccepted { seq: message.seq })
    }

    /// [`Hub::post_message`] as an HTTP status and a JSON body, ready for any framework:
    /// `(202, {"seq":N})`, or `(400, 413 or 503, {"type":"error",...})`.
    pub async fn handle_post(&self, body: &[u8]) -> (u16, String) {
        self.handle_post_as(body, None).await
    }

    /// [`Hub::handle_post`], from `name` if given ([`Hub::post_message_as`]).
    pub async fn handle_post_as(&self, body: &[u8], name: Option<&str>) -> (u16, String) {
        match self.post_message_as(body, name).await {
            Ok(accepted) => (202, accepted.to_json()),
            Err(reply) => (reply.http_status(), reply.to_json()),
        }
    }

    /// How many chat clients are online (on every instance, with Redis).
    pub fn online(&self) -> usize {
        self.lock().total_online()
    }

    /// The seq of the newest message, 0 if there is none.
    pub fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }

    /// The oldest seq still in the history; when the history is empty, the seq the next
    /// message will get (so always `last_seq() + 1` or less).
    pub fn oldest_retained(&self) -> u64 {
        self.lock().oldest_retained()
    }

    /// The hub's stop flag: clone it into connections, wait on it, trigger it.
    pub fn shutdown_flag(&self) -> Shutdown {
        self.inner.shutdown.clone()
    }

    /// This instance's side of Redis, with `--redis`.
    pub(crate) fn redis(&self) -> Option<&RedisHub> {
        self.inner.redis.as_ref()
    }

    /// Stops the hub (triggers [`Hub::shutdown_flag`]): every [`Subscription::next`]
    /// returns `None` from now on.
    pub fn shut_down(&self) {
        self.inner.shutdown.trigger();
    }
}

impl State {
    fn total_online(&self) -> usize {
        self.online + self.remote_online
    }
}

/// A number as a client sends it: a seq in `since=` or `Last-Event-ID` here, a token
/// index in `Last-Event-ID` for [`crate::tokens`]. Decimal digits only, fitting a u64;
/// leading zeros are fine, a sign or a space is not (`str::parse` alone would take a
/// leading `+`).
pub fn parse_seq(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// A connected chat client. Counts as online until dropped; dropping it tells everyone.
#[derive(Debug)]
pub struct Member {
    hub: Hub,
    name: String,
}

impl Member {
    /// The name the hub gave this client.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Handles a WebSocket text message from this client: publishes it if valid.
    ///
    /// # Errors
    ///
    /// The [`ErrorReply`] to send back to this client only; nothing is published then.
    pub async fn handle_text(&self, text: &str) -> Result<Arc<ChatMessage>, ErrorReply> {
        let content = parse_client_message(text)?;
        self.hub.publish(&self.name, content).await
    }

    // ANCHOR: handle_text_at_rate
    /// Handles a WebSocket text message from this client if its `rate` lets it
    /// through ([`MessageRate`]): what every server's glue calls. Returns the reply
    /// for this client only, if there is one (a refusal of the rate or of the
    /// message); nothing is published then.
    ///
    /// # Errors
    ///
    /// The closing for a client that kept sending too fast.
    pub async fn handle_text_at_rate(
        &self,
        rate: &mut MessageRate,
        text: &str,
    ) -> Result<Option<ErrorReply>, Closing> {
        match rate.check(Instant::now()) {
            Verdict::Accept => Ok(self.handle_text(text).await.err()),
            Verdict::Refuse(reply) => Ok(Some(reply)),
            Verdict::Close(closing) => Err(closing),
        }
    }
    // ANCHOR_END: handle_text_at_rate
}

impl Drop for Member {
    fn drop(&mut self) {
        self.hub.leave();
    }
}

// ANCHOR: subscription
/// One client's view of the chat: an optional reset, the replay, then live events.
#[derive(Debug)]
pub struct Subscription {
    hub: Hub,
    receiver: broadcast::Receiver<HubEvent>,
    /// Events decided under the lock and not yielded yet: reset and replay.
    pending: VecDeque<HubEvent>,
    /// The highest seq this subscription has delivered or queued; live messages at or
    /// below it are duplicates.
    delivered: u64,
    last_seq_at_start: u64,
    online_at_start: usize,
    /// The whole chat's online count, latest value only.
    presence: watch::Receiver<usize>,
    /// The count this subscriber last handed on (or had in its welcome).
    presence_sent: usize,
    /// When it may hand on the next one: [`PRESENCE_INTERVAL`] after the last.
    next_presence_at: Instant,
}

/// What [`Subscription::accept`] made of one received event.
enum Accepted {
    /// Hand it to the client.
    Deliver(HubEvent),
    /// Nothing to hand over (a duplicate, or a catch-up that queued the missed events).
    Skip,
    /// The hub is gone.
    End,
}

impl Subscription {
    /// The next event, or `None` once the hub is shut down.
    ///
    /// Cancel-safe: it can be one branch of a `tokio::select!` loop without losing
    /// events.
    ///
    /// When the subscriber has fallen so far behind that the broadcast buffer dropped
    /// events for it (`Lagged`), it catches up from the history: a reset first if some
    /// of what it missed has left the ring too, then every retained message it has not
    /// seen. It never skips messages silently.
    ///
    /// Presence is the exception, on purpose: when the count differs from the one
    /// this subscriber last handed on, it yields the latest count, at once if its last
    /// presence was [`PRESENCE_INTERVAL`] ago or more, else when that interval is over.
    /// Counts in between are never seen; the last one always is.
    pub async fn next(&mut self) -> Option<HubEvent> {
        let shutdown = self.hub.shutdown_flag();
        loop {
            if shutdown.is_triggered() {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let online = *self.presence.borrow_and_update();
            let presence_waiting = online != self.presence_sent;
            if presence_waiting && Instant::now() >= self.next_presence_at {
                return Some(self.presence_event(online));
            }
            let received = tokio::select! {
                biased;
                () = shutdown.wait() => return None,
                // A new count, not yet allowed out: wake when it is.
                () = tokio::time::sleep_until(self.next_presence_at), if presence_waiting => continue,
                // No count waiting: wake when one is.
                changed = self.presence.changed(), if !presence_waiting => match changed {
                    Ok(()) => continue,
                    Err(_) => return None,
                },
                received = self.receiver.recv() => received,
            };
            match self.accept(received) {
                Accepted::Deliver(event) => return Some(event),
                Accepted::Skip => {}
                Accepted::End => return None,
            }
        }
    }

    /// `first`, followed by the events that are ready now, without waiting: at most
    /// `limit` in all.
    ///
    /// A connection that writes each of these and then flushes once sends a burst
    /// with one system call instead of one per message; the limit keeps one burst
    /// from holding the connection's task for long. What is not ready stays for
    /// [`Subscription::next`], with the same rules: in order, no duplicate, catching
    /// up after `Lagged`.
    pub fn take_burst(&mut self, first: HubEvent, limit: usize) -> Vec<HubEvent> {
        let shutdown = self.hub.shutdown_flag();
        let mut burst = vec![first];
        while burst.len() < limit && !shutdown.is_triggered() {
            if let Some(event) = self.pending.pop_front() {
                burst.push(event);
                continue;
            }
            let received = match self.receiver.try_recv() {
                Ok(event) => Ok(event),
                Err(TryRecvError::Lagged(skipped)) => Err(RecvError::Lagged(skipped)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
                Err(TryRecvError::Empty) => break,
            };
            match self.accept(received) {
                Accepted::Deliver(event) => burst.push(event),
                Accepted::Skip => {}
                Accepted::End => break,
            }
        }
        burst
    }

    /// What one received event means for this subscriber.
    fn accept(&mut self, received: Result<HubEvent, RecvError>) -> Accepted {
        match received {
            Ok(HubEvent::Message(message)) => {
                if message.seq <= self.delivered {
                    return Accepted::Skip;
                }
                self.delivered = message.seq;
                Accepted::Deliver(HubEvent::Message(message))
            }
            Ok(event) => Accepted::Deliver(event),
            Err(RecvError::Lagged(skipped)) => {
                tracing::debug!(skipped, "subscriber lagged, catching up from history");
                self.catch_up();
                Accepted::Skip
            }
            Err(RecvError::Closed) => Accepted::End,
        }
    }

    /// After `Lagged`: a fresh receiver and the missed messages, at one cut (the same
    /// rule as [`Hub::subscribe`]).
    fn catch_up(&mut self) {
        let state = self.hub.lock();
        self.receiver = self.hub.inner.live.subscribe();
        self.pending.extend(state.replay_after(self.delivered));
        self.delivered = self.delivered.max(state.last_seq);
    }
    // ANCHOR_END: subscription

    // ANCHOR: presence_event
    /// Hands on `online` and starts the interval before the next count.
    fn presence_event(&mut self, online: usize) -> HubEvent {
        self.presence_sent = online;
        self.next_presence_at = Instant::now() + PRESENCE_INTERVAL;
        HubEvent::Presence { online }
    }
    // ANCHOR_END: presence_event

    /// The `welcome` message for a WebSocket client named `you`, with the online count
    /// and the last seq as they were when this subscription started (so the welcome,
    /// the replay and the live messages agree).
    pub fn welcome(&self, you: &str) -> ServerMessage {
        ServerMessage::Welcome {
            you: you.to_owned(),
            online: self.online_at_start,
            seq: self.last_seq_at_start,
        }
    }

    /// The subscription as a `Stream`, for frameworks that take one (SSE responses).
    /// It ends when the hub shuts down.
    pub fn into_stream(self) -> impl Stream<Item = HubEvent> + Send + 'static {
        futures_util::stream::unfold(self, |mut subscription| async move {
            let event = subscription.next().await?;
            Some((event, subscription))
        })
    }

    /// [`Subscription::into_stream`], ending also when `ended` resolves: an event
    /// stream of a session that was signed out ([`crate::auth::Identity::ended`]).
    pub fn into_stream_until(
        self,
        ended: impl Future<Output = ()> + Send + 'static,
    ) -> impl Stream<Item = HubEvent> + Send + 'static {
        futures_util::StreamExt::take_until(self.into_stream(), ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn small_hub(history_capacity: usize, broadcast_capacity: usize) -> Hub {
        Hub::with_options(HubOptions {
            history_capacity,
            broadcast_capacity,
        })
    }

    async fn next(subscription: &mut Subscription) -> HubEvent {
        tokio::time::timeout(Duration::from_secs(5), subscription.next())
            .await
            .expect("an event within 5 s")
            .expect("the hub is running")
    }

    /// Nothing arrives within a short while.
    async fn assert_quiet(subscription: &mut Subscription) {
        let result = tokio::time::timeout(Duration::from_millis(50), subscription.next()).await;
        assert!(result.is_err(), "unexpected event {result:?}");
    }

    fn seq(event: &HubEvent) -> u64 {
        match event {
            HubEvent::Message(message) => message.seq,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn publish_many(hub: &Hub, count: u64) {
        for number in 1..=count {
            hub.publish_here("p", number.to_string());
        }
    }

    #[tokio::test]
    async fn seqs_start_at_one_and_go_up_by_one() {
        let hub = Hub::new();
        assert_eq!(hub.last_seq(), 0);
        assert_eq!(hub.oldest_retained(), 1);
        let first = hub.publish_here("ann", "a".into());
        let second = hub.publish_here("bob", "b".into());
        assert_eq!((first.seq, second.seq), (1, 2));
        assert_eq!((first.from.as_str(), first.content.as_str()), ("ann", "a"));
        assert!(second.ts >= first.ts && first.ts > 1_600_000_000_000);
        assert_eq!(hub.last_seq(), 2);
        assert_eq!(hub.oldest_retained(), 1);
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_message_in_order() {
        let hub = Hub::new();
        let mut subscribers: Vec<_> = (0..3).map(|_| hub.subscribe(None)).collect();
        publish_many(&hub, 5);
        for subscriber in &mut subscribers {
            for expected in 1..=5 {
                let event = next(subscriber).await;
                assert_eq!(seq(&event), expected);
                let HubEvent::Message(message) = event else {
                    unreachable!()
                };
                assert_eq!(message.content, expected.to_string());
            }
            assert_quiet(subscriber).await;
        }
    }

    #[tokio::test]
    async fn presence_on_join_and_on_drop() {
        let hub = Hub::new();
        let mut watcher = hub.subscribe(None);
        let ann = hub.join(Some("ann"));
        assert_eq!(ann.name(), "ann");
        assert_eq!(hub.online(), 1);
        assert_eq!(next(&mut watcher).await, HubEvent::Presence { online: 1 });
        let bob = hub.join(Some("bob"));
        assert_eq!(next(&mut watcher).await, HubEvent::Presence { online: 2 });
        drop(ann);
        assert_eq!(hub.online(), 1);
        assert_eq!(next(&mut watcher).await, HubEvent::Presence { online: 1 });
        drop(bob);
        assert_eq!(next(&mut watcher).await, HubEvent::Presence { online: 0 });
        assert_eq!(hub.online(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn presence_is_coalesced_to_the_latest_count_once_per_interval() {
        let hub = Hub::new();
        let mut watcher = hub.subscribe(None);
        // A hundred joins before the watcher looks: one event, the latest count.
        let crowd: Vec<_> = (0..100).map(|_| hub.join(None)).collect();
        assert_eq!(next(&mut watcher).await, HubEvent::Presence { online: 100 });
        let started = Instant::now();
        let mut more: Vec<_> = (0..50).map(|_| hub.join(None)).collect();
        // Messages are not held back by a presence that has to wait.
        hub.publish_here("ann", "hi".into());
        assert_eq!(seq(&next(&mut watcher).await), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
        // The next count waits for the interval, and is the latest one.
        more.truncate(30);
        assert_eq!(next(&mut watcher).await, HubEvent::Presence { online: 130 });
        assert_eq!(started.elapsed(), PRESENCE_INTERVAL);
        // A count that comes back to the one last handed on is no news.
        let visitor = hub.join(None);
        drop(visitor);
        let result = tokio::time::timeout(PRESENCE_INTERVAL * 4, watcher.next()).await;
        assert!(result.is_err(), "unexpected event {result:?}");
        drop(crowd);
        assert_eq!(next(&mut watcher).await, HubEvent::Presence { online: 30 });
    }

    #[tokio::test]
    async fn applied_messages_that_skip_seqs_reset_the_subscribers() {
        let message = |seq: u64| ChatMessage {
            seq,
            from: "remote".into(),
            content: seq.to_string(),
            ts: 1,
        };
        let hub = Hub::new();
        // The first message an instance ever applies starts its history, wherever.
        hub.apply(message(10));
        assert_eq!((hub.oldest_retained(), hub.last_seq()), (10, 10));
        let mut live = hub.subscribe(Some(10));
        hub.apply(message(11));
        hub.apply(message(11));
        hub.apply(message(9));
        // A new epoch (Redis restarted empty): far above, and a reset before it.
        hub.apply(message(5000));
        assert_eq!(seq(&next(&mut live).await), 11);
        assert_eq!(next(&mut live).await, HubEvent::Reset { oldest: 5000 });
        assert_eq!(seq(&next(&mut live).await), 5000);
        assert_quiet(&mut live).await;
        // A client resuming from the old epoch hears of the gap too.
        let mut resumed = hub.subscribe(Some(11));
        assert_eq!(next(&mut resumed).await, HubEvent::Reset { oldest: 5000 });
        assert_eq!(seq(&next(&mut resumed).await), 5000);
        assert_eq!(hub.oldest_retained(), 5000);
    }

    #[tokio::test]
    async fn connect_sees_its_own_join_after_the_replay() {
        let hub = Hub::new();
        let _ann = hub.join(Some("ann"));
        publish_many(&hub, 2);
        let (bob, mut subscription) = hub.connect(Some("bob"), Some(0));
        assert_eq!(
            subscription.welcome(bob.name()),
            ServerMessage::Welcome {
                you: "bob".into(),
                online: 2,
                seq: 2
            }
        );
        assert_eq!(seq(&next(&mut subscription).await), 1);
        assert_eq!(seq(&next(&mut subscription).await), 2);
        assert_eq!(
            next(&mut subscription).await,
            HubEvent::Presence { online: 2 }
        );
        let sent = bob
            .handle_text(r#"{"type":"message","content":"hi"}"#)
            .await
            .unwrap();
        assert_eq!((sent.seq, sent.from.as_str()), (3, "bob"));
        assert_eq!(seq(&next(&mut subscription).await), 3);
        let refused = bob.handle_text(r#"{"type":"message","content":""}"#).await;
        assert_eq!(refused.unwrap_err().code, crate::messages::ErrorCode::Empty);
        assert_eq!(hub.last_seq(), 3);
    }

    #[tokio::test]
    async fn invalid_names_become_numbered_anons() {
        let hub = Hub::new();
        assert_eq!(hub.join(None).name(), "anon-1");
        assert_eq!(hub.join(Some("")).name(), "anon-2");
        assert_eq!(hub.join(Some("ann")).name(), "ann");
        assert_eq!(hub.join(Some(&"x".repeat(33))).name(), "anon-3");
        assert_eq!(hub.join(Some(&"x".repeat(32))).name(), "x".repeat(32));
        assert_eq!(hub.join(Some("a\u{7}b")).name(), "anon-4");
        // POST shares the counter.
        assert_eq!(
            hub.post_message(br#"{"content":"hi"}"#).await.unwrap().seq,
            1
        );
        let mut all = hub.subscribe(Some(0));
        let HubEvent::Message(message) = next(&mut all).await else {
            panic!("expected the posted message")
        };
        assert_eq!(message.from, "anon-5");
        let (member, _) = hub.connect(Some("\n"), None);
        assert_eq!(member.name(), "anon-6");
    }

    #[tokio::test]
    async fn post_answers() {
        let hub = Hub::new();
        assert_eq!(
            hub.handle_post(br#"{"content":"hi","from":"ann"}"#).await,
            (202, r#"{"seq":1}"#.to_string())
        );
        let (status, body) = hub.handle_post(b"{").await;
        assert_eq!(status, 400);
        assert!(body.starts_with(r#"{"type":"error","code":"bad_json","message":"#));
        let (status, _) = hub.handle_post(br#"{"content":""}"#).await;
        assert_eq!(status, 400);
        let long = format!(r#"{{"content":"{}"}}"#, "x".repeat(4097));
        let (status, body) = hub.handle_post(long.as_bytes()).await;
        assert_eq!(status, 413);
        assert!(body.contains(r#""code":"too_long""#));
        // Refused posts neither publish nor use up anon numbers.
        assert_eq!(hub.last_seq(), 1);
        assert_eq!(hub.handle_post(br#"{"content":"x"}"#).await.0, 202);
        let mut all = hub.subscribe(Some(0));
        next(&mut all).await;
        let HubEvent::Message(message) = next(&mut all).await else {
            panic!()
        };
        assert_eq!(message.from, "anon-1");
    }

    #[tokio::test]
    async fn since_replays_what_follows_then_goes_live() {
        let hub = small_hub(10, 16);
        publish_many(&hub, 5);
        let mut subscription = hub.subscribe(Some(2));
        assert_eq!(
            subscription.welcome("x"),
            ServerMessage::Welcome {
                you: "x".into(),
                online: 0,
                seq: 5
            }
        );
        hub.publish_here("p", "6".into());
        for expected in 3..=6 {
            assert_eq!(seq(&next(&mut subscription).await), expected);
        }
        assert_quiet(&mut subscription).await;
    }

    #[tokio::test]
    async fn since_zero_replays_everything_without_reset_when_all_is_kept() {
        let hub = small_hub(10, 16);
        publish_many(&hub, 10);
        let mut subscription = hub.subscribe(Some(0));
        for expected in 1..=10 {
            assert_eq!(seq(&next(&mut subscription).await), expected);
        }
        assert_quiet(&mut subscription).await;
    }

    #[tokio::test]
    async fn since_older_than_the_ring_resets_first() {
        let hub = small_hub(10, 16);
        publish_many(&hub, 25);
        assert_eq!(hub.oldest_retained(), 16);
        // since 14: 15 is gone, reset.
        let mut subscription = hub.subscribe(Some(14));
        assert_eq!(
            next(&mut subscription).await,
            HubEvent::Reset { oldest: 16 }
        );
        for expected in 16..=25 {
            assert_eq!(seq(&next(&mut subscription).await), expected);
        }
        assert_quiet(&mut subscription).await;
        // since 15: the next one needed is 16, still there: no reset.
        let mut subscription = hub.subscribe(Some(15));
        assert_eq!(seq(&next(&mut subscription).await), 16);
    }

    #[tokio::test]
    async fn since_beyond_the_last_seq_is_live_only() {
        let hub = small_hub(10, 16);
        publish_many(&hub, 3);
        let mut subscription = hub.subscribe(Some(500));
        assert_quiet(&mut subscription).await;
        // A since from before a restart must not hide the new messages.
        hub.publish_here("p", "4".into());
        assert_eq!(seq(&next(&mut subscription).await), 4);
    }

    #[tokio::test]
    async fn last_event_id_rules() {
        let hub = small_hub(10, 16);
        publish_many(&hub, 15);
        // Missing or empty: live only.
        for header in [None, Some("")] {
            let mut subscription = hub.subscribe_from_last_event_id(header);
            assert_quiet(&mut subscription).await;
        }
        // A number: like since.
        let mut subscription = hub.subscribe_from_last_event_id(Some("13"));
        assert_eq!(seq(&next(&mut subscription).await), 14);
        assert_eq!(seq(&next(&mut subscription).await), 15);
        let mut subscription = hub.subscribe_from_last_event_id(Some("2"));
        assert_eq!(next(&mut subscription).await, HubEvent::Reset { oldest: 6 });
        assert_eq!(seq(&next(&mut subscription).await), 6);
        // Not a number: reset, then only live.
        for header in ["abc", "-1", "+3", " 3", "99999999999999999999999"] {
            let mut subscription = hub.subscribe_from_last_event_id(Some(header));
            assert_eq!(
                next(&mut subscription).await,
                HubEvent::Reset { oldest: 6 },
                "{header:?}"
            );
            assert_quiet(&mut subscription).await;
        }
        let mut subscription = hub.subscribe_from_last_event_id(Some("x"));
        hub.publish_here("p", "16".into());
        // The reset was decided at subscribe time, before 6 left the ring.
        assert_eq!(next(&mut subscription).await, HubEvent::Reset { oldest: 6 });
        assert_eq!(seq(&next(&mut subscription).await), 16);
        assert_quiet(&mut subscription).await;
        assert_eq!(
            next(&mut hub.subscribe_from_last_event_id(Some("y"))).await,
            HubEvent::Reset { oldest: 7 }
        );
    }

    #[tokio::test]
    async fn a_lagged_subscriber_catches_up_without_gap_or_duplicate() {
        let hub = small_hub(1000, 4);
        let mut subscription = hub.subscribe(None);
        publish_many(&hub, 100);
        for expected in 1..=100 {
            assert_eq!(seq(&next(&mut subscription).await), expected);
        }
        hub.publish_here("p", "101".into());
        assert_eq!(seq(&next(&mut subscription).await), 101);
        assert_quiet(&mut subscription).await;
    }

    #[tokio::test]
    async fn take_burst_takes_what_is_waiting_up_to_the_limit_and_leaves_the_rest() {
        let hub = Hub::new();
        let mut subscription = hub.subscribe(None);
        publish_many(&hub, 10);
        let first = next(&mut subscription).await;
        let burst = subscription.take_burst(first, 4);
        assert_eq!(burst.iter().map(seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        let first = next(&mut subscription).await;
        let burst = subscription.take_burst(first, 100);
        assert_eq!(
            burst.iter().map(seq).collect::<Vec<_>>(),
            [5, 6, 7, 8, 9, 10]
        );
        // Nothing waiting: the burst is the one event it was given.
        hub.publish_here("p", "11".into());
        let first = next(&mut subscription).await;
        assert_eq!(subscription.take_burst(first, 100).len(), 1);
        assert_quiet(&mut subscription).await;
    }

    #[tokio::test]
    async fn take_burst_after_a_lag_catches_up_without_gap_or_duplicate() {
        let hub = small_hub(1000, 4);
        let mut subscription = hub.subscribe(None);
        publish_many(&hub, 50);
        let mut seen = Vec::new();
        while seen.len() < 50 {
            let first = next(&mut subscription).await;
            for event in subscription.take_burst(first, 7) {
                if let HubEvent::Message(message) = event {
                    seen.push(message.seq);
                }
            }
        }
        assert_eq!(seen, (1..=50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_lagged_subscriber_that_missed_more_than_the_ring_gets_a_reset() {
        let hub = small_hub(10, 4);
        let mut subscription = hub.subscribe(None);
        // Read one, so the reset is about what came after it.
        hub.publish_here("p", "1".into());
        assert_eq!(seq(&next(&mut subscription).await), 1);
        publish_many(&hub, 99);
        assert_eq!(hub.last_seq(), 100);
        assert_eq!(
            next(&mut subscription).await,
            HubEvent::Reset { oldest: 91 }
        );
        for expected in 91..=100 {
            assert_eq!(seq(&next(&mut subscription).await), expected);
        }
        assert_quiet(&mut subscription).await;
    }

    #[tokio::test]
    async fn a_lagged_subscriber_still_in_replay_loses_nothing() {
        let hub = small_hub(1000, 4);
        publish_many(&hub, 20);
        let mut subscription = hub.subscribe(Some(10));
        publish_many(&hub, 30);
        for expected in 11..=50 {
            assert_eq!(seq(&next(&mut subscription).await), expected);
        }
        assert_quiet(&mut subscription).await;
    }

    #[tokio::test]
    async fn shut_down_ends_every_subscription() {
        let hub = Hub::new();
        hub.publish_here("p", "1".into());
        let mut waiting = hub.subscribe(None);
        let mut with_replay = hub.subscribe(Some(0));
        let task = tokio::spawn(async move { waiting.next().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        hub.shut_down();
        let result = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(result, None);
        assert_eq!(with_replay.next().await, None);
        assert_eq!(hub.subscribe(None).next().await, None);
        assert!(hub.shutdown_flag().is_triggered());
    }

    #[tokio::test]
    async fn into_stream_yields_the_same_events_and_ends_on_shut_down() {
        use futures_util::StreamExt;
        let hub = Hub::new();
        publish_many(&hub, 2);
        let stream = hub.subscribe(Some(0)).into_stream();
        let mut stream = std::pin::pin!(stream);
        assert_eq!(seq(&stream.next().await.unwrap()), 1);
        assert_eq!(seq(&stream.next().await.unwrap()), 2);
        hub.shut_down();
        assert_eq!(stream.next().await, None);
    }

    #[test]
    fn seq_parsing() {
        assert_eq!(parse_seq("0"), Some(0));
        assert_eq!(parse_seq("42"), Some(42));
        assert_eq!(parse_seq("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_seq("007"), Some(7));
        assert_eq!(parse_seq("00"), Some(0));
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1.0",
            "1_000",
            "x",
            "٣",
            "18446744073709551616",
        ] {
            assert_eq!(parse_seq(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn since_max_does_not_overflow() {
        let hub = small_hub(10, 16);
        publish_many(&hub, 3);
        let subscription = hub.subscribe(Some(u64::MAX));
        assert!(subscription.pending.is_empty());
    }

    /// A tiny deterministic generator, so the test needs no randomness crate.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    /// Reads `subscription` until it has delivered seq `last`, asserting that the
    /// messages are exactly `since + 1, since + 2, ..., last`.
    async fn assert_contiguous(subscription: &mut Subscription, since: u64, last: u64) {
        let mut expected = since + 1;
        while expected <= last {
            let event = subscription.next().await.expect("hub running");
            let HubEvent::Message(message) = event else {
                panic!("only messages expected, nobody joins here: {event:?}");
            };
            assert_eq!(message.seq, expected, "since {since}");
            expected += 1;
        }
    }

    /// Publishes `total` messages from a thread of its own, flat out but for a pause of
    /// a few microseconds each: fast enough to race the subscribers, slow enough that
    /// they get scheduled while it is still running.
    fn spawn_publisher(hub: &Hub, total: u64) -> tokio::task::JoinHandle<()> {
        let hub = hub.clone();
        tokio::task::spawn_blocking(move || {
            for number in 1..=total {
                let published = std::time::Instant::now();
                hub.publish_here("p", number.to_string());
                while published.elapsed() < Duration::from_micros(3) {
                    std::hint::spin_loop();
                }
            }
        })
    }

    // ANCHOR: concurrency_test
    /// Subscribers join at random moments with random `since` values while a publisher
    /// runs; each must see exactly since+1, since+2, ..., TOTAL.
    async fn subscribers_racing_a_publisher(broadcast_capacity: usize) {
        const TOTAL: u64 = 20_000;
        const SUBSCRIBERS: u64 = 8;
        let hub = small_hub(TOTAL as usize, broadcast_capacity);
        let publisher = spawn_publisher(&hub, TOTAL);

        let mut subscribers = Vec::new();
        for index in 0..SUBSCRIBERS {
            let hub = hub.clone();
            subscribers.push(tokio::spawn(async move {
                let mut random = XorShift(0x9E37_79B9_7F4A_7C15 ^ (index + 1));
                tokio::time::sleep(Duration::from_millis(random.below(40))).await;
                let since = random.below(hub.last_seq() + 1);
                let mut subscription = hub.subscribe(Some(since));
                assert_contiguous(&mut subscription, since, TOTAL).await;
            }));
        }

        tokio::time::timeout(Duration::from_secs(60), async {
            publisher.await.unwrap();
            for subscriber in subscribers {
                subscriber.await.unwrap();
            }
        })
        .await
        .expect("finished in time");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscribe_before_replay_under_concurrency() {
        subscribers_racing_a_publisher(HubOptions::DEFAULT_BROADCAST_CAPACITY).await;
    }
    // ANCHOR_END: concurrency_test

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscribe_before_replay_under_concurrency_with_lagging() {
        subscribers_racing_a_publisher(8).await;
    }

    /// A bug in the subscribe-before-replay rule shows only when a message is published
    /// in the instant between reading the history and subscribing. Two tasks subscribe
    /// over and over just behind the newest message and check the next few seqs, so
    /// that such an instant is hit many times.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscribe_before_replay_right_behind_the_publisher() {
        const TOTAL: u64 = 60_000;
        const PROBE_LENGTH: u64 = 8;
        let hub = small_hub(TOTAL as usize, HubOptions::DEFAULT_BROADCAST_CAPACITY);
        let publisher = spawn_publisher(&hub, TOTAL);
        let mut probes = Vec::new();
        for index in 0..2 {
            let hub = hub.clone();
            probes.push(tokio::spawn(async move {
                let mut random = XorShift(0x2545_F491_4F6C_DD1D ^ (index + 1));
                let mut subscriptions = 0_u64;
                while hub.last_seq() < TOTAL {
                    let since = hub.last_seq().saturating_sub(random.below(3));
                    let mut subscription = hub.subscribe(Some(since));
                    let last = TOTAL.min(since + PROBE_LENGTH);
                    assert_contiguous(&mut subscription, since, last).await;
                    subscriptions += 1;
                }
                subscriptions
            }));
        }
        tokio::time::timeout(Duration::from_secs(60), async {
            publisher.await.unwrap();
            let mut subscriptions = 0;
            for probe in probes {
                subscriptions += probe.await.unwrap();
            }
            assert!(subscriptions > 100, "only {subscriptions} probes ran");
        })
        .await
        .expect("finished in time");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            /// The replay for any since, ring size and message count: a reset exactly
            /// when something after `since` is gone, then the retained messages after it.
            #[test]
            fn replay_matches_a_model(capacity in 1_usize..20, count in 0_u64..60, since in 0_u64..70) {
                let hub = small_hub(capacity, 4);
                publish_many(&hub, count);
                let oldest = count.saturating_sub(capacity as u64) + 1;
                let mut expected = Vec::new();
                if since + 1 < oldest {
                    expected.push(HubEvent::Reset { oldest });
                }
                let subscription = hub.subscribe(Some(since));
                let replayed: Vec<_> = subscription.pending.iter().cloned().collect();
                for seq in (since + 1).max(oldest)..=count {
                    expected.push(HubEvent::Message(Arc::new(ChatMessage {
                        seq,
                        from: "p".into(),
                        content: seq.to_string(),
                        ts: match &replayed.iter().find(|event| matches!(event, HubEvent::Message(m) if m.seq == seq)) {
                            Some(HubEvent::Message(message)) => message.ts,
                            _ => 0,
                        },
                    })));
                }
                prop_assert_eq!(replayed, expected);
                prop_assert_eq!(hub.oldest_retained(), oldest);
            }
        }
    }
}
