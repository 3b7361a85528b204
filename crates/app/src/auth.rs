//! Who may use the chat, with `--auth`: sessions, tickets, and the identity each
//! connection acts as. Without the flag anyone may connect under any name, as before.
//!
//! With it:
//!
//! - `POST /session` with `{"name":"ada"}` starts a session: the answer sets the
//!   cookie [`SESSION_COOKIE`] (`HttpOnly`, `SameSite=Strict`, `Secure` when the page
//!   came over HTTPS) and carries a ticket, good for one connection within
//!   [`TICKET_LIFETIME`]. Asking again with the cookie and the same name gives a fresh
//!   ticket; a name another live session holds is refused with 409.
//! - Every chat route wants one of them: the WebSocket (`/ws`) and the event stream
//!   (`/events`) take the cookie, a `?ticket=`, or for the WebSocket a ticket offered
//!   as the subprotocol `ticket.TICKET` next to [`SUBPROTOCOL`], which is what the
//!   server answers (never the ticket: a browser fails a connection whose answer is
//!   not one of its offers). `POST /messages` takes the cookie. A program, which
//!   can set headers as a browser's WebSocket and EventSource cannot, may send the
//!   session as `Authorization: Bearer SESSION` instead of the cookie. Without any: 401,
//!   before any upgrade or stream. The chapter demos (`/echo`, `/stream`) carry no
//!   one's words and stay open; the connection limits still hold them.
//! - The name in chat messages is the session's, whatever the client claims.
//! - `DELETE /session` ends the session: its WebSockets are closed with
//!   [`SESSION_ENDED`](crate::connection::SESSION_ENDED) (4001), its event streams end.
//!
//! Sessions are kept on the server, keyed by an unguessable id from the operating
//! system's random source, so there is nothing to sign and no secret to keep: in this
//! process's memory, or with `--redis` in Redis, where every instance finds them
//! ([`crate::redis_sessions`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Config;
use crate::messages::{is_json_content_type, valid_name};
use crate::redis_sessions::RedisSessions;
use crate::refusals::Refusal;

/// The cookie that names a session.
pub const SESSION_COOKIE: &str = "wsse_session";
/// The WebSocket subprotocol the chat speaks, which the server answers when offered.
pub const SUBPROTOCOL: &str = "wsse";
/// How a ticket is offered as a subprotocol: `ticket.` and the ticket.
pub const TICKET_PROTOCOL_PREFIX: &str = "ticket.";
/// How long a ticket is good for: long enough to open one connection, short enough
/// that a URL with one in it, copied from a log, is worthless.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(30);
/// How long a session lasts; then its cookie is refused and the page signs in again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// The most sessions and unused tickets kept at once: a flood of sign-ins cannot
/// grow memory without bound (the oldest expired ones go first, then new ones wait).
pub const MAX_SESSIONS: usize = 100_000;

/// Who a request acts as: with `--auth` a session's name, without it anyone.
#[derive(Debug, Clone)]
pub struct Identity {
    name: Option<String>,
    /// Changes once, when the session is ended; `None` without `--auth`.
    ended: Option<watch::Receiver<bool>>,
    /// When the session expires, if nobody ends it first.
    expires: Option<Instant>,
}

impl Identity {
    /// Without `--auth`: no name of its own, never ended.
    pub fn anyone() -> Identity {
        Identity {
            name: None,
            ended: None,
            expires: None,
        }
    }

    /// The session's name, or `None` without `--auth` (the client's own claim goes).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    // ANCHOR: ended
    /// Resolves when the session ends (signed out, signed in under another name, or
    /// expired); never without `--auth`.
    pub fn ended(&self) -> impl Future<Output = ()> + Send + 'static {
        let (ended, expires) = (self.ended.clone(), self.expires);
        async move {
            let (Some(mut ended), Some(expires)) = (ended, expires) else {
                return std::future::pending().await;
            };
            tokio::select! {
                // An error is the session dropped from the store: ended too.
                _ = ended.wait_for(|ended| *ended) => {}
                () = tokio::time::sleep_until(expires) => {}
            }
        }
    }
    // ANCHOR_END: ended
}

