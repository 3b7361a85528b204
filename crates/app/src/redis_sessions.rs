//! Sessions in Redis, with `--auth` and `--redis`: a browser signed in on one
//! instance is signed in on all of them, a ticket is used up everywhere at once, a
//! name is one session's on every instance, and signing out on one instance closes
//! the session's connections on all of them.
//!
//! Three kinds of keys, each expiring by itself:
//!
//! - `wsse:session:ID` holds the session's name, for [`SESSION_LIFETIME`];
//! - `wsse:session-name:NAME` holds the id of the session that has the name, as
//!   long, so that two instances cannot give one name to two sessions;
//! - `wsse:ticket:TICKET` holds a session id for [`TICKET_LIFETIME`], and is read
//!   and deleted in one command (`GETDEL`), so a ticket works once, whichever
//!   instance it is shown to.
//!
//! Signing in and out change two keys together, in a Lua script each, so no other
//! instance sees half of it. What Redis cannot tell an instance is that a session it
//! has connections of has ended elsewhere: each instance asks, every
//! [`SESSION_CHECK_INTERVAL`], whether those sessions still exist (one `MGET`), and
//! ends the connections of any that does not. A sign-out on the same instance ends
//! them at once. While Redis cannot be reached, routes that need a session answer
//! 503 and open connections stay open: an outage signs nobody out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::Script;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Shutdown;
use crate::auth::{Identity, SESSION_LIFETIME, SignedIn, TICKET_LIFETIME, Unavailable};
use crate::redis_hub::RedisHub;

/// How often an instance checks that the sessions of its connections still exist:
/// the longest a sign-out on another instance takes to close them here.
pub const SESSION_CHECK_INTERVAL: Duration = Duration::from_secs(1);

const SESSION_PREFIX: &str = "wsse:session:";
const NAME_PREFIX: &str = "wsse:session-name:";
const TICKET_PREFIX: &str = "wsse:ticket:";

// ANCHOR: sign_in_script
/// Signs in as a name, atomically: `KEYS[1]` is the name's key, `KEYS[2]` the key of
/// the caller's own session (its cookie; a key that does not exist without one).
/// `ARGV`: the caller's session id or "", a new id, a new ticket, the session's and
/// the ticket's lifetimes in milliseconds, the name, and the key prefixes. Returns
/// `{"ok", ID}` or `{"taken"}`.
const SIGN_IN_SCRIPT: &str = r"
local own, new_id, ticket = ARGV[1], ARGV[2], ARGV[3]
local session_ms, ticket_ms, name = ARGV[4], ARGV[5], ARGV[6]
local session_prefix, name_prefix, ticket_prefix = ARGV[7], ARGV[8], ARGV[9]
if own ~= '' and redis.call('EXISTS', KEYS[2]) == 0 then own = '' end
local holder = redis.call('GET', KEYS[1])
if holder and redis.call('EXISTS', session_prefix .. holder) == 0 then
  holder = false
end
if holder and holder ~= own then return {'taken'} end
local id = own
if not holder then
  if own ~= '' then
    -- Under another name: the caller's old session ends.
    local old_name = redis.call('GET', KEYS[2])
    redis.call('DEL', KEYS[2])
    if old_name and redis.call('GET', name_prefix .. old_name) == own then
      redis.call('DEL', name_prefix .. old_name)
    end
  end
  id = new_id
  redis.call('SET', session_prefix .. id, name, 'PX', session_ms)
  redis.call('SET', KEYS[1], id, 'PX', session_ms)
end
redis.call('SET', ticket_prefix .. ticket, id, 'PX', ticket_ms)
return {'ok', id}
";
// ANCHOR_END: sign_in_script

/// Ends a session: `KEYS[1]` its key, `ARGV[1]` its id, `ARGV[2]` the name prefix.
/// Returns 1 if there was one.
const END_SCRIPT: &str = r"
local name = redis.call('GET', KEYS[1])
if not name then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('GET', ARGV[2] .. name) == ARGV[1] then redis.call('DEL', ARGV[2] .. name) end
return 1
";

/// A session's name and the milliseconds it has left: `KEYS[1]` its key.
const IDENTITY_SCRIPT: &str = r"
local name = redis.call('GET', KEYS[1])
if not name then return false end
return {name, redis.call('PTTL', KEYS[1])}
";

/// This instance's side of the sessions in Redis. Clones share it.
#[derive(Clone)]
pub(crate) struct RedisSessions {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisHub,
    sign_in_script: Script,
    end_script: Script,
    identity_script: Script,
    /// The sessions this instance has handed identities out for, each with the
    /// channel that ends them.
    watched: Mutex<HashMap<String, watch::Sender<bool>>>,
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisSessions")
            .field("watched", &self.watched().len())
            .finish_non_exhaustive()
    }
}

