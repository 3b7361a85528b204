//! Differential tests: what we encode, tungstenite decodes to the same message, and
//! what tungstenite encodes, we decode to the same message, in both roles.
//!
//! tungstenite runs over an in-memory stream, through its public `WebSocket` API, so
//! these tests exercise exactly what a tungstenite peer on the network would do.

use std::io::{self, Read, Write};

use proptest::prelude::*;
use tungstenite::protocol::{Role as TungsteniteRole, WebSocket};
use wsse_wire::close::{CloseCode, encode_close_payload};
use wsse_wire::frame::{FrameDecoder, OpCode, Role, encode_frame};
use wsse_wire::mask::random_key;
use wsse_wire::message::{Message, MessageAssembler};

/// Bytes in, bytes out: the network as two buffers.
#[derive(Default)]
struct MemoryStream {
    incoming: Vec<u8>,
    read_position: usize,
    outgoing: Vec<u8>,
}

impl Read for MemoryStream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let available = &self.incoming[self.read_position..];
        if available.is_empty() {
            // Not end of stream: the peer simply has not sent more yet.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let count = available.len().min(buffer.len());
        buffer[..count].copy_from_slice(&available[..count]);
        self.read_position += count;
        Ok(count)
    }
}

impl Write for MemoryStream {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.outgoing.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tungstenite_peer(our_role: Role) -> WebSocket<MemoryStream> {
    let their_role = match our_role {
        Role::Client => TungsteniteRole::Server,
        Role::Server => TungsteniteRole::Client,
    };
    WebSocket::from_raw_socket(MemoryStream::default(), their_role, None)
}

/// A data message as both libraries see it.
#[derive(Debug, Clone, PartialEq)]
enum Data {
    Text(String),
    Binary(Vec<u8>),
}

impl Data {
    fn opcode_and_bytes(&self) -> (OpCode, &[u8]) {
        match self {
            Data::Text(text) => (OpCode::Text, text.as_bytes()),
            Data::Binary(bytes) => (OpCode::Binary, bytes),
        }
    }
}

fn to_tungstenite(data: &Data) -> tungstenite::Message {
    match data {
        Data::Text(text) => tungstenite::Message::text(text.clone()),
        Data::Binary(bytes) => tungstenite::Message::binary(bytes.clone()),
    }
}

fn from_tungstenite(message: tungstenite::Message) -> Data {
    match message {
        tungstenite::Message::Text(text) => Data::Text(text.as_str().to_owned()),
        tungstenite::Message::Binary(bytes) => Data::Binary(bytes.to_vec()),
        other => panic!("expected a data message, got {other:?}"),
    }
}

/// Encodes `data` as we would send it in `role`, cut into fragments at `cuts`.
fn encode_ours(role: Role, data: &Data, cuts: &[usize]) -> Vec<u8> {
    let (opcode, bytes) = data.opcode_and_bytes();
    let mut ends: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    ends.push(bytes.len());
    ends.sort_unstable();
    ends.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for (index, end) in ends.iter().enumerate() {
        let fin = index == ends.len() - 1;
        let frame_opcode = if index == 0 {
            opcode
        } else {
            OpCode::Continuation
        };
        let mask = (role == Role::Client).then(random_key);
        encode_frame(&mut out, fin, frame_opcode, mask, &bytes[start..*end]);
        start = *end;
    }
    out
}

/// Decodes every message in `bytes` as `role` would receive them.
fn decode_ours(role: Role, mut bytes: Vec<u8>) -> Vec<Message> {
    let decoder = FrameDecoder::new(role, 1 << 24);
    let mut assembler = MessageAssembler::new(1 << 24);
    let mut messages = Vec::new();
    let mut start = 0;
    while let Some(frame) = decoder.decode(&mut bytes[start..]).expect("valid frames") {
        if let Some(message) = assembler.push(&frame.header, frame.payload).expect("valid") {
            messages.push(message);
        }
        start += frame.consumed;
    }
    assert_eq!(start, bytes.len(), "trailing bytes");
    messages
}

fn ours_to_data(message: Message) -> Data {
    match message {
        Message::Text(text) => Data::Text(text),
        Message::Binary(bytes) => Data::Binary(bytes),
        other => panic!("expected a data message, got {other:?}"),
    }
}

/// Sizes on both sides of every length-form boundary.
fn boundary_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=130,
        prop_oneof![Just(125usize), Just(126), Just(127)],
        prop_oneof![Just(65_535usize), Just(65_536), Just(65_537)],
        130usize..70_000,
    ]
}

fn any_data() -> impl Strategy<Value = Data> {
    prop_oneof![
        boundary_size().prop_flat_map(
            |size| proptest::collection::vec(any::<u8>(), size).prop_map(Data::Binary)
        ),
        // Text of roughly the boundary sizes; multi-byte characters make the byte
        // length vary around them.
        boundary_size().prop_flat_map(|size| proptest::string::string_regex(&format!(
            "[a-z€é😀]{{{},{}}}",
            size / 2,
            size
        ))
        .expect("valid regex")
        .prop_map(Data::Text)),
    ]
}

