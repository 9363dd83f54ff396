//! Shared input generators: numbers biased towards the edges that matter for file offsets.

use arbitrary::{Result, Unstructured};
use brlock::range::MAX_OFFSET;

/// A `u64` that is often an edge value: 0, 1, around the largest file offset, around
/// `u64::MAX`, small, medium or anything.
pub fn edgy_u64(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0u8..=11)? {
        0 => 0,
        1 => 1,
        2 => MAX_OFFSET - 1,
        3 => MAX_OFFSET,
        4 => MAX_OFFSET + 1,
        5 => u64::MAX,
        6 => u64::MAX - u64::from(u.arbitrary::<u8>()?),
        7 => MAX_OFFSET - u64::from(u.arbitrary::<u16>()?),
        8 => u64::from(u.arbitrary::<u8>()?),
        9 => u64::from(u.arbitrary::<u16>()?),
        10 => u64::from(u.arbitrary::<u32>()?),
        _ => u.arbitrary::<u64>()?,
    })
}

/// A `usize` biased like [`edgy_u64`], plus the sieve's own limits.
pub fn edgy_usize(u: &mut Unstructured<'_>) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 => 0,
        1 => usize::MAX,
        2 => brlock::io::sieve::MAX_BUFFER,
        3 => brlock::io::sieve::MAX_BUFFER + 1,
        4 => 1 + usize::from(u.arbitrary::<u8>()?),
        5 => 1 + usize::from(u.arbitrary::<u16>()?),
        _ => usize::try_from(edgy_u64(u)?).unwrap_or(usize::MAX),
    })
}

/// An `i32` that is often an edge value (for rank counts and rank numbers).
pub fn edgy_i32(u: &mut Unstructured<'_>) -> Result<i32> {
    Ok(match u.int_in_range(0u8..=6)? {
        0 => 0,
        1 => 1,
        2 => -1,
        3 => i32::MIN,
        4 => i32::MAX,
        5 => i32::from(u.arbitrary::<u8>()?),
        _ => u.arbitrary::<i32>()?,
    })
}

/// A small seeded generator (SplitMix64) for bulk bytes, so that inputs stay short.
pub struct Bytes(u64);

impl Bytes {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Bytes {
        Bytes(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `n` pseudo-random bytes.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}
