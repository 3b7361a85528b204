//! The command line every server of the book shares.
//!
//! ```text
//! --addr IP:PORT          where to listen (each server has its own default port)
//! --heartbeat SECS        WebSocket ping / SSE heartbeat interval, default 15, at least 1
//! --token-interval-ms MS  pause between tokens on /stream, default 50
//! --allow-origin ORIGIN   another origin whose pages may connect (repeatable)
//! --trust-proxy           take our origin from the proxy's Forwarded / X-Forwarded-*
//! --ws-buffer-bytes BYTES WebSocket read/write buffer size, where the framework allows
//! --write-timeout SECS    drop a client that takes no bytes for this long, default 30
//! --redis URL             share the chat with every instance on this Redis
//! ```
//!
//! A WebSocket handshake whose `Origin` is neither the server's own nor one given with
//! `--allow-origin` (`scheme://host[:port]`, like `https://chat.example`) is refused
//! with 403 ([`Config::origin_allowed`]). The server's own origin is `http://` or
//! `https://` followed by the `Host` header. Behind a proxy that changes the host or
//! port the browser saw (nginx on a port of its own, a load balancer under another
//! name), start the server with `--trust-proxy`, and it takes its origin from the
//! proxy's `Forwarded`, or `X-Forwarded-Proto` and `X-Forwarded-Host`, headers instead.
//! Without the flag those headers are ignored, since any client can send them: give it
//! only to a server that nothing but the proxy can reach, behind a proxy that sets
//! them and removes the client's own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser};

// ANCHOR: config
/// The servers' settings. Derives [`clap::Args`], so a server can
/// `#[command(flatten)]` it into its own parser, or call [`Config::parse_with_default`].
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, value_name = "IP:PORT")]
    pub addr: Option<SocketAddr>,

    /// Seconds between WebSocket pings, and of quiet before an SSE heartbeat event.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub heartbeat: u64,

    /// Milliseconds between two tokens on /stream.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub token_interval_ms: u64,

    /// An origin (like http://localhost:8080) whose pages may connect, besides the
    /// server's own. Repeat for more.
    #[arg(long = "allow-origin", value_name = "ORIGIN", value_parser = parse_allowed_origin)]
    pub allow_origin: Vec<String>,

    /// Believe the scheme and host a proxy in front reports (Forwarded,
    /// X-Forwarded-Proto, X-Forwarded-Host) when checking Origin. Only for a server
    /// that nothing but that proxy can reach, and a proxy that sets those headers:
    /// a client could send them itself.
    #[arg(long)]
    pub trust_proxy: bool,

    /// Read and write buffer of each WebSocket connection, in bytes, where the
    /// framework lets us choose (axum, scratch); without it, the framework's default.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(512..))]
    pub ws_buffer_bytes: Option<u32>,

    /// Seconds a connection may refuse every byte we have for it (a client that stopped
    /// reading, or vanished) before it is dropped. See [`crate::listener`].
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub write_timeout: u64,

    /// Seconds a client has for each request head, from the moment the connection
    /// opens or its previous response went out; a client that is slower (one that
    /// sends a byte now and then to hold the connection) is dropped. See
    /// [`crate::limits`].
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub request_head_timeout: u64,

    /// The most WebSockets and event streams held open at once, all routes together;
    /// one more is refused with 503 and `Retry-After`. Keep it below the process's
    /// file descriptor limit (`ulimit -n`). See [`crate::limits`].
    #[arg(
        long,
        value_name = "COUNT",
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_connections: u64,

    /// The most of those one client address may hold (an IPv6 client: its /64); one
    /// more is refused with 429 and `Retry-After`. With `--trust-proxy`, the address
    /// is the one the proxy reports. 0 turns the limit off. See [`crate::limits`].
    #[arg(
        long,
        value_name = "COUNT",
        default_value_t = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
    )]
    pub max_connections_per_address: u64,

    /// Chat messages a WebSocket may send per second, after a burst of
    /// `--message-burst`; one more is refused with `rate_limited`, and a client that
    /// keeps on is closed with 1008. 0 turns the limit off. See [`crate::limits`].
    #[arg(long, value_name = "PER_SECOND", default_value_t = 10)]
    pub message_rate: u32,

    /// Chat messages a WebSocket may send at once before `--message-rate` applies.
    #[arg(
        long,
        value_name = "COUNT",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub message_burst: u32,

    /// Sign-in required: `POST /session` with a name sets a session cookie and gives a
    /// ticket; the chat routes refuse everyone else with 401, and the name in chat
    /// messages is the session's. See [`crate::auth`].
    #[arg(long)]
    pub auth: bool,

    /// Share the chat (seqs, history, presence) with every other instance started with
    /// the same Redis, like redis://127.0.0.1:6379. Without it the chat lives in this
    /// process's memory. See [`crate::redis_hub`].
    #[arg(long, value_name = "URL", value_parser = parse_redis_url)]
    pub redis: Option<String>,

    /// Decline permessage-deflate (RFC 7692) on WebSocket connections. Only the
    /// from-scratch server can compress; the framework servers always decline.
    #[arg(long)]
    pub no_deflate: bool,

    /// The largest permessage-deflate window, in bits (9 to 15), for the server's
    /// messages and, when the client lets it choose, for the client's.
    #[arg(
        long,
        value_name = "BITS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u8).range(9..=15)
    )]
    pub deflate_window_bits: u8,

    /// Start every compressed message with an empty window, in both directions: less
    /// memory per connection, less compression.
    #[arg(long)]
    pub deflate_no_context_takeover: bool,

    /// Serve HTTPS (TLS 1.2 and 1.3, with rustls), offering HTTP/2 where the server
    /// can speak it. Without `--cert` and `--key`, with a certificate for `localhost`
    /// and `127.0.0.1` made at start-up. See [`crate::tls`].
    #[arg(long)]
    pub tls: bool,

    /// With `--tls`: the certificate chain to present, a PEM file.
    #[arg(long, value_name = "PEM", requires_all = ["tls", "key"])]
    pub cert: Option<std::path::PathBuf>,

    /// With `--tls`: the certificate's private key, a PEM file.
    #[arg(long, value_name = "PEM", requires_all = ["tls", "cert"])]
    pub key: Option<std::path::PathBuf>,
}
// ANCHOR_END: config

