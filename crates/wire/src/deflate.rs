//! permessage-deflate (RFC 7692): the negotiation in `Sec-WebSocket-Extensions`, and
//! compressing and decompressing one message at a time.
//!
//! A client offers the extension, with parameters, in its handshake; the server picks
//! the first offer it can honour and answers with the parameters both sides then keep
//! to ([`negotiate`], [`Agreement::response`]); the client checks that answer
//! ([`accept_response`]). After that, a data message whose first frame has RSV1 set
//! carries DEFLATE data: the sender compresses the whole message with a sync flush and
//! removes the four bytes `00 00 ff ff` the flush ends with ([`Deflater`]); the
//! receiver puts them back and inflates, never past its message limit ([`Inflater`]).
//!
//! The DEFLATE algorithm itself is flate2's (on zlib-rs), which can use a window of
//! 2^9 to 2^15 bytes. The RFC also allows 2^8, which zlib cannot compress with, so an
//! offer that asks this server for an 8-bit window is declined.
//!
//! No I/O here either: header values in, a header value out; bytes in, bytes out.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The smallest window, in bits, the RFC allows.
pub const RFC_MIN_WINDOW_BITS: u8 = 8;

/// The smallest window, in bits, this crate compresses with (zlib's smallest).
pub const MIN_WINDOW_BITS: u8 = 9;

/// The largest window, in bits: 32 KiB, DEFLATE's own limit and the default.
pub const MAX_WINDOW_BITS: u8 = 15;

/// The four bytes every sync flush ends with, removed from each compressed message.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What an offer says about the window of the client's compressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientWindowBits {
    /// The client did not mention it: it cannot be limited.
    #[default]
    NotOffered,
    /// `client_max_window_bits` without a value: the server may set any limit.
    Any,
    /// `client_max_window_bits=N`: the client will use at most N bits.
    AtMost(u8),
}

/// One permessage-deflate offer from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offer {
    /// The client asks the server to start every message with an empty window.
    pub server_no_context_takeover: bool,
    /// The client says it can start every message of its own with an empty window.
    pub client_no_context_takeover: bool,
    /// The largest window the client asks the server to compress with.
    pub server_max_window_bits: Option<u8>,
    /// What the client says about its own window.
    pub client_max_window_bits: ClientWindowBits,
}

/// Why an offer (or a server's response) is malformed, and so declined (or failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterError {
    /// A parameter the RFC does not define.
    Unknown(String),
    /// The same parameter twice.
    Duplicate(&'static str),
    /// A parameter that takes no value had one.
    UnexpectedValue(&'static str),
    /// A parameter that needs a value had none.
    MissingValue(&'static str),
    /// A window size that is not a number from 8 to 15 (leading zeros not allowed).
    InvalidWindowBits(String),
    /// A quoted value that does not end, or an empty parameter.
    Syntax(String),
}

impl std::fmt::Display for ParameterError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParameterError::Unknown(name) => write!(formatter, "unknown parameter {name:?}"),
            ParameterError::Duplicate(name) => write!(formatter, "{name} given twice"),
            ParameterError::UnexpectedValue(name) => write!(formatter, "{name} takes no value"),
            ParameterError::MissingValue(name) => write!(formatter, "{name} needs a value"),
            ParameterError::InvalidWindowBits(value) => {
                write!(formatter, "window bits {value:?} (8 to 15)")
            }
            ParameterError::Syntax(text) => write!(formatter, "cannot parse {text:?}"),
        }
    }
}

impl std::error::Error for ParameterError {}

// ANCHOR: split_elements
/// Splits a header value at `separator`, except inside a quoted string.
fn split_outside_quotes(text: &str, separator: char) -> Result<Vec<&str>, ParameterError> {
    let mut pieces = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (index, character) in text.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ if character == separator && !quoted => {
                pieces.push(text[start..index].trim());
                start = index + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(ParameterError::Syntax(text.to_owned()));
    }
    pieces.push(text[start..].trim());
    Ok(pieces)
}
// ANCHOR_END: split_elements

