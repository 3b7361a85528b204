//! Reassembling frames into messages (RFC 6455 sections 5.4, 5.5 and 8.1).
//!
//! A message is one text or binary frame with FIN set, or a first frame with FIN clear,
//! any number of continuation frames, and a last continuation with FIN set. Control
//! frames (close, ping, pong) may arrive between those pieces and are handed out at once.

use crate::ProtocolError;
use crate::close::{CloseFrame, parse_close_payload};
use crate::deflate::{InflateError, Inflater};
use crate::frame::{FrameHeader, OpCode};
use crate::mask::apply_mask;

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
    /// Its first frame had RSV1: the bytes are DEFLATE data, inflated at the end.
    compressed: bool,
    /// For text: `bytes[..utf8_valid_up_to]` is known to be valid UTF-8; what follows
    /// is at most the first three bytes of a character whose rest has not arrived.
    utf8_valid_up_to: usize,
    /// The frames it came in so far.
    fragments: usize,
}

/// Turns a sequence of frames into messages, enforcing the rules that need more than
/// one frame to check: fragment order, UTF-8 across fragments, the message size limit,
/// and (if set) the most frames one message may come in.
#[derive(Debug)]
pub struct MessageAssembler {
    max_message_len: usize,
    max_fragments: usize,
    partial: Option<Partial>,
    /// The pieces of the fragmented message; the allocation is kept between messages.
    bytes: Vec<u8>,
    /// permessage-deflate's decompressor, once negotiated.
    inflater: Option<Inflater>,
    /// How many messages arrived compressed.
    compressed_messages: u64,
}

impl MessageAssembler {
    /// An assembler that rejects messages longer than `max_message_len` bytes.
    pub fn new(max_message_len: usize) -> MessageAssembler {
        MessageAssembler {
            max_message_len,
            max_fragments: usize::MAX,
            partial: None,
            bytes: Vec::new(),
            inflater: None,
            compressed_messages: 0,
        }
    }

    /// How many messages so far arrived compressed (RSV1 on their first frame).
    pub fn compressed_messages(&self) -> u64 {
        self.compressed_messages
    }

    /// The same assembler after permessage-deflate was negotiated: a message whose
    /// first frame has RSV1 is inflated with `inflater`, never past the message limit.
    pub fn with_inflater(mut self, inflater: Inflater) -> MessageAssembler {
        self.inflater = Some(inflater);
        self
    }

    /// The same assembler refusing a message in more than `max_fragments` frames
    /// (1009): empty continuation frames grow no message, so without it a peer could
    /// keep one message open forever, each frame costing a parse. RFC 6455 sets no
    /// limit; a browser sends every message in one frame.
    pub fn with_max_fragments(mut self, max_fragments: usize) -> MessageAssembler {
        self.max_fragments = max_fragments.max(1);
        self
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
        if header.rsv1 {
            return self.start_compressed(kind, header.fin, payload);
        }
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
            compressed: false,
            utf8_valid_up_to: 0,
            fragments: 1,
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
        partial.fragments += 1;
        if partial.fragments > self.max_fragments {
            return Err(ProtocolError::TooManyFragments {
                limit: self.max_fragments as u64,
            });
        }
        self.check_size(self.bytes.len() + payload.len())?;
        self.bytes.extend_from_slice(payload);
        if partial.compressed {
            if !fin {
                self.partial = Some(partial);
                return Ok(None);
            }
            self.partial = None;
            self.inflate()?;
            return self.finished(partial.kind).map(Some);
        }
        check_utf8_so_far(&mut partial, &self.bytes, fin)?;
        if !fin {
            self.partial = Some(partial);
            return Ok(None);
        }
        self.partial = None;
        self.finished(partial.kind).map(Some)
    }
    // ANCHOR_END: push

