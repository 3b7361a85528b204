//! Turning hub events into Server-Sent Events for `GET /events`, and what every SSE
//! response shares (headers, the `retry` line, the heartbeat event).
//!
//! A chat message carries `id: SEQ`, so a reconnecting `EventSource` sends
//! `Last-Event-ID: SEQ` and [`Hub::subscribe_from_last_event_id`] resumes right after
//! it. Presence, reset and heartbeat events carry no id: they must not move the
//! client's resume point.
//!
//! [`Hub::subscribe_from_last_event_id`]: crate::hub::Hub::subscribe_from_last_event_id

use std::time::Duration;

use futures_util::{Stream, StreamExt, stream};
use wsse_wire::sse::{self as wire, Event, ParsedEvent};

use crate::burst::BURST_LIMIT;
use crate::hub::HubEvent;

/// The reconnection delay every SSE response announces first, in milliseconds.
pub const RETRY_MS: u64 = 3000;

// ANCHOR: heartbeat
/// The type of the heartbeat event: `event: heartbeat`, with the interval in
/// milliseconds as its data, sent first on every SSE response and then whenever
/// nothing was sent for `--heartbeat` seconds.
///
/// A comment (`: heartbeat`) would keep proxies from closing a quiet stream just as
/// well, but `EventSource` never shows comments to the page: a page can only watch
/// for events. A named event without an `id` leaves the last event ID alone, and
/// `onmessage` (which only gets events of type `message`) never sees it.
pub const HEARTBEAT_EVENT: &str = "heartbeat";

/// How many heartbeat intervals a client waits without hearing from the server
/// (no byte for a Rust client, no event for a page) before it takes the connection
/// for dead, closes it and reconnects with `Last-Event-ID`.
///
/// More than two: the server sends a heartbeat only after a whole interval of
/// quiet, so the next one is due a full interval after the last thing the client
/// heard, and it may then be held up on the way (a retransmitted packet, a busy
/// server or proxy). Two intervals forgive a heartbeat late by almost an interval,
/// and the half on top is margin: a slow but healthy stream is not torn down and
/// replayed, and a dead one is still found within a few intervals.
pub const LIVENESS_TIMEOUT_HEARTBEATS: f64 = 2.5;

/// The heartbeat interval a client assumes until the server announces its own:
/// the servers' default `--heartbeat`, 15 s.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

/// The heartbeat event: `event: heartbeat` and `data: MILLISECONDS`, no id.
pub fn heartbeat_event(interval: Duration) -> Event {
    Event::new(interval.as_millis().to_string()).event(HEARTBEAT_EVENT)
}

/// The interval a heartbeat event announces, or `None` if `event` is not one (of
/// another type, or data that is not a positive number of milliseconds).
pub fn heartbeat_interval(event: &ParsedEvent) -> Option<Duration> {
    if event.event_type != HEARTBEAT_EVENT {
        return None;
    }
    let milliseconds: u64 = event.data.trim().parse().ok()?;
    (milliseconds > 0).then(|| Duration::from_millis(milliseconds))
}

/// How long a client waits without hearing from a server whose heartbeat interval
/// is `heartbeat` before it reconnects: [`LIVENESS_TIMEOUT_HEARTBEATS`] intervals.
pub fn liveness_timeout(heartbeat: Duration) -> Duration {
    heartbeat.mul_f64(LIVENESS_TIMEOUT_HEARTBEATS)
}
// ANCHOR_END: heartbeat

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

/// What every SSE response starts with: `retry: 3000` on a line (and a blank line)
/// of its own, then a first heartbeat event, so that a client knows the interval
/// before it has to watch for the next one.
pub fn prelude(heartbeat: Duration) -> String {
    format!("{}\n{}", wire::retry(RETRY_MS), self::heartbeat(heartbeat))
}

/// The heartbeat event as text: `event: heartbeat\ndata: 15000\n\n` for 15 s.
pub fn heartbeat(interval: Duration) -> String {
    encode(&heartbeat_event(interval))
}

