//! Exercise 2: parse a frame header, as a server reads it from a client.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               | Masking-key, if MASK set to 1 |
//! +-------------------------------+-------------------------------+
//! ```

// ANCHOR: exercise
/// What a frame carries (the opcodes RFC 6455 defines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// 0x0
    Continuation,
    /// 0x1
    Text,
    /// 0x2
    Binary,
    /// 0x8
    Close,
    /// 0x9
    Ping,
    /// 0xA
    Pong,
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The FIN bit: the last frame of its message.
    pub fin: bool,
    /// The opcode.
    pub opcode: Opcode,
    /// The masking key (a client's frames always have one).
    pub mask: [u8; 4],
    /// The payload length in bytes.
    pub payload_len: u64,
    /// How many bytes the header took: the payload starts there.
    pub header_len: usize,
}

/// Why a header breaks RFC 6455 (a server closes the connection with 1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// RSV1, RSV2 or RSV3 is set, and no extension was negotiated.
    ReservedBits,
    /// An opcode the RFC reserves (0x3-0x7, 0xB-0xF).
    ReservedOpcode(u8),
    /// A control frame (close, ping, pong) without FIN: they cannot be fragmented.
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong,
    /// The MASK bit is clear: every frame from a client must be masked.
    Unmasked,
    /// A length written in a longer form than needed (126 for a length under 126,
    /// 127 for a length that fits in 16 bits): the RFC requires the shortest form.
    NonMinimalLength,
    /// The 64-bit length has its most significant bit set.
    LengthTooLarge,
}

/// Parses the header at the start of `bytes`, a frame sent by a client.
///
/// Returns `Ok(None)` while `bytes` is too short to hold the whole header (the
/// caller reads more and tries again), and `Ok(Some(header))` once it does. Every
/// check above is made on a complete header; bytes after the header are ignored.
pub fn parse_header(bytes: &[u8]) -> Result<Option<FrameHeader>, HeaderError> {
    // ANCHOR: solution
    let [first, second, rest @ ..] = bytes else {
        return Ok(None);
    };
    let (payload_len, length_bytes) = match second & 0x7f {
        126 => match rest.first_chunk::<2>() {
            Some(length) => (u64::from(u16::from_be_bytes(*length)), 2),
            None => return Ok(None),
        },
        127 => match rest.first_chunk::<8>() {
            Some(length) => (u64::from_be_bytes(*length), 8),
            None => return Ok(None),
        },
        short => (u64::from(short), 0),
    };
    let masked = second & 0x80 != 0;
    let mask_bytes = if masked { 4 } else { 0 };
    let Some(mask) = rest[length_bytes..].get(..mask_bytes) else {
        return Ok(None);
    };

    if first & 0x70 != 0 {
        return Err(HeaderError::ReservedBits);
    }
    let opcode = match first & 0x0f {
        0x0 => Opcode::Continuation,
        0x1 => Opcode::Text,
        0x2 => Opcode::Binary,
        0x8 => Opcode::Close,
        0x9 => Opcode::Ping,
        0xa => Opcode::Pong,
        reserved => return Err(HeaderError::ReservedOpcode(reserved)),
    };
    let fin = first & 0x80 != 0;
    if first & 0x08 != 0 {
        if !fin {
            return Err(HeaderError::FragmentedControlFrame);
        }
        if payload_len > 125 {
            return Err(HeaderError::ControlFrameTooLong);
        }
    }
    if payload_len >> 63 != 0 {
        return Err(HeaderError::LengthTooLarge);
    }
    let minimal = match length_bytes {
        2 => payload_len >= 126,
        8 => payload_len > 0xffff,
        _ => true,
    };
    if !minimal {
        return Err(HeaderError::NonMinimalLength);
    }
    if !masked {
        return Err(HeaderError::Unmasked);
    }
    Ok(Some(FrameHeader {
        fin,
        opcode,
        mask: mask.try_into().expect("four bytes"),
        payload_len,
        header_len: 2 + length_bytes + mask_bytes,
    }))
    // ANCHOR_END: solution
}
// ANCHOR_END: exercise

