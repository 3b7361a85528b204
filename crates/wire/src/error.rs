//! Every way a peer can break RFC 6455 on the receive path, and the close code it earns.

use crate::close::CloseCode;

/// A rule of RFC 6455 that the peer broke. The connection must be closed with
/// [`ProtocolError::close_code`] (section 7.1.7, "Fail the WebSocket Connection").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// RSV1, RSV2 or RSV3 was set, but no extension that defines them was negotiated.
    ReservedBitsSet,
    /// The opcode is one of the reserved values 3-7 or 11-15.
    ReservedOpcode(u8),
    /// A 64-bit payload length had its most significant bit set (section 5.2).
    LengthTooLargeForProtocol,
    /// A control frame (close, ping, pong) carried more than 125 bytes.
    ControlFrameTooLong(u64),
    /// A control frame had FIN clear: control frames are never fragmented.
    FragmentedControlFrame,
    /// A server received a frame without a mask: every client frame must be masked.
    UnmaskedClientFrame,
    /// A client received a masked frame: servers never mask.
    MaskedServerFrame,
    /// A frame announced a payload above the configured limit.
    FrameTooLarge {
        /// The length the header announced.
        length: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A message (all its fragments together) grew above the configured limit.
    MessageTooLarge {
        /// The length so far.
        length: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A message came in more frames than the configured limit.
    TooManyFragments {
        /// The configured limit.
        limit: u64,
    },
    /// A continuation frame arrived with no fragmented message in progress.
    ContinuationWithoutStart,
    /// A new text or binary frame arrived while a fragmented message was in progress.
    NewMessageBeforeFinal,
    /// A text message was not valid UTF-8.
    InvalidUtf8,
    /// A close frame's payload was exactly one byte: too short for a code.
    CloseFrameOneByte,
    /// A close frame carried a code that may not appear on the wire.
    InvalidCloseCode(u16),
    /// A close frame's reason was not valid UTF-8.
    InvalidCloseReason,
    /// A compressed message (permessage-deflate) was not valid DEFLATE data.
    InvalidCompressedData(String),
}

// ANCHOR: close_code_for_error
impl ProtocolError {
    /// The code to send in the close frame that answers this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::InvalidCompressedData(_) => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooLarge { .. }
            | ProtocolError::MessageTooLarge { .. }
            | ProtocolError::TooManyFragments { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}
// ANCHOR_END: close_code_for_error

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::ReservedBitsSet => write!(formatter, "reserved bits set"),
            ProtocolError::ReservedOpcode(opcode) => write!(formatter, "reserved opcode {opcode}"),
            ProtocolError::LengthTooLargeForProtocol => {
                write!(formatter, "64-bit length with its top bit set")
            }
            ProtocolError::ControlFrameTooLong(length) => {
                write!(formatter, "control frame of {length} bytes (at most 125)")
            }
            ProtocolError::FragmentedControlFrame => write!(formatter, "fragmented control frame"),
            ProtocolError::UnmaskedClientFrame => write!(formatter, "unmasked frame from a client"),
            ProtocolError::MaskedServerFrame => write!(formatter, "masked frame from a server"),
            ProtocolError::FrameTooLarge { length, limit } => {
                write!(formatter, "frame of {length} bytes (limit {limit})")
            }
            ProtocolError::MessageTooLarge { length, limit } => {
                write!(
                    formatter,
                    "message of at least {length} bytes (limit {limit})"
                )
            }
            ProtocolError::TooManyFragments { limit } => {
                write!(formatter, "message in more than {limit} frames")
            }
            ProtocolError::ContinuationWithoutStart => {
                write!(
                    formatter,
                    "continuation frame without a message to continue"
                )
            }
            ProtocolError::NewMessageBeforeFinal => {
                write!(
                    formatter,
                    "new message before the previous one's final frame"
                )
            }
            ProtocolError::InvalidUtf8 => write!(formatter, "text message is not valid UTF-8"),
            ProtocolError::CloseFrameOneByte => write!(formatter, "close payload of one byte"),
            ProtocolError::InvalidCloseCode(code) => write!(formatter, "close code {code}"),
            ProtocolError::InvalidCloseReason => write!(formatter, "close reason is not UTF-8"),
            ProtocolError::InvalidCompressedData(error) => {
                write!(formatter, "compressed message: {error}")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}
