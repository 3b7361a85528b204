//! The frame: RFC 6455 section 5.2.
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
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! [`FrameHeader`] reads and writes exactly these bits and nothing more. [`FrameDecoder`]
//! adds the rules a receiver enforces on each frame, and [`encode_frame`] writes whole
//! frames for either role.

use crate::ProtocolError;
use crate::mask::{apply_mask, random_key};

/// Which end of the connection this code is running on. The two roles differ in one
/// rule: clients mask every frame they send, servers never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The end that sent the HTTP upgrade request.
    Client,
    /// The end that answered it with 101.
    Server,
}

// ANCHOR: opcode
/// The four-bit opcode: what the frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: the next piece of a fragmented message.
    Continuation,
    /// 0x1: the first (or only) frame of a UTF-8 text message.
    Text,
    /// 0x2: the first (or only) frame of a binary message.
    Binary,
    /// 0x8: the close handshake.
    Close,
    /// 0x9: a heartbeat request; the peer answers with a pong.
    Ping,
    /// 0xA: the answer to a ping (or an unsolicited heartbeat).
    Pong,
    /// 0x3-0x7 (data) and 0xB-0xF (control): reserved for future use.
    Reserved(u8),
}

impl OpCode {
    /// The opcode for the low four bits of a frame's first byte.
    pub fn from_bits(bits: u8) -> OpCode {
        match bits & 0x0f {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xa => OpCode::Pong,
            other => OpCode::Reserved(other),
        }
    }

    /// The four bits this opcode is written as.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xa,
            OpCode::Reserved(bits) => bits & 0x0f,
        }
    }

    /// Control opcodes have the high bit of the four set (0x8-0xF).
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}
// ANCHOR_END: opcode

/// Everything in a frame before its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1, for extensions such as permessage-deflate.
    pub rsv1: bool,
    /// RSV2, reserved for extensions.
    pub rsv2: bool,
    /// RSV3, reserved for extensions.
    pub rsv3: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The masking key, present exactly when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// The longest header: 2 bytes, an 8-byte length and a 4-byte key.
    pub const MAX_LEN: usize = 14;

    /// A header with FIN set, no reserved bits and no mask.
    pub fn new(opcode: OpCode, payload_len: u64) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// How many bytes [`FrameHeader::encode`] writes for this header.
    pub fn encoded_len(&self) -> usize {
        let length_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        let mask_bytes = if self.mask.is_some() { 4 } else { 0 };
        2 + length_bytes + mask_bytes
    }

    // ANCHOR: encode_header
    /// Appends the header's bytes to `out`, using the shortest length form as the RFC requires.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut first = self.opcode.bits();
        for (set, bit) in [
            (self.fin, 0x80),
            (self.rsv1, 0x40),
            (self.rsv2, 0x20),
            (self.rsv3, 0x10),
        ] {
            if set {
                first |= bit;
            }
        }
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        out.push(first);
        match self.payload_len {
            // Up to 125 the length fits in the 7 bits of the second byte...
            0..=125 => out.push(mask_bit | self.payload_len as u8),
            // ...126 means "the next 2 bytes are the length"...
            126..=0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(self.payload_len as u16).to_be_bytes());
            }
            // ...and 127 means "the next 8 bytes are the length".
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&self.payload_len.to_be_bytes());
            }
        }
        if let Some(key) = self.mask {
            out.extend_from_slice(&key);
        }
    }
    // ANCHOR_END: encode_header

    // ANCHOR: decode_header
    /// Reads a header from the front of `bytes`.
    ///
    /// Returns `Ok(None)` while `bytes` holds too little to know the whole header, and
    /// otherwise the header and how many bytes it took. Only the bits are checked here
    /// (the 64-bit length's top bit must be 0); the rules about which bits may be set
    /// belong to [`FrameDecoder`].
    pub fn decode(bytes: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let [first, second, rest @ ..] = bytes else {
            return Ok(None);
        };
        let (payload_len, after_length) = match second & 0x7f {
            126 => match rest {
                [high, low, after @ ..] => (u64::from(u16::from_be_bytes([*high, *low])), after),
                _ => return Ok(None),
            },
            127 => match rest.split_first_chunk::<8>() {
                Some((length, after)) => (u64::from_be_bytes(*length), after),
                None => return Ok(None),
            },
            short => (u64::from(short), rest),
        };
        if payload_len >> 63 != 0 {
            return Err(ProtocolError::LengthTooLargeForProtocol);
        }
        let mask = if second & 0x80 != 0 {
            match after_length.first_chunk::<4>() {
                Some(key) => Some(*key),
                None => return Ok(None),
            }
        } else {
            None
        };
        let header = FrameHeader {
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            rsv2: first & 0x20 != 0,
            rsv3: first & 0x10 != 0,
            opcode: OpCode::from_bits(*first),
            mask,
            payload_len,
        };
        let header_len = bytes.len() - after_length.len() + if mask.is_some() { 4 } else { 0 };
        Ok(Some((header, header_len)))
    }
    // ANCHOR_END: decode_header
}

