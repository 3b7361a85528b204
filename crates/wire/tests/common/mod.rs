//! Helpers shared by the wire crate's integration tests.

use proptest::sample::Index;

/// Cuts `bytes` at the given points (any order, duplicates allowed: empty chunks are a
/// case too), as a network might deliver them.
pub fn split_at_points<'a>(bytes: &'a [u8], points: &[Index]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points
        .iter()
        .map(|point| point.index(bytes.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(&bytes[start..cut]);
        start = cut;
    }
    chunks.push(&bytes[start..]);
    chunks
}
