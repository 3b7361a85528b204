//! The opening handshake (RFC 6455 section 4).
//!
//! A WebSocket connection starts as an ordinary HTTP/1.1 GET carrying
//! `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Version: 13` and a random
//! `Sec-WebSocket-Key`. The server answers `101 Switching Protocols` with
//! `Sec-WebSocket-Accept` computed from the key; from then on both sides speak frames
//! on the same TCP connection.
//!
//! This module knows nothing about sockets or HTTP libraries: the caller hands it the
//! method, the version and the header fields it parsed, as names and raw values.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

/// The fixed GUID the RFC appends to every key before hashing it.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version RFC 6455 defines.
pub const VERSION: &str = "13";

// ANCHOR: accept_key
/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`:
/// base64(SHA-1(key + GUID)).
///
/// The server proves it read this very request and speaks WebSocket: a plain HTTP
/// server or a cache would never produce this value.
pub fn accept_key(key: &str) -> String {
    accept_key_steps(key).accept
}

/// The intermediate values of [`accept_key`], for showing the computation step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptSteps {
    /// Step 1: the key with the GUID appended.
    pub concatenated: String,
    /// Step 2: the SHA-1 digest of that text, 20 bytes.
    pub digest: [u8; 20],
    /// Step 3: the digest in base64, which is `Sec-WebSocket-Accept`.
    pub accept: String,
}

/// [`accept_key`], keeping each step.
pub fn accept_key_steps(key: &str) -> AcceptSteps {
    let concatenated = format!("{}{GUID}", key.trim());
    let digest: [u8; 20] = Sha1::digest(concatenated.as_bytes()).into();
    let accept = BASE64.encode(digest);
    AcceptSteps {
        concatenated,
        digest,
        accept,
    }
}
// ANCHOR_END: accept_key

/// Why a request is not a valid WebSocket upgrade, and what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The method was not GET.
    NotGet(String),
    /// The HTTP version was older than 1.1.
    OldHttpVersion,
    /// No `Host` header, or more than one (HTTP/1.1 requires exactly one).
    NoHost,
    /// No `Upgrade` header with the token `websocket`.
    NoUpgradeWebsocket,
    /// No `Connection` header with the token `upgrade`.
    NoConnectionUpgrade,
    /// No `Sec-WebSocket-Version` header.
    NoVersion,
    /// A `Sec-WebSocket-Version` other than 13.
    UnsupportedVersion(String),
    /// No `Sec-WebSocket-Key` header, or more than one.
    NoKey,
    /// A key that is not the base64 encoding of exactly 16 bytes.
    InvalidKey(String),
    /// Over HTTP/2 (RFC 8441): the method was not CONNECT.
    NotConnect(String),
    /// Over HTTP/2: no `:protocol` pseudo-header `websocket` (an extended CONNECT).
    NoProtocolWebsocket,
}

impl HandshakeError {
    /// The HTTP status the server should answer with.
    ///
    /// 426 Upgrade Required tells a client that speaks another version which one we
    /// speak (it comes with `Sec-WebSocket-Version: 13`); anything else is a malformed
    /// request, 400.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::UnsupportedVersion(_) => 426,
            _ => 400,
        }
    }

    /// Header fields the rejection must carry besides the usual ones.
    pub fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            HandshakeError::UnsupportedVersion(_) => &[("Sec-WebSocket-Version", VERSION)],
            _ => &[],
        }
    }

    /// A complete HTTP/1.1 response rejecting the request, with the reason as the body.
    pub fn response(&self) -> String {
        let status = self.status();
        let reason = if status == 426 {
            "Upgrade Required"
        } else {
            "Bad Request"
        };
        let body = format!("{self}\n");
        let mut response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in self.extra_headers() {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&body);
        response
    }
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::NotGet(method) => {
                write!(formatter, "a WebSocket upgrade must be a GET, not {method}")
            }
            HandshakeError::OldHttpVersion => {
                write!(formatter, "a WebSocket upgrade needs HTTP/1.1 or later")
            }
            HandshakeError::NoHost => write!(formatter, "missing (or repeated) `Host`"),
            HandshakeError::NoUpgradeWebsocket => {
                write!(formatter, "missing `Upgrade: websocket`")
            }
            HandshakeError::NoConnectionUpgrade => {
                write!(formatter, "missing `Connection: upgrade`")
            }
            HandshakeError::NoVersion => write!(formatter, "missing `Sec-WebSocket-Version`"),
            HandshakeError::UnsupportedVersion(version) => write!(
                formatter,
                "unsupported Sec-WebSocket-Version {version:?}: this server speaks {VERSION}"
            ),
            HandshakeError::NoKey => {
                write!(formatter, "missing (or repeated) `Sec-WebSocket-Key`")
            }
            HandshakeError::InvalidKey(key) => write!(
                formatter,
                "Sec-WebSocket-Key {key:?} is not base64 of 16 bytes"
            ),
            HandshakeError::NotConnect(method) => write!(
                formatter,
                "a WebSocket over HTTP/2 must be a CONNECT, not {method}"
            ),
            HandshakeError::NoProtocolWebsocket => {
                write!(formatter, "missing `:protocol: websocket`")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

/// What a valid upgrade request asked for, once [`validate_upgrade_request`] accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The client's `Sec-WebSocket-Key`, as sent.
    pub key: String,
    /// The `Origin` header, sent by browsers: the page that opened the connection.
    pub origin: Option<String>,
    /// The `Host` header: the host (and port) the client asked for.
    pub host: String,
    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in the client's order.
    pub protocols: Vec<String>,
}

impl UpgradeRequest {
    /// The value of `Sec-WebSocket-Accept` for this request.
    pub fn accept(&self) -> String {
        accept_key(&self.key)
    }
}

// ANCHOR: validate_request
/// Checks a client's opening handshake (section 4.2.1).
///
/// `version` is the HTTP version as (major, minor); `headers` are the request's header
/// fields as (name, raw value) pairs, in any case, repeated names allowed.
pub fn validate_upgrade_request<'a>(
    method: &str,
    version: (u8, u8),
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Result<UpgradeRequest, HandshakeError> {
    if method != "GET" {
        return Err(HandshakeError::NotGet(method.to_owned()));
    }
    if version < (1, 1) {
        return Err(HandshakeError::OldHttpVersion);
    }
    let host = single_value(headers.clone(), "host").ok_or(HandshakeError::NoHost)?;
    if !has_token(headers.clone(), "upgrade", "websocket") {
        return Err(HandshakeError::NoUpgradeWebsocket);
    }
    if !has_token(headers.clone(), "connection", "upgrade") {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    match single_value(headers.clone(), "sec-websocket-version") {
        None => return Err(HandshakeError::NoVersion),
        Some(value) if value.trim() == VERSION => {}
        Some(value) => return Err(HandshakeError::UnsupportedVersion(value)),
    }
    let key = single_value(headers.clone(), "sec-websocket-key").ok_or(HandshakeError::NoKey)?;
    let key = key.trim().to_owned();
    match BASE64.decode(&key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return Err(HandshakeError::InvalidKey(key)),
    }
    Ok(UpgradeRequest {
        key,
        origin: single_value(headers.clone(), "origin"),
        host,
        protocols: tokens(headers, "sec-websocket-protocol")
            .map(str::to_owned)
            .collect(),
    })
}
// ANCHOR_END: validate_request

// ANCHOR: validate_extended_connect
/// Checks a WebSocket opened over HTTP/2 (RFC 8441, section 4): an extended CONNECT
/// with the `:protocol` pseudo-header `websocket` (among `headers`, named
/// `:protocol`) and `Sec-WebSocket-Version: 13`.
///
/// There is no `Upgrade`, no `Connection` and no `Sec-WebSocket-Key`: the stream is
/// the socket, so there is nothing to switch and no key to prove that the server
/// understood (section 5: the server answers 200, without `Sec-WebSocket-Accept`),
/// and `:authority` replaces `Host`. The HTTP/2 layer has already checked the
/// pseudo-headers' form and that the server allowed extended CONNECT in its SETTINGS.
pub fn validate_extended_connect<'a>(
    method: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Result<(), HandshakeError> {
    if method != "CONNECT" {
        return Err(HandshakeError::NotConnect(method.to_owned()));
    }
    if !has_token(headers.clone(), ":protocol", "websocket") {
        return Err(HandshakeError::NoProtocolWebsocket);
    }
    match single_value(headers, "sec-websocket-version") {
        None => Err(HandshakeError::NoVersion),
        Some(value) if value.trim() == VERSION => Ok(()),
        Some(value) => Err(HandshakeError::UnsupportedVersion(value)),
    }
}
// ANCHOR_END: validate_extended_connect

// ANCHOR: switching_protocols
/// The server's answer to a valid upgrade: 101, the accept value, the subprotocol and
/// the extensions it agreed to, if any. After these bytes the connection carries frames.
pub fn switching_protocols_response(
    accept: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
) -> String {
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n"
    );
    if let Some(protocol) = protocol {
        response.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    if let Some(extensions) = extensions {
        response.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
    }
    response.push_str("\r\n");
    response
}
// ANCHOR_END: switching_protocols

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64-encoded.
///
/// The key is not a secret; it only has to be new for every connection so that the
/// server's accept value proves the response belongs to this request.
pub fn generate_key() -> String {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("the operating system's random source failed");
    BASE64.encode(nonce)
}

// ANCHOR: client_request
/// A client's opening handshake for `path_and_query` on `host` (which may include a port).
pub fn client_request(
    host: &str,
    path_and_query: &str,
    key: &str,
    extra_headers: &[(&str, &str)],
) -> String {
    let mut request = format!(
        "GET {path_and_query} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: {VERSION}\r\n"
    );
    for (name, value) in extra_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}
// ANCHOR_END: client_request

/// Why a server's answer to our upgrade request is not a WebSocket handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHandshakeError {
    /// The status was not 101.
    NotSwitchingProtocols(u16),
    /// No `Upgrade: websocket`.
    NoUpgradeWebsocket,
    /// No `Connection: upgrade`.
    NoConnectionUpgrade,
    /// No `Sec-WebSocket-Accept`, or one that does not match our key.
    WrongAccept {
        /// The value our key requires.
        expected: String,
        /// What the server sent, if anything.
        received: Option<String>,
    },
}

impl std::fmt::Display for ClientHandshakeError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientHandshakeError::NotSwitchingProtocols(status) => {
                write!(formatter, "the server answered {status}, not 101")
            }
            ClientHandshakeError::NoUpgradeWebsocket => {
                write!(formatter, "the 101 response lacks `Upgrade: websocket`")
            }
            ClientHandshakeError::NoConnectionUpgrade => {
                write!(formatter, "the 101 response lacks `Connection: upgrade`")
            }
            ClientHandshakeError::WrongAccept { expected, received } => write!(
                formatter,
                "Sec-WebSocket-Accept is {received:?}, expected {expected:?}"
            ),
        }
    }
}

impl std::error::Error for ClientHandshakeError {}

// ANCHOR: validate_response
/// Checks the server's response to our upgrade request (section 4.1, client side).
pub fn validate_server_response<'a>(
    key: &str,
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Result<(), ClientHandshakeError> {
    if status != 101 {
        return Err(ClientHandshakeError::NotSwitchingProtocols(status));
    }
    if !has_token(headers.clone(), "upgrade", "websocket") {
        return Err(ClientHandshakeError::NoUpgradeWebsocket);
    }
    if !has_token(headers.clone(), "connection", "upgrade") {
        return Err(ClientHandshakeError::NoConnectionUpgrade);
    }
    let expected = accept_key(key);
    let received = single_value(headers, "sec-websocket-accept");
    if received.as_deref().map(str::trim) != Some(expected.as_str()) {
        return Err(ClientHandshakeError::WrongAccept { expected, received });
    }
    Ok(())
}
// ANCHOR_END: validate_response

/// The comma-separated tokens of every header field called `name`, trimmed.
fn tokens<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .into_iter()
        .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
        .filter_map(|(_, value)| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Whether some header field `name` lists `token`, compared case-insensitively:
/// `Connection: keep-alive, Upgrade` does list `upgrade`.
fn has_token<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    name: &'a str,
    token: &str,
) -> bool {
    tokens(headers, name).any(|candidate| candidate.eq_ignore_ascii_case(token))
}

/// The value of the header field `name` if it appears exactly once and is UTF-8.
fn single_value<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    name: &str,
) -> Option<String> {
    let mut values = headers
        .into_iter()
        .filter(|(field, _)| field.eq_ignore_ascii_case(name));
    let (_, value) = values.next()?;
    if values.next().is_some() {
        return None;
    }
    std::str::from_utf8(value).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn valid_headers() -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("Host", b"server.example.com".as_slice()),
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Key", RFC_KEY.as_bytes()),
            ("Origin", b"http://example.com"),
            ("Sec-WebSocket-Protocol", b"chat, superchat"),
            ("Sec-WebSocket-Version", b"13"),
        ]
    }

    #[test]
    fn an_extended_connect_needs_connect_the_websocket_protocol_and_version_13() {
        let valid: &[(&str, &[u8])] = &[
            (":protocol", b"websocket"),
            ("sec-websocket-version", b"13"),
            ("origin", b"https://localhost:3001"),
        ];
        assert_eq!(
            validate_extended_connect("CONNECT", valid.iter().copied()),
            Ok(())
        );
        assert_eq!(
            validate_extended_connect("GET", valid.iter().copied()),
            Err(HandshakeError::NotConnect("GET".into()))
        );
        assert_eq!(
            validate_extended_connect("CONNECT", valid[1..].iter().copied()),
            Err(HandshakeError::NoProtocolWebsocket)
        );
        let other_protocol: &[(&str, &[u8])] = &[
            (":protocol", b"webtransport"),
            ("sec-websocket-version", b"13"),
        ];
        assert_eq!(
            validate_extended_connect("CONNECT", other_protocol.iter().copied()),
            Err(HandshakeError::NoProtocolWebsocket)
        );
        let version_8: &[(&str, &[u8])] =
            &[(":protocol", b"websocket"), ("sec-websocket-version", b"8")];
        let error = validate_extended_connect("CONNECT", version_8.iter().copied()).unwrap_err();
        assert_eq!(error.status(), 426);
        assert_eq!(
            validate_extended_connect("CONNECT", valid[..1].iter().copied()),
            Err(HandshakeError::NoVersion)
        );
    }

    fn validate(
        headers: &[(&'static str, &'static [u8])],
    ) -> Result<UpgradeRequest, HandshakeError> {
        validate_upgrade_request("GET", (1, 1), headers.iter().copied())
    }

    fn without(name: &str) -> Vec<(&'static str, &'static [u8])> {
        valid_headers()
            .into_iter()
            .filter(|(field, _)| *field != name)
            .collect()
    }

    fn replaced(name: &'static str, value: &'static [u8]) -> Vec<(&'static str, &'static [u8])> {
        let mut headers = without(name);
        headers.push((name, value));
        headers
    }

    #[test]
    fn rfc_example_accept_value() {
        assert_eq!(accept_key(RFC_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn the_rfc_request_is_valid() {
        let request = validate(&valid_headers()).unwrap();
        assert_eq!(request.key, RFC_KEY);
        assert_eq!(request.origin.as_deref(), Some("http://example.com"));
        assert_eq!(request.host, "server.example.com");
        assert_eq!(request.protocols, ["chat", "superchat"]);
        assert_eq!(request.accept(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn tokens_are_case_insensitive_and_may_share_a_list() {
        let mut headers = replaced("Connection", b"keep-alive, UPGRADE");
        headers.retain(|(field, _)| *field != "Upgrade");
        headers.push(("upgrade", b"WebSocket"));
        assert!(validate(&headers).is_ok());
    }

    #[test]
    fn each_rule_has_its_error_and_status() {
        let cases: Vec<(Result<UpgradeRequest, HandshakeError>, HandshakeError, u16)> = vec![
            (
                validate_upgrade_request("POST", (1, 1), valid_headers()),
                HandshakeError::NotGet("POST".into()),
                400,
            ),
            (
                validate_upgrade_request("GET", (1, 0), valid_headers()),
                HandshakeError::OldHttpVersion,
                400,
            ),
            (validate(&without("Host")), HandshakeError::NoHost, 400),
            (
                validate(&[valid_headers(), vec![("Host", b"other.example.com")]].concat()),
                HandshakeError::NoHost,
                400,
            ),
            (
                validate(&without("Upgrade")),
                HandshakeError::NoUpgradeWebsocket,
                400,
            ),
            (
                validate(&replaced("Upgrade", b"h2c")),
                HandshakeError::NoUpgradeWebsocket,
                400,
            ),
            (
                validate(&replaced("Connection", b"keep-alive")),
                HandshakeError::NoConnectionUpgrade,
                400,
            ),
            (
                validate(&without("Sec-WebSocket-Version")),
                HandshakeError::NoVersion,
                400,
            ),
            (
                validate(&replaced("Sec-WebSocket-Version", b"8")),
                HandshakeError::UnsupportedVersion("8".into()),
                426,
            ),
            (
                validate(&without("Sec-WebSocket-Key")),
                HandshakeError::NoKey,
                400,
            ),
            (
                // 15 bytes of nonce.
                validate(&replaced("Sec-WebSocket-Key", b"AAAAAAAAAAAAAAAAAAAA")),
                HandshakeError::InvalidKey("AAAAAAAAAAAAAAAAAAAA".into()),
                400,
            ),
            (
                validate(&replaced("Sec-WebSocket-Key", b"not base64 at all!!!!!!=")),
                HandshakeError::InvalidKey("not base64 at all!!!!!!=".into()),
                400,
            ),
        ];
        for (result, expected, status) in cases {
            let error = result.unwrap_err();
            assert_eq!(error, expected);
            assert_eq!(error.status(), status, "{error}");
        }
    }

    #[test]
    fn a_repeated_key_is_rejected() {
        let mut headers = valid_headers();
        headers.push(("Sec-WebSocket-Key", b"x3JJHMbDL1EzLkh9GBhXDw=="));
        assert_eq!(validate(&headers), Err(HandshakeError::NoKey));
    }

    #[test]
    fn responses_are_well_formed() {
        let response =
            switching_protocols_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", Some("chat"), None);
        assert_eq!(
            response,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
        );
        let compressed = switching_protocols_response("x", None, Some("permessage-deflate"));
        assert!(
            compressed.ends_with(
                "Sec-WebSocket-Accept: x\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
            ),
            "{compressed}"
        );
        let rejection = HandshakeError::UnsupportedVersion("8".into()).response();
        assert!(rejection.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(rejection.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        let (head, body) = rejection.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn client_side_round_trip() {
        let key = generate_key();
        assert_eq!(BASE64.decode(&key).unwrap().len(), 16);
        assert_ne!(key, generate_key());
        let request = client_request("127.0.0.1:3001", "/ws?name=ada", &key, &[]);
        assert!(request.starts_with("GET /ws?name=ada HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n"));

        let accept = accept_key(&key);
        let good: Vec<(&str, &[u8])> = vec![
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Accept", accept.as_bytes()),
        ];
        assert_eq!(validate_server_response(&key, 101, good.clone()), Ok(()));
        assert_eq!(
            validate_server_response(&key, 200, good.clone()),
            Err(ClientHandshakeError::NotSwitchingProtocols(200))
        );
        let wrong: Vec<(&str, &[u8])> = vec![
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ];
        assert!(matches!(
            validate_server_response(&key, 101, wrong),
            Err(ClientHandshakeError::WrongAccept { .. })
        ));
    }
}
