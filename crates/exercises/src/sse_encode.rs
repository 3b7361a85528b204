//! Exercise 4: encode a Server-Sent Event so that any text arrives intact.
//!
//! An event is a few `name: value` lines and a blank line. The format has no
//! escaping: a line break inside a value would end the line. A parser treats
//! CRLF, a lone CR and a lone LF each as one line break, and joins the values of
//! an event's `data:` lines with LF. So text with line breaks of any kind is sent
//! as one `data:` line per line, and the client gets the text back with every
//! line break as LF, which is all the format can carry. Everything else (empty
//! lines, a trailing line break, leading spaces, a colon) must arrive as it was.

// ANCHOR: exercise
/// Why an event cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The `id` or `event` value contains CR or LF: it cannot be written on one line.
    LineBreakInField,
}

/// The event-stream text of one event: an `id:` line if `id` is given, an
/// `event:` line if `event` is given, the `data:` lines, and the blank line that
/// ends the event. Every line ends with LF; write a space after each colon.
///
/// `data: ""` still gets one (empty) `data:` line, so the client gets an event
/// whose data is empty.
pub fn encode_event(
    id: Option<&str>,
    event: Option<&str>,
    data: &str,
) -> Result<String, EncodeError> {
    // ANCHOR: solution
    let breaks_line = |value: &str| value.contains(['\r', '\n']);
    if id.is_some_and(breaks_line) || event.is_some_and(breaks_line) {
        return Err(EncodeError::LineBreakInField);
    }
    let mut out = String::new();
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    if let Some(event) = event {
        out.push_str(&format!("event: {event}\n"));
    }
    // Normalise the two other line breaks to LF, then split at LF: unlike
    // `str::lines`, `split` keeps a trailing empty line.
    for line in data.replace("\r\n", "\n").replace('\r', "\n").split('\n') {
        out.push_str(&format!("data: {line}\n"));
    }
    out.push('\n');
    Ok(out)
    // ANCHOR_END: solution
}
// ANCHOR_END: exercise

// ANCHOR: tests
#[cfg(test)]
mod tests {
    use super::*;

    /// What a browser's `EventSource` would deliver for `stream` (one event):
    /// `(id, event type, data)`. A parser written from the WHATWG rules, cut down
    /// to what these tests need.
    fn decode(stream: &str) -> (Option<String>, Option<String>, String) {
        let normalised = stream.replace("\r\n", "\n").replace('\r', "\n");
        let body = normalised
            .strip_suffix("\n\n")
            .expect("the event ends with a blank line");
        let (mut id, mut event, mut data) = (None, None, Vec::new());
        for line in body.split('\n') {
            assert!(
                !line.is_empty(),
                "a blank line ends the event early: {stream:?}"
            );
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match name {
                "id" => id = Some(value.to_owned()),
                "event" => event = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        assert!(
            !data.is_empty(),
            "no data line: the client delivers nothing"
        );
        (id, event, data.join("\n"))
    }

    #[test]
    fn a_simple_event() {
        assert_eq!(
            encode_event(Some("7"), Some("message"), "hello").unwrap(),
            "id: 7\nevent: message\ndata: hello\n\n"
        );
        assert_eq!(encode_event(None, None, "hi").unwrap(), "data: hi\n\n");
    }

    #[test]
    fn empty_data_is_one_empty_data_line() {
        assert_eq!(encode_event(None, None, "").unwrap(), "data: \n\n");
    }

    #[test]
    fn every_kind_of_line_break_becomes_a_data_line() {
        assert_eq!(
            encode_event(None, None, "a\nb\r\nc\rd").unwrap(),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn any_text_arrives_with_its_line_breaks_as_lf() {
        let pieces = [
            "", "a", " ", "  two", ":", "data: x", "\n", "\r", "\r\n", "\n\n", "é",
        ];
        // Every sequence of up to three pieces.
        for first in pieces {
            for second in pieces {
                for third in pieces {
                    let text = format!("{first}{second}{third}");
                    let encoded = encode_event(None, None, &text).unwrap();
                    let expected = text.replace("\r\n", "\n").replace('\r', "\n");
                    assert_eq!(decode(&encoded).2, expected, "{text:?} as {encoded:?}");
                }
            }
        }
    }

    #[test]
    fn id_and_event_arrive_intact() {
        let encoded = encode_event(Some(" 42"), Some("chat: new"), "x").unwrap();
        assert_eq!(
            decode(&encoded),
            (Some(" 42".into()), Some("chat: new".into()), "x".into())
        );
    }

    #[test]
    fn a_line_break_in_id_or_event_is_refused() {
        for bad in ["1\n2", "1\r2", "\r\n"] {
            assert_eq!(
                encode_event(Some(bad), None, "x"),
                Err(EncodeError::LineBreakInField)
            );
            assert_eq!(
                encode_event(None, Some(bad), "x"),
                Err(EncodeError::LineBreakInField)
            );
        }
    }
}
// ANCHOR_END: tests
