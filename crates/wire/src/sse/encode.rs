//! Writing events: the server side of the event stream format.
//!
//! Every field is one line, `name: value`, and a blank line ends the event. The format
//! has no escaping, so a value can never contain a line break. For `data` that is fine:
//! a multi-line text is sent as one `data:` line per line, and the parser joins them
//! again with LF. For `id` and `event` there is no such trick, so the encoder refuses
//! values that would break the line (see [`EncodeError`]).
//!
//! The format cannot carry a carriage return. A parser treats CRLF, a lone CR and a lone
//! LF all as line breaks, and rebuilds the data with LF only, so `"a\r\nb"` and `"a\rb"`
//! both arrive as `"a\nb"`. Everything else, including empty lines and a leading space,
//! arrives intact.

use std::fmt;

/// One event, as a server sends it.
///
/// ```
/// use wsse_wire::sse::Event;
///
/// let text = Event::new("line1\nline2").id("5").event("message").encode().unwrap();
/// assert_eq!(text, "id: 5\nevent: message\ndata: line1\ndata: line2\n\n");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `id` field: the client stores it and sends it back in the `Last-Event-ID`
    /// header when it reconnects. `Some("")` is sent as an empty `id:`, which clears
    /// the client's last event ID.
    pub id: Option<String>,
    /// The `event` field: the event type. `None` (or an empty string) means the client
    /// uses the default type, `message`.
    pub event: Option<String>,
    /// The `data` field: the payload, sent as one `data:` line per line of text.
    ///
    /// An empty string is still sent, as one empty `data:` line: the client then
    /// delivers an event whose data is the empty string.
    pub data: String,
    /// The `retry` field: the reconnection time the client should use, in milliseconds.
    pub retry: Option<u64>,
}

impl Event {
    /// An event carrying `data`, with no id, the default type and no retry.
    pub fn new(data: impl Into<String>) -> Self {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// Sets the `id` field.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the `event` field (the event type).
    #[must_use]
    pub fn event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }

    /// Sets the `retry` field, in milliseconds.
    #[must_use]
    pub fn retry(mut self, milliseconds: u64) -> Self {
        self.retry = Some(milliseconds);
        self
    }

    /// The event as event-stream text, ending with the blank line that dispatches it.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if the `id` or the `event` type contains a character the format
    /// cannot carry there.
    pub fn encode(&self) -> Result<String, EncodeError> {
        let mut out = String::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    // ANCHOR: encode_event
    /// Appends the event to `out`. On error nothing is appended.
    ///
    /// Fields come in the order `id`, `event`, `retry`, `data`, then the blank line.
    ///
    /// # Errors
    ///
    /// The same as [`Event::encode`].
    pub fn encode_into(&self, out: &mut String) -> Result<(), EncodeError> {
        // Check everything first, so that an error never leaves half an event in `out`.
        // A line break would end the line early; the parser ignores an id containing NULL.
        if let Some(id) = &self.id
            && let Some(character) = id.chars().find(|c| matches!(c, '\r' | '\n' | '\0'))
        {
            return Err(EncodeError::ForbiddenCharacterInId(character));
        }
        if let Some(event) = &self.event
            && let Some(character) = event.chars().find(|c| matches!(c, '\r' | '\n'))
        {
            return Err(EncodeError::ForbiddenCharacterInEventType(character));
        }

        if let Some(id) = &self.id {
            push_field(out, "id", id);
        }
        if let Some(event) = &self.event {
            push_field(out, "event", event);
        }
        if let Some(milliseconds) = self.retry {
            push_field(out, "retry", &milliseconds.to_string());
        }
        push_data_lines(out, &self.data);
        // The blank line: "If the line is empty, dispatch the event".
        out.push('\n');
        Ok(())
    }
    // ANCHOR_END: encode_event
}

/// Why an [`Event`] cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The `id` contains this character: a CR or LF would end the line early, and the
    /// parser ignores any `id` that contains a NULL (U+0000).
    ForbiddenCharacterInId(char),
    /// The `event` type contains this character, a CR or LF, which would end the line early.
    ForbiddenCharacterInEventType(char),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::ForbiddenCharacterInId(character) => write!(
                formatter,
                "an event id cannot contain {}",
                character_name(*character)
            ),
            EncodeError::ForbiddenCharacterInEventType(character) => write!(
                formatter,
                "an event type cannot contain {}",
                character_name(*character)
            ),
        }
    }
}

impl std::error::Error for EncodeError {}

/// A readable name for the characters [`EncodeError`] reports.
fn character_name(character: char) -> String {
    match character {
        '\r' => "a carriage return (U+000D)".to_string(),
        '\n' => "a line feed (U+000A)".to_string(),
        '\0' => "a NULL (U+0000)".to_string(),
        other => format!("{other:?}"),
    }
}