fn any_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Client), Just(Role::Server)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tungstenite_reads_what_we_write(
        role in any_role(),
        data in any_data(),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut peer = tungstenite_peer(role);
        peer.get_mut().incoming = encode_ours(role, &data, &cuts);
        let received = peer.read().expect("tungstenite accepts our frames");
        prop_assert_eq!(from_tungstenite(received), data);
    }

    #[test]
    fn we_read_what_tungstenite_writes(role in any_role(), data in any_data()) {
        let mut peer = tungstenite_peer(role);
        peer.send(to_tungstenite(&data)).expect("send");
        let bytes = std::mem::take(&mut peer.get_mut().outgoing);
        // tungstenite masks exactly when it is the client.
        prop_assert_eq!(bytes[1] & 0x80 != 0, role == Role::Server);
        let messages = decode_ours(role, bytes);
        prop_assert_eq!(messages.len(), 1);
        prop_assert_eq!(ours_to_data(messages.into_iter().next().unwrap()), data);
    }
}

#[test]
fn control_frames_agree_in_both_directions() {
    for role in [Role::Client, Role::Server] {
        // Ours to tungstenite: a ping, then a close with a code and reason.
        let mask = || (role == Role::Client).then(random_key);
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, true, OpCode::Ping, mask(), b"are you there");
        let close = encode_close_payload(CloseCode::GOING_AWAY, "shutting down");
        encode_frame(&mut bytes, true, OpCode::Close, mask(), &close);
        let mut peer = tungstenite_peer(role);
        peer.get_mut().incoming = bytes;
        assert_eq!(
            peer.read().unwrap(),
            tungstenite::Message::Ping(b"are you there".to_vec().into())
        );
        match peer.read().unwrap() {
            tungstenite::Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 1001);
                assert_eq!(frame.reason.as_str(), "shutting down");
            }
            other => panic!("expected a close, got {other:?}"),
        }

        // Tungstenite answered our ping with a pong and our close with a close: we read
        // both. Its close reply waits in its buffer until a flush, which then reports
        // that the connection is closed; that result is expected and not the point here.
        let _ = peer.flush();
        let answers = decode_ours(role, std::mem::take(&mut peer.get_mut().outgoing));
        assert_eq!(answers[0], Message::Pong(b"are you there".to_vec()));
        match &answers[1] {
            Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::GOING_AWAY),
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

#[test]
fn tungstenite_rejects_what_our_decoder_rejects() {
    // An unmasked frame from a "client": both sides must refuse it.
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, true, OpCode::Text, None, b"unmasked");
    let mut peer = tungstenite_peer(Role::Client);
    peer.get_mut().incoming = bytes.clone();
    assert!(peer.read().is_err());
    let decoder = FrameDecoder::new(Role::Server, 1000);
    assert!(decoder.decode(&mut bytes).is_err());
}

/// What a peer answers to a close frame carrying `code`: its own close code, or
/// `None` if it sent no close.
fn tungstenite_close_reply(code: u16) -> Option<u16> {
    let mut bytes = Vec::new();
    let payload = encode_close_payload(CloseCode(code), "");
    encode_frame(
        &mut bytes,
        true,
        OpCode::Close,
        Some(random_key()),
        &payload,
    );
    let mut peer = tungstenite_peer(Role::Client);
    peer.get_mut().incoming = bytes;
    let _ = peer.read();
    let _ = peer.flush();
    // The reply's code straight from the frame: our assembler would refuse a code we do
    // not allow, and that is exactly what this comparison must see.
    let mut reply = std::mem::take(&mut peer.get_mut().outgoing);
    let decoder = FrameDecoder::new(Role::Client, 1000);
    let frame = decoder.decode(&mut reply).expect("a valid frame")?;
    match (frame.header.opcode, frame.payload) {
        (OpCode::Close, [high, low, ..]) => Some(u16::from_be_bytes([*high, *low])),
        _ => None,
    }
}

/// Every code a client might send, through tungstenite as a server: it echoes the codes
/// it allows and answers 1002 to the others. It agrees with our rule everywhere but at
/// 1014 (Bad Gateway), which IANA registered after tungstenite's table was written: it
/// treats 1014 as invalid, so a proxy's 1014 makes it answer with a protocol error.
#[test]
fn close_codes_tungstenite_allows_match_ours_but_1014() {
    let mut differences = Vec::new();
    for code in (0..=5100).chain([u16::MAX]) {
        let ours = CloseCode(code).is_allowed_on_wire();
        let theirs = match tungstenite_close_reply(code) {
            Some(reply) if reply == code => true,
            Some(1002) => false,
            other => panic!("tungstenite answered close {code} with {other:?}"),
        };
        if ours != theirs {
            differences.push(code);
        }
    }
    assert_eq!(differences, [1014]);
    // The three codes registered after RFC 6455, as both see them.
    assert_eq!(tungstenite_close_reply(1012), Some(1012));
    assert_eq!(tungstenite_close_reply(1013), Some(1013));
    assert_eq!(tungstenite_close_reply(1014), Some(1002));
}