/// `--max-connections` unless given: above the benchmarks' ten thousand idle
/// connections, below the 20,000 file descriptors of the test machine.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 16_384;

/// `--max-connections-per-address` unless given: room for a household or an office
/// behind one NAT address, each with a few tabs open, while a single script takes at
/// most a sixty-fourth of the default ceiling.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: u64 = 256;

/// The parser around [`Config`] used by [`Config::parse_with_default`].
#[derive(Debug, Parser)]
#[command(about = "A chat over WebSocket and a token stream over Server-Sent Events")]
struct CommandLine {
    #[command(flatten)]
    config: Config,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: None,
            heartbeat: 15,
            token_interval_ms: 50,
            allow_origin: Vec::new(),
            trust_proxy: false,
            ws_buffer_bytes: None,
            write_timeout: 30,
            request_head_timeout: 10,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            message_rate: 10,
            message_burst: 20,
            auth: false,
            redis: None,
            no_deflate: false,
            deflate_window_bits: 15,
            deflate_no_context_takeover: false,
            tls: false,
            cert: None,
            key: None,
        }
    }
}

impl Config {
    /// A new chat connection's message rate, its bucket full.
    pub fn message_rate(&self) -> crate::limits::MessageRate {
        crate::limits::MessageRate::new(
            self.message_rate,
            self.message_burst,
            tokio::time::Instant::now(),
        )
    }

    /// What permessage-deflate offers a server that can compress accepts, or `None`
    /// with `--no-deflate`.
    pub fn deflate(&self) -> Option<wsse_wire::deflate::ServerConfig> {
        (!self.no_deflate).then_some(wsse_wire::deflate::ServerConfig {
            server_no_context_takeover: self.deflate_no_context_takeover,
            client_no_context_takeover: self.deflate_no_context_takeover,
            server_max_window_bits: self.deflate_window_bits,
            client_max_window_bits: self.deflate_window_bits,
        })
    }