/// An answer to `POST /session` or `DELETE /session`, for the glue to send: the
/// status, a JSON body, and the `Set-Cookie` value if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// The value of a `Set-Cookie` header to send along.
    pub set_cookie: Option<String>,
}

impl SessionAnswer {
    /// Every session route of a server without `--auth`.
    fn no_auth() -> SessionAnswer {
        SessionAnswer::error(404, "no_auth", "this server runs without --auth")
    }

    /// While Redis cannot be reached; nothing changed.
    fn unavailable() -> SessionAnswer {
        SessionAnswer::error(
            503,
            "unavailable",
            "sessions are unavailable; try again later",
        )
    }

    fn error(status: u16, code: &str, message: &str) -> SessionAnswer {
        SessionAnswer {
            status,
            body: json!({"type": "error", "code": code, "message": message}).to_string(),
            set_cookie: None,
        }
    }
}

/// The sessions and tickets of one server. Clones share them.
#[derive(Debug, Clone)]
pub struct Sessions {
    enabled: bool,
    backend: Backend,
}

/// Where sessions are kept: in this process, or with `--redis` in Redis, where every
/// instance finds them ([`crate::redis_sessions`]).
#[derive(Debug, Clone)]
enum Backend {
    Memory(Arc<Mutex<Store>>),
    Redis(RedisSessions),
}

/// What a sign-in came to, whichever the backend.
#[derive(Debug)]
pub(crate) enum SignedIn {
    /// The session (new, or the caller's own) and a fresh ticket for it.
    Session { id: String, ticket: String },
    /// Another live session holds the name.
    Taken,
    /// No room for another session.
    Full,
}

/// The backend cannot answer now (Redis unreachable): 503, and nothing changed.
#[derive(Debug)]
pub(crate) struct Unavailable;

/// The sessions in memory. A lookup checks the expiry of what it finds; what has
/// expired is swept out only when the store is full, so no request pays for a walk
/// over every session.
#[derive(Debug, Default)]
struct Store {
    /// Session id to session.
    sessions: HashMap<String, Session>,
    /// Name to the id of the session that has it.
    names: HashMap<String, String>,
    /// Unused ticket to the session id it stands for, and when it expires.
    tickets: HashMap<String, (String, Instant)>,
}

#[derive(Debug)]
struct Session {
    name: String,
    expires: Instant,
    ended: watch::Sender<bool>,
}

impl Store {
    /// Forgets what has expired (its connections have ended by themselves: see
    /// [`Identity::ended`]).
    fn expire(&mut self, now: Instant) {
        let names = &mut self.names;
        self.sessions.retain(|_, session| {
            let live = session.expires > now;
            if !live {
                names.remove(&session.name);
            }
            live
        });
        self.tickets.retain(|_, (_, expires)| *expires > now);
    }

    fn end(&mut self, id: &str) -> bool {
        self.tickets.retain(|_, (session, _)| session != id);
        match self.sessions.remove(id) {
            Some(session) => {
                self.names.remove(&session.name);
                session.ended.send_replace(true);
                true
            }
            None => false,
        }
    }

    /// The session a ticket stands for, using the ticket up.
    fn redeem(&mut self, ticket: &str, now: Instant) -> Option<Identity> {
        let (id, expires) = self.tickets.remove(ticket)?;
        (expires > now).then(|| self.identity(&id, now))?
    }

    fn identity(&self, id: &str, now: Instant) -> Option<Identity> {
        let session = self
            .sessions
            .get(id)
            .filter(|session| session.expires > now)?;
        Some(Identity {
            name: Some(session.name.clone()),
            ended: Some(session.ended.subscribe()),
            expires: Some(session.expires),
        })
    }