/// A window size: `8` to `15`, bare or quoted (section 7.1.2.1), no leading zero.
fn window_bits(value: &str) -> Result<u8, ParameterError> {
    let unquoted = value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(value);
    let invalid = || ParameterError::InvalidWindowBits(value.to_owned());
    if unquoted.is_empty()
        || unquoted.starts_with('0')
        || !unquoted.bytes().all(|byte| byte.is_ascii_digit())
    {
        return Err(invalid());
    }
    let bits: u8 = unquoted.parse().map_err(|_| invalid())?;
    if (RFC_MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) {
        Ok(bits)
    } else {
        Err(invalid())
    }
}

// ANCHOR: parse_parameters
/// The four parameters of one element (`permessage-deflate; a; b=1`), each at most
/// once. `client_max_window_bits` may come without a value in an offer only.
fn parse_parameters(parameters: &[&str], in_offer: bool) -> Result<Offer, ParameterError> {
    let mut offer = Offer::default();
    let mut seen: Vec<&'static str> = Vec::new();
    for parameter in parameters {
        if parameter.is_empty() {
            return Err(ParameterError::Syntax(parameters.join("; ")));
        }
        let (name, value) = match parameter.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim())),
            None => (*parameter, None),
        };
        let name: &'static str = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => "server_no_context_takeover",
            "client_no_context_takeover" => "client_no_context_takeover",
            "server_max_window_bits" => "server_max_window_bits",
            "client_max_window_bits" => "client_max_window_bits",
            _ => return Err(ParameterError::Unknown(name.to_owned())),
        };
        if seen.contains(&name) {
            return Err(ParameterError::Duplicate(name));
        }
        seen.push(name);
        match (name, value) {
            ("server_no_context_takeover", None) => offer.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => offer.client_no_context_takeover = true,
            ("server_no_context_takeover" | "client_no_context_takeover", Some(_)) => {
                return Err(ParameterError::UnexpectedValue(name));
            }
            ("server_max_window_bits", Some(value)) => {
                offer.server_max_window_bits = Some(window_bits(value)?);
            }
            ("client_max_window_bits", Some(value)) => {
                offer.client_max_window_bits = ClientWindowBits::AtMost(window_bits(value)?);
            }
            ("client_max_window_bits", None) if in_offer => {
                offer.client_max_window_bits = ClientWindowBits::Any;
            }
            (_, _) => return Err(ParameterError::MissingValue(name)),
        }
    }
    Ok(offer)
}
// ANCHOR_END: parse_parameters

/// Every permessage-deflate offer in the values of a request's
/// `Sec-WebSocket-Extensions` headers, in the client's order of preference, each
/// parsed or with the reason it must be declined. Other extensions are skipped.
pub fn parse_offers<'a>(
    header_values: impl IntoIterator<Item = &'a str>,
) -> Vec<Result<Offer, ParameterError>> {
    let mut offers = Vec::new();
    for value in header_values {
        let elements = match split_outside_quotes(value, ',') {
            Ok(elements) => elements,
            Err(error) => {
                offers.push(Err(error));
                continue;
            }
        };
        for element in elements {
            let pieces = match split_outside_quotes(element, ';') {
                Ok(pieces) => pieces,
                Err(error) => {
                    offers.push(Err(error));
                    continue;
                }
            };
            if pieces[0].eq_ignore_ascii_case(EXTENSION_NAME) {
                offers.push(parse_parameters(&pieces[1..], true));
            }
        }
    }
    offers
}

/// What this server is willing to do, from its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Start every message the server sends with an empty window (less memory per
    /// connection, less compression).
    pub server_no_context_takeover: bool,
    /// Ask clients to do the same for theirs.
    pub client_no_context_takeover: bool,
    /// The largest window the server compresses with.
    pub server_max_window_bits: u8,
    /// The largest window the server asks clients to compress with, when they let it.
    pub client_max_window_bits: u8,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

/// The parameters both sides keep to after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// The server starts every message with an empty window.
    pub server_no_context_takeover: bool,
    /// The client starts every message with an empty window.
    pub client_no_context_takeover: bool,
    /// The server compresses with at most this window.
    pub server_max_window_bits: u8,
    /// The client compresses with at most this window.
    pub client_max_window_bits: u8,
    /// Whether the response states `server_max_window_bits` (it must when the client
    /// asked for a limit).
    state_server_window: bool,
    /// Whether the response states `client_max_window_bits` (it may only when the
    /// client offered it).
    state_client_window: bool,
}

