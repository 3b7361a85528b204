//! The hub of several instances: seqs, history and presence in Redis (`--redis URL`).
//!
//! Every instance keeps the [`Hub`] it would keep alone (the ring of the last 1000
//! messages, the broadcast, the subscriptions with their no-gap, no-duplicate rules),
//! and Redis decides only what must be decided once for all of them:
//!
//! - **The seq.** [`RedisHub::publish`] runs one Lua script ([`PUBLISH_SCRIPT`]) that
//!   increments the counter and appends the message to a Redis stream, atomically.
//!   No instance numbers anything itself, so every instance has the same number for
//!   the same message.
//! - **The history.** The stream keeps the last 1000 messages (`XADD ... MAXLEN`),
//!   each under the id `0-SEQ`. Each instance reads it in order with a blocking
//!   `XREAD` from the last id it has, and feeds what it reads to [`Hub::apply`], the
//!   one way messages reach its subscribers: its own included, so that all see one
//!   order. An instance started later loads the newest 1000 first
//!   ([`RedisHub::load_into`]), so `since=` and `Last-Event-ID` resume on any instance.
//!   Plain pub/sub would lose both: a message published while an instance was not
//!   subscribed (starting, or reconnecting) is gone for it, and a client that
//!   resumes there would get a silent gap.
//! - **The epoch.** When the script finds no counter (a new Redis, or one restarted
//!   empty) it starts it at Redis's clock in milliseconds times 1000, not at 0. Seqs
//!   of a new epoch are therefore far above any seq of an earlier one: a client that
//!   resumes with an old seq is below the oldest retained message and gets the
//!   `reset` the protocol defines, and an instance that reads the jump resets its
//!   subscribers ([`Hub::apply`]). This holds while Redis's clock does not go back and
//!   no epoch averaged 1000 messages a millisecond; seqs stay below 2^53, exact in
//!   JavaScript, until the year 2255.
//! - **Presence.** Each instance writes its own count under a key that expires after
//!   [`INSTANCE_TTL`] and refreshes it every [`PRESENCE_INTERVAL`]; the same script
//!   ([`PRESENCE_SCRIPT`]) sums the counts of the other instances whose keys are
//!   alive. An instance that dies stops being counted at most [`INSTANCE_TTL`] +
//!   [`PRESENCE_INTERVAL`] later, and its clients hear of it one presence interval
//!   after that.
//!
//! When Redis cannot be reached, open connections stay open and keep their
//! subscriptions, new messages are refused with `unavailable` (503 on POST), the
//! outage is logged once, and both tasks reconnect with backoff; the reader resumes
//! from the last id it has, so nothing is delivered twice and nothing is skipped
//! silently.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Script};

use crate::hub::{HubOptions, PRESENCE_INTERVAL};
use crate::messages::{ChatMessage, ErrorCode, ErrorReply};
use crate::{Hub, hub};

// ANCHOR: timings
/// How long [`Hub::start`] waits for Redis to answer before the server gives up.
pub const STARTUP_WAIT: Duration = Duration::from_secs(5);

/// How long a message may wait for Redis before it is refused as `unavailable`. The
/// script refuses to run after this deadline too, so a message that Redis gets to
/// late (it was frozen, say) is never published after its sender was told it failed.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// How long an instance stays counted in `online` after its last presence refresh.
pub const INSTANCE_TTL: Duration = Duration::from_secs(2);

/// How long the stream reader's `XREAD` waits for new messages before asking again;
/// it also bounds how long the reader takes to notice a Redis that vanished.
const READ_BLOCK: Duration = Duration::from_secs(1);

/// How much longer than [`PUBLISH_TIMEOUT`] an instance waits for the script's answer:
/// an answer on its way is still taken, and one that does not come in that time means
/// the script refused to run (its deadline had passed).
const REPLY_MARGIN: Duration = Duration::from_millis(500);

/// The longest pause between two attempts to reach Redis again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
// ANCHOR_END: timings

/// The keys, one set per Redis database: a chat per Redis.
const EPOCH_KEY: &str = "wsse:chat:epoch";
const ANONYMOUS_KEY: &str = "wsse:chat:anonymous";

