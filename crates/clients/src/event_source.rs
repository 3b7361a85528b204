//! An `EventSource` outside the browser: an SSE client that reconnects and resumes,
//! following the rules of the WHATWG HTML standard
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html>).
//!
//! Almost everything a WebSocket client has to invent ([`crate::chat`]) comes with the
//! event stream format:
//!
//! - the server numbers its events with `id:`, and the parser keeps the last one;
//! - after a drop the client waits the reconnection time (the server's `retry:`, or
//!   a default the standard leaves to the browser: Chrome waits 3 s, Firefox 5 s;
//!   this client 3 s) and asks again with `Last-Event-ID: ID`, and the server
//!   resumes right after it;
//! - an event counts only once its blank line arrived, so a drop in the middle of an
//!   event loses nothing: the event comes again after the reconnect, whole.
//!
//! What is left for the client is small, and this module is it: send the right
//! request headers, check the response (any status other than 200, a 204 included,
//! or a content type other than `text/event-stream` stop it for good, as they stop a
//! browser's `EventSource`), follow redirects,
//! feed the body to [`EventStreamParser`] and call
//! [`end_of_stream`](EventStreamParser::end_of_stream) when it ends.
//!
//! One thing the standard does not give, and this client adds: a read timeout. A
//! connection can die without a FIN or a RST (a laptop asleep, a NAT that forgot the
//! mapping), and then the bytes simply stop, forever. This workspace's servers send
//! a heartbeat event (`event: heartbeat`, the interval in milliseconds as its data)
//! first and then whenever they have been quiet for an interval; the client learns
//! the interval from it (15 s until then) and, when no byte at all arrived for
//! [`LIVENESS_TIMEOUT_HEARTBEATS`] intervals, drops the connection and reconnects
//! with `Last-Event-ID` like after any other drop. Heartbeat events are not handed
//! to the caller: they are the connection's, not the application's.
//!
//! The HTTP side is hyper 1 over one plain TCP connection per request (`http://`
//! only). [`EventSource::next`] pulls the next [`Update`]: an event, or a change of
//! the connection's state worth logging.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use wsse_app::sse::{DEFAULT_HEARTBEAT_INTERVAL, LIVENESS_TIMEOUT_HEARTBEATS};
use wsse_wire::sse::{EventStreamParser, Item, ParsedEvent};

/// The reconnection time until the server sends `retry:`: 3 s. The standard leaves
/// the default to the browser; Chrome waits 3 s, Firefox 5 s.
pub const DEFAULT_RECONNECTION_TIME: Duration = Duration::from_secs(3);

/// How many redirects one connection attempt follows.
pub const MAX_REDIRECTS: usize = 10;

/// How the client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSourceOptions {
    /// The wait before reconnecting when the server never sent `retry:`.
    pub default_reconnection_time: Duration,
    /// For tests only: the longest wait before reconnecting, whatever `retry:` says.
    /// `None` (the default) honours `retry:` as sent; fault tests that cut a stream
    /// twenty times set a few milliseconds here so as not to wait 3 s each time.
    pub max_reconnection_time: Option<Duration>,
    /// Redirects followed per attempt before giving up.
    pub max_redirects: usize,
    /// How long connecting and receiving the response head may take.
    pub connect_timeout: Duration,
    /// The server's heartbeat interval until a heartbeat event announces it: the
    /// client takes a stream that sent no byte for [`LIVENESS_TIMEOUT_HEARTBEATS`]
    /// times the interval for dead.
    pub default_heartbeat_interval: Duration,
}

impl Default for EventSourceOptions {
    fn default() -> Self {
        EventSourceOptions {
            default_reconnection_time: DEFAULT_RECONNECTION_TIME,
            max_reconnection_time: None,
            max_redirects: MAX_REDIRECTS,
            connect_timeout: Duration::from_secs(10),
            default_heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
        }
    }
}

