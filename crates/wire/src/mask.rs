//! XOR masking (RFC 6455, section 5.3).
//!
//! A client masks every payload byte `i` with `key[i % 4]`; the server does the same
//! XOR again to get the bytes back. The operation is its own inverse, so one function
//! masks and unmasks.
//!
//! Masking is not encryption: the key travels in the frame header. It exists so that a
//! script in a browser cannot choose the bytes that appear on the wire, which could
//! otherwise be crafted to look like an HTTP request to a caching proxy that does not
//! understand WebSocket (the "cache poisoning" attack the RFC describes in section 10.3).

// ANCHOR: bytewise
/// Masks (or unmasks) `payload` in place, one byte at a time: the plain reading of the RFC.
///
/// `offset` is how many bytes of the same frame's payload came before this slice, so a
/// payload can be unmasked in pieces as it arrives.
pub fn apply_mask_bytewise(payload: &mut [u8], key: [u8; 4], offset: usize) {
    for (index, byte) in payload.iter_mut().enumerate() {
        *byte ^= key[(offset + index) % 4];
    }
}
// ANCHOR_END: bytewise

// ANCHOR: wordwise
/// Masks (or unmasks) `payload` in place, eight bytes at a time.
///
/// The key repeats every four bytes, so a 64-bit word of the key repeated twice can be
/// XORed onto eight payload bytes at once. The compiler turns this loop into SIMD
/// instructions; only the last few bytes are done one by one.
pub fn apply_mask(payload: &mut [u8], key: [u8; 4], offset: usize) {
    // Rotate the key so that key[0] lines up with the first byte of this slice.
    let key = rotate_key(key, offset);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let masked = u64::from_ne_bytes(chunk.try_into().expect("chunk of 8")) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    // Whole words covered a multiple of 8 bytes (itself a multiple of 4), so the
    // rotated key still lines up with the tail.
    apply_mask_bytewise(chunks.into_remainder(), key, 0);
}
// ANCHOR_END: wordwise

/// The key as seen from a byte `offset` positions into the payload.
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let shift = offset % 4;
    [
        key[shift],
        key[(shift + 1) % 4],
        key[(shift + 2) % 4],
        key[(shift + 3) % 4],
    ]
}

/// A fresh masking key from the operating system's random source.
///
/// The RFC asks for keys an attacker cannot predict (section 5.3), so this uses the
/// same source as cryptographic code rather than a fast pseudo-random generator.
pub fn random_key() -> [u8; 4] {
    let mut key = [0u8; 4];
    getrandom::fill(&mut key).expect("the operating system's random source failed");
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d.
        let mut payload = *b"Hello";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn wordwise_matches_bytewise_for_every_length_and_offset() {
        let key = [0x6d, 0xb6, 0xb2, 0x80];
        let original: Vec<u8> = (0..=70u8).map(|i| i.wrapping_mul(37)).collect();
        for length in 0..original.len() {
            for offset in 0..8 {
                let mut fast = original[..length].to_vec();
                let mut slow = fast.clone();
                apply_mask(&mut fast, key, offset);
                apply_mask_bytewise(&mut slow, key, offset);
                assert_eq!(fast, slow, "length {length}, offset {offset}");
            }
        }
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_whole() {
        let key = [1, 2, 3, 4];
        let original: Vec<u8> = (0..100u8).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = original.clone();
        let (first, rest) = pieces.split_at_mut(13);
        apply_mask(first, key, 0);
        apply_mask(rest, key, 13);
        assert_eq!(whole, pieces);
    }

    #[test]
    fn random_keys_differ() {
        // Four random bytes repeat with probability 2^-32; eight draws all equal is
        // practically impossible unless the source is broken.
        let first = random_key();
        assert!((0..8).any(|_| random_key() != first));
    }
}