    /// Where [`Config::addr`] points when no address was given at all.
    pub const FALLBACK_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 3000);

    /// Parses the process's arguments, with `default_addr` as the `--addr` default
    /// (shown in `--help`). On an error or `--help`, prints and exits, as clap does.
    pub fn parse_with_default(default_addr: &str) -> Config {
        Config::try_parse_from_with_default(std::env::args_os(), default_addr)
            .unwrap_or_else(|error| error.exit())
    }

    /// Like [`Config::parse_with_default`], but from the given arguments (the first is
    /// the program name) and returning the error instead of exiting.
    ///
    /// # Errors
    ///
    /// A [`clap::Error`] for an unknown flag, a bad value, `--help` or `--version`.
    pub fn try_parse_from_with_default<I, T>(
        arguments: I,
        default_addr: &str,
    ) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = CommandLine::command().mut_arg("addr", |argument| {
            argument.default_value(default_addr.to_owned())
        });
        let matches = command.try_get_matches_from(arguments)?;
        Ok(CommandLine::from_arg_matches(&matches)?.config)
    }

    /// The address to listen on: `--addr`, else the default given to
    /// [`Config::parse_with_default`], else [`Config::FALLBACK_ADDR`].
    pub fn addr(&self) -> SocketAddr {
        self.addr.unwrap_or(Self::FALLBACK_ADDR)
    }

    /// `--heartbeat` as a duration.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat)
    }

    /// `--write-timeout` as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout)
    }

    /// `--request-head-timeout` as a duration.
    pub fn request_head_timeout(&self) -> Duration {
        Duration::from_secs(self.request_head_timeout)
    }

    /// `--token-interval-ms` as a duration.
    pub fn token_interval(&self) -> Duration {
        Duration::from_millis(self.token_interval_ms)
    }

    // ANCHOR: origin_allowed
    /// Whether a request with these headers may use the chat.
    ///
    /// Browsers send `Origin` with every WebSocket handshake and every cross-site
    /// request, and they let any page open a WebSocket to any server, so without this
    /// check a page on another site could chat in the name of the user who visits it
    /// (cross-site WebSocket hijacking). Allowed are:
    ///
    /// - no `Origin` at all: not a browser (curl, a test client), nothing to protect;
    /// - the server's own origin, `http://` or `https://` followed by the `Host`
    ///   header: our own page, served directly or through a proxy that ends TLS and
    ///   passes the host on;
    /// - one of the `--allow-origin` values.
    ///
    /// With `--trust-proxy`, the server's own origin is what the proxy in front says
    /// the browser saw: the `proto=` and `host=` of the last element of `Forwarded`
    /// (RFC 7239) if the request has that header, else the last values of
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` (the last, as a proxy appends its
    /// own to the client's). What the proxy leaves out comes from `Host`; a report
    /// that does not parse leaves only the allow-list. Without the flag these headers
    /// are ignored: any client can send them.
    ///
    /// Scheme and host compare case-insensitively, a default port (80 for http, 443
    /// for https) may be written or left out, and a trailing slash is ignored.
    /// Everything else (including the `null` origin of sandboxed pages and files, and
    /// a second `Origin`) is refused; the glue answers 403 Forbidden.
    ///
    /// `headers` are the request's header fields as (name, raw value) pairs, the shape
    /// the wire crate's `validate_upgrade_request` takes: each server passes its own.
    pub fn origin_allowed<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> bool {
        let headers = OriginHeaders::collect(headers);
        let origin = match headers.origins.as_slice() {
            [] => return true,
            [origin] => std::str::from_utf8(origin).ok().and_then(Origin::parse),
            _ => None,
        };
        let Some(origin) = origin else {
            return false;
        };
        let own = if self.trust_proxy {
            headers.own_origin_reported_by_proxy()
        } else {
            headers.own_origin()
        };
        own.is_some_and(|own| own.is(&origin))
            || self
                .allow_origin
                .iter()
                .any(|allowed| Origin::parse(allowed).as_ref() == Some(&origin))
    }
    // ANCHOR_END: origin_allowed

    /// Whether the browser reached us over HTTPS, as far as we can know: only a proxy
    /// in front ends TLS for these servers, so only with `--trust-proxy` and its
    /// report (`proto=https`, `X-Forwarded-Proto: https`). Decides `Secure` on cookies.
    pub fn served_over_https<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> bool {
        self.trust_proxy
            && OriginHeaders::collect(headers)
                .own_origin_reported_by_proxy()
                .and_then(|origin| origin.scheme)
                .as_deref()
                == Some("https")
    }

    // ANCHOR: client_address
    /// The client a connection counts against in [`crate::limits`]: the peer of the
    /// TCP connection (`None` if the framework does not say), or with `--trust-proxy`
    /// the client the proxy in front reports, since every connection comes from the
    /// proxy then: the `for=` of the last element of `Forwarded` if the request has
    /// that header, else the last `X-Forwarded-For` address (a proxy appends the
    /// address it saw to the client's list, which the client may have forged). A
    /// report without an IP address (`for=unknown`, an obfuscated `for=_hidden`)
    /// leaves the peer.
    pub fn client_address<'a>(
        &self,
        peer: Option<IpAddr>,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Option<IpAddr> {
        if !self.trust_proxy {
            return peer;
        }
        let (mut forwarded, mut forwarded_for) = (None, None);
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("forwarded") {
                forwarded = Some(value);
            } else if name.eq_ignore_ascii_case("x-forwarded-for") {
                forwarded_for = Some(value);
            }
        }
        let reported = match forwarded {
            Some(forwarded) => {
                let element = std::str::from_utf8(forwarded)
                    .ok()
                    .and_then(last_forwarded_element);
                element.and_then(|element| {
                    let (_, node) = element.into_iter().find(|(name, _)| name == "for")?;
                    parse_node(&node)
                })
            }
            None => last_list_value(forwarded_for)
                .flatten()
                .and_then(|node| parse_node(&node)),
        };
        reported.or(peer)
    }
    // ANCHOR_END: client_address
}

/// The IP address of a node as `Forwarded` or `X-Forwarded-For` write it: `192.0.2.1`,
/// `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(address) = node.parse::<SocketAddr>() {
        return Some(address.ip());
    }
    let bracketed = node.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The headers [`Config::origin_allowed`] reads, from one pass over the request's.
#[derive(Debug, Default)]
struct OriginHeaders<'a> {
    /// Every `Origin` field (a browser sends one).
    origins: Vec<&'a [u8]>,
    /// The first `Host`.
    host: Option<&'a [u8]>,
    /// The last `Forwarded`, `X-Forwarded-Proto` and `X-Forwarded-Host`: a proxy adds
    /// its own after the client's.
    forwarded: Option<&'a [u8]>,
    forwarded_proto: Option<&'a [u8]>,
    forwarded_host: Option<&'a [u8]>,
}

impl<'a> OriginHeaders<'a> {
    fn collect(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> OriginHeaders<'a> {
        let mut found = OriginHeaders::default();
        for (name, value) in headers {
            let is = |wanted: &str| name.eq_ignore_ascii_case(wanted);
            if is("origin") {
                found.origins.push(value);
            } else if is("host") {
                found.host.get_or_insert(value);
            } else if is("forwarded") {
                found.forwarded = Some(value);
            } else if is("x-forwarded-proto") {
                found.forwarded_proto = Some(value);
            } else if is("x-forwarded-host") {
                found.forwarded_host = Some(value);
            }
        }
        found
    }

    /// Our origin as the `Host` header names it, over either scheme.
    fn own_origin(&self) -> Option<OwnOrigin> {
        Some(OwnOrigin {
            scheme: None,
            authority: Authority::parse(text(self.host)?)?,
        })
    }