    fn sign_in(&mut self, name: &str, own: Option<&str>, now: Instant) -> SignedIn {
        let live = |store: &Store, id: &str| {
            store
                .sessions
                .get(id)
                .is_some_and(|session| session.expires > now)
        };
        let own = own.filter(|id| live(self, id)).map(str::to_owned);
        let holder = self.names.get(name).filter(|id| live(self, id)).cloned();
        let id = match (own, holder) {
            (Some(own), Some(holder)) if own == holder => own,
            (_, Some(_)) => return SignedIn::Taken,
            (own, None) => {
                if let Some(own) = own {
                    self.end(&own);
                }
                if self.sessions.len() + self.tickets.len() >= MAX_SESSIONS {
                    self.expire(now);
                }
                if self.sessions.len() + self.tickets.len() >= MAX_SESSIONS {
                    return SignedIn::Full;
                }
                let id = random_token();
                let (ended, _) = watch::channel(false);
                self.sessions.insert(
                    id.clone(),
                    Session {
                        name: name.to_owned(),
                        expires: now + SESSION_LIFETIME,
                        ended,
                    },
                );
                // An expired holder's session goes with its name.
                if let Some(expired) = self.names.insert(name.to_owned(), id.clone()) {
                    self.sessions.remove(&expired);
                }
                id
            }
        };
        let ticket = random_token();
        self.tickets
            .insert(ticket.clone(), (id.clone(), now + TICKET_LIFETIME));
        SignedIn::Session { id, ticket }
    }
}

impl Backend {
    async fn sign_in(&self, name: &str, own: Option<&str>) -> Result<SignedIn, Unavailable> {
        match self {
            Backend::Memory(store) => Ok(lock(store).sign_in(name, own, Instant::now())),
            Backend::Redis(redis) => redis.sign_in(name, own).await,
        }
    }

    /// The session a ticket stands for, using the ticket up.
    async fn redeem(&self, ticket: &str) -> Result<Option<Identity>, Unavailable> {
        match self {
            Backend::Memory(store) => Ok(lock(store).redeem(ticket, Instant::now())),
            Backend::Redis(redis) => redis.redeem(ticket).await,
        }
    }

    async fn identity(&self, id: &str) -> Result<Option<Identity>, Unavailable> {
        match self {
            Backend::Memory(store) => Ok(lock(store).identity(id, Instant::now())),
            Backend::Redis(redis) => redis.identity(id).await,
        }
    }

    async fn end(&self, id: &str) -> Result<bool, Unavailable> {
        match self {
            Backend::Memory(store) => Ok(lock(store).end(id)),
            Backend::Redis(redis) => redis.end(id).await,
        }
    }
}

impl Identity {
    /// A session's identity, for the backends: its name, the channel that says when it
    /// is ended, and when it expires.
    pub(crate) fn of_session(
        name: String,
        ended: watch::Receiver<bool>,
        expires: Instant,
    ) -> Identity {
        Identity {
            name: Some(name),
            ended: Some(ended),
            expires: Some(expires),
        }
    }
}

/// 16 bytes from the operating system's random source, base64url: unguessable, and
/// made of characters that are valid in a cookie, a URL and a subprotocol token.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The 401 every route answers without a valid session or ticket.
fn unauthorized(body: &'static str) -> Refusal {
    Refusal {
        headers: &[("WWW-Authenticate", "Session realm=\"chat\"")],
        ..Refusal::new(401, body)
    }
}

/// The 503 of a route while the sessions cannot be looked at (Redis unreachable).
fn sessions_unavailable(_: Unavailable) -> Refusal {
    Refusal {
        headers: &[("Retry-After", "5")],
        ..Refusal::new(503, "sessions are unavailable; try again later\n")
    }
}

impl Sessions {
    /// The sessions of a server started with `--auth` (`enabled`), or none, in this
    /// process's memory.
    pub fn new(enabled: bool) -> Sessions {
        Sessions {
            enabled,
            backend: Backend::Memory(Arc::default()),
        }
    }

