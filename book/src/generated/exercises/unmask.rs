/// Unmasks (or masks) `payload` in place, one byte at a time.
pub fn unmask_bytewise(payload: &mut [u8], key: [u8; 4]) {
    todo!()
}

/// Unmasks (or masks) `payload` in place, eight bytes at a time: XOR each
/// 8-byte chunk with the key repeated twice as one `u64`, and do the few bytes
/// left over one by one. The result must equal [`unmask_bytewise`]'s.
pub fn unmask_wordwise(payload: &mut [u8], key: [u8; 4]) {
    todo!()
}