/// What [`EventSource::next`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Sending the request.
    Connecting {
        /// The URL asked for.
        url: String,
        /// The `Last-Event-ID` header sent, if any.
        last_event_id: Option<String>,
    },
    /// The server redirected the request.
    Redirected {
        /// 301, 302, 303, 307 or 308.
        status: u16,
        /// Where to.
        to: String,
    },
    /// The stream is open.
    Open {
        /// The URL that answered (after redirects).
        url: String,
    },
    /// An event: what a browser delivers as a `MessageEvent`.
    Event(ParsedEvent),
    /// The server set a new reconnection time with `retry:`.
    ReconnectionTime(Duration),
    /// The server announced a heartbeat interval other than the one the client
    /// assumed: from now on a stream silent for [`LIVENESS_TIMEOUT_HEARTBEATS`] times
    /// it counts as dead.
    HeartbeatInterval(Duration),
    /// The connection ended or could not be made; the client will reconnect.
    Dropped {
        /// Why, in words.
        reason: String,
        /// After how long.
        reconnect_in: Duration,
    },
}

impl fmt::Display for Update {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Update::Connecting {
                url,
                last_event_id: Some(id),
            } => write!(formatter, "connecting to {url} with Last-Event-ID: {id}"),
            Update::Connecting { url, .. } => write!(formatter, "connecting to {url}"),
            Update::Redirected { status, to } => write!(formatter, "redirected ({status}) to {to}"),
            Update::Open { url } => write!(formatter, "open: {url}"),
            Update::Event(event) => write!(
                formatter,
                "event {:?} (id {:?}): {:?}",
                event.event_type, event.last_event_id, event.data
            ),
            Update::ReconnectionTime(time) => write!(
                formatter,
                "the server sets the reconnection time to {} ms",
                time.as_millis()
            ),
            Update::HeartbeatInterval(interval) => write!(
                formatter,
                "the server sends a heartbeat every {} ms: {} ms of silence means a dead connection",
                interval.as_millis(),
                wsse_app::sse::liveness_timeout(*interval).as_millis()
            ),
            Update::Dropped {
                reason,
                reconnect_in,
            } => write!(
                formatter,
                "dropped: {reason}; reconnecting in {} ms",
                reconnect_in.as_millis()
            ),
        }
    }
}

/// Why the client stopped for good: what a browser reports by closing the
/// `EventSource` (`readyState` becomes `CLOSED`) instead of reconnecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSourceError {
    /// The address is not an `http://` URL.
    InvalidUrl {
        /// The address.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// 204 No Content: the server's way of saying "stop reconnecting".
    NoContent {
        /// The URL that answered.
        url: String,
    },
    /// A status that is neither 200 nor a redirect.
    Status {
        /// The URL that answered.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A 200 answer that is not an event stream.
    ContentType {
        /// The URL that answered.
        url: String,
        /// The `Content-Type` it had, if any.
        content_type: Option<String>,
    },
    /// More redirects than [`EventSourceOptions::max_redirects`] in one attempt.
    TooManyRedirects {
        /// The URL the client started from.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// A redirect without a usable `Location`.
    BadRedirect {
        /// The URL that answered.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for EventSourceError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventSourceError::InvalidUrl { url, reason } => {
                write!(formatter, "{url:?} is not an http:// URL: {reason}")
            }
            EventSourceError::NoContent { url } => write!(
                formatter,
                "{url} answered 204 No Content: the server asks the client to stop reconnecting"
            ),
            EventSourceError::Status { url, status } => write!(
                formatter,
                "{url} answered {status}, not 200: not reconnecting"
            ),
            EventSourceError::ContentType { url, content_type } => write!(
                formatter,
                "{url} answered with Content-Type {}, not text/event-stream: not reconnecting",
                content_type
                    .as_deref()
                    .map_or("(none)".to_owned(), |value| format!("{value:?}"))
            ),
            EventSourceError::TooManyRedirects { url, limit } => {
                write!(formatter, "{url}: more than {limit} redirects")
            }
            EventSourceError::BadRedirect { url, reason } => {
                write!(formatter, "{url} redirected badly: {reason}")
            }
        }
    }
}

impl std::error::Error for EventSourceError {}

/// Where the client stands.
#[derive(Debug)]
enum State {
    /// Connect at this instant (now, for the first connection).
    Waiting(Instant),
    /// The wait is over: send the request.
    Connecting,
    /// Reading the body of an open stream; the last bytes came at `last_heard`.
    Open { body: Incoming, last_heard: Instant },
    /// Stopped for good.
    Failed(EventSourceError),
}

/// How one connection attempt went wrong.
enum AttemptError {
    /// Reconnect later (a network error).
    Retry(String),
    /// Stop (the server said so).
    Fatal(EventSourceError),
}