impl RedisSessions {
    /// Sessions on the hub's Redis; the check of watched sessions runs until
    /// `shutdown`.
    pub(crate) fn start(redis: RedisHub, shutdown: Shutdown) -> RedisSessions {
        let sessions = RedisSessions {
            inner: Arc::new(Inner {
                redis,
                sign_in_script: Script::new(SIGN_IN_SCRIPT),
                end_script: Script::new(END_SCRIPT),
                identity_script: Script::new(IDENTITY_SCRIPT),
                watched: Mutex::default(),
            }),
        };
        tokio::spawn(sessions.clone().check_watched(shutdown));
        sessions
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<bool>>> {
        self.inner
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one command on the shared connection; a failure drops the connection (the
    /// next command makes a new one) and is logged once per outage.
    async fn run<T: redis::FromRedisValue>(
        &self,
        during: &str,
        command: impl AsyncFnOnce(&mut redis::aio::MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> Result<T, Unavailable> {
        let redis = &self.inner.redis;
        let answer = async {
            let mut connection = redis.connection().await?;
            command(&mut connection).await
        };
        match answer.await {
            Ok(value) => {
                redis.note_success();
                Ok(value)
            }
            Err(error) => {
                redis.drop_connection().await;
                redis.note_failure(during, &error);
                Err(Unavailable)
            }
        }
    }

    pub(crate) async fn sign_in(
        &self,
        name: &str,
        own: Option<&str>,
    ) -> Result<SignedIn, Unavailable> {
        let (new_id, ticket) = (crate::auth::random_token(), crate::auth::random_token());
        let own = own.unwrap_or_default();
        let answer: Vec<String> = self
            .run("signing in", async |connection| {
                self.inner
                    .sign_in_script
                    .key(format!("{NAME_PREFIX}{name}"))
                    .key(format!("{SESSION_PREFIX}{own}"))
                    .arg(own)
                    .arg(&new_id)
                    .arg(&ticket)
                    .arg(SESSION_LIFETIME.as_millis() as u64)
                    .arg(TICKET_LIFETIME.as_millis() as u64)
                    .arg(name)
                    .arg(SESSION_PREFIX)
                    .arg(NAME_PREFIX)
                    .arg(TICKET_PREFIX)
                    .invoke_async(connection)
                    .await
            })
            .await?;
        match answer.as_slice() {
            [ok, id] if ok == "ok" => {
                if id != own && !own.is_empty() {
                    self.ended_here(own);
                }
                Ok(SignedIn::Session {
                    id: id.clone(),
                    ticket,
                })
            }
            _ => Ok(SignedIn::Taken),
        }
    }

    pub(crate) async fn redeem(&self, ticket: &str) -> Result<Option<Identity>, Unavailable> {
        let id: Option<String> = self
            .run("using a ticket", async |connection| {
                redis::cmd("GETDEL")
                    .arg(format!("{TICKET_PREFIX}{ticket}"))
                    .query_async(connection)
                    .await
            })
            .await?;
        match id {
            Some(id) => self.identity(&id).await,
            None => Ok(None),
        }
    }

    pub(crate) async fn identity(&self, id: &str) -> Result<Option<Identity>, Unavailable> {
        let found: Option<(String, i64)> = self
            .run("looking up a session", async |connection| {
                self.inner
                    .identity_script
                    .key(format!("{SESSION_PREFIX}{id}"))
                    .invoke_async(connection)
                    .await
            })
            .await?;
        let Some((name, left_ms)) = found else {
            return Ok(None);
        };
        // -1: no expiry (set by hand); the session lasts as long as one would.
        let left = u64::try_from(left_ms).map_or(SESSION_LIFETIME, Duration::from_millis);
        let ended = self
            .watched()
            .entry(id.to_owned())
            .or_insert_with(|| watch::channel(false).0)
            .subscribe();
        Ok(Some(Identity::of_session(
            name,
            ended,
            Instant::now() + left,
        )))
    }

    pub(crate) async fn end(&self, id: &str) -> Result<bool, Unavailable> {
        let ended: i64 = self
            .run("signing out", async |connection| {
                self.inner
                    .end_script
                    .key(format!("{SESSION_PREFIX}{id}"))
                    .arg(id)
                    .arg(NAME_PREFIX)
                    .invoke_async(connection)
                    .await
            })
            .await?;
        self.ended_here(id);
        Ok(ended == 1)
    }

    /// Ends this instance's connections of a session at once.
    fn ended_here(&self, id: &str) {
        if let Some(ended) = self.watched().remove(id) {
            ended.send_replace(true);
        }
    }

    // ANCHOR: check_watched
    /// Every [`SESSION_CHECK_INTERVAL`]: forgets the sessions no connection here holds
    /// any more, asks Redis about the others in one `MGET`, and ends the connections
    /// of those it no longer has (signed out on another instance). An unanswered
    /// question ends nothing.
    async fn check_watched(self, shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(SESSION_CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                _ = ticks.tick() => {}
            }
            let ids: Vec<String> = {
                let mut watched = self.watched();
                watched.retain(|_, ended| ended.receiver_count() > 0);
                watched.keys().cloned().collect()
            };
            if ids.is_empty() {
                continue;
            }
            let keys: Vec<String> = ids
                .iter()
                .map(|id| format!("{SESSION_PREFIX}{id}"))
                .collect();
            let names: Result<Vec<Option<String>>, Unavailable> = self
                .run("checking sessions", async |connection| {
                    redis::cmd("MGET").arg(&keys).query_async(connection).await
                })
                .await;
            let Ok(names) = names else { continue };
            for (id, name) in ids.iter().zip(names) {
                if name.is_none() {
                    self.ended_here(id);
                }
            }
        }
    }
    // ANCHOR_END: check_watched
}