    /// The sessions `config` asks for: none without `--auth`; with it, in memory, or
    /// with `--redis` in the hub's Redis, so that every instance knows them.
    pub fn start(config: &Config, hub: &crate::Hub) -> Sessions {
        match hub.redis() {
            Some(redis) if config.auth => Sessions {
                enabled: true,
                backend: Backend::Redis(RedisSessions::start(redis.clone(), hub.shutdown_flag())),
            },
            _ => Sessions::new(config.auth),
        }
    }

    // ANCHOR: authenticate
    /// Who a request to a chat route acts as: anyone without `--auth`; with it, the
    /// session of a ticket (in `?ticket=`, or offered as the subprotocol
    /// `ticket.TICKET`), which is used up by this, or else of the session cookie.
    ///
    /// # Errors
    ///
    /// 401 with a body that says why: no ticket nor cookie, a ticket unknown, used or
    /// expired, a session unknown or ended; 503 when Redis cannot be asked.
    pub async fn authenticate<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        query: Option<&str>,
    ) -> Result<Identity, Refusal> {
        if !self.enabled {
            return Ok(Identity::anyone());
        }
        let credentials = Credentials::read(headers, query);
        if let Some(ticket) = credentials.ticket {
            return self
                .backend
                .redeem(&ticket)
                .await
                .map_err(sessions_unavailable)?
                .ok_or_else(|| unauthorized("the ticket is unknown, used or expired\n"));
        }
        self.session_of(credentials).await
    }

    /// The identity of the request's session (its cookie, or a bearer token).
    async fn session_of(&self, credentials: Credentials) -> Result<Identity, Refusal> {
        let id = credentials
            .session
            .ok_or_else(|| unauthorized("not signed in: POST /session first\n"))?;
        self.backend
            .identity(&id)
            .await
            .map_err(sessions_unavailable)?
            .ok_or_else(|| unauthorized("the session is unknown or has ended\n"))
    }
    // ANCHOR_END: authenticate

    // ANCHOR: sign_in
    /// `POST /session` with `{"name":"NAME"}`: a session under that name and a ticket.
    /// The request must come from one of our pages (the Origin check, against a
    /// cross-site page signing its visitor in under a name of its choosing) and be
    /// JSON. With the cookie of a live session of the same name, that session gets a
    /// fresh ticket; under another name it ends and a new one starts.
    pub async fn sign_in<'a>(
        &self,
        config: &Config,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
        body: &[u8],
    ) -> SessionAnswer {
        if !self.enabled {
            return SessionAnswer::no_auth();
        }
        if let Some(refused) = Self::refuse_cross_site(config, headers.clone()) {
            return refused;
        }
        let credentials = Credentials::read(headers.clone(), None);
        if !is_json_content_type(credentials.content_type.as_deref()) {
            return SessionAnswer::error(
                415,
                "bad_json",
                "expected Content-Type: application/json",
            );
        }
        let name = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|value| value.get("name")?.as_str().map(str::to_owned));
        let Some(name) = valid_name(name.as_deref()) else {
            return SessionAnswer::error(
                400,
                "bad_name",
                "expected {\"name\":\"NAME\"}, 1 to 32 characters, no control characters",
            );
        };
        let (id, ticket) = match self
            .backend
            .sign_in(&name, credentials.session.as_deref())
            .await
        {
            Ok(SignedIn::Session { id, ticket }) => (id, ticket),
            Ok(SignedIn::Taken) => {
                return SessionAnswer::error(409, "name_taken", "another session has this name");
            }
            Ok(SignedIn::Full) => {
                return SessionAnswer::error(
                    503,
                    "unavailable",
                    "too many sessions; try again later",
                );
            }
            Err(Unavailable) => return SessionAnswer::unavailable(),
        };
        let secure = if config.served_over_https(headers) {
            "; Secure"
        } else {
            ""
        };
        SessionAnswer {
            status: 200,
            body: json!({
                "name": name,
                "ticket": ticket,
                "ticket_expires_in_ms": TICKET_LIFETIME.as_millis() as u64,
            })
            .to_string(),
            set_cookie: Some(format!(
                "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                SESSION_LIFETIME.as_secs()
            )),
        }
    }
    // ANCHOR_END: sign_in

    /// `GET /session`: who the cookie's session is, `200 {"name":NAME}`, so that a page
    /// loaded again knows it is still signed in (the cookie is `HttpOnly`: no script
    /// can look); 401 when it is not, 404 without `--auth` (the page learns the mode).
    pub async fn current<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> SessionAnswer {
        if !self.enabled {
            return SessionAnswer::no_auth();
        }
        let credentials = Credentials::read(headers, None);
        let Some(id) = credentials.session else {
            return SessionAnswer::error(401, "signed_out", "not signed in");
        };
        match self.backend.identity(&id).await {
            Ok(Some(identity)) => SessionAnswer {
                status: 200,
                body: json!({ "name": identity.name }).to_string(),
                set_cookie: None,
            },
            Ok(None) => SessionAnswer::error(401, "signed_out", "not signed in"),
            Err(Unavailable) => SessionAnswer::unavailable(),
        }
    }

    /// `DELETE /session`: ends the cookie's session, if any (its WebSockets close with
    /// 4001, its streams end, on every instance), and clears the cookie. The Origin
    /// check applies, as to every request that changes something.
    pub async fn sign_out<'a>(
        &self,
        config: &Config,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
    ) -> SessionAnswer {
        if !self.enabled {
            return SessionAnswer::no_auth();
        }
        if let Some(refused) = Self::refuse_cross_site(config, headers.clone()) {
            return refused;
        }
        let credentials = Credentials::read(headers, None);
        let ended = match credentials.session {
            Some(id) => match self.backend.end(&id).await {
                Ok(ended) => ended,
                Err(Unavailable) => return SessionAnswer::unavailable(),
            },
            None => false,
        };
        SessionAnswer {
            status: 200,
            body: json!({"ended": ended}).to_string(),
            set_cookie: Some(format!(
                "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
            )),
        }
    }

    /// `POST /messages` with `--auth`: the cookie's session, and the Origin check
    /// (a plain form on another site could post otherwise; `SameSite=Strict` keeps the
    /// cookie away from it too, and a form cannot send JSON, but each defence alone is
    /// one browser bug away from failing).
    ///
    /// # Errors
    ///
    /// 403 from another origin, 401 without a live session, 503 when Redis cannot be
    /// asked.
    pub async fn authenticate_post<'a>(
        &self,
        config: &Config,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
    ) -> Result<Identity, Refusal> {
        if !self.enabled {
            return Ok(Identity::anyone());
        }
        if !config.origin_allowed(headers.clone()) {
            return Err(Refusal::new(403, "origin not allowed\n"));
        }
        let credentials = Credentials::read(headers, None);
        self.session_of(credentials).await
    }

    fn refuse_cross_site<'a>(
        config: &Config,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
    ) -> Option<SessionAnswer> {
        (!config.origin_allowed(headers))
            .then(|| SessionAnswer::error(403, "forbidden", "origin not allowed"))
    }
}