    /// Our origin as the proxy reports it, `Host` and either scheme for what it does
    /// not say; `None` when its report does not parse.
    fn own_origin_reported_by_proxy(&self) -> Option<OwnOrigin> {
        let (scheme, host) = match self.forwarded {
            Some(forwarded) => {
                let element = last_forwarded_element(std::str::from_utf8(forwarded).ok()?)?;
                let parameter = |name: &str| {
                    element
                        .iter()
                        .find(|(parameter, _)| parameter == name)
                        .map(|(_, value)| value.clone())
                };
                (parameter("proto"), parameter("host"))
            }
            None => (
                last_list_value(self.forwarded_proto)?,
                last_list_value(self.forwarded_host)?,
            ),
        };
        let authority = match host {
            Some(host) => Authority::parse(&host)?,
            None => Authority::parse(text(self.host)?)?,
        };
        Some(OwnOrigin {
            scheme: scheme.map(|scheme| scheme.to_ascii_lowercase()),
            authority,
        })
    }
}

/// A header's value as text, if it is there and UTF-8.
fn text(value: Option<&[u8]>) -> Option<&str> {
    std::str::from_utf8(value?).ok()
}

/// The last item of a comma-separated header such as `X-Forwarded-Proto: https,
/// http`: `Some(None)` without the header (or with an empty one), `None` when it is
/// not text.
fn last_list_value(value: Option<&[u8]>) -> Option<Option<String>> {
    let Some(value) = value else {
        return Some(None);
    };
    let last = std::str::from_utf8(value).ok()?.rsplit(',').next()?.trim();
    Some((!last.is_empty()).then(|| last.to_owned()))
}

/// The parameters of the last element of a `Forwarded` header (RFC 7239, section 4),
/// names lowercase and quoted values unquoted. In
/// `for=192.0.2.60;proto=http, for=198.51.100.17;proto=https;host="a.example:8443"`
/// the second element is the one the proxy nearest to us added. `None` when the
/// value does not parse, or names a parameter twice in that element.
fn last_forwarded_element(value: &str) -> Option<Vec<(String, String)>> {
    let mut elements: Vec<Vec<(String, String)>> = vec![Vec::new()];
    let mut characters = value.chars().peekable();
    loop {
        while characters.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        match characters.peek() {
            None => break,
            Some(',') => {
                characters.next();
                elements.push(Vec::new());
                continue;
            }
            Some(';') => {
                characters.next();
                continue;
            }
            Some(_) => {}
        }
        let mut name = String::new();
        while let Some(c) = characters.next_if(|c| is_token_character(*c)) {
            name.push(c.to_ascii_lowercase());
        }
        if name.is_empty() || characters.next() != Some('=') {
            return None;
        }
        let mut parameter_value = String::new();
        if characters.next_if_eq(&'"').is_some() {
            loop {
                match characters.next()? {
                    '"' => break,
                    '\\' => parameter_value.push(characters.next()?),
                    c => parameter_value.push(c),
                }
            }
        } else {
            while let Some(c) = characters.next_if(|c| is_token_character(*c)) {
                parameter_value.push(c);
            }
            if parameter_value.is_empty() {
                return None;
            }
        }
        while characters.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        if !matches!(characters.peek(), None | Some(',' | ';')) {
            return None;
        }
        let element = elements.last_mut()?;
        if element.iter().any(|(known, _)| *known == name) {
            return None;
        }
        element.push((name, parameter_value));
    }
    // Empty elements (`a=1, , b=2`) are allowed in a list, and skipped.
    elements
        .into_iter()
        .rev()
        .find(|element| !element.is_empty())
}

/// A `tchar` of RFC 9110: what a token, such as a parameter name, is made of.
fn is_token_character(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// An origin as compared: `scheme://host[:port]` with scheme and host lowercase and
/// the default port of http and https filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Parses `scheme://host[:port]`, a trailing slash allowed; `None` for anything
    /// else, such as `null`, a path or user information.
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, authority) = without_trailing_slash(text).split_once("://")?;
        let scheme_is_valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_is_valid {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let Authority { host, port } = Authority::parse(authority)?;
        let port = port.or_else(|| default_port(&scheme));
        Some(Origin { scheme, host, port })
    }
}

/// What the browser saw of this server: a scheme if it is known, a host and maybe a
/// port.
#[derive(Debug)]
struct OwnOrigin {
    /// `None` when nobody said: then http and https are both ours.
    scheme: Option<String>,
    authority: Authority,
}

impl OwnOrigin {
    fn is(&self, origin: &Origin) -> bool {
        let scheme_matches = match &self.scheme {
            Some(scheme) => *scheme == origin.scheme,
            None => origin.scheme == "http" || origin.scheme == "https",
        };
        scheme_matches
            && self.authority.host == origin.host
            && self.authority.port.or_else(|| default_port(&origin.scheme)) == origin.port
    }
}

