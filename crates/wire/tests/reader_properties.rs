//! Property tests of `MessageReader`: the same messages, and the same error at the same
//! byte, however the bytes are split, and as the hand-made loop it replaces decided them.

use proptest::prelude::*;
use wsse_wire::ProtocolError;
use wsse_wire::frame::{FrameDecoder, OpCode, Role, encode_frame};
use wsse_wire::message::{IncompleteTextCheck, Message, MessageAssembler};
use wsse_wire::reader::MessageReader;

const LIMIT: usize = 4096;

/// A frame as (fin, opcode, payload): mostly well-formed, sometimes not (bad UTF-8,
/// continuations out of order, fragmented control frames, reserved opcodes).
fn any_frame() -> impl Strategy<Value = (bool, OpCode, Vec<u8>)> {
    let text = prop_oneof![
        "[a-z€😀 ]{0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    prop_oneof![
        4 => (any::<bool>(), prop_oneof![Just(OpCode::Text), Just(OpCode::Continuation)], text),
        2 => (
            any::<bool>(),
            prop_oneof![Just(OpCode::Binary), Just(OpCode::Continuation)],
            proptest::collection::vec(any::<u8>(), 0..300),
        ),
        2 => (
            prop_oneof![9 => Just(true), 1 => Just(false)],
            prop_oneof![Just(OpCode::Ping), Just(OpCode::Pong), Just(OpCode::Reserved(0xb))],
            proptest::collection::vec(any::<u8>(), 0..=125),
        ),
    ]
}

/// The frames as `role`'s peer sends them.
fn encode(role: Role, frames: &[(bool, OpCode, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (fin, opcode, payload) in frames {
        let mask = match role {
            Role::Server => Some([1, 2, 3, 4]),
            Role::Client => None,
        };
        encode_frame(&mut bytes, *fin, *opcode, mask, payload);
    }
    bytes
}

/// Everything a reader said: the messages, then the error and how many bytes had been
/// fed when it came.
type Outcome = (Vec<Message>, Option<(ProtocolError, usize)>);

/// The ends of the pieces that `cuts` split `bytes` into, in order, the last at the end.
fn piece_ends(bytes: &[u8], cuts: &[usize]) -> Vec<usize> {
    let mut ends: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    ends.push(bytes.len());
    ends.sort_unstable();
    ends
}

/// Feeds `bytes` to a `MessageReader` in pieces that end at `cuts`.
fn read_in_pieces(role: Role, bytes: &[u8], cuts: &[usize], use_feed: bool) -> Outcome {
    let mut reader = MessageReader::new(role, LIMIT, LIMIT).with_read_size(7);
    let mut messages = Vec::new();
    let mut fed = 0;
    for end in piece_ends(bytes, cuts) {
        let piece = &bytes[fed..end];
        if use_feed {
            reader.feed(piece);
        } else {
            reader.buffer_to_fill().extend_from_slice(piece);
        }
        fed = end;
        loop {
            match reader.next_message() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(error) => return (messages, Some((error, fed))),
            }
        }
    }
    (messages, None)
}

/// The loop the reader replaces, as scratch, `wire_client` and the test kit wrote it,
/// fed the same pieces.
fn read_like_before(role: Role, bytes: &[u8], cuts: &[usize]) -> Outcome {
    let decoder = FrameDecoder::new(role, LIMIT as u64);
    let mut assembler = MessageAssembler::new(LIMIT);
    let mut incomplete_text = IncompleteTextCheck::new();
    let mut buffer = Vec::new();
    let mut messages = Vec::new();
    let mut fed = 0;
    for end in piece_ends(bytes, cuts) {
        buffer.extend_from_slice(&bytes[fed..end]);
        fed = end;
        let result: Result<(), ProtocolError> = (|| {
            loop {
                let Some(frame) = decoder.decode(&mut buffer)? else {
                    incomplete_text.check(&buffer)?;
                    return Ok(());
                };
                let header = frame.header;
                let consumed = frame.consumed;
                let message = assembler.push(&header, frame.payload)?;
                buffer.drain(..consumed);
                incomplete_text.frame_completed(&header);
                messages.extend(message);
            }
        })();
        if let Err(error) = result {
            return (messages, Some((error, fed)));
        }
    }
    (messages, None)
}

fn any_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Server), Just(Role::Client)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The same messages, and the same error after the same byte, as the hand-made loop.
    #[test]
    fn the_reader_answers_as_the_loop_it_replaces(
        frames in proptest::collection::vec(any_frame(), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        role in any_role(),
        use_feed in any::<bool>(),
    ) {
        let bytes = encode(role, &frames);
        prop_assert_eq!(
            read_in_pieces(role, &bytes, &cuts, use_feed),
            read_like_before(role, &bytes, &cuts)
        );
        let one_at_a_time: Vec<usize> = (0..bytes.len()).collect();
        prop_assert_eq!(
            read_in_pieces(role, &bytes, &one_at_a_time, use_feed),
            read_like_before(role, &bytes, &one_at_a_time)
        );
    }

    /// However the bytes are split, the same messages come out, and a stream that
    /// breaks a rule fails under every split (which rule is named first can depend on
    /// the split, as it did before: a text frame still arriving is checked for UTF-8
    /// before the frame's order and size are).
    #[test]
    fn any_split_gives_the_same_messages(
        frames in proptest::collection::vec(any_frame(), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        role in any_role(),
    ) {
        let bytes = encode(role, &frames);
        let (whole, whole_error) = read_in_pieces(role, &bytes, &[], true);
        let (messages, error) = read_in_pieces(role, &bytes, &cuts, false);
        prop_assert_eq!(messages, whole);
        prop_assert_eq!(error.is_some(), whole_error.is_some());
    }
}

#[test]
fn every_split_point_of_a_fragmented_text_gives_the_same_messages() {
    let frames = vec![
        (false, OpCode::Text, "ab€".as_bytes()[..4].to_vec()),
        (true, OpCode::Ping, b"ping".to_vec()),
        (false, OpCode::Continuation, "ab€".as_bytes()[4..].to_vec()),
        (true, OpCode::Continuation, " cd😀".as_bytes().to_vec()),
        (true, OpCode::Binary, vec![0xff; 200]),
    ];
    let bytes = encode(Role::Server, &frames);
    let (whole, error) = read_in_pieces(Role::Server, &bytes, &[], true);
    assert_eq!(error, None);
    assert_eq!(
        whole,
        vec![
            Message::Ping(b"ping".to_vec()),
            Message::Text("ab€ cd😀".into()),
            Message::Binary(vec![0xff; 200]),
        ]
    );
    for first in 0..=bytes.len() {
        for second in first..=bytes.len() {
            let (messages, error) = read_in_pieces(Role::Server, &bytes, &[first, second], false);
            assert_eq!(
                (messages, error),
                (whole.clone(), None),
                "cut at {first}, {second}"
            );
        }
    }
}