/// What a request carries that names a session.
#[derive(Debug, Default)]
struct Credentials {
    session: Option<String>,
    ticket: Option<String>,
    content_type: Option<String>,
}

impl Credentials {
    fn read<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        query: Option<&str>,
    ) -> Credentials {
        let mut found = Credentials {
            ticket: crate::query::query_param(query, "ticket"),
            ..Credentials::default()
        };
        for (name, value) in headers {
            let Ok(value) = std::str::from_utf8(value) else {
                continue;
            };
            if name.eq_ignore_ascii_case("cookie") {
                let cookie = value.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    (key == SESSION_COOKIE).then(|| value.to_owned())
                });
                found.session = found.session.or(cookie);
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                let offered = value
                    .split(',')
                    .find_map(|protocol| protocol.trim().strip_prefix(TICKET_PROTOCOL_PREFIX));
                found.ticket = found.ticket.or(offered.map(str::to_owned));
            } else if name.eq_ignore_ascii_case("authorization") {
                // A program, which can set headers, may send the session as a bearer
                // token instead of keeping a cookie.
                let bearer = value
                    .split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim().to_owned());
                found.session = found.session.or(bearer);
            } else if name.eq_ignore_ascii_case("content-type") {
                found.content_type = Some(value.to_owned());
            }
        }
        found
    }
}