// ANCHOR: tests
#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked header: first byte, then the length bytes (with the MASK bit
    /// added to the first of them), then [`KEY`].
    fn masked(first: u8, length: &[u8]) -> Vec<u8> {
        let mut bytes = vec![first, length[0] | 0x80];
        bytes.extend_from_slice(&length[1..]);
        bytes.extend_from_slice(&KEY);
        bytes
    }

    fn parse(bytes: &[u8]) -> FrameHeader {
        parse_header(bytes)
            .expect("a valid header")
            .expect("a complete header")
    }

    #[test]
    fn a_masked_text_frame_from_the_rfc() {
        // RFC 6455 section 5.7: a masked "Hello", payload included.
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            parse(&frame),
            FrameHeader {
                fin: true,
                opcode: Opcode::Text,
                mask: KEY,
                payload_len: 5,
                header_len: 6,
            }
        );
    }

    #[test]
    fn every_opcode_and_the_fin_bit() {
        for (bits, opcode) in [
            (0x0, Opcode::Continuation),
            (0x1, Opcode::Text),
            (0x2, Opcode::Binary),
            (0x8, Opcode::Close),
            (0x9, Opcode::Ping),
            (0xa, Opcode::Pong),
        ] {
            let header = parse(&masked(0x80 | bits, &[3]));
            assert_eq!((header.opcode, header.fin), (opcode, true), "{bits:#x}");
        }
        let header = parse(&masked(0x01, &[3]));
        assert_eq!((header.opcode, header.fin), (Opcode::Text, false));
    }

    #[test]
    fn the_three_length_forms() {
        let header = parse(&masked(0x82, &[125]));
        assert_eq!((header.payload_len, header.header_len), (125, 6));

        let header = parse(&masked(0x82, &[126, 0x00, 0x7e]));
        assert_eq!((header.payload_len, header.header_len), (126, 8));
        let header = parse(&masked(0x82, &[126, 0xff, 0xff]));
        assert_eq!((header.payload_len, header.header_len), (65535, 8));

        let header = parse(&masked(0x82, &[127, 0, 0, 0, 0, 0, 1, 0, 0]));
        assert_eq!((header.payload_len, header.header_len), (65536, 14));
        let big = [127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(parse(&masked(0x82, &big)).payload_len, u64::MAX >> 1);
    }

    #[test]
    fn too_few_bytes_is_not_an_error_but_none() {
        for whole in [
            masked(0x81, &[5]),
            masked(0x82, &[126, 0x01, 0x00]),
            masked(0x82, &[127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            for cut in 0..whole.len() {
                assert_eq!(
                    parse_header(&whole[..cut]),
                    Ok(None),
                    "{:x?}",
                    &whole[..cut]
                );
            }
            assert!(matches!(parse_header(&whole), Ok(Some(_))), "{whole:x?}");
        }
    }

    #[test]
    fn reserved_bits_are_rejected() {
        for bit in [0x40, 0x20, 0x10] {
            assert_eq!(
                parse_header(&masked(0x81 | bit, &[0])),
                Err(HeaderError::ReservedBits)
            );
        }
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for bits in (0x3..=0x7).chain(0xb..=0xf) {
            assert_eq!(
                parse_header(&masked(0x80 | bits, &[0])),
                Err(HeaderError::ReservedOpcode(bits))
            );
        }
    }

    #[test]
    fn control_frames_are_short_and_never_fragmented() {
        assert_eq!(
            parse_header(&masked(0x09, &[0])),
            Err(HeaderError::FragmentedControlFrame)
        );
        assert_eq!(
            parse_header(&masked(0x88, &[126, 0, 126])),
            Err(HeaderError::ControlFrameTooLong)
        );
        assert!(matches!(parse_header(&masked(0x8a, &[125])), Ok(Some(_))));
    }

    #[test]
    fn a_client_frame_must_be_masked() {
        assert_eq!(parse_header(&[0x81, 0x05]), Err(HeaderError::Unmasked));
    }

    #[test]
    fn lengths_in_the_shortest_form_only() {
        assert_eq!(
            parse_header(&masked(0x82, &[126, 0, 125])),
            Err(HeaderError::NonMinimalLength)
        );
        assert_eq!(
            parse_header(&masked(0x82, &[127, 0, 0, 0, 0, 0, 0, 0xff, 0xff])),
            Err(HeaderError::NonMinimalLength)
        );
    }

    #[test]
    fn the_top_bit_of_a_64_bit_length_is_zero() {
        assert_eq!(
            parse_header(&masked(0x82, &[127, 0x80, 0, 0, 0, 0, 0, 0, 0])),
            Err(HeaderError::LengthTooLarge)
        );
    }
}
// ANCHOR_END: tests