/// A reconnecting SSE client.
///
/// ```no_run
/// # async fn demo() -> Result<(), wsse_clients::event_source::EventSourceError> {
/// use wsse_clients::event_source::{EventSource, EventSourceOptions, Update};
///
/// let mut source = EventSource::new("http://127.0.0.1:3001/events", EventSourceOptions::default())?;
/// loop {
///     match source.next().await? {
///         Update::Event(event) => println!("{}: {}", event.event_type, event.data),
///         other => eprintln!("{other}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct EventSource {
    url: Uri,
    options: EventSourceOptions,
    parser: EventStreamParser,
    state: State,
    /// Updates found and not handed out yet (one chunk can complete many events).
    queued: VecDeque<Update>,
    /// The server's heartbeat interval, as last announced, or the default.
    heartbeat_interval: Duration,
}

impl EventSource {
    /// A client for `url`; it connects on the first call to [`EventSource::next`].
    ///
    /// # Errors
    ///
    /// [`EventSourceError::InvalidUrl`] unless `url` is an `http://` URL with a host.
    pub fn new(url: &str, options: EventSourceOptions) -> Result<Self, EventSourceError> {
        let parsed = parse_http_url(url).map_err(|reason| EventSourceError::InvalidUrl {
            url: url.to_owned(),
            reason,
        })?;
        Ok(EventSource {
            url: parsed,
            parser: EventStreamParser::new(),
            state: State::Waiting(Instant::now()),
            queued: VecDeque::new(),
            heartbeat_interval: options.default_heartbeat_interval,
            options,
        })
    }

    /// The last event ID: what the next reconnection sends as `Last-Event-ID`.
    pub fn last_event_id(&self) -> &str {
        self.parser.last_event_id()
    }

    /// How long the client waits before reconnecting: the server's `retry:`, else the
    /// default, never more than the test-only cap.
    pub fn reconnection_time(&self) -> Duration {
        let time = self.parser.reconnection_time().map_or(
            self.options.default_reconnection_time,
            Duration::from_millis,
        );
        match self.options.max_reconnection_time {
            Some(cap) => time.min(cap),
            None => time,
        }
    }

    // ANCHOR: liveness_timeout
    /// How long an open stream may stay silent (not one byte, comments included)
    /// before the client takes it for dead: [`LIVENESS_TIMEOUT_HEARTBEATS`] times the
    /// server's heartbeat interval (see [`wsse_app::sse::LIVENESS_TIMEOUT_HEARTBEATS`]
    /// for why that many). `EventSource` itself has no such timeout: on a connection
    /// that died without a FIN or a RST, a browser waits forever.
    pub fn liveness_timeout(&self) -> Duration {
        wsse_app::sse::liveness_timeout(self.heartbeat_interval)
    }
    // ANCHOR_END: liveness_timeout