    // ANCHOR: compressed
    /// The first frame of a compressed message (RFC 7692): its bytes are DEFLATE data,
    /// so UTF-8 can only be checked once the whole message is inflated.
    fn start_compressed(
        &mut self,
        kind: DataKind,
        fin: bool,
        payload: &[u8],
    ) -> Result<Option<MessageRef<'_>>, ProtocolError> {
        if self.inflater.is_none() {
            // The frame decoder lets RSV1 through only once the extension is agreed.
            return Err(ProtocolError::ReservedBitsSet);
        }
        self.bytes.clear();
        self.bytes.extend_from_slice(payload);
        if !fin {
            self.partial = Some(Partial {
                kind,
                compressed: true,
                utf8_valid_up_to: 0,
                fragments: 1,
            });
            return Ok(None);
        }
        self.inflate()?;
        self.finished(kind).map(Some)
    }

    /// Replaces the compressed bytes with the message they inflate to, at most the
    /// message limit: a small frame that inflates past it is refused (1009) before the
    /// rest is inflated.
    fn inflate(&mut self) -> Result<(), ProtocolError> {
        let inflater = self
            .inflater
            .as_mut()
            .ok_or(ProtocolError::ReservedBitsSet)?;
        self.compressed_messages += 1;
        self.bytes = inflater
            .decompress(&self.bytes, self.max_message_len)
            .map_err(|error| match error {
                InflateError::TooBig { limit } => ProtocolError::MessageTooLarge {
                    length: limit as u64 + 1,
                    limit: limit as u64,
                },
                InflateError::Corrupt(reason) => ProtocolError::InvalidCompressedData(reason),
            })?;
        Ok(())
    }
    // ANCHOR_END: compressed

    /// The message in `self.bytes`, checked to be UTF-8 if it is text.
    fn finished(&self, kind: DataKind) -> Result<MessageRef<'_>, ProtocolError> {
        Ok(match kind {
            DataKind::Binary => MessageRef::Binary(&self.bytes),
            DataKind::Text => MessageRef::Text(
                std::str::from_utf8(&self.bytes).map_err(|_| ProtocolError::InvalidUtf8)?,
            ),
        })
    }

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

// ANCHOR: incomplete_text
/// Fails fast on a text frame that is still arriving: as soon as its received bytes
/// can never be UTF-8, instead of when its last byte is in (RFC 6455 section 8.1;
/// Autobahn|Testsuite cases 6.4.x). [`MessageAssembler`] checks complete frames; this
/// checks the one the decoder is still waiting for.
///
/// Call [`IncompleteTextCheck::check`] with the unread bytes whenever the decoder asks
/// for more, and [`IncompleteTextCheck::frame_completed`] after every complete frame.
#[derive(Debug, Default)]
pub struct IncompleteTextCheck {
    /// Whether a fragmented text message is in progress, so that its continuation
    /// frames carry text too.
    text_in_progress: bool,
    /// How many payload bytes of the incomplete frame are known to be valid UTF-8.
    checked: usize,
    /// Scratch space for unmasking a copy of a masked frame's received payload (the
    /// decoder unmasks in place only once a frame is complete).
    unmasked: Vec<u8>,
}

impl IncompleteTextCheck {
    /// A check with no message in progress.
    pub fn new() -> IncompleteTextCheck {
        IncompleteTextCheck::default()
    }

    /// Checks the payload received so far of the incomplete frame at the front of
    /// `received`; only the bytes not checked before are looked at.
    pub fn check(&mut self, received: &[u8]) -> Result<(), ProtocolError> {
        let Some((header, header_len)) = FrameHeader::decode(received)? else {
            return Ok(());
        };
        let carries_text = match header.opcode {
            // A compressed frame carries DEFLATE data, checked once inflated.
            OpCode::Text => !header.rsv1,
            OpCode::Continuation => self.text_in_progress,
            _ => false,
        };
        if !carries_text {
            return Ok(());
        }
        let mut from = self.checked;
        let payload = received.get(header_len + from..).unwrap_or_default();
        let mut text = match header.mask {
            Some(key) => {
                self.unmasked.clear();
                self.unmasked.extend_from_slice(payload);
                apply_mask(&mut self.unmasked, key, from);
                self.unmasked.as_slice()
            }
            None => payload,
        };
        if from == 0 && header.opcode == OpCode::Continuation {
            // The first bytes may finish a character that the previous fragment began;
            // the assembler checks those. Start at the first byte that begins a character.
            let Some(boundary) = text.iter().position(|&byte| !is_continuation_byte(byte)) else {
                return Ok(());
            };
            text = &text[boundary..];
            from = boundary;
        }
        match std::str::from_utf8(text) {
            Ok(_) => self.checked = from + text.len(),
            // The bytes stop inside a character: the rest may still arrive.
            Err(error) if error.error_len().is_none() => {
                self.checked = from + error.valid_up_to();
            }
            Err(_) => return Err(ProtocolError::InvalidUtf8),
        }
        Ok(())
    }