/// How many `anon-K` numbers an instance reserves at a time (`INCRBY`); it reserves
/// the next block when half of the last one is used.
const ANONYMOUS_BLOCK: u64 = 100;
const LOG_KEY: &str = "wsse:chat:log";
const ONLINE_KEY: &str = "wsse:chat:online";
const INSTANCE_KEY_PREFIX: &str = "wsse:instance:";

// ANCHOR: start_epoch
/// The Lua that both scripts start with: Redis's clock in ms, and the epoch (the hash
/// KEYS[1]: `first`, the seq of its first message, and `last`, of its newest) started
/// if it is missing. A macro, so that the scripts can be `concat!`ed from it.
macro_rules! start_epoch_lua {
    () => {
        r"
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- A new epoch: start far above every seq an earlier one can have used.
  local base = now_ms * 1000
  redis.call('HSET', KEYS[1], 'first', string.format('%.0f', base + 1),
    'last', string.format('%.0f', base))
end
"
    };
}
// ANCHOR_END: start_epoch

/// Starts the epoch if there is none (a new or emptied Redis) and returns its first
/// seq and the newest seq used. Run when an instance loads, so that it knows where
/// the epoch starts (a client resuming with `since=0` then misses nothing) and its
/// first message continues from the counter instead of jumping from 0.
pub const EPOCH_SCRIPT: &str = concat!(
    start_epoch_lua!(),
    "return redis.call('HMGET', KEYS[1], 'first', 'last')"
);

// ANCHOR: publish_script
/// Numbers and keeps one message, atomically: KEYS = the epoch and the stream,
/// ARGV = from, content, ts, the deadline (Unix ms) and the history size. Returns
/// the seq. Starts a new epoch first, like [`EPOCH_SCRIPT`], if Redis lost its data.
pub const PUBLISH_SCRIPT: &str = concat!(
    start_epoch_lua!(),
    r"
if now_ms > tonumber(ARGV[4]) then
  return redis.error_reply('EXPIRED the sender stopped waiting for this message')
end
local seq = redis.call('HINCRBY', KEYS[1], 'last', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], string.format('0-%.0f', seq),
  'from', ARGV[1], 'content', ARGV[2], 'ts', ARGV[3])
return seq
"
);
// ANCHOR_END: publish_script

// ANCHOR: presence_script
/// Refreshes this instance's count and sums the others': KEYS = the hash of counts,
/// ARGV = this instance's id, its count, the key lifetime (ms) and the key prefix.
/// An instance whose key has expired is removed from the hash and not counted.
pub const PRESENCE_SCRIPT: &str = r"
redis.call('SET', ARGV[4] .. ARGV[1], ARGV[2], 'PX', ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local others = 0
local counts = redis.call('HGETALL', KEYS[1])
for i = 1, #counts, 2 do
  if counts[i] ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[4] .. counts[i]) == 1 then
      others = others + tonumber(counts[i + 1])
    else
      redis.call('HDEL', KEYS[1], counts[i])
    end
  end
end
return others
";
// ANCHOR_END: presence_script

/// This instance's side of the shared hub. Cheap to clone.
#[derive(Clone)]
pub struct RedisHub {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// The connection for commands that answer at once (publish, presence); a new
    /// one is made after a failure.
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    publish_script: Script,
    presence_script: Script,
    /// This instance in the presence hash: its pid and start time, unique enough.
    instance: String,
    /// False while Redis is unreachable, so the outage is logged once, not per try.
    available: AtomicBool,
    /// Where this instance's reader stands: the seq of the newest message it applied.
    read_position: Mutex<u64>,
    /// The `anon-K` numbers this instance has reserved and not given out yet.
    anonymous: Mutex<AnonymousNumbers>,
}

/// Reserved blocks of `anon-K` numbers, each `(next, last)`, oldest first.
#[derive(Debug, Default)]
struct AnonymousNumbers {
    blocks: std::collections::VecDeque<(u64, u64)>,
    /// A reservation is on its way; do not ask for another.
    reserving: bool,
}

