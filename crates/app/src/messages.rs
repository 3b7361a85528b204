//! The JSON messages of the chat, and the rules that decide what a client may send.
//!
//! The same shapes travel over the WebSocket (`/ws`), the HTTP endpoint
//! (`POST /messages`) and the event stream (`/events`), so they are defined once
//! here and every server only moves the strings around.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The longest chat message, counted in Unicode scalar values (Rust `char`s), not bytes:
/// a limit in bytes would let an English speaker write four times as much as someone
/// writing in a script that needs four bytes per character.
pub const MAX_CONTENT_CHARS: usize = 4096;

/// The longest name, counted in Unicode scalar values like [`MAX_CONTENT_CHARS`].
pub const MAX_NAME_CHARS: usize = 32;

/// The largest message `/ws` accepts, in bytes; a larger one is closed with 1009.
pub const MAX_WEBSOCKET_MESSAGE_BYTES: usize = 64 * 1024;

/// The largest message `/echo` accepts, in bytes (what protocol test suites send).
pub const MAX_ECHO_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Whether a `Content-Type` header names JSON (`application/json`, any case, with
/// or without parameters such as `; charset=utf-8`). `POST /messages` answers 415
/// otherwise.
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"))
}

// ANCHOR: client_message
/// What a WebSocket client sends: `{"type":"message","content":"hi"}`.
///
/// Servers do not deserialize into this type directly: [`parse_client_message`] reads
/// the JSON step by step so that each kind of mistake gets its own [`ErrorCode`].
/// The type documents the shape, and clients (the test kit) can serialize it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// A chat message for everyone.
    Message {
        /// The text, 1 to [`MAX_CONTENT_CHARS`] characters.
        content: String,
    },
}
// ANCHOR_END: client_message

// ANCHOR: server_message
/// Everything a server sends to a chat client, tagged by `"type"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The first message on a new WebSocket: `{"type":"welcome","you":"ann","online":2,"seq":41}`.
    Welcome {
        /// The name the server gave this client (the one asked for, or `anon-K`).
        you: String,
        /// How many chat clients are connected, this one included.
        online: usize,
        /// The seq of the newest message in the hub, 0 if there is none yet.
        seq: u64,
    },
    /// A chat message:
    /// `{"type":"message","seq":42,"from":"ann","content":"hi","ts":1700000000000}`.
    Message(Arc<ChatMessage>),
    /// Someone joined or left: `{"type":"presence","online":3}`.
    Presence {
        /// How many chat clients are connected now.
        online: usize,
    },
    /// Only for the client that sent something wrong:
    /// `{"type":"error","code":"too_long","message":"..."}`.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
    /// The client asked to resume from a message the server no longer has:
    /// `{"type":"reset","oldest":120}`. The replay that follows starts at `oldest`.
    Reset {
        /// The oldest seq the server still has (or will have next, if it has none).
        oldest: u64,
    },
}
// ANCHOR_END: server_message

impl ServerMessage {
    /// The message as one line of JSON, ready for a WebSocket text frame or an SSE `data:`.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every key is a string and nothing is a
        // map with non-string keys or a failing custom `Serialize`.
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

/// One accepted chat message, as kept in the hub's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Its place in the chat: 1 for the first message, then one more for each.
    pub seq: u64,
    /// The sender's name.
    pub from: String,
    /// The text.
    pub content: String,
    /// When the hub accepted it, in milliseconds since the Unix epoch.
    pub ts: u64,
}

// ANCHOR: error_code
/// Why a message was refused; serialized in snake_case (`"bad_json"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or JSON without the fields the endpoint needs.
    BadJson,
    /// A `"type"` the server does not know, or a `"message"` without a string `"content"`.
    BadType,
    /// The content has zero characters.
    Empty,
    /// The content has more than [`MAX_CONTENT_CHARS`] characters.
    TooLong,
    /// The message was valid but the chat cannot take it now: the shared hub
    /// (`--redis`) is unreachable. Nothing was published; sending it again later is safe.
    Unavailable,
    /// The connection sent more messages than its rate allows
    /// ([`crate::limits::MessageRate`]). Nothing was published.
    RateLimited,
}
// ANCHOR_END: error_code

