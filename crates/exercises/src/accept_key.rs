//! Exercise 1: compute `Sec-WebSocket-Accept` from `Sec-WebSocket-Key`.
//!
//! The server proves it understood the upgrade by hashing the client's key with
//! a fixed GUID (RFC 6455, section 4.2.2, step 5.4): SHA-1 of the key followed
//! by the GUID, then base64 of the 20-byte digest.

// ANCHOR: exercise
/// The GUID every WebSocket server appends to the client's key.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The value of the `Sec-WebSocket-Accept` header for the client's
/// `Sec-WebSocket-Key` header `key`.
///
/// Surrounding whitespace is not part of a header value, so it is ignored.
/// Use `sha1::Sha1` (with the `sha1::Digest` trait) and `base64`'s `STANDARD`
/// engine (with the `base64::Engine` trait).
pub fn accept_key(key: &str) -> String {
    // ANCHOR: solution
    use base64::Engine;
    use sha1::{Digest, Sha1};

    let mut hasher = Sha1::new();
    hasher.update(key.trim().as_bytes());
    hasher.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
    // ANCHOR_END: solution
}
// ANCHOR_END: exercise

// ANCHOR: tests
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_of_rfc_6455() {
        // Section 1.3 of the RFC.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn more_keys() {
        for (key, accept) in [
            ("x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="),
            ("AQIDBAUGBwgJCgsMDQ4PEA==", "C/0nmHhBztSRGR1CwL6Tf4ZjwpY="),
        ] {
            assert_eq!(accept_key(key), accept, "key {key}");
        }
    }

    #[test]
    fn whitespace_around_the_header_value_is_ignored() {
        assert_eq!(
            accept_key("  dGhlIHNhbXBsZSBub25jZQ==\t"),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn the_answer_is_a_base64_sha1_digest() {
        // 20 bytes in base64: 28 characters, the last one padding.
        let accept = accept_key("anything at all");
        assert_eq!(accept.len(), 28, "{accept}");
        assert!(accept.ends_with('='), "{accept}");
    }
}
// ANCHOR_END: tests
