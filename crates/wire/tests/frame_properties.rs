//! Property tests of the frame codec: round trips, arbitrary splits, arbitrary bytes.

use proptest::prelude::*;
use wsse_wire::ProtocolError;
use wsse_wire::frame::{FrameDecoder, FrameHeader, OpCode, Role, encode_frame};
use wsse_wire::message::{Message, MessageAssembler};

/// A header with any bits at all, including reserved ones and every length form.
fn any_header() -> impl Strategy<Value = FrameHeader> {
    let length = prop_oneof![
        0u64..=125,
        126u64..=0xffff,
        0x1_0000u64..=(u64::MAX >> 1),
        Just(125u64),
        Just(126u64),
        Just(0xffffu64),
        Just(0x1_0000u64),
    ];
    (
        any::<[bool; 4]>(),
        0u8..16,
        proptest::option::of(any::<[u8; 4]>()),
        length,
    )
        .prop_map(
            |([fin, rsv1, rsv2, rsv3], bits, mask, payload_len)| FrameHeader {
                fin,
                rsv1,
                rsv2,
                rsv3,
                opcode: OpCode::from_bits(bits),
                mask,
                payload_len,
            },
        )
}

/// A frame that a well-behaved peer could send, as (fin, opcode, payload).
fn valid_frame() -> impl Strategy<Value = (bool, OpCode, Vec<u8>)> {
    prop_oneof![
        (
            any::<bool>(),
            prop_oneof![Just(OpCode::Binary), Just(OpCode::Continuation)],
            proptest::collection::vec(any::<u8>(), 0..70_000),
        ),
        (
            Just(true),
            prop_oneof![Just(OpCode::Ping), Just(OpCode::Pong)],
            proptest::collection::vec(any::<u8>(), 0..=125),
        ),
    ]
}

/// The frames found, each as its header and an owned payload, and the bytes left over.
type Decoded = (Vec<(FrameHeader, Vec<u8>)>, usize);

/// Decodes every complete frame in `bytes`, fed in pieces that end at `cuts`.
fn decode_in_pieces(
    decoder: FrameDecoder,
    bytes: &[u8],
    cuts: &[usize],
) -> Result<Decoded, ProtocolError> {
    let mut frames = Vec::new();
    let mut buffer = Vec::new();
    let mut fed = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    ends.push(bytes.len());
    ends.sort_unstable();
    for end in ends {
        buffer.extend_from_slice(&bytes[fed..end.max(fed)]);
        fed = end.max(fed);
        while let Some(frame) = decoder.decode(&mut buffer)? {
            frames.push((frame.header, frame.payload.to_vec()));
            let consumed = frame.consumed;
            buffer.drain(..consumed);
        }
    }
    Ok((frames, buffer.len()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_header_round_trips(header in any_header()) {
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        prop_assert_eq!(bytes.len(), header.encoded_len());
        prop_assert_eq!(FrameHeader::decode(&bytes), Ok(Some((header, bytes.len()))));
    }

    #[test]
    fn any_frame_round_trips_in_both_roles(
        (fin, opcode, payload) in valid_frame(),
        key in any::<[u8; 4]>(),
    ) {
        for (sender_mask, receiver) in [(Some(key), Role::Server), (None, Role::Client)] {
            let mut bytes = Vec::new();
            encode_frame(&mut bytes, fin, opcode, sender_mask, &payload);
            let (frames, left) = decode_in_pieces(FrameDecoder::new(receiver, 1 << 20), &bytes, &[])?;
            prop_assert_eq!(left, 0);
            prop_assert_eq!(frames.len(), 1);
            let (header, decoded) = &frames[0];
            prop_assert_eq!(header.fin, fin);
            prop_assert_eq!(header.opcode, opcode);
            prop_assert_eq!(header.mask, sender_mask);
            prop_assert_eq!(decoded, &payload);
        }
    }

    #[test]
    fn a_stream_split_anywhere_decodes_as_whole(
        frames in proptest::collection::vec(valid_frame(), 1..6),
        key in any::<[u8; 4]>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut bytes = Vec::new();
        for (fin, opcode, payload) in &frames {
            encode_frame(&mut bytes, *fin, *opcode, Some(key), payload);
        }
        let decoder = FrameDecoder::new(Role::Server, 1 << 20);
        let whole = decode_in_pieces(decoder, &bytes, &[])?;
        let split = decode_in_pieces(decoder, &bytes, &cuts)?;
        prop_assert_eq!(whole.0.len(), frames.len());
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn the_decoder_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        role in prop_oneof![Just(Role::Client), Just(Role::Server)],
    ) {
        // Every outcome is fine except a panic; the limit keeps announced lengths honest.
        let decoder = FrameDecoder::new(role, 200);
        let mut assembler = MessageAssembler::new(200);
        if let Ok((frames, _)) = decode_in_pieces(decoder, &bytes, &cuts) {
            for (header, payload) in frames {
                if assembler.push(&header, &payload).is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn text_in_any_fragments_reassembles(
        text in "\\PC{0,200}",
        cuts in proptest::collection::vec(any::<usize>(), 0..5),
    ) {
        // Cut the UTF-8 bytes anywhere, even inside a character.
        let bytes = text.as_bytes();
        let mut ends: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        ends.dedup();
        let mut assembler = MessageAssembler::new(1 << 20);
        let mut start = 0;
        let mut result = None;
        for (index, end) in ends.iter().enumerate() {
            let fin = index == ends.len() - 1;
            let opcode = if index == 0 { OpCode::Text } else { OpCode::Continuation };
            let header = FrameHeader { fin, ..FrameHeader::new(opcode, (end - start) as u64) };
            result = assembler.push(&header, &bytes[start..*end])?;
            start = *end;
        }
        prop_assert_eq!(result, Some(Message::Text(text)));
    }
}
