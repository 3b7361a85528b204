//! Reading the query strings of `/ws?name=...&since=...` and `/stream?prompt=...`
//! the same way in every server.
//!
//! Each framework has its own query extractor, and they disagree on details (is `+`
//! a space, what happens with `since=abc`: a 400 or nothing?). Decoding here keeps
//! the four servers identical: the glue passes the raw query string (the part after
//! `?`, without it), or `None` when there is none.

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
/// decoded. A key without `=` has the empty value.
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter(|pair| !pair.is_empty())
        .find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(name) == key).then(|| decode_component(value))
        })
}

/// Decodes one form-urlencoded component: `+` is a space and `%XX` a byte. A `%` not
/// followed by two hex digits is kept as it is, and bytes that are not UTF-8 become
/// U+FFFD, so decoding never fails.
pub fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut position = 0;
    while position < bytes.len() {
        match bytes[position] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let high = bytes.get(position + 1).and_then(|byte| hex_value(*byte));
                let low = bytes.get(position + 2).and_then(|byte| hex_value(*byte));
                if let (Some(high), Some(low)) = (high, low) {
                    decoded.push(high << 4 | low);
                    position += 2;
                } else {
                    decoded.push(b'%');
                }
            }
            other => decoded.push(other),
        }
        position += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
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
        assert_eq!(decode_component("a+b%20c"), "a b c");
        assert_eq!(decode_component("%2B%2b"), "++");
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz%4"), "%zz%4");
        assert_eq!(decode_component("%F0%9F%A6%80"), "🦀");
        assert_eq!(decode_component("%FF"), "\u{FFFD}");
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
