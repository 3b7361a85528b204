//! Bytes in, messages out: the loop every WebSocket endpoint runs around
//! [`FrameDecoder`] and [`MessageAssembler`], for either role and without any I/O.
//!
//! The caller reads from its socket into [`MessageReader::buffer_to_fill`] (or hands
//! over bytes with [`MessageReader::feed`]) and calls [`MessageReader::next_message`]
//! until it answers `Ok(None)`, "need more bytes". The reader keeps one receive buffer,
//! decodes as many frames as it holds, joins fragments, fails fast on a text frame
//! whose received bytes can never be UTF-8 ([`IncompleteTextCheck`]), and compacts the
//! buffer so that it never holds more than one frame plus one read.

use crate::ProtocolError;
use crate::deflate::Inflater;
use crate::frame::{FrameDecoder, Role};
use crate::message::{IncompleteTextCheck, Message, MessageAssembler};

/// Receives a WebSocket connection's bytes and hands out its messages and control frames.
#[derive(Debug)]
pub struct MessageReader {
    /// Bytes received; `buffer[start..]` are not decoded yet. Decoded frames are skipped
    /// by moving `start`, not by shifting the bytes after them.
    buffer: Vec<u8>,
    start: usize,
    read_size: usize,
    decoder: FrameDecoder,
    assembler: MessageAssembler,
    /// Fails fast on invalid UTF-8 in a text frame still arriving.
    incomplete_text: IncompleteTextCheck,
    /// The error that broke the connection: every later call returns it again.
    failure: Option<ProtocolError>,
}

impl MessageReader {
    /// How much room [`MessageReader::buffer_to_fill`] makes unless told otherwise.
    pub const DEFAULT_READ_SIZE: usize = 8192;

    /// A reader for the end that plays `role`, accepting frames of up to
    /// `max_frame_len` payload bytes and messages of up to `max_message_len` bytes,
    /// all fragments together.
    pub fn new(role: Role, max_frame_len: usize, max_message_len: usize) -> MessageReader {
        MessageReader {
            buffer: Vec::new(),
            start: 0,
            read_size: MessageReader::DEFAULT_READ_SIZE,
            decoder: FrameDecoder::new(role, max_frame_len as u64),
            assembler: MessageAssembler::new(max_message_len),
            incomplete_text: IncompleteTextCheck::new(),
            failure: None,
        }
    }

    /// The same reader after permessage-deflate was negotiated ([`crate::deflate`]):
    /// messages whose first frame has RSV1 are inflated with `inflater`.
    pub fn with_inflater(mut self, inflater: Inflater) -> MessageReader {
        self.decoder = self.decoder.with_compressed_messages();
        self.assembler = self.assembler.with_inflater(inflater);
        self
    }

    /// The same reader refusing a message in more than `max_fragments` frames
    /// ([`MessageAssembler::with_max_fragments`]).
    pub fn with_max_fragments(mut self, max_fragments: usize) -> MessageReader {
        self.assembler = self.assembler.with_max_fragments(max_fragments);
        self
    }

    /// How many messages so far arrived compressed (permessage-deflate).
    pub fn compressed_messages(&self) -> u64 {
        self.assembler.compressed_messages()
    }

    /// The same reader making room for `read_size` bytes (at least one) before each read.
    pub fn with_read_size(mut self, read_size: usize) -> MessageReader {
        self.read_size = read_size.max(1);
        self
    }

