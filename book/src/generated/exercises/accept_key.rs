/// The GUID every WebSocket server appends to the client's key.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The value of the `Sec-WebSocket-Accept` header for the client's
/// `Sec-WebSocket-Key` header `key`.
///
/// Surrounding whitespace is not part of a header value, so it is ignored.
/// Use `sha1::Sha1` (with the `sha1::Digest` trait) and `base64`'s `STANDARD`
/// engine (with the `base64::Engine` trait).
pub fn accept_key(key: &str) -> String {
    todo!()
}