/// A frame found at the front of a buffer by [`FrameDecoder::decode`].
#[derive(Debug, PartialEq, Eq)]
pub struct DecodedFrame<'buffer> {
    /// The frame's header (its `mask` is the key the payload was unmasked with).
    pub header: FrameHeader,
    /// The payload, already unmasked, borrowed from the caller's buffer.
    pub payload: &'buffer [u8],
    /// How many bytes of the buffer the frame took: remove them before decoding the next.
    pub consumed: usize,
}

/// Finds frames in a buffer of received bytes and enforces the per-frame rules.
///
/// The decoder owns no buffer and never allocates: the caller appends what it reads
/// from the network to its own buffer, calls [`FrameDecoder::decode`], and removes
/// `consumed` bytes after each frame. A header that announces more than
/// `max_payload_len` is rejected as soon as the header is complete, so a peer cannot
/// make the caller's buffer grow past that limit.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    role: Role,
    max_payload_len: u64,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message.
    compressed_messages: bool,
}

impl FrameDecoder {
    /// A decoder for the side of the connection that plays `role`, accepting frame
    /// payloads up to `max_payload_len` bytes.
    pub fn new(role: Role, max_payload_len: u64) -> FrameDecoder {
        FrameDecoder {
            role,
            max_payload_len,
            compressed_messages: false,
        }
    }

    /// The same decoder after permessage-deflate was negotiated: RSV1 may be set on
    /// the first frame of a text or binary message ([`crate::deflate`]).
    pub fn with_compressed_messages(mut self) -> FrameDecoder {
        self.compressed_messages = true;
        self
    }

    // ANCHOR: decode_frame
    /// Looks for one complete frame at the front of `buffer`.
    ///
    /// `Ok(None)` means "need more bytes". On success the payload has been unmasked in
    /// place inside `buffer`. Errors come as soon as the header shows them, before the
    /// payload has arrived.
    pub fn decode<'buffer>(
        &self,
        buffer: &'buffer mut [u8],
    ) -> Result<Option<DecodedFrame<'buffer>>, ProtocolError> {
        let Some((header, header_len)) = FrameHeader::decode(buffer)? else {
            return Ok(None);
        };
        self.check(&header)?;
        // The check above bounds payload_len by max_payload_len, which fits in memory.
        let frame_len = header_len + header.payload_len as usize;
        if buffer.len() < frame_len {
            return Ok(None);
        }
        let payload = &mut buffer[header_len..frame_len];
        if let Some(key) = header.mask {
            apply_mask(payload, key, 0);
        }
        Ok(Some(DecodedFrame {
            header,
            payload,
            consumed: frame_len,
        }))
    }
    // ANCHOR_END: decode_frame

    // ANCHOR: check_header
    /// The rules of section 5 that one header alone can break.
    pub fn check(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // RSV1 means "compressed" once permessage-deflate is agreed, and only on the
        // first frame of a message (RFC 7692 section 6); no extension defines the others.
        let compressed_start = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if header.rsv2
            || header.rsv3
            || (header.rsv1 && !(self.compressed_messages && compressed_start))
        {
            return Err(ProtocolError::ReservedBitsSet);
        }
        if let OpCode::Reserved(bits) = header.opcode {
            return Err(ProtocolError::ReservedOpcode(bits));
        }
        if header.opcode.is_control() {
            if header.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLong(header.payload_len));
            }
            if !header.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedClientFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedServerFrame),
            _ => {}
        }
        if header.payload_len > self.max_payload_len {
            return Err(ProtocolError::FrameTooLarge {
                length: header.payload_len,
                limit: self.max_payload_len,
            });
        }
        Ok(())
    }
    // ANCHOR_END: check_header
}

// ANCHOR: encode_frame
/// Appends one frame to `out`: the header, then the payload, masked with `mask` if given.
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) {
    encode_frame_with_header(
        out,
        FrameHeader {
            fin,
            mask,
            ..FrameHeader::new(opcode, payload.len() as u64)
        },
        payload,
    );
}