// ANCHOR: negotiate
/// The answer to the client's offers: the first one this server can honour, or none
/// (then the server answers without the extension, and neither side sets RSV1).
pub fn negotiate<'a>(
    header_values: impl IntoIterator<Item = &'a str>,
    config: &ServerConfig,
) -> Option<Agreement> {
    parse_offers(header_values)
        .into_iter()
        .filter_map(Result::ok)
        .find_map(|offer| accept_offer(&offer, config))
}

/// One offer, accepted with the server's limits, or declined.
fn accept_offer(offer: &Offer, config: &ServerConfig) -> Option<Agreement> {
    let server_max_window_bits = match offer.server_max_window_bits {
        // zlib cannot compress with a 256-byte window: decline, the next offer may do.
        Some(asked) if asked < MIN_WINDOW_BITS => return None,
        Some(asked) => asked.min(config.server_max_window_bits),
        None => config.server_max_window_bits,
    };
    let client_max_window_bits = match offer.client_max_window_bits {
        // The client did not say it can limit its window: it may use the largest.
        ClientWindowBits::NotOffered => MAX_WINDOW_BITS,
        ClientWindowBits::Any => config.client_max_window_bits,
        ClientWindowBits::AtMost(bits) => bits.min(config.client_max_window_bits),
    };
    Some(Agreement {
        server_no_context_takeover: offer.server_no_context_takeover
            || config.server_no_context_takeover,
        client_no_context_takeover: offer.client_no_context_takeover
            || config.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
        state_server_window: offer.server_max_window_bits.is_some()
            || server_max_window_bits < MAX_WINDOW_BITS,
        state_client_window: offer.client_max_window_bits != ClientWindowBits::NotOffered
            && client_max_window_bits < MAX_WINDOW_BITS,
    })
}
// ANCHOR_END: negotiate

impl Agreement {
    /// The `Sec-WebSocket-Extensions` value of the server's `101` response.
    pub fn response(&self) -> String {
        let mut value = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if self.state_server_window {
            value.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.state_client_window {
            value.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        value
    }

    /// The server's compressor and decompressor.
    pub fn server_codec(&self) -> (Deflater, Inflater) {
        (
            Deflater::new(self.server_max_window_bits, self.server_no_context_takeover),
            Inflater::new(self.client_max_window_bits, self.client_no_context_takeover),
        )
    }

    /// The client's compressor and decompressor.
    pub fn client_codec(&self) -> (Deflater, Inflater) {
        (
            Deflater::new(self.client_max_window_bits, self.client_no_context_takeover),
            Inflater::new(self.server_max_window_bits, self.server_no_context_takeover),
        )
    }
}

/// What a client offers: the extension, and that it can limit its own window.
pub const CLIENT_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// Why a client must fail the connection over the server's answer to [`CLIENT_OFFER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// Something else than exactly one permessage-deflate element.
    NotOneDeflate(String),
    /// A malformed parameter.
    Parameter(ParameterError),
    /// The server asks this client for a window zlib cannot compress with.
    WindowTooSmall(u8),
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseError::NotOneDeflate(value) => {
                write!(
                    formatter,
                    "the server answered the extensions with {value:?}"
                )
            }
            ResponseError::Parameter(error) => write!(formatter, "the server's answer: {error}"),
            ResponseError::WindowTooSmall(bits) => write!(
                formatter,
                "the server asks for a {bits}-bit window, below zlib's {MIN_WINDOW_BITS}"
            ),
        }
    }
}

impl std::error::Error for ResponseError {}

