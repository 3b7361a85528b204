//! The refusals every server makes, once: each function decides whether a request is
//! refused and with what, and the glue only turns the [`Refusal`] into its
//! framework's response.

use crate::Config;

/// An answer that refuses a request: the status, a plain-text body saying why, and
/// any header the refusal must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The reason, one line of text ending in a newline.
    pub body: String,
    /// Headers besides `Content-Type: text/plain; charset=utf-8`.
    pub headers: &'static [(&'static str, &'static str)],
}

impl Refusal {
    pub(crate) fn new(status: u16, body: impl Into<String>) -> Refusal {
        Refusal {
            status,
            body: body.into(),
            headers: &[],
        }
    }

    /// The refusal as a whole HTTP/1.1 response that closes the connection, for a
    /// server that answers before any HTTP layer has run (plain HTTP to the TLS port).
    pub fn as_http1(&self) -> String {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or("");
        let mut response = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.body.len()
        );
        for (name, value) in self.headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&self.body);
        response
    }
}

/// The largest `POST /messages` body a server reads: 1 MiB. Far above the longest
/// valid message, so an over-long one still reaches the hub and gets its JSON 413
/// (`too_long`); a body above this is refused before it is read whole.
pub const MAX_POST_BODY_BYTES: usize = 1024 * 1024;

// ANCHOR: websocket_upgrade
/// `GET /ws` and `GET /echo`: refused unless the request is a valid WebSocket upgrade
/// (the wire crate's rules: 400, or 426 with `Sec-WebSocket-Version: 13`) from an
/// allowed origin ([`Config::origin_allowed`]: 403). Over HTTP/2 (`version` (2, 0)),
/// a valid extended CONNECT instead, its `:protocol` given as a header.
///
/// A framework's own upgrade check may already have answered some of these itself;
/// this one has every rule (frameworks accept a `Sec-WebSocket-Key` that is not 16
/// bytes, or a request without `Host`), so every server refuses the same requests
/// with the same answers. `headers` are the request's fields as (name, raw value).
pub fn websocket_upgrade<'a>(
    config: &Config,
    method: &str,
    version: (u8, u8),
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Option<Refusal> {
    // Over HTTP/2 a WebSocket is an extended CONNECT (RFC 8441), with the
    // `:protocol` pseudo-header among `headers`; over HTTP/1.1, an upgrade.
    let checked = if version.0 >= 2 {
        wsse_wire::handshake::validate_extended_connect(method, headers.clone())
    } else {
        wsse_wire::handshake::validate_upgrade_request(method, version, headers.clone()).map(drop)
    };
    if let Err(error) = checked {
        return Some(Refusal {
            headers: error.extra_headers(),
            ..Refusal::new(error.status(), format!("{error}\n"))
        });
    }
    websocket_origin(config, headers)
}
// ANCHOR_END: websocket_upgrade

/// Refused with 403 when a browser page from another origin opens the socket
/// (cross-site WebSocket hijacking: the browser would send the site's cookies along).
/// For a server whose own upgrade code already applied the wire crate's rules.
pub fn websocket_origin<'a>(
    config: &Config,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Option<Refusal> {
    if config.origin_allowed(headers.clone()) {
        return None;
    }
    let origin = headers
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("origin"))
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned());
    tracing::warn!(?origin, "refused a WebSocket from another origin");
    Some(Refusal::new(403, "origin not allowed\n"))
}

/// `POST /messages`: refused with 415 unless the body is declared JSON.
pub fn post_content_type(content_type: Option<&str>) -> Option<Refusal> {
    (!crate::messages::is_json_content_type(content_type))
        .then(|| Refusal::new(415, "expected Content-Type: application/json\n"))
}

/// `POST /messages` with a body over [`MAX_POST_BODY_BYTES`]: 413.
pub fn post_body_too_large() -> Refusal {
    Refusal::new(
        413,
        format!("the request body is larger than {MAX_POST_BODY_BYTES} bytes\n"),
    )
}

