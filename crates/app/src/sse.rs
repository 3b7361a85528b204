//! Turning hub events into Server-Sent Events for `GET /events`, and what every SSE
//! response shares (headers, the `retry` line, the heartbeat comment).
//!
//! A chat message carries `id: SEQ`, so a reconnecting `EventSource` sends
//! `Last-Event-ID: SEQ` and [`Hub::subscribe_from_last_event_id`] resumes right after
//! it. Presence and reset events carry no id: they must not move the client's resume
//! point.
//!
//! [`Hub::subscribe_from_last_event_id`]: crate::hub::Hub::subscribe_from_last_event_id

use wsse_wire::sse::{self as wire, Event};

use crate::hub::HubEvent;

/// The reconnection delay every SSE response announces first, in milliseconds.
pub const RETRY_MS: u64 = 3000;

/// The text of the comment sent every `--heartbeat` seconds when nothing else is sent.
pub const HEARTBEAT_COMMENT: &str = "heartbeat";

// ANCHOR: headers
/// The response headers of every SSE route.
///
/// - `Content-Type: text/event-stream`: what makes it an event stream; `EventSource`
///   refuses anything else.
/// - `Cache-Control: no-cache`: a cached copy of a live stream is useless.
/// - `X-Accel-Buffering: no`: tells nginx-style proxies not to buffer the response,
///   which would hold events back until the buffer fills.
pub fn headers() -> [(&'static str, &'static str); 3] {
    [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
    ]
}
// ANCHOR_END: headers

// ANCHOR: hub_event_to_sse
/// A hub event as an SSE event; the data is the same JSON a WebSocket client gets.
///
/// - message: `id: SEQ`, `event: message`, `data: {"type":"message",...}`
/// - presence: `event: presence`, `data: {"type":"presence","online":N}`, no id
/// - reset: `event: reset`, `data: {"type":"reset","oldest":N}`, no id
pub fn hub_event(event: &HubEvent) -> Event {
    let data = event.to_json();
    match event {
        HubEvent::Message(message) => Event::new(data)
            .id(message.seq.to_string())
            .event("message"),
        HubEvent::Presence { .. } => Event::new(data).event("presence"),
        HubEvent::Reset { .. } => Event::new(data).event("reset"),
    }
}
// ANCHOR_END: hub_event_to_sse

/// An event as text on the wire.
///
/// For the events this crate builds the encoding cannot fail: ids are numbers, types
/// are fixed words, and any data is allowed.
pub fn encode(event: &Event) -> String {
    event
        .encode()
        .expect("ids are numbers and event types fixed words")
}

/// What every SSE response starts with: `retry: 3000`.
pub fn prelude() -> String {
    wire::retry(RETRY_MS)
}

/// The heartbeat comment, `: heartbeat`, that keeps proxies from closing a quiet stream.
pub fn heartbeat() -> String {
    wire::comment(HEARTBEAT_COMMENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::ChatMessage;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn data(event: &Event) -> Value {
        serde_json::from_str(&event.data).unwrap()
    }

    #[test]
    fn a_message_has_id_type_and_the_websocket_json() {
        let event = hub_event(&HubEvent::Message(Arc::new(ChatMessage {
            seq: 7,
            from: "ann".into(),
            content: "two\nlines".into(),
            ts: 5,
        })));
        assert_eq!(event.id.as_deref(), Some("7"));
        assert_eq!(event.event.as_deref(), Some("message"));
        assert_eq!(
            data(&event),
            json!({"type": "message", "seq": 7, "from": "ann", "content": "two\nlines", "ts": 5})
        );
        // JSON escapes the newline, so the data is one line.
        assert_eq!(encode(&event).matches("data: ").count(), 1);
        assert!(encode(&event).starts_with("id: 7\nevent: message\ndata: {"));
    }

    #[test]
    fn presence_and_reset_have_no_id() {
        let presence = hub_event(&HubEvent::Presence { online: 2 });
        assert_eq!(presence.id, None);
        assert_eq!(presence.event.as_deref(), Some("presence"));
        assert_eq!(data(&presence), json!({"type": "presence", "online": 2}));
        let reset = hub_event(&HubEvent::Reset { oldest: 9 });
        assert_eq!(reset.id, None);
        assert_eq!(
            encode(&reset),
            "event: reset\ndata: {\"type\":\"reset\",\"oldest\":9}\n\n"
        );
    }

    #[test]
    fn shared_pieces() {
        assert_eq!(prelude(), "retry: 3000\n");
        assert_eq!(heartbeat(), ": heartbeat\n");
        assert_eq!(
            headers(),
            [
                ("Content-Type", "text/event-stream"),
                ("Cache-Control", "no-cache"),
                ("X-Accel-Buffering", "no")
            ]
        );
    }
}