    /// Appends bytes received elsewhere (for example those that came in the same read
    /// as the handshake).
    pub fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.make_room(bytes.len());
        self.buffer.extend_from_slice(bytes);
    }

    /// The buffer to read into, with room for at least the read size at its end.
    ///
    /// Append to it only (`read_buf` does): the bytes already in it are not decoded
    /// yet. The buffer is never zeroed. When everything was decoded it starts over at
    /// the front; when the free space runs low, the undecoded tail (less than one
    /// frame) moves to the front. A frame is at most the frame limit plus its header,
    /// so neither the buffer nor this copying grows without bound.
    pub fn buffer_to_fill(&mut self) -> &mut Vec<u8> {
        self.make_room(self.read_size);
        &mut self.buffer
    }

    fn make_room(&mut self, wanted: usize) {
        if self.start >= self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > 0 && self.buffer.capacity() - self.buffer.len() < wanted {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.reserve(wanted);
    }

    // ANCHOR: next_message
    /// Decodes frames from the bytes received until one completes a message or is a
    /// control frame: `Ok(None)` when the bytes run out first (read more, then call
    /// again). An error is the close code the peer earned
    /// ([`ProtocolError::close_code`]); it comes as soon as the bytes show it, even
    /// in the middle of a frame, and every later call returns it again.
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        if let Some(error) = &self.failure {
            return Err(error.clone());
        }
        let decoded = self.decode_buffered();
        if let Err(error) = &decoded {
            self.failure = Some(error.clone());
        }
        decoded
    }

    fn decode_buffered(&mut self) -> Result<Option<Message>, ProtocolError> {
        loop {
            // `min`: a caller that took bytes out of the buffer must not make this panic.
            let from = self.start.min(self.buffer.len());
            let unread = &mut self.buffer[from..];
            let Some(frame) = self.decoder.decode(unread)? else {
                self.incomplete_text.check(unread)?;
                return Ok(None);
            };
            let header = frame.header;
            let consumed = frame.consumed;
            // A message in one frame borrows the buffer; copy it out before moving on.
            let message = self
                .assembler
                .push_borrowed(&header, frame.payload)?
                .map(|message| message.to_owned());
            self.start += consumed;
            self.incomplete_text.frame_completed(&header);
            if message.is_some() {
                return Ok(message);
            }
        }
    }
    // ANCHOR_END: next_message

    /// Whether bytes are waiting that did not make a whole frame yet.
    pub fn has_unread_bytes(&self) -> bool {
        self.start < self.buffer.len()
    }

    /// The bytes received and not decoded yet.
    pub fn unread(&self) -> &[u8] {
        &self.buffer[self.start.min(self.buffer.len())..]
    }

    /// Gives the buffer's memory back when no bytes are waiting in it, so that an idle
    /// connection holds no receive buffer; the next [`MessageReader::buffer_to_fill`]
    /// takes a new one. Does nothing while bytes are waiting.
    pub fn release_buffer(&mut self) {
        if !self.has_unread_bytes() {
            self.buffer = Vec::new();
            self.start = 0;
        }
    }

    /// Drops every byte not decoded yet, keeping the memory: for reading and
    /// discarding until the peer closes, once no more messages are wanted.
    pub fn discard_unread(&mut self) {
        self.buffer.clear();
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close::CloseCode;
    use crate::frame::{OpCode, encode_frame};

    const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

    fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, fin, opcode, Some(KEY), payload);
        out
    }

    fn server_reader() -> MessageReader {
        MessageReader::new(Role::Server, 1000, 1000)
    }

    /// A client frame with RSV1 set, as permessage-deflate marks a message's first.
    fn compressed_client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        crate::frame::FrameHeader {
            fin,
            rsv1: true,
            mask: Some(KEY),
            ..crate::frame::FrameHeader::new(opcode, payload.len() as u64)
        }
        .encode(&mut out);
        let start = out.len();
        out.extend_from_slice(payload);
        crate::mask::apply_mask(&mut out[start..], KEY, 0);
        out
    }

    fn deflating_reader() -> MessageReader {
        server_reader().with_inflater(crate::deflate::Inflater::new(15, false))
    }

    #[test]
    fn compressed_messages_inflate_in_one_frame_or_in_pieces() {
        let mut deflater = crate::deflate::Deflater::new(15, false);
        let mut reader = deflating_reader();
        reader.feed(&compressed_client_frame(
            true,
            OpCode::Text,
            &deflater.compress("héllo".as_bytes()),
        ));
        assert_eq!(
            reader.next_message(),
            Ok(Some(Message::Text("héllo".into())))
        );
        // The second message reuses the window; split its DEFLATE data in three frames,
        // RSV1 on the first only, a ping in between.
        let compressed = deflater.compress("héllo".as_bytes());
        let (first, rest) = compressed.split_at(1);
        let (middle, last) = rest.split_at(rest.len() / 2);
        let mut bytes = compressed_client_frame(false, OpCode::Text, first);
        bytes.extend(client_frame(false, OpCode::Continuation, middle));
        bytes.extend(client_frame(true, OpCode::Ping, b"p"));
        bytes.extend(client_frame(true, OpCode::Continuation, last));
        bytes.extend(client_frame(true, OpCode::Text, b"plain"));
        reader.feed(&bytes);
        assert_eq!(
            reader.next_message(),
            Ok(Some(Message::Ping(b"p".to_vec())))
        );
        assert_eq!(
            reader.next_message(),
            Ok(Some(Message::Text("héllo".into())))
        );
        assert_eq!(
            reader.next_message(),
            Ok(Some(Message::Text("plain".into())))
        );
        assert_eq!(
            reader.compressed_messages(),
            2,
            "the plain one is not counted"
        );
    }

    #[test]
    fn rsv1_is_refused_where_permessage_deflate_does_not_allow_it() {
        let compressed = crate::deflate::Deflater::new(15, false).compress(b"x");
        // Not negotiated.
        let mut reader = server_reader();
        reader.feed(&compressed_client_frame(true, OpCode::Text, &compressed));
        assert_eq!(reader.next_message(), Err(ProtocolError::ReservedBitsSet));
        // On a continuation, and on a control frame.
        for bytes in [
            [
                client_frame(false, OpCode::Text, b"a"),
                compressed_client_frame(true, OpCode::Continuation, b"b"),
            ]
            .concat(),
            compressed_client_frame(true, OpCode::Ping, b""),
        ] {
            let mut reader = deflating_reader();
            reader.feed(&bytes);
            assert_eq!(reader.next_message(), Err(ProtocolError::ReservedBitsSet));
        }
    }

    #[test]
    fn a_compressed_message_is_bounded_and_checked_once_inflated() {
        // 1000 bytes is the limit: 2000 zeros compress to a few bytes.
        let bomb = crate::deflate::Deflater::new(15, false).compress(&[0; 2000]);
        let mut reader = deflating_reader();
        reader.feed(&compressed_client_frame(true, OpCode::Binary, &bomb));
        let error = reader.next_message().unwrap_err();
        assert_eq!(error.close_code(), CloseCode::MESSAGE_TOO_BIG, "{error:?}");
        // Not UTF-8 once inflated: 1007, like an uncompressed one.
        let invalid = crate::deflate::Deflater::new(15, false).compress(&[0xc3, 0x28]);
        let mut reader = deflating_reader();
        reader.feed(&compressed_client_frame(true, OpCode::Text, &invalid));
        assert_eq!(reader.next_message(), Err(ProtocolError::InvalidUtf8));
        // Not DEFLATE at all: 1007 too.
        let mut reader = deflating_reader();
        reader.feed(&compressed_client_frame(true, OpCode::Text, &[0xff; 8]));
        let error = reader.next_message().unwrap_err();
        assert_eq!(error.close_code(), CloseCode::INVALID_PAYLOAD, "{error:?}");
    }

    #[test]
    fn a_message_in_one_frame() {
        let mut reader = server_reader();
        assert_eq!(reader.next_message(), Ok(None));
        reader.feed(&client_frame(true, OpCode::Text, b"Hello"));
        assert_eq!(
            reader.next_message(),
            Ok(Some(Message::Text("Hello".into())))
        );
        assert_eq!(reader.next_message(), Ok(None));
        assert!(!reader.has_unread_bytes());
    }

    #[test]
    fn fragments_with_a_ping_in_between_and_several_frames_in_one_read() {
        let mut reader = server_reader();
        let mut bytes = client_frame(false, OpCode::Text, b"Hel");
        bytes.extend(client_frame(true, OpCode::Ping, b"p"));
        bytes.extend(client_frame(true, OpCode::Continuation, b"lo"));
        bytes.extend(client_frame(true, OpCode::Binary, &[0, 255]));
        reader.buffer_to_fill().extend_from_slice(&bytes);
        assert_eq!(
            reader.next_message(),
            Ok(Some(Message::Ping(b"p".to_vec())))
        );
        assert_eq!(
            reader.next_message(),
            Ok(Some(Message::Text("Hello".into())))
        );
        assert_eq!(
            reader.next_message(),
            Ok(Some(Message::Binary(vec![0, 255])))
        );
        assert_eq!(reader.next_message(), Ok(None));
    }

    #[test]
    fn each_role_rejects_the_other_roles_masking() {
        let mut server = server_reader();
        let mut unmasked = Vec::new();
        encode_frame(&mut unmasked, true, OpCode::Text, None, b"x");
        server.feed(&unmasked);
        assert_eq!(
            server.next_message(),
            Err(ProtocolError::UnmaskedClientFrame)
        );
        let mut client = MessageReader::new(Role::Client, 1000, 1000);
        client.feed(&unmasked);
        assert_eq!(client.next_message(), Ok(Some(Message::Text("x".into()))));
        client.feed(&client_frame(true, OpCode::Text, b"x"));
        assert_eq!(client.next_message(), Err(ProtocolError::MaskedServerFrame));
    }

    #[test]
    fn invalid_text_fails_before_the_frame_is_complete() {
        let mut reader = server_reader();
        let mut payload = b"fine so far ".to_vec();
        payload.push(0xc0);
        payload.resize(500, b'x');
        let frame = client_frame(true, OpCode::Text, &payload);
        // Header (2 + 2 length + 4 key), then the 12 good bytes: nothing wrong yet.
        reader.feed(&frame[..8 + 12]);
        assert_eq!(reader.next_message(), Ok(None));
        reader.feed(&frame[8 + 12..8 + 13]);
        let error = reader.next_message().unwrap_err();
        assert_eq!(error, ProtocolError::InvalidUtf8);
        assert_eq!(error.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn an_error_is_returned_again() {
        let mut reader = server_reader();
        reader.feed(&client_frame(true, OpCode::Continuation, b"x"));
        reader.feed(&client_frame(true, OpCode::Text, b"after"));
        let error = reader.next_message().unwrap_err();
        assert_eq!(error, ProtocolError::ContinuationWithoutStart);
        assert_eq!(reader.next_message(), Err(error));
    }

    #[test]
    fn limits_apply_to_frames_and_to_messages() {
        let mut reader = MessageReader::new(Role::Server, 10, 15);
        reader.feed(&client_frame(true, OpCode::Binary, &[0; 11]));
        let error = reader.next_message().unwrap_err();
        assert_eq!(error.close_code(), CloseCode::MESSAGE_TOO_BIG);
        let mut reader = MessageReader::new(Role::Server, 10, 15);
        reader.feed(&client_frame(false, OpCode::Binary, &[0; 10]));
        reader.feed(&client_frame(true, OpCode::Continuation, &[0; 6]));
        assert!(matches!(
            reader.next_message(),
            Err(ProtocolError::MessageTooLarge { limit: 15, .. })
        ));
    }

    #[test]
    fn the_buffer_stays_one_frame_and_one_read_long() {
        let mut reader = server_reader().with_read_size(64);
        let frame = client_frame(true, OpCode::Binary, &[7; 100]);
        for _ in 0..1000 {
            // Every read brings the end of one frame and the start of the next.
            for piece in frame.chunks(60) {
                reader.buffer_to_fill().extend_from_slice(piece);
                while let Some(message) = reader.next_message().unwrap() {
                    assert_eq!(message, Message::Binary(vec![7; 100]));
                }
            }
            assert!(reader.buffer.capacity() <= frame.len() + 2 * 64);
        }
    }

    #[test]
    fn release_buffer_frees_the_memory_only_when_nothing_waits() {
        let mut reader = server_reader();
        let frame = client_frame(true, OpCode::Text, b"abc");
        reader.buffer_to_fill().extend_from_slice(&frame[..3]);
        reader.release_buffer();
        assert!(reader.has_unread_bytes());
        assert_eq!(reader.unread(), &frame[..3]);
        reader.buffer_to_fill().extend_from_slice(&frame[3..]);
        assert_eq!(reader.next_message(), Ok(Some(Message::Text("abc".into()))));
        reader.release_buffer();
        assert_eq!(reader.buffer.capacity(), 0);
        reader.feed(&frame);
        reader.discard_unread();
        assert_eq!(reader.next_message(), Ok(None));
    }
}
