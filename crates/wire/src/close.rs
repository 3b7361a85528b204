//! Close codes and the payload of a close frame (RFC 6455, sections 5.5.1 and 7.4).

use crate::ProtocolError;

/// A close status code: the first two bytes of a close frame's payload, big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

// ANCHOR: close_codes
impl CloseCode {
    /// The purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// The endpoint is going away: a server shutting down, a browser leaving the page.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// The peer broke the protocol (a bad frame, a bad sequence of frames).
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// The endpoint cannot accept this kind of data (for example binary where it expects text).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// Never sent: reported locally when a close frame carried no code.
    pub const NO_STATUS_RECEIVED: CloseCode = CloseCode(1005);
    /// Never sent: reported locally when the connection dropped without a close frame.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// A text message was not valid UTF-8 (or other data was inconsistent with its type).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// A message broke the endpoint's policy (a generic code when no other fits).
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// A message was too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// The client expected the server to negotiate an extension it did not.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// The server is restarting: reconnect, after a short pause.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// The server is overloaded for now: reconnect later, with a longer pause.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// A gateway or proxy got an invalid answer from the server behind it.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// Whether this code may appear in a close frame on the wire.
    ///
    /// 1000-1003 and 1007-1011 are defined by the RFC; 1012-1014 were registered
    /// with IANA after it; 3000-3999 are registered with IANA for libraries and
    /// frameworks, 4000-4999 are for private use. 1004 is reserved, 1005, 1006 and
    /// 1015 only ever describe a close locally, and everything else below 3000 is
    /// reserved until IANA registers it.
    pub fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}
// ANCHOR_END: close_codes

impl std::fmt::Display for CloseCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// A received or outgoing close frame's payload: a code and a UTF-8 reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// Human-readable text for logs; at most 123 bytes so the payload fits in 125.
    pub reason: String,
}

/// The most reason bytes a close frame can carry: 125 bytes of control payload minus the code.
pub const MAX_REASON_LEN: usize = 123;

// ANCHOR: parse_close
/// Reads a close frame's payload.
///
/// An empty payload is allowed and means "no code" (`Ok(None)`). Otherwise the payload
/// must hold a two-byte code that may appear on the wire, followed by a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::CloseFrameOneByte),
        [high, low, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*high, *low]));
            if !code.is_allowed_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| ProtocolError::InvalidCloseReason)?
                .to_owned();
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}
// ANCHOR_END: parse_close

/// Writes a close frame's payload: the code, then as much of `reason` as fits in
/// [`MAX_REASON_LEN`] bytes without cutting a character in half.
pub fn encode_close_payload(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.0.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_codes_are_exactly_the_rfc_and_iana_ranges() {
        let allowed: Vec<u16> = (0..=u16::MAX)
            .filter(|code| CloseCode(*code).is_allowed_on_wire())
            .collect();
        assert_eq!(allowed.len(), 4 + 5 + 3 + 2000);
        for code in [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert!(!CloseCode(code).is_allowed_on_wire(), "{code}");
        }
        for code in [1000, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999] {
            assert!(CloseCode(code).is_allowed_on_wire(), "{code}");
        }
    }

    #[test]
    fn parses_code_and_reason() {
        let payload = encode_close_payload(CloseCode::GOING_AWAY, "server restart");
        assert_eq!(&payload[..2], &[0x03, 0xe9]);
        let frame = parse_close_payload(&payload).unwrap().unwrap();
        assert_eq!(frame.code, CloseCode::GOING_AWAY);
        assert_eq!(frame.reason, "server restart");
    }

    #[test]
    fn rejects_what_the_rfc_forbids() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
        assert_eq!(
            parse_close_payload(&[0x03]),
            Err(ProtocolError::CloseFrameOneByte)
        );
        assert_eq!(
            parse_close_payload(&1005u16.to_be_bytes()),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, 0xff, 0xfe]),
            Err(ProtocolError::InvalidCloseReason)
        );
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        // 'é' is two bytes: 62 of them are 124 bytes, one too many.
        let reason = "é".repeat(62);
        let payload = encode_close_payload(CloseCode::NORMAL, &reason);
        assert_eq!(payload.len(), 2 + 122);
        assert!(parse_close_payload(&payload).is_ok());
    }
}