/// Whether the client offered the chat's [`SUBPROTOCOL`], which the server then
/// answers (and only then: a server must not answer a protocol nobody offered).
pub fn offers_subprotocol<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> bool {
    headers
        .into_iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .filter_map(|(_, value)| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim() == SUBPROTOCOL)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: (&str, &[u8]) = ("Content-Type", b"application/json");

    async fn sign_in(sessions: &Sessions, cookie: Option<&str>, body: &str) -> SessionAnswer {
        let cookie = cookie.map(|id| format!("{SESSION_COOKIE}={id}"));
        let mut headers = vec![JSON];
        if let Some(cookie) = &cookie {
            headers.push(("Cookie", cookie.as_bytes()));
        }
        sessions
            .sign_in(&Config::default(), headers, body.as_bytes())
            .await
    }

    /// The session id in a `Set-Cookie` value, and the ticket of a sign-in's body.
    fn cookie_and_ticket(answer: &SessionAnswer) -> (String, String) {
        assert_eq!(answer.status, 200, "{}", answer.body);
        let cookie = answer.set_cookie.as_deref().expect("a cookie");
        let id = cookie
            .strip_prefix(&format!("{SESSION_COOKIE}="))
            .and_then(|rest| rest.split(';').next())
            .expect("the session's id")
            .to_owned();
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        (id, body["ticket"].as_str().expect("a ticket").to_owned())
    }

    async fn with_cookie(sessions: &Sessions, id: &str) -> Result<Identity, Refusal> {
        let cookie = format!("theme=dark; {SESSION_COOKIE}={id}");
        sessions
            .authenticate([("Cookie", cookie.as_bytes())], None)
            .await
    }

    #[tokio::test]
    async fn without_auth_anyone_goes_and_there_is_no_session_route() {
        let sessions = Sessions::new(false);
        let identity = sessions.authenticate([], None).await.unwrap();
        assert_eq!(identity.name(), None);
        assert_eq!(
            sign_in(&sessions, None, r#"{"name":"ada"}"#).await.status,
            404
        );
        assert_eq!(sessions.current([]).await.status, 404);
    }

    #[tokio::test]
    async fn with_auth_nothing_is_refused_with_401_and_a_challenge() {
        let sessions = Sessions::new(true);
        for refusal in [
            sessions.authenticate([], None).await.unwrap_err(),
            sessions
                .authenticate([], Some("ticket=made-up"))
                .await
                .unwrap_err(),
            with_cookie(&sessions, "made-up").await.unwrap_err(),
        ] {
            assert_eq!(refusal.status, 401);
            assert!(
                refusal
                    .headers
                    .iter()
                    .any(|(name, _)| *name == "WWW-Authenticate")
            );
        }
    }

    #[tokio::test]
    async fn a_sign_in_gives_a_cookie_the_browser_keeps_from_scripts_and_other_sites() {
        let sessions = Sessions::new(true);
        let answer = sign_in(&sessions, None, r#"{"name":"ada"}"#).await;
        let cookie = answer.set_cookie.clone().unwrap();
        for attribute in ["Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=43200"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
        let (id, _) = cookie_and_ticket(&answer);
        assert_eq!(
            with_cookie(&sessions, &id).await.unwrap().name(),
            Some("ada")
        );
    }

    #[tokio::test]
    async fn the_cookie_is_secure_when_a_trusted_proxy_says_https() {
        let sessions = Sessions::new(true);
        let config = Config {
            trust_proxy: true,
            ..Config::default()
        };
        let answer = sessions
            .sign_in(
                &config,
                [
                    JSON,
                    ("X-Forwarded-Proto", b"https"),
                    ("Host", b"chat.example"),
                ],
                br#"{"name":"ada"}"#,
            )
            .await;
        assert!(answer.set_cookie.unwrap().ends_with("; Secure"));
    }

    #[tokio::test]
    async fn a_ticket_is_good_for_one_connection() {
        let sessions = Sessions::new(true);
        let (_, ticket) = cookie_and_ticket(&sign_in(&sessions, None, r#"{"name":"ada"}"#).await);
        let query = format!("ticket={ticket}");
        let identity = sessions.authenticate([], Some(&query)).await.unwrap();
        assert_eq!(identity.name(), Some("ada"));
        let again = sessions.authenticate([], Some(&query)).await.unwrap_err();
        assert_eq!(again.status, 401);
    }

    #[tokio::test]
    async fn a_ticket_may_come_as_a_subprotocol_next_to_the_chats() {
        let sessions = Sessions::new(true);
        let (_, ticket) = cookie_and_ticket(&sign_in(&sessions, None, r#"{"name":"ada"}"#).await);
        let offered = format!("{SUBPROTOCOL}, {TICKET_PROTOCOL_PREFIX}{ticket}");
        let headers = [("Sec-WebSocket-Protocol", offered.as_bytes())];
        assert!(offers_subprotocol(headers));
        assert_eq!(
            sessions.authenticate(headers, None).await.unwrap().name(),
            Some("ada")
        );
        assert!(!offers_subprotocol([(
            "Sec-WebSocket-Protocol",
            &b"wsse2, chat"[..]
        )]));
    }

    #[tokio::test]
    async fn a_program_may_send_the_session_as_a_bearer_token() {
        let sessions = Sessions::new(true);
        let (id, _) = cookie_and_ticket(&sign_in(&sessions, None, r#"{"name":"ada"}"#).await);
        let bearer = format!("Bearer {id}");
        let identity = sessions
            .authenticate([("Authorization", bearer.as_bytes())], None)
            .await
            .unwrap();
        assert_eq!(identity.name(), Some("ada"));
        let basic = format!("Basic {id}");
        assert!(
            sessions
                .authenticate([("Authorization", basic.as_bytes())], None)
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_name_of_an_expired_session_is_free_again() {
        let sessions = Sessions::new(true);
        let (old, _) = cookie_and_ticket(&sign_in(&sessions, None, r#"{"name":"ada"}"#).await);
        assert_eq!(
            sign_in(&sessions, None, r#"{"name":"ada"}"#).await.status,
            409
        );
        tokio::time::advance(SESSION_LIFETIME + Duration::from_secs(1)).await;
        let (new, _) = cookie_and_ticket(&sign_in(&sessions, None, r#"{"name":"ada"}"#).await);
        assert_ne!(new, old);
        assert!(with_cookie(&sessions, &old).await.is_err());
        assert_eq!(
            with_cookie(&sessions, &new).await.unwrap().name(),
            Some("ada")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_ticket_expires_and_so_does_a_session() {
        let sessions = Sessions::new(true);
        let (id, ticket) = cookie_and_ticket(&sign_in(&sessions, None, r#"{"name":"ada"}"#).await);
        let identity = with_cookie(&sessions, &id).await.unwrap();
        tokio::time::advance(TICKET_LIFETIME + Duration::from_millis(1)).await;
        let query = format!("ticket={ticket}");
        assert_eq!(
            sessions
                .authenticate([], Some(&query))
                .await
                .unwrap_err()
                .status,
            401
        );
        assert!(
            with_cookie(&sessions, &id).await.is_ok(),
            "the session lives on"
        );
        // The session's connections end when it expires, whether or not anyone asks.
        tokio::time::timeout(SESSION_LIFETIME, identity.ended())
            .await
            .expect("an expired session ends its connections");
        assert_eq!(with_cookie(&sessions, &id).await.unwrap_err().status, 401);
    }

    #[tokio::test]
    async fn a_name_is_one_sessions_until_it_ends() {
        let sessions = Sessions::new(true);
        let (ada, _) = cookie_and_ticket(&sign_in(&sessions, None, r#"{"name":"ada"}"#).await);
        let taken = sign_in(&sessions, None, r#"{"name":"ada"}"#).await;
        assert_eq!(taken.status, 409);
        assert!(taken.body.contains("name_taken"));
        // The holder itself may ask again: the same session, a fresh ticket.
        let (same, _) =
            cookie_and_ticket(&sign_in(&sessions, Some(&ada), r#"{"name":"ada"}"#).await);
        assert_eq!(same, ada);
        // Under another name its old session ends, and the old name is free again.
        let (grace, _) =
            cookie_and_ticket(&sign_in(&sessions, Some(&ada), r#"{"name":"grace"}"#).await);
        assert_ne!(grace, ada);
        assert!(with_cookie(&sessions, &ada).await.is_err());
        assert_eq!(
            sign_in(&sessions, None, r#"{"name":"ada"}"#).await.status,
            200
        );
    }

    #[tokio::test]
    async fn a_sign_in_wants_json_with_a_valid_name() {
        let sessions = Sessions::new(true);
        let plain = sessions
            .sign_in(&Config::default(), [], br#"{"name":"ada"}"#)
            .await;
        assert_eq!(plain.status, 415);
        for body in ["", "{}", r#"{"name":""}"#, r#"{"name":"a\u0007b"}"#, "[1]"] {
            let answer = sign_in(&sessions, None, body).await;
            assert_eq!(answer.status, 400, "{body}");
            assert!(answer.set_cookie.is_none());
        }
    }

    #[tokio::test]
    async fn another_site_cannot_sign_its_visitors_in_or_out_or_post() {
        let sessions = Sessions::new(true);
        let (id, _) = cookie_and_ticket(&sign_in(&sessions, None, r#"{"name":"ada"}"#).await);
        let cookie = format!("{SESSION_COOKIE}={id}");
        let foreign = [
            JSON,
            ("Host", &b"chat.example"[..]),
            ("Origin", b"https://evil.example"),
            ("Cookie", cookie.as_bytes()),
        ];
        let config = Config::default();
        assert_eq!(
            sessions
                .sign_in(&config, foreign, br#"{"name":"eve"}"#)
                .await
                .status,
            403
        );
        assert_eq!(sessions.sign_out(&config, foreign).await.status, 403);
        assert_eq!(
            sessions
                .authenticate_post(&config, foreign)
                .await
                .unwrap_err()
                .status,
            403
        );
        assert!(with_cookie(&sessions, &id).await.is_ok(), "still signed in");
    }

    #[tokio::test]
    async fn signing_out_ends_the_sessions_connections_and_clears_the_cookie() {
        let sessions = Sessions::new(true);
        let (id, ticket) = cookie_and_ticket(&sign_in(&sessions, None, r#"{"name":"ada"}"#).await);
        let identity = with_cookie(&sessions, &id).await.unwrap();
        let cookie = format!("{SESSION_COOKIE}={id}");
        let signed_in = sessions.current([("Cookie", cookie.as_bytes())]).await;
        assert_eq!(signed_in.status, 200);
        assert_eq!(signed_in.body, r#"{"name":"ada"}"#);
        let answer = sessions
            .sign_out(&Config::default(), [("Cookie", cookie.as_bytes())])
            .await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            sessions
                .current([("Cookie", cookie.as_bytes())])
                .await
                .status,
            401
        );
        assert!(answer.set_cookie.unwrap().contains("Max-Age=0"));
        tokio::time::timeout(Duration::from_secs(1), identity.ended())
            .await
            .expect("signing out ends the connections");
        assert!(with_cookie(&sessions, &id).await.is_err());
        let query = format!("ticket={ticket}");
        assert!(
            sessions.authenticate([], Some(&query)).await.is_err(),
            "and its tickets"
        );
        assert!(
            sessions
                .authenticate_post(&Config::default(), [("Cookie", cookie.as_bytes())])
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn without_auth_an_identity_never_ends() {
        let ended = tokio::time::timeout(Duration::from_millis(20), Identity::anyone().ended());
        assert!(ended.await.is_err());
    }
}
