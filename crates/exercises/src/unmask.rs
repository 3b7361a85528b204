//! Exercise 3: unmask a payload, first byte by byte, then a word at a time.
//!
//! Byte `i` of a client's payload is XORed with `key[i % 4]` (RFC 6455, section
//! 5.3). XOR undoes itself, so the same function masks and unmasks. The bench in
//! `benches/unmask.rs` compares the two versions on your machine:
//! `cargo bench --bench unmask`.

// ANCHOR: exercise
/// Unmasks (or masks) `payload` in place, one byte at a time.
pub fn unmask_bytewise(payload: &mut [u8], key: [u8; 4]) {
    // ANCHOR: solution
    for (index, byte) in payload.iter_mut().enumerate() {
        *byte ^= key[index % 4];
    }
    // ANCHOR_END: solution
}

/// Unmasks (or masks) `payload` in place, eight bytes at a time: XOR each
/// 8-byte chunk with the key repeated twice as one `u64`, and do the few bytes
/// left over one by one. The result must equal [`unmask_bytewise`]'s.
pub fn unmask_wordwise(payload: &mut [u8], key: [u8; 4]) {
    // ANCHOR: solution_wordwise
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let masked = u64::from_ne_bytes(chunk.try_into().expect("a chunk of 8")) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    // The chunks covered a multiple of 8 bytes, so the key is still aligned.
    unmask_bytewise(chunks.into_remainder(), key);
    // ANCHOR_END: solution_wordwise
}
// ANCHOR_END: exercise

// ANCHOR: tests
#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn the_example_of_rfc_6455_bytewise() {
        // Section 5.7: "Hello" masked with 37 fa 21 3d.
        let mut payload = *b"Hello";
        unmask_bytewise(&mut payload, KEY);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        unmask_bytewise(&mut payload, KEY);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn the_example_of_rfc_6455_wordwise() {
        let mut payload = *b"Hello";
        unmask_wordwise(&mut payload, KEY);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn every_byte_is_xored_with_its_key_byte() {
        let mut payload = vec![0u8; 9];
        unmask_bytewise(&mut payload, [1, 2, 3, 4]);
        assert_eq!(payload, [1, 2, 3, 4, 1, 2, 3, 4, 1]);
    }

    #[test]
    fn wordwise_equals_bytewise_for_every_length() {
        let original: Vec<u8> = (0..=80u8).map(|i| i.wrapping_mul(37)).collect();
        for length in 0..original.len() {
            let mut fast = original[..length].to_vec();
            let mut slow = fast.clone();
            unmask_wordwise(&mut fast, [0x6d, 0xb6, 0xb2, 0x80]);
            unmask_bytewise(&mut slow, [0x6d, 0xb6, 0xb2, 0x80]);
            assert_eq!(fast, slow, "length {length}");
            assert_ne!(length > 0, fast == original[..length], "length {length}");
        }
    }
}
// ANCHOR_END: tests