/// A comment: `: text`, one comment line per line of `text`.
///
/// Clients ignore comments. Servers send them as keep-alives, so that proxies do not
/// close a connection that has been quiet for a while.
///
/// ```
/// assert_eq!(wsse_wire::sse::comment("keep-alive"), ": keep-alive\n");
/// ```
pub fn comment(text: &str) -> String {
    let mut out = String::new();
    for line in split_lines(text) {
        out.push_str(": ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A lone `retry` line, `retry: 3000\n`, setting the client's reconnection time.
///
/// There is no blank line after it on purpose: the parser applies `retry` as soon as it
/// reads the line, and a blank line would add nothing (it dispatches no event when no
/// `data` came before it). Without one, the line can also go in front of the next event.
///
/// ```
/// assert_eq!(wsse_wire::sse::retry(3000), "retry: 3000\n");
/// ```
pub fn retry(milliseconds: u64) -> String {
    format!("retry: {milliseconds}\n")
}

/// Appends one `name: value` line.
///
/// The space after the colon is always written: the parser removes exactly one space,
/// so a value that itself starts with a space keeps it.
fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push('\n');
}

// ANCHOR: encode_data_lines
/// Appends one `data:` line per line of `data`.
///
/// The parser appends each `data` value plus an LF to its buffer, then removes the
/// final LF, so the lines come back joined by LF. Empty data still gets one (empty)
/// `data:` line, which the parser delivers as an event with empty data.
fn push_data_lines(out: &mut String, data: &str) {
    for line in split_lines(data) {
        push_field(out, "data", line);
    }
}
// ANCHOR_END: encode_data_lines

// ANCHOR: split_lines
/// Splits `text` at every line break the event stream format knows: CRLF, a lone CR
/// and a lone LF.
///
/// Unlike [`str::lines`], a trailing line break gives a final empty line and `""` gives
/// one empty line: every line break in the data has to become a line on the wire.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(current)
            }
            Some(index) => {
                let break_length = if current[index..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[index + break_length..]);
                Some(&current[..index])
            }
        }
    })
}
// ANCHOR_END: split_lines

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_fields_in_order() {
        let event = Event::new("line1\nline2")
            .id("5")
            .event("message")
            .retry(3000);
        assert_eq!(
            event.encode().unwrap(),
            "id: 5\nevent: message\nretry: 3000\ndata: line1\ndata: line2\n\n"
        );
    }

    #[test]
    fn data_only() {
        assert_eq!(Event::new("hello").encode().unwrap(), "data: hello\n\n");
    }

    #[test]
    fn data_is_split_on_every_kind_of_line_break() {
        assert_eq!(
            Event::new("a\r\nb\rc\nd").encode().unwrap(),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        // CR then LF is one break; LF then CR is two.
        assert_eq!(
            Event::new("a\n\rb").encode().unwrap(),
            "data: a\ndata: \ndata: b\n\n"
        );
    }

    #[test]
    fn empty_lines_in_data_are_kept() {
        assert_eq!(
            Event::new("\na\n\n").encode().unwrap(),
            "data: \ndata: a\ndata: \ndata: \n\n"
        );
    }

    #[test]
    fn empty_data_is_one_empty_data_line() {
        assert_eq!(Event::new("").encode().unwrap(), "data: \n\n");
        assert_eq!(
            Event::new("").id("7").encode().unwrap(),
            "id: 7\ndata: \n\n"
        );
    }

    #[test]
    fn leading_space_in_a_value_is_kept_by_the_extra_space() {
        assert_eq!(
            Event::new(" x").id(" 1").encode().unwrap(),
            "id:  1\ndata:  x\n\n"
        );
    }

    #[test]
    fn empty_id_is_written_to_clear_the_last_event_id() {
        assert_eq!(
            Event::new("x").id("").encode().unwrap(),
            "id: \ndata: x\n\n"
        );
    }

    #[test]
    fn id_refuses_line_breaks_and_null() {
        for (id, character) in [("a\rb", '\r'), ("a\nb", '\n'), ("a\0b", '\0')] {
            assert_eq!(
                Event::new("x").id(id).encode(),
                Err(EncodeError::ForbiddenCharacterInId(character))
            );
        }
    }

    #[test]
    fn event_type_refuses_line_breaks_but_not_null() {
        for (event, character) in [("a\rb", '\r'), ("a\nb", '\n')] {
            assert_eq!(
                Event::new("x").event(event).encode(),
                Err(EncodeError::ForbiddenCharacterInEventType(character))
            );
        }
        assert_eq!(
            Event::new("x").event("a\0b").encode().unwrap(),
            "event: a\0b\ndata: x\n\n"
        );
    }

    #[test]
    fn encode_into_appends_and_leaves_output_untouched_on_error() {
        let mut out = String::from(": start\n");
        Event::new("x").encode_into(&mut out).unwrap();
        assert_eq!(out, ": start\ndata: x\n\n");
        let result = Event::new("y").id("bad\n").encode_into(&mut out);
        assert!(result.is_err());
        assert_eq!(out, ": start\ndata: x\n\n");
    }

    #[test]
    fn errors_say_which_character() {
        assert_eq!(
            EncodeError::ForbiddenCharacterInId('\0').to_string(),
            "an event id cannot contain a NULL (U+0000)"
        );
        assert_eq!(
            EncodeError::ForbiddenCharacterInEventType('\r').to_string(),
            "an event type cannot contain a carriage return (U+000D)"
        );
    }

    #[test]
    fn comment_one_line_per_line() {
        assert_eq!(comment("keep-alive"), ": keep-alive\n");
        assert_eq!(comment("a\r\nb\rc\nd"), ": a\n: b\n: c\n: d\n");
        assert_eq!(comment(""), ": \n");
    }

    #[test]
    fn retry_line_has_no_blank_line() {
        assert_eq!(retry(3000), "retry: 3000\n");
        assert_eq!(retry(0), "retry: 0\n");
    }

    #[test]
    fn split_lines_keeps_empty_lines() {
        let lines = |text| split_lines(text).collect::<Vec<_>>();
        assert_eq!(lines(""), [""]);
        assert_eq!(lines("a"), ["a"]);
        assert_eq!(lines("a\n"), ["a", ""]);
        assert_eq!(lines("\r\n"), ["", ""]);
        assert_eq!(lines("\r\r\n\n"), ["", "", "", ""]);
    }
}