/// Appends a whole message compressed with permessage-deflate ([`crate::deflate`]) as
/// one frame: RSV1 set, `compressed` as its payload.
pub fn encode_compressed_frame(
    out: &mut Vec<u8>,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    compressed: &[u8],
) {
    encode_frame_with_header(
        out,
        FrameHeader {
            rsv1: true,
            mask,
            ..FrameHeader::new(opcode, compressed.len() as u64)
        },
        compressed,
    );
}

fn encode_frame_with_header(out: &mut Vec<u8>, header: FrameHeader, payload: &[u8]) {
    let mask = header.mask;
    out.reserve(header.encoded_len() + payload.len());
    header.encode(out);
    let payload_start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[payload_start..], key, 0);
    }
}

/// Appends a whole message as one frame, as `role` must send it: a client masks with a
/// fresh random key, a server does not mask.
pub fn encode_for_role(out: &mut Vec<u8>, role: Role, opcode: OpCode, payload: &[u8]) {
    let mask = match role {
        Role::Client => Some(random_key()),
        Role::Server => None,
    };
    encode_frame(out, true, opcode, mask, payload);
}
// ANCHOR_END: encode_frame

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes one frame from `bytes` with a generous limit and returns it with an owned payload.
    fn decode_one(role: Role, bytes: &[u8]) -> (FrameHeader, Vec<u8>) {
        let mut buffer = bytes.to_vec();
        let frame = FrameDecoder::new(role, 1 << 20)
            .decode(&mut buffer)
            .unwrap()
            .expect("a whole frame");
        assert_eq!(frame.consumed, bytes.len());
        (frame.header, frame.payload.to_vec())
    }

    // The examples of RFC 6455 section 5.7, byte for byte.
    const UNMASKED_HELLO: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    const MASKED_HELLO: [u8; 11] = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    const FRAGMENT_HEL: [u8; 5] = [0x01, 0x03, 0x48, 0x65, 0x6c];
    const FRAGMENT_LO: [u8; 4] = [0x80, 0x02, 0x6c, 0x6f];
    const UNMASKED_PING_HELLO: [u8; 7] = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    const MASKED_PONG_HELLO: [u8; 11] = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];

    #[test]
    fn rfc_single_frame_unmasked_text() {
        let (header, payload) = decode_one(Role::Client, &UNMASKED_HELLO);
        assert_eq!(header, FrameHeader::new(OpCode::Text, 5));
        assert_eq!(payload, b"Hello");
        let mut out = Vec::new();
        encode_frame(&mut out, true, OpCode::Text, None, b"Hello");
        assert_eq!(out, UNMASKED_HELLO);
    }

    #[test]
    fn rfc_single_frame_masked_text() {
        let (header, payload) = decode_one(Role::Server, &MASKED_HELLO);
        assert_eq!(header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(payload, b"Hello");
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            true,
            OpCode::Text,
            Some([0x37, 0xfa, 0x21, 0x3d]),
            b"Hello",
        );
        assert_eq!(out, MASKED_HELLO);
    }

    #[test]
    fn rfc_fragmented_text() {
        let (first, payload) = decode_one(Role::Client, &FRAGMENT_HEL);
        assert!(!first.fin);
        assert_eq!(first.opcode, OpCode::Text);
        assert_eq!(payload, b"Hel");
        let (last, payload) = decode_one(Role::Client, &FRAGMENT_LO);
        assert!(last.fin);
        assert_eq!(last.opcode, OpCode::Continuation);
        assert_eq!(payload, b"lo");

        let mut out = Vec::new();
        encode_frame(&mut out, false, OpCode::Text, None, b"Hel");
        encode_frame(&mut out, true, OpCode::Continuation, None, b"lo");
        assert_eq!(out, [FRAGMENT_HEL.as_slice(), &FRAGMENT_LO].concat());
    }

    #[test]
    fn rfc_ping_and_masked_pong() {
        let (ping, payload) = decode_one(Role::Client, &UNMASKED_PING_HELLO);
        assert_eq!(ping.opcode, OpCode::Ping);
        assert_eq!(payload, b"Hello");
        let (pong, payload) = decode_one(Role::Server, &MASKED_PONG_HELLO);
        assert_eq!(pong.opcode, OpCode::Pong);
        assert_eq!(payload, b"Hello");

        let mut out = Vec::new();
        encode_frame(&mut out, true, OpCode::Ping, None, b"Hello");
        assert_eq!(out, UNMASKED_PING_HELLO);
    }

    #[test]
    fn rfc_256_byte_and_64_kib_binary_headers() {
        // "256 bytes binary message in a single unmasked frame: 0x82 0x7E 0x0100 [256 bytes]"
        let mut out = Vec::new();
        encode_frame(&mut out, true, OpCode::Binary, None, &[7u8; 256]);
        assert_eq!(&out[..4], &[0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 256);
        let (header, payload) = decode_one(Role::Client, &out);
        assert_eq!(header.payload_len, 256);
        assert_eq!(payload, vec![7u8; 256]);

        // "64KiB binary message in a single unmasked frame: 0x82 0x7F 0x0000000000010000"
        let mut out = Vec::new();
        encode_frame(&mut out, true, OpCode::Binary, None, &vec![9u8; 65536]);
        assert_eq!(
            &out[..10],
            &[0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
        );
        let (header, payload) = decode_one(Role::Client, &out);
        assert_eq!(header.payload_len, 65536);
        assert_eq!(payload.len(), 65536);
    }

    #[test]
    fn length_forms_switch_at_126_and_65536() {
        for (length, header_len) in [(125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let header = FrameHeader::new(OpCode::Binary, length);
            assert_eq!(header.encoded_len(), header_len, "length {length}");
            let mut out = Vec::new();
            header.encode(&mut out);
            assert_eq!(out.len(), header_len);
            assert_eq!(FrameHeader::decode(&out), Ok(Some((header, header_len))));
        }
    }

    #[test]
    fn every_prefix_of_a_frame_needs_more_bytes() {
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            true,
            OpCode::Binary,
            Some([1, 2, 3, 4]),
            &[5u8; 300],
        );
        let decoder = FrameDecoder::new(Role::Server, 1000);
        for end in 0..out.len() {
            let mut prefix = out[..end].to_vec();
            assert_eq!(decoder.decode(&mut prefix), Ok(None), "prefix of {end}");
        }
    }

    #[test]
    fn rejections() {
        let server = FrameDecoder::new(Role::Server, 1000);
        let client = FrameDecoder::new(Role::Client, 1000);
        let key = Some([1, 2, 3, 4]);
        let cases: [(&FrameDecoder, FrameHeader, ProtocolError); 7] = [
            (
                &server,
                FrameHeader {
                    rsv1: true,
                    mask: key,
                    ..FrameHeader::new(OpCode::Text, 0)
                },
                ProtocolError::ReservedBitsSet,
            ),
            (
                &server,
                FrameHeader {
                    mask: key,
                    ..FrameHeader::new(OpCode::Reserved(0xb), 0)
                },
                ProtocolError::ReservedOpcode(0xb),
            ),
            (
                &server,
                FrameHeader {
                    mask: key,
                    ..FrameHeader::new(OpCode::Ping, 126)
                },
                ProtocolError::ControlFrameTooLong(126),
            ),
            (
                &server,
                FrameHeader {
                    fin: false,
                    mask: key,
                    ..FrameHeader::new(OpCode::Pong, 0)
                },
                ProtocolError::FragmentedControlFrame,
            ),
            (
                &server,
                FrameHeader::new(OpCode::Text, 5),
                ProtocolError::UnmaskedClientFrame,
            ),
            (
                &client,
                FrameHeader {
                    mask: key,
                    ..FrameHeader::new(OpCode::Text, 5)
                },
                ProtocolError::MaskedServerFrame,
            ),
            (
                &client,
                FrameHeader::new(OpCode::Binary, 1001),
                ProtocolError::FrameTooLarge {
                    length: 1001,
                    limit: 1000,
                },
            ),
        ];
        for (decoder, header, expected) in cases {
            // Only the header: every rule must fire before the payload arrives.
            let mut bytes = Vec::new();
            header.encode(&mut bytes);
            assert_eq!(decoder.decode(&mut bytes), Err(expected.clone()));
        }
    }

    #[test]
    fn top_bit_of_64_bit_length_is_an_error() {
        let bytes = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::decode(&bytes),
            Err(ProtocolError::LengthTooLargeForProtocol)
        );
    }

    #[test]
    fn client_frames_carry_a_fresh_mask() {
        let mut first = Vec::new();
        let mut second = Vec::new();
        encode_for_role(&mut first, Role::Client, OpCode::Text, b"same text");
        encode_for_role(&mut second, Role::Client, OpCode::Text, b"same text");
        assert_eq!(first[1] & 0x80, 0x80, "MASK bit");
        // Two masked copies of the same text differ unless the keys collide (2^-32).
        assert_ne!(first, second);
        let (_, payload) = decode_one(Role::Server, &first);
        assert_eq!(payload, b"same text");
    }
}