impl ErrorCode {
    /// The code as it appears in the JSON, `"bad_json"` and so on.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadType => "bad_type",
            ErrorCode::Empty => "empty",
            ErrorCode::TooLong => "too_long",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::RateLimited => "rate_limited",
        }
    }

    /// The HTTP status `POST /messages` answers with: 413 Content Too Large for
    /// `too_long`, 503 Service Unavailable for `unavailable`, 429 Too Many Requests for
    /// `rate_limited`, 400 Bad Request for the rest.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::TooLong => 413,
            ErrorCode::Unavailable => 503,
            ErrorCode::RateLimited => 429,
            ErrorCode::BadJson | ErrorCode::BadType | ErrorCode::Empty => 400,
        }
    }
}

/// A refusal: the code and a sentence saying what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorReply {
    /// A reply with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorReply {
            code,
            message: message.into(),
        }
    }

    /// The reply as the `error` server message.
    pub fn to_server_message(&self) -> ServerMessage {
        ServerMessage::Error {
            code: self.code,
            message: self.message.clone(),
        }
    }

    /// The reply as JSON: `{"type":"error","code":...,"message":...}`.
    pub fn to_json(&self) -> String {
        self.to_server_message().to_json()
    }

    /// The HTTP status for this reply (see [`ErrorCode::http_status`]).
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ErrorReply {}

/// The body of `POST /messages`: `{"content":"hi"}` or `{"content":"hi","from":"ann"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostMessage {
    /// The text, under the same rules as over the WebSocket.
    pub content: String,
    /// The sender's name; missing or invalid becomes `anon-K`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// The answer to an accepted `POST /messages` (status 202): `{"seq":42}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostAccepted {
    /// The seq the hub gave the message.
    pub seq: u64,
}

impl PostAccepted {
    /// The answer as JSON: `{"seq":42}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a struct of one number always serializes")
    }
}

// ANCHOR: parse_client_message
/// Reads a WebSocket text message and returns the chat content it carries, or the
/// error to send back to (only) its sender.
///
/// The checks come in the order of the error codes: is it JSON with a string
/// `"type"` (`bad_json`), is the type `"message"` with a string `"content"`
/// (`bad_type`), then the length rules (`empty`, `too_long`).
///
/// # Errors
///
/// An [`ErrorReply`] whose code says which rule the text broke.
pub fn parse_client_message(text: &str) -> Result<String, ErrorReply> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| ErrorReply::new(ErrorCode::BadJson, format!("not valid JSON: {error}")))?;
    let Some(kind) = value.get("type").and_then(serde_json::Value::as_str) else {
        return Err(ErrorReply::new(
            ErrorCode::BadJson,
            r#"expected a JSON object with a string "type""#,
        ));
    };
    if kind != "message" {
        return Err(ErrorReply::new(
            ErrorCode::BadType,
            format!(r#"unknown message type {kind:?}: the only type a client sends is "message""#),
        ));
    }
    let Some(content) = value.get("content").and_then(serde_json::Value::as_str) else {
        return Err(ErrorReply::new(
            ErrorCode::BadType,
            r#"a "message" needs a string "content""#,
        ));
    };
    check_content(content)?;
    Ok(content.to_owned())
}
// ANCHOR_END: parse_client_message

/// Reads the body of `POST /messages`: the content (checked like over the WebSocket)
/// and the `"from"` field as sent (the hub turns it into a valid name).
///
/// A body that is not UTF-8, not JSON, or not an object with a string `"content"` is
/// `bad_json` (there is no `"type"` here, so `bad_type` does not apply). A `"from"`
/// that is not a string is treated as missing.
///
/// # Errors
///
/// An [`ErrorReply`]; its [`ErrorReply::http_status`] is the status to answer with.
pub fn parse_post_message(body: &[u8]) -> Result<PostMessage, ErrorReply> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| ErrorReply::new(ErrorCode::BadJson, format!("not valid JSON: {error}")))?;
    let Some(content) = value.get("content").and_then(serde_json::Value::as_str) else {
        return Err(ErrorReply::new(
            ErrorCode::BadJson,
            r#"expected a JSON object with a string "content""#,
        ));
    };
    check_content(content)?;
    let from = value
        .get("from")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    Ok(PostMessage {
        content: content.to_owned(),
        from,
    })
}