    // ANCHOR: next
    /// The next event or change of state. Waits, connects and reconnects as needed.
    ///
    /// Safe to cancel (in a `select!` or a timeout) while waiting to reconnect or
    /// while reading: nothing is lost. Cancelling while connecting abandons that
    /// attempt, and the next call makes a new one.
    ///
    /// # Errors
    ///
    /// When the client stopped for good; every later call returns the same error.
    pub async fn next(&mut self) -> Result<Update, EventSourceError> {
        loop {
            if let Some(update) = self.queued.pop_front() {
                return Ok(update);
            }
            let liveness_timeout = self.liveness_timeout();
            match &mut self.state {
                State::Failed(error) => return Err(error.clone()),
                State::Waiting(at) => {
                    sleep_until(*at).await;
                    self.state = State::Connecting;
                    let last_event_id = self.last_event_id();
                    return Ok(Update::Connecting {
                        url: self.url.to_string(),
                        last_event_id: (!last_event_id.is_empty())
                            .then(|| last_event_id.to_owned()),
                    });
                }
                State::Connecting => match self.connect().await {
                    Ok((url, body)) => {
                        self.state = State::Open {
                            body,
                            last_heard: Instant::now(),
                        };
                        return Ok(Update::Open { url });
                    }
                    Err(AttemptError::Fatal(error)) => {
                        self.state = State::Failed(error.clone());
                        return Err(error);
                    }
                    Err(AttemptError::Retry(reason)) => return Ok(self.dropped(reason)),
                },
                State::Open { body, last_heard } => {
                    // A read timeout of our own: without it, a connection that died
                    // silently would be read from forever.
                    let deadline = *last_heard + liveness_timeout;
                    let Ok(frame) = timeout_at(deadline, body.frame()).await else {
                        let reason = format!(
                            "no bytes for {} ms ({LIVENESS_TIMEOUT_HEARTBEATS} heartbeats of {} \
                             ms): the connection is presumably dead",
                            liveness_timeout.as_millis(),
                            self.heartbeat_interval.as_millis()
                        );
                        // Dropping the body (in `dropped`) closes the connection.
                        return Ok(self.dropped(reason));
                    };
                    *last_heard = Instant::now();
                    match frame {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                self.feed(&data);
                            }
                        }
                        Some(Err(error)) => {
                            let reason = format!("the connection broke: {}", with_causes(&error));
                            return Ok(self.dropped(reason));
                        }
                        None => {
                            return Ok(self.dropped("the server ended the stream".to_owned()));
                        }
                    }
                }
            }
        }
    }
    // ANCHOR_END: next

    // ANCHOR: dropped
    /// The connection is gone: forget the unfinished event, schedule the reconnection.
    fn dropped(&mut self, reason: String) -> Update {
        // "If the file ends in the middle of an event, before the final empty line,
        // the incomplete event is not dispatched." The last event ID and the
        // reconnection time survive: they are what the reconnection needs.
        self.parser.end_of_stream();
        let reconnect_in = self.reconnection_time();
        self.state = State::Waiting(Instant::now() + reconnect_in);
        Update::Dropped {
            reason,
            reconnect_in,
        }
    }
    // ANCHOR_END: dropped

    /// Parses a piece of the body and queues what it completed.
    fn feed(&mut self, bytes: &[u8]) {
        for item in self.parser.feed(bytes) {
            match item {
                Item::Event(event) => match wsse_app::sse::heartbeat_interval(&event) {
                    // The connection's business, not the caller's.
                    Some(interval) => {
                        if interval != self.heartbeat_interval {
                            self.heartbeat_interval = interval;
                            self.queued.push_back(Update::HeartbeatInterval(interval));
                        }
                    }
                    None => self.queued.push_back(Update::Event(event)),
                },
                Item::Retry(milliseconds) => {
                    self.queued
                        .push_back(Update::ReconnectionTime(Duration::from_millis(
                            milliseconds,
                        )))
                }
                // Comments are keep-alives: EventSource ignores them (their bytes still
                // count as a sign of life).
                Item::Comment(_) => {}
            }
        }
    }

    // ANCHOR: connect
    /// One connection attempt: the request, the redirects, the checks on the answer.
    async fn connect(&mut self) -> Result<(String, Incoming), AttemptError> {
        let mut url = self.url.clone();
        let mut redirects = 0;
        loop {
            let response = self.request(&url).await.map_err(AttemptError::Retry)?;
            let status = response.status();
            if is_redirect(status) {
                if redirects == self.options.max_redirects {
                    return Err(AttemptError::Fatal(EventSourceError::TooManyRedirects {
                        url: self.url.to_string(),
                        limit: self.options.max_redirects,
                    }));
                }
                redirects += 1;
                let bad_redirect = |reason: String| {
                    AttemptError::Fatal(EventSourceError::BadRedirect {
                        url: url.to_string(),
                        reason,
                    })
                };
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .ok_or_else(|| bad_redirect(format!("{status} without a Location")))?;
                let next = resolve_location(&url, location).map_err(bad_redirect)?;
                self.queued.push_back(Update::Redirected {
                    status: status.as_u16(),
                    to: next.to_string(),
                });
                url = next;
                continue;
            }
            let answered = url.to_string();
            if status == StatusCode::NO_CONTENT {
                return Err(AttemptError::Fatal(EventSourceError::NoContent {
                    url: answered,
                }));
            }
            if status != StatusCode::OK {
                return Err(AttemptError::Fatal(EventSourceError::Status {
                    url: answered,
                    status: status.as_u16(),
                }));
            }
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
            if !is_event_stream(content_type.as_deref()) {
                return Err(AttemptError::Fatal(EventSourceError::ContentType {
                    url: answered,
                    content_type,
                }));
            }
            return Ok((answered, response.into_body()));
        }
    }
    // ANCHOR_END: connect

    // ANCHOR: request
    /// Sends one GET on a new connection and waits for the response head.
    async fn request(&self, url: &Uri) -> Result<Response<Incoming>, String> {
        let authority = url.authority().ok_or("the URL has no host")?.clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let path = url.path_and_query().map_or("/", |path| path.as_str());

        let mut request = Request::get(path)
            .header(header::HOST, authority.as_str())
            .header(header::ACCEPT, "text/event-stream")
            // Neither the browser's cache nor a proxy may answer with a stored copy.
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Empty::<Bytes>::new())
            .map_err(|error| format!("cannot build the request: {error}"))?;
        let last_event_id = self.parser.last_event_id();
        if !last_event_id.is_empty() {
            // The parser never keeps an id with a NULL, CR or LF, so this cannot fail
            // on them; other bytes a header cannot hold are a reason to leave it out.
            if let Ok(value) = HeaderValue::from_str(last_event_id) {
                request.headers_mut().insert("last-event-id", value);
            }
        }

        let exchange =
            async {
                let stream = TcpStream::connect((host, port))
                    .await
                    .map_err(|error| format!("cannot connect to {authority}: {error}"))?;
                stream.set_nodelay(true).ok();
                let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|error| {
                        format!(
                            "HTTP handshake with {authority} failed: {}",
                            with_causes(&error)
                        )
                    })?;
                // The connection task drives the socket; it ends when the body is done or
                // dropped.
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                sender.send_request(request).await.map_err(|error| {
                    format!("the request to {url} failed: {}", with_causes(&error))
                })
            };
        timeout(self.options.connect_timeout, exchange)
            .await
            .map_err(|_| {
                format!(
                    "no response from {url} within {} ms",
                    self.options.connect_timeout.as_millis()
                )
            })?
    }
    // ANCHOR_END: request
}