/// A WebSocket or event stream over the server's ceiling ([`crate::limits`]): 503,
/// and come back in a few seconds.
pub fn too_many_connections(max: usize) -> Refusal {
    Refusal {
        headers: &[("Retry-After", "5")],
        ..Refusal::new(
            503,
            format!("the server holds its maximum of {max} connections; try again later\n"),
        )
    }
}

/// Plain HTTP sent to a server started with `--tls`: 400, and the scheme to use.
pub fn plain_http_to_tls_port() -> Refusal {
    Refusal::new(400, "this port speaks HTTPS: use https:// (and wss://)\n")
}

/// A request whose head is over [`crate::limits::MAX_REQUEST_HEAD_BYTES`]: 431, and
/// the connection is closed (what follows cannot be trusted to start a request).
pub fn request_head_too_large() -> Refusal {
    Refusal::new(
        431,
        format!(
            "request head above {} bytes\n",
            crate::limits::MAX_REQUEST_HEAD_BYTES
        ),
    )
}

/// A WebSocket or event stream from a client address that already holds its share
/// of the ceiling ([`crate::limits`]): 429, and come back when one has closed.
pub fn too_many_from_address(max: usize) -> Refusal {
    Refusal {
        headers: &[("Retry-After", "5")],
        ..Refusal::new(
            429,
            format!(
                "your address already holds its maximum of {max} connections; \
                 close one or try again later\n"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn upgrade(extra: &[(&'static str, &'static [u8])]) -> Vec<(&'static str, &'static [u8])> {
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("Host", b"127.0.0.1:3001"),
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Version", b"13"),
            ("Sec-WebSocket-Key", KEY),
        ];
        headers.extend_from_slice(extra);
        headers
    }

    fn refusal(headers: &[(&'static str, &'static [u8])]) -> Option<Refusal> {
        websocket_upgrade(&Config::default(), "GET", (1, 1), headers.iter().copied())
    }

    #[test]
    fn a_refusal_written_as_http1_has_its_status_length_and_headers() {
        let response = too_many_connections(3).as_http1();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nRetry-After: 5"), "{head}");
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(
            head.contains(&format!("\r\nContent-Length: {}", body.len())),
            "{head}"
        );
        assert!(body.contains("maximum of 3"), "{body}");
    }

    #[test]
    fn a_valid_upgrade_from_our_own_page_or_no_browser_passes() {
        assert_eq!(refusal(&upgrade(&[])), None);
        assert_eq!(
            refusal(&upgrade(&[("Origin", b"http://127.0.0.1:3001")])),
            None
        );
    }

    #[test]
    fn each_refusal_has_its_status_body_and_headers() {
        let mut bad_key = upgrade(&[]);
        bad_key.retain(|(name, _)| *name != "Sec-WebSocket-Key");
        bad_key.push(("Sec-WebSocket-Key", b"short"));
        let refused = refusal(&bad_key).unwrap();
        assert_eq!(refused.status, 400);
        assert!(refused.body.contains("16 bytes"), "{}", refused.body);

        let mut old_version = upgrade(&[]);
        old_version.retain(|(name, _)| *name != "Sec-WebSocket-Version");
        old_version.push(("Sec-WebSocket-Version", b"8"));
        let refused = refusal(&old_version).unwrap();
        assert_eq!(refused.status, 426);
        assert_eq!(refused.headers, [("Sec-WebSocket-Version", "13")]);

        let refused = refusal(&upgrade(&[("Origin", b"https://evil.example")])).unwrap();
        assert_eq!(
            refused,
            Refusal::new(403, "origin not allowed\n"),
            "a foreign origin"
        );
        // The handshake is checked first: a malformed request from a foreign page is 400.
        bad_key.push(("Origin", b"https://evil.example"));
        assert_eq!(refusal(&bad_key).unwrap().status, 400);
    }

    #[test]
    fn posts_are_refused_unless_json_and_small_enough() {
        assert_eq!(post_content_type(Some("application/json")), None);
        assert_eq!(
            post_content_type(Some("text/plain")).map(|refused| refused.status),
            Some(415)
        );
        assert_eq!(
            post_content_type(None).map(|refused| refused.status),
            Some(415)
        );
        assert_eq!(post_body_too_large().status, 413);
    }
}
