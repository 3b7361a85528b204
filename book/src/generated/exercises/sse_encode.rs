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
    todo!()
}
