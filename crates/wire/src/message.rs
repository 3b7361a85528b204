//! Reassembling frames into messages (RFC 6455 sections 5.4, 5.5 and 8.1).
//!
//! A message is one text or binary frame with FIN set, or a first frame with FIN clear,
//! any number of continuation frames, and a last continuation with FIN set. Control
//! frames (close, ping, pong) may arrive between those pieces and are handed out at once.

use crate::ProtocolError;
use crate::close::{CloseFrame, parse_close_payload};
use crate::frame::{FrameHeader, OpCode};

/// A complete message, or a control frame, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, checked to be UTF-8.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping: the receiver must answer with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A close frame, with its code and reason if it had any.
    Close(Option<CloseFrame>),
}

/// A complete message or control frame that borrows its bytes: from the caller's
/// buffer for a message that came in one frame, or from the assembler for one that
/// came in pieces. Nothing is copied until [`MessageRef::to_owned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRef<'a> {
    /// A text message, checked to be UTF-8.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
    /// A ping.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// A close frame, with its code and reason if it had any.
    Close(Option<CloseFrame>),
}

impl MessageRef<'_> {
    /// Copies the bytes into an owned [`Message`].
    pub fn to_owned(&self) -> Message {
        match self {
            MessageRef::Text(text) => Message::Text((*text).to_owned()),
            MessageRef::Binary(bytes) => Message::Binary(bytes.to_vec()),
            MessageRef::Ping(bytes) => Message::Ping(bytes.to_vec()),
            MessageRef::Pong(bytes) => Message::Pong(bytes.to_vec()),
            MessageRef::Close(frame) => Message::Close(frame.clone()),
        }
    }
}

/// The kind of data message being reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataKind {
    Text,
    Binary,
}

/// A fragmented message that has not seen its final frame yet.
#[derive(Debug, Clone, Copy)]
struct Partial {
    kind: DataKind,
    /// For text: `bytes[..utf8_valid_up_to]` is known to be valid UTF-8; what follows
    /// is at most the first three bytes of a character whose rest has not arrived.
    utf8_valid_up_to: usize,
}

/// Turns a sequence of frames into messages, enforcing the rules that need more than
/// one frame to check: fragment order, UTF-8 across fragments, and the message size limit.
#[derive(Debug)]
pub struct MessageAssembler {
    max_message_len: usize,
    partial: Option<Partial>,
    /// The pieces of the fragmented message; the allocation is kept between messages.
    bytes: Vec<u8>,
}

impl MessageAssembler {
    /// An assembler that rejects messages longer than `max_message_len` bytes.
    pub fn new(max_message_len: usize) -> MessageAssembler {
        MessageAssembler {
            max_message_len,
            partial: None,
            bytes: Vec::new(),
        }
    }

    /// Whether a fragmented message is waiting for more frames.
    pub fn is_mid_message(&self) -> bool {
        self.partial.is_some()
    }

    /// Takes the next frame and returns an owned message: [`MessageAssembler::push_borrowed`]
    /// followed by a copy.
    pub fn push(
        &mut self,
        header: &FrameHeader,
        payload: &[u8],
    ) -> Result<Option<Message>, ProtocolError> {
        Ok(self
            .push_borrowed(header, payload)?
            .map(|message| message.to_owned()))
    }

