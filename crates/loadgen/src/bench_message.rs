//! Send timestamps inside chat messages.
//!
//! The load generator is both the sender and every receiver, so one clock serves
//! both: nanoseconds since the first call of [`clock_nanos`] in this process. A bench
//! message's content is `b` + a 10-digit index + a space + a 20-digit timestamp,
//! padded with `x` to the wanted size: only characters that JSON never escapes, so
//! the content can be found in the server's JSON without a full parse.

use std::sync::OnceLock;
use std::time::Instant;

/// The shortest content that holds an index and a timestamp.
pub const MIN_CONTENT_BYTES: usize = 32;

/// Nanoseconds since this process first asked.
pub fn clock_nanos() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The content of bench message `index` sent at `nanos`, `size` bytes long (at least
/// [`MIN_CONTENT_BYTES`]).
pub fn encode_content(index: u64, nanos: u64, size: usize) -> String {
    let mut content = format!("b{index:010} {nanos:020}");
    let size = size.max(MIN_CONTENT_BYTES);
    while content.len() < size {
        content.push('x');
    }
    content
}

/// The index and timestamp of a bench message's content, or `None` for any other text.
pub fn parse_content(content: &str) -> Option<(u64, u64)> {
    let rest = content.strip_prefix('b')?;
    let index = rest.get(..10)?;
    let nanos = rest.get(11..31)?;
    if rest.as_bytes().get(10) != Some(&b' ') {
        return None;
    }
    let digits = |text: &str| text.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(index) || !digits(nanos) {
        return None;
    }
    Some((index.parse().ok()?, nanos.parse().ok()?))
}

/// The `content` string of a chat message as the server sends it
/// (`{"type":"message",...,"content":"...",...}`), if it holds no escapes; `None`
/// for presence, welcome and anything else.
pub fn content_of_chat_json(json: &str) -> Option<&str> {
    if !json.starts_with("{\"type\":\"message\"") {
        return None;
    }
    const KEY: &str = "\"content\":\"";
    let start = json.find(KEY)? + KEY.len();
    let length = json[start..].find('"')?;
    let content = &json[start..start + length];
    (!content.contains('\\')).then_some(content)
}

/// The bench index and timestamp carried by a chat message's JSON.
pub fn parse_chat_json(json: &str) -> Option<(u64, u64)> {
    parse_content(content_of_chat_json(json)?)
}

/// The JSON a client sends over `/ws` to post `content` (which needs no escaping).
pub fn client_message(content: &str) -> String {
    format!("{{\"type\":\"message\",\"content\":\"{content}\"}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trips_at_every_size() {
        for size in [0, 32, 64, 1000] {
            let content = encode_content(42, 1_234_567_890_123, size);
            assert_eq!(content.len(), size.max(MIN_CONTENT_BYTES));
            assert_eq!(parse_content(&content), Some((42, 1_234_567_890_123)));
        }
    }

    #[test]
    fn other_text_is_not_a_bench_message() {
        assert_eq!(parse_content("hello"), None);
        assert_eq!(parse_content("b0000000001-00000000000000000001"), None);
        assert_eq!(parse_content("b000000000x 00000000000000000001"), None);
        assert_eq!(parse_content("b0000000001 0000000000000000001"), None);
    }

    #[test]
    fn finds_the_content_in_the_servers_json() {
        let content = encode_content(7, 99, 64);
        let json = format!(
            "{{\"type\":\"message\",\"seq\":3,\"from\":\"s\",\"content\":\"{content}\",\"ts\":1}}"
        );
        assert_eq!(content_of_chat_json(&json), Some(content.as_str()));
        assert_eq!(parse_chat_json(&json), Some((7, 99)));
        assert_eq!(
            parse_chat_json("{\"type\":\"presence\",\"online\":3}"),
            None
        );
        assert_eq!(
            content_of_chat_json(r#"{"type":"message","content":"a\"b","ts":1}"#),
            None
        );
        assert_eq!(client_message("hi"), r#"{"type":"message","content":"hi"}"#);
    }

    #[test]
    fn the_clock_moves_forward() {
        let first = clock_nanos();
        let second = clock_nanos();
        assert!(second >= first);
    }
}