impl std::fmt::Debug for RedisHub {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisHub")
            .field("instance", &self.inner.instance)
            .field("available", &self.inner.available.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisHub {
    /// Opens the connection to `url`, retrying until [`STARTUP_WAIT`] has passed.
    ///
    /// # Errors
    ///
    /// A malformed URL, or a Redis that did not answer `PING` in time.
    pub(crate) async fn connect(url: &str) -> std::io::Result<RedisHub> {
        let client = Client::open(url).map_err(|error| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("--redis {url}: {error}"),
            )
        })?;
        let hub = RedisHub {
            inner: Arc::new(Inner {
                client,
                connection: tokio::sync::Mutex::new(None),
                publish_script: Script::new(PUBLISH_SCRIPT),
                presence_script: Script::new(PRESENCE_SCRIPT),
                instance: format!("{}-{}", std::process::id(), hub::unix_millis()),
                available: AtomicBool::new(true),
                read_position: Mutex::new(0),
                anonymous: Mutex::new(AnonymousNumbers::default()),
            }),
        };
        let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
        loop {
            let answer = async {
                let mut connection = hub.connection().await?;
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
            };
            match answer.await {
                Ok(_) => break,
                Err(error) if tokio::time::Instant::now() >= deadline => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        format!("cannot reach Redis at {url}: {error}"),
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        tracing::info!(
            url,
            instance = hub.inner.instance,
            "chat shared through Redis"
        );
        Ok(hub)
    }

    /// The shared connection, made again if the last one failed.
    pub(crate) async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(PUBLISH_TIMEOUT))
            .set_response_timeout(Some(PUBLISH_TIMEOUT + REPLY_MARGIN));
        let connection = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Forgets the shared connection after an error, so the next call makes a new one.
    pub(crate) async fn drop_connection(&self) {
        *self.inner.connection.lock().await = None;
    }

    pub(crate) fn note_failure(&self, during: &str, error: &dyn std::fmt::Display) {
        if self.inner.available.swap(false, Ordering::Relaxed) {
            tracing::warn!(%error, during, "Redis unreachable: new messages are refused until it is back");
        }
    }

    pub(crate) fn note_success(&self) {
        if !self.inner.available.swap(true, Ordering::Relaxed) {
            tracing::info!("Redis reachable again");
        }
    }

    // ANCHOR: publish
    /// Numbers and keeps a message in Redis ([`PUBLISH_SCRIPT`]). It reaches this
    /// instance's subscribers, like every other instance's, through the stream reader.
    ///
    /// # Errors
    ///
    /// `unavailable` when Redis does not answer within [`PUBLISH_TIMEOUT`]; the message
    /// was not published then.
    pub(crate) async fn publish(
        &self,
        from: &str,
        content: String,
        ts: u64,
    ) -> Result<Arc<ChatMessage>, ErrorReply> {
        let deadline = ts + millis(PUBLISH_TIMEOUT);
        let attempt = async {
            let mut connection = self.connection().await?;
            self.inner
                .publish_script
                .key(EPOCH_KEY)
                .key(LOG_KEY)
                .arg(from)
                .arg(&content)
                .arg(ts)
                .arg(deadline)
                .arg(HubOptions::DEFAULT_HISTORY_CAPACITY)
                .invoke_async::<u64>(&mut connection)
                .await
        };
        let waited = tokio::time::timeout(PUBLISH_TIMEOUT + REPLY_MARGIN, attempt).await;
        // A Redis error and a reply that never came are the same to the sender.
        let answer = waited
            .map_err(|elapsed| elapsed.to_string())
            .and_then(|answer| answer.map_err(|error| error.to_string()));
        match answer {
            Ok(seq) => {
                self.note_success();
                Ok(Arc::new(ChatMessage {
                    seq,
                    from: from.to_owned(),
                    content,
                    ts,
                }))
            }
            Err(error) => {
                self.note_failure("publish", &error);
                self.drop_connection().await;
                Err(unavailable())
            }
        }
    }
    // ANCHOR_END: publish

    /// Fills `hub` with the newest messages Redis keeps, oldest first, before the
    /// server takes its first client.
    ///
    /// # Errors
    ///
    /// Redis failed to answer, or answered with entries this code did not write.
    pub(crate) async fn load_into(&self, hub: &Hub) -> std::io::Result<()> {
        let io_error =
            |error: RedisError| std::io::Error::other(format!("loading from Redis: {error}"));
        let mut connection = self.connection().await.map_err(io_error)?;
        // The counter first: a message published between the two reads is then in
        // the stream read next, and nothing falls between them.
        let (first_seq, last_seq): (u64, u64) = Script::new(EPOCH_SCRIPT)
            .key(EPOCH_KEY)
            .invoke_async(&mut connection)
            .await
            .map_err(io_error)?;
        let newest_first: Vec<StreamEntry> = redis::cmd("XREVRANGE")
            .arg(LOG_KEY)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(HubOptions::DEFAULT_HISTORY_CAPACITY)
            .query_async(&mut connection)
            .await
            .map_err(io_error)?;
        for entry in newest_first.into_iter().rev() {
            hub.apply(entry_message(entry).map_err(std::io::Error::other)?);
        }
        hub.set_epoch(first_seq, last_seq);
        let block = self.reserve_anonymous().await.map_err(io_error)?;
        self.inner
            .anonymous
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocks
            .push_back(block);
        *self.read_position() = hub.last_seq();
        tracing::info!(
            retained = hub.last_seq() + 1 - hub.oldest_retained(),
            last_seq = hub.last_seq(),
            "history loaded from Redis"
        );
        Ok(())
    }

    /// The next `anon-K` number, or `None` when this instance has none reserved (Redis
    /// was unreachable since the last block ran low). Reserves the next block in the
    /// background when this one is half used.
    pub(crate) fn next_anonymous(&self) -> Option<u64> {
        let mut numbers = self
            .inner
            .anonymous
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let number = loop {
            let (next, last) = numbers.blocks.front_mut()?;
            if *next <= *last {
                *next += 1;
                break *next - 1;
            }
            numbers.blocks.pop_front();
        };
        let left: u64 = numbers
            .blocks
            .iter()
            .map(|(next, last)| last + 1 - next)
            .sum();
        if left < ANONYMOUS_BLOCK / 2 && !numbers.reserving {
            numbers.reserving = true;
            let hub = self.clone();
            tokio::spawn(async move {
                let reserved = hub.reserve_anonymous().await;
                let mut numbers = hub
                    .inner
                    .anonymous
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                numbers.reserving = false;
                if let Ok(block) = reserved {
                    numbers.blocks.push_back(block);
                }
            });
        }
        Some(number)
    }

    /// The next [`ANONYMOUS_BLOCK`] numbers of the chat-wide `anon-K` counter.
    async fn reserve_anonymous(&self) -> Result<(u64, u64), RedisError> {
        let mut connection = self.connection().await?;
        let last: u64 = redis::cmd("INCRBY")
            .arg(ANONYMOUS_KEY)
            .arg(ANONYMOUS_BLOCK)
            .query_async(&mut connection)
            .await?;
        Ok((last + 1 - ANONYMOUS_BLOCK, last))
    }

    fn read_position(&self) -> std::sync::MutexGuard<'_, u64> {
        self.inner
            .read_position
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the stream reader and the presence heartbeat; both end when `hub` shuts
    /// down.
    pub(crate) fn spawn_tasks(&self, hub: &Hub) {
        tokio::spawn(self.clone().read_stream(hub.clone()));
        tokio::spawn(self.clone().keep_presence(hub.clone()));
    }

    // ANCHOR: read_stream
    /// Applies every message of the stream to `hub`, in order, from where this
    /// instance stands, for as long as the hub runs: on its own connection, since a
    /// blocking `XREAD` would hold up every command queued behind it.
    async fn read_stream(self, hub: Hub) {
        let shutdown = hub.shutdown_flag();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(PUBLISH_TIMEOUT))
            .set_response_timeout(Some(READ_BLOCK * 3));
        let mut backoff = Duration::from_millis(100);
        let mut connection: Option<MultiplexedConnection> = None;
        while !shutdown.is_triggered() {
            let result = async {
                if connection.is_none() {
                    connection = Some(
                        self.inner
                            .client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await?,
                    );
                }
                let position = *self.read_position();
                let reply: Option<Vec<(String, Vec<StreamEntry>)>> = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(HubOptions::DEFAULT_HISTORY_CAPACITY)
                    .arg("BLOCK")
                    .arg(millis(READ_BLOCK))
                    .arg("STREAMS")
                    .arg(LOG_KEY)
                    .arg(format!("0-{position}"))
                    .query_async(connection.as_mut().expect("connected above"))
                    .await?;
                Ok::<_, RedisError>(reply.unwrap_or_default())
            };
            let reply = tokio::select! {
                () = shutdown.wait() => return,
                reply = result => reply,
            };
            match reply {
                Ok(streams) => {
                    self.note_success();
                    backoff = Duration::from_millis(100);
                    for entry in streams.into_iter().flat_map(|(_, entries)| entries) {
                        match entry_message(entry) {
                            Ok(message) => {
                                *self.read_position() = message.seq;
                                hub.apply(message);
                            }
                            Err(error) => tracing::warn!(%error, "skipping a stream entry"),
                        }
                    }
                }
                Err(error) => {
                    self.note_failure("reading the stream", &error);
                    connection = None;
                    tokio::select! {
                        () = shutdown.wait() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
    // ANCHOR_END: read_stream

    /// Every [`PRESENCE_INTERVAL`]: this instance's count into Redis, the others' out.
    /// At shutdown it removes this instance, so the others need not wait for its key
    /// to expire.
    async fn keep_presence(self, hub: Hub) {
        let shutdown = hub.shutdown_flag();
        let mut ticks = tokio::time::interval(PRESENCE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                _ = ticks.tick() => {}
            }
            let refresh = async {
                let mut connection = self.connection().await?;
                self.inner
                    .presence_script
                    .key(ONLINE_KEY)
                    .arg(&self.inner.instance)
                    .arg(hub.local_online())
                    .arg(millis(INSTANCE_TTL))
                    .arg(INSTANCE_KEY_PREFIX)
                    .invoke_async::<usize>(&mut connection)
                    .await
            };
            match refresh.await {
                Ok(others) => {
                    self.note_success();
                    hub.set_remote_online(others);
                }
                Err(error) => {
                    // The others' last count stays: an outage says nothing about them.
                    self.note_failure("refreshing presence", &error);
                    self.drop_connection().await;
                }
            }
        }
        let leave = async {
            let mut connection = self.connection().await?;
            redis::pipe()
                .del(format!("{INSTANCE_KEY_PREFIX}{}", self.inner.instance))
                .hdel(ONLINE_KEY, &self.inner.instance)
                .query_async::<()>(&mut connection)
                .await
        };
        if let Ok(Err(error)) = tokio::time::timeout(PUBLISH_TIMEOUT, leave).await {
            tracing::debug!(%error, "could not remove this instance from presence");
        }
    }
}

/// One stream entry as Redis returns it: the id and the flat field-value list.
type StreamEntry = (String, Vec<String>);

/// The message a stream entry holds (written by [`PUBLISH_SCRIPT`]).
fn entry_message((id, fields): StreamEntry) -> Result<ChatMessage, String> {
    let seq = id
        .strip_prefix("0-")
        .and_then(hub::parse_seq)
        .ok_or_else(|| format!("stream id {id:?} is not 0-SEQ"))?;
    let mut from = None;
    let mut content = None;
    let mut ts = None;
    for pair in fields.chunks_exact(2) {
        match pair[0].as_str() {
            "from" => from = Some(pair[1].clone()),
            "content" => content = Some(pair[1].clone()),
            "ts" => ts = hub::parse_seq(&pair[1]),
            _ => {}
        }
    }
    match (from, content, ts) {
        (Some(from), Some(content), Some(ts)) => Ok(ChatMessage {
            seq,
            from,
            content,
            ts,
        }),
        _ => Err(format!("stream entry {id} lacks from, content or ts")),
    }
}

fn unavailable() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Unavailable,
        "the chat cannot take messages right now (its shared store is unreachable); nothing was sent, try again shortly",
    )
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_messages() {
        let entry = (
            "0-1796169600000001".to_owned(),
            ["from", "ann", "content", "hi", "ts", "17"]
                .map(str::to_owned)
                .to_vec(),
        );
        assert_eq!(
            entry_message(entry),
            Ok(ChatMessage {
                seq: 1_796_169_600_000_001,
                from: "ann".into(),
                content: "hi".into(),
                ts: 17
            })
        );
        assert!(entry_message(("5-1".into(), vec![])).is_err());
        assert!(
            entry_message(("0-1".into(), ["from", "ann"].map(str::to_owned).to_vec())).is_err()
        );
    }
}