// ANCHOR: text_stream
/// A whole event stream as the text to send: [`prelude`] first, then the events
/// encoded, and a [`heartbeat`] event whenever nothing was sent for `heartbeat`.
/// Ends when `events` does.
///
/// Each item is one chunk for the server to write: an event together with every
/// event already waiting behind it (at most [`BURST_LIMIT`]), so a burst costs one
/// write and, over HTTP/1.1, one chunk header, instead of one of each per event.
///
/// For servers that write the event-stream text themselves: actix-web has no SSE
/// type, warp's writes other bytes, and the scratch server has no framework at all.
pub fn text_stream(
    events: impl Stream<Item = Event> + Send + 'static,
    heartbeat: Duration,
) -> impl Stream<Item = String> + Send + 'static {
    // `ready_chunks` hands over everything already waiting, up to the limit, without
    // waiting for more; it collects within one poll, so dropping `next()` on a
    // timeout loses nothing.
    let chunks = Box::pin(events.ready_chunks(BURST_LIMIT));
    let body = stream::unfold(chunks, move |mut chunks| async move {
        let text = match tokio::time::timeout(heartbeat, chunks.next()).await {
            Ok(Some(events)) => events.iter().map(encode).collect(),
            Ok(None) => return None,
            Err(_quiet) => self::heartbeat(heartbeat),
        };
        Some((text, chunks))
    });
    stream::once(async move { prelude(heartbeat) }).chain(body)
}
// ANCHOR_END: text_stream

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

    #[tokio::test(start_paused = true)]
    async fn text_stream_sends_heartbeats_only_when_quiet() {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let events = stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (event, receiver))
        });
        let mut text = Box::pin(text_stream(events, Duration::from_secs(15)));
        assert_eq!(
            text.next().await.as_deref(),
            Some("retry: 3000\n\nevent: heartbeat\ndata: 15000\n\n")
        );
        sender.send(Event::new("first").id("1")).unwrap();
        assert_eq!(text.next().await.as_deref(), Some("id: 1\ndata: first\n\n"));
        // Nothing for 15 s (paused time advances by itself): a heartbeat.
        let before = tokio::time::Instant::now();
        assert_eq!(
            text.next().await.as_deref(),
            Some("event: heartbeat\ndata: 15000\n\n")
        );
        assert_eq!(before.elapsed(), Duration::from_secs(15));
        drop(sender);
        assert_eq!(text.next().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn text_stream_sends_what_is_waiting_as_one_chunk() {
        let waiting = (1..=BURST_LIMIT + 2).map(|n| Event::new(n.to_string()).id(n.to_string()));
        let mut text = Box::pin(text_stream(
            stream::iter(waiting.collect::<Vec<_>>()),
            Duration::from_secs(15),
        ));
        assert!(text.next().await.unwrap().starts_with("retry: 3000\n\n"));
        let first = text.next().await.unwrap();
        assert_eq!(first.matches("\n\n").count(), BURST_LIMIT);
        assert!(first.starts_with("id: 1\ndata: 1\n\n"), "{first}");
        let rest = text.next().await.unwrap();
        let (last, next) = (BURST_LIMIT + 2, BURST_LIMIT + 1);
        assert_eq!(
            rest,
            format!("id: {next}\ndata: {next}\n\nid: {last}\ndata: {last}\n\n")
        );
        assert_eq!(text.next().await, None);
    }

    #[test]
    fn shared_pieces() {
        let second = Duration::from_secs(1);
        assert_eq!(
            prelude(second),
            "retry: 3000\n\nevent: heartbeat\ndata: 1000\n\n"
        );
        assert_eq!(heartbeat(second), "event: heartbeat\ndata: 1000\n\n");
        assert_eq!(
            headers(),
            [
                ("Content-Type", "text/event-stream"),
                ("Cache-Control", "no-cache"),
                ("X-Accel-Buffering", "no")
            ]
        );
    }

    #[test]
    fn a_heartbeat_announces_its_interval_and_moves_no_id() {
        let mut parser = wsse_wire::sse::EventStreamParser::new();
        let items = parser
            .feed(format!("id: 7\ndata: x\n\n{}", prelude(Duration::from_secs(2))).as_bytes());
        let events: Vec<&ParsedEvent> = items
            .iter()
            .filter_map(|item| match item {
                wsse_wire::sse::Item::Event(event) => Some(event),
                _ => None,
            })
            .collect();
        assert_eq!(events.len(), 2);
        assert_eq!(heartbeat_interval(events[1]), Some(Duration::from_secs(2)));
        assert_eq!(events[1].last_event_id, "7", "the heartbeat carries no id");
        assert_eq!(heartbeat_interval(events[0]), None, "not a heartbeat");
        let event = |event_type: &str, data: &str| ParsedEvent {
            event_type: event_type.into(),
            data: data.into(),
            last_event_id: String::new(),
        };
        assert_eq!(heartbeat_interval(&event("heartbeat", "0")), None);
        assert_eq!(heartbeat_interval(&event("heartbeat", "soon")), None);
        assert_eq!(heartbeat_interval(&event("message", "1000")), None);
    }

    #[test]
    fn the_liveness_timeout_is_two_and_a_half_heartbeats() {
        assert_eq!(
            liveness_timeout(Duration::from_secs(1)),
            Duration::from_millis(2500)
        );
        assert_eq!(
            liveness_timeout(DEFAULT_HEARTBEAT_INTERVAL),
            Duration::from_millis(37_500)
        );
        assert_eq!(
            DEFAULT_HEARTBEAT_INTERVAL,
            crate::Config::default().heartbeat_interval(),
            "the servers' default --heartbeat"
        );
        // The page has the same rule in JavaScript.
        let page = crate::page::INDEX_HTML;
        for constant in [
            format!("const LIVENESS_TIMEOUT_HEARTBEATS = {LIVENESS_TIMEOUT_HEARTBEATS};"),
            format!(
                "const DEFAULT_HEARTBEAT_MS = {};",
                DEFAULT_HEARTBEAT_INTERVAL.as_millis()
            ),
            format!("'{HEARTBEAT_EVENT}'"),
        ] {
            assert!(page.contains(&constant), "page.html lacks {constant}");
        }
    }
}