    /// A frame with this header is complete: the next incomplete frame starts unchecked.
    pub fn frame_completed(&mut self, header: &FrameHeader) {
        self.checked = 0;
        self.text_in_progress = match header.opcode {
            OpCode::Text => !header.fin && !header.rsv1,
            OpCode::Binary => false,
            OpCode::Continuation => self.text_in_progress && !header.fin,
            // Control frames may come between fragments and change nothing.
            _ => self.text_in_progress,
        };
    }
}
// ANCHOR_END: incomplete_text

/// UTF-8 continuation bytes look like `10xxxxxx`; every other byte begins a character.
fn is_continuation_byte(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

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
    fn incomplete_text_fails_at_the_first_bad_byte() {
        use crate::frame::encode_frame;
        // A masked 1000-byte text frame of which only the start has arrived.
        let mut text = vec![b'a'; 1000];
        text[5] = 0xff;
        let mut frame = Vec::new();
        encode_frame(&mut frame, true, OpCode::Text, Some([1, 2, 3, 4]), &text);
        let mut check = IncompleteTextCheck::new();
        assert_eq!(check.check(&frame[..6 + 5]), Ok(()), "all valid so far");
        assert_eq!(
            check.check(&frame[..6 + 10]),
            Err(ProtocolError::InvalidUtf8)
        );

        // Binary may hold anything; an unmasked (server) text frame is checked too.
        let mut binary = Vec::new();
        encode_frame(&mut binary, true, OpCode::Binary, None, &text);
        assert_eq!(IncompleteTextCheck::new().check(&binary[..20]), Ok(()));
        let mut server_text = Vec::new();
        encode_frame(&mut server_text, true, OpCode::Text, None, &text);
        assert_eq!(
            IncompleteTextCheck::new().check(&server_text[..20]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn incomplete_continuation_frames_of_text_are_checked() {
        use crate::frame::encode_frame;
        let euro = "€".as_bytes();
        let mut check = IncompleteTextCheck::new();
        // A first fragment ending inside "€" completes...
        check.frame_completed(&header(false, OpCode::Text, &euro[..1]));
        // ...and a continuation starts with the rest of it, then goes bad.
        let mut payload = euro[1..].to_vec();
        payload.extend_from_slice(b"ok");
        payload.push(0xc0);
        payload.extend_from_slice(&[b'x'; 200]);
        let mut frame = Vec::new();
        encode_frame(&mut frame, true, OpCode::Continuation, None, &payload);
        assert_eq!(check.check(&frame[..4 + 4]), Ok(()));
        assert_eq!(
            check.check(&frame[..4 + 6]),
            Err(ProtocolError::InvalidUtf8)
        );
        // After a binary message, continuations are not text.
        let mut check = IncompleteTextCheck::new();
        check.frame_completed(&header(false, OpCode::Binary, b""));
        assert_eq!(check.check(&frame[..4 + 6]), Ok(()));
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
    fn a_message_in_too_many_frames_fails_with_1009() {
        let mut assembler = MessageAssembler::new(100).with_max_fragments(3);
        assert_eq!(push(&mut assembler, false, OpCode::Text, b"a"), Ok(None));
        assert_eq!(
            push(&mut assembler, false, OpCode::Continuation, b""),
            Ok(None)
        );
        assert_eq!(
            push(&mut assembler, true, OpCode::Continuation, b"b"),
            Ok(Some(Message::Text("ab".into())))
        );
        // The count starts again with each message.
        assert_eq!(push(&mut assembler, false, OpCode::Text, b""), Ok(None));
        assert_eq!(
            push(&mut assembler, false, OpCode::Continuation, b""),
            Ok(None)
        );
        assert_eq!(
            push(&mut assembler, false, OpCode::Continuation, b""),
            Ok(None)
        );
        let error = push(&mut assembler, false, OpCode::Continuation, b"").unwrap_err();
        assert_eq!(error, ProtocolError::TooManyFragments { limit: 3 });
        assert_eq!(error.close_code(), CloseCode::MESSAGE_TOO_BIG);
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
