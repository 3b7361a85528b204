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
    todo!()
}