    // ANCHOR: push
    /// Takes the next frame (its header, and its payload already unmasked).
    ///
    /// Returns `Ok(Some(message))` when the frame completed a message or was a control
    /// frame, `Ok(None)` when it was a piece of a message still in progress. The header
    /// is assumed to have passed [`crate::frame::FrameDecoder::check`].
    pub fn push_borrowed<'a>(
        &'a mut self,
        header: &FrameHeader,
        payload: &'a [u8],
    ) -> Result<Option<MessageRef<'a>>, ProtocolError> {
        let kind = match header.opcode {
            OpCode::Ping => return Ok(Some(MessageRef::Ping(payload))),
            OpCode::Pong => return Ok(Some(MessageRef::Pong(payload))),
            OpCode::Close => return Ok(Some(MessageRef::Close(parse_close_payload(payload)?))),
            OpCode::Reserved(bits) => return Err(ProtocolError::ReservedOpcode(bits)),
            OpCode::Continuation => return self.continue_message(header.fin, payload),
            _ if self.partial.is_some() => return Err(ProtocolError::NewMessageBeforeFinal),
            OpCode::Text => DataKind::Text,
            OpCode::Binary => DataKind::Binary,
        };
        self.check_size(payload.len())?;
        if header.fin {
            // The common case, one frame: nothing to reassemble, nothing to copy.
            return Ok(Some(match kind {
                DataKind::Binary => MessageRef::Binary(payload),
                DataKind::Text => MessageRef::Text(
                    std::str::from_utf8(payload).map_err(|_| ProtocolError::InvalidUtf8)?,
                ),
            }));
        }
        self.bytes.clear();
        self.bytes.extend_from_slice(payload);
        let mut partial = Partial {
            kind,
            utf8_valid_up_to: 0,
        };
        check_utf8_so_far(&mut partial, &self.bytes, false)?;
        self.partial = Some(partial);
        Ok(None)
    }

    /// A continuation frame: append it, check it, and finish the message on FIN.
    fn continue_message(
        &mut self,
        fin: bool,
        payload: &[u8],
    ) -> Result<Option<MessageRef<'_>>, ProtocolError> {
        let Some(mut partial) = self.partial else {
            return Err(ProtocolError::ContinuationWithoutStart);
        };
        self.check_size(self.bytes.len() + payload.len())?;
        self.bytes.extend_from_slice(payload);
        check_utf8_so_far(&mut partial, &self.bytes, fin)?;
        if !fin {
            self.partial = Some(partial);
            return Ok(None);
        }
        self.partial = None;
        Ok(Some(match partial.kind {
            DataKind::Binary => MessageRef::Binary(&self.bytes),
            DataKind::Text => MessageRef::Text(
                std::str::from_utf8(&self.bytes).map_err(|_| ProtocolError::InvalidUtf8)?,
            ),
        }))
    }
    // ANCHOR_END: push

    fn check_size(&self, length: usize) -> Result<(), ProtocolError> {
        if length > self.max_message_len {
            return Err(ProtocolError::MessageTooLarge {
                length: length as u64,
                limit: self.max_message_len as u64,
            });
        }
        Ok(())
    }
}

