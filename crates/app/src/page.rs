//! The web page every server serves at `/`: one self-contained HTML file (inline CSS
//! and JavaScript, nothing loaded from elsewhere) with the chat over WebSocket, the
//! token stream over SSE and a read-only mirror of the chat over SSE.
//!
//! Elements have stable ids for browser tests: `#name`, `#connect`, `#message`,
//! `#send`, `#state`, `#online`, `#messages`, `#prompt`, `#start`, `#tokens`,
//! `#stream-state`, `#mirror`, `#mirror-state`, and with `--auth` `#sign-out` and
//! `#session` (the name signed in, or `nobody`).

/// The page, served as `text/html; charset=utf-8`.
pub const INDEX_HTML: &str = include_str!("page.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_every_stable_id() {
        for id in [
            "name",
            "connect",
            "message",
            "send",
            "state",
            "online",
            "messages",
            "prompt",
            "start",
            "tokens",
            "stream-state",
            "mirror",
            "mirror-state",
            "sign-out",
            "session",
        ] {
            assert!(INDEX_HTML.contains(&format!("id=\"{id}\"")), "#{id}");
        }
    }

    #[test]
    fn is_self_contained_and_never_uses_inner_html() {
        assert!(INDEX_HTML.starts_with("<!DOCTYPE html>"));
        assert!(!INDEX_HTML.contains("innerHTML"));
        assert!(!INDEX_HTML.contains("outerHTML"));
        assert!(!INDEX_HTML.contains("insertAdjacentHTML"));
        assert!(!INDEX_HTML.contains("document.write"));
        assert!(!INDEX_HTML.contains("src=\"http"));
        assert!(!INDEX_HTML.contains("href=\"http"));
        assert!(!INDEX_HTML.contains("@import"));
    }

    #[test]
    fn uses_the_protocol_as_specified() {
        for needle in [
            "new WebSocket(",
            "since=",
            "new EventSource('/events' + query)",
            "?lastEventId=",
            "backoffDelay(",
            "BACKOFF_START_MS = 250",
            "BACKOFF_CAP_MS = 10_000",
            "HEALTHY_AFTER_MS = 60_000",
            "EventSource.CLOSED",
            "new EventSource('/stream?prompt='",
            "[DONE]",
            ".close()",
            "addEventListener('presence'",
            "addEventListener('reset'",
            "fetch('/session')",
            "method: 'POST'",
            "method: 'DELETE'",
            "protocols = ['wsse', `ticket.${ticket}`]",
        ] {
            assert!(INDEX_HTML.contains(needle), "{needle}");
        }
    }

    #[test]
    fn speaks_the_auth_modules_subprotocol_and_close_code() {
        let code = crate::connection::SESSION_ENDED.code.0;
        assert!(INDEX_HTML.contains(&format!("const SESSION_ENDED = {code};")));
        assert!(INDEX_HTML.contains(&format!(
            "['{}', `{}${{ticket}}`]",
            crate::auth::SUBPROTOCOL,
            crate::auth::TICKET_PROTOCOL_PREFIX
        )));
    }
}
