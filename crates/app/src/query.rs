//! Reading the query strings of `/ws?name=...&since=...` and `/stream?prompt=...`
//! the same way in every server.
//!
//! Each framework has its own query extractor, and they disagree on details (is `+`
//! a space, what happens with `since=abc`: a 400 or nothing?). Decoding here keeps
//! the four servers identical: the glue passes the raw query string (the part after
//! `?`, without it), or `None` when there is none.
//!
//! The writing half is here too ([`encode_component`]), for the clients and tests that
//! build such URLs: one codec, on the `form_urlencoded` and `percent-encoding` crates.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::hub::parse_seq;

/// What `/ws` reads from its query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatQuery {
    /// `name=`, decoded, not validated yet (the hub does that: invalid → `anon-K`).
    pub name: Option<String>,
    /// `since=`, if it is a decimal number; anything else counts as absent, so the
    /// client simply gets live messages.
    pub since: Option<u64>,
}

impl ChatQuery {
    /// Reads `name` and `since` from a raw query string.
    pub fn parse(query: Option<&str>) -> ChatQuery {
        ChatQuery {
            name: query_param(query, "name"),
            since: query_param(query, "since").as_deref().and_then(parse_seq),
        }
    }
}

/// The `prompt=` of `/stream`, decoded; empty if missing.
pub fn prompt(query: Option<&str>) -> String {
    query_param(query, "prompt").unwrap_or_default()
}

/// Where an SSE client stopped: the `Last-Event-ID` header a reconnecting
/// `EventSource` sends, or else the `lastEventId` query parameter a page can pass on
/// its first load (an `EventSource` cannot set headers). `/stream` takes only the
/// header: pass `None` as the query.
pub fn last_event_id(header: Option<&str>, query: Option<&str>) -> Option<String> {
    header
        .map(str::to_owned)
        .or_else(|| query_param(query, "lastEventId"))
}

/// The first value of `key` in a raw `application/x-www-form-urlencoded` query string,
/// decoded as browsers' `URLSearchParams` decodes it (with `form_urlencoded`): `+` is
/// a space and `%XX` a byte; a `%` not followed by two hex digits is kept as it is
/// (`%+5` is `% 5`), and bytes that are not UTF-8 become U+FFFD, so decoding never
/// fails. A key without `=` has the empty value.
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.into_owned())
}

/// What [`encode_component`] leaves as it is: the unreserved characters of RFC 3986
/// (letters, digits, `-`, `.`, `_`, `~`), which mean the same everywhere in a URL.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one query component, UTF-8 bytes included, so that
/// [`query_param`] (and any server) reads back exactly `text`: `a b&c` is
/// `a%20b%26c`.
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_query() {
        assert_eq!(ChatQuery::parse(None), ChatQuery::default());
        assert_eq!(
            ChatQuery::parse(Some("name=ann&since=42")),
            ChatQuery {
                name: Some("ann".into()),
                since: Some(42)
            }
        );
        assert_eq!(
            ChatQuery::parse(Some("since=abc&name=J%C3%BCrgen+K")),
            ChatQuery {
                name: Some("Jürgen K".into()),
                since: None
            }
        );
        assert_eq!(ChatQuery::parse(Some("since=-1")).since, None);
        assert_eq!(ChatQuery::parse(Some("name=")).name.as_deref(), Some(""));
        assert_eq!(ChatQuery::parse(Some("name")).name.as_deref(), Some(""));
        // Decoded control characters reach the name rules, which refuse them.
        assert_eq!(
            ChatQuery::parse(Some("name=a%0Ab")).name.as_deref(),
            Some("a\nb")
        );
    }

    #[test]
    fn first_value_wins_and_keys_are_decoded() {
        assert_eq!(query_param(Some("a=1&a=2"), "a").as_deref(), Some("1"));
        assert_eq!(query_param(Some("%61=x"), "a").as_deref(), Some("x"));
        assert_eq!(query_param(Some("&&b=2&"), "b").as_deref(), Some("2"));
        assert_eq!(query_param(Some("ab=2"), "a"), None);
        assert_eq!(query_param(Some("x=a=b"), "x").as_deref(), Some("a=b"));
    }

    #[test]
    fn decoding() {
        let decode = |value: &str| query_param(Some(&format!("k={value}")), "k").unwrap();
        assert_eq!(decode("a+b%20c"), "a b c");
        assert_eq!(decode("%2B%2b"), "++");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        // Not an escape: `+` is no hex digit (though `u8::from_str_radix("+5", 16)` is 5).
        assert_eq!(decode("%+5"), "% 5");
        assert_eq!(decode("%F0%9F%A6%80"), "🦀");
        assert_eq!(decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode_component("aZ09-._~"), "aZ09-._~");
        assert_eq!(
            encode_component("a b&c=é/+%"),
            "a%20b%26c%3D%C3%A9%2F%2B%25"
        );
        for text in ["Jürgen K", "100% + 1", "a=b&c", "🦀", "%+5", ""] {
            let query = format!("name={}", encode_component(text));
            assert_eq!(query_param(Some(&query), "name").as_deref(), Some(text));
        }
    }

    #[test]
    fn the_header_wins_over_the_query() {
        assert_eq!(
            last_event_id(Some("7"), Some("lastEventId=3")).as_deref(),
            Some("7")
        );
        assert_eq!(
            last_event_id(None, Some("lastEventId=3")).as_deref(),
            Some("3")
        );
        assert_eq!(last_event_id(None, Some("prompt=x")), None);
        assert_eq!(last_event_id(None, None), None);
    }

    #[test]
    fn prompts() {
        assert_eq!(prompt(Some("prompt=what+is+SSE%3F")), "what is SSE?");
        assert_eq!(prompt(None), "");
        assert_eq!(prompt(Some("other=1")), "");
    }
}