/// The length rules every chat message follows, wherever it comes from.
fn check_content(content: &str) -> Result<(), ErrorReply> {
    // Count at most one past the limit: no need to walk a megabyte to know it is too long.
    let characters = content.chars().take(MAX_CONTENT_CHARS + 1).count();
    if characters == 0 {
        return Err(ErrorReply::new(
            ErrorCode::Empty,
            "the message is empty: write at least one character",
        ));
    }
    if characters > MAX_CONTENT_CHARS {
        return Err(ErrorReply::new(
            ErrorCode::TooLong,
            format!("the message is too long: at most {MAX_CONTENT_CHARS} characters"),
        ));
    }
    Ok(())
}

// ANCHOR: valid_name
/// The name as given if it is acceptable, else `None` (and the hub picks `anon-K`).
///
/// Acceptable means 1 to [`MAX_NAME_CHARS`] characters and no control characters
/// (a newline or an escape sequence in a name would garble other people's screens and
/// logs). The name is not trimmed: what the client sent is what others see.
pub fn valid_name(name: Option<&str>) -> Option<String> {
    let name = name?;
    let characters = name.chars().take(MAX_NAME_CHARS + 1).count();
    let acceptable =
        (1..=MAX_NAME_CHARS).contains(&characters) && !name.chars().any(char::is_control);
    acceptable.then(|| name.to_owned())
}
// ANCHOR_END: valid_name

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type(Some("application/json")));
        assert!(is_json_content_type(Some(
            "Application/JSON; charset=utf-8"
        )));
        assert!(!is_json_content_type(Some("text/plain")));
        assert!(!is_json_content_type(Some("application/jsonp")));
        assert!(!is_json_content_type(None));
    }
    use serde_json::{Value, json};

    fn error_code(text: &str) -> ErrorCode {
        parse_client_message(text).unwrap_err().code
    }

    #[test]
    fn a_good_message_gives_its_content() {
        assert_eq!(
            parse_client_message(r#"{"type":"message","content":"hi"}"#).unwrap(),
            "hi"
        );
        // Unknown extra fields are ignored, like most JSON APIs do.
        assert_eq!(
            parse_client_message(r#"{"content":"x","type":"message","extra":1}"#).unwrap(),
            "x"
        );
    }

    #[test]
    fn not_json_is_bad_json() {
        assert_eq!(error_code("hello"), ErrorCode::BadJson);
        assert_eq!(error_code(""), ErrorCode::BadJson);
        assert_eq!(error_code(r#"{"type":"message""#), ErrorCode::BadJson);
    }

    #[test]
    fn json_without_a_string_type_is_bad_json() {
        assert_eq!(error_code("42"), ErrorCode::BadJson);
        assert_eq!(error_code("[]"), ErrorCode::BadJson);
        assert_eq!(error_code(r#"{"content":"hi"}"#), ErrorCode::BadJson);
        assert_eq!(
            error_code(r#"{"type":1,"content":"hi"}"#),
            ErrorCode::BadJson
        );
        assert_eq!(
            error_code(r#"{"type":null,"content":"hi"}"#),
            ErrorCode::BadJson
        );
    }

    #[test]
    fn another_type_is_bad_type() {
        assert_eq!(
            error_code(r#"{"type":"welcome","content":"hi"}"#),
            ErrorCode::BadType
        );
        assert_eq!(error_code(r#"{"type":"Message"}"#), ErrorCode::BadType);
        assert_eq!(error_code(r#"{"type":""}"#), ErrorCode::BadType);
    }

    #[test]
    fn a_message_without_string_content_is_bad_type() {
        assert_eq!(error_code(r#"{"type":"message"}"#), ErrorCode::BadType);
        assert_eq!(
            error_code(r#"{"type":"message","content":5}"#),
            ErrorCode::BadType
        );
        assert_eq!(
            error_code(r#"{"type":"message","content":null}"#),
            ErrorCode::BadType
        );
    }

    #[test]
    fn empty_content_is_empty() {
        assert_eq!(
            error_code(r#"{"type":"message","content":""}"#),
            ErrorCode::Empty
        );
    }

    #[test]
    fn content_length_is_counted_in_characters() {
        let message = |content: &str| json!({"type": "message", "content": content}).to_string();
        let at_limit = "a".repeat(MAX_CONTENT_CHARS);
        assert_eq!(parse_client_message(&message(&at_limit)).unwrap(), at_limit);
        let over = "a".repeat(MAX_CONTENT_CHARS + 1);
        assert_eq!(error_code(&message(&over)), ErrorCode::TooLong);
        // 4096 four-byte characters are 16 KiB but still within the limit.
        let wide = "😀".repeat(MAX_CONTENT_CHARS);
        assert_eq!(parse_client_message(&message(&wide)).unwrap(), wide);
        let wide_over = "😀".repeat(MAX_CONTENT_CHARS + 1);
        assert_eq!(error_code(&message(&wide_over)), ErrorCode::TooLong);
        // A single whitespace character is content too.
        assert_eq!(parse_client_message(&message(" ")).unwrap(), " ");
    }

    #[test]
    fn error_messages_are_sentences_for_people() {
        for text in [
            "nope",
            "{}",
            r#"{"type":"x"}"#,
            r#"{"type":"message"}"#,
            r#"{"type":"message","content":""}"#,
        ] {
            let reply = parse_client_message(text).unwrap_err();
            assert!(reply.message.len() > 10, "{reply:?}");
        }
    }

    #[test]
    fn post_body_rules() {
        let post = parse_post_message(br#"{"content":"hi","from":"ann"}"#).unwrap();
        assert_eq!(
            post,
            PostMessage {
                content: "hi".into(),
                from: Some("ann".into())
            }
        );
        assert_eq!(
            parse_post_message(br#"{"content":"hi","from":7}"#)
                .unwrap()
                .from,
            None
        );
        let code = |body: &[u8]| parse_post_message(body).unwrap_err().code;
        assert_eq!(code(b"not json"), ErrorCode::BadJson);
        assert_eq!(code(b"\xff\xfe"), ErrorCode::BadJson);
        assert_eq!(code(br#"{"from":"ann"}"#), ErrorCode::BadJson);
        assert_eq!(code(br#"{"content":1}"#), ErrorCode::BadJson);
        assert_eq!(code(br#"{"content":""}"#), ErrorCode::Empty);
        let long = json!({"content": "x".repeat(MAX_CONTENT_CHARS + 1)}).to_string();
        assert_eq!(code(long.as_bytes()), ErrorCode::TooLong);
    }

    #[test]
    fn http_statuses() {
        assert_eq!(ErrorCode::BadJson.http_status(), 400);
        assert_eq!(ErrorCode::BadType.http_status(), 400);
        assert_eq!(ErrorCode::Empty.http_status(), 400);
        assert_eq!(ErrorCode::TooLong.http_status(), 413);
        assert_eq!(ErrorCode::Unavailable.http_status(), 503);
    }

    #[test]
    fn names() {
        assert_eq!(valid_name(Some("ann")).as_deref(), Some("ann"));
        assert_eq!(valid_name(None), None);
        assert_eq!(valid_name(Some("")), None);
        let at_limit = "n".repeat(MAX_NAME_CHARS);
        assert_eq!(valid_name(Some(&at_limit)), Some(at_limit));
        assert_eq!(valid_name(Some(&"n".repeat(MAX_NAME_CHARS + 1))), None);
        // Characters, not bytes: 32 four-byte characters are fine, 33 are not.
        let wide = "🦀".repeat(MAX_NAME_CHARS);
        assert_eq!(valid_name(Some(&wide)), Some(wide));
        assert_eq!(valid_name(Some(&"🦀".repeat(MAX_NAME_CHARS + 1))), None);
        // Control characters anywhere: C0, DEL and C1.
        for bad in ["a\nb", "\tann", "ann\0", "a\u{7f}", "a\u{85}", "\u{1b}[31m"] {
            assert_eq!(valid_name(Some(bad)), None, "{bad:?}");
        }
        // Not trimmed: spaces are kept as given.
        assert_eq!(valid_name(Some(" ann ")).as_deref(), Some(" ann "));
        assert_eq!(valid_name(Some(" ")).as_deref(), Some(" "));
    }

    #[test]
    fn server_message_shapes() {
        let shape =
            |message: ServerMessage| -> Value { serde_json::from_str(&message.to_json()).unwrap() };
        assert_eq!(
            shape(ServerMessage::Welcome {
                you: "ann".into(),
                online: 2,
                seq: 41
            }),
            json!({"type": "welcome", "you": "ann", "online": 2, "seq": 41})
        );
        assert_eq!(
            shape(ServerMessage::Message(Arc::new(ChatMessage {
                seq: 42,
                from: "ann".into(),
                content: "hi".into(),
                ts: 1_700_000_000_000
            }))),
            json!({"type": "message", "seq": 42, "from": "ann", "content": "hi", "ts": 1_700_000_000_000_u64})
        );
        assert_eq!(
            shape(ServerMessage::Presence { online: 3 }),
            json!({"type": "presence", "online": 3})
        );
        assert_eq!(
            shape(ErrorReply::new(ErrorCode::TooLong, "too long").to_server_message()),
            json!({"type": "error", "code": "too_long", "message": "too long"})
        );
        assert_eq!(
            shape(ServerMessage::Reset { oldest: 120 }),
            json!({"type": "reset", "oldest": 120})
        );
    }

    #[test]
    fn error_codes_are_snake_case() {
        for code in [
            ErrorCode::BadJson,
            ErrorCode::BadType,
            ErrorCode::Empty,
            ErrorCode::TooLong,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::String(code.as_str().into())
            );
        }
        assert_eq!(
            ErrorReply::new(ErrorCode::BadJson, "x").to_json(),
            r#"{"type":"error","code":"bad_json","message":"x"}"#
        );
    }

    #[test]
    fn client_and_post_shapes() {
        assert_eq!(
            serde_json::to_value(ClientMessage::Message {
                content: "hi".into()
            })
            .unwrap(),
            json!({"type": "message", "content": "hi"})
        );
        assert_eq!(
            serde_json::from_str::<ServerMessage>(
                r#"{"type":"message","seq":1,"from":"a","content":"b","ts":2}"#
            )
            .unwrap(),
            ServerMessage::Message(Arc::new(ChatMessage {
                seq: 1,
                from: "a".into(),
                content: "b".into(),
                ts: 2
            }))
        );
        assert_eq!(PostAccepted { seq: 42 }.to_json(), r#"{"seq":42}"#);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_content_is_accepted_exactly_when_its_length_fits(content in any::<String>()) {
                let text = json!({"type": "message", "content": &content}).to_string();
                let characters = content.chars().count();
                match parse_client_message(&text) {
                    Ok(parsed) => {
                        prop_assert_eq!(parsed, content);
                        prop_assert!((1..=MAX_CONTENT_CHARS).contains(&characters));
                    }
                    Err(reply) => prop_assert_eq!(
                        reply.code,
                        if characters == 0 { ErrorCode::Empty } else { ErrorCode::TooLong }
                    ),
                }
            }

            #[test]
            fn a_valid_name_is_returned_unchanged(name in any::<String>()) {
                match valid_name(Some(&name)) {
                    Some(valid) => {
                        prop_assert_eq!(&valid, &name);
                        prop_assert!((1..=MAX_NAME_CHARS).contains(&name.chars().count()));
                        prop_assert!(!name.chars().any(char::is_control));
                    }
                    None => prop_assert!(
                        name.is_empty()
                            || name.chars().count() > MAX_NAME_CHARS
                            || name.chars().any(char::is_control)
                    ),
                }
            }
        }
    }
}