/// An error and its causes, `outer: inner: innermost` (hyper's own messages are terse).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// ANCHOR: is_event_stream
/// Whether a `Content-Type` is `text/event-stream`, in any case, with or without
/// parameters (`text/event-stream; charset=utf-8`).
pub fn is_event_stream(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream"))
}
// ANCHOR_END: is_event_stream

/// The statuses that carry a `Location` to follow.
fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// `url` as an `http://` URI with a host.
fn parse_http_url(url: &str) -> Result<Uri, String> {
    let parsed: Uri = url.parse().map_err(|error| format!("{error}"))?;
    match parsed.scheme_str() {
        Some("http") => {}
        Some(other) => return Err(format!("the scheme {other}: is not supported, only http:")),
        None => return Err("no scheme: expected http://HOST/PATH".to_owned()),
    }
    if parsed.host().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    Ok(parsed)
}

// ANCHOR: resolve_location
/// Where a redirect from `base` to `location` leads: an absolute URL, one without a
/// scheme (`//host/path`), an absolute path (`/path`) or a path relative to the
/// folder of `base`.
///
/// ```
/// use wsse_clients::event_source::resolve_location;
///
/// let base = "http://a:1/x/events?q=1".parse().unwrap();
/// assert_eq!(resolve_location(&base, "/moved").unwrap(), "http://a:1/moved");
/// assert_eq!(resolve_location(&base, "next").unwrap(), "http://a:1/x/next");
/// assert_eq!(resolve_location(&base, "//b:2/y").unwrap(), "http://b:2/y");
/// assert_eq!(resolve_location(&base, "http://c/z").unwrap(), "http://c/z");
/// ```
///
/// # Errors
///
/// A location that is not a valid URL, or leads to another scheme than `http:`.
pub fn resolve_location(base: &Uri, location: &str) -> Result<Uri, String> {
    let location = location.trim();
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map_or("", |authority| authority.as_str());
    let absolute = if location.contains("://") {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let folder = &path[..path.rfind('/').map_or(0, |slash| slash + 1)];
        let folder = if folder.is_empty() { "/" } else { folder };
        format!("{scheme}://{authority}{folder}{location}")
    };
    parse_http_url(&absolute).map_err(|reason| format!("Location {location:?}: {reason}"))
}
// ANCHOR_END: resolve_location

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_content_types() {
        for accepted in [
            "text/event-stream",
            "text/event-stream; charset=utf-8",
            "Text/Event-Stream;charset=UTF-8",
            " text/event-stream ",
        ] {
            assert!(is_event_stream(Some(accepted)), "{accepted}");
        }
        for refused in [
            "text/plain",
            "text/event-streams",
            "application/json; text/event-stream",
            "",
        ] {
            assert!(!is_event_stream(Some(refused)), "{refused}");
        }
        assert!(!is_event_stream(None));
    }

    #[test]
    fn only_http_urls_with_a_host() {
        assert!(parse_http_url("http://127.0.0.1:3001/events").is_ok());
        assert!(parse_http_url("http://[::1]:3001/events").is_ok());
        for wrong in ["https://a/", "ws://a/", "/events", "http://", "not a url"] {
            assert!(parse_http_url(wrong).is_err(), "{wrong}");
        }
        let error = EventSource::new("https://a/", EventSourceOptions::default()).unwrap_err();
        assert!(error.to_string().contains("only http:"), "{error}");
    }

    #[test]
    fn redirect_locations() {
        let base: Uri = "http://a:1/events".parse().unwrap();
        assert_eq!(
            resolve_location(&base, "other?x=1").unwrap(),
            "http://a:1/other?x=1"
        );
        assert!(resolve_location(&base, "https://secure/").is_err());
        let root: Uri = "http://a".parse().unwrap();
        assert_eq!(resolve_location(&root, "next").unwrap(), "http://a/next");
    }

    #[test]
    fn the_reconnection_time_follows_retry_and_the_test_cap() {
        let mut source = EventSource::new("http://a/", EventSourceOptions::default()).unwrap();
        assert_eq!(source.reconnection_time(), Duration::from_secs(3));
        source.feed(b"retry: 250\n");
        assert_eq!(source.reconnection_time(), Duration::from_millis(250));
        assert_eq!(
            source.queued.pop_front(),
            Some(Update::ReconnectionTime(Duration::from_millis(250)))
        );
        source.feed(b"retry: 5000\n");
        assert_eq!(source.reconnection_time(), Duration::from_secs(5));

        let capped = EventSourceOptions {
            max_reconnection_time: Some(Duration::from_millis(40)),
            ..EventSourceOptions::default()
        };
        let mut source = EventSource::new("http://a/", capped).unwrap();
        source.feed(b"retry: 5000\n");
        assert_eq!(source.reconnection_time(), Duration::from_millis(40));
    }

    #[test]
    fn heartbeats_set_the_liveness_timeout_and_are_not_events() {
        let mut source = EventSource::new("http://a/", EventSourceOptions::default()).unwrap();
        // Until the server says otherwise: the servers' default, 15 s.
        assert_eq!(source.liveness_timeout(), Duration::from_millis(37_500));
        source.feed(b"retry: 3000\n\nevent: heartbeat\ndata: 1000\n\nid: 3\ndata: x\n\n");
        assert_eq!(source.liveness_timeout(), Duration::from_millis(2500));
        // The same interval again is no news.
        source.feed(b"event: heartbeat\ndata: 1000\n\n");
        let updates: Vec<Update> = source.queued.drain(..).collect();
        assert_eq!(
            updates,
            [
                Update::ReconnectionTime(Duration::from_secs(3)),
                Update::HeartbeatInterval(Duration::from_secs(1)),
                Update::Event(ParsedEvent {
                    event_type: "message".into(),
                    data: "x".into(),
                    last_event_id: "3".into(),
                }),
            ]
        );
        assert_eq!(source.last_event_id(), "3");
    }

    #[test]
    fn a_drop_discards_the_unfinished_event_and_keeps_the_id() {
        let mut source = EventSource::new("http://a/", EventSourceOptions::default()).unwrap();
        source.feed(b"id: 4\ndata: whole\n\nid: 5\ndata: half");
        assert_eq!(source.queued.len(), 1);
        let update = source.dropped("cut".to_owned());
        assert_eq!(
            update,
            Update::Dropped {
                reason: "cut".into(),
                reconnect_in: DEFAULT_RECONNECTION_TIME
            }
        );
        assert_eq!(source.last_event_id(), "4");
        source.feed(b"\n\ndata: next\n\n");
        let events: Vec<String> = source
            .queued
            .iter()
            .filter_map(|update| match update {
                Update::Event(event) => Some(event.data.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(events, ["whole", "next"]);
    }
}