// ANCHOR: utf8_so_far
/// Checks the text received so far, failing as soon as a byte sequence cannot be the
/// start of any valid UTF-8 text (the RFC's "fail fast", section 8.1).
///
/// Only the bytes after the last check are examined, so a long message is scanned once
/// in total, not once per fragment.
fn check_utf8_so_far(
    partial: &mut Partial,
    bytes: &[u8],
    is_final: bool,
) -> Result<(), ProtocolError> {
    if partial.kind != DataKind::Text {
        return Ok(());
    }
    match std::str::from_utf8(&bytes[partial.utf8_valid_up_to..]) {
        Ok(_) => partial.utf8_valid_up_to = bytes.len(),
        // `error_len() == None` means the bytes stop in the middle of a character that
        // may still be completed by the next fragment, unless this was the last one.
        Err(error) if error.error_len().is_none() && !is_final => {
            partial.utf8_valid_up_to += error.valid_up_to();
        }
        Err(_) => return Err(ProtocolError::InvalidUtf8),
    }
    Ok(())
}
// ANCHOR_END: utf8_so_far

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close::CloseCode;

    fn header(fin: bool, opcode: OpCode, payload: &[u8]) -> FrameHeader {
        FrameHeader {
            fin,
            ..FrameHeader::new(opcode, payload.len() as u64)
        }
    }

    fn push(
        assembler: &mut MessageAssembler,
        fin: bool,
        opcode: OpCode,
        payload: &[u8],
    ) -> Result<Option<Message>, ProtocolError> {
        assembler.push(&header(fin, opcode, payload), payload)
    }

    #[test]
    fn single_frames() {
        let mut assembler = MessageAssembler::new(100);
        assert_eq!(
            push(&mut assembler, true, OpCode::Text, b"Hello"),
            Ok(Some(Message::Text("Hello".into())))
        );
        assert_eq!(
            push(&mut assembler, true, OpCode::Binary, &[0, 255]),
            Ok(Some(Message::Binary(vec![0, 255])))
        );
    }

    #[test]
    fn a_single_frame_message_borrows_the_payload() {
        let payload = b"no copy".to_vec();
        let mut assembler = MessageAssembler::new(100);
        let message = assembler
            .push_borrowed(&header(true, OpCode::Text, &payload), &payload)
            .unwrap()
            .unwrap();
        let MessageRef::Text(text) = message else {
            panic!("expected text, got {message:?}");
        };
        assert_eq!(
            text.as_ptr(),
            payload.as_ptr(),
            "the text points into the payload"
        );
    }

    #[test]
    fn fragments_with_a_ping_in_between() {
        let mut assembler = MessageAssembler::new(100);
        assert_eq!(push(&mut assembler, false, OpCode::Text, b"Hel"), Ok(None));
        assert!(assembler.is_mid_message());
        assert_eq!(
            push(&mut assembler, true, OpCode::Ping, b"p"),
            Ok(Some(Message::Ping(b"p".to_vec())))
        );
        assert_eq!(
            push(&mut assembler, false, OpCode::Continuation, b""),
            Ok(None)
        );
        assert_eq!(
            push(&mut assembler, true, OpCode::Continuation, b"lo"),
            Ok(Some(Message::Text("Hello".into())))
        );
        assert!(!assembler.is_mid_message());
    }

    #[test]
    fn a_character_split_across_fragments_is_fine() {
        let euro = "€".as_bytes(); // three bytes
        let mut assembler = MessageAssembler::new(100);
        assert_eq!(
            push(&mut assembler, false, OpCode::Text, &euro[..1]),
            Ok(None)
        );
        assert_eq!(
            push(&mut assembler, false, OpCode::Continuation, &euro[1..2]),
            Ok(None)
        );
        assert_eq!(
            push(&mut assembler, true, OpCode::Continuation, &euro[2..]),
            Ok(Some(Message::Text("€".into())))
        );
    }

    #[test]
    fn invalid_utf8_fails_on_the_fragment_that_carries_it() {
        let mut assembler = MessageAssembler::new(100);
        assert_eq!(push(&mut assembler, false, OpCode::Text, b"ok "), Ok(None));
        // 0xC0 can never start a valid sequence: fail now, not at the final fragment.
        assert_eq!(
            push(&mut assembler, false, OpCode::Continuation, &[0xc0, 0x80]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn a_truncated_character_at_the_end_is_invalid() {
        let mut assembler = MessageAssembler::new(100);
        assert_eq!(push(&mut assembler, false, OpCode::Text, b"a"), Ok(None));
        assert_eq!(
            push(&mut assembler, true, OpCode::Continuation, &[0xe2, 0x82]),
            Err(ProtocolError::InvalidUtf8)
        );
        let mut assembler = MessageAssembler::new(100);
        assert_eq!(
            push(&mut assembler, true, OpCode::Text, &[0xe2, 0x82]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn order_rules() {
        let mut assembler = MessageAssembler::new(100);
        assert_eq!(
            push(&mut assembler, true, OpCode::Continuation, b"x"),
            Err(ProtocolError::ContinuationWithoutStart)
        );
        assert_eq!(push(&mut assembler, false, OpCode::Binary, b"x"), Ok(None));
        assert_eq!(
            push(&mut assembler, true, OpCode::Text, b"y"),
            Err(ProtocolError::NewMessageBeforeFinal)
        );
    }

    #[test]
    fn size_limit_covers_all_fragments() {
        let mut assembler = MessageAssembler::new(4);
        assert_eq!(
            push(&mut assembler, true, OpCode::Binary, b"12345"),
            Err(ProtocolError::MessageTooLarge {
                length: 5,
                limit: 4
            })
        );
        let mut assembler = MessageAssembler::new(4);
        assert_eq!(
            push(&mut assembler, false, OpCode::Binary, b"123"),
            Ok(None)
        );
        let error = push(&mut assembler, true, OpCode::Continuation, b"45").unwrap_err();
        assert_eq!(error.close_code(), CloseCode::MESSAGE_TOO_BIG);
    }

    #[test]
    fn close_frames_are_validated() {
        let mut assembler = MessageAssembler::new(100);
        assert_eq!(
            push(
                &mut assembler,
                true,
                OpCode::Close,
                &[0x03, 0xe8, b'b', b'y', b'e']
            ),
            Ok(Some(Message::Close(Some(CloseFrame {
                code: CloseCode::NORMAL,
                reason: "bye".into()
            }))))
        );
        let error = push(&mut assembler, true, OpCode::Close, &[0x03, 0xe8, 0xff]).unwrap_err();
        assert_eq!(error.close_code(), CloseCode::INVALID_PAYLOAD);
        let error = push(&mut assembler, true, OpCode::Close, &[0x03, 0xed]).unwrap_err();
        assert_eq!(error.close_code(), CloseCode::PROTOCOL_ERROR);
    }
}