/// The agreement in a server's `Sec-WebSocket-Extensions` answer to [`CLIENT_OFFER`].
///
/// # Errors
///
/// When the answer is not one permessage-deflate element with valid parameters, or
/// asks for a window this client cannot compress with.
pub fn accept_response(value: &str) -> Result<Agreement, ResponseError> {
    let not_one = || ResponseError::NotOneDeflate(value.to_owned());
    let elements = split_outside_quotes(value, ',').map_err(ResponseError::Parameter)?;
    let [element] = elements.as_slice() else {
        return Err(not_one());
    };
    let pieces = split_outside_quotes(element, ';').map_err(ResponseError::Parameter)?;
    if !pieces[0].eq_ignore_ascii_case(EXTENSION_NAME) {
        return Err(not_one());
    }
    let answer = parse_parameters(&pieces[1..], false).map_err(ResponseError::Parameter)?;
    let client_max_window_bits = match answer.client_max_window_bits {
        ClientWindowBits::AtMost(bits) if bits < MIN_WINDOW_BITS => {
            return Err(ResponseError::WindowTooSmall(bits));
        }
        ClientWindowBits::AtMost(bits) => bits,
        _ => MAX_WINDOW_BITS,
    };
    let server_max_window_bits = answer.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS);
    Ok(Agreement {
        server_no_context_takeover: answer.server_no_context_takeover,
        client_no_context_takeover: answer.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
        state_server_window: answer.server_max_window_bits.is_some(),
        state_client_window: matches!(answer.client_max_window_bits, ClientWindowBits::AtMost(_)),
    })
}

// ANCHOR: deflater
/// Compresses the messages one side sends (section 7.2.1).
///
/// zlib's compressor takes a few hundred KiB (its window, hash chains and buffers), so
/// it is made at the first message rather than when the connection opens, and without
/// context takeover it is given back after every message: an idle connection holds
/// none.
pub struct Deflater {
    compress: Option<Compress>,
    window_bits: u8,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Deflater {
    /// flate2's state has no `Debug`: shown is whether it exists.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Deflater")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .field("has_state", &self.compress.is_some())
            .finish()
    }
}

impl Deflater {
    /// A compressor with a window of 2^`window_bits` bytes (raised to
    /// [`MIN_WINDOW_BITS`]), emptied after every message when `no_context_takeover`.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Deflater {
        Deflater {
            compress: None,
            window_bits: window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
            no_context_takeover,
        }
    }

    /// The payload of the message's frames: `message` compressed, sync-flushed, and
    /// without the flush's last four bytes. Its first frame gets RSV1.
    pub fn compress(&mut self, message: &[u8]) -> Vec<u8> {
        let bits = self.window_bits;
        let compress = self.compress.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::default(), false, bits)
        });
        let mut output = Vec::with_capacity(message.len() / 2 + 64);
        let start_in = compress.total_in();
        loop {
            let consumed = (compress.total_in() - start_in) as usize;
            if output.len() == output.capacity() {
                output.reserve(output.capacity().max(64));
            }
            compress
                .compress_vec(&message[consumed..], &mut output, FlushCompress::Sync)
                .expect("compressing into memory cannot fail");
            let consumed = (compress.total_in() - start_in) as usize;
            // Done when every byte went in and the flush had room to finish.
            if consumed == message.len() && output.len() < output.capacity() {
                break;
            }
        }
        if output.ends_with(&TAIL) {
            output.truncate(output.len() - TAIL.len());
        }
        if output.is_empty() {
            // zlib writes nothing for a second flush with no new input; the RFC's empty
            // message is the first byte of an empty stored block (section 7.2.3.6).
            output.push(0x00);
        }
        if self.no_context_takeover {
            self.compress = None;
        }
        output
    }
}
// ANCHOR_END: deflater

/// Why a compressed message could not be taken in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past the message limit: close 1009. Nothing past the limit was
    /// kept.
    TooBig {
        /// The limit.
        limit: usize,
    },
    /// It is not valid DEFLATE data: fail the connection.
    Corrupt(String),
}

impl std::fmt::Display for InflateError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InflateError::TooBig { limit } => {
                write!(
                    formatter,
                    "a compressed message inflates past {limit} bytes"
                )
            }
            InflateError::Corrupt(error) => write!(formatter, "invalid DEFLATE data: {error}"),
        }
    }
}

impl std::error::Error for InflateError {}

/// How much output is added at a time while inflating: a bomb stops at the limit
/// plus at most this.
const INFLATE_STEP: usize = 16 * 1024;