/// `host[:port]`, as in a `Host` header or after an origin's `://`; the host
/// lowercase, an IPv6 address in its brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    fn parse(text: &str) -> Option<Authority> {
        let (host, port) = if text.starts_with('[') {
            let end = text.find(']')? + 1;
            let (host, rest) = text.split_at(end);
            let address = &host[1..end - 1];
            if address.is_empty()
                || !address
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || ":.".contains(c))
            {
                return None;
            }
            let port = if rest.is_empty() {
                None
            } else {
                Some(rest.strip_prefix(':')?)
            };
            (host, port)
        } else {
            let (host, port) = match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            };
            let host_is_valid = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
            if !host_is_valid {
                return None;
            }
            (host, port)
        };
        let port = match port {
            None => None,
            Some(digits) => {
                if digits.is_empty()
                    || digits.len() > 5
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                Some(digits.parse().ok()?)
            }
        };
        Some(Authority {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// The port an origin of this scheme has when it names none.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn without_trailing_slash(origin: &str) -> &str {
    origin.strip_suffix('/').unwrap_or(origin)
}

/// `--allow-origin`'s check: an origin, `scheme://host[:port]`.
fn parse_allowed_origin(text: &str) -> Result<String, String> {
    match Origin::parse(text) {
        Some(_) => Ok(text.to_owned()),
        None => {
            Err("expected an origin, scheme://host[:port], like http://localhost:8080".to_owned())
        }
    }
}

/// `--redis`: a `redis://` URL (host, optional port and database), checked by the
/// client crate at start-up, so that a typo fails before the server listens.
fn parse_redis_url(text: &str) -> Result<String, String> {
    if !text.starts_with("redis://") {
        return Err(format!(
            "{text:?} is not a redis:// URL (like redis://127.0.0.1:6379)"
        ));
    }
    redis::Client::open(text)
        .map(|_| text.to_owned())
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from_with_default(
            std::iter::once("server").chain(arguments.iter().copied()),
            "127.0.0.1:3001",
        )
    }

    #[test]
    fn deflate_is_accepted_by_default_and_its_flags_shape_it() {
        let default = parse(&[]).unwrap().deflate().expect("on by default");
        assert_eq!(default, wsse_wire::deflate::ServerConfig::default());
        assert_eq!(parse(&["--no-deflate"]).unwrap().deflate(), None);
        let small = parse(&[
            "--deflate-window-bits",
            "10",
            "--deflate-no-context-takeover",
        ])
        .unwrap()
        .deflate()
        .unwrap();
        assert_eq!(small.server_max_window_bits, 10);
        assert_eq!(small.client_max_window_bits, 10);
        assert!(small.server_no_context_takeover && small.client_no_context_takeover);
        for bad in ["8", "16", "x"] {
            assert!(parse(&["--deflate-window-bits", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn redis_is_off_by_default_and_takes_only_redis_urls() {
        assert_eq!(parse(&[]).unwrap().redis, None);
        assert_eq!(
            parse(&["--redis", "redis://127.0.0.1:6379"])
                .unwrap()
                .redis
                .as_deref(),
            Some("redis://127.0.0.1:6379")
        );
        for bad in [
            "127.0.0.1:6379",
            "http://127.0.0.1:6379",
            "redis://:x:y:z/q",
        ] {
            assert!(parse(&["--redis", bad]).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.addr(), "127.0.0.1:3001".parse().unwrap());
        assert_eq!(config.heartbeat_interval(), Duration::from_secs(15));
        assert_eq!(config.token_interval(), Duration::from_millis(50));
        assert!(config.allow_origin.is_empty());
        assert!(!config.trust_proxy);
        assert_eq!(config.ws_buffer_bytes, None);
        assert_eq!(config.write_timeout(), Duration::from_secs(30));
        // The limits' defaults are written twice, for clap and for `Default`: the same.
        let fallback = Config::default();
        assert_eq!(
            (
                config.request_head_timeout,
                config.max_connections,
                config.max_connections_per_address,
                config.message_rate,
                config.message_burst
            ),
            (
                fallback.request_head_timeout,
                fallback.max_connections,
                fallback.max_connections_per_address,
                fallback.message_rate,
                fallback.message_burst
            )
        );
        assert_eq!(Config::default().addr(), Config::FALLBACK_ADDR);
        assert_eq!(
            Config {
                addr: Some("127.0.0.1:3001".parse().unwrap()),
                ..Config::default()
            },
            config
        );
    }

    #[test]
    fn every_flag() {
        let config = parse(&[
            "--addr",
            "0.0.0.0:8080",
            "--heartbeat",
            "1",
            "--token-interval-ms",
            "0",
            "--allow-origin",
            "http://a.test",
            "--allow-origin",
            "http://b.test:81/",
            "--ws-buffer-bytes",
            "4096",
            "--write-timeout",
            "2",
            "--trust-proxy",
        ])
        .unwrap();
        assert_eq!(config.addr(), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.heartbeat, 1);
        assert_eq!(config.token_interval(), Duration::ZERO);
        assert_eq!(config.allow_origin, ["http://a.test", "http://b.test:81/"]);
        assert_eq!(config.ws_buffer_bytes, Some(4096));
        assert_eq!(config.write_timeout(), Duration::from_secs(2));
        assert!(config.trust_proxy);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--heartbeat", "0"]).is_err());
        assert!(parse(&["--write-timeout", "0"]).is_err());
        assert!(parse(&["--heartbeat", "-1"]).is_err());
        assert!(parse(&["--addr", "localhost"]).is_err());
        assert!(parse(&["--token-interval-ms", "x"]).is_err());
        assert!(parse(&["--unknown"]).is_err());
        assert!(parse(&["--ws-buffer-bytes", "100"]).is_err());
    }

    #[test]
    fn help_shows_the_default_address() {
        let help = parse(&["--help"]).unwrap_err().to_string();
        assert!(help.contains("[default: 127.0.0.1:3001]"), "{help}");
        assert!(help.contains("--allow-origin <ORIGIN>"), "{help}");
        assert!(help.contains("--trust-proxy"), "{help}");
    }

    /// `origin_allowed` for headers given as text.
    fn allowed(config: &Config, headers: &[(&str, &str)]) -> bool {
        config.origin_allowed(
            headers
                .iter()
                .map(|(name, value)| (*name, value.as_bytes())),
        )
    }

    /// `origin_allowed` for `Origin: origin`, `Host: host` and the `extra` headers.
    fn allows(config: &Config, origin: &str, host: &str, extra: &[(&str, &str)]) -> bool {
        let mut headers = vec![("Origin", origin), ("Host", host)];
        headers.extend_from_slice(extra);
        allowed(config, &headers)
    }

    #[test]
    fn no_origin_is_not_a_browser() {
        let config = Config::default();
        assert!(allowed(&config, &[]));
        assert!(allowed(&config, &[("Host", "127.0.0.1:3001")]));
        assert!(allowed(&config, &[("X-Forwarded-Host", "evil.test")]));
    }

    #[test]
    fn our_own_origin_over_http_and_https() {
        let config = Config::default();
        let host = "127.0.0.1:3001";
        assert!(allows(&config, "http://127.0.0.1:3001", host, &[]));
        // A proxy that ends TLS keeps the host: the browser saw https.
        assert!(allows(&config, "https://127.0.0.1:3001", host, &[]));
        assert!(allows(&config, "http://127.0.0.1:3001/", host, &[]));
        assert!(allows(&config, "http://[::1]:3001", "[::1]:3001", &[]));
        assert!(!allows(&config, "ws://127.0.0.1:3001", host, &[]));
        assert!(!allows(&config, "http://127.0.0.1:3001/chat", host, &[]));
        assert!(!allows(&config, "http://user@127.0.0.1:3001", host, &[]));
        assert!(!allows(
            &config,
            "http://127.0.0.1:3001.evil.test",
            host,
            &[]
        ));
        assert!(!allows(&config, "http://evil.test", host, &[]));
        // Without a Host there is no own origin.
        assert!(!allowed(&config, &[("Origin", "http://127.0.0.1:3001")]));
    }

    #[test]
    fn scheme_and_host_compare_without_case() {
        let config = Config::default();
        assert!(allows(
            &config,
            "http://localhost:3001",
            "LocalHost:3001",
            &[]
        ));
        assert!(allows(
            &config,
            "HTTPS://LOCALHOST:3001",
            "localhost:3001",
            &[]
        ));
        assert!(allows(&config, "http://[::AB]:3001", "[::ab]:3001", &[]));
    }

    #[test]
    fn ports_count_and_a_default_port_may_be_left_out() {
        let config = Config::default();
        assert!(!allows(
            &config,
            "http://127.0.0.1:3002",
            "127.0.0.1:3001",
            &[]
        ));
        assert!(!allows(&config, "http://127.0.0.1", "127.0.0.1:3001", &[]));
        assert!(!allows(&config, "http://127.0.0.1:3001", "127.0.0.1", &[]));
        // Browsers leave a default port out of Origin; a Host may name it.
        assert!(allows(&config, "https://chat.example", "chat.example", &[]));
        assert!(allows(
            &config,
            "https://chat.example",
            "chat.example:443",
            &[]
        ));
        assert!(allows(
            &config,
            "http://chat.example",
            "chat.example:80",
            &[]
        ));
        assert!(allows(
            &config,
            "https://chat.example:443",
            "chat.example",
            &[]
        ));
        assert!(!allows(
            &config,
            "https://chat.example",
            "chat.example:80",
            &[]
        ));
        assert!(!allows(
            &config,
            "http://chat.example",
            "chat.example:443",
            &[]
        ));
        assert!(!allows(
            &config,
            "https://chat.example",
            "chat.example:8443",
            &[]
        ));
        assert!(!allows(&config, "http://127.0.0.1:", "127.0.0.1:", &[]));
        assert!(!allows(
            &config,
            "http://127.0.0.1:99999",
            "127.0.0.1:99999",
            &[]
        ));
    }

    #[test]
    fn null_empty_repeated_and_unreadable_origins_are_refused() {
        for config in [Config::default(), parse(&["--trust-proxy"]).unwrap()] {
            let host = "127.0.0.1:3001";
            assert!(!allows(&config, "null", host, &[]));
            assert!(!allows(&config, "", host, &[]));
            let own = "http://127.0.0.1:3001";
            assert!(!allowed(
                &config,
                &[("Origin", own), ("Origin", own), ("Host", host)]
            ));
            let unreadable = [
                ("Origin", &b"http://127.0.0.1:3001\xff"[..]),
                ("Host", host.as_bytes()),
            ];
            assert!(!config.origin_allowed(unreadable));
        }
    }

    #[test]
    fn the_allow_list() {
        let config = parse(&[
            "--allow-origin",
            "http://trusted.test:8080/",
            "--allow-origin",
            "https://Other.test",
        ])
        .unwrap();
        let host = "127.0.0.1:3001";
        assert!(allows(&config, "http://trusted.test:8080", host, &[]));
        assert!(allows(&config, "http://trusted.test:8080/", host, &[]));
        assert!(allows(&config, "http://TRUSTED.test:8080", host, &[]));
        assert!(allowed(&config, &[("Origin", "http://trusted.test:8080")]));
        assert!(!allows(&config, "http://trusted.test:8081", host, &[]));
        assert!(!allows(&config, "https://trusted.test:8080", host, &[]));
        assert!(allows(&config, "https://other.test", host, &[]));
        assert!(allows(&config, "https://other.test:443", host, &[]));
        assert!(!allows(&config, "http://other.test", host, &[]));
        // Still our own origin, still nothing else.
        assert!(allows(&config, "http://127.0.0.1:3001", host, &[]));
        assert!(!allows(&config, "http://evil.test", host, &[]));
    }

    #[test]
    fn allow_origin_takes_only_origins() {
        for wrong in [
            "localhost:8080",
            "null",
            "http://a.test/chat",
            "http://",
            "*",
        ] {
            assert!(parse(&["--allow-origin", wrong]).is_err(), "{wrong}");
        }
        assert!(parse(&["--allow-origin", "chrome-extension://abcdef"]).is_ok());
    }

    /// What nginx in front (`deploy/nginx/wsse.conf`, on port 8443) sends: `Host` without
    /// the port (`$host`), and what the browser saw in `X-Forwarded-*`.
    const NGINX: &[(&str, &str)] = &[
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "localhost:8443"),
    ];

    #[test]
    fn forwarded_headers_are_ignored_without_the_flag() {
        let config = Config::default();
        let host = "127.0.0.1:3001";
        // Forged by a client that reaches the server directly.
        let forged_x = [
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.test"),
        ];
        assert!(!allows(&config, "https://evil.test", host, &forged_x));
        let forged = [("Forwarded", "proto=https;host=evil.test")];
        assert!(!allows(&config, "https://evil.test", host, &forged));
        // So behind nginx on a port of its own, the browser's origin is not recognised.
        assert!(!allows(
            &config,
            "https://localhost:8443",
            "localhost",
            NGINX
        ));
        // The Host nginx passes on still counts, over both schemes.
        assert!(allows(&config, "https://localhost", "localhost", NGINX));
        assert!(allows(&config, "http://127.0.0.1:3001", host, &forged_x));
    }

    #[test]
    fn x_forwarded_headers_with_the_flag() {
        let config = parse(&["--trust-proxy"]).unwrap();
        assert!(allows(
            &config,
            "https://localhost:8443",
            "localhost",
            NGINX
        ));
        assert!(allows(
            &config,
            "https://LocalHost:8443/",
            "localhost",
            NGINX
        ));
        // The scheme is known now, and the port.
        assert!(!allows(
            &config,
            "http://localhost:8443",
            "localhost",
            NGINX
        ));
        assert!(!allows(&config, "https://localhost", "localhost", NGINX));
        assert!(!allows(&config, "https://evil.test", "localhost", NGINX));
        // A proxy appends to what the client sent: the last value is the proxy's.
        let appended = [
            ("X-Forwarded-Proto", "http, HTTPS"),
            ("X-Forwarded-Host", "evil.test, localhost:8443"),
        ];
        assert!(allows(
            &config,
            "https://localhost:8443",
            "localhost",
            &appended
        ));
        assert!(!allows(
            &config,
            "https://evil.test",
            "localhost",
            &appended
        ));
        let repeated = [
            ("X-Forwarded-Host", "evil.test"),
            ("X-Forwarded-Host", "localhost:8443"),
        ];
        assert!(allows(
            &config,
            "https://localhost:8443",
            "localhost",
            &repeated
        ));
        assert!(!allows(&config, "http://evil.test", "localhost", &repeated));
        // What the proxy does not say comes from Host, over either scheme.
        let proto_only = [("X-Forwarded-Proto", "https")];
        assert!(allows(
            &config,
            "https://localhost:8443",
            "localhost:8443",
            &proto_only
        ));
        assert!(!allows(
            &config,
            "http://localhost:8443",
            "localhost:8443",
            &proto_only
        ));
        let host_only = [("X-Forwarded-Host", "chat.example")];
        assert!(allows(
            &config,
            "http://chat.example",
            "127.0.0.1:3001",
            &host_only
        ));
        assert!(allows(
            &config,
            "https://chat.example",
            "127.0.0.1:3001",
            &host_only
        ));
        assert!(!allows(
            &config,
            "http://127.0.0.1:3001",
            "127.0.0.1:3001",
            &host_only
        ));
        // No forwarded headers (a request that did not come through the proxy): Host.
        assert!(allows(
            &config,
            "http://127.0.0.1:3001",
            "127.0.0.1:3001",
            &[]
        ));
        // A host that is not one.
        let bad_host = [("X-Forwarded-Host", "evil.test/x")];
        assert!(!allows(
            &config,
            "http://evil.test",
            "127.0.0.1:3001",
            &bad_host
        ));
        assert!(!allows(
            &config,
            "http://127.0.0.1:3001",
            "127.0.0.1:3001",
            &bad_host
        ));
    }

    #[test]
    fn the_forwarded_header_with_the_flag() {
        let config = parse(&["--trust-proxy"]).unwrap();
        let host = "127.0.0.1:3001";
        let one = [(
            "Forwarded",
            "for=192.0.2.60;proto=https;host=\"localhost:8443\"",
        )];
        assert!(allows(&config, "https://localhost:8443", host, &one));
        assert!(!allows(&config, "http://localhost:8443", host, &one));
        assert!(!allows(&config, "http://127.0.0.1:3001", host, &one));
        // Several elements: the last is the nearest proxy's; commas and semicolons
        // inside quotes do not separate anything, and a backslash quotes a character.
        let several = [(
            "Forwarded",
            "proto=https;host=evil.test, for=\"[2001:db8:cafe::17]:4711\";by=\"a,b;c\";Proto=HTTPS;HOST=\"local\\host:8443\"",
        )];
        assert!(allows(&config, "https://localhost:8443", host, &several));
        assert!(!allows(&config, "https://evil.test", host, &several));
        let spaced = [(
            "Forwarded",
            "proto=http , for=unknown;proto=https;host=chat.example ,",
        )];
        assert!(allows(&config, "https://chat.example", host, &spaced));
        let lines = [
            ("Forwarded", "host=evil.test"),
            ("Forwarded", "proto=https;host=chat.example"),
        ];
        assert!(allows(&config, "https://chat.example", host, &lines));
        assert!(!allows(&config, "https://evil.test", host, &lines));
        // Forwarded, when there is one, is the whole report: no host= means Host, not
        // an X-Forwarded-Host the client may have added.
        let mixed = [
            ("Forwarded", "for=192.0.2.60;proto=https"),
            ("X-Forwarded-Host", "evil.test"),
        ];
        assert!(allows(&config, "https://127.0.0.1:3001", host, &mixed));
        assert!(!allows(&config, "https://evil.test", host, &mixed));
        assert!(!allows(&config, "http://127.0.0.1:3001", host, &mixed));
    }

    #[test]
    fn a_forwarded_header_that_does_not_parse_leaves_only_the_allow_list() {
        let config = parse(&["--trust-proxy", "--allow-origin", "https://trusted.test"]).unwrap();
        let host = "localhost:8443";
        for wrong in [
            "",
            ",",
            "host",
            "host=",
            "=localhost",
            "host=\"localhost:8443",
            "host=localhost:8443",
            "proto=https proto=http",
            "proto=https;proto=https;host=localhost",
            "host=\"a\"b",
        ] {
            let forwarded = [("Forwarded", wrong), ("X-Forwarded-Proto", "https")];
            let ours = allows(&config, "https://localhost:8443", host, &forwarded);
            assert!(!ours, "{wrong:?}");
            let listed = allows(&config, "https://trusted.test", host, &forwarded);
            assert!(listed, "{wrong:?}");
        }
    }

    #[test]
    fn forwarded_elements() {
        let element = |value| last_forwarded_element(value);
        let pairs = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(element("for=192.0.2.43"), pairs(&[("for", "192.0.2.43")]));
        assert_eq!(
            element("for=192.0.2.43, For=\"[2001:db8:cafe::17]\";PROTO=https"),
            pairs(&[("for", "[2001:db8:cafe::17]"), ("proto", "https")])
        );
        assert_eq!(element("host=\"a\\\"b\""), pairs(&[("host", "a\"b")]));
        assert_eq!(element(";;proto=http;"), pairs(&[("proto", "http")]));
        assert_eq!(element("proto=http, ,"), pairs(&[("proto", "http")]));
        assert_eq!(element(""), None);
        assert_eq!(element("proto=\"http"), None);
    }

    /// `client_address` for a peer and headers given as text.
    fn client(config: &Config, peer: &str, headers: &[(&str, &str)]) -> Option<IpAddr> {
        config.client_address(
            Some(peer.parse().unwrap()),
            headers
                .iter()
                .map(|(name, value)| (*name, value.as_bytes())),
        )
    }

    #[test]
    fn the_client_is_the_peer_unless_the_proxy_is_trusted() {
        let forged = [
            ("X-Forwarded-For", "198.51.100.1"),
            ("Forwarded", "for=198.51.100.2"),
        ];
        let direct = Config::default();
        assert_eq!(
            client(&direct, "192.0.2.9", &forged),
            "192.0.2.9".parse().ok()
        );
        assert_eq!(direct.client_address(None, []), None);

        let proxied = Config {
            trust_proxy: true,
            ..Config::default()
        };
        let ip = |text: &str| text.parse::<IpAddr>().ok();
        // The last entry is what the proxy saw; the ones before it, the client wrote.
        let appended = [("X-Forwarded-For", "203.0.113.7, 198.51.100.1")];
        assert_eq!(client(&proxied, "127.0.0.1", &appended), ip("198.51.100.1"));
        // Forwarded wins over X-Forwarded-For, its last element over the others.
        let both = [
            ("X-Forwarded-For", "198.51.100.1"),
            (
                "Forwarded",
                "for=203.0.113.7, for=\"[2001:db8::5]:4711\";proto=https",
            ),
        ];
        assert_eq!(client(&proxied, "127.0.0.1", &both), ip("2001:db8::5"));
        for (node, expected) in [
            ("for=192.0.2.60", "192.0.2.60"),
            ("for=\"192.0.2.60:8080\"", "192.0.2.60"),
            ("for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17"),
            // No address in the report: the peer.
            ("for=unknown", "127.0.0.1"),
            ("for=_hidden", "127.0.0.1"),
            ("proto=https", "127.0.0.1"),
            ("for=\"unclosed", "127.0.0.1"),
        ] {
            let got = client(&proxied, "127.0.0.1", &[("Forwarded", node)]);
            assert_eq!(got, ip(expected), "Forwarded: {node}");
        }
        assert_eq!(client(&proxied, "127.0.0.1", &[]), ip("127.0.0.1"));
        let garbage = [("X-Forwarded-For", "not-an-address")];
        assert_eq!(client(&proxied, "127.0.0.1", &garbage), ip("127.0.0.1"));
    }
}