// ANCHOR: inflater
/// Decompresses the messages the other side sends (section 7.2.2). Made at the first
/// compressed message and, without context takeover, given back after each, like
/// [`Deflater`].
pub struct Inflater {
    decompress: Option<Decompress>,
    window_bits: u8,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Inflater {
    /// flate2's state has no `Debug`: shown is whether it exists.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Inflater")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .field("has_state", &self.decompress.is_some())
            .finish()
    }
}

impl Inflater {
    /// A decompressor for a sender whose window is at most 2^`window_bits` bytes
    /// (raised to [`MIN_WINDOW_BITS`]: a larger window reads a smaller one's data),
    /// emptied after every message when the sender empties its own.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Inflater {
        Inflater {
            decompress: None,
            window_bits: window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
            no_context_takeover,
        }
    }

    /// An empty window for the next message (flate2's `reset` would also set the
    /// window back to 15 bits).
    fn restart(&mut self) {
        self.decompress = None;
    }

    /// The message whose compressed payload (all its frames together) is
    /// `compressed`, at most `limit` bytes long.
    ///
    /// # Errors
    ///
    /// [`InflateError::TooBig`] as soon as the output passes `limit` (the rest is not
    /// inflated), [`InflateError::Corrupt`] for data that is not DEFLATE.
    pub fn decompress(&mut self, compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        let mut output = Vec::new();
        let ended = self.inflate(compressed, limit, &mut output)?;
        // The tail ends the sync flush; a sender that ended the stream has no flush.
        if !ended {
            self.inflate(&TAIL, limit, &mut output)?;
        }
        if self.no_context_takeover && !ended {
            self.restart();
        }
        Ok(output)
    }

    /// Inflates `input` onto `output`; true when the sender ended its DEFLATE stream.
    fn inflate(
        &mut self,
        input: &[u8],
        limit: usize,
        output: &mut Vec<u8>,
    ) -> Result<bool, InflateError> {
        let bits = self.window_bits;
        let decompress = self
            .decompress
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let start_in = decompress.total_in();
        loop {
            let consumed = (decompress.total_in() - start_in) as usize;
            if output.len() == output.capacity() {
                // One byte past the limit is enough to know it is too big.
                let room = (limit + 1).saturating_sub(output.len()).min(INFLATE_STEP);
                if room == 0 {
                    return Err(InflateError::TooBig { limit });
                }
                output.reserve_exact(room);
            }
            let status = decompress
                .decompress_vec(&input[consumed..], output, FlushDecompress::Sync)
                .map_err(|error| InflateError::Corrupt(error.to_string()))?;
            if output.len() > limit {
                return Err(InflateError::TooBig { limit });
            }
            let consumed = (decompress.total_in() - start_in) as usize;
            let room_left = output.len() < output.capacity();
            match status {
                // The sender ended the DEFLATE stream (BFINAL): allowed; a new one
                // must start with the next message.
                Status::StreamEnd => {
                    self.restart();
                    return Ok(true);
                }
                _ if consumed == input.len() && room_left => return Ok(false),
                Status::BufError if room_left => {
                    return Err(InflateError::Corrupt("no progress".to_owned()));
                }
                _ => {}
            }
        }
    }
}
// ANCHOR_END: inflater

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offer(text: &str) -> Result<Offer, ParameterError> {
        let mut offers = parse_offers([text]);
        assert_eq!(offers.len(), 1, "{text}");
        offers.remove(0)
    }

    #[test]
    fn parses_every_parameter_bare_and_quoted() {
        assert_eq!(offer("permessage-deflate"), Ok(Offer::default()));
        assert_eq!(
            offer(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10; client_max_window_bits=\"12\""
            ),
            Ok(Offer {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(10),
                client_max_window_bits: ClientWindowBits::AtMost(12),
            })
        );
        assert_eq!(
            offer("Permessage-Deflate;client_max_window_bits")
                .map(|offer| offer.client_max_window_bits),
            Ok(ClientWindowBits::Any)
        );
    }

    #[test]
    fn malformed_offers_are_declined_with_their_reason() {
        for (text, error) in [
            (
                "permessage-deflate; server_max_window_bits",
                ParameterError::MissingValue("server_max_window_bits"),
            ),
            (
                "permessage-deflate; server_no_context_takeover=1",
                ParameterError::UnexpectedValue("server_no_context_takeover"),
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                ParameterError::Duplicate("client_no_context_takeover"),
            ),
            (
                "permessage-deflate; mux",
                ParameterError::Unknown("mux".to_owned()),
            ),
            (
                "permessage-deflate; server_max_window_bits=7",
                ParameterError::InvalidWindowBits("7".to_owned()),
            ),
            (
                "permessage-deflate; server_max_window_bits=16",
                ParameterError::InvalidWindowBits("16".to_owned()),
            ),
            (
                "permessage-deflate; server_max_window_bits=010",
                ParameterError::InvalidWindowBits("010".to_owned()),
            ),
            (
                "permessage-deflate; client_max_window_bits=ten",
                ParameterError::InvalidWindowBits("ten".to_owned()),
            ),
            (
                "permessage-deflate; ; server_no_context_takeover",
                ParameterError::Syntax("; server_no_context_takeover".to_owned()),
            ),
        ] {
            assert_eq!(offer(text), Err(error), "{text}");
        }
        assert!(matches!(
            parse_offers(["permessage-deflate; server_max_window_bits=\"10"])[..],
            [Err(ParameterError::Syntax(_))]
        ));
    }

    #[test]
    fn other_extensions_are_skipped_and_offers_keep_their_order() {
        let offers = parse_offers([
            "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=10",
            "permessage-deflate",
        ]);
        assert_eq!(
            offers,
            [
                Ok(Offer {
                    server_max_window_bits: Some(10),
                    ..Offer::default()
                }),
                Ok(Offer::default()),
            ]
        );
    }

    #[test]
    fn the_first_offer_the_server_can_honour_wins() {
        let config = ServerConfig::default();
        // A malformed offer and one asking for a window zlib cannot do are skipped.
        let agreement = negotiate(
            [
                "permessage-deflate; bogus, permessage-deflate; server_max_window_bits=8, \
                 permessage-deflate; client_max_window_bits",
            ],
            &config,
        )
        .expect("the third offer");
        assert_eq!(agreement.response(), "permessage-deflate");
        assert_eq!(negotiate(["permessage-deflate; mux"], &config), None);
        assert_eq!(negotiate(["x-webkit-deflate-frame"], &config), None);
        assert_eq!(negotiate([], &config), None);
    }

    #[test]
    fn the_response_states_what_the_rfc_requires() {
        let default = ServerConfig::default();
        let answer = |text: &str, config: &ServerConfig| {
            negotiate([text], config).expect("accepted").response()
        };
        // Chromium's offer.
        assert_eq!(
            answer("permessage-deflate; client_max_window_bits", &default),
            "permessage-deflate"
        );
        // A limit asked of the server must be answered, with the same or less.
        assert_eq!(
            answer("permessage-deflate; server_max_window_bits=10", &default),
            "permessage-deflate; server_max_window_bits=10"
        );
        let small = ServerConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 9,
            client_max_window_bits: 10,
        };
        assert_eq!(
            answer(
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits",
                &small
            ),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=9; client_max_window_bits=10"
        );
        // A client that did not offer client_max_window_bits cannot be limited.
        let agreement = negotiate(["permessage-deflate"], &small).expect("accepted");
        assert_eq!(agreement.client_max_window_bits, MAX_WINDOW_BITS);
        assert!(!agreement.response().contains("client_max_window_bits"));
    }

    #[test]
    fn a_client_checks_the_answer() {
        let agreement =
            accept_response("permessage-deflate; server_max_window_bits=10").expect("valid");
        assert_eq!(agreement.server_max_window_bits, 10);
        assert_eq!(agreement.client_max_window_bits, MAX_WINDOW_BITS);
        assert_eq!(
            accept_response("permessage-deflate; client_max_window_bits"),
            Err(ResponseError::Parameter(ParameterError::MissingValue(
                "client_max_window_bits"
            )))
        );
        assert_eq!(
            accept_response("permessage-deflate; client_max_window_bits=8"),
            Err(ResponseError::WindowTooSmall(8))
        );
        assert!(matches!(
            accept_response("permessage-deflate, permessage-deflate"),
            Err(ResponseError::NotOneDeflate(_))
        ));
        assert!(matches!(
            accept_response("x-other"),
            Err(ResponseError::NotOneDeflate(_))
        ));
    }

    #[test]
    fn the_rfc_example_hello_inflates() {
        // RFC 7692 section 7.2.3.1: "Hello" compressed, without the tail.
        let compressed = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut inflater = Inflater::new(15, false);
        assert_eq!(inflater.decompress(&compressed, 100).unwrap(), b"Hello");
        // Section 7.2.3.2: the same message again, with the window shared.
        let again = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(inflater.decompress(&again, 100).unwrap(), b"Hello");
        // Section 7.2.3.3: a stored block, no compression at all.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(
            Inflater::new(15, false).decompress(&stored, 100).unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn an_empty_message_compresses_to_one_byte() {
        // Section 7.2.3.6: an empty stored block, 0x00, after the tail is removed.
        let mut deflater = Deflater::new(15, false);
        assert_eq!(deflater.compress(b""), [0x00]);
        let mut inflater = Inflater::new(15, false);
        assert_eq!(inflater.decompress(&[0x00], 10).unwrap(), b"");
    }

    #[test]
    fn context_takeover_shrinks_a_repeated_message() {
        let message = br#"{"type":"message","seq":1,"from":"ada","content":"hello, world"}"#;
        let mut shared = Deflater::new(15, false);
        let first = shared.compress(message);
        let second = shared.compress(message);
        assert!(
            second.len() < first.len() / 2,
            "{} then {}",
            first.len(),
            second.len()
        );
        let mut fresh = Deflater::new(15, true);
        assert_eq!(fresh.compress(message), first);
        assert_eq!(
            fresh.compress(message),
            first,
            "no context: the same bytes again"
        );
        let mut inflater = Inflater::new(15, false);
        for compressed in [&first, &second] {
            assert_eq!(inflater.decompress(compressed, 1000).unwrap(), message);
        }
    }

    #[test]
    fn empty_messages_in_a_row_stay_decodable() {
        let mut deflater = Deflater::new(15, false);
        let mut inflater = Inflater::new(15, false);
        for message in [&b""[..], b"", b"after two empty ones", b""] {
            let compressed = deflater.compress(message);
            assert_eq!(inflater.decompress(&compressed, 100).unwrap(), message);
        }
    }

    #[test]
    fn a_sender_may_end_the_stream_with_bfinal() {
        // "Hello" in a block with BFINAL set (section 7.2.3.4), then the next
        // message starts a new stream.
        let mut inflater = Inflater::new(15, false);
        let final_block = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflater.decompress(&final_block, 100).unwrap(), b"Hello");
        let next = Deflater::new(15, false).compress(b"Hello");
        assert_eq!(inflater.decompress(&next, 100).unwrap(), b"Hello");
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        // 4 MiB of zeros compresses to about 4 KiB.
        let bomb = Deflater::new(15, false).compress(&vec![0; 4 << 20]);
        assert!(bomb.len() < 16 * 1024, "{}", bomb.len());
        let mut inflater = Inflater::new(15, false);
        assert_eq!(
            inflater.decompress(&bomb, 64 * 1024),
            Err(InflateError::TooBig { limit: 64 * 1024 })
        );
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let mut inflater = Inflater::new(15, false);
        assert!(matches!(
            inflater.decompress(&[0xff, 0xff, 0xff, 0xff, 0xff], 1000),
            Err(InflateError::Corrupt(_))
        ));
    }

    proptest! {
        #[test]
        fn messages_round_trip_with_and_without_context(
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..6),
            bits in MIN_WINDOW_BITS..=MAX_WINDOW_BITS,
            no_context_takeover in any::<bool>(),
        ) {
            let mut deflater = Deflater::new(bits, no_context_takeover);
            let mut inflater = Inflater::new(bits, no_context_takeover);
            for message in &messages {
                let compressed = deflater.compress(message);
                prop_assert_eq!(&inflater.decompress(&compressed, message.len()).unwrap(), message);
            }
        }

        #[test]
        fn any_header_value_parses_without_panicking(value in "\\PC{0,80}") {
            let _ = parse_offers([value.as_str()]);
            let _ = accept_response(&value);
            let _ = negotiate([value.as_str()], &ServerConfig::default());
        }
    }
}
